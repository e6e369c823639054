"""attest.signers: every envelope is checked with the signer's own public key before it is used."""

from __future__ import annotations

from pathlib import Path

import pytest

from attest.errors import SignerError
from attest.signers import from_uri, sign_envelope
from attest.signers.key import LocalKeySigner
from tests.conftest import make_keypair
from verify.trust import Identity, load_public_key
from verify.verifier import verify_signature


class _WrongKey:
    """A backend that signs with one key but reports another (as a misconfigured KMS alias would)."""

    def __init__(self, signs: LocalKeySigner, claims: LocalKeySigner) -> None:
        self._signs, self._claims = signs, claims

    @property
    def keyid(self) -> str:
        return self._claims.keyid

    def public_key_pem(self) -> bytes:
        return self._claims.public_key_pem()

    def sign(self, data: bytes) -> bytes:
        return self._signs.sign(data)


def test_signed_envelope_verifies(tmp_path: Path) -> None:
    pair = make_keypair(tmp_path, "k")
    signer = from_uri(f"key:{pair.private}")
    envelope = sign_envelope(signer, payload_type="application/vnd.in-toto+json", payload=b"{}")
    key = load_public_key(pair.public.read_bytes(), name="k")
    assert envelope.signatures[0].keyid == key.fingerprint
    assert verify_signature(envelope, [Identity(name="k", keys=(key,))], source="test").name == "k"


def test_a_signature_that_does_not_match_the_public_key_is_refused(tmp_path: Path) -> None:
    one, two = make_keypair(tmp_path, "one"), make_keypair(tmp_path, "two")
    signer = _WrongKey(from_uri(str(one.private)), from_uri(str(two.private)))  # type: ignore[arg-type]
    with pytest.raises(SignerError, match="does not verify with its own public key"):
        sign_envelope(signer, payload_type="application/vnd.in-toto+json", payload=b"{}")
