"""``attest release``: bind the artefacts and provenances of several stacks into one signed manifest."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from attest.cli._options import OutputPath, emit_json, format_option, signer_option


@click.group()
def release() -> None:
    """Release manifests: several stacks (infra, app, ...) promoted as one unit."""


@release.command()
@click.option("--name", required=True, help="The release name, e.g. 2026.11.28-1.")
@click.option("--component", "components", multiple=True, required=True, metavar="NAME=PROVENANCE",
              help="A stack and its provenance (.intoto.jsonl written by attest build). Repeatable.")
@signer_option(required=True)
@click.option("--output", "-o", type=OutputPath(),
              default=Path("release.intoto.jsonl"), show_default=True)
@click.option("--store", metavar="STORE", help="Also publish the manifest under every component artefact.")
@format_option
def create(name: str, components: tuple[str, ...], signer_uri: str, insecure_key_permissions: bool,
           output: Path, store: str | None, output_format: str) -> None:
    """Sign a release manifest naming every component's artefacts, provenance digest and commit.

    'attest verify --release MANIFEST' then verifies all components, all or nothing.
    """
    from attest.signing import sign_statement, write_and_publish
    from attest.summaries import Component, release_statement
    from verify.errors import MalformedEvidence
    from verify.formats.evidence import Evidence, load_evidence, read_evidence_file
    from verify.formats.statement import parse_statement, read_provenance

    parts = []
    seen: set[str] = set()
    for spec in components:
        label, sep, file = spec.partition("=")
        if not sep or not label or not file:
            raise click.BadParameter(f"{spec!r} is not NAME=PROVENANCE", param_hint="--component")
        if label in seen:
            raise click.BadParameter(f"component {label!r} is named twice", param_hint="--component")
        seen.add(label)
        items = [e for e in load_evidence(read_evidence_file(Path(file)), source=file) if isinstance(e, Evidence)]
        if len(items) != 1 or items[0].envelope is None:
            raise MalformedEvidence(f"{file} must hold exactly one provenance envelope")
        statement = parse_statement(items[0].envelope.payload, what=f"{file} statement")
        prov = read_provenance(statement)
        parts.append(Component(name=label, subjects=[(s.name, s.digest) for s in statement.subjects],
                               provenance_sha256=items[0].digest, source=prov.source_uri, commit=prov.commit))
    document = release_statement(name=name, components=parts, created_at=datetime.now(UTC))
    line = sign_statement(document, signer_uri=signer_uri, insecure_key_permissions=insecure_key_permissions)
    artifacts = {d["sha256"]: d for c in parts for _, d in c.subjects if "sha256" in d}
    published = write_and_publish(line, output=output, store=store, kind="release",
                                  artifacts=[artifacts[sha] for sha in sorted(artifacts)])
    if output_format == "json":
        emit_json({"output": str(output), "name": name, "published": published,
                   "components": [{"name": c.name, "commit": c.commit, "artifacts": len(c.subjects)} for c in parts]})
    else:
        click.echo(f"release {name}: {len(parts)} component(s) -> {output}")
        for c in parts:
            click.echo(f"  {c.name}: {len(c.subjects)} artefact(s) @ {c.commit}")
