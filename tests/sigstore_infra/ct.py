"""A certificate transparency log that only does what Fulcio needs: sign SCTs for precertificates.

Nothing is stored: Sigstore clients check the SCT's signature (RFC 6962 §3.2), never query the log.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat import asn1
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID

from ._encoding import key_id

_SCT_V1 = 0
_SIGNATURE_TYPE_CERTIFICATE_TIMESTAMP = 0
_ENTRY_TYPE_PRECERT = 1
_HASH_SHA256 = 4  # TLS HashAlgorithm
_SIGNATURE_ECDSA = 3  # TLS SignatureAlgorithm


def _u24(length: int) -> bytes:
    """A TLS `opaque<1..2^24-1>` length prefix."""
    return struct.pack(">I", length)[1:]


@dataclass
class CTLog:
    """A CT log key that issues version 1 SCTs over precertificates (ECDSA P-256, SHA-256)."""

    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    @property
    def log_id(self) -> bytes:
        """The 32-byte log id, the SHA-256 of the log's public key."""
        return key_id(self.key.public_key())

    def sign_precertificate(self, *, tbs_precertificate: bytes, issuer_key_hash: bytes) -> bytes:
        """Return one TLS-encoded `SignedCertificateTimestamp` over a precertificate entry.

        `tbs_precertificate` is the TBSCertificate without the poison and SCT extensions;
        `issuer_key_hash` is the SHA-256 of the issuing CA's SubjectPublicKeyInfo.
        """
        timestamp_ms = time.time_ns() // 1_000_000
        extensions = b""
        signed = b"".join(
            [
                struct.pack(
                    ">BBQH", _SCT_V1, _SIGNATURE_TYPE_CERTIFICATE_TIMESTAMP, timestamp_ms, _ENTRY_TYPE_PRECERT
                ),
                issuer_key_hash,
                _u24(len(tbs_precertificate)),
                tbs_precertificate,
                struct.pack(">H", len(extensions)),
                extensions,
            ]
        )
        signature = self.key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return b"".join(
            [
                struct.pack(">B", _SCT_V1),
                self.log_id,
                struct.pack(">QH", timestamp_ms, len(extensions)),
                extensions,
                struct.pack(">BBH", _HASH_SHA256, _SIGNATURE_ECDSA, len(signature)),
                signature,
            ]
        )


def sct_list_extension(scts: list[bytes]) -> x509.UnrecognizedExtension:
    """The X.509 SCT list extension (RFC 6962 §3.3): an OCTET STRING holding a TLS SCT list.

    `cryptography` cannot build a `PrecertificateSignedCertificateTimestamps` value, so the
    extension is written raw; it parses back as the typed extension.
    """
    serialized = b"".join(struct.pack(">H", len(sct)) + sct for sct in scts)
    sct_list = struct.pack(">H", len(serialized)) + serialized
    return x509.UnrecognizedExtension(
        ExtensionOID.PRECERT_SIGNED_CERTIFICATE_TIMESTAMPS, asn1.encode_der(sct_list)
    )
