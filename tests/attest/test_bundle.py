"""``attest build --bundle`` with a key: a Sigstore bundle v0.3 that other tools parse and verify.

The bundle is checked with tools that are not attest's: sigstore-models (the pydantic model of the
protobuf-specs that sigstore-python parses bundles with) and securesystemslib's DSSE verifier.
"""

from __future__ import annotations

import base64
import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.exceptions import VerificationError as SslibVerificationError
from securesystemslib.signer import SSlibKey  # type: ignore[attr-defined]
from sigstore.models import Bundle as SigstorePythonBundle
from sigstore.models import InvalidBundle
from sigstore_models.bundle.v1 import Bundle as SpecBundle

from attest.bundle import BUNDLE_MEDIA_TYPE, bundle_path, key_bundle
from tests.conftest import AttestRunner, KeyPair, _clean_env, make_keypair
from verify.errors import SignatureInvalid
from verify.formats.envelope import Envelope, Signature
from verify.trust import Identity, load_public_key_file
from verify.verifier import verify_signature

KEY_TYPES = ["ecdsa-p256", "ed25519"]


def _build(repo: Path, key: KeyPair, attest: AttestRunner, *extra: str) -> Path:
    result = attest("build", "--signer", key.private, "--artifact", "build.py", *extra, cwd=repo)
    assert result.code == 0, result
    return repo


@pytest.fixture(params=KEY_TYPES)
def signed(request: pytest.FixtureRequest, repo: Path, tmp_path: Path,
           attest: AttestRunner) -> tuple[Path, KeyPair]:
    """``repo`` after ``attest build --bundle`` with a P-256 or an Ed25519 key."""
    key = make_keypair(tmp_path, "dev", request.param)
    return _build(repo, key, attest, "--bundle"), key


