"""``attest approve``: a person's signed "this artefact may go to STAGE" (the seed's PO sign-off)."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from pathlib import Path

import click

from attest.cli._options import emit_json, format_option, signer_option


@click.command()
@click.argument("artifact", metavar="ARTIFACT")
@signer_option(required=True)
@click.option("--stage", default="prd", show_default=True, help="The stage this approval is for.")
@click.option("--reason", default="", help="Why (a ticket, a change request).")
@click.option("--approver", default=None, help="Who approves (default: the login name); informational only.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("approval.intoto.jsonl"), show_default=True)
@click.option("--store", metavar="STORE", help="Also publish the approval to a store (directory or s3://).")
@format_option
def approve(artifact: str, signer_uri: str, insecure_key_permissions: bool, stage: str, reason: str,
            approver: str | None, output: Path, store: str | None, output_format: str) -> None:
    """Sign an approval of ARTIFACT (a file or sha256:HEX) for STAGE.

    A policy's stages.<stage>.require-approvals: {count: N, signed-by: [...]}
    makes 'attest verify --stage STAGE' demand N distinct approvers.
    """
    from attest.cli._signing import artifact_digests, sign_statement, write_and_publish
    from attest.summaries import approval_statement

    name, digests = artifact_digests(artifact)
    who = approver or getpass.getuser()
    document = approval_statement(subject_name=name, digests=digests, stage=stage, approver=who, reason=reason,
                                  approved_at=datetime.now(UTC))
    line = sign_statement(document, signer_uri=signer_uri, insecure_key_permissions=insecure_key_permissions)
    published = write_and_publish(line, output=output, store=store, kind="approval", digests=[digests["sha256"]])
    if output_format == "json":
        emit_json({"output": str(output), "stage": stage, "approver": who, "digest": digests,
                   "published": published})
    else:
        click.echo(f"{who} approved {name} (sha256:{digests['sha256'][:16]}...) for {stage} -> {output}")
