"""``attest approve``: a person's signed "this artefact may go to STAGE" (the seed's PO sign-off)."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from pathlib import Path

import click

from attest.cli._options import OutputPath, emit_json, format_option, signer_option


@click.command()
@click.argument("artifact", metavar="ARTIFACT")
@signer_option(required=True)
@click.option("--policy", "policy_path", required=True, type=click.Path(path_type=Path), metavar="FILE",
              help="The policy of the stage: the stage must require approvals, and --signer be one of its approvers.")
@click.option("--stage", required=True, help="The stage this approval is for (a stage of the policy).")
@click.option("--reason", default="", help="Why (a ticket, a change request).")
@click.option("--approver", default=None, help="Who approves (default: the login name); informational only.")
@click.option("--output", "-o", type=OutputPath(),
              default=Path("approval.intoto.jsonl"), show_default=True)
@click.option("--store", metavar="STORE", help="Also publish the approval to a store (directory or s3://).")
@format_option
def approve(artifact: str, signer_uri: str, insecure_key_permissions: bool, policy_path: Path, stage: str,
            reason: str, approver: str | None, output: Path, store: str | None, output_format: str) -> None:
    """Sign an approval of ARTIFACT (a file or sha256:HEX) for STAGE.

    A policy's stages.<stage>.require-approvals: {count: N, signed-by: [...]}
    makes 'attest verify --stage STAGE' demand N distinct approvers; the
    approval is refused here unless STAGE requires approvals and --signer is
    one of its approvers.
    """
    from attest.signers import from_uri
    from attest.signing import artifact_digests, sign_with, write_and_publish
    from attest.summaries import approval_statement
    from verify.gate import approver as approver_of
    from verify.policy_file import load_policy
    from verify.trust import load_public_key

    policy = load_policy(policy_path)
    signer = from_uri(signer_uri, insecure_permissions=insecure_key_permissions)
    approver_of(policy, stage, load_public_key(signer.public_key_pem(), name=signer_uri))
    name, digests = artifact_digests(artifact)
    who = approver or getpass.getuser()
    document = approval_statement(subject_name=name, digests=digests, stage=stage, approver=who, reason=reason,
                                  approved_at=datetime.now(UTC))
    line = sign_with(document, signer)
    published = write_and_publish(line, output=output, store=store, kind="approval", artifacts=[digests])
    if output_format == "json":
        emit_json({"output": str(output), "stage": stage, "approver": who, "digest": digests,
                   "published": published})
    else:
        click.echo(f"{who} approved {name} (sha256:{digests['sha256'][:16]}...) for {stage} -> {output}")
