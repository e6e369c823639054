"""Sigstore bundles, read once into a typed model that every other module uses.

Reading is not trusting: this is what a bundle *claims* (its certificate, key hint, message digest,
log entries). :func:`verify.signers.find_signers` decides what is believed, after the signature (and
for a keyless bundle, the whole bundle, through :mod:`verify.sigstore`) verifies.

Bundle versions 0.1 to 0.3 are read (https://github.com/sigstore/protobuf-specs): the signing
certificate is ``verificationMaterial.certificate`` (v0.3) or the first of
``verificationMaterial.x509CertificateChain.certificates`` (v0.1, v0.2); a key-signed bundle names
its key by ``verificationMaterial.publicKey.hint``. Every base64 field goes through
:func:`verify.encoding.b64decode`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from verify.encoding import b64decode
from verify.envelope import Envelope
from verify.errors import EvidenceRejected, MalformedEvidence

if TYPE_CHECKING:
    from verify.sigstore import CertificateClaims
    from verify.trust import Identity

__all__ = ["MEDIA_TYPES", "Bundle", "LogEntry", "MessageSignature", "parse_bundle"]

#: Bundle media types attest reads, and their versions.
MEDIA_TYPES = {
    "application/vnd.dev.sigstore.bundle+json;version=0.1": "0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2": "0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3": "0.3",
    "application/vnd.dev.sigstore.bundle.v0.3+json": "0.3",
}


@dataclass(frozen=True)
class MessageSignature:
    """A signature over an artefact's digest (``cosign sign-blob``): no statement, identity only."""

    signature: bytes
    digest_algorithm: str | None
    """The ``messageDigest`` algorithm as written (``SHA2_256``), None when the bundle names none."""
    digest: bytes | None


@dataclass(frozen=True)
class LogEntry:
    """A transparency log entry as the bundle carries it (verified only by :mod:`verify.sigstore`)."""

    kind: str
    version: str
    integrated_time: datetime | None
    body: bytes | None
    log_index: int | None = None
    log_id: bytes | None = None
    """``logId.keyId``: which log (the trusted root names each log by it)."""
    promised: bool = False
    """The entry carries an inclusion promise (a signed entry timestamp), which signs its integrated time."""


@dataclass(frozen=True)
class Bundle:
    media_type: str
    version: str
    envelope: Envelope | None
    message: MessageSignature | None
    certificate: bytes | None
    """DER of the signing (leaf) certificate: a keyless bundle."""
    public_key_hint: str | None
    """``verificationMaterial.publicKey.hint``: a key-signed bundle (an unauthenticated hint)."""
    log_entries: tuple[LogEntry, ...] = ()
    timestamps: tuple[bytes, ...] = ()
    """RFC 3161 signed timestamps (DER), ``verificationMaterial.timestampVerificationData``."""
    document: Mapping[str, Any] = field(default_factory=dict, repr=False)
    """The JSON as read, for display only (``attest inspect``); nothing decides on it."""

    @property
    def keyless(self) -> bool:
        return self.certificate is not None

    def certificate_claims(self) -> CertificateClaims:
        """What the signing certificate claims, NOT verified; :class:`MalformedEvidence` if unreadable."""
        from cryptography import x509

        from verify.sigstore import read_claims

        if self.certificate is None:
            raise MalformedEvidence("the bundle has no signing certificate")
        try:
            return read_claims(x509.load_der_x509_certificate(self.certificate))
        except ValueError as e:
            raise MalformedEvidence(f"its signing certificate cannot be read ({' '.join(str(e).split())[:200]})") \
                from e

    def claimed_identities(self, identities: Sequence[Identity]) -> tuple[str, ...]:
        """Names of the ``identities`` whose Sigstore entries the certificate claims to satisfy (unverified)."""
        from verify.sigstore import mismatch

        if self.certificate is None:
            return ()
        try:
            claims = self.certificate_claims()
        except MalformedEvidence:
            return ()
        return tuple(i.name for i in identities if any(mismatch(claims, pinned) is None for pinned in i.sigstore))

    def describe_signer(self) -> str:
        """Who the bundle says signed it, for messages (unverified)."""
        if self.certificate is None:
            return f"the key with hint {self.public_key_hint!r}"
        try:
            return self.certificate_claims().describe()
        except MalformedEvidence:
            return "an unreadable certificate"

    @property
    def integrated_time(self) -> datetime | None:
        """The first log entry's integrated time (trustworthy only once the bundle verified)."""
        return self.log_entries[0].integrated_time if self.log_entries else None

    def logged_sha256(self) -> str | None:
        """The sha256 (hex) the first ``hashedrekord`` log entry names (Rekor v1 or v2), if any."""
        from verify import _json

        for entry in self.log_entries:
            if entry.kind != "hashedrekord" or entry.body is None:
                continue
            try:
                body = _json.loads(entry.body, what="the log entry")
            except EvidenceRejected:
                return None
            spec = body.get("spec") if isinstance(body, dict) else None
            if not isinstance(spec, dict):
                return None
            v1 = spec.get("data", {}).get("hash") if isinstance(spec.get("data"), dict) else None
            if isinstance(v1, dict) and v1.get("algorithm") == "sha256" and isinstance(v1.get("value"), str):
                value: str = v1["value"].lower()
                return value if len(value) == 64 and all(c in "0123456789abcdef" for c in value) else None
            v2 = spec.get("hashedRekordV002")
            data = v2.get("data") if isinstance(v2, dict) else None
            if isinstance(data, dict) and data.get("algorithm") == "SHA2_256":
                try:
                    digest = b64decode(data.get("digest"), what="the log entry's digest")
                except MalformedEvidence:
                    return None
                return digest.hex() if len(digest) == 32 else None
            return None
        return None


