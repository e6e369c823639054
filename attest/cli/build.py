"""``attest build``: run the build, hash the artefacts, sign SLSA provenance, publish."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from attest.cli._options import emit_json, format_option, progress, signer_option

F = TypeVar("F", bound=Callable[..., Any])

@click.command(context_settings={"allow_interspersed_args": False})
@click.option("--artifact", "-a", "artifacts", multiple=True, required=True, metavar="PATH",
              help="A file, a directory (every regular file below) or a glob. Repeatable.")
@click.option("--lockfile", "lockfile_paths", multiple=True, metavar="PATH",
              help="A lockfile to bind (default: well-known lockfiles at the repository root). Repeatable.")
@click.option("--no-lockfile", is_flag=True, help="Build without binding any lockfile.")
@click.option("--allow-dirty", is_flag=True,
              help="Build a work tree with uncommitted changes (recorded in the provenance).")
@signer_option(required=True)
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("provenance.intoto.jsonl"), show_default=True,
              help="Where to write the signed provenance (DSSE envelope, JSON Lines).")
@click.option("--bundle", "write_bundle", is_flag=True,
              help="Also write NAME.sigstore.json beside --output: a Sigstore bundle v0.3 of the same "
                   "envelope (always written with --signer sigstore).")
@click.option("--identity-token", envvar="SIGSTORE_ID_TOKEN", metavar="TOKEN",
              help="With --signer sigstore: the OIDC identity token (default: ambient detection on GitHub "
                   "Actions, GitLab, Buildkite, Google Cloud) [env: SIGSTORE_ID_TOKEN; safer than the flag, "
                   "which other processes can see].")
@click.option("--trust-config", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="With --signer sigstore: a Sigstore ClientTrustConfig JSON naming a private instance "
                   "(default: Sigstore's public-good instance).")
@click.option("--staging", is_flag=True, help="With --signer sigstore: use Sigstore's staging instance.")
@click.option("--publish", "publish", metavar="STORE",
              help="Also publish artefacts and provenance to a store: a directory or s3://bucket/prefix.")
@click.option("--no-artifacts", is_flag=True, help="With --publish: publish the provenance only.")
@click.option("--retain-days", type=click.IntRange(min=1), metavar="N",
              help="With --publish s3://...: S3 Object Lock retention of N days on the attestation objects.")
@click.option("--retention-mode", type=click.Choice(["GOVERNANCE", "COMPLIANCE"]), default="GOVERNANCE",
              show_default=True, help="Object Lock mode for --retain-days.")
@click.option("--builder-id", envvar="ATTEST_BUILDER_ID", metavar="ID",
              help="runDetails.builder.id when no CI platform is recognised [env: ATTEST_BUILDER_ID].")
@click.option("--pass-aws-env", is_flag=True,
              help="Let the build command see AWS and signing credentials (recorded in the provenance).")
@format_option
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="[-- CMD...]")
def build(artifacts: tuple[str, ...], lockfile_paths: tuple[str, ...], no_lockfile: bool, allow_dirty: bool,
          signer_uri: str, insecure_key_permissions: bool, output: Path, write_bundle: bool,
          identity_token: str | None, trust_config: Path | None, staging: bool, publish: str | None,
          retain_days: int | None, retention_mode: str,
          no_artifacts: bool, builder_id: str | None, pass_aws_env: bool, output_format: str,
          command: tuple[str, ...]) -> None:
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
    """
    from importlib.metadata import version

    from attest import collect
    from attest.bundle import bundle_path, key_bundle
    from attest.errors import BuildRefused, CommandFailed
    from attest.provenance import BuildRecord, statement, validate_with_in_toto
    from attest.signers import KEYLESS, from_uri, sign_envelope
    from verify import _json
    from verify.digests import hash_file
    from verify.envelope import INTOTO_PAYLOAD_TYPE

    env = dict(os.environ)
    started = datetime.now(UTC)
    git = collect.git_facts(Path.cwd(), env=env)
    if git.dirty and not allow_dirty:
        raise BuildRefused(f"the work tree {git.root} has uncommitted changes to tracked files; commit them or "
                           "pass --allow-dirty (recorded in the provenance)")
    epoch = collect.source_date_epoch(env, commit_time=git.commit_time)
    platform = collect.detect_platform(env)
    if platform.resolved_commit and platform.resolved_commit != git.commit:
        raise BuildRefused(f"{platform.name} says it checked out {platform.resolved_commit} but HEAD is "
                           f"{git.commit}; the provenance would name the wrong commit")
    locks = [] if no_lockfile else collect.lockfiles(git.root, lockfile_paths)
    if no_lockfile and lockfile_paths:
        raise click.UsageError("--no-lockfile and --lockfile exclude each other")
    if not locks and not no_lockfile:
        raise BuildRefused(f"no lockfile found at {git.root}; name one with --lockfile or pass --no-lockfile")
    keyless = None
    signer = None
    if signer_uri == KEYLESS:
        from attest.signers.sigstore import KeylessSigner

        if trust_config is not None and staging:
            raise click.UsageError("--trust-config and --staging exclude each other")
        keyless = KeylessSigner(identity_token=identity_token, trust_config=trust_config, staging=staging)
        keyless.prepare()  # before the build: no token or no trust root fails fast
    else:
        _refuse_keyless_options(click.get_current_context())
        signer = from_uri(signer_uri, insecure_permissions=insecure_key_permissions)

    if command:
        click.echo(f"attest: running {' '.join(command)} (SOURCE_DATE_EPOCH={epoch})", err=True)
        if not pass_aws_env:
            from attest._secrets import hide_from_children

            hide_from_children(collect.is_credential)  # /proc/<our pid>/environ still shows them
        try:
            done = subprocess.run(list(command), env=collect.command_environment(
                env, source_date_epoch=epoch, pass_credentials=pass_aws_env), stdout=sys.stderr, check=False)
        except OSError as e:
            raise CommandFailed(f"cannot run {command[0]}: {e.strerror}; no attestation was written", 127) from e
        if done.returncode != 0:
            raise CommandFailed(f"build command {' '.join(command)} failed with exit status {done.returncode}; "
                                "no attestation was written", done.returncode)
    found = collect.expand_artifacts(artifacts, root=git.root)
    subjects = []
    for artifact in found:
        size = artifact.path.stat().st_size
        with progress(f"hashing {artifact.name}", size) as advance:
            subjects.append((artifact.name, hash_file(artifact.path, ("sha256", "blake3"), progress=advance)))
    finished = datetime.now(UTC)

    record = BuildRecord(git=git, platform=platform, lockfiles=locks, command=command,
                         artifact_patterns=artifacts, subjects=subjects, source_date_epoch=epoch,
                         started=started, finished=finished,
                         invocation_id=platform.invocation_id or f"urn:uuid:{uuid.uuid4()}",
                         builder_id=builder_id, pass_credentials=pass_aws_env, attest_version=version("attest"))
    document = statement(record)
    try:
        validate_with_in_toto(document)
    except ValueError as e:  # a bug in what we wrote, not the user's input
        raise RuntimeError(f"the provenance attest wrote does not validate against in-toto's schema: {e}") from e
    payload = _json.dumps_canonical(document)
    bundle: bytes | None = None
    signed_as: dict[str, object] = {}
    if keyless is not None:
        result = keyless.sign_statement(payload)  # checks what it made against the trusted root
        line, bundle = result.envelope_line, result.bundle
        signed_as = {"identity": result.identity, "issuer": result.issuer, "logIndex": result.log_index}
    else:
        assert signer is not None
        envelope = sign_envelope(signer, payload_type=INTOTO_PAYLOAD_TYPE, payload=payload)  # checks itself
        if write_bundle:
            bundle = key_bundle(envelope, hint=signer.keyid)
        line = envelope.to_json_line()

    from attest._atomic import write_atomic

    bundle_file: Path | None = None
    if bundle is not None:
        bundle_file = bundle_path(output)
        write_atomic(bundle_file, bundle)  # first: when --output exists, so does its bundle
    write_atomic(output, line)
    published: list[str] = []
    if publish:
        from attest.stores import from_uri as store_from_uri

        store = store_from_uri(publish, retain_days=retain_days, retention_mode=retention_mode)
        # a keyless envelope verifies only with its certificate and log entry: publish the bundle's line
        stored = bundle if keyless is not None and bundle is not None else line
        for artifact, (name, digests) in zip(found, subjects, strict=True):
            if not no_artifacts:
                size = artifact.path.stat().st_size
                with progress(f"publishing {name}", size) as advance:
                    published.append(store.put_artifact(digests["sha256"], name, artifact.path,
                                                        **({"progress": advance} if advance else {})))
            published.append(store.put_attestation(digests["sha256"], "provenance", stored))

    if output_format == "json":
        emit_json({"output": str(output), "commit": git.commit, "ref": git.ref, "source": git.repo_uri,
                   "dirty": git.dirty, "builder": document["predicate"]["runDetails"]["builder"]["id"],
                   "subjects": [{"name": n, "digest": d} for n, d in subjects],
                   "lockfiles": [lock.path for lock in locks], "published": published,
                   "bundle": str(bundle_file) if bundle_file else None,
                   **({"keyless": signed_as} if signed_as else {})})
    else:
        click.echo(f"signed provenance for {len(subjects)} artefact(s) of {git.commit[:12]} -> {output}")
        if bundle_file:
            click.echo(f"Sigstore bundle -> {bundle_file}")
        if signed_as:
            click.echo(f"signed keylessly as {signed_as['identity']} (issuer {signed_as['issuer']}), "
                       f"transparency log index {signed_as['logIndex']}")
        for name, digests in subjects:
            click.echo(f"  {name}  sha256:{digests['sha256']}")
        if publish:
            click.echo(f"published to {publish}")


def _refuse_keyless_options(ctx: click.Context) -> None:
    """--identity-token, --trust-config and --staging on the command line mean nothing to a key signer."""
    from click.core import ParameterSource

    for name, flag in (("identity_token", "--identity-token"), ("trust_config", "--trust-config"),
                       ("staging", "--staging")):
        if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE:
            raise click.UsageError(f"{flag} applies to --signer sigstore only")
