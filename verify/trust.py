"""Trust anchors: pinned public keys, and the identities a policy names.

A key is trusted because a policy (or ``--key``) pins it, never because of a
``keyid`` in the evidence: keyids are hints that only decide the order in
which pinned keys are tried.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from verify.errors import TrustConfigError
from verify.files import read_file
from verify.limits import MAX_KEY_BYTES

__all__ = ["Identity", "PublicKey", "SigstoreIdentity", "load_public_key", "load_public_key_file"]

_EC_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}


@functools.lru_cache(maxsize=1024)
def _fingerprint(spki_der: bytes) -> str:
    return hashlib.sha256(spki_der).hexdigest()


@functools.lru_cache(maxsize=1024)
def _ecdsa(spki_der: bytes) -> tuple[ec.EllipticCurvePublicKey, ec.ECDSA | None, int] | None:
    """For an EC key: the key, its signature algorithm (None: a curve attest does not verify with) and its width in
    bytes, worked out once per process; None for another key. (An isinstance check against cryptography's key
    classes is not cached for its Rust types: 6 us a call, once per envelope in an audit.)"""
    key = _loaded(spki_der)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return None
    hash_cls = _EC_HASHES.get(key.curve.name)
    return key, None if hash_cls is None else ec.ECDSA(hash_cls()), (key.curve.key_size + 7) // 8


@functools.lru_cache(maxsize=1024)
def _loaded(spki_der: bytes) -> ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey:
    """A key's DER read once per process (a pinned key verifies thousands of envelopes in an audit; the key objects
    are immutable, and kept here rather than on the PublicKey, which crosses process boundaries)."""
    key = serialization.load_der_public_key(spki_der)
    assert isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey)
    return key


@dataclass(frozen=True)
class PublicKey:
    """One pinned verification key."""

    name: str
    """Where it came from (a file path or a KMS ARN), for messages."""
    spki_der: bytes = field(repr=False)

    @property
    def fingerprint(self) -> str:
        """sha256 of the DER SubjectPublicKeyInfo, hex: a stable name for this key."""
        return _fingerprint(self.spki_der)

    @property
    def algorithm(self) -> str:
        key = self._key()
        if isinstance(key, ec.EllipticCurvePublicKey):
            return f"ecdsa-{key.curve.name}"
        if isinstance(key, ed25519.Ed25519PublicKey):
            return "ed25519"
        assert isinstance(key, rsa.RSAPublicKey)
        return f"rsa-{key.key_size}"

    def _key(self) -> ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey:
        return _loaded(self.spki_der)

    def pem(self) -> bytes:
        return self._key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def verify(self, signature: bytes, data: bytes) -> bool:
        """True if ``signature`` over ``data`` verifies with this key.

        ECDSA signatures are accepted in strict DER (OpenSSL refuses BER lengths,
        non-minimal integers and trailing bytes) and in raw ``r||s`` form of exactly
        twice the curve's width (the DSSE test vector and some KMS tools use it),
        nothing else. Both ``s`` and ``n - s`` verify (ECDSA is malleable and
        KMS and Go signers do not normalise to low S): a signature is not an
        identifier, the signed payload is. RSA signatures are accepted as
        RSASSA-PSS (salt length of the digest or any) and PKCS#1 v1.5, with
        SHA-256. Ed25519 as OpenSSL verifies it (``S`` must be reduced).
        """
        try:
            ecdsa = _ecdsa(self.spki_der)
            if ecdsa is not None:
                ec_key, algorithm, width = ecdsa
                if algorithm is None:
                    return False
                if len(signature) == 2 * width:
                    # raw r||s first: its first byte may well be 0x30 (1 in 256), so it cannot be
                    # told from DER by its first byte; then the same bytes as DER.
                    r = int.from_bytes(signature[:width], "big")
                    s = int.from_bytes(signature[width:], "big")
                    try:
                        ec_key.verify(utils.encode_dss_signature(r, s), data, algorithm)
                        return True
                    except InvalidSignature:
                        pass
                ec_key.verify(signature, data, algorithm)
                return True
            key = self._key()
            if isinstance(key, ed25519.Ed25519PublicKey):
                key.verify(signature, data)
                return True
            return isinstance(key, rsa.RSAPublicKey) and _verify_rsa(key, signature, data)
        except (InvalidSignature, ValueError):
            return False


    def verify_prehashed(self, signature: bytes, digest: bytes, algorithm: str = "sha256") -> bool:
        """True if ``signature`` is this key's signature over the message whose ``algorithm`` digest is ``digest``.

        For Sigstore message signatures (``cosign sign-blob``). ECDSA (DER) with the hash its curve is
        registered with in Sigstore (P-256: sha256, P-384: sha384, P-521: sha512; a P-384 key over a
        sha256 digest does not verify), and RSA (PKCS#1 v1.5, then PSS) over sha256; Ed25519 signs
        messages, not digests, so it never verifies here.
        """
        from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

        key = self._key()
        if isinstance(key, ec.EllipticCurvePublicKey):
            hash_cls = _EC_HASHES.get(key.curve.name)
            if hash_cls is None or hash_cls().name != algorithm:
                return False
            prehashed = Prehashed(hash_cls())
        elif algorithm != "sha256":
            return False
        else:
            prehashed = Prehashed(hashes.SHA256())
        try:
            if isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(signature, digest, ec.ECDSA(prehashed))
                return True
            if isinstance(key, rsa.RSAPublicKey):
                for scheme in (padding.PKCS1v15(),
                               padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)):
                    try:
                        key.verify(signature, digest, scheme, prehashed)
                        return True
                    except InvalidSignature:
                        continue
            return False
        except (InvalidSignature, ValueError):
            return False


def _verify_rsa(key: rsa.RSAPublicKey, signature: bytes, data: bytes) -> bool:
    schemes: list[padding.AsymmetricPadding] = [
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO),
        padding.PKCS1v15(),
    ]
    for scheme in schemes:
        try:
            key.verify(signature, data, scheme, hashes.SHA256())
            return True
        except InvalidSignature:
            continue
    return False


_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.S)


def load_public_key(pem: bytes, *, name: str) -> PublicKey:
    """Parse a PEM SubjectPublicKeyInfo (ECDSA P-256/P-384/P-521, Ed25519, RSA >= 2048): one PEM block and nothing
    around it but white space (a second key in the file would be silently left out of what the file pins)."""
    pem = pem.removeprefix(b"\xef\xbb\xbf")  # (a byte-order mark, as some editors write one)
    blocks, block = pem.count(b"-----BEGIN"), _PEM_BLOCK.search(pem)
    if blocks > 1 or (block is not None and (pem[:block.start()] + pem[block.end():]).strip()):
        what = "more than one PEM block" if blocks > 1 else "text around its PEM block"
        raise TrustConfigError(f"{name} holds {what}; a pinned key file holds one public key and nothing else")
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise TrustConfigError(f"{name} is not a PEM public key ({e}); export one with "
                               "'attest key generate' or 'attest key export'") from e
    if isinstance(key, ed25519.Ed25519PublicKey) and small_order(key.public_bytes_raw()):
        raise TrustConfigError(f"{name} is an Ed25519 key of small order (or not canonically encoded), for which "
                               "signatures can be made without any private key; pin a key made by a real key pair")
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048:
        raise TrustConfigError(f"{name} is a {key.key_size}-bit RSA key; at least 2048 bits are required")
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in _EC_HASHES:
        raise TrustConfigError(f"{name} uses curve {key.curve.name}, which attest does not accept")
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        raise TrustConfigError(f"{name} holds a {type(key).__name__}; use ECDSA, Ed25519 or RSA")
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return PublicKey(name=name, spki_der=der)


_P = 2**255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P


def small_order(raw: bytes) -> bool:
    """Whether an Ed25519 public key (its 32 bytes) is no point of the curve's prime-order group: not canonically
    encoded, not on the curve, or of small order (eight times it is the identity). Such a key verifies signatures
    that no private key made (a constant R and S = 0), which RFC 8032 verification does not refuse."""
    y, sign = int.from_bytes(raw, "little") & ((1 << 255) - 1), raw[31] >> 7
    if y >= _P:
        return True
    u, v = (y * y - 1) % _P, (_D * y * y + 1) % _P
    x = u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P) % _P
    if (v * x * x - u) % _P:
        x = x * pow(2, (_P - 1) // 4, _P) % _P
    if (v * x * x - u) % _P or (x == 0 and sign):
        return True
    if x & 1 != sign:
        x = _P - x
    for _ in range(3):  # doubled three times: the identity (0, 1) for a point of order 1, 2, 4 or 8
        xx, yy, xy = x * x % _P, y * y % _P, x * y % _P
        x, y = 2 * xy * pow(yy - xx, _P - 2, _P) % _P, (yy + xx) * pow(2 + xx - yy, _P - 2, _P) % _P
    return x == 0 and y == 1


def load_public_key_file(path: Path) -> PublicKey:
    data = read_file(path, what="public key", limit=MAX_KEY_BYTES, error=TrustConfigError)
    return load_public_key(data, name=str(path))


@dataclass(frozen=True)
class SigstoreIdentity:
    """A keyless signer pinned by its certificate identity and OIDC issuer.

    The optional GitHub fields narrow it further, each read from a Fulcio
    certificate extension (https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md).
    """

    issuer: str
    identity: str | None = None
    identity_regexp: str | None = None
    """A regular expression that must match the WHOLE identity (unlike cosign's, it is anchored)."""
    source_repository: str | None = None
    """Source Repository URI (1.3.6.1.4.1.57264.1.12), compared as a repository (github.com/acme/app)."""
    source_ref: str | None = None
    """Source Repository Ref (1.3.6.1.4.1.57264.1.14), e.g. refs/heads/main."""
    signer_workflow: str | None = None
    """Build Signer URI (1.3.6.1.4.1.57264.1.9), @REF optional: github.com/acme/app/.github/workflows/f.yml"""
    github_hosted: bool = False
    """Runner Environment (1.3.6.1.4.1.57264.1.11) must be github-hosted."""

    def describe(self) -> str:
        """One line for messages: what this identity requires."""
        parts = [f"identity {self.identity!r}" if self.identity is not None
                 else f"identity matching {self.identity_regexp!r}", f"issuer {self.issuer!r}"]
        if self.source_repository:
            parts.append(f"source repository {self.source_repository!r}")
        if self.source_ref:
            parts.append(f"source ref {self.source_ref!r}")
        if self.signer_workflow:
            parts.append(f"signer workflow {self.signer_workflow!r}")
        if self.github_hosted:
            parts.append("a GitHub-hosted runner")
        return ", ".join(parts)


@dataclass(frozen=True)
class Identity:
    """A named signer a policy trusts: pinned keys and/or a Sigstore identity.

    ``not_before`` / ``not_after`` bound WHEN the identity may be used to verify (they are
    compared with the verification time, never with a time the evidence claims: a key-signed
    envelope carries no trusted time). ``revoked`` names keys (by fingerprint) this identity
    must never verify with, whatever else says so.
    """

    name: str
    keys: tuple[PublicKey, ...] = ()
    sigstore: tuple[SigstoreIdentity, ...] = ()
    not_before: datetime | None = None
    """The identity verifies nothing before this time (a key being rolled out)."""
    not_after: datetime | None = None
    """The identity verifies nothing after this time (a key being retired: a grace period)."""
    revoked: frozenset[str] = frozenset()
    """Fingerprints (:attr:`PublicKey.fingerprint`) of keys that never verify anything."""

    def __post_init__(self) -> None:
        # a time without a zone is read as UTC, so that every comparison is between aware times
        for name in ("not_before", "not_after"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                object.__setattr__(self, name, value.replace(tzinfo=UTC))

    def describe(self) -> str:
        return self.name

    def valid_at(self, at: datetime) -> bool:
        """True if ``at`` is inside the identity's validity window (both ends inclusive)."""
        at = _aware(at)
        return not ((self.not_before is not None and at < self.not_before)
                    or (self.not_after is not None and at > self.not_after))

    def usable_keys(self, at: datetime | None = None) -> tuple[PublicKey, ...]:
        """The pinned keys that may verify at ``at`` (default: now): none outside the window, never a revoked one."""
        if not self.valid_at(_now(at)):
            return ()
        return tuple(key for key in self.keys if key.fingerprint not in self.revoked)

    def usable(self, at: datetime | None = None) -> Identity:
        """This identity as it may be used at ``at`` (default: now): revoked keys dropped; outside its
        window, no keys and no Sigstore identities at all."""
        at = _now(at)
        return replace(self, keys=self.usable_keys(at), sigstore=self.sigstore if self.valid_at(at) else ())

    def unusable_because(self, at: datetime | None = None) -> str | None:
        """Why the identity, or some of its keys, cannot be used at ``at`` (for messages); None if all can."""
        at = _now(at)
        if self.not_before is not None and at < self.not_before:
            return f"identity {self.name!r} is not valid before {self.not_before.isoformat()}"
        if self.not_after is not None and at > self.not_after:
            return f"identity {self.name!r} is not valid after {self.not_after.isoformat()}"
        revoked = [key.name for key in self.keys if key.fingerprint in self.revoked]
        if revoked:
            return f"identity {self.name!r} has revoked key(s) {', '.join(revoked)}"
        return None


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _now(at: datetime | None) -> datetime:
    return datetime.now(UTC) if at is None else _aware(at)
