"""Keyless Sigstore bundles, verified offline with ``cryptography`` alone (RFC 3161 with ``rfc3161_client``).

:mod:`verify.sigstore` is the public face; this module is the verifier behind it. A bundle with a
certificate is verified in this order, each step one function that raises or returns:

  (1) parse      :func:`parse`: the typed bundle (:mod:`verify.bundle`) in the protobuf-specs form,
                 the signing certificate alone in v0.3 and first in a chain in v0.1/v0.2 (the rest
                 of that chain is read, never trusted nor used), one log entry of a kind and version
                 attest knows, an inclusion promise (v0.1) or an inclusion proof with its checkpoint
                 (v0.2+), and a source of signed time
  (2) time       :func:`establish_times`: each RFC 3161 timestamp verified against the trusted
                 root's timestamp authorities, inside the authority's validity (both ends
                 inclusive); the log's integrated time only where an inclusion promise signs it
  (3) chain      :func:`verify_chain`: the certificate chains to a certificate authority of the
                 trusted root at every signing time (``cryptography.x509.verification``, code
                 signing), and that authority was valid then
  (4) SCT        :func:`verify_sct`: its one SCT is signed by a CT log of the trusted root whose
                 key was valid at every signing time
  (5) identity   :func:`verify_identity`: the certificate satisfies a pinned :class:`SigstoreIdentity`
  (6) log entry  :func:`verify_log_entry`: the transparency log is one of the trusted root's, valid at
                 signing time; its inclusion promise (SET) signs the entry; its inclusion proof leads
                 to the root hash of a checkpoint the log signed
  (7) body       :func:`verify_entry_body`: the logged entry is this bundle (``hashedrekord`` 0.0.1 and
                 0.0.2, ``dsse`` 0.0.1, ``intoto`` 0.0.2): same signature, certificate and digest
  (8) signature  :func:`verify_signature`: the certificate's key signed the DSSE pre-authentication
                 encoding, or the artefact's sha256

Where this is stricter than sigstore-python 4.5.1, or verifies what it cannot, is listed in
docs/threat-model.md (Sigstore) and pinned by tests/interop/test_sigstore_native_differential.py.
Every failure is one of our exceptions with one sentence; nothing here touches the network. Every
repeated element is counted before it is read (docs/limits.md), and every signature verification a
step tries is charged to the run's :class:`~verify.budget.VerificationBudget` first.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from verify import _json
from verify.budget import VerificationBudget
from verify.encoding import b64decode, format_time, parse_time
from verify.errors import EvidenceRejected, LimitExceeded, MalformedEvidence, SignatureInvalid, TrustConfigError
from verify.limits import MAX_NOTE_SIGNATURES

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
    from cryptography.x509 import Certificate

    from verify.bundle import Bundle, InclusionProof, LogEntry
    from verify.envelope import Envelope
    from verify.evidence import Evidence
    from verify.matching import DigestSet
    from verify.sigstore import CertificateClaims
    from verify.trust import Identity, SigstoreIdentity

__all__ = [
    "TrustedRoot",
    "establish_times",
    "parse",
    "parse_trusted_root",
    "verify_bundle",
    "verify_chain",
    "verify_entry_body",
    "verify_identity",
    "verify_log_entry",
    "verify_sct",
    "verify_signature",
]

#: The trusted root media type sigstore-python 4.5.1 reads.
TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
#: (kind, version) of log entries, and whether each holds a DSSE envelope, a message signature, or either.
ENTRY_TYPES = {("hashedrekord", "0.0.1"): "message", ("hashedrekord", "0.0.2"): "either",
               ("dsse", "0.0.1"): "dsse", ("intoto", "0.0.2"): "dsse"}
#: Entry types whose integrated time an inclusion promise signs (Rekor v1).
PROMISED_TIME_TYPES = {("hashedrekord", "0.0.1"), ("dsse", "0.0.1"), ("intoto", "0.0.2")}

_CODE_SIGNING = "1.3.6.1.5.5.7.3.3"
_EC_KEY_DETAILS = {"secp256r1": ("PKIX_ECDSA_P256_SHA_256", "SHA2_256", "sha256"),
                   "secp384r1": ("PKIX_ECDSA_P384_SHA_384", "SHA2_384", "sha384"),
                   "secp521r1": ("PKIX_ECDSA_P521_SHA_512", "SHA2_512", "sha512")}
_SIGNATURE_LINE = re.compile(r"\u2014 (\S+) (\S+)")

Window = tuple[datetime, datetime | None]


# --- the trusted root -----------------------------------------------------------------------------

@dataclass(frozen=True)
class LogKey:
    """A transparency or CT log of the trusted root: its id, key, and when the key may be relied on."""

    log_id: bytes
    key: PublicKeyTypes | None
    """None: a key type attest does not verify with (such a log never verifies anything)."""
    hash_name: str
    window: Window


@dataclass(frozen=True)
class Authority:
    """A certificate authority (Fulcio) or timestamp authority of the trusted root."""

    certificates: tuple[Certificate, ...]
    window: Window


@dataclass(frozen=True)
class TrustedRoot:
    name: str
    tlogs: tuple[LogKey, ...]
    ctlogs: tuple[LogKey, ...]
    authorities: tuple[Authority, ...]
    timestamp_authorities: tuple[Authority, ...]


_ROOT_SCHEMA: dict[str, dict[str, tuple[str, bool]]] = {
    "root": {"mediaType": ("str", True), "tlogs": ("[log]", True), "certificateAuthorities": ("[ca]", True),
             "ctlogs": ("[log]", True), "timestampAuthorities": ("[ca]", False)},
    "log": {"baseUrl": ("str", True), "hashAlgorithm": ("str", True), "publicKey": ("key", True),
            "logId": ("logId", True), "checkpointKeyId": ("logId", False), "operator": ("str", False)},
    "key": {"rawBytes": ("bytes", False), "keyDetails": ("str", True), "validFor": ("range", True)},
    "logId": {"keyId": ("bytes", True)},
    "range": {"start": ("time", True), "end": ("time", False)},
    "ca": {"subject": ("name", True), "uri": ("str", False), "certChain": ("chain", True),
           "validFor": ("range", True), "operator": ("str", False)},
    "name": {"organization": ("str", True), "commonName": ("str", True)},
    "chain": {"certificates": ("[certificate]", True)},
    "certificate": {"rawBytes": ("bytes", True)},
}


def _root_problem(value: Any, kind: str, where: str) -> str | None:
    """The first way ``value`` departs from :data:`_ROOT_SCHEMA`'s ``kind``, or None."""
    if kind.startswith("["):
        if not isinstance(value, list):
            return f"{where} is not a list"
        return next((p for i, v in enumerate(value) if (p := _root_problem(v, kind[1:-1], f"{where}[{i}]"))), None)
    if kind in ("str", "bytes", "time"):
        try:
            if kind == "bytes":
                b64decode(value, what=where)
            elif kind == "time":
                parse_time(value, what=where)
            elif not isinstance(value, str):
                return f"{where} is not a string"
        except MalformedEvidence as e:
            return str(e)
        return None
    if not isinstance(value, dict):
        return f"{where or 'it'} is not a JSON object"
    fields = _ROOT_SCHEMA[kind]
    unknown = [name for name in value if name not in fields]
    if unknown:
        return f"{where or 'it'} has an unknown field {unknown[0]!r}"
    for name, (field_kind, required) in fields.items():
        if value.get(name) is None:
            if required:
                return f"{where or 'it'} has no {name}"
            continue
        problem = _root_problem(value[name], field_kind, f"{where}.{name}" if where else name)
        if problem:
            return problem
    return None


