"""``attest release``: bind the artefacts and provenances of several stacks into one signed manifest."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from attest.cli._options import OutputPath, emit_json, format_option, signer_option
from verify.formats.encoding import printable

if TYPE_CHECKING:
    from attest.summaries import Component


@click.group()
def release() -> None:
    """Release manifests: several stacks (infra, app, ...) promoted as one unit."""


@release.command()
@click.option("--name", required=True, help="The release name, e.g. 2026.11.28-1.")
@click.option("--component", "components", multiple=True, required=True, metavar="NAME=PROVENANCE",
              help="A stack and its provenance (.intoto.jsonl written by attest build). Repeatable.")
@click.option("--needs", "needs", multiple=True, metavar="NAME=NAME",
              help="The first component needs the second deployed before it (app=infra). Repeatable.")
@signer_option(required=True)
@click.option("--output", "-o", type=OutputPath(),
              default=Path("release.intoto.jsonl"), show_default=True)
@click.option("--store", metavar="STORE", help="Also publish the manifest under every component artefact.")
@format_option
def create(name: str, components: tuple[str, ...], needs: tuple[str, ...], signer_uri: str,
           insecure_key_permissions: bool, output: Path, store: str | None, output_format: str) -> None:
    """Sign a release manifest naming every component's artefacts, provenance digest and commit, and the
    order they are deployed in (--needs).

    'attest verify --release MANIFEST' then verifies all components, all or nothing.
    """
    from attest.signing import output_apart, sign_statement, write_and_publish
    from attest.summaries import release_statement
    from verify.formats.release import deployment_order

    output_apart(output, option="--output", store=store)
    files = _component_files(components)
    wanted = _needs(needs, list(files))
    try:  # the one check of the order, as the reader makes it: before any provenance is read
        order = deployment_order(wanted)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--needs") from e
    parts = [_component(label, file, needs=wanted[label]) for label, file in files.items()]
    document = release_statement(name=name, components=parts, created_at=datetime.now(UTC))
    _readable(document)
    line = sign_statement(document, signer_uri=signer_uri, insecure_key_permissions=insecure_key_permissions)
    artifacts = {d["sha256"]: d for c in parts for _, d in c.subjects if "sha256" in d}
    published = write_and_publish(line, output=output, store=store, kind="release",
                                  artifacts=[artifacts[sha] for sha in sorted(artifacts)])
    if output_format == "json":
        emit_json({"output": str(output), "name": name, "published": published, "order": list(order),
                   "components": [{"name": c.name, "commit": c.commit, "artifacts": len(c.subjects),
                                   "needs": sorted(c.needs)} for c in parts]})
    else:
        click.echo(f"release {name}: {len(parts)} component(s) -> {output}")
        for c in parts:
            needing = f" (needs {', '.join(sorted(c.needs))})" if c.needs else ""
            click.echo(f"  {printable(c.name)}: {len(c.subjects)} artefact(s) @ {printable(str(c.commit))}"
                       f"{printable(needing)}")
        if any(c.needs for c in parts):
            click.echo(f"  order: {' -> '.join(order)}")


def _component_files(specs: Sequence[str]) -> dict[str, str]:
    """Each --component NAME=PROVENANCE as name -> file, in the order given; each name once."""
    files: dict[str, str] = {}
    for spec in specs:
        label, sep, file = spec.partition("=")
        if not sep or not label or not file:
            raise click.BadParameter(f"{spec!r} is not NAME=PROVENANCE", param_hint="--component")
        if label in files:
            raise click.BadParameter(f"component {label!r} is named twice", param_hint="--component")
        files[label] = file
    return files


def _needs(specs: Sequence[str], names: Sequence[str]) -> dict[str, list[str]]:
    """Each component's needs from --needs A=B (A needs B first), both names of --component ones."""
    needs: dict[str, list[str]] = {label: [] for label in names}
    for spec in specs:
        label, sep, need = spec.partition("=")
        if not sep or not label or not need:
            raise click.BadParameter(f"{spec!r} is not NAME=NAME (a component, then the one it needs first)",
                                     param_hint="--needs")
        unknown = next((n for n in (label, need) if n not in needs), None)
        if unknown is not None:
            raise click.BadParameter(f"{unknown!r} in {spec!r} is not one of the --component names "
                                     f"({', '.join(names)})", param_hint="--needs")
        needs[label].append(need)
    return needs


def _component(label: str, file: str, *, needs: Sequence[str]) -> Component:
    """The component ``label``: the artefacts, source and commit of the one provenance envelope in ``file``."""
    from attest.summaries import Component
    from verify.errors import MalformedEvidence
    from verify.formats.evidence import Evidence, load_evidence, read_evidence_file
    from verify.formats.statement import parse_statement, read_provenance

    items = [e for e in load_evidence(read_evidence_file(Path(file)), source=file) if isinstance(e, Evidence)]
    if len(items) != 1 or items[0].envelope is None:
        raise MalformedEvidence(f"{file} must hold exactly one provenance envelope")
    statement = parse_statement(items[0].envelope.payload, what=f"{file} statement")
    prov = read_provenance(statement)
    return Component(name=label, subjects=[(s.name, s.digest) for s in statement.subjects],
                     provenance_sha256=items[0].digest, source=prov.source_uri, commit=prov.commit,
                     needs=tuple(needs))


def _readable(document: dict[str, Any]) -> None:
    """Refuse, before signing, a manifest its own reader (:func:`verify.formats.release.read_release`, as every
    gate reads it) would refuse: one whose artefacts a provenance names without a sha256, say."""
    import json

    from verify.errors import EvidenceRejected, PolicyViolation
    from verify.formats.release import read_release
    from verify.formats.statement import parse_statement

    try:
        read_release(parse_statement(json.dumps(document).encode(), what="the release manifest"))
    except EvidenceRejected as e:
        raise PolicyViolation(f"the release manifest would be refused by every gate that reads it ({e}); it is "
                              "not signed") from e