def _obj(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise MalformedEvidence(f"{what} is not a JSON object")
    return value


def parse_bundle(obj: Mapping[str, Any], *, source: str) -> Bundle:
    """The bundle ``obj`` (decoded JSON with a ``mediaType``), or :class:`MalformedEvidence` naming ``source``."""
    media_type = obj.get("mediaType")
    if not isinstance(media_type, str) or media_type not in MEDIA_TYPES:
        raise MalformedEvidence(f"{source} is a bundle of unknown media type {media_type!r}")
    envelope = message = None
    if "dsseEnvelope" in obj:
        envelope = Envelope.from_dict(obj["dsseEnvelope"], what=f"{source} dsseEnvelope")
    elif "messageSignature" in obj:
        message = _message(obj["messageSignature"], source)
    else:
        raise MalformedEvidence(f"{source} is a bundle with neither a dsseEnvelope nor a messageSignature")
    if not isinstance(obj.get("verificationMaterial"), dict):
        raise MalformedEvidence(f"{source} is a bundle without verificationMaterial")
    material = obj["verificationMaterial"]
    certificate = _certificate(material, source)
    hint = None
    if certificate is None:
        public_key = material.get("publicKey")
        raw_hint = public_key.get("hint", "") if isinstance(public_key, dict) else None
        if not isinstance(raw_hint, str):
            raise MalformedEvidence(f"{source} has neither a certificate nor a publicKey hint")
        hint = raw_hint
    return Bundle(media_type=media_type, version=MEDIA_TYPES[media_type], envelope=envelope, message=message,
                  certificate=certificate, public_key_hint=hint, log_entries=_log_entries(material, source),
                  timestamps=_timestamps(material, source), document=obj)


def _message(value: Any, source: str) -> MessageSignature:
    signature = _obj(value, f"{source} messageSignature")
    found = signature.get("messageDigest")
    algorithm = digest = None
    if found is not None:
        found = _obj(found, f"{source} messageDigest")
        algorithm = found.get("algorithm")
        if not isinstance(algorithm, str):
            raise MalformedEvidence(f"{source} messageDigest has no algorithm")
        digest = b64decode(found.get("digest"), what=f"{source} messageDigest")
    return MessageSignature(signature=b64decode(signature.get("signature"), what=f"{source} messageSignature"),
                            digest_algorithm=algorithm, digest=digest)


def _certificate(material: Mapping[str, Any], source: str) -> bytes | None:
    if "certificate" in material:
        certificate = material["certificate"]
    elif "x509CertificateChain" in material:  # bundles v0.1 and v0.2: a chain, the leaf first
        chain = _obj(material["x509CertificateChain"], f"{source} x509CertificateChain")
        certificates = chain.get("certificates")
        if not isinstance(certificates, list) or not certificates:
            raise MalformedEvidence(f"{source} has an empty certificate chain")
        certificate = certificates[0]
    else:
        return None
    raw = certificate.get("rawBytes") if isinstance(certificate, dict) else None
    if raw is None:
        raise MalformedEvidence(f"{source}: its signing certificate has no rawBytes")
    return b64decode(raw, what=f"{source} signing certificate")


def _timestamps(material: Mapping[str, Any], source: str) -> tuple[bytes, ...]:
    """The RFC 3161 timestamps' DER (unverified; :mod:`verify.sigstore` verifies them)."""
    data = material.get("timestampVerificationData")
    stamps = data.get("rfc3161Timestamps") if isinstance(data, dict) else None
    if not isinstance(stamps, list):
        return ()
    found = []
    for stamp in stamps:
        if isinstance(stamp, dict) and stamp.get("signedTimestamp") is not None:
            found.append(b64decode(stamp["signedTimestamp"], what=f"{source} signed timestamp"))
    return tuple(found)


def _log_entries(material: Mapping[str, Any], source: str) -> tuple[LogEntry, ...]:
    """The log entries, read leniently: a field attest does not understand is left to sigstore-python."""
    entries = material.get("tlogEntries")
    if not isinstance(entries, list):
        return ()
    found = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        kind = entry.get("kindVersion")
        kind_name = kind.get("kind") if isinstance(kind, dict) else None
        version = kind.get("version") if isinstance(kind, dict) else None
        when = None
        raw_time = entry.get("integratedTime")
        if isinstance(raw_time, str | int) and not isinstance(raw_time, bool) and str(raw_time).isdigit():
            seconds = int(raw_time)
            if 0 < seconds < 253402300800:  # before year 10000
                when = datetime.fromtimestamp(seconds, UTC)
        try:
            body = b64decode(entry.get("canonicalizedBody"), what=f"{source} log entry") \
                if entry.get("canonicalizedBody") is not None else None
        except MalformedEvidence:
            body = None
        raw_id = entry.get("logId")
        try:
            log_id = b64decode(raw_id.get("keyId"), what=f"{source} log id") if isinstance(raw_id, dict) else None
        except MalformedEvidence:
            log_id = None
        raw_index = entry.get("logIndex")
        index = int(raw_index) if isinstance(raw_index, str | int) and not isinstance(raw_index, bool) \
            and str(raw_index).isdigit() and len(str(raw_index)) <= 20 else None
        found.append(LogEntry(kind=kind_name if isinstance(kind_name, str) else "",
                              version=version if isinstance(version, str) else "", integrated_time=when, body=body,
                              log_index=index, log_id=log_id, promised=isinstance(entry.get("inclusionPromise"), dict)))
    return tuple(found)
