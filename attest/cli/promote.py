"""``attest promote``: copy an image to another registry with the attestations its gate relied on."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from attest.cli._options import emit_json, format_option, progress, registry_insecure_option

if TYPE_CHECKING:
    from attest.promote import PromoteOutcome


@click.command()
@click.argument("source", metavar="SOURCE")
@click.argument("destination", metavar="DESTINATION")
@click.option("--policy", "policy", required=True, type=click.Path(path_type=Path), metavar="FILE",
              help="The policy the stage's gate applies (see docs/policy.md).")
@click.option("--stage", required=True, metavar="STAGE",
              help="The stage the image is promoted to (prd): its gate must pass at the source, and again at the "
                   "destination before the tag is written.")
@click.option("--key", "keys", multiple=True, metavar="PEM",
              help="With the policy: only signatures by these of its keys count. Repeatable.")
@click.option("--trusted-root", type=click.Path(path_type=Path), metavar="FILE",
              help="Sigstore trusted_root.json for keyless bundles (default: the production root shipped with "
                   "sigstore-python).")
@registry_insecure_option
@format_option
def promote(source: str, destination: str, policy: Path, stage: str, keys: tuple[str, ...],
            trusted_root: Path | None, registry_insecure: tuple[str, ...], output_format: str) -> None:
    """Promote the image SOURCE (oci://REGISTRY/REPO@sha256:... or :TAG) to DESTINATION (oci://REGISTRY/REPO[:TAG]).

    Runs --stage's gate against the evidence in SOURCE's registry; copies the image (every blob and manifest,
    digests unchanged, mounted across repositories of one registry) and every attestation that gate relied on
    (the provenance, earlier stages' VSAs, approvals); runs the gate again at DESTINATION alone, and only then
    writes the tag. After it, attest verify oci://DESTINATION@sha256:... passes with no access to SOURCE. A
    promote that fails half-way leaves no tag; run it again to complete it.

    \b
    Examples:
      attest promote oci://111111111111.dkr.ecr.eu-west-1.amazonaws.com/app@sha256:... \\
          oci://222222222222.dkr.ecr.eu-west-1.amazonaws.com/app:v1.4.2 --policy policy.yaml --stage prd
    """
    from attest.promote import PromoteRequest, run_promote

    outcome = run_promote(PromoteRequest(source=source, destination=destination, policy=policy, stage=stage,
                                         keys=keys, trusted_root=trusted_root, registry_insecure=registry_insecure),
                          warn=lambda text: click.echo(f"attest: warning: {text}", err=True), progress=progress)
    if output_format == "json":
        emit_json(_as_json(outcome))
        return
    copied = outcome.copied
    click.echo(f"PROMOTED {outcome.source}")
    click.echo(f"  to        {outcome.destination}" + (f" (tagged {outcome.tag})" if outcome.tag else ""))
    click.echo(f"  blobs     {copied.uploaded} copied, {copied.mounted} mounted, {copied.present} already there; "
               f"{copied.manifests} manifest(s)")
    click.echo(f"  evidence  {len(outcome.attestations)} attestation(s) attached")
    click.echo(f"  verified  at the destination for {outcome.gate.stage}")


def _as_json(outcome: PromoteOutcome) -> dict[str, Any]:
    copied = outcome.copied
    return {"promoted": True, "source": outcome.source, "destination": outcome.destination, "tag": outcome.tag,
            "blobs": {"uploaded": copied.uploaded, "mounted": copied.mounted, "present": copied.present},
            "manifests": copied.manifests, "attestations": list(outcome.attestations),
            "verdict": outcome.gate.verdict.to_dict()}