def parse_trusted_root(data: bytes, *, name: str) -> TrustedRoot:
    """The trusted root ``data`` (trusted_root.json), read strictly; :class:`TrustConfigError` naming ``name``."""
    from cryptography import x509

    try:
        document = _json.loads(data, what=f"trusted root {name}")
    except EvidenceRejected as e:
        raise TrustConfigError(f"{name} is not a Sigstore trusted root ({e})") from e
    problem = _root_problem(document, "root", "")
    if problem is not None:
        raise TrustConfigError(f"{name} is not a Sigstore trusted root ({problem})")
    if document["mediaType"] != TRUSTED_ROOT_MEDIA_TYPE:
        raise TrustConfigError(f"{name} is a trusted root of unsupported media type {document['mediaType']!r}")

    def window(valid: Any) -> Window:
        return (parse_time(valid["start"], what="validFor.start"),
                parse_time(valid["end"], what="validFor.end") if valid.get("end") is not None else None)

    def authority(entry: Any, what: str) -> Authority:
        try:
            certificates = tuple(x509.load_der_x509_certificate(b64decode(c["rawBytes"], what=what))
                                 for c in entry["certChain"]["certificates"])
        except ValueError as e:
            raise TrustConfigError(f"{name} holds an unreadable {what} certificate ({_short(e)})") from e
        if not certificates:
            raise TrustConfigError(f"trusted root {name} cannot verify bundles (a {what} has no certificates)")
        return Authority(certificates=certificates, window=window(entry["validFor"]))

    root = TrustedRoot(name=name, tlogs=tuple(_log_key(e) for e in document["tlogs"]),
                       ctlogs=tuple(_log_key(e) for e in document["ctlogs"]),
                       authorities=tuple(authority(e, "certificate authority")
                                         for e in document["certificateAuthorities"]),
                       timestamp_authorities=tuple(authority(e, "timestamp authority")
                                                   for e in document.get("timestampAuthorities") or []))
    if not root.tlogs:
        raise TrustConfigError(f"trusted root {name} cannot verify bundles (it names no transparency log)")
    if not root.authorities:
        raise TrustConfigError(f"trusted root {name} cannot verify bundles (it names no certificate authority)")
    return root


