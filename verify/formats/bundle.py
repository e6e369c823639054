"""Sigstore bundles, read once into a typed model that every other module uses.

Reading is not trusting: this is what a bundle *claims* (its certificate, key hint, message digest,
log entries). :func:`verify.signers.find_signers` decides what is believed, after the signature (and
for a keyless bundle, the whole bundle, through :mod:`verify.sigstore`) verifies.

Bundle versions 0.1 to 0.3 are read (https://github.com/sigstore/protobuf-specs): the signing
certificate is ``verificationMaterial.certificate`` (v0.3) or the first of
``verificationMaterial.x509CertificateChain.certificates`` (v0.1, v0.2); a key-signed bundle names
its key by ``verificationMaterial.publicKey.hint``. Every base64 field goes through
:func:`verify.formats.encoding.b64decode`.

Log entries, their inclusion proofs and promises are read leniently (``audit`` and ``inspect`` show
what they can of a damaged bundle); what the protobuf-specs' JSON form does not allow (an unknown
field, a missing required one, a number where a uint64 string belongs, bad base64) is recorded in
:attr:`Bundle.defects`, and the keyless verifier refuses a bundle that has any.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from verify.digests import MESSAGE_DIGESTS
from verify.errors import EvidenceRejected, LimitExceeded, MalformedEvidence
from verify.formats import strict_json
from verify.formats.certificate import CertificateClaims, read_claims
from verify.formats.encoding import b64decode, base64_problem
from verify.formats.envelope import Envelope
from verify.limits import MAX_CHAIN_CERTIFICATES, MAX_LOG_ENTRIES, MAX_PROOF_HASHES, MAX_TIMESTAMPS

__all__ = ["MEDIA_TYPES", "Bundle", "InclusionProof", "LogEntry", "MessageSignature", "parse_bundle"]

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

    def algorithm(self, source: str) -> tuple[str, str]:
        """(Sigstore's name, hashlib's name) of the digest this signs: the ``messageDigest`` algorithm,
        ``SHA2_256`` when it names none; :class:`MalformedEvidence` for one Sigstore does not define."""
        written = self.digest_algorithm or "SHA2_256"
        name = MESSAGE_DIGESTS.get(written)
        if name is None:
            raise MalformedEvidence(f"{source}: messageDigest algorithm is {written!r}, not one of "
                                    f"{', '.join(MESSAGE_DIGESTS)}")
        return written, name


@dataclass(frozen=True)
class InclusionProof:
    """A Merkle inclusion proof of a log entry, and the signed checkpoint it leads to (unverified)."""

    log_index: int
    """The entry's index in the tree the proof is for (Rekor v1: in its shard, not the global index)."""
    tree_size: int
    root_hash: bytes
    hashes: tuple[bytes, ...]
    checkpoint: str | None
    """The signed note (``inclusionProof.checkpoint.envelope``), as text."""


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
    signed_entry_timestamp: bytes | None = None
    """The inclusion promise's signature (SET), over the entry's canonical JSON."""
    integrated_seconds: int | None = None
    """``integratedTime`` as written (seconds since the epoch; 0 or absent in Rekor v2), which a SET signs."""
    inclusion_proof: InclusionProof | None = None


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
    chain: tuple[bytes, ...] = ()
    """DER of the certificates after the leaf in ``x509CertificateChain`` (v0.1, v0.2): untrusted, never used
    for path building (only the trusted root is)."""
    material: str = ""
    """Which ``verificationMaterial`` carries the signer: ``certificate``, ``x509CertificateChain`` or
    ``publicKey``."""
    defects: tuple[str, ...] = ()
    """Where the bundle departs from the protobuf-specs JSON form, one sentence each (empty: none)."""

    @property
    def keyless(self) -> bool:
        return self.certificate is not None

    def certificate_claims(self) -> CertificateClaims:
        """What the signing certificate claims, NOT verified; :class:`MalformedEvidence` if unreadable."""
        claims = self._claims
        if isinstance(claims, MalformedEvidence):
            raise MalformedEvidence(str(claims))  # a fresh one each time: a raised exception keeps its traceback
        return claims

    @functools.cached_property
    def _claims(self) -> CertificateClaims | MalformedEvidence:
        """The certificate's claims, read once (audit, find_signers and messages all ask), or why not."""
        from cryptography import x509  # lazy: start-up

        if self.certificate is None:
            return MalformedEvidence("the bundle has no signing certificate")
        try:
            return read_claims(x509.load_der_x509_certificate(self.certificate))
        except ValueError as e:
            return MalformedEvidence(f"its signing certificate cannot be read ({' '.join(str(e).split())[:200]})")

    def describe_signer(self) -> str:
        """Who the bundle says signed it, for messages (unverified)."""
        if self.certificate is None:
            return f"the key with hint {self.public_key_hint!r}"
        try:
            return self.certificate_claims().describe()
        except MalformedEvidence:
            return "an unreadable certificate"

    def logged_sha256(self) -> str | None:
        """The sha256 (hex) the first ``hashedrekord`` log entry names (Rekor v1 or v2), if any."""
        bodies = (entry.body for entry in self.log_entries if entry.kind == "hashedrekord" and entry.body is not None)
        body = next(bodies, None)
        return None if body is None else _hashedrekord_sha256(body)


