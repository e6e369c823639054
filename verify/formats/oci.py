"""OCI images and their referrers, as bytes and descriptors: what a registry said, checked before it is believed.

A registry is a store a stranger may run. Everything it returns is read here, from bytes the edge
(:mod:`attest.registries`) fetched, and believed only once it hashes to the digest it was asked for:

* :func:`parse_manifest`: an image manifest or an image index (OCI, or Docker's schema 2, which
  registries still serve), at most :data:`MAX_OCI_MANIFEST_BYTES`, whose bytes hash to the digest
  requested (a tag has no digest to check; the edge resolves it once and names the digest after);
* :func:`referrers_of`: the referrers of an image, from the referrers API's answer or the referrers
  tag schema's index (an image index tagged ``sha256-<hex>``), at most :data:`MAX_REFERRERS`;
* :func:`evidence_layers`: the layers of one referrer that hold attestations (a DSSE envelope, a
  Sigstore bundle), after checking that the referrer's ``subject`` is this image (a referrer of another
  image is refused, whatever index listed it);
* :func:`cosign_layers`: the same for cosign's ``sha256-<hex>.att`` manifest, which has no subject
  (the tag names the image) and one DSSE envelope per layer;
* :func:`check_blob`: a blob's bytes against its descriptor (size first, then digest).

Only sha256 digests are accepted: the digest is the artefact's name in attest's provenance.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from verify.errors import DigestMismatch, LimitExceeded, MalformedEvidence
from verify.formats import strict_json
from verify.formats.encoding import printable
from verify.limits import MAX_OCI_MANIFEST_BYTES, MAX_REFERRERS

__all__ = ["ACCEPT_MANIFESTS", "ARTIFACT_BUNDLE", "ARTIFACT_DSSE", "EMPTY_CONFIG", "INDEX_TYPES", "MANIFEST_TYPES",
           "MEDIA_EMPTY", "MEDIA_OCI_INDEX", "MEDIA_OCI_MANIFEST", "Descriptor", "Manifest", "check_blob",
           "cosign_layers", "cosign_tag", "evidence_layers", "parse_manifest", "referrers_of", "referrers_tag",
           "sha256_digest"]

MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = frozenset({MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST})
INDEX_TYPES = frozenset({MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST})
#: The Accept header for a manifest of any kind attest reads.
ACCEPT_MANIFESTS = ", ".join(sorted(MANIFEST_TYPES | INDEX_TYPES))
#: The OCI 1.1 empty descriptor's media type: the config of an artifact that has none.
MEDIA_EMPTY = "application/vnd.oci.empty.v1+json"
#: A DSSE envelope (attest's provenance, VSAs, approvals; cosign's attestations): artifact and layer type.
ARTIFACT_DSSE = "application/vnd.dsse.envelope.v1+json"
#: A Sigstore bundle, as ``gh attestation`` attaches one.
ARTIFACT_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
_EVIDENCE_TYPES = frozenset({ARTIFACT_DSSE, ARTIFACT_BUNDLE, "application/vnd.dev.sigstore.bundle+json;version=0.3"})
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
#: The empty JSON object ``{}`` as the config blob of an artifact manifest.
EMPTY_CONFIG = b"{}"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def referrers_tag(digest: str) -> str:
    """The referrers tag schema's tag for an image's referrers: ``sha256-<hex>``."""
    return digest.replace(":", "-")


def cosign_tag(digest: str) -> str:
    """cosign's tag for an image's attestations: ``sha256-<hex>.att``."""
    return referrers_tag(digest) + ".att"


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: what a manifest says about a blob or another manifest."""

    media_type: str
    digest: str
    size: int
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Mapping[str, str] | None = None

    @classmethod
    def from_dict(cls, value: Any, *, what: str) -> Descriptor:
        if not isinstance(value, dict):
            raise MalformedEvidence(f"{what} is not a descriptor (a JSON object)")
        media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
        if not isinstance(media_type, str) or not media_type:
            raise MalformedEvidence(f"{what} has no mediaType")
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise MalformedEvidence(f"{what} has digest {printable(str(digest))[:80]!r}; attest reads sha256:<hex> "
                                    "digests only")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise MalformedEvidence(f"{what} has no valid size")
        platform = value.get("platform")
        if platform is not None and not isinstance(platform, dict):
            raise MalformedEvidence(f"{what} has a platform that is not an object")
        return cls(media_type=media_type, digest=digest, size=size, artifact_type=_artifact_type_of(value, what),
                   annotations=_annotations(value, what),
                   platform=None if platform is None else {k: v for k, v in platform.items() if isinstance(v, str)})

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.artifact_type is not None:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = dict(self.platform)
        return out


@dataclass(frozen=True)
class Manifest:
    """An image manifest or an image index, read from bytes that hash to :attr:`digest`."""

    digest: str
    media_type: str
    size: int
    config: Descriptor | None
    layers: tuple[Descriptor, ...]
    manifests: tuple[Descriptor, ...]
    """An index's manifests (empty for an image manifest)."""
    subject: Descriptor | None
    artifact_type: str | None
    annotations: Mapping[str, str]

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    def descriptor(self) -> Descriptor:
        return Descriptor(media_type=self.media_type, digest=self.digest, size=self.size,
                          artifact_type=self.artifact_type)


