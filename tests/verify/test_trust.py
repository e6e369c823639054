"""verify.trust: loading pinned keys, verifying every accepted signature form, keyid ordering."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, padding, rsa, x25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tests.verify import _factory as f
from verify.errors import TrustConfigError
from verify.trust import PublicKey, load_public_key, load_public_key_file

DATA = b"DSSEv1 28 application/vnd.in-toto+json 2 {}"


def _spki_pem(public_key: Any) -> bytes:
    pem: bytes = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem


@pytest.mark.parametrize(
    ("kind", "algorithm"),
    [
        ("p256", "ecdsa-secp256r1"),
        ("p384", "ecdsa-secp384r1"),
        ("p521", "ecdsa-secp521r1"),
        ("ed25519", "ed25519"),
        ("rsa2048", "rsa-2048"),
        ("rsa3072", "rsa-3072"),
    ],
)
def test_load_supported_keys_and_verify(kind: str, algorithm: str) -> None:
    private = f.private_key(kind)
    key = load_public_key(f.public_pem(private), name="k.pem")
    assert key.name == "k.pem"
    assert key.algorithm == algorithm
    assert key.fingerprint == f.fingerprint(private)
    assert key.pem() == f.public_pem(private)
    assert key.verify(f.sign(private, DATA), DATA)
    assert not key.verify(f.sign(private, DATA), DATA + b" ")
    # a different key of the same kind does not verify it
    assert not load_public_key(f.public_pem(f.private_key(kind, 1)), name="o").verify(
        f.sign(private, DATA), DATA
    )


@pytest.mark.parametrize("kind", ["p256", "p384", "p521"])
def test_ecdsa_der_and_raw_r_s_both_verify(kind: str) -> None:
    private = f.private_key(kind)
    key = load_public_key(f.public_pem(private), name="k")
    der = f.sign(private, DATA)
    raw = f.sign(private, DATA, scheme="raw")
    assert der[0] == 0x30 and len(raw) == 2 * ((private.curve.key_size + 7) // 8)  # type: ignore[union-attr]
    assert key.verify(der, DATA)
    assert key.verify(raw, DATA)


def test_raw_signature_whose_r_starts_with_0x30_verifies() -> None:
    # regression: a raw r||s whose first byte happened to be 0x30 (the DER SEQUENCE tag, 1 in 256
    # signatures) was taken for DER and refused
    private = f.private_key("p256")
    key = load_public_key(f.public_pem(private), name="k")
    for i in range(20_000):
        message = b"message %d" % i
        raw = f.sign(private, message, scheme="raw")
        if raw[0] == 0x30:
            break
    else:
        pytest.fail("no raw signature starting with 0x30 in 20000 tries")
    assert key.verify(raw, message)
    assert not key.verify(raw, message + b"!")


def test_rsa_pss_and_pkcs1v15_verify() -> None:
    private = f.private_key("rsa2048")
    assert isinstance(private, rsa.RSAPrivateKey)
    key = load_public_key(f.public_pem(private), name="k")
    assert key.verify(f.sign(private, DATA), DATA)  # PSS, salt = digest length
    assert key.verify(f.sign(private, DATA, scheme="pkcs1v15"), DATA)
    max_salt = private.sign(
        DATA,
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH),
        hashes.SHA256(),
    )
    assert key.verify(max_salt, DATA)  # what AWS KMS and some tools produce
    sha512 = private.sign(DATA, padding.PKCS1v15(), hashes.SHA512())
    assert not key.verify(sha512, DATA)  # only SHA-256 is accepted


@pytest.mark.parametrize("kind", ["p256", "p384", "ed25519", "rsa2048"])
@pytest.mark.parametrize("damage", ["truncated", "extended", "garbled", "empty", "zeros"])
def test_damaged_signature_returns_false_never_raises(kind: str, damage: str) -> None:
    private = f.private_key(kind)
    key = load_public_key(f.public_pem(private), name="k")
    sig = f.sign(private, DATA, scheme="raw" if kind.startswith("p") else "default")
    bad = {
        "truncated": sig[:-1],
        "extended": sig + b"\x00",
        "garbled": bytes(b ^ 0x5A for b in sig),
        "empty": b"",
        "zeros": bytes(len(sig)),
    }[damage]
    assert key.verify(bad, DATA) is False


def test_ecdsa_der_garbage_with_sequence_tag_returns_false() -> None:
    key = load_public_key(f.public_pem(f.private_key("p256")), name="k")
    assert key.verify(b"\x30\x06\x02\x01\x01\x02\x01", DATA) is False  # truncated DER
    assert key.verify(b"\x30" + bytes(63), DATA) is False  # 64 bytes, looks like DER and like r||s


def test_ecdsa_signature_by_another_curve_length_returns_false() -> None:
    key = load_public_key(f.public_pem(f.private_key("p384")), name="k")
    assert key.verify(f.sign(f.private_key("p256"), DATA, scheme="raw"), DATA) is False


def test_public_key_on_unaccepted_curve_built_directly_never_verifies() -> None:
    # load_public_key refuses such keys; a PublicKey made from DER directly must still fail closed
    private = ec.generate_private_key(ec.SECP256K1())
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key = PublicKey(name="k1", spki_der=der)
    assert key.verify(private.sign(DATA, ec.ECDSA(hashes.SHA256())), DATA) is False
    r, s = decode_dss_signature(private.sign(DATA, ec.ECDSA(hashes.SHA256())))
    assert key.verify(r.to_bytes(32, "big") + s.to_bytes(32, "big"), DATA) is False


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        (b"", "k.pem is not a PEM public key"),
        (b"hello", "k.pem is not a PEM public key"),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "k.pem is not a PEM public key"),
        (None, "k.pem is not a PEM public key"),  # replaced below by a private key PEM
    ],
)
def test_not_a_pem_public_key(pem: bytes | None, message: str) -> None:
    if pem is None:
        pem = f.private_key("p256").private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    with pytest.raises(TrustConfigError, match=message) as info:
        load_public_key(pem, name="k.pem")
    assert "attest key export" in str(info.value)


def test_rsa_1024_refused() -> None:
    pem = _spki_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key())
    with pytest.raises(
        TrustConfigError, match=r"k\.pem is a 1024-bit RSA key; at least 2048 bits are required"
    ):
        load_public_key(pem, name="k.pem")


def test_unsupported_curve_refused() -> None:
    pem = _spki_pem(ec.generate_private_key(ec.SECP256K1()).public_key())
    with pytest.raises(TrustConfigError, match=r"k\.pem uses curve secp256k1, which attest does not accept"):
        load_public_key(pem, name="k.pem")


@pytest.mark.parametrize(
    ("make", "type_name"),
    [
        (lambda: dsa.generate_private_key(key_size=1024).public_key(), "DSAPublicKey"),
        (lambda: x25519.X25519PrivateKey.generate().public_key(), "X25519PublicKey"),
        (lambda: ed448.Ed448PrivateKey.generate().public_key(), "Ed448PublicKey"),
    ],
)
def test_unsupported_key_type_refused(make: object, type_name: str) -> None:
    pem = _spki_pem(make())  # type: ignore[operator]
    with pytest.raises(TrustConfigError, match=rf"k.pem holds a \w*{type_name}; use ECDSA, Ed25519 or RSA"):
        load_public_key(pem, name="k.pem")


def test_load_public_key_file(tmp_path: Path) -> None:
    path = f.write_pem(tmp_path, "dev.pub.pem", f.private_key("ed25519"))
    key = load_public_key_file(path)
    assert key.name == str(path)
    assert (
        key.fingerprint == hashlib.sha256(key.spki_der).hexdigest() == f.fingerprint(f.private_key("ed25519"))
    )


def test_load_public_key_file_missing(tmp_path: Path) -> None:
    with pytest.raises(
        TrustConfigError, match=r"cannot read public key .*nope\.pem: No such file or directory"
    ):
        load_public_key_file(tmp_path / "nope.pem")


def test_load_public_key_file_not_pem_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.pem"
    path.write_bytes(b"\x00\x01")
    with pytest.raises(TrustConfigError, match=r"garbage\.pem is not a PEM public key"):
        load_public_key_file(path)
