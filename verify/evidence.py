"""Reading evidence files: ``.intoto.jsonl`` (one DSSE envelope a line) and Sigstore bundles.

Reading is not trusting: this module only finds envelopes and bundles in
bytes, with strict limits. Signatures are checked by :mod:`verify.verifier`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from verify import _json
from verify.envelope import Envelope
from verify.errors import InputError, LimitExceeded, MalformedEvidence
from verify.limits import MAX_ENVELOPES_PER_FILE, MAX_EVIDENCE_BYTES

__all__ = ["BUNDLE_MEDIA_TYPES", "Evidence", "load_evidence", "read_evidence_file"]

BUNDLE_MEDIA_TYPES = {
    "application/vnd.dev.sigstore.bundle+json;version=0.1": "0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2": "0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3": "0.3",
    "application/vnd.dev.sigstore.bundle.v0.3+json": "0.3",
}


@dataclass(frozen=True)
class Evidence:
    """One envelope or bundle, as found (not yet verified)."""

    source: str
    """Where it was found: ``FILE`` or ``FILE:LINE``."""
    digest: str
    """sha256 of its bytes as stored: what a VSA's ``inputAttestations`` names."""
    envelope: Envelope | None
    """The DSSE envelope (None for a message-signature bundle)."""
    bundle: Mapping[str, Any] | None = field(default=None, repr=False)
    """The Sigstore bundle it came in, if any."""
    raw: bytes = field(default=b"", repr=False)

    @property
    def has_certificate(self) -> bool:
        if self.bundle is None:
            return False
        material = self.bundle.get("verificationMaterial", {})
        return isinstance(material, dict) and ("certificate" in material or "x509CertificateChain" in material)


def _from_object(obj: Any, *, source: str, raw: bytes) -> Evidence:
    digest = hashlib.sha256(raw).hexdigest()
    if isinstance(obj, dict) and "mediaType" in obj:
        media_type = obj["mediaType"]
        if not isinstance(media_type, str) or media_type not in BUNDLE_MEDIA_TYPES:
            raise MalformedEvidence(f"{source} is a bundle of unknown media type {media_type!r}")
        envelope = None
        if "dsseEnvelope" in obj:
            envelope = Envelope.from_dict(obj["dsseEnvelope"], what=f"{source} dsseEnvelope")
        elif "messageSignature" not in obj:
            raise MalformedEvidence(f"{source} is a bundle with neither a dsseEnvelope nor a messageSignature")
        if not isinstance(obj.get("verificationMaterial"), dict):
            raise MalformedEvidence(f"{source} is a bundle without verificationMaterial")
        return Evidence(source=source, digest=digest, envelope=envelope, bundle=obj, raw=raw)
    return Evidence(source=source, digest=digest, envelope=Envelope.from_dict(obj, what=source), raw=raw)


def load_evidence(data: bytes, *, source: str) -> list[Evidence | MalformedEvidence]:
    """Every envelope or bundle in ``data``; a line that does not parse is returned as its error.

    A file is either one JSON document (a bundle or an envelope, possibly
    pretty-printed) or JSON Lines with one document a line.
    """
    if len(data) > MAX_EVIDENCE_BYTES:
        raise LimitExceeded(f"{source} is {len(data)} bytes; at most {MAX_EVIDENCE_BYTES} are read")
    if not data.strip():
        raise MalformedEvidence(f"{source} is empty; expected DSSE envelopes or a Sigstore bundle")
    stripped = data.strip()
    lines = stripped.split(b"\n")
    if len(lines) > 1:
        try:
            whole = _json.loads(stripped, what=source)
        except MalformedEvidence:
            whole = None
        if whole is not None:
            return [_one(whole, source=source, raw=stripped)]
    else:
        return [_parse(stripped, source=source)]
    found: list[Evidence | MalformedEvidence] = []
    for number, line in enumerate(data.split(b"\n"), start=1):  # numbered as in the file
        if not line.strip():
            continue
        if len(found) >= MAX_ENVELOPES_PER_FILE:
            raise LimitExceeded(f"{source} holds more than {MAX_ENVELOPES_PER_FILE} envelopes")
        found.append(_parse(line.strip(), source=f"{source}:{number}"))
    return found


def _parse(raw: bytes, *, source: str) -> Evidence | MalformedEvidence:
    try:
        return _from_object(_json.loads(raw, what=source), source=source, raw=raw)
    except MalformedEvidence as e:
        return e


def _one(obj: Any, *, source: str, raw: bytes) -> Evidence | MalformedEvidence:
    try:
        return _from_object(obj, source=source, raw=raw)
    except MalformedEvidence as e:
        return e


def read_evidence_file(path: Path) -> bytes:
    """Read an evidence file, refusing one over the size limit before reading it."""
    try:
        size = path.stat().st_size
        if size > MAX_EVIDENCE_BYTES:
            raise LimitExceeded(f"{path} is {size} bytes; at most {MAX_EVIDENCE_BYTES} are read")
        with path.open("rb") as f:
            return f.read(MAX_EVIDENCE_BYTES + 1)
    except OSError as e:
        raise InputError(f"cannot read attestation {path}: {e.strerror}") from e