def _artifact_type_of(document: Mapping[str, Any], what: str) -> str | None:
    artifact_type = document.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise MalformedEvidence(f"{what} has an artifactType that is not text")
    return artifact_type


def _annotations(document: Mapping[str, Any], what: str) -> dict[str, str]:
    annotations = document.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
        raise MalformedEvidence(f"{what} has annotations that are not text")
    return annotations


def _descriptors(document: Mapping[str, Any], key: str, *, what: str, most: int) -> tuple[Descriptor, ...]:
    items = document.get(key, [])
    if not isinstance(items, list):
        raise MalformedEvidence(f"{what}'s {key} is not a list")
    if len(items) > most:
        raise LimitExceeded(f"{what} lists {len(items)} {key}; attest reads at most {most}")
    return tuple(Descriptor.from_dict(item, what=f"{what}'s {key}[{n}]") for n, item in enumerate(items))


def _document(data: bytes, *, what: str, digest: str | None) -> dict[str, Any]:
    """The manifest's JSON object, once its size and (when asked for by digest) its digest hold."""
    if len(data) > MAX_OCI_MANIFEST_BYTES:
        raise LimitExceeded(f"{what} is over {MAX_OCI_MANIFEST_BYTES} bytes; attest reads manifests of at most that "
                            "size")
    if digest is not None and sha256_digest(data) != digest:
        raise DigestMismatch(f"the registry answered {what} with bytes whose digest is {sha256_digest(data)}, not "
                             f"the {digest} asked for; the registry is broken or tampered with")
    document = strict_json.loads(data, what=what)
    if not isinstance(document, dict):
        raise MalformedEvidence(f"{what} is not a JSON object")
    if document.get("schemaVersion") != 2:
        raise MalformedEvidence(f"{what} is not an OCI or Docker schema 2 manifest (schemaVersion is not 2)")
    return document


def parse_manifest(data: bytes, *, what: str, digest: str | None = None, content_type: str | None = None,
                   most: int = MAX_REFERRERS) -> Manifest:
    """A manifest or index from ``data``: at most :data:`MAX_OCI_MANIFEST_BYTES`, hashing to ``digest`` when one
    was requested, of a known media type (its own ``mediaType``, else the registry's ``Content-Type``)."""
    document = _document(data, what=what, digest=digest)
    media_type = document.get("mediaType") or (content_type or "").split(";")[0].strip()
    if not isinstance(media_type, str) or media_type not in MANIFEST_TYPES | INDEX_TYPES:  # (a list is unhashable)
        raise MalformedEvidence(f"{what} has media type {printable(str(media_type))[:80]!r}, which is not an image "
                                "manifest or index")
    index = media_type in INDEX_TYPES
    subject = document.get("subject")
    return Manifest(
        digest=sha256_digest(data), media_type=media_type, size=len(data),
        config=None if index else Descriptor.from_dict(document.get("config"), what=f"{what}'s config"),
        layers=() if index else _descriptors(document, "layers", what=what, most=most),
        manifests=_descriptors(document, "manifests", what=what, most=most) if index else (),
        subject=None if subject is None else Descriptor.from_dict(subject, what=f"{what}'s subject"),
        artifact_type=_artifact_type_of(document, what), annotations=_annotations(document, what))


def referrers_of(index: Manifest, *, subject: str) -> tuple[Descriptor, ...]:
    """The referrers an index (the referrers API's answer, or the tag schema's index) lists for ``subject``."""
    if not index.is_index:
        raise MalformedEvidence(f"the referrers of {subject} are not listed as an image index")
    return index.manifests


def _kind(manifest: Manifest) -> str | None:
    if manifest.artifact_type:
        return manifest.artifact_type
    return manifest.config.media_type if manifest.config is not None else None


def evidence_layers(referrer: Manifest, *, subject: str) -> tuple[Descriptor, ...]:
    """The layers of ``referrer`` that hold attestations, once its ``subject`` is checked to be ``subject``;
    () for a referrer of another kind (an SBOM, a signature: not evidence attest reads)."""
    if referrer.subject is None or referrer.subject.digest != subject:
        named = referrer.subject.digest if referrer.subject is not None else "no image"
        raise DigestMismatch(f"referrer {referrer.digest} listed for {subject} names {named} as its subject; the "
                             "registry's referrers index is wrong or tampered with")
    if _kind(referrer) not in _EVIDENCE_TYPES:
        return ()
    return tuple(layer for layer in referrer.layers if layer.media_type in _EVIDENCE_TYPES)


def cosign_layers(manifest: Manifest) -> tuple[Descriptor, ...]:
    """The DSSE envelopes of cosign's ``.att`` manifest (one per layer); other layers are left alone."""
    return tuple(layer for layer in manifest.layers if layer.media_type == ARTIFACT_DSSE)


def check_blob(data: bytes, descriptor: Descriptor, *, what: str) -> bytes:
    """``data`` if it is exactly the blob ``descriptor`` names: its size, then its digest."""
    if len(data) != descriptor.size:
        raise DigestMismatch(f"{what} is {len(data)} bytes where its descriptor says {descriptor.size}; the registry "
                             "is broken or tampered with")
    actual = sha256_digest(data)
    if actual != descriptor.digest:
        raise DigestMismatch(f"{what} hashes to {actual}, not {descriptor.digest} as its descriptor says; the "
                             "registry is broken or tampered with")
    return data
