"""``attest inspect``: decode envelopes and bundles for a person to read. Nothing is verified."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from attest.cli._options import emit_json, format_option


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@format_option
def inspect(file: Path, output_format: str) -> None:
    """Decode FILE (.intoto.jsonl or Sigstore bundle): statement, subjects, signatures.

    Everything shown is UNVERIFIED: use 'attest verify' to decide anything.
    Exits 1 when any part of FILE cannot be decoded (after showing the rest).
    """
    from verify.errors import EvidenceRejected, MalformedEvidence
    from verify.formats import strict_json
    from verify.formats.evidence import load_evidence, read_evidence_file

    items: list[dict[str, Any]] = []
    for item in load_evidence(read_evidence_file(file), source=str(file)):
        if isinstance(item, EvidenceRejected):
            items.append({"source": str(file), "error": str(item)})
            continue
        entry: dict[str, Any] = {"source": item.source, "sha256": item.digest, "verified": False}
        # the bundle's JSON as read (a parsed bundle keeps it as .document), for display only
        read: Any = item.bundle
        bundle: Mapping[str, Any] | None = getattr(read, "document", read)
        if bundle is not None:
            entry["bundle"] = bundle.get("mediaType")
        envelope = item.envelope
        if envelope is None:
            entry["messageSignature"] = bundle.get("messageSignature") if bundle is not None else None
        else:
            entry["payloadType"] = envelope.payload_type
            entry["signatures"] = [{"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode()[:32] + "..."}
                                   for s in envelope.signatures]
            try:
                entry["statement"] = strict_json.loads(envelope.payload, what="payload")
            except EvidenceRejected as e:
                entry["statement"] = None
                entry["error"] = str(e)
            _release_order(entry, envelope.payload)
        items.append(entry)
    if output_format == "json":
        emit_json(items)  # json.dumps escapes control characters: hostile text stays inert
    else:
        for entry in items:
            _show(entry)
    failed = [entry["error"] for entry in items if "error" in entry]
    if failed:
        if len(failed) == len(items):
            raise MalformedEvidence(f"nothing in {file} could be decoded: {failed[0]}")
        raise MalformedEvidence(f"{len(failed)} of the {len(items)} entries in {file} could not be decoded, "
                                f"the first: {failed[0]}")


def _release_order(entry: dict[str, Any], payload: bytes) -> None:
    """For a release manifest, ``entry["release"]``: its deployment order and each component's needs, as
    verify.formats.release reads them, or the reason it cannot (shown, not a failure: nothing is verified)."""
    from verify.errors import EvidenceRejected
    from verify.formats.release import RELEASE_V1, read_release
    from verify.formats.statement import parse_statement

    statement = entry.get("statement")
    if not isinstance(statement, dict) or statement.get("predicateType") != RELEASE_V1:
        return
    try:
        release = read_release(parse_statement(payload, what="payload"))
    except EvidenceRejected as e:
        entry["release"] = {"unreadable": str(e)}
        return
    entry["release"] = {"name": release.name, "order": [part.name for part in release.order],
                        "needs": {part.name: list(part.needs) for part in release.components}}


def _show(entry: dict[str, Any]) -> None:
    """Print one decoded entry as text; every string taken from the evidence goes through ``printable``."""
    from verify.formats.encoding import printable

    def show(value: object) -> str:
        return printable(str(value))

    click.echo(f"{show(entry['source'])}  [UNVERIFIED]")
    if "error" in entry:
        click.echo(f"  error: {show(entry['error'])}")
    if "bundle" in entry:
        click.echo(f"  bundle: {show(entry['bundle'])}")
    if "payloadType" in entry:
        click.echo(f"  payloadType: {show(entry['payloadType'])}")
    for sig in entry.get("signatures", []):
        click.echo(f"  signature: keyid={show(sig['keyid']) or '(none)'} sig={sig['sig']}")
    statement = entry.get("statement")
    if isinstance(statement, dict):
        click.echo(f"  _type: {show(statement.get('_type'))}")
        click.echo(f"  predicateType: {show(statement.get('predicateType'))}")
        for subject in statement.get("subject", []) if isinstance(statement.get("subject"), list) else []:
            if isinstance(subject, dict):
                raw = subject.get("digest")
                digests: dict[str, object] = raw if isinstance(raw, dict) else {}
                shown = " ".join(f"{show(k)}:{show(v)}" for k, v in digests.items())
                click.echo(f"  subject: {show(subject.get('name', ''))}  {shown}")
        click.echo("  predicate:")
        # ensure_ascii (the default) spells every control and non-ASCII character as \uXXXX
        for line in json.dumps(statement.get("predicate"), indent=2, sort_keys=True).splitlines():
            click.echo(f"    {line}")
    _show_release(entry.get("release"), show)


def _show_release(release: Mapping[str, Any] | None, show: Callable[[object], str]) -> None:
    """The deployment order of a release manifest, one component a line with what it needs first."""
    if release is None:
        return
    if "unreadable" in release:
        click.echo(f"  release order: unreadable ({show(release['unreadable'])})")
        return
    click.echo("  release order (each component after the ones it needs):")
    for position, name in enumerate(release["order"], start=1):
        needs = release["needs"][name]
        needing = f"  needs {', '.join(show(n) for n in needs)}" if needs else ""
        click.echo(f"    {position}. {show(name)}{needing}")
