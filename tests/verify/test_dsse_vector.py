"""The DSSE specification's test vector (raw r||s ECDSA P-256) through envelope, trust and verifier."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import CONFORMANCE
from verify.errors import SignatureInvalid
from verify.formats.envelope import Envelope, Signature
from verify.trust import Identity, load_public_key
from verify.verifier import verify_signature

VECTORS = CONFORMANCE / "dsse"


@pytest.fixture(scope="module")
def vector() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / "test_vector_hello_world.json").read_text())
    return data


@pytest.fixture(scope="module")
def identity() -> Identity:
    pem = (VECTORS / "test_vector_hello_world.pub.pem").read_bytes()
    return Identity(name="dsse-spec", keys=(load_public_key(pem, name="dsse-spec"),))


def test_vector_pae_and_fields(vector: dict[str, Any]) -> None:
    env = Envelope.from_dict(vector["envelope"])
    assert env.payload_type == vector["payloadType"] == "http://example.com/HelloWorld"
    assert env.payload == vector["payload_utf8"].encode() == b"hello world"
    assert env.pae() == vector["pae_utf8"].encode()
    assert len(env.signatures) == 1 and len(env.signatures[0].sig) == 64  # raw r||s, not DER
    assert env.signatures[0].keyid == "66301bbf"


def test_vector_public_key_matches_its_private_scalar(vector: dict[str, Any], identity: Identity) -> None:
    private = ec.derive_private_key(int(vector["private_key_d"]), ec.SECP256R1())
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert identity.keys[0].pem() == pem
    assert vector["public_key_pem"].encode() == pem


def test_vector_signature_is_rfc6979_deterministic_over_pae(vector: dict[str, Any]) -> None:
    # re-sign the PAE independently: deterministic ECDSA must give exactly the vector's r||s
    private = ec.derive_private_key(int(vector["private_key_d"]), ec.SECP256R1())
    der = private.sign(vector["pae_utf8"].encode(), ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    assert der == base64.b64decode(vector["signature_der_b64"])
    raw = base64.b64decode(vector["envelope"]["signatures"][0]["sig"])
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(der)
    assert raw == r.to_bytes(32, "big") + s.to_bytes(32, "big")


def test_vector_verifies(vector: dict[str, Any], identity: Identity) -> None:
    env = Envelope.from_dict(vector["envelope"])
    assert verify_signature(env, [identity], source="vector") is identity
    key = identity.keys[0]
    assert key.verify(env.signatures[0].sig, env.pae())
    assert key.verify(base64.b64decode(vector["signature_der_b64"]), env.pae())  # the same signature as DER
    assert key.algorithm == "ecdsa-secp256r1"


def test_vector_verifies_whatever_the_keyid(vector: dict[str, Any], identity: Identity) -> None:
    env = Envelope.from_dict(vector["envelope"])
    for keyid in ("", "unknown", identity.keys[0].fingerprint):
        hinted = Envelope(env.payload_type, env.payload, (Signature(keyid, env.signatures[0].sig),))
        assert verify_signature(hinted, [identity], source="vector") is identity


def test_flipping_any_byte_of_payload_or_signature_fails(vector: dict[str, Any], identity: Identity) -> None:
    env = Envelope.from_dict(vector["envelope"])
    key = identity.keys[0]
    sig = env.signatures[0].sig
    for i in range(len(env.payload)):
        for mask in (0x01, 0x80):
            payload = bytearray(env.payload)
            payload[i] ^= mask
            changed = Envelope(env.payload_type, bytes(payload), env.signatures)
            assert not key.verify(sig, changed.pae()), (i, mask)
    for i in range(len(sig)):
        for mask in (0x01, 0x80):
            bad = bytearray(sig)
            bad[i] ^= mask
            assert not key.verify(bytes(bad), env.pae()), (i, mask)
    # and through the verifier, one of each, with the message a pipeline would print
    payload = bytearray(env.payload)
    payload[0] ^= 1
    with pytest.raises(SignatureInvalid, match="vector: no signature verifies with a trusted key"):
        verify_signature(
            Envelope(env.payload_type, bytes(payload), env.signatures), [identity], source="vector"
        )
    with pytest.raises(SignatureInvalid, match="the evidence was altered or signed by an untrusted key"):
        verify_signature(
            Envelope("http://example.com/HelloWorlD", env.payload, env.signatures),
            [identity],
            source="vector",
        )