def _hashedrekord_sha256(body: bytes) -> str | None:
    """The sha256 (hex) a hashedrekord body names: Rekor v1's ``data.hash``, else Rekor v2's digest."""
    try:
        document = strict_json.loads(body, what="the log entry")
    except EvidenceRejected:
        return None
    spec = document.get("spec") if isinstance(document, dict) else None
    if not isinstance(spec, dict):
        return None
    v1 = _inner(spec, "data", "hash")
    if isinstance(v1, dict) and v1.get("algorithm") == "sha256" and isinstance(v1.get("value"), str):
        return _hex_sha256(v1["value"])
    return _v2_sha256(_inner(spec, "hashedRekordV002", "data"))


def _inner(spec: Mapping[str, Any], outer: str, name: str) -> Any:
    """``spec[outer][name]`` when ``spec[outer]`` is an object, else None."""
    value = spec.get(outer)
    return value.get(name) if isinstance(value, dict) else None


def _hex_sha256(written: str) -> str | None:
    """Rekor v1's sha256 value in lower case, if it is 64 hex digits."""
    value = written.lower()
    return value if len(value) == 64 and all(c in "0123456789abcdef" for c in value) else None


def _v2_sha256(data: Any) -> str | None:
    """Rekor v2's ``data.digest`` as hex, if ``data`` is a SHA2_256 digest of 32 bytes."""
    if not isinstance(data, dict) or data.get("algorithm") != "SHA2_256":
        return None
    try:
        digest = b64decode(data.get("digest"), what="the log entry's digest")
    except MalformedEvidence:
        return None
    return digest.hex() if len(digest) == 32 else None


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
    if "dsseEnvelope" in obj and "messageSignature" in obj:  # (the one read would hide the other)
        raise MalformedEvidence(f"{source} is a bundle with both a dsseEnvelope and a messageSignature; a bundle "
                                "holds one or the other")
    if "dsseEnvelope" in obj:
        envelope = Envelope.from_dict(obj["dsseEnvelope"], what=f"{source} dsseEnvelope")
    elif "messageSignature" in obj:
        message = _message(obj["messageSignature"], source)
    else:
        raise MalformedEvidence(f"{source} is a bundle with neither a dsseEnvelope nor a messageSignature")
    if not isinstance(obj.get("verificationMaterial"), dict):
        raise MalformedEvidence(f"{source} is a bundle without verificationMaterial")
    material = obj["verificationMaterial"]
    certificate, chain = _certificate(material, source)
    hint = None
    if certificate is None:
        public_key = material.get("publicKey")
        raw_hint = public_key.get("hint", "") if isinstance(public_key, dict) else None
        if not isinstance(raw_hint, str):
            raise MalformedEvidence(f"{source} has neither a certificate nor a publicKey hint")
        hint = raw_hint
    kinds = [k for k in ("certificate", "x509CertificateChain", "publicKey") if material.get(k) is not None]
    return Bundle(media_type=media_type, version=MEDIA_TYPES[media_type], envelope=envelope, message=message,
                  certificate=certificate, public_key_hint=hint, log_entries=_log_entries(material, source),
                  timestamps=_timestamps(material, source), document=obj, chain=chain,
                  material=kinds[0] if len(kinds) == 1 else "", defects=tuple(_defects(obj, "bundle", "the bundle")))


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


def _certificate(material: Mapping[str, Any], source: str) -> tuple[bytes | None, tuple[bytes, ...]]:
    """The signing certificate's DER and the rest of an ``x509CertificateChain``'s certificates."""
    rest: list[Any] = []
    if "certificate" in material:
        certificate = material["certificate"]
    elif "x509CertificateChain" in material:  # bundles v0.1 and v0.2: a chain, the leaf first
        chain = _obj(material["x509CertificateChain"], f"{source} x509CertificateChain")
        certificates = chain.get("certificates")
        if not isinstance(certificates, list) or not certificates:
            raise MalformedEvidence(f"{source} has an empty certificate chain")
        _count(certificates, MAX_CHAIN_CERTIFICATES, f"{source}: its certificate chain", "certificates")
        certificate, *rest = certificates
    else:
        return None, ()
    raw = certificate.get("rawBytes") if isinstance(certificate, dict) else None
    if raw is None:
        raise MalformedEvidence(f"{source}: its signing certificate has no rawBytes")
    others = []
    for i, other in enumerate(rest, start=2):
        if not isinstance(other, dict) or other.get("rawBytes") is None:
            raise MalformedEvidence(f"{source}: certificate {i} of its chain has no rawBytes")
        others.append(b64decode(other["rawBytes"], what=f"{source} certificate {i} of its chain"))
    return b64decode(raw, what=f"{source} signing certificate"), tuple(others)


