"""Small encoding helpers shared by the local Sigstore services."""

from __future__ import annotations

import base64
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def b64(data: bytes) -> str:
    """Standard base64 with padding, as every Sigstore JSON format uses."""
    return base64.b64encode(data).decode("ascii")


def spki_der(key: ec.EllipticCurvePublicKey) -> bytes:
    """The DER SubjectPublicKeyInfo of `key`."""
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(key: ec.EllipticCurvePublicKey) -> bytes:
    """RFC 6962 key id: SHA-256 of the DER SubjectPublicKeyInfo (Rekor's log id, the CT log id)."""
    return hashlib.sha256(spki_der(key)).digest()


def pem(certificate: x509.Certificate) -> str:
    """PEM text of `certificate`."""
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