def _log_key(entry: Any) -> LogKey:
    """A log's key as sigstore-python loads it: a key type it does not know never verifies anything."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    public = entry["publicKey"]
    details = public["keyDetails"]
    types: tuple[type, ...]
    if details in ("PKCS1_RSA_PKCS1V5", "PKIX_RSA_PKCS1V15_2048_SHA256", "PKIX_RSA_PKCS1V15_3072_SHA256",
                   "PKIX_RSA_PKCS1V15_4096_SHA256"):
        types, hash_name = (rsa.RSAPublicKey,), "sha256"
    elif details in ("PKIX_ECDSA_P256_SHA_256", "PKIX_ECDSA_P384_SHA_384", "PKIX_ECDSA_P521_SHA_512"):
        types, hash_name = (ec.EllipticCurvePublicKey,), {"256": "sha256", "384": "sha384"}.get(details[12:15],
                                                                                                   "sha512")
    elif details == "PKIX_ED25519":
        types, hash_name = (ed25519.Ed25519PublicKey,), ""
    else:
        types, hash_name = (), ""
    key: PublicKeyTypes | None = None
    raw = public.get("rawBytes")
    if types and raw:
        try:
            loaded = serialization.load_der_public_key(b64decode(raw, what="a log key"))
        except ValueError:
            loaded = None
        key = loaded if isinstance(loaded, types) else None
    valid = public["validFor"]
    return LogKey(log_id=b64decode(entry["logId"]["keyId"], what="a log id"), key=key, hash_name=hash_name,
                  window=(parse_time(valid["start"], what="validFor.start"),
                          parse_time(valid["end"], what="validFor.end") if valid.get("end") is not None
                          else None))


# --- (1) parse -------------------------------------------------------------------------------------

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
    from cryptography import x509

    source, bundle = item.source, item.bundle
    if bundle is None or bundle.certificate is None:
        raise MalformedEvidence(f"{source} is not a keyless Sigstore bundle")
    if bundle.defects:
        raise MalformedEvidence(f"{source} is not a valid Sigstore bundle ({bundle.defects[0]})")
    expected = "certificate" if bundle.version == "0.3" else "x509CertificateChain"
    if bundle.material != expected:
        raise MalformedEvidence(f"{source} is not a valid Sigstore bundle (a v{bundle.version} bundle carries its "
                                f"signing certificate in verificationMaterial.{expected})")
    if len(bundle.log_entries) != 1:
        raise MalformedEvidence(f"{source} is not a valid Sigstore bundle (it has {len(bundle.log_entries)} "
                                "transparency log entries; exactly one is verified)")
    entry = bundle.log_entries[0]
    holds = ENTRY_TYPES.get((entry.kind, entry.version))
    content = "dsse" if bundle.envelope is not None else "message"
    if holds is None or holds not in (content, "either"):
        raise MalformedEvidence(f"{source}: a {'DSSE' if content == 'dsse' else 'message signature'} bundle with a "
                                f"{entry.kind!r} {entry.version!r} log entry is not a kind of entry attest verifies")
    try:
        leaf = x509.load_der_x509_certificate(bundle.certificate)
        chain = [x509.load_der_x509_certificate(der) for der in bundle.chain]
    except ValueError as e:
        raise MalformedEvidence(f"{source} is not a valid Sigstore bundle (a certificate cannot be read: "
                                f"{_short(e)})") from e
    problem = _leaf_problem(leaf)
    if problem is not None:
        raise MalformedEvidence(f"{source}: its signing certificate {problem}")
    del chain  # read to refuse what cannot be read, never used: paths are built from the trusted root alone
    proof = entry.inclusion_proof
    if bundle.version == "0.1":
        if not entry.promised:
            raise MalformedEvidence(f"{source}: a v0.1 bundle needs an inclusion promise for its log entry")
    elif proof is None or proof.checkpoint is None:
        raise MalformedEvidence(f"{source}: its log entry has no inclusion proof with a checkpoint, which a "
                                f"v{bundle.version} bundle needs")
    elif not entry.promised and not bundle.timestamps:
        raise MalformedEvidence(f"{source}: its log entry has neither an inclusion promise nor a signed timestamp")
    if entry.promised and entry.integrated_time is None and (entry.integrated_seconds or 0) != 0:
        raise MalformedEvidence(f"{source}: its log entry's integrated time is out of range")
    envelope = bundle.envelope
    if envelope is not None:
        if item.envelope != envelope:
            raise MalformedEvidence(f"{source}: the DSSE envelope attest read is not the one Sigstore verified")
        if len(envelope.signatures) != 1:
            raise MalformedEvidence(f"{source}: a keyless DSSE envelope has exactly one signature, this one "
                                    f"{len(envelope.signatures)}")
        signature = envelope.signatures[0].sig
    else:
        assert bundle.message is not None
        signature = bundle.message.signature
    return Parsed(source=source, bundle=bundle, leaf=leaf, entry=entry, envelope=envelope, signature=signature,
                  budget=VerificationBudget() if budget is None else budget)


def _leaf_problem(cert: Certificate) -> str | None:
    """Why ``cert`` cannot sign in Sigstore (a CA, no digital signature use, no code signing EKU), or None."""
    from cryptography import x509

    if cert.version != x509.Version.v3:
        return "is not an X.509 v3 certificate"
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        extended = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as e:
        return f"lacks a required extension ({_short(e)})"
    except ValueError as e:
        return f"has a malformed extension ({_short(e)})"
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


# --- (2) signing times -----------------------------------------------------------------------------

PROMISE = "the log's inclusion promise"
TIMESTAMP = "an RFC 3161 timestamp"


@dataclass(frozen=True)
class SignedTime:
    at: datetime
    by: str
    """What vouches for it: ``an RFC 3161 timestamp`` or ``the log's inclusion promise``."""


