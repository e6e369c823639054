"""Local key signer: a PEM (PKCS#8) private key on disk, signing through securesystemslib.

The password of an encrypted key comes from ``ATTEST_KEY_PASSWORD``; it is
never printed or logged. A key file that group or others can read is refused
unless the caller opts out (``insecure_permissions=True``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from attest.errors import SignerError
from verify.trust import load_public_key

__all__ = ["KEY_TYPES", "LocalKeySigner", "generate", "load"]

KEY_TYPES = ("ecdsa-p256", "ecdsa-p384", "ed25519", "rsa-3072")
PASSWORD_ENV = "ATTEST_KEY_PASSWORD"  # noqa: S105 (the variable's name, not a password)


#: The longest key password OpenSSL takes (PEM encryption reads at most 1023 bytes of it).
MAX_PASSWORD_BYTES = 1023


def _password() -> bytes | None:
    value = os.environ.get(PASSWORD_ENV)
    if not value:
        return None
    try:
        password = value.encode("utf-8")
    except UnicodeEncodeError:  # (bytes the environment held that are not UTF-8): never quoted
        raise SignerError(f"{PASSWORD_ENV} is not UTF-8 text; set it to the key's password as text") from None
    if len(password) > MAX_PASSWORD_BYTES:
        raise SignerError(f"{PASSWORD_ENV} is longer than {MAX_PASSWORD_BYTES} bytes, more than a PEM key's "
                          "encryption takes; choose a shorter password")
    return password


class LocalKeySigner:
    """Signs with a private key held in memory."""

    def __init__(self, private_key: Any, *, name: str) -> None:
        from verify import sslib

        sslib.load()  # without boto3, which a local key does not need (verify/sslib.py)
        from securesystemslib.signer import CryptoSigner, SSlibKey  # type: ignore[attr-defined]

        public = private_key.public_key()
        self._pem: bytes = public.public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        self._keyid = load_public_key(self._pem, name=name).fingerprint
        self.name = name
        try:
            self._signer = CryptoSigner(private_key, SSlibKey.from_crypto(public, keyid=self._keyid))
        except ValueError as e:
            raise SignerError(f"{name}: this kind of key cannot sign ({e})") from e

    @property
    def keyid(self) -> str:
        return self._keyid

    def public_key_pem(self) -> bytes:
        return self._pem

    def sign(self, data: bytes) -> bytes:
        signature: str = self._signer.sign(data).signature
        return bytes.fromhex(signature)


def load(path: str | Path, *, insecure_permissions: bool = False, **_: object) -> LocalKeySigner:
    """Load the PEM private key at ``path``."""
    from verify.files import read_file_and_mode
    from verify.limits import MAX_KEY_BYTES

    path = Path(path)
    data, mode = read_file_and_mode(path, what="signing key", limit=MAX_KEY_BYTES, error=SignerError)
    if b"PUBLIC KEY" in data and b"PRIVATE KEY" not in data:
        raise SignerError(f"{path} is a public key; --signer needs the private key (PREFIX.pem, not PREFIX.pub.pem)")
    if mode & (stat.S_IRWXG | stat.S_IRWXO) and not insecure_permissions:
        exposed = "readable" if mode & (stat.S_IRGRP | stat.S_IROTH) else "writable"
        if not mode & (stat.S_IRGRP | stat.S_IROTH | stat.S_IWGRP | stat.S_IWOTH):
            exposed = "accessible"
        raise SignerError(f"signing key {path} is {exposed} by other users (mode {stat.S_IMODE(mode):o}); "
                          f"run 'chmod 600 {path}' or pass --insecure-key-permissions")
    password = _password()  # (its own refusal, before the key's)
    try:
        private_key = serialization.load_pem_private_key(data, password=password)
    except TypeError as e:
        if password is None:
            raise SignerError(f"signing key {path} is encrypted; set {PASSWORD_ENV} to its password") from e
        raise SignerError(f"signing key {path} is not encrypted, but {PASSWORD_ENV} is set; unset it") from e
    except ValueError as e:
        if password is not None and b"ENCRYPTED" in data:
            raise SignerError(f"cannot decrypt signing key {path}: wrong {PASSWORD_ENV}") from e
        raise SignerError(f"{path} is not a PEM private key") from e
    except Exception as e:  # cryptography raises UnsupportedAlgorithm and others for exotic keys
        raise SignerError(f"{path} is not a usable PEM private key ({type(e).__name__})") from e
    if not isinstance(private_key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey):
        raise SignerError(f"{path} holds a {type(private_key).__name__}; use ECDSA, Ed25519 or RSA")
    return LocalKeySigner(private_key, name=str(path))


def generate(key_type: str = "ecdsa-p256") -> tuple[bytes, bytes]:
    """A new key pair as (PKCS#8 private PEM, SubjectPublicKeyInfo PEM); encrypted if the password is set."""
    private_key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
    if key_type == "ecdsa-p256":
        private_key = ec.generate_private_key(ec.SECP256R1())
    elif key_type == "ecdsa-p384":
        private_key = ec.generate_private_key(ec.SECP384R1())
    elif key_type == "ed25519":
        private_key = ed25519.Ed25519PrivateKey.generate()
    elif key_type == "rsa-3072":
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    else:
        raise SignerError(f"unknown key type {key_type!r}; expected one of {list(KEY_TYPES)}")
    password = _password()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption())
    private_pem = private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    public_pem = private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo)
    return private_pem, public_pem