def _timestamps(material: Mapping[str, Any], source: str) -> tuple[bytes, ...]:
    """The RFC 3161 timestamps' DER (unverified; :mod:`verify.sigstore` verifies them)."""
    data = material.get("timestampVerificationData")
    stamps = data.get("rfc3161Timestamps") if isinstance(data, dict) else None
    if not isinstance(stamps, list):
        return ()
    _count(stamps, MAX_TIMESTAMPS, source, "signed timestamps")
    found = []
    for stamp in stamps:
        if isinstance(stamp, dict) and stamp.get("signedTimestamp") is not None:
            found.append(b64decode(stamp["signedTimestamp"], what=f"{source} signed timestamp"))
    return tuple(found)


def _log_entries(material: Mapping[str, Any], source: str) -> tuple[LogEntry, ...]:
    """The log entries, read leniently: what departs from the protobuf-specs form is in the bundle's defects."""
    entries = material.get("tlogEntries")
    if not isinstance(entries, list):
        return ()
    _count(entries, MAX_LOG_ENTRIES, source, "transparency log entries")
    return tuple(_log_entry(entry, source) for entry in entries if isinstance(entry, dict))


def _log_entry(entry: Mapping[str, Any], source: str) -> LogEntry:
    """One log entry, each field None (or empty) when it cannot be read."""
    kind = entry.get("kindVersion")
    raw_id = entry.get("logId")
    promise = entry.get("inclusionPromise")
    return LogEntry(kind=_text(kind, "kind"), version=_text(kind, "version"),
                    integrated_time=_integrated_time(entry.get("integratedTime")),
                    body=_lenient_b64(entry.get("canonicalizedBody")),
                    log_index=_uint64(entry.get("logIndex")),
                    log_id=_lenient_b64(raw_id.get("keyId")) if isinstance(raw_id, dict) else None,
                    integrated_seconds=_uint64(entry.get("integratedTime")),
                    promised=isinstance(promise, dict),
                    signed_entry_timestamp=_lenient_b64(promise.get("signedEntryTimestamp"))
                    if isinstance(promise, dict) else None,
                    inclusion_proof=_inclusion_proof(entry.get("inclusionProof"), source))


def _text(value: Any, name: str) -> str:
    """``value[name]`` if ``value`` is an object and that a string, else ""."""
    found = value.get(name) if isinstance(value, dict) else None
    return found if isinstance(found, str) else ""


def _integrated_time(raw_time: Any) -> datetime | None:
    """``integratedTime`` (seconds, as digits) as a datetime, if after the epoch and before year 10000."""
    if not isinstance(raw_time, str | int) or isinstance(raw_time, bool) or not str(raw_time).isdigit():
        return None
    seconds = int(raw_time)
    return datetime.fromtimestamp(seconds, UTC) if 0 < seconds < 253402300800 else None


def _count(items: list[Any], limit: int, where: str, what: str) -> None:
    """:class:`LimitExceeded` if ``items`` has more than ``limit`` elements, before any of them is read."""
    if len(items) > limit:
        raise LimitExceeded(f"{where} holds {len(items)} {what}; at most {limit} are read")


def _uint64(value: Any) -> int | None:
    """A protobuf uint64 as JSON writes it (a string of decimal digits), else None."""
    if isinstance(value, str | int) and not isinstance(value, bool) and str(value).isdigit() \
            and str(value).isascii() and int(value) < 2**64:
        return int(value)
    return None


def _lenient_b64(value: Any) -> bytes | None:
    try:
        return b64decode(value, what="a log entry field")
    except MalformedEvidence:
        return None


def _inclusion_proof(value: Any, source: str) -> InclusionProof | None:
    """The inclusion proof, if it is readable at all (what is wrong with it is in the bundle's defects)."""
    if not isinstance(value, dict):
        return None
    index, size, root = _uint64(value.get("logIndex")), _uint64(value.get("treeSize")), \
        _lenient_b64(value.get("rootHash"))
    raw_hashes = value.get("hashes")
    if isinstance(raw_hashes, list):
        _count(raw_hashes, MAX_PROOF_HASHES, f"{source}: its inclusion proof", "hashes")
    hashes = [_lenient_b64(h) for h in raw_hashes] if isinstance(raw_hashes, list) else None
    checkpoint = value.get("checkpoint")
    note = checkpoint.get("envelope") if isinstance(checkpoint, dict) else None
    if index is None or size is None or root is None or hashes is None or None in hashes:
        return None
    return InclusionProof(log_index=index, tree_size=size, root_hash=root,
                          hashes=tuple(h for h in hashes if h is not None),
                          checkpoint=note if isinstance(note, str) else None)


