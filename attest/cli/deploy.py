"""``attest deploy``: an environment's signed word that it deployed a stack of a release (issue 19)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from attest.cli._options import OutputPath, emit_json, format_option, signer_option

if TYPE_CHECKING:
    from verify.gate import GateVerdict
    from verify.path.deployments import ReleaseToRecord
    from verify.release_gate import ReleaseVerdict

_SHA256 = re.compile(r"[0-9a-f]{64}")


@click.group()
def deploy() -> None:
    """Deployment records: what each environment ran, signed by its pipeline."""


def _sha256(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not _SHA256.fullmatch(value):
        raise click.BadParameter(f"{value!r} is not a sha256 (64 lower-case hex digits) of a deployment record",
                                 ctx=ctx, param=param)
    return value


@deploy.command()
@click.option("--env", "environment", required=True, metavar="ENV",
              help="The environment deployed to: a stage of the policy whose deployed-by lists --signer.")
@click.option("--release", "release_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              metavar="MANIFEST", help="The release manifest deployed (attest release create).")
@click.option("--component", required=True, help="The component of the release that was deployed (e.g. infra).")
@click.option("--status", required=True, type=click.Choice(["succeeded", "failed"]),
              help="succeeded: recorded only if ENV's gate passes the release; failed: recorded whatever it says.")
@signer_option(required=True)
@click.option("--policy", "policy_path", required=True, type=click.Path(path_type=Path), metavar="FILE",
              help="The policy: ENV's deployed-by, the release signers, and ENV's gate.")
@click.option("--store", required=True, metavar="STORE",
              help="The store the gate reads, and where the record is published under each artefact.")
@click.option("--output", "-o", type=OutputPath(), default=Path("deployment.intoto.jsonl"), show_default=True)
@click.option("--kind", type=click.Choice(["deploy", "rollback", "hotfix"]), default="deploy", show_default=True,
              help="What kind of deployment this was; a succeeded one passes ENV's gate for that kind first "
                   "(attest verify --rollback or --hotfix).")
@click.option("--replaces", metavar="SHA256", callback=_sha256,
              help="The sha256 of the deployment record this one replaces (of its .intoto.jsonl line, without "
                   "the newline).")
@format_option
def record(environment: str, release_path: Path, component: str, status: str, signer_uri: str,
           insecure_key_permissions: bool, policy_path: Path, store: str, output: Path, kind: str,
           replaces: str | None, output_format: str) -> None:
    """Sign a record that ENV deployed COMPONENT of the release MANIFEST, and publish it.

    \b
    Before anything is signed:
      (a) ENV must be a stage of the policy, and --signer a key of one of
          the identities its stages.ENV.deployed-by lists;
      (b) MANIFEST must be signed by a release signer (releases.signed-by),
          and COMPONENT one of its components;
      (c) with --status succeeded, ENV's gate must pass the release: the one
          'attest verify --release MANIFEST --store STORE --policy FILE
          --stage ENV' runs.
    The record is then published to --store (in its deployment index, read
    by 'attest status' and by the order of the path, and under each of the
    component's artefacts), and written to --output.

    Exit codes: 0 recorded, 1 the gate or the evidence refused, 2 a usage
    error (ENV, COMPONENT, a signer or a manifest the policy does not allow),
    3 an input or the policy unreadable.
    """
    import os

    from attest.collect import pipeline_run
    from attest.gate import GateRequest, run_gate
    from attest.signers import from_uri
    from attest.signing import output_apart, sign_with, write_and_publish
    from attest.stores import publishable
    from attest.stores.layout import deployment_key
    from attest.summaries import deployment_statement
    from verify.formats.encoding import printable
    from verify.formats.evidence import load_evidence, read_evidence_file
    from verify.path.deployments import deployer, release_to_record
    from verify.policy_file import load_policy
    from verify.request import GateRules
    from verify.trust import load_public_key

    policy = load_policy(policy_path)
    output_apart(output, option="--output", policy=policy, store=store)
    signer = from_uri(signer_uri, insecure_permissions=insecure_key_permissions)
    run = pipeline_run(os.environ)  # read now: a malformed CI variable refuses before the gate runs
    # (a) the environment, and the signer one of the identities that may sign its deployment records
    who = deployer(policy, environment, load_public_key(signer.public_key_pem(), name=signer_uri))
    # (b) the release manifest, signed by a release signer, and the component one of its components
    manifest = load_evidence(read_evidence_file(release_path), source=str(release_path))
    release = release_to_record(manifest, policy, policy.trust_run(), component=component)
    # (c) the environment's gate for the release, before a success is recorded
    if status == "succeeded":
        outcome = run_gate(GateRequest(artifact=None, store=store, policy=policy_path, release=release_path,
                                       component=component, rules=GateRules(stage=environment), kind=kind))
        _same_release(outcome.verdict, release, release_path)
    # (d) sign, publish under each artefact of the component, then write the output
    artifacts = [(a.name, dict(a.digest)) for a in release.component.artifacts]
    deployed_at = datetime.now(UTC)  # signed to the microsecond: the index files it by this time
    document = deployment_statement(
        environment=environment, release_name=release.name, release_sha256=release.sha256, component=component,
        artifacts=artifacts, status=status, kind=kind, deployed_at=deployed_at,
        invocation=run, replaces=replaces, commit=release.component.commit)
    line = sign_with(document, signer)
    unique = {digests["sha256"]: digests for _, digests in artifacts}
    # (e) under each artefact, then into the deployment index (what runs where, newest first: last, as what makes
    # the record count there, so that a failed publish leaves nothing attest status or a gate counts), then the output
    published = write_and_publish(line, output=output, store=store, kind="deployment",
                                  artifacts=[unique[sha] for sha in sorted(unique)],
                                  last=lambda: publishable(store).put_deployment(
                                      deployment_key(environment, component, deployed_at, line), line))
    shown = printable(release.name)
    if output_format == "json":
        emit_json({"environment": environment, "release": {"name": release.name, "digest": {"sha256": release.sha256}},
                   "component": component, "status": status, "kind": kind, "signer": who,
                   "artifacts": [{"name": name, "digest": digests} for name, digests in artifacts],
                   "output": str(output), "published": published})
    else:
        click.echo(f"{who} recorded {status} {kind} of {printable(component)} (release {shown}) in "
                   f"{printable(environment)} -> {output}")


def _same_release(verdict: GateVerdict | ReleaseVerdict, release: ReleaseToRecord, path: Path) -> None:
    """The gate passed the release the record names (the manifest is read twice: by the record, then by the
    gate), with the same artefacts for the component."""
    from verify.errors import PolicyViolation
    from verify.release_gate import ReleaseVerdict

    assert isinstance(verdict, ReleaseVerdict)
    name = release.component.name
    passed = {(c.artifact, c.digests.get("sha256")) for c in verdict.components if c.component == name}
    recorded = {(a.name, a.digest.get("sha256")) for a in release.component.artifacts}
    # by the manifest's own digest and the artefacts' sha256: a release re-cut under the same name and artefact names
    # (other bytes) is another release
    if (verdict.name, verdict.manifest_sha256) != (release.name, release.sha256) or passed != recorded:
        raise PolicyViolation(f"{path} changed while it was read: the gate passed another release than the one "
                              "to record; nothing was recorded, run again")