def establish_times(parsed: Parsed, root: TrustedRoot) -> tuple[SignedTime, ...]:
    """(2) Every verified time the bundle was signed at; :class:`SignatureInvalid` if a timestamp does not verify."""
    source, bundle, entry = parsed.source, parsed.bundle, parsed.entry
    times: list[SignedTime] = []
    if len(set(bundle.timestamps)) != len(bundle.timestamps):
        raise MalformedEvidence(f"{source} holds the same signed timestamp twice")
    if bundle.timestamps and not root.timestamp_authorities:
        raise _invalid(source, "it holds a signed timestamp and the trusted root names no timestamp authority")
    for number, der in enumerate(bundle.timestamps, start=1):
        times.append(SignedTime(_verify_timestamp(der, parsed, root, number), TIMESTAMP))
    if entry.promised and entry.integrated_time is not None:
        if (entry.kind, entry.version) not in PROMISED_TIME_TYPES:
            raise _invalid(source, f"an inclusion promise does not sign the time of a {entry.kind} {entry.version} "
                                   "entry")
        times.append(SignedTime(entry.integrated_time, PROMISE))
    if not times:
        raise _invalid(source, "it has no verified signing time (no RFC 3161 timestamp, no inclusion promise over "
                               "the entry's integrated time)")
    return tuple(times)


def _verify_timestamp(der: bytes, parsed: Parsed, root: TrustedRoot, number: int) -> datetime:
    """The time the ``number``-th RFC 3161 timestamp vouches for, verified over the bundle's signature."""
    from rfc3161_client import VerificationError, VerifierBuilder, decode_timestamp_response

    source = parsed.source
    try:
        response = decode_timestamp_response(der)
        when = response.tst_info.gen_time
    except Exception as e:  # the Rust decoder raises ValueError and friends: unreadable is malformed
        raise MalformedEvidence(f"{source}: signed timestamp {number} cannot be read ({_short(e)})") from e
    when = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    outside: Window | None = None
    for authority in root.timestamp_authorities:
        certificates = authority.certificates
        if len(certificates) < 2:  # a signing certificate and a root at least
            continue
        builder = VerifierBuilder().tsa_certificate(certificates[0]).add_root_certificate(certificates[-1])
        for intermediate in certificates[1:-1]:
            builder = builder.add_intermediate_certificate(intermediate)
        parsed.charge(len(certificates))  # the message's signature and each certificate's up the chain
        try:
            builder.build().verify_message(response, parsed.signature)
        except (VerificationError, ValueError):
            continue
        if _inside(when, authority.window):
            return when
        outside = authority.window
    if outside is not None:
        raise _invalid(source, f"signed timestamp {number} ({format_time(when)}) is outside the validity of its "
                               f"timestamp authority in the trusted root ({_show(outside)})")
    raise _invalid(source, f"signed timestamp {number} does not verify with a timestamp authority of the trusted "
                           "root over this bundle's signature")


