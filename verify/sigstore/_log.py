"""Steps (6) and (7) of the keyless verifier (:mod:`verify.sigstore._native`): the bundle's entry is in a
log of the trusted root (inclusion promise, inclusion proof to a checkpoint the log signed), and the
entry's body records this very bundle."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from verify.digests import DigestSet
from verify.errors import EvidenceRejected, LimitExceeded, MalformedEvidence
from verify.formats import strict_json
from verify.formats.bundle import InclusionProof
from verify.formats.encoding import b64decode, format_time
from verify.limits import MAX_NOTE_SIGNATURES
from verify.sigstore._parsed import Parsed, b64, ec_details, invalid, message_digest
from verify.sigstore.times import PROMISE, SignedTime, inside, show
from verify.sigstore.trusted_root import LogKey, TrustedRoot

if TYPE_CHECKING:  # types only: cryptography is imported where a certificate is compared
    from cryptography.x509 import Certificate

__all__ = ["log_verifies", "verify_entry_body", "verify_log_entry"]

_SIGNATURE_LINE = re.compile(r"\u2014 (\S+) (\S+)")


def verify_log_entry(parsed: Parsed, root: TrustedRoot, times: Sequence[SignedTime]) -> None:
    """(6) The entry is in a trusted log: its inclusion promise and/or inclusion proof verify with that log's key."""
    source, entry = parsed.source, parsed.entry
    logs = [log for log in root.tlogs if log.log_id == entry.log_id]
    if not logs:
        raise invalid(source, "its log entry is from a transparency log the trusted root does not name")
    log = logs[0]
    # only a signed time dates the entry: its integrated time if a promise signs it, else the timestamps'
    promised = [t.at for t in times if t.by == PROMISE]
    when = promised[0] if promised else min(t.at for t in times)
    if not inside(when, log.window):
        raise invalid(source, f"its transparency log entry is dated {format_time(when)}, outside the validity of "
                               f"that log's key in the trusted root ({show(log.window)})")
    assert entry.body is not None and entry.log_index is not None and entry.log_id is not None  # parse saw to it
    if entry.promised:  # a promise is verified whenever there is one: of the integrated time as written
        assert entry.signed_entry_timestamp is not None
        canonical = json.dumps({"body": b64(entry.body), "integratedTime": entry.integrated_seconds or 0,
                                "logID": entry.log_id.hex(), "logIndex": entry.log_index},
                               sort_keys=True, separators=(",", ":")).encode()
        parsed.charge()
        if not log_verifies(log, entry.signed_entry_timestamp, canonical):
            raise invalid(source, "its log entry's inclusion promise (signed entry timestamp) does not verify with "
                                   "the log's key")
    if entry.inclusion_proof is not None:
        _verify_inclusion_proof(parsed, entry.body, entry.inclusion_proof, log)


def _verify_inclusion_proof(parsed: Parsed, body: bytes, proof: InclusionProof, log: LogKey) -> None:
    """The proof leads from the entry's leaf hash to the root hash of a checkpoint the log signed."""
    source = parsed.source
    if proof.checkpoint is None:
        raise MalformedEvidence(f"{source}: its inclusion proof has no checkpoint")
    origin_size, root_hash = _verify_checkpoint(parsed, proof.checkpoint, log)
    if (origin_size, root_hash) != (proof.tree_size, proof.root_hash):
        raise invalid(source, "its inclusion proof is for another tree than the checkpoint the log signed")
    if proof.log_index >= proof.tree_size:
        raise invalid(source, f"its inclusion proof's index {proof.log_index} is outside a tree of size "
                               f"{proof.tree_size}")
    inner = (proof.log_index ^ (proof.tree_size - 1)).bit_length()
    border = bin(proof.log_index >> inner).count("1")
    if len(proof.hashes) != inner + border:
        raise invalid(source, f"its inclusion proof has {len(proof.hashes)} hashes, {inner + border} expected")
    node = hashlib.sha256(b"\x00" + body).digest()
    for level, sibling in enumerate(proof.hashes[:inner]):
        pair = sibling + node if (proof.log_index >> level) & 1 else node + sibling
        node = hashlib.sha256(b"\x01" + pair).digest()
    for sibling in proof.hashes[inner:]:
        node = hashlib.sha256(b"\x01" + sibling + node).digest()
    if node != proof.root_hash:
        raise invalid(source, "its inclusion proof does not lead to the checkpoint's root hash")


