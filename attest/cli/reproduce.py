"""``attest reproduce``: rebuild an attested commit and compare every artefact with the provenance."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from attest.cli._options import OutputPath, emit_json, format_option, signer_option
from verify.formats.encoding import printable

if TYPE_CHECKING:
    from attest.reproduce import DiffReport, Reproduction
    from attest.signers import Signer
    from verify.policy import Policy
    from verify.trust import Identity


@click.command()
@click.argument("attestation", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--repo", "repository", metavar="PATH|URL",
              help="The repository to clone (default: the git repository of the current directory).")
@click.option("--key", "keys", multiple=True, type=click.Path(dir_okay=False, path_type=Path), metavar="PEM",
              help="A trusted public key (PEM) that must have signed the provenance. Repeatable.")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="A policy whose provenance signers are trusted (see docs/policy.md).")
@click.option("--diff", "diff_dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Write diffoscope reports (HTML and text) for each differing artefact into DIR.")
@click.option("--originals", "originals", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="With --diff: where the original artefacts are, by subject name (default: --repo when it "
                   "is a local directory, else the current directory).")
@click.option("--emit", "emit_path", type=OutputPath(), metavar="FILE",
              help="Sign a reproduction attestation (DSSE, JSON Lines) into FILE; needs --signer.")
@signer_option()
@click.option("--rebuilder-id", envvar="ATTEST_REBUILDER_ID", metavar="ID",
              help="rebuilder.id of the reproduction attestation (default: the CI builder, else "
                   "attest:rebuilder:<hostname>) [env: ATTEST_REBUILDER_ID].")
@click.option("--keep", is_flag=True, help="Keep the temporary work tree and say where it is.")
@format_option
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="[-- CMD...]")
def reproduce(attestation: Path, repository: str | None, keys: tuple[Path, ...], policy_path: Path | None,
              diff_dir: Path | None, originals: Path | None, emit_path: Path | None, signer_uri: str | None,
              insecure_key_permissions: bool, rebuilder_id: str | None, keep: bool, output_format: str,
              command: tuple[str, ...]) -> None:
    """Rebuild the commit ATTESTATION's provenance names and compare every artefact.

    Clones the repository into a fresh temporary directory, checks out the
    commit, confirms the lockfiles' digests, runs the recorded build command
    (or CMD) with the recorded SOURCE_DATE_EPOCH in a clean environment (PATH,
    HOME, LC_ALL=C.UTF-8, TZ=UTC and nothing else), then hashes every subject.
    Exits 0 when every artefact is reproduced bit for bit, 1 otherwise.

    \b
    Example:
      attest reproduce provenance.intoto.jsonl --repo . --key dev-build.pub.pem
      attest reproduce provenance.intoto.jsonl --key dev-build.pub.pem --diff diffs/ \\
          --emit reproduction.intoto.jsonl --signer rebuilder.pem -- make dist
    """
    from attest.cli._exit import REJECTED, fail
    from attest.reproduce import (
        current_repository,
        default_rebuilder_id,
        load_provenance,
        workspace,
    )
    from attest.reproduce import reproduce as rebuild

    if emit_path is not None and not signer_uri:
        raise click.UsageError("--emit needs --signer URI: the reproduction attestation is signed")
    if signer_uri and emit_path is None:
        raise click.UsageError("--signer is only used with --emit FILE")
    if originals is not None and diff_dir is None:
        raise click.UsageError("--originals is only used with --diff DIR")
    policy = None
    if policy_path is not None:  # (read once: the trusted signers, and the key files --emit never replaces)
        from verify.policy_file import load_policy

        policy = load_policy(policy_path)
    identities = _identities(keys, policy)
    if emit_path is not None and policy is not None:  # (a key file the policy reads is never replaced)
        from attest.signing import output_apart

        output_apart(emit_path, option="--emit", policy=policy)
    signer = None
    if emit_path is not None and signer_uri:
        from attest.signers import from_uri

        signer = from_uri(signer_uri, insecure_permissions=insecure_key_permissions)

    # (1) the provenance, its signature checked first when a trust anchor is given
    loaded = load_provenance(attestation, identities)
    if identities is None:
        click.echo(f"attest: warning: the provenance in {attestation} is unverified (no --key or --policy); "
                   "the comparison says nothing about who built the original", err=True)
    local_repo: Path | None = None
    if repository is None:
        local_repo = current_repository(Path.cwd())
        source = str(local_repo)
    elif Path(repository).exists():
        local_repo = Path(repository).resolve()
        source = str(local_repo)
    else:
        source = repository

    with workspace(keep=keep) as work:
        if keep:
            click.echo(f"attest: keeping the work tree in {work / 'src'}", err=True)
        result = rebuild(loaded, repository=source, work=work, command=command)
        reports: list[DiffReport] | None = None
        if diff_dir is not None and not result.reproducible:
            reports = _diff(result, diff_dir, originals or local_repo or Path.cwd())

    emitted = None
    if emit_path is not None and signer is not None:
        emitted = _emit(result, emit_path, signer, rebuilder_id or default_rebuilder_id(os.environ))

    if output_format == "json":
        document = result.to_dict()
        document["diff"] = [r.to_dict() for r in reports] if reports is not None else None  # (None: no --diff)
        document["emitted"] = str(emitted) if emitted else None
        emit_json(document)
    else:
        _print(result, reports, emitted)
    if not result.reproducible:
        bad = [s for s in result.subjects if s.status != "match"]
        named = ", ".join(f"{_shown(s.name)} {s.status}" for s in bad[:5]) + (", ..." if len(bad) > 5 else "")
        fail(f"{len(bad)} of {len(result.subjects)} artefact(s) of {result.commit[:12]} did not reproduce "
             f"({named})", REJECTED)


def _identities(keys: tuple[Path, ...], policy: Policy | None) -> list[Identity] | None:
    """The identities trusted to sign the provenance, or None when no trust anchor was given."""
    if not keys and policy is None:
        return None
    from verify.trust import Identity, load_public_key_file

    identities: list[Identity] = []
    if policy is not None:
        identities.extend(policy.signers())
    if keys:
        identities.append(Identity(name="--key", keys=tuple(load_public_key_file(k) for k in keys)))
    return identities


def _diff(result: Reproduction, diff_dir: Path, originals: Path) -> list[DiffReport]:
    from attest.reproduce import diff_artifacts, find_diffoscope

    program = find_diffoscope()
    if program is None:
        click.echo("attest: diffoscope is not installed (pip install diffoscope, or apt-get install "
                   "diffoscope); no diff reports were written", err=True)
        return []
    return diff_artifacts(result, program=program, originals=originals, out=diff_dir)


def _emit(result: Reproduction, path: Path, signer: Signer, rebuilder_id: str) -> Path:
    from attest._atomic import write_atomic
    from attest.reproduce import reproduction_statement
    from attest.signers import sign_envelope
    from verify.formats import strict_json
    from verify.formats.envelope import INTOTO_PAYLOAD_TYPE

    document = reproduction_statement(result, rebuilder_id=rebuilder_id)
    envelope = sign_envelope(signer, payload_type=INTOTO_PAYLOAD_TYPE, payload=strict_json.dumps_canonical(document))
    write_atomic(path, envelope.to_json_line())
    return path


def _shown(name: str) -> str:
    """A subject name safe to print: names come from the provenance and may hold control characters."""
    if not name:
        return "(unnamed)"
    return name if name.isprintable() else repr(name)


def _print(result: Reproduction, reports: list[DiffReport] | None, emitted: Path | None) -> None:
    verified = f"signed by {result.signer}" if result.signer else "UNVERIFIED"
    matched = sum(s.status == "match" for s in result.subjects)
    header = (f"{result.verdict}: {matched} of {len(result.subjects)} artefact(s) of {result.commit[:12]} "
              f"reproduced (provenance {verified}, SOURCE_DATE_EPOCH={result.source_date_epoch})")
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        styles = {"match": "green", "differs": "red", "missing": "yellow", "refused": "red"}
        table = Table(title=header, title_justify="left")
        for column in ("artefact", "result", "expected sha256", "rebuilt sha256", "note"):
            table.add_column(column, overflow="fold")
        for s in result.subjects:
            table.add_row(Text(_shown(s.name)), Text(s.status, style=styles[s.status]),
                          Text(s.expected.get("sha256", "")[:16]), Text(s.rebuilt.get("sha256", "")[:16]),
                          Text(printable(s.reason or "")))
        Console().print(table)
    else:
        click.echo(header)
        width = max([len(_shown(s.name)) for s in result.subjects] + [8])
        for s in result.subjects:
            line = f"  {s.status:<8} {_shown(s.name):<{width}}"
            if s.status == "differs":
                line += f"  expected sha256:{s.expected.get('sha256', '?')[:16]}  rebuilt sha256:" \
                        f"{s.rebuilt.get('sha256', '?')[:16]}"
            elif s.reason:
                line += f"  ({printable(s.reason)})"
            click.echo(line.rstrip())
    for report in reports or []:
        where = f"{report.html} {report.text}" if report.html else report.note
        click.echo(f"  diff {_shown(report.name)}: {where}")
    if emitted:
        click.echo(f"signed reproduction attestation ({result.verdict}) -> {emitted}")