# --- (3) the certificate chain ---------------------------------------------------------------------

def verify_chain(parsed: Parsed, root: TrustedRoot, times: Sequence[SignedTime]) -> tuple[Certificate, ...]:
    """(3) The verified chain (leaf first) to a trusted CA, valid at every signing time (as sigstore-python)."""
    from cryptography.x509 import ExtendedKeyUsage, UnsupportedGeneralNameType
    from cryptography.x509.verification import (
        Criticality,
        ExtensionPolicy,
        PolicyBuilder,
        Store,
        VerificationError,
    )

    source = parsed.source
    store = Store([c for authority in root.authorities for c in authority.certificates])
    # Fulcio certificates are for code signing, not client authentication: only the EKU validator is
    # replaced (code signing is required by parse), every other WebPKI default stays
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(ExtendedKeyUsage, Criticality.NON_CRITICAL, None)
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(ExtendedKeyUsage, Criticality.NON_CRITICAL, None)
    chain: tuple[Certificate, ...] = ()
    for signed in {t.at: t for t in times}.values():  # one path per distinct time
        verifier = PolicyBuilder().store(store).time(signed.at) \
            .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy).build_client_verifier()
        parsed.charge()  # the leaf's signature; the rest of the path once it is known
        try:
            chain = tuple(verifier.verify(parsed.leaf, []).chain)
        except (VerificationError, UnsupportedGeneralNameType, ValueError) as e:
            raise _invalid(source, f"its certificate does not chain to a certificate authority of the trusted root "
                                   f"at {format_time(signed.at)}, the time {signed.by} vouches for ({_short(e)})") \
                from e
        parsed.charge(max(len(chain) - 2, 0))
    issuer = chain[1]
    windows = [a.window for a in root.authorities if issuer in a.certificates]
    if not any(all(_inside(t.at, w) for t in times) for w in windows):
        raise _invalid(source, f"the certificate authority that issued its certificate is trusted only "
                               f"{', '.join(_show(w) for w in windows)}, not at signing time {_show_times(times)}")
    return chain


# --- (4) the signed certificate timestamp -----------------------------------------------------------

def verify_sct(parsed: Parsed, chain: Sequence[Certificate], root: TrustedRoot, times: Sequence[SignedTime]) -> None:
    """(4) The certificate's one SCT, signed by a CT log of the trusted root whose key was valid at signing time."""
    import struct

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.certificate_transparency import LogEntryType

    source, leaf = parsed.source, parsed.leaf
    try:
        scts = list(leaf.extensions.get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps).value)
    except x509.ExtensionNotFound:
        scts = []
    if len(scts) != 1:
        raise _invalid(source, f"its certificate carries {len(scts)} signed certificate timestamps; exactly one is "
                               "verified")
    sct = scts[0]
    if not isinstance(sct.signature_hash_algorithm, hashes.SHA256):
        raise _invalid(source, "its certificate's SCT is not signed with SHA-256")
    if sct.entry_type == LogEntryType.PRE_CERTIFICATE:
        issuer = chain[1]
        if _is_precertificate_signer(issuer) and len(chain) > 2:
            issuer = chain[2]
        spki = issuer.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
        signed_entry = hashlib.sha256(spki).digest() + _u24(leaf.tbs_precertificate_bytes)
    else:
        signed_entry = _u24(leaf.public_bytes(serialization.Encoding.DER))
    milliseconds = int(sct.timestamp.replace(tzinfo=UTC).timestamp() * 1000)
    data = struct.pack("!BBQH", sct.version.value, 0, milliseconds, sct.entry_type.value) + signed_entry \
        + struct.pack("!H", len(sct.extension_bytes)) + sct.extension_bytes
    logs = [log for log in root.ctlogs if log.log_id == sct.log_id]
    if not logs:
        raise _invalid(source, f"its certificate's SCT is from a CT log the trusted root does not name "
                               f"({sct.log_id.hex()[:16]}...)")
    parsed.charge(len(logs))
    if not any(_log_verifies(log, sct.signature, data) for log in logs):
        raise _invalid(source, "its certificate's SCT does not verify with the CT log's key")
    for log in logs:
        if not all(_inside(t.at, log.window) for t in times):
            raise _invalid(source, f"its certificate's SCT is from a CT log whose key the trusted root trusts only "
                                   f"{_show(log.window)}, not at signing time {_show_times(times)}")