def _verify_checkpoint(parsed: Parsed, note: str, log: LogKey) -> tuple[int, bytes]:
    """(tree size, root hash) of the signed note ``note``, once the log's one signature on it verifies.

    As a signed note is read (golang.org/x/mod/sumdb/note): at most :data:`MAX_NOTE_SIGNATURES` signature
    lines, counted before any is decoded, and one signature per key: a second line with the log's key
    hint is malformed, never a second verification. Other keys' lines (witnesses) are not verified.
    """
    source = parsed.source
    if note.count("\n\n") != 1:
        raise MalformedEvidence(f"{source}: its checkpoint is not a signed note (one blank line must part the "
                                "body from the signatures)")
    text, signatures = note.split("\n\n")
    lines = text.split("\n")
    if len(lines) < 3 or not lines[0] or not lines[1].isdigit() or not lines[1].isascii():
        raise MalformedEvidence(f"{source}: its checkpoint does not start with an origin, a tree size and a root hash")
    root_hash = b64decode(lines[2], what=f"{source}: its checkpoint's root hash")
    if not signatures.endswith("\n"):
        raise MalformedEvidence(f"{source}: its checkpoint's signatures do not end with a newline")
    count = signatures.count("\n")
    if count > MAX_NOTE_SIGNATURES:
        raise LimitExceeded(f"{source}: its checkpoint has {count} signature lines; at most {MAX_NOTE_SIGNATURES} "
                            "are read")
    hint, tried = log.log_id[:4], 0
    for line in signatures[:-1].split("\n"):
        match = _SIGNATURE_LINE.fullmatch(line)
        if match is None:
            raise MalformedEvidence(f"{source}: its checkpoint has a line that is not a signature")
        signed = b64decode(match[2], what=f"{source}: a checkpoint signature")
        if len(signed) < 5:
            raise MalformedEvidence(f"{source}: its checkpoint has a signature of {len(signed)} bytes")
        if signed[:4] != hint:
            continue  # a witness's cosignature: not what attest relies on
        if tried:
            raise MalformedEvidence(f"{source}: its checkpoint carries the log's signature more than once (a signed "
                                    "note has one signature per key)")
        tried += 1
        parsed.charge()
        if not log_verifies(log, signed[4:], text.encode("utf-8") + b"\n"):
            raise invalid(source, "its checkpoint's signature does not verify with the log's key")
    if not tried:
        raise invalid(source, "its checkpoint is not signed by the log that holds the entry")
    return int(lines[1]), root_hash


def log_verifies(log: LogKey, signature: bytes, data: bytes) -> bool:
    """True if ``signature`` over ``data`` verifies with the log's key (as its keyDetails say to)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

    key = log.key
    digest: hashes.HashAlgorithm = {"sha384": hashes.SHA384(), "sha512": hashes.SHA512()}.get(log.hash_name,
                                                                                             hashes.SHA256())
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(digest))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), digest)
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


# --- (7) the entry's body --------------------------------------------------------------------------

def verify_entry_body(parsed: Parsed, message: DigestSet | None) -> None:
    """(7) The logged body records this bundle: its signature, its certificate, and what was signed."""
    source, entry = parsed.source, parsed.entry
    body = _logged_body(parsed)
    expected = _EXPECTED_SPECS[(entry.kind, entry.version)](parsed, message, body)
    difference = _difference(body.get("spec"), expected, "spec")
    if difference is not None:
        raise invalid(source, f"its log entry does not record this bundle ({difference})")


def _logged_body(parsed: Parsed) -> dict[str, Any]:
    """The entry's body as JSON, an object of the kind and version the entry claims to be."""
    source, entry = parsed.source, parsed.entry
    assert entry.body is not None
    try:
        body = strict_json.loads(entry.body, what=f"{source}: its log entry's body")
    except EvidenceRejected as e:
        raise MalformedEvidence(str(e)) from e
    if not isinstance(body, dict) or body.get("kind") != entry.kind or body.get("apiVersion") != entry.version:
        raise invalid(source, f"its log entry's body is not the {entry.kind} {entry.version} entry it claims to be")
    return body


def _hashedrekord_v1(parsed: Parsed, message: DigestSet | None, body: dict[str, Any]) -> dict[str, Any]:
    """The spec of a hashedrekord 0.0.1 entry: the artefact's digest, the signature, the PEM certificate."""
    hash_name, digest = message_digest(parsed, message)
    return {"data": {"hash": {"algorithm": hash_name, "value": digest.hex()}},
            "signature": {"content": parsed.signature, "publicKey": {"content": _Pem(parsed.leaf)}}}


def _hashedrekord_v2(parsed: Parsed, message: DigestSet | None, body: dict[str, Any]) -> dict[str, Any]:
    """The spec of a hashedrekord 0.0.2 entry: the digest of the PAE or artefact, the signature, the DER certificate."""
    details, algorithm, hash_name = ec_details(parsed)
    if parsed.envelope is not None:
        digest = hashlib.new(hash_name, parsed.envelope.pae()).digest()
    else:  # _message_digest saw to it that the bundle's algorithm is the key's
        _, digest = message_digest(parsed, message)
    return {"hashedRekordV002": {
        "data": {"algorithm": algorithm, "digest": digest},
        "signature": {"content": parsed.signature,
                      "verifier": {"keyDetails": details, "x509Certificate": {"rawBytes": _Der(parsed.leaf)}}}}}


