"""Keyless Sigstore bundles, verified offline with ``cryptography`` alone (RFC 3161 with ``rfc3161_client``).

:mod:`verify.sigstore` is the public face; this module is the verifier behind it. A bundle with a
certificate is verified in this order, each step one function that raises or returns:

  (1) parse      :func:`parse`: the typed bundle (:mod:`verify.formats.bundle`) in the protobuf-specs form,
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
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from verify.budget import VerificationBudget
from verify.digests import DigestSet
from verify.errors import MalformedEvidence, SignatureInvalid, brief
from verify.formats.certificate import CertificateClaims, read_claims
from verify.formats.encoding import format_time
from verify.formats.evidence import Evidence
from verify.sigstore._log import log_verifies, verify_entry_body, verify_log_entry
from verify.sigstore._parsed import PROMISED_TIME_TYPES, Parsed, ec_details, invalid, message_digest, parse
from verify.sigstore.identity import mismatch
from verify.sigstore.times import PROMISE, TIMESTAMP, SignedTime, Window, inside, show, show_times
from verify.sigstore.trusted_root import TrustedRoot
from verify.trust import Identity, SigstoreIdentity

if TYPE_CHECKING:  # types only: cryptography is imported by the steps that use it
    from cryptography.x509 import Certificate

__all__ = [
    "establish_times",
    "parse",
    "verify_bundle",
    "verify_chain",
    "verify_entry_body",
    "verify_identity",
    "verify_log_entry",
    "verify_sct",
    "verify_signature",
]


# --- (2) signing times -----------------------------------------------------------------------------

def establish_times(parsed: Parsed, root: TrustedRoot) -> tuple[SignedTime, ...]:
    """(2) Every verified time the bundle was signed at; :class:`SignatureInvalid` if a timestamp does not verify."""
    source, bundle, entry = parsed.source, parsed.bundle, parsed.entry
    times: list[SignedTime] = []
    if len(set(bundle.timestamps)) != len(bundle.timestamps):
        raise MalformedEvidence(f"{source} holds the same signed timestamp twice")
    if bundle.timestamps and not root.timestamp_authorities:
        raise invalid(source, "it holds a signed timestamp and the trusted root names no timestamp authority")
    for number, der in enumerate(bundle.timestamps, start=1):
        times.append(SignedTime(_verify_timestamp(der, parsed, root, number), TIMESTAMP))
    if entry.promised and entry.integrated_time is not None:
        if (entry.kind, entry.version) not in PROMISED_TIME_TYPES:
            raise invalid(source, f"an inclusion promise does not sign the time of a {entry.kind} {entry.version} "
                                   "entry")
        times.append(SignedTime(entry.integrated_time, PROMISE))
    if not times:
        raise invalid(source, "it has no verified signing time (no RFC 3161 timestamp, no inclusion promise over "
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
        raise MalformedEvidence(f"{source}: signed timestamp {number} cannot be read ({brief(e)})") from e
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
        if inside(when, authority.window):
            return when
        outside = authority.window
    if outside is not None:
        raise invalid(source, f"signed timestamp {number} ({format_time(when)}) is outside the validity of its "
                               f"timestamp authority in the trusted root ({show(outside)})")
    raise invalid(source, f"signed timestamp {number} does not verify with a timestamp authority of the trusted "
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
            raise invalid(source, f"its certificate does not chain to a certificate authority of the trusted root "
                                   f"at {format_time(signed.at)}, the time {signed.by} vouches for ({brief(e)})") \
                from e
        parsed.charge(max(len(chain) - 2, 0))
    if len(chain) < 2:  # the trusted root lists the leaf itself as a CA: it issued nothing, and vouches for nothing
        raise invalid(source, "its certificate is itself listed as a certificate authority of the trusted root, "
                               "rather than issued by one; the trusted root is wrong")
    issuer = chain[1]
    windows = [a.window for a in root.authorities if issuer in a.certificates]
    if not any(all(inside(t.at, w) for t in times) for w in windows):
        raise invalid(source, f"the certificate authority that issued its certificate is trusted only "
                               f"{', '.join(show(w) for w in windows)}, not at signing time {show_times(times)}")
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
        raise invalid(source, f"its certificate carries {len(scts)} signed certificate timestamps; exactly one is "
                               "verified")
    sct = scts[0]
    if not isinstance(sct.signature_hash_algorithm, hashes.SHA256):
        raise invalid(source, "its certificate's SCT is not signed with SHA-256")
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
        raise invalid(source, f"its certificate's SCT is from a CT log the trusted root does not name "
                               f"({sct.log_id.hex()[:16]}...)")
    parsed.charge(len(logs))
    if not any(log_verifies(log, sct.signature, data) for log in logs):
        raise invalid(source, "its certificate's SCT does not verify with the CT log's key")
    for log in logs:
        if not all(inside(t.at, log.window) for t in times):
            raise invalid(source, f"its certificate's SCT is from a CT log whose key the trusted root trusts only "
                                   f"{show(log.window)}, not at signing time {show_times(times)}")


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
    source = parsed.source
    try:
        claims: CertificateClaims = read_claims(parsed.leaf)
    except ValueError as e:
        raise SignatureInvalid(f"{source}: the signing certificate has a malformed identity extension "
                               f"({brief(e)})") from e
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


# --- (8) the signature -----------------------------------------------------------------------------

def verify_signature(parsed: Parsed, message: DigestSet | None) -> None:
    """(8) The certificate's key signed the DSSE PAE, or the artefact's digest (prehashed), with the hash its
    curve is registered with (P-256: SHA-256, P-384: SHA-384)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    source = parsed.source
    _, _, hash_name = ec_details(parsed)
    key = parsed.leaf.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    algorithm: hashes.HashAlgorithm = {"sha384": hashes.SHA384(), "sha512": hashes.SHA512()}.get(hash_name,
                                                                                                 hashes.SHA256())
    parsed.charge()
    try:
        if parsed.envelope is not None:
            key.verify(parsed.signature, parsed.envelope.pae(), ec.ECDSA(algorithm))
        else:
            _, digest = message_digest(parsed, message)
            bundle_message = parsed.bundle.message
            assert bundle_message is not None
            if bundle_message.digest is not None and bundle_message.digest != digest:
                raise invalid(source, f"its messageDigest is not the artefact's {hash_name}")
            key.verify(parsed.signature, digest, ec.ECDSA(Prehashed(algorithm)))
    except (InvalidSignature, ValueError) as e:
        what = "the DSSE envelope" if parsed.envelope is not None else f"the artefact's {hash_name}"
        raise invalid(source, f"its signature over {what} does not verify with the certificate's key") from e


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
