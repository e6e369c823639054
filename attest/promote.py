"""Promotion that keeps the evidence: an image and the attestations its gate relied on, copied to another registry.

This is ``attest promote`` without click. :func:`run_promote`, in this order:

  (1) the source image resolved ONCE (a tag to its digest); the destination named (a repository, a tag)
  (2) the gate for the stage, against the source registry's evidence (:func:`attest.gate.run_gate`): nothing
      is copied for an image the stage would refuse
  (3) the image copied: every blob (skipped when present, mounted across repositories of one registry,
      else streamed) and every manifest, by digest: the digest stays the image's name
  (4) every attestation the gate relied on (the provenance, the earlier stages' VSAs, approvals) attached to
      the image in the destination, as referrers
  (5) the gate again, at the destination alone: what prd's own pipeline will run there must pass
  (6) only then, the tag

A promote that fails half-way leaves no tag at the destination (untagged blobs and manifests are harmless);
running it again completes it, each step being idempotent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from attest.gate import GateOutcome
    from attest.oci_layout import Image
    from attest.registries.images import Copied, Progress
    from verify.formats.evidence import Evidence
    from verify.formats.oci import Manifest

__all__ = ["PromoteOutcome", "PromoteRequest", "run_promote"]


@dataclass(frozen=True)
class PromoteRequest:
    source: str
    """``oci://REGISTRY/REPO@sha256:...`` (or ``:TAG``, resolved once)."""
    destination: str
    """``oci://REGISTRY/REPO[:TAG]``."""
    policy: Path
    stage: str
    keys: tuple[str, ...] = ()
    trusted_root: Path | None = None
    registry_insecure: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class PromoteOutcome:
    source: str
    """The source image, by digest."""
    destination: str
    """The destination image, by digest."""
    tag: str | None
    copied: Copied
    attestations: tuple[str, ...]
    """The referrers attached at the destination."""
    gate: GateOutcome
    """The gate that passed at the destination."""


def _named(evidence: Evidence, image: Image) -> list[Manifest]:
    """The image's manifests an attestation is attached to at the destination: the top one (the gate passed for
    it), and each platform's manifest its statement also names (a provenance names them all), so that one
    platform's image verifies by its own digest there too."""
    from verify.errors import EvidenceRejected

    try:
        named = {s.digest.get("sha256") for s in evidence.statement().subjects}
    except EvidenceRejected:
        named = set()
    return [image.manifest, *(m for m, _ in image.children if m.digest.removeprefix("sha256:") in named)]


def _checked_trusted_root(request: PromoteRequest) -> None:
    from verify.sigstore.trusted_root import checked_trusted_root

    if request.trusted_root is not None:
        checked_trusted_root(request.trusted_root)


def run_promote(request: PromoteRequest, *, warn: Callable[[str], None] | None = None,
                progress: Progress | None = None) -> PromoteOutcome:
    from attest.gate import GateRequest, check_gate, run_gate
    from attest.registries.images import Registries, attach, copy_image, resolve
    from attest.registries.reference import parse_image
    from verify.errors import EvidenceRejected, RequestError
    from verify.formats.oci import ARTIFACT_BUNDLE, ARTIFACT_DSSE
    from verify.request import GateRules

    def asked(artifact: str) -> GateRequest:
        return GateRequest(artifact=artifact, policy=request.policy, keys=request.keys,
                           trusted_root=request.trusted_root, rules=GateRules(stage=request.stage),
                           registry_insecure=request.registry_insecure)

    # a usage error (an unknown stage, a rule a promote cannot hold), a bad policy or trusted root asks nothing of a
    # registry; the policy and the keys are read once, for both gates
    prepared = check_gate(asked(request.source), warn)
    _checked_trusted_root(request)
    source = parse_image(request.source, what="the source")
    target = parse_image(request.destination, what="the destination")
    if target.digest is not None:
        raise RequestError(f"the destination {request.destination} names a digest; give the repository and, if "
                           "you want one, a tag: the image keeps its digest")
    if (source.registry, source.repository) == (target.registry, target.repository):
        raise RequestError("the source and the destination are one repository; promote copies to another one")

    def gate(artifact: str) -> GateOutcome:
        return run_gate(asked(artifact), warn=warn, prepared=prepared)

    registries = Registries(insecure=request.registry_insecure)
    image = resolve(registries, source)  # (1) once
    source_at, target_at = source.at(image.digest), target.at(image.digest)

    passed = gate(str(source_at))  # (2)
    copied = copy_image(registries, source_at, target_at, image, progress=progress)  # (3)
    attached = []
    for evidence in passed.relied:  # (4)
        kind = ARTIFACT_BUNDLE if evidence.bundle is not None else ARTIFACT_DSSE
        for manifest in _named(evidence, image):
            attached.append(attach(registries, target_at, manifest.descriptor(), evidence.raw,
                                   artifact_type=kind).uri)
    try:
        there = gate(str(target_at))  # (5)
    except EvidenceRejected as e:
        raise EvidenceRejected(f"the image was copied to {target.name} but does not pass there ({e}); it was not "
                               "tagged") from e
    if target.tag:  # (6)
        registries(target.registry).put_manifest(target.repository, target.tag, image.data,
                                                 image.manifest.media_type)
    return PromoteOutcome(source=str(source_at), destination=str(target_at), tag=target.tag, copied=copied,
                          attestations=tuple(attached), gate=there)
