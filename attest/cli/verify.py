"""``attest verify``: the pipeline gate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from attest.cli._options import OutputPath, emit_json, format_option, progress, registry_insecure_option
from attest.gate import GITHUB_ISSUER, EmitRequest, GateOutcome, GateRequest, KeylessFlags, run_gate

if TYPE_CHECKING:  # the trust core is imported when the command runs (by _request and run_gate), not at start-up
    from verify.gate import GateVerdict
    from verify.release_gate import ReleaseVerdict

F = TypeVar("F", bound=Callable[..., Any])


def sigstore_options(f: F) -> F:
    """Keyless identities, with cosign's flag names and gh's GitHub shorthands, and the trusted root."""
    options = [
        click.option("--certificate-identity", metavar="ID",
                     help="Trust Sigstore bundles whose certificate names exactly this identity (SAN)."),
        click.option("--certificate-identity-regexp", metavar="RE",
                     help="As --certificate-identity, a regular expression that must match the WHOLE "
                          "identity."),
        click.option("--certificate-oidc-issuer", metavar="URL",
                     help=f"The OIDC issuer the certificate must name (GitHub Actions: {GITHUB_ISSUER})."),
        click.option("--github-repo", metavar="OWNER/REPO",
                     help="Trust GitHub Actions signatures made from this repository (its source "
                          "repository extension; and, without --certificate-identity or --signer-workflow, "
                          "a workflow in it)."),
        click.option("--signer-workflow", metavar="OWNER/REPO/.github/workflows/FILE",
                     help="The workflow that must have signed (the certificate's Build Signer URI), e.g. a "
                          "reusable workflow; at any ref unless @REF is given. Needs --github-repo: any "
                          "repository may call a reusable workflow."),
        click.option("--source-ref", metavar="REF",
                     help="The ref the workflow must have run on (refs/heads/main, or a branch name)."),
        click.option("--deny-self-hosted-runners", is_flag=True,
                     help="Refuse signatures made on self-hosted runners."),
        click.option("--trusted-root", type=click.Path(path_type=Path), metavar="FILE",
                     help="Sigstore trusted_root.json to verify bundles against (default: the production "
                          "root shipped with sigstore-python; never refreshed over the network)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def gate_options(f: F) -> F:
    """Stage gates (earlier stages' VSAs), VSA emission, lockfiles and release manifests."""
    options = [
        click.option("--stage", metavar="STAGE",
                     help="The stage running this gate (stg, prd): applies stages.STAGE of the policy, which "
                          "must name it exactly."),
        click.option("--require-vsa", "require_vsa", multiple=True, metavar="STAGE",
                     help="Also require a PASSED VSA of STAGE for this artefact and its provenance, signed by "
                          "that stage's verifier in the policy (without a policy: by --vsa-key). Repeatable."),
        click.option("--vsa-key", "vsa_keys", multiple=True, type=click.Path(path_type=Path), metavar="PEM",
                     help="Without a policy: a public key whose VSAs --require-vsa accepts. Repeatable."),
        click.option("--emit-vsa", type=OutputPath(), metavar="FILE",
                     help="After a pass only: sign a SLSA VSA for --stage with --signer and write it to FILE "
                          "(and to --store). Needs a policy naming the stage's verifier."),
        click.option("--signer", "signer_uri", metavar="URI",
                     help="Key that signs the VSA (a key of the stage's verifier): PATH, key:PATH or "
                          "awskms:<key>."),
        click.option("--insecure-key-permissions", is_flag=True,
                     help="Accept a signing key file that other users can read."),
        click.option("--resource-uri", metavar="URI",
                     help="The VSA's resourceUri (default attest:stage:STAGE), e.g. the pipeline ARN."),
        click.option("--verifier-id", metavar="ID",
                     help="The VSA's verifier.id (default: the CI project, else attest:verifier:local)."),
        click.option("--verified-level", "verified_levels", multiple=True, metavar="LEVEL",
                     help="Require that the policy trusts the provenance's builder for this SLSA build level "
                          "(provenance.builders), e.g. SLSA_BUILD_LEVEL_3; a VSA states the level the builder "
                          "is trusted for, never more."),
        click.option("--lockfile", "lockfiles", multiple=True, type=click.Path(path_type=Path), metavar="PATH",
                     help="Check that this local lockfile is byte for byte the one the provenance bound."),
        click.option("--release", type=click.Path(dir_okay=False, path_type=Path), metavar="MANIFEST",
                     help="Verify a release manifest and every component's provenance in --store (no ARTIFACT)."),
        click.option("--component", metavar="NAME",
                     help="With --release: only this component, about to be deployed to --stage; every component "
                          "it needs must run there at this release's artefacts (their deployment records say so)."),
        click.option("--rollback", "kind", flag_value="rollback",
                     help="With --release and --stage ENV: the release goes back to ENV, where it ran before (a "
                          "succeeded deployment record of each component there), instead of ENV's ordinary "
                          "requirements."),
        click.option("--hotfix", "kind", flag_value="hotfix",
                     help="With --release and --stage ENV: the release goes to ENV as a hotfix, with the approvals "
                          "stages.ENV.hotfix requires of this manifest instead of ENV's ordinary requirements."),
        click.option("--same-commit", is_flag=True, help="With --release: every component from one commit."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def layout_options(f: F) -> F:
    """An in-toto layout the artefact's supply chain must also satisfy, its pinned key and its links."""
    options = [
        click.option("--layout", type=click.Path(dir_okay=False, path_type=Path), metavar="LAYOUT",
                     help="Also require this in-toto layout: its links verified by in-toto's verifylib, and "
                          "ARTIFACT a product of its last step. An addition to the provenance, never instead."),
        click.option("--layout-key", "layout_keys", multiple=True, type=click.Path(path_type=Path), metavar="PEM",
                     help="A public key that must have signed --layout (as in-toto-verify --verification-keys). "
                          "Repeatable."),
        click.option("--link-dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
                     help="Where the layout's links (STEP.KEYID.link) are (default: the layout's directory)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@click.command()
@click.argument("artifact", metavar="ARTIFACT", required=False)
@click.option("--attestation", "attestations", multiple=True, type=click.Path(path_type=Path),
              metavar="FILE", help="A .intoto.jsonl file or a Sigstore bundle. Repeatable.")
@click.option("--store", metavar="STORE",
              help="Find attestations by the artefact's sha256 in a store (directory or s3://bucket/prefix).")
@click.option("--policy", "policy_path", type=click.Path(path_type=Path), metavar="FILE",
              help="Policy file naming trusted identities and rules (see docs/policy.md); flags narrow it.")
@click.option("--key", "keys", multiple=True, metavar="PEM",
              help="A trusted public key (PEM), or awskms:<key ARN> fetched live (pin a PEM to stay offline); "
                   "with --policy, only signatures by these of its keys count. Repeatable.")
@click.option("--source-uri", metavar="URI", help="Required source repository (github.com/acme/app or any URL form).")
@click.option("--source-branch", metavar="BRANCH", help="Required branch (main matches refs/heads/main).")
@click.option("--commit", metavar="SHA", help="Required commit: the full commit id (40 or 64 hex digits).")
@click.option("--builder-id", metavar="ID", help="Required runDetails.builder.id.")
@click.option("--predicate-type", metavar="TYPE", help="Accept this predicate type instead of SLSA provenance.")
@sigstore_options
@gate_options
@layout_options
@registry_insecure_option
@format_option
def verify(artifact: str | None, output_format: str, **options: Any) -> None:
    """Verify ARTIFACT (a file, sha256:HEX, s3://bucket/key or an image, oci://REGISTRY/REPO@sha256:HEX or :TAG)
    against signed provenance.

    Passes (exit 0) only if a provenance signed by a pinned identity names the
    artefact's digest and satisfies every rule, and, with --stage, every
    requirement of that stage of the policy (earlier stages' VSAs bound to that
    provenance, approvals); otherwise exits 1 with one sentence saying which
    check failed. Flags narrow the policy and never widen it; an empty or
    unknown value is a usage error (exit 2). Sigstore bundles are verified
    offline, against --trusted-root or the production root shipped with
    sigstore-python. An image's attestations are found in its registry (OCI
    referrers, the referrers tag schema, cosign's .att tag); a tag is resolved
    once and the verdict names the digest.

    \b
    Examples:
      attest verify dist/app.tar.gz --attestation provenance.intoto.jsonl \\
          --key dev-build.pub.pem --source-uri github.com/acme/app --source-branch main
      attest verify dist/app.tar.gz --attestation app.sigstore.json \\
          --github-repo acme/app --signer-workflow acme/app/.github/workflows/release.yml
      attest verify dist/app.tar.gz --store s3://acme-store/app --policy policy.yaml \\
          --stage stg --emit-vsa vsa.intoto.jsonl --signer awskms:alias/stg-verifier
      attest verify dist/app.tar.gz --store s3://acme-store/app --policy policy.yaml --stage prd
      attest verify oci://123456789012.dkr.ecr.eu-west-1.amazonaws.com/app@sha256:... \\
          --policy policy.yaml --stage stg --emit-vsa vsa.intoto.jsonl --signer awskms:alias/stg-verifier
      attest verify --release release.intoto.jsonl --component app --store s3://acme-store/app \\
          --policy policy.yaml --stage prd
      attest verify dist/app.tar.gz --attestation provenance.intoto.jsonl --key dev-build.pub.pem \\
          --layout root.layout --layout-key owner.pub.pem --link-dir links/
    """
    from verify.errors import EvidenceRejected

    request = _request(artifact, **options)
    shown = artifact or str(request.release)
    try:
        outcome = run_gate(request, progress=progress, warn=lambda text: click.echo(f"attest: warning: {text}",
                                                                                    err=True))
    except EvidenceRejected as e:
        if output_format == "json":
            emit_json({"verified": False, "artifact": shown, "error": str(e),
                       "checks": [c.to_dict() for c in e.checks if hasattr(c, "to_dict")]})
        raise EvidenceRejected(f"verification failed for {shown}: {e}", checks=e.checks) from e
    if output_format == "json":
        emit_json(_as_json(outcome))
    else:
        _print(outcome, shown)


def _request(artifact: str | None, *, attestations: tuple[Path, ...], store: str | None, policy_path: Path | None,
             keys: tuple[str, ...], emit_vsa: Path | None, signer_uri: str | None, insecure_key_permissions: bool,
             resource_uri: str | None, verifier_id: str | None, trusted_root: Path | None, **flags: Any) -> GateRequest:
    """The frozen request the flags describe (nothing is read yet)."""
    from verify.errors import RequestError
    from verify.request import GateRules  # the standard library only

    if signer_uri is not None and emit_vsa is None:
        raise RequestError("--signer is for --emit-vsa; verification itself needs no signing key")
    if emit_vsa is not None and signer_uri is None:
        raise RequestError("--emit-vsa needs --stage (the stage being verified) and --signer (its key)")
    emit = None if emit_vsa is None or signer_uri is None else EmitRequest(
        output=emit_vsa, signer_uri=signer_uri, insecure_key_permissions=insecure_key_permissions,
        resource_uri=resource_uri, verifier_id=verifier_id)
    keyless = KeylessFlags(**{name: flags.pop(name) for name in (
        "certificate_identity", "certificate_identity_regexp", "certificate_oidc_issuer", "github_repo",
        "signer_workflow", "source_ref", "deny_self_hosted_runners")})
    rules = GateRules(**{f.name: flags.pop(f.name) for f in fields(GateRules)})
    flags["kind"] = flags.get("kind") or "deploy"
    _coherent(flags["kind"], rules, emit_vsa, resource_uri, verifier_id)
    return GateRequest(artifact=artifact, attestations=attestations, store=store, policy=policy_path, keys=keys,
                       keyless=keyless, trusted_root=trusted_root, rules=rules, emit=emit, **flags)


def _coherent(kind: str, rules: Any, emit_vsa: Path | None, resource_uri: str | None, verifier_id: str | None
              ) -> None:
    """Flags that would be dropped without a word are refused (a flag narrows a gate, or says why it cannot)."""
    from verify.errors import RequestError

    if emit_vsa is None and (resource_uri is not None or verifier_id is not None):
        raise RequestError(f"{'--resource-uri' if resource_uri is not None else '--verifier-id'} says what an "
                           "emitted VSA states; give --emit-vsa too, or leave it out")
    if kind != "deploy" and rules.require_vsa:
        raise RequestError(f"--require-vsa asks for a stage's VSA, which a --{kind} goes without (the stage's "
                           f"{kind} rule stands instead); leave out one or the other")


def _as_json(outcome: GateOutcome) -> dict[str, Any]:
    return {**outcome.verdict.to_dict(), "stage": outcome.stage, "vsa": list(outcome.emitted),
            "lockfiles": [str(p) for p in outcome.lockfiles],
            **({"layout": outcome.layout.to_dict()} if outcome.layout is not None else {})}


def _print(outcome: GateOutcome, shown: str) -> None:
    """The verdict for a person; every string that comes from evidence is shown through printable()."""
    from verify.formats.encoding import printable
    from verify.release_gate import ReleaseVerdict

    verdict = outcome.verdict
    if isinstance(verdict, ReleaseVerdict):
        _print_release(verdict, outcome)
        return
    result = verdict.verdict
    prov = result.provenance
    click.echo(f"PASS {printable(shown)}")
    if result.statement is None:
        signed = ", ".join(f"{a}:{h}" for a, h in result.subject.digest.items())
        click.echo(f"  signed    {signed} (a message signature: identity only, no provenance)")
    else:
        click.echo(f"  subject   {printable(result.subject.name) or '(unnamed)'}")
    click.echo(f"  signed by {result.signer} ({printable(result.evidence.source)})")
    if prov is not None:
        click.echo(f"  source    {printable(prov.source_uri or '?')} {printable(prov.source_ref or '')} "
                   f"@ {printable(prov.commit or '?')}")
        click.echo(f"  builder   {printable(prov.builder_id)} (trusted for SLSA build level {verdict.level})")
        inputs = ("as the policy expects" if result.parameters_checked else
                  "NOT CHECKED: no policy says what its external parameters must be (pass --policy)")
        click.echo(f"  inputs    {printable(prov.build_type)}: {inputs}")
    click.echo(f"  checks    {', '.join(c.name for c in result.checks)}")
    _print_stages(verdict)
    if outcome.lockfiles:
        click.echo(f"  lockfiles {', '.join(map(str, outcome.lockfiles))}: as bound")
    if outcome.layout is not None:
        steps = ", ".join(f"{printable(name)} ({len(links)} link(s))" for name, links in outcome.layout.steps)
        click.echo(f"  in-toto   {printable(outcome.layout.layout)}: {steps}; product "
                   f"{printable(outcome.layout.product)}")
    if outcome.emitted:
        from verify.formats.levels import level_name

        click.echo(f"  vsa       {outcome.stage} PASSED, {level_name(verdict.level)} -> {', '.join(outcome.emitted)}")


def _print_stages(verdict: GateVerdict) -> None:
    from verify.formats.encoding import format_time

    for item in verdict.stages:
        click.echo(f"  {item.kind:<9} {item.stage} by {item.signer} at {format_time(item.time)}")


def _print_release(verdict: ReleaseVerdict, outcome: GateOutcome) -> None:
    from verify.formats.encoding import printable
    from verify.formats.levels import level_name

    click.echo(f"PASS release {printable(verdict.name)} (signed by {verdict.signer})")
    for item in verdict.components:
        click.echo(f"  {printable(item.component):<12} {printable(item.artifact)} @ {printable(str(item.commit))}")
    for check in verdict.checks:
        if check.name == "hotfix":
            click.echo(f"  {'hotfix':<12} approved by {printable(', '.join(a['signer'] for a in check.found))}")
            continue
        for found in check.found:  # order, deployed, rollback: the deployment records relied on
            what = "runs" if check.name == "order" else "ran"
            where = outcome.stage if check.name == "order" else found.get("environment", "")
            release = f" (release {printable(found['release'])})" if found.get("release") else ""
            click.echo(f"  {check.name:<12} {printable(found['component'])} {what} in {printable(where or '')}"
                       f"{release}: {printable(found['record'] or '')}")
    if outcome.emitted:
        click.echo(f"  vsa       {outcome.stage} PASSED for the release, {level_name(verdict.level)} -> "
                   f"{', '.join(outcome.emitted)}")