def _dsse(parsed: Parsed, message: DigestSet | None, body: dict[str, Any]) -> dict[str, Any]:
    """The spec of a dsse 0.0.1 entry: the payload's hash, the signature and the PEM certificate."""
    assert parsed.envelope is not None
    spec = body.get("spec")
    # the envelope hash covers the envelope as it was sent, which no client can reproduce: not compared
    payload_hash = hashlib.sha256(parsed.envelope.payload).hexdigest()
    expected: dict[str, Any] = {"payloadHash": {"algorithm": "sha256", "value": payload_hash},
                                "signatures": [{"signature": parsed.signature, "verifier": _Pem(parsed.leaf)}]}
    if isinstance(spec, dict) and "envelopeHash" in spec:
        expected["envelopeHash"] = _Any()
    return expected


def _intoto(parsed: Parsed, message: DigestSet | None, body: dict[str, Any]) -> dict[str, Any]:
    """The spec of an intoto 0.0.2 entry: the envelope as logged, its signature base64 twice over."""
    assert parsed.envelope is not None
    logged: dict[str, Any] = {"payloadType": parsed.envelope.payload_type,
                              "signatures": [{"sig": _Twice(parsed.signature), "publicKey": _Pem(parsed.leaf)}]}
    spec = body.get("spec")
    envelope = spec.get("content", {}).get("envelope") if isinstance(spec, dict) and \
        isinstance(spec.get("content"), dict) else None
    if isinstance(envelope, dict) and "payload" in envelope:
        logged["payload"] = _Twice(parsed.envelope.payload)
    return {"content": {"envelope": logged, "hash": _Any(),
                        "payloadHash": {"algorithm": "sha256",
                                        "value": hashlib.sha256(parsed.envelope.payload).hexdigest()}}}


#: (kind, version) of each entry type :data:`verify.sigstore._parsed.ENTRY_TYPES` admits -> the spec its body
#: must hold for this bundle.
_EXPECTED_SPECS = {("hashedrekord", "0.0.1"): _hashedrekord_v1, ("hashedrekord", "0.0.2"): _hashedrekord_v2,
                   ("dsse", "0.0.1"): _dsse, ("intoto", "0.0.2"): _intoto}


class _Pem:
    """Expected: base64 of a PEM certificate that is this one."""

    def __init__(self, cert: Certificate) -> None:
        self.cert = cert

    def differs(self, found: Any) -> bool:
        from cryptography import x509

        try:
            return x509.load_pem_x509_certificate(b64decode(found, what="a logged certificate")) != self.cert
        except (MalformedEvidence, ValueError):
            return True


class _Der(_Pem):
    """Expected: base64 of this certificate's DER."""

    def differs(self, found: Any) -> bool:
        from cryptography.hazmat.primitives.serialization import Encoding

        try:
            return b64decode(found, what="a logged certificate") != self.cert.public_bytes(Encoding.DER)
        except MalformedEvidence:
            return True


class _Twice:
    """Expected: base64 of the base64 of these bytes (intoto 0.0.2 encodes its envelope's fields twice)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def differs(self, found: Any) -> bool:
        try:
            once = b64decode(found, what="a logged field").decode("ascii")
            return b64decode(once, what="a logged field") != self.data
        except (MalformedEvidence, UnicodeDecodeError):
            return True


class _Any:
    """Expected: present, whatever it holds."""

    def differs(self, found: Any) -> bool:
        return False


def _difference(found: Any, expected: Any, where: str) -> str | None:
    """Where ``found`` (decoded JSON) departs from ``expected``: dicts key for key, lists item for item, bytes as
    base64 of them, :class:`_Pem` / :class:`_Der` / :class:`_Twice` / :class:`_Any` by their rule, else equality."""
    if isinstance(expected, dict):
        return _dict_difference(found, expected, where)
    if isinstance(expected, list):
        return _list_difference(found, expected, where)
    if isinstance(expected, bytes):
        return None if _is_base64_of(found, expected, where) else f"{where} differs"
    if isinstance(expected, _Pem | _Twice | _Any):
        return f"{where} differs" if expected.differs(found) else None
    return None if found == expected else f"{where} differs"


def _dict_difference(found: Any, expected: dict[str, Any], where: str) -> str | None:
    """Where ``found`` departs from ``expected``: the same keys, then key for key (in ``expected``'s order)."""
    if not isinstance(found, dict) or set(found) != set(expected):
        return f"{where} has fields {sorted(found) if isinstance(found, dict) else found!r}, expected " \
               f"{sorted(expected)}"
    return next((d for key in expected if (d := _difference(found[key], expected[key], f"{where}.{key}"))), None)


def _list_difference(found: Any, expected: list[Any], where: str) -> str | None:
    """Where ``found`` departs from ``expected``: as many items, then item for item."""
    if not isinstance(found, list) or len(found) != len(expected):
        return f"{where} does not hold {len(expected)} item(s)"
    return next((d for i, (f, e) in enumerate(zip(found, expected, strict=True))
                 if (d := _difference(f, e, f"{where}[{i}]"))), None)


def _is_base64_of(found: Any, expected: bytes, where: str) -> bool:
    """True if ``found`` is base64 text of ``expected``."""
    try:
        return b64decode(found, what=where) == expected
    except MalformedEvidence:
        return False
