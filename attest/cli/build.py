"""``attest build``: run the build, hash the artefacts, sign SLSA provenance, publish."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from attest.cli._options import (
    OutputPath,
    emit_json,
    format_option,
    progress,
    registry_insecure_option,
    signer_option,
)
from verify.formats.encoding import printable

if TYPE_CHECKING:
    from attest.build import BuildOutcome


@click.command(context_settings={"allow_interspersed_args": False})
@click.option("--artifact", "-a", "artifacts", multiple=True, required=True, metavar="PATH",
              help="A file, a directory (every regular file below) or a glob; an image: oci-layout:DIR[:TAG] (an "
                   "OCI image layout) or oci://REGISTRY/REPO:TAG|@sha256:HEX (resolved once, after CMD, to its "
                   "digest). Repeatable.")
@click.option("--lockfile", "lockfile_paths", multiple=True, metavar="PATH", type=click.Path(path_type=Path),
              help="A lockfile to bind (default: well-known lockfiles at the repository root). Repeatable.")
@click.option("--no-lockfile", is_flag=True, help="Build without binding any lockfile.")
@click.option("--allow-dirty", is_flag=True,
              help="Build a work tree with uncommitted changes (recorded in the provenance).")
@signer_option(required=True)
@click.option("--output", "-o", "output", type=OutputPath(),
              default=Path("provenance.intoto.jsonl"), show_default=True,
              help="Where to write the signed provenance (DSSE envelope, JSON Lines).")
@click.option("--bundle", "write_bundle", is_flag=True,
              help="Also write NAME.sigstore.json beside --output: a Sigstore bundle v0.3 of the same "
                   "envelope (always written with --signer sigstore).")
@click.option("--link", "link", type=OutputPath(dir_okay=True), metavar="FILE",
              help="Also write an in-toto link for the step 'build' (materials: the commit's tracked files; "
                   "products: the artefacts), signed by --signer; a directory: written in it as "
                   "build.KEYID.link, the name in-toto-verify looks for. Key signers only.")
@click.option("--identity-token", metavar="TOKEN",
              help="With --signer sigstore: the OIDC identity token (default: ambient detection on GitHub "
                   "Actions, GitLab, Buildkite, Google Cloud) [env: SIGSTORE_ID_TOKEN; safer than the flag, "
                   "which other processes can see].")
@click.option("--trust-config", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="With --signer sigstore: a Sigstore ClientTrustConfig JSON naming a private instance "
                   "(default: Sigstore's public-good instance).")
@click.option("--staging", is_flag=True, help="With --signer sigstore: use Sigstore's staging instance.")
@click.option("--publish", "publish", metavar="STORE",
              help="Also publish artefacts and provenance to a store: a directory or s3://bucket/prefix; or, for "
                   "images, oci://REGISTRY/REPO: each layout's image pushed by digest, the provenance attached as "
                   "an OCI referrer, then the layout's tag.")
@click.option("--no-artifacts", is_flag=True, help="With --publish: publish the provenance only.")
@click.option("--retain-days", type=click.IntRange(min=1, max=36_500), metavar="N",
              help="With --publish s3://...: S3 Object Lock retention of N days (at most 100 years) on the "
                   "attestation objects.")
@click.option("--retention-mode", type=click.Choice(["GOVERNANCE", "COMPLIANCE"]), default="GOVERNANCE",
              show_default=True, help="Object Lock mode for --retain-days.")
@click.option("--builder-id", envvar="ATTEST_BUILDER_ID", metavar="ID",
              help="runDetails.builder.id when no CI platform is recognised [env: ATTEST_BUILDER_ID].")
@click.option("--pass-aws-env", is_flag=True,
              help="Let the build command see AWS and signing credentials (recorded in the provenance).")
@registry_insecure_option
@format_option
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="[-- CMD...]")
def build(artifacts: tuple[str, ...], lockfile_paths: tuple[Path, ...], no_lockfile: bool, allow_dirty: bool,
          signer_uri: str, insecure_key_permissions: bool, output: Path, write_bundle: bool, link: Path | None,
          identity_token: str | None, trust_config: Path | None, staging: bool, publish: str | None,
          retain_days: int | None, retention_mode: str,
          no_artifacts: bool, builder_id: str | None, pass_aws_env: bool, registry_insecure: tuple[str, ...],
          output_format: str, command: tuple[str, ...]) -> None:
    """Run CMD (if given), then attest the artefacts it made.

    Records the git commit, the lockfiles and the sha256 and blake3 of every
    artefact as an in-toto Statement with a SLSA Provenance v1 predicate,
    signs it as a DSSE envelope and writes it to --output. CMD runs without a
    shell, with SOURCE_DATE_EPOCH set to the commit time and without the
    signer's credentials.

    --signer sigstore signs keylessly: a short-lived certificate for the CI
    identity from Sigstore's CA and an entry in its transparency log, written
    as a Sigstore bundle (NAME.sigstore.json) and published to --publish.

    \b
    Examples:
      attest build --signer dev-build.pem --artifact dist/ -- make dist
      attest build --signer sigstore --bundle --artifact dist/ -- make dist
      attest build --signer dev-build.pem --artifact dist/ --link links/ -- make dist
      attest build --signer awskms:alias/dev-build --artifact oci-layout:image:v1 \\
          --publish oci://123456789012.dkr.ecr.eu-west-1.amazonaws.com/app -- make image
    """
    from attest.build import BuildRequest, run_build
    from verify.errors import RequestError

    if retain_days is not None and publish is None:
        raise RequestError("--retain-days locks what --publish s3://... writes; give the store, or leave it out")
    request = BuildRequest(
        signer=signer_uri, artifacts=artifacts, command=command, lockfiles=lockfile_paths, no_lockfile=no_lockfile,
        allow_dirty=allow_dirty, insecure_key_permissions=insecure_key_permissions, output=output,
        bundle=write_bundle, identity_token=identity_token, trust_config=trust_config, staging=staging,
        publish=publish, publish_artifacts=not no_artifacts, retain_days=retain_days, retention_mode=retention_mode,
        builder_id=builder_id, pass_credentials=pass_aws_env, link=link, registry_insecure=registry_insecure)
    outcome = run_build(request, progress=progress, log=lambda text: click.echo(f"attest: {text}", err=True))
    if output_format == "json":
        emit_json(_as_json(outcome))
    else:
        _print(outcome, publish)


def _as_json(outcome: BuildOutcome) -> dict[str, Any]:
    return {"output": str(outcome.output), "commit": outcome.commit, "ref": outcome.ref, "source": outcome.source,
            "dirty": outcome.dirty, "builder": outcome.builder_id,
            "subjects": [{"name": n, "digest": d} for n, d in outcome.subjects],
            "lockfiles": list(outcome.lockfiles), "published": list(outcome.published),
            "bundle": str(outcome.bundle) if outcome.bundle else None,
            **({"link": {"path": str(outcome.link), "keyid": outcome.link_keyid}} if outcome.link else {}),
            **({"keyless": {"identity": outcome.keyless.identity, "issuer": outcome.keyless.issuer,
                            "logIndex": outcome.keyless.log_index}} if outcome.keyless else {})}


def _print(outcome: BuildOutcome, publish: str | None) -> None:
    click.echo(f"signed provenance for {len(outcome.subjects)} artefact(s) of {outcome.commit[:12]} -> "
               f"{outcome.output}")
    if outcome.bundle:
        click.echo(f"Sigstore bundle -> {outcome.bundle}")
    if outcome.link:
        click.echo(f"in-toto link (keyid {outcome.link_keyid}) -> {outcome.link}")
        if outcome.link.name != outcome.link_filename:
            click.echo(f"attest: note: in-toto-verify looks for this link as {outcome.link_filename}", err=True)
    if outcome.keyless:
        click.echo(f"signed keylessly as {outcome.keyless.identity} (issuer {outcome.keyless.issuer}), "
                   f"transparency log index {outcome.keyless.log_index}")
    for name, digests in outcome.subjects:
        click.echo(f"  {printable(name)}  sha256:{digests['sha256']}")
    if publish:
        click.echo(f"published to {publish}")