# --- the protobuf-specs JSON form (sigstore-python reads bundles with the same strictness) ----------

#: message -> {field: (type, required)}; a type is "str", "uint64", "bytes", "[message]" or a message name.
_SCHEMA: dict[str, dict[str, tuple[str, bool]]] = {
    "bundle": {"mediaType": ("str", True), "verificationMaterial": ("material", True),
               "messageSignature": ("messageSignature", False), "dsseEnvelope": ("envelope", False)},
    "material": {"publicKey": ("publicKey", False), "x509CertificateChain": ("chain", False),
                 "certificate": ("certificate", False), "tlogEntries": ("[entry]", True),
                 "timestampVerificationData": ("timestamps", False)},
    "publicKey": {"hint": ("str", False)},
    "chain": {"certificates": ("[certificate]", True)},
    "certificate": {"rawBytes": ("bytes", True)},
    "timestamps": {"rfc3161Timestamps": ("[timestamp]", False)},
    "timestamp": {"signedTimestamp": ("bytes", True)},
    "messageSignature": {"messageDigest": ("digest", False), "signature": ("bytes", True)},
    "digest": {"algorithm": ("str", True), "digest": ("bytes", True)},
    "envelope": {"payload": ("bytes", True), "payloadType": ("str", True), "signatures": ("[signature]", True)},
    "signature": {"sig": ("bytes", True), "keyid": ("str", False)},
    "entry": {"logIndex": ("uint64", True), "logId": ("logId", True), "kindVersion": ("kindVersion", True),
              "integratedTime": ("uint64", False), "inclusionPromise": ("promise", False),
              "inclusionProof": ("proof", False), "canonicalizedBody": ("bytes", True)},
    "logId": {"keyId": ("bytes", True)},
    "kindVersion": {"kind": ("str", True), "version": ("str", True)},
    "promise": {"signedEntryTimestamp": ("bytes", True)},
    "proof": {"logIndex": ("uint64", True), "rootHash": ("bytes", True), "treeSize": ("uint64", True),
              "hashes": ("[bytes]", True), "checkpoint": ("checkpoint", False)},
    "checkpoint": {"envelope": ("str", True)},
}


def _defects(value: Any, kind: str, where: str) -> list[str]:
    """Where ``value`` departs from message ``kind`` of :data:`_SCHEMA`; ``where`` names it in sentences."""
    if kind.startswith("["):
        return _list_defects(value, kind[1:-1], where)
    if kind in _SCALAR_DEFECTS:
        defect = _SCALAR_DEFECTS[kind](value, where)
        return [] if defect is None else [defect]
    return _message_defects(value, kind, where)


def _list_defects(value: Any, kind: str, where: str) -> list[str]:
    """Where the list ``value`` or its items (each a ``kind``) depart from :data:`_SCHEMA`."""
    if not isinstance(value, list):
        return [f"{where} is not a list"]
    return [d for i, item in enumerate(value) for d in _defects(item, kind, f"{where}[{i}]")]


def _str_defect(value: Any, where: str) -> str | None:
    """Why ``value`` is not a JSON string, or None."""
    return None if isinstance(value, str) else f"{where} is not a string"


def _uint64_defect(value: Any, where: str) -> str | None:
    """Why ``value`` is not a uint64 as protobuf JSON writes it (digits in a string), or None."""
    if isinstance(value, str) and _uint64(value) is not None:
        return None
    return f"{where} is not an unsigned 64-bit integer written as a string of digits"


#: scalar type -> why a value is not one (None: it is).
_SCALAR_DEFECTS = {"str": _str_defect, "uint64": _uint64_defect, "bytes": base64_problem}


def _message_defects(value: Any, kind: str, where: str) -> list[str]:
    """Where the object ``value`` departs from message ``kind``: unknown fields first, then field by field."""
    if not isinstance(value, dict):
        return [f"{where} is not a JSON object"]
    fields = _SCHEMA[kind]
    found = [f"{where} has an unknown field {name!r}" for name in value if name not in fields]
    for name, (field_kind, required) in fields.items():
        if value.get(name) is None:
            if required:
                found.append(f"{where} has no {name!r}")
            continue
        found.extend(_defects(value[name], field_kind, f"{where}.{name}"))
    return found
