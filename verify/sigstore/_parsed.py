"""Step (1) of the keyless verifier (:mod:`verify.sigstore._native`): a bundle's parts, all present and readable,
and what the later steps share (the key's registered hash, the message digest, the sentence of a refusal)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from verify.budget import VerificationBudget
from verify.digests import DigestSet
from verify.errors import MalformedEvidence, SignatureInvalid, brief
from verify.formats.bundle import Bundle, LogEntry
from verify.formats.envelope import Envelope
from verify.formats.evidence import Evidence

if TYPE_CHECKING:  # types only: cryptography is imported where a certificate is read
    from cryptography.x509 import Certificate

__all__ = ["ENTRY_TYPES", "PROMISED_TIME_TYPES", "Parsed", "b64", "ec_details", "invalid", "message_digest", "parse"]

#: (kind, version) of log entries, and whether each holds a DSSE envelope, a message signature, or either.
ENTRY_TYPES = {("hashedrekord", "0.0.1"): "message", ("hashedrekord", "0.0.2"): "either",
               ("dsse", "0.0.1"): "dsse", ("intoto", "0.0.2"): "dsse"}
#: Entry types whose integrated time an inclusion promise signs (Rekor v1).
PROMISED_TIME_TYPES = {("hashedrekord", "0.0.1"), ("dsse", "0.0.1"), ("intoto", "0.0.2")}

_CODE_SIGNING = "1.3.6.1.5.5.7.3.3"
_EC_KEY_DETAILS = {"secp256r1": ("PKIX_ECDSA_P256_SHA_256", "SHA2_256", "sha256"),
                   "secp384r1": ("PKIX_ECDSA_P384_SHA_384", "SHA2_384", "sha384"),
                   "secp521r1": ("PKIX_ECDSA_P521_SHA_512", "SHA2_512", "sha512")}


@dataclass(frozen=True)
class Parsed:
    """A keyless bundle whose parts are all present and readable (nothing verified yet)."""

    source: str
    bundle: Bundle
    leaf: Certificate
    entry: LogEntry
    envelope: Envelope | None
    signature: bytes
    """The DSSE envelope's one signature, or the message signature."""
    budget: VerificationBudget = field(default_factory=VerificationBudget, compare=False)
    """Charged before each signature verification the steps try (the run's budget)."""

    def charge(self, count: int = 1) -> None:
        self.budget.spend(count, source=self.source)


def parse(item: Evidence, budget: VerificationBudget | None = None) -> Parsed:
    """(1) The parts of ``item``'s keyless bundle; :class:`MalformedEvidence` for what sigstore-python refuses too.

    Every later step charges ``budget`` (a budget of its own when None) before each signature verification.
    """
    source = item.source
    # (1a) a keyless bundle, in the protobuf-specs form, its certificate where its version puts it
    bundle, certificate = _keyless_bundle(item)
    _check_material(source, bundle)
    # (1b) exactly one log entry, of a kind that holds what the bundle signs
    entry = _one_known_entry(source, bundle)
    # (1c) every certificate readable, the leaf one that can sign
    leaf = _signing_certificate(source, certificate, bundle.chain)
    # (1d) the inclusion proof, promise or timestamps the bundle's version needs
    _check_log_evidence(source, bundle, entry)
    # (1e) the DSSE envelope's one signature, or the message signature
    envelope, signature = _signature(item, bundle)
    return Parsed(source=source, bundle=bundle, leaf=leaf, entry=entry, envelope=envelope, signature=signature,
                  budget=VerificationBudget() if budget is None else budget)


def _keyless_bundle(item: Evidence) -> tuple[Bundle, bytes]:
    """``item``'s bundle and its signing certificate (DER), if it is keyless and has no defects."""
    source, bundle = item.source, item.bundle
    if bundle is None or bundle.certificate is None:
        raise MalformedEvidence(f"{source} is not a keyless Sigstore bundle")
    if bundle.defects:
        raise MalformedEvidence(f"{source} is not a valid Sigstore bundle ({bundle.defects[0]})")
    return bundle, bundle.certificate


def _check_material(source: str, bundle: Bundle) -> None:
    """A v0.3 bundle carries its certificate in ``certificate``, an older one in ``x509CertificateChain``."""
    expected = "certificate" if bundle.version == "0.3" else "x509CertificateChain"
    if bundle.material != expected:
        raise MalformedEvidence(f"{source} is not a valid Sigstore bundle (a v{bundle.version} bundle carries its "
                                f"signing certificate in verificationMaterial.{expected})")


def _one_known_entry(source: str, bundle: Bundle) -> LogEntry:
    """The bundle's one log entry, of a type (:data:`ENTRY_TYPES`) that holds a DSSE envelope or message as it has."""
    if len(bundle.log_entries) != 1:
        raise MalformedEvidence(f"{source} is not a valid Sigstore bundle (it has {len(bundle.log_entries)} "
                                "transparency log entries; exactly one is verified)")
    entry = bundle.log_entries[0]
    holds = ENTRY_TYPES.get((entry.kind, entry.version))
    content = "dsse" if bundle.envelope is not None else "message"
    if holds is None or holds not in (content, "either"):
        raise MalformedEvidence(f"{source}: a {'DSSE' if content == 'dsse' else 'message signature'} bundle with a "
                                f"{entry.kind!r} {entry.version!r} log entry is not a kind of entry attest verifies")
    return entry