def _is_precertificate_signer(cert: Certificate) -> bool:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    try:
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return ExtendedKeyUsageOID.CERTIFICATE_TRANSPARENCY in usage


def _u24(data: bytes) -> bytes:
    """A TLS ``opaque<1..2^24-1>``: three length bytes, then ``data``."""
    return len(data).to_bytes(3, "big") + data


# --- (5) the identity ------------------------------------------------------------------------------

def verify_identity(parsed: Parsed, candidates: Sequence[tuple[Identity, SigstoreIdentity]]) -> tuple[Identity, ...]:
    """(5) The identities whose pinned Sigstore identity the certificate satisfies; else :class:`SignatureInvalid`."""
    from verify.sigstore import mismatch, read_claims

    source = parsed.source
    try:
        claims: CertificateClaims = read_claims(parsed.leaf)
    except ValueError as e:
        raise SignatureInvalid(f"{source}: the signing certificate has a malformed identity extension "
                               f"({_short(e)})") from e
    matched: list[Identity] = []
    reasons = []
    for identity, pinned in candidates:
        reason = mismatch(claims, pinned)
        if reason is None:
            if identity not in matched:
                matched.append(identity)
        else:
            reasons.append(f"{identity.name}: {reason}")
    if not matched:
        raise SignatureInvalid(f"{source}: signed by {claims.describe()}, which no trusted identity allows "
                               f"({'; '.join(reasons)})")
    return tuple(matched)


# --- (6) the log entry -----------------------------------------------------------------------------

