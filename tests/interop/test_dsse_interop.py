"""DSSE interoperability: the spec's test vector, securesystemslib's verifier, and a third-party provenance."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.signer import CryptoSigner, SSlibKey

from tests.conftest import CONFORMANCE, AttestRunner, KeyPair
from verify.formats.envelope import Envelope
from verify.trust import Identity, load_public_key
from verify.verifier import verify_signature

VECTOR = CONFORMANCE / "dsse" / "test_vector_hello_world.json"
VECTOR_KEY = CONFORMANCE / "dsse" / "test_vector_hello_world.pub.pem"


def test_dsse_spec_vector_verifies() -> None:
    envelope = Envelope.from_dict(json.loads(VECTOR.read_bytes())["envelope"])
    key = load_public_key(VECTOR_KEY.read_bytes(), name="spec key")
    assert len(envelope.signatures[0].sig) == 64  # raw r||s, not DER
    identity = Identity(name="spec", keys=(key,))
    assert verify_signature(envelope, [identity], source="vector") is identity


def test_dsse_spec_vector_fails_when_changed() -> None:
    from verify.errors import SignatureInvalid

    original = json.loads(VECTOR.read_bytes())["envelope"]
    key = load_public_key(VECTOR_KEY.read_bytes(), name="spec key")
    changed = copy.deepcopy(original)
    changed["payloadType"] = "http://example.com/Goodbye"
    with pytest.raises(SignatureInvalid):
        verify_signature(Envelope.from_dict(changed), [Identity(name="spec", keys=(key,))], source="vector")


def test_our_envelopes_verify_with_securesystemslib(built: Path, keys: dict[str, KeyPair]) -> None:
    line = json.loads((built / "provenance.intoto.jsonl").read_bytes())
    public = serialization.load_pem_public_key(keys["dev"].public.read_bytes())
    keyid = line["signatures"][0]["keyid"]
    sslib_key = SSlibKey.from_crypto(public, keyid=keyid)
    envelope = SslibEnvelope.from_dict(copy.deepcopy(line))
    verified = envelope.verify([sslib_key], 1)
    assert keyid in verified
    assert envelope.payload_type == "application/vnd.in-toto+json"
    # and securesystemslib notices a changed payload
    tampered = copy.deepcopy(line)
    tampered["payload"] = base64.b64encode(base64.b64decode(line["payload"]).replace(b"app.tar", b"app.tXr")).decode()
    from securesystemslib.exceptions import VerificationError

    with pytest.raises(VerificationError):
        SslibEnvelope.from_dict(tampered).verify([sslib_key], 1)


def _third_party_provenance(artifact: Path, signer: CryptoSigner) -> bytes:
    """A SLSA v1 provenance as another tool writes it: sha256 only, keyid empty, signed by securesystemslib."""
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": artifact.name, "digest": {"sha256": hashlib.sha256(artifact.read_bytes()).hexdigest()}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1",
                "externalParameters": {"workflow": {"ref": "refs/heads/main", "repository": "https://github.com/acme/app",
                                                    "path": ".github/workflows/release.yml"}},
                "internalParameters": {"github": {"event_name": "push"}},
                "resolvedDependencies": [{"uri": "git+https://github.com/acme/app@refs/heads/main",
                                          "digest": {"gitCommit": "a" * 40}}],
            },
            "runDetails": {"builder": {"id": "https://github.com/actions/runner/github-hosted"},
                           "metadata": {"invocationId": "https://github.com/acme/app/actions/runs/1/attempts/1"}},
        },
    }
    envelope = SslibEnvelope(payload=json.dumps(statement, indent=2).encode(),
                             payload_type="application/vnd.in-toto+json", signatures={})
    envelope.sign(signer)
    document = envelope.to_dict()
    for signature in document["signatures"]:
        signature["keyid"] = ""
    return json.dumps(document).encode() + b"\n"


@pytest.mark.parametrize("scheme", ["ecdsa", "ed25519"])
def test_third_party_provenance_verifies_with_key(scheme: str, tmp_path: Path, attest: AttestRunner) -> None:
    signer = CryptoSigner.generate_ecdsa() if scheme == "ecdsa" else CryptoSigner.generate_ed25519()
    public_pem = signer.public_key.to_dict()["keyval"]["public"]
    (tmp_path / "key.pub.pem").write_text(public_pem if public_pem.startswith("-----") else
                                          _ed25519_pem(public_pem))
    artifact = tmp_path / "app.whl"
    artifact.write_bytes(b"a third-party artefact")
    (tmp_path / "att.intoto.jsonl").write_bytes(_third_party_provenance(artifact, signer))
    args = ("--attestation", "att.intoto.jsonl", "--key", "key.pub.pem", "--source-uri", "github.com/acme/app",
            "--source-branch", "main", "--builder-id", "https://github.com/actions/runner/github-hosted")
    result = attest("verify", "app.whl", *args, cwd=tmp_path)
    assert result.code == 0, result
    artifact.write_bytes(b"another artefact")
    result = attest("verify", "app.whl", *args, cwd=tmp_path)
    assert result.code == 1 and "is not among the 1 subject(s)" in result.err


def _ed25519_pem(hex_public: str) -> str:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(hex_public))
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