def _signing_certificate(source: str, certificate: bytes, chain: tuple[bytes, ...]) -> Certificate:
    """The leaf certificate, once it and the rest of the chain are readable and it can sign."""
    from cryptography import x509

    try:
        leaf = x509.load_der_x509_certificate(certificate)
        for der in chain:  # read to refuse what cannot be read, never used: paths are built from the trusted root
            x509.load_der_x509_certificate(der)
    except ValueError as e:
        raise MalformedEvidence(f"{source} is not a valid Sigstore bundle (a certificate cannot be read: "
                                f"{brief(e)})") from e
    problem = _leaf_problem(leaf)
    if problem is not None:
        raise MalformedEvidence(f"{source}: its signing certificate {problem}")
    return leaf


def _check_log_evidence(source: str, bundle: Bundle, entry: LogEntry) -> None:
    """A v0.1 bundle's entry has an inclusion promise; a later one's an inclusion proof with a checkpoint, and
    a promise or a signed timestamp; a promised integrated time is in range."""
    proof = entry.inclusion_proof
    if bundle.version == "0.1":
        if not entry.promised or not entry.integrated_seconds:
            # (its only log evidence: a promise of no integrated time would prove the entry in no log)
            raise MalformedEvidence(f"{source}: a v0.1 bundle needs an inclusion promise of its log entry's "
                                    "integrated time")
    elif proof is None or proof.checkpoint is None:
        raise MalformedEvidence(f"{source}: its log entry has no inclusion proof with a checkpoint, which a "
                                f"v{bundle.version} bundle needs")
    elif not entry.promised and not bundle.timestamps:
        raise MalformedEvidence(f"{source}: its log entry has neither an inclusion promise nor a signed timestamp")
    if entry.promised and entry.integrated_time is None and (entry.integrated_seconds or 0) != 0:
        raise MalformedEvidence(f"{source}: its log entry's integrated time is out of range")


def _signature(item: Evidence, bundle: Bundle) -> tuple[Envelope | None, bytes]:
    """The bundle's DSSE envelope (the one attest read, with one signature) and that signature, else the
    message signature."""
    source, envelope = item.source, bundle.envelope
    if envelope is None:
        assert bundle.message is not None
        return None, bundle.message.signature
    if item.envelope != envelope:
        raise MalformedEvidence(f"{source}: the DSSE envelope attest read is not the one Sigstore verified")
    if len(envelope.signatures) != 1:
        raise MalformedEvidence(f"{source}: a keyless DSSE envelope has exactly one signature, this one "
                                f"{len(envelope.signatures)}")
    return envelope, envelope.signatures[0].sig


def _leaf_problem(cert: Certificate) -> str | None:
    """Why ``cert`` cannot sign in Sigstore (a CA, no digital signature use, no code signing EKU), or None."""
    from cryptography import x509

    if cert.version != x509.Version.v3:
        return "is not an X.509 v3 certificate"
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        extended = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as e:
        return f"lacks a required extension ({brief(e)})"
    except ValueError as e:
        return f"has a malformed extension ({brief(e)})"
    if _is_ca(cert) or usage.key_cert_sign:
        return "is a CA certificate, not a signing certificate"
    if not usage.digital_signature:
        return "does not allow digital signatures (key usage)"
    if not any(oid.dotted_string == _CODE_SIGNING for oid in extended):
        return "does not allow code signing (extended key usage)"
    return None


def _is_ca(cert: Certificate) -> bool:
    from cryptography import x509

    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except (x509.ExtensionNotFound, ValueError):
        return False


def message_digest(parsed: Parsed, message: DigestSet | None) -> tuple[str, bytes]:
    """(hashlib name, digest) of the artefact that a message signature signs: the algorithm its
    messageDigest names (sha256 when none), which must be the one its key's curve is registered with."""
    bundle_message = parsed.bundle.message
    assert bundle_message is not None
    written, hash_name = bundle_message.algorithm(parsed.source)
    _, _, key_hash = ec_details(parsed)
    if hash_name != key_hash:
        raise invalid(parsed.source, f"its messageDigest is {written}, and its certificate's key signs {key_hash} "
                                      "digests (Sigstore binds the hash to the key)")
    computed = None if message is None else message.digests.get(hash_name)
    if computed is None:
        raise SignatureInvalid(f"{parsed.source}: a message signature needs the artefact's {hash_name}")
    return hash_name, bytes.fromhex(computed)


def ec_details(parsed: Parsed) -> tuple[str, str, str]:
    """(keyDetails, hash algorithm, hashlib name) of the certificate's key, per Sigstore's algorithm registry."""
    from cryptography.hazmat.primitives.asymmetric import ec

    key = parsed.leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in _EC_KEY_DETAILS:
        raise invalid(parsed.source, "its certificate's key is not an ECDSA key on P-256, P-384 or P-521")
    return _EC_KEY_DETAILS[key.curve.name]


def invalid(source: str, reason: str) -> SignatureInvalid:
    return SignatureInvalid(f"{source}: the Sigstore bundle does not verify against the trusted root ({reason})")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