def verify_log_entry(parsed: Parsed, root: TrustedRoot, times: Sequence[SignedTime]) -> None:
    """(6) The entry is in a trusted log: its inclusion promise and/or inclusion proof verify with that log's key."""
    source, entry = parsed.source, parsed.entry
    logs = [log for log in root.tlogs if log.log_id == entry.log_id]
    if not logs:
        raise _invalid(source, "its log entry is from a transparency log the trusted root does not name")
    log = logs[0]
    # only a signed time dates the entry: its integrated time if a promise signs it, else the timestamps'
    promised = [t.at for t in times if t.by == PROMISE]
    when = promised[0] if promised else min(t.at for t in times)
    if not _inside(when, log.window):
        raise _invalid(source, f"its transparency log entry is dated {format_time(when)}, outside the validity of "
                               f"that log's key in the trusted root ({_show(log.window)})")
    assert entry.body is not None and entry.log_index is not None and entry.log_id is not None  # parse saw to it
    if entry.promised and entry.integrated_seconds:
        assert entry.signed_entry_timestamp is not None
        canonical = json.dumps({"body": _b64(entry.body), "integratedTime": entry.integrated_seconds,
                                "logID": entry.log_id.hex(), "logIndex": entry.log_index},
                               sort_keys=True, separators=(",", ":")).encode()
        parsed.charge()
        if not _log_verifies(log, entry.signed_entry_timestamp, canonical):
            raise _invalid(source, "its log entry's inclusion promise (signed entry timestamp) does not verify with "
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
        raise _invalid(source, "its inclusion proof is for another tree than the checkpoint the log signed")
    if proof.log_index >= proof.tree_size:
        raise _invalid(source, f"its inclusion proof's index {proof.log_index} is outside a tree of size "
                               f"{proof.tree_size}")
    inner = (proof.log_index ^ (proof.tree_size - 1)).bit_length()
    border = bin(proof.log_index >> inner).count("1")
    if len(proof.hashes) != inner + border:
        raise _invalid(source, f"its inclusion proof has {len(proof.hashes)} hashes, {inner + border} expected")
    node = hashlib.sha256(b"\x00" + body).digest()
    for level, sibling in enumerate(proof.hashes[:inner]):
        pair = sibling + node if (proof.log_index >> level) & 1 else node + sibling
        node = hashlib.sha256(b"\x01" + pair).digest()
    for sibling in proof.hashes[inner:]:
        node = hashlib.sha256(b"\x01" + sibling + node).digest()
    if node != proof.root_hash:
        raise _invalid(source, "its inclusion proof does not lead to the checkpoint's root hash")


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
        if not _log_verifies(log, signed[4:], text.encode("utf-8") + b"\n"):
            raise _invalid(source, "its checkpoint's signature does not verify with the log's key")
    if not tried:
        raise _invalid(source, "its checkpoint is not signed by the log that holds the entry")
    return int(lines[1]), root_hash


def _log_verifies(log: LogKey, signature: bytes, data: bytes) -> bool:
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
    assert entry.body is not None
    try:
        body = _json.loads(entry.body, what=f"{source}: its log entry's body")
    except EvidenceRejected as e:
        raise MalformedEvidence(str(e)) from e
    if not isinstance(body, dict) or body.get("kind") != entry.kind or body.get("apiVersion") != entry.version:
        raise _invalid(source, f"its log entry's body is not the {entry.kind} {entry.version} entry it claims to be")
    expected: dict[str, Any]
    if (entry.kind, entry.version) == ("hashedrekord", "0.0.1"):
        hash_name, digest = _message_digest(parsed, message)
        expected = {"data": {"hash": {"algorithm": hash_name, "value": digest.hex()}},
                    "signature": {"content": parsed.signature, "publicKey": {"content": _Pem(parsed.leaf)}}}
    elif (entry.kind, entry.version) == ("hashedrekord", "0.0.2"):
        details, algorithm, hash_name = _ec_details(parsed)
        if parsed.envelope is not None:
            digest = hashlib.new(hash_name, parsed.envelope.pae()).digest()
        else:  # _message_digest saw to it that the bundle's algorithm is the key's
            _, digest = _message_digest(parsed, message)
        expected = {"hashedRekordV002": {
            "data": {"algorithm": algorithm, "digest": digest},
            "signature": {"content": parsed.signature,
                          "verifier": {"keyDetails": details, "x509Certificate": {"rawBytes": _Der(parsed.leaf)}}}}}
    elif entry.kind == "dsse":
        assert parsed.envelope is not None
        spec = body.get("spec")
        # the envelope hash covers the envelope as it was sent, which no client can reproduce: not compared
        payload_hash = hashlib.sha256(parsed.envelope.payload).hexdigest()
        expected = {"payloadHash": {"algorithm": "sha256", "value": payload_hash},
                    "signatures": [{"signature": parsed.signature, "verifier": _Pem(parsed.leaf)}]}
        if isinstance(spec, dict) and "envelopeHash" in spec:
            expected["envelopeHash"] = _Any()
    else:  # intoto 0.0.2: the envelope as logged, its signature base64 twice over
        assert parsed.envelope is not None
        logged: dict[str, Any] = {"payloadType": parsed.envelope.payload_type,
                                  "signatures": [{"sig": _Twice(parsed.signature), "publicKey": _Pem(parsed.leaf)}]}
        spec = body.get("spec")
        envelope = spec.get("content", {}).get("envelope") if isinstance(spec, dict) and \
            isinstance(spec.get("content"), dict) else None
        if isinstance(envelope, dict) and "payload" in envelope:
            logged["payload"] = _Twice(parsed.envelope.payload)
        expected = {"content": {"envelope": logged, "hash": _Any(),
                                "payloadHash": {"algorithm": "sha256",
                                                "value": hashlib.sha256(parsed.envelope.payload).hexdigest()}}}
    difference = _difference(body.get("spec"), expected, "spec")
    if difference is not None:
        raise _invalid(source, f"its log entry does not record this bundle ({difference})")


def _message_digest(parsed: Parsed, message: DigestSet | None) -> tuple[str, bytes]:
    """(hashlib name, digest) of the artefact that a message signature signs: the algorithm its
    messageDigest names (sha256 when none), which must be the one its key's curve is registered with."""
    bundle_message = parsed.bundle.message
    assert bundle_message is not None
    written, hash_name = bundle_message.algorithm(parsed.source)
    _, _, key_hash = _ec_details(parsed)
    if hash_name != key_hash:
        raise _invalid(parsed.source, f"its messageDigest is {written}, and its certificate's key signs {key_hash} "
                                      "digests (Sigstore binds the hash to the key)")
    computed = None if message is None else message.digests.get(hash_name)
    if computed is None:
        raise SignatureInvalid(f"{parsed.source}: a message signature needs the artefact's {hash_name}")
    return hash_name, bytes.fromhex(computed)


def _ec_details(parsed: Parsed) -> tuple[str, str, str]:
    """(keyDetails, hash algorithm, hashlib name) of the certificate's key, per Sigstore's algorithm registry."""
    from cryptography.hazmat.primitives.asymmetric import ec

    key = parsed.leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in _EC_KEY_DETAILS:
        raise _invalid(parsed.source, "its certificate's key is not an ECDSA key on P-256, P-384 or P-521")
    return _EC_KEY_DETAILS[key.curve.name]


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
        if not isinstance(found, dict) or set(found) != set(expected):
            return f"{where} has fields {sorted(found) if isinstance(found, dict) else found!r}, expected " \
                   f"{sorted(expected)}"
        return next((d for key in expected if (d := _difference(found[key], expected[key], f"{where}.{key}"))), None)
    if isinstance(expected, list):
        if not isinstance(found, list) or len(found) != len(expected):
            return f"{where} does not hold {len(expected)} item(s)"
        return next((d for i, (f, e) in enumerate(zip(found, expected, strict=True))
                     if (d := _difference(f, e, f"{where}[{i}]"))), None)
    if isinstance(expected, bytes):
        try:
            same = b64decode(found, what=where) == expected
        except MalformedEvidence:
            same = False
        return None if same else f"{where} differs"
    if isinstance(expected, _Pem | _Twice | _Any):
        return f"{where} differs" if expected.differs(found) else None
    return None if found == expected else f"{where} differs"


# --- (8) the signature -----------------------------------------------------------------------------

def verify_signature(parsed: Parsed, message: DigestSet | None) -> None:
    """(8) The certificate's key signed the DSSE PAE, or the artefact's digest (prehashed), with the hash its
    curve is registered with (P-256: SHA-256, P-384: SHA-384)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    source = parsed.source
    _, _, hash_name = _ec_details(parsed)
    key = parsed.leaf.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    algorithm: hashes.HashAlgorithm = {"sha384": hashes.SHA384(), "sha512": hashes.SHA512()}.get(hash_name,
                                                                                                 hashes.SHA256())
    parsed.charge()
    try:
        if parsed.envelope is not None:
            key.verify(parsed.signature, parsed.envelope.pae(), ec.ECDSA(algorithm))
        else:
            _, digest = _message_digest(parsed, message)
            bundle_message = parsed.bundle.message
            assert bundle_message is not None
            if bundle_message.digest is not None and bundle_message.digest != digest:
                raise _invalid(source, f"its messageDigest is not the artefact's {hash_name}")
            key.verify(parsed.signature, digest, ec.ECDSA(Prehashed(algorithm)))
    except (InvalidSignature, ValueError) as e:
        what = "the DSSE envelope" if parsed.envelope is not None else f"the artefact's {hash_name}"
        raise _invalid(source, f"its signature over {what} does not verify with the certificate's key") from e


# --- all of it -------------------------------------------------------------------------------------

def verify_bundle(item: Evidence, candidates: Sequence[tuple[Identity, SigstoreIdentity]], root: TrustedRoot, *,
                  message: DigestSet | None, budget: VerificationBudget | None = None,
                  ) -> tuple[tuple[Identity, ...], SignedTime]:
    """Steps (1) to (8) for ``item``'s keyless bundle: the identities among ``candidates`` that signed it, and
    when, by the latest time a signature vouches for (an RFC 3161 timestamp, or an integrated time an
    inclusion promise signs; never an integrated time nothing signs). Each signature verification is
    charged to ``budget`` before it is tried (a budget of its own when None)."""
    parsed = parse(item, budget)
    times = establish_times(parsed, root)
    chain = verify_chain(parsed, root, times)
    verify_sct(parsed, chain, root, times)
    signers = verify_identity(parsed, candidates)
    verify_log_entry(parsed, root, times)
    verify_entry_body(parsed, message)
    verify_signature(parsed, message)
    return signers, max(times, key=lambda t: t.at)


# --- helpers ---------------------------------------------------------------------------------------

def _invalid(source: str, reason: str) -> SignatureInvalid:
    return SignatureInvalid(f"{source}: the Sigstore bundle does not verify against the trusted root ({reason})")


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode("ascii")


def _inside(when: datetime, window: Window) -> bool:
    start, end = window
    return start <= when and (end is None or when <= end)


def _show(window: Window) -> str:
    start, end = window
    return f"from {format_time(start)}" + (f" to {format_time(end)}" if end is not None else "")


def _show_times(times: Sequence[SignedTime]) -> str:
    return " and ".join(format_time(t.at) for t in times)