def _bundle(repo: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((repo / "provenance.sigstore.json").read_bytes())
    return document


@pytest.mark.parametrize(("output", "expected"), [
    ("provenance.intoto.jsonl", "provenance.sigstore.json"),
    ("out/app-1.2.intoto.jsonl", "out/app-1.2.sigstore.json"),
    ("release.jsonl", "release.sigstore.json"),
    ("release.json", "release.sigstore.json"),
    ("release", "release.sigstore.json"),
])
def test_bundle_goes_beside_the_envelope_file(output: str, expected: str) -> None:
    assert bundle_path(Path(output)) == Path(expected)


def test_bundle_holds_the_envelope_line_and_the_key_hint(signed: tuple[Path, KeyPair]) -> None:
    repo, key = signed
    bundle = _bundle(repo)
    line = json.loads((repo / "provenance.intoto.jsonl").read_bytes())
    keyid = load_public_key_file(key.public).fingerprint

    assert bundle["mediaType"] == BUNDLE_MEDIA_TYPE == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert bundle["verificationMaterial"] == {"publicKey": {"hint": keyid}, "tlogEntries": []}
    assert bundle["dsseEnvelope"] == line
    assert [s["keyid"] for s in line["signatures"]] == [keyid]
    # one line, so that a store's JSON Lines files can hold it too
    assert (repo / "provenance.sigstore.json").read_bytes().count(b"\n") == 1


def test_bundle_round_trips_through_the_protobuf_specs_model(signed: tuple[Path, KeyPair]) -> None:
    text = (signed[0] / "provenance.sigstore.json").read_text()

    parsed = SpecBundle.from_json(text)  # strict: unknown or misspelt fields are refused
    ours = Envelope.from_dict(json.loads(text)["dsseEnvelope"])

    assert parsed.media_type == BUNDLE_MEDIA_TYPE
    assert parsed.verification_material.public_key is not None
    assert parsed.verification_material.public_key.hint == ours.signatures[0].keyid
    assert parsed.verification_material.tlog_entries == []
    assert parsed.dsse_envelope is not None
    assert parsed.dsse_envelope.payload == ours.payload
    assert parsed.dsse_envelope.payload_type == ours.payload_type
    assert [s.sig for s in parsed.dsse_envelope.signatures] == [ours.signatures[0].sig]
    assert json.loads(parsed.to_json()) == json.loads(text)


def test_sigstore_python_reads_only_keyless_bundles(signed: tuple[Path, KeyPair]) -> None:
    # sigstore-python 4.x's Bundle insists on a certificate and one log entry, so a key bundle is read
    # with its protobuf-specs model above; keyless bundles go through Bundle.from_json (test_keyless_build).
    with pytest.raises(InvalidBundle, match="expected certificate in bundle"):
        SigstorePythonBundle.from_json((signed[0] / "provenance.sigstore.json").read_text())


def test_dsse_signature_verifies_with_the_public_key(signed: tuple[Path, KeyPair], tmp_path: Path) -> None:
    repo, key = signed
    bundle = _bundle(repo)
    envelope = Envelope.from_dict(bundle["dsseEnvelope"])
    pinned = Identity(name="dev", keys=(load_public_key_file(key.public),))

    assert verify_signature(envelope, [pinned], source="bundle").name == "dev"
    other = make_keypair(tmp_path, "other")
    with pytest.raises(SignatureInvalid):
        verify_signature(envelope, [Identity(name="other", keys=(load_public_key_file(other.public),))],
                         source="bundle")


def test_securesystemslib_verifies_the_bundle_envelope(signed: tuple[Path, KeyPair]) -> None:
    repo, key = signed
    bundle = _bundle(repo)
    hint = bundle["verificationMaterial"]["publicKey"]["hint"]
    public = serialization.load_pem_public_key(key.public.read_bytes())
    sslib_key = SSlibKey.from_crypto(public, keyid=hint)

    # securesystemslib's from_dict rewrites the dict it is given: hand it copies
    accepted = SslibEnvelope.from_dict(copy.deepcopy(bundle["dsseEnvelope"])).verify([sslib_key], threshold=1)

    assert list(accepted) == [hint]
    altered = copy.deepcopy(bundle["dsseEnvelope"])
    altered["payload"] = base64.b64encode(b'{"_type":"https://in-toto.io/Statement/v1"}').decode()
    with pytest.raises(SslibVerificationError):
        SslibEnvelope.from_dict(altered).verify([sslib_key], threshold=1)


def test_no_bundle_without_the_flag(repo: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    _build(repo, keys["dev"], attest)
    assert (repo / "provenance.intoto.jsonl").exists()
    assert not (repo / "provenance.sigstore.json").exists()


def test_bundle_follows_output_and_is_named_in_json(repo: Path, keys: dict[str, KeyPair],
                                                   attest: AttestRunner) -> None:
    (repo / "out").mkdir()
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "build.py", "--bundle",
                    "--output", "out/app.intoto.jsonl", "--format", "json", cwd=repo)

    assert result.code == 0, result
    assert json.loads(result.out)["bundle"] == "out/app.sigstore.json"
    bundle = json.loads((repo / "out/app.sigstore.json").read_bytes())
    assert bundle["dsseEnvelope"] == json.loads((repo / "out/app.intoto.jsonl").read_bytes())


def test_keyless_options_need_the_keyless_signer(repo: Path, keys: dict[str, KeyPair], tmp_path: Path,
                                                 attest: AttestRunner) -> None:
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "build.py",
                    "--trust-config", tmp_path / "trust.json", cwd=repo)

    assert result.code == 2
    assert "--trust-config applies to --signer sigstore only" in result.err


def test_key_bundle_carries_one_signature() -> None:
    envelope = Envelope(payload_type="application/vnd.in-toto+json", payload=b"{}",
                        signatures=(Signature("a", b"1"), Signature("b", b"2")))
    with pytest.raises(ValueError, match="exactly one signature"):
        key_bundle(envelope, hint="a")


def test_key_signed_build_with_bundle_does_not_import_sigstore(repo: Path, keys: dict[str, KeyPair]) -> None:
    # Keyless support must cost a key-signed build nothing: sigstore (and pydantic models) stay unloaded.
    probe = (
        "import sys\n"
        "from attest.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "heavy = ('sigstore', 'sigstore_models', 'pydantic')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    command = [sys.executable, "-c", probe, "build", "--signer", str(keys["dev"].private),
               "--artifact", "build.py", "--bundle"]
    done = subprocess.run(command, cwd=repo, env=_clean_env(), capture_output=True, text=True, timeout=120,
                          check=False)

    assert done.returncode == 0, done.stderr
    assert (repo / "provenance.sigstore.json").is_file()
    assert done.stdout.strip().splitlines()[-1] == "[]"
