"""``attest approve``: a person's signed "this artefact may go to STAGE" (the seed's PO sign-off)."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from attest.cli._options import OutputPath, emit_json, format_option, signer_option
from verify.formats.encoding import printable


@click.command()
@click.argument("artifact", metavar="ARTIFACT", required=False)
@signer_option(required=True)
@click.option("--policy", "policy_path", required=True, type=click.Path(path_type=Path), metavar="FILE",
              help="The policy of the stage: the stage must require approvals, and --signer be one of its approvers.")
@click.option("--stage", required=True, help="The stage this approval is for (a stage of the policy).")
@click.option("--reason", default="", help="Why (a ticket, a change request).")
@click.option("--approver", default=None, help="Who approves (default: the login name); informational only.")
@click.option("--output", "-o", type=OutputPath(),
              default=Path("approval.intoto.jsonl"), show_default=True)
@click.option("--store", metavar="STORE", help="Also publish the approval to a store (directory or s3://).")
@click.option("--release", "release_path", type=click.Path(dir_okay=False, path_type=Path), metavar="MANIFEST",
              help="With --hotfix, instead of ARTIFACT: the release manifest approved as a hotfix.")
@click.option("--hotfix", is_flag=True,
              help="Approve --release MANIFEST as a hotfix to STAGE (stages.STAGE.hotfix.require-approvals); it is "
                   "published under every artefact of the release.")
@format_option
def approve(artifact: str | None, signer_uri: str, insecure_key_permissions: bool, policy_path: Path, stage: str,
            reason: str, approver: str | None, output: Path, store: str | None, release_path: Path | None,
            hotfix: bool, output_format: str) -> None:
    """Sign an approval of ARTIFACT (a file or sha256:HEX) for STAGE, or of a
    release manifest as a hotfix to STAGE.

    A policy's stages.<stage>.require-approvals: {count: N, signed-by: [...]}
    makes 'attest verify --stage STAGE' demand N distinct approvers; the
    approval is refused here unless STAGE requires approvals and --signer is
    one of its approvers. With --release MANIFEST --hotfix, the approval names
    the manifest, and counts only for 'attest verify --release MANIFEST
    --stage STAGE --hotfix' (stages.STAGE.hotfix.require-approvals).

    
    Examples:
      attest approve dist/app.zip --stage prd --signer po.pem --policy policy.yaml --store ./store
      attest approve --release release.intoto.jsonl --hotfix --stage prd --signer alice.pem \
          --policy policy.yaml --store ./store
    """
    from attest.signers import from_uri
    from attest.signing import artifact_digests, output_apart, sign_with, write_and_publish
    from attest.summaries import approval_statement
    from verify.errors import RequestError
    from verify.gate import approver as approver_of
    from verify.policy_file import load_policy
    from verify.trust import load_public_key

    if (artifact is None) == (release_path is None) or hotfix != (release_path is not None):
        raise RequestError("approve ARTIFACT for a stage, or --release MANIFEST --hotfix (a hotfix of the release), "
                           "one of the two")
    policy = load_policy(policy_path)
    output_apart(output, option="--output", policy=policy, store=store)
    signer = from_uri(signer_uri, insecure_permissions=insecure_key_permissions)
    key = load_public_key(signer.public_key_pem(), name=signer_uri)
    if release_path is not None:
        name, digests, under = _hotfix(policy, stage, key, release_path, store)
    else:
        assert artifact is not None
        approver_of(policy, stage, key)
        name, digests = artifact_digests(artifact)
        under = [digests]
    who = approver or _user()
    document = approval_statement(subject_name=name, digests=digests, stage=stage, approver=who, reason=reason,
                                  approved_at=datetime.now(UTC), hotfix=hotfix)
    line = sign_with(document, signer)
    published = write_and_publish(line, output=output, store=store, kind="approval", artifacts=under)
    if output_format == "json":
        emit_json({"output": str(output), "stage": stage, "approver": who, "digest": digests,
                   "published": published})
    else:
        click.echo(f"{printable(who)} approved {printable(name)} (sha256:{digests['sha256'][:16]}...) for "
                   f"{printable(stage)} -> {printable(str(output))}")


def _hotfix(policy: Any, stage: str, key: Any, release_path: Path,
            store: str | None) -> tuple[str, dict[str, str], list[dict[str, str]]]:
    """The subject of a hotfix approval (the release, by its manifest's sha256), and the artefacts it is
    published under; refused unless the signer approves hotfixes of STAGE and a release signer signed it."""
    from attest.summaries import release_subject
    from verify.errors import RequestError
    from verify.formats.evidence import load_evidence, read_evidence_file
    from verify.path.deployments import trusted_release
    from verify.path.kinds import hotfix_approver

    hotfix_approver(policy, stage, key)
    if not store:
        raise RequestError("--hotfix needs --store STORE: the approval is published under the release's artefacts, "
                           "where the hotfix's gate looks")
    item, release, _ = trusted_release(load_evidence(read_evidence_file(release_path), source=str(release_path)),
                                       policy, policy.trust_run())
    name, digests = release_subject(release.name, item.digest)
    unique = {a.digest["sha256"]: dict(a.digest) for part in release.components for a in part.artifacts}
    return name, digests, [unique[sha] for sha in sorted(unique)]


def _user() -> str:
    """Who runs this, as the system names them; a CI container's user often has no name (no passwd entry)."""
    from verify.errors import RequestError

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        raise RequestError("cannot tell who approves: this user has no name on this system (no passwd entry, no "
                           "LOGNAME or USER); give it with --approver NAME") from None
