"""``attest key``, ``attest inspect``, ``--help`` and the exit-code table."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from attest.cli._exit import EXIT_CODES, exit_code
from attest.errors import BuildRefused, CommandFailed, RemoteError, SignerError, StoreError
from tests.conftest import AttestRunner
from verify.errors import InputError, MalformedEvidence, PolicyError, SignatureInvalid


@pytest.mark.parametrize(("key_type", "cls"), [("ecdsa-p256", ec.EllipticCurvePrivateKey),
                                              ("ed25519", ed25519.Ed25519PrivateKey),
                                              ("rsa-3072", rsa.RSAPrivateKey)])
def test_key_generate(key_type: str, cls: type, tmp_path: Path, attest: AttestRunner) -> None:
    result = attest("key", "generate", "--out", tmp_path / "k", "--type", key_type, "--format", "json")
    assert result.code == 0, result
    info = json.loads(result.out)
    private = serialization.load_pem_private_key((tmp_path / "k.pem").read_bytes(), password=None)
    assert isinstance(private, cls)
    assert stat.S_IMODE((tmp_path / "k.pem").stat().st_mode) == 0o600
    assert b"BEGIN PRIVATE KEY" in (tmp_path / "k.pem").read_bytes()  # PKCS#8
    public = serialization.load_pem_public_key((tmp_path / "k.pub.pem").read_bytes())
    assert public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == \
        private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert info["type"] == key_type and info["encrypted"] is False


def test_key_generate_refuses_to_overwrite(tmp_path: Path, attest: AttestRunner) -> None:
    assert attest("key", "generate", "--out", tmp_path / "k").code == 0
    before = (tmp_path / "k.pem").read_bytes()
    result = attest("key", "generate", "--out", tmp_path / "k")
    assert result.code == 3 and "already exists" in result.err and "--force" in result.err
    assert (tmp_path / "k.pem").read_bytes() == before
    assert attest("key", "generate", "--out", tmp_path / "k", "--force").code == 0
    assert (tmp_path / "k.pem").read_bytes() != before


def test_key_generate_default_is_p256(tmp_path: Path, attest: AttestRunner) -> None:
    assert attest("key", "generate", "--out", tmp_path / "k").code == 0
    key = serialization.load_pem_private_key((tmp_path / "k.pem").read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"


def test_key_export_needs_kms_uri(tmp_path: Path, attest: AttestRunner) -> None:
    result = attest("key", "export", "k.pem", "--out", tmp_path / "x.pem")
    assert result.code == 2 and "only awskms: keys can be exported" in result.err


def test_inspect_marks_unverified(built: Path, attest: AttestRunner) -> None:
    result = attest("inspect", "provenance.intoto.jsonl", cwd=built)
    assert result.code == 0, result
    assert "[UNVERIFIED]" in result.out
    assert "predicateType: https://slsa.dev/provenance/v1" in result.out
    assert "subject: dist/app.tar.gz  blake3:" in result.out and " sha256:" in result.out
    as_json = json.loads(attest("inspect", "provenance.intoto.jsonl", "--format", "json", cwd=built).out)
    assert as_json[0]["verified"] is False
    assert as_json[0]["statement"]["subject"][0]["name"] == "dist/app.tar.gz"


def test_inspect_bad_input(tmp_path: Path, attest: AttestRunner) -> None:
    (tmp_path / "x.jsonl").write_text("")
    result = attest("inspect", tmp_path / "x.jsonl")
    assert result.code == 1 and "is empty" in result.err
    result = attest("inspect", tmp_path / "missing.jsonl")
    assert result.code == 3 and "cannot read attestation" in result.err


def test_help_lists_commands_without_importing_heavy_modules() -> None:
    code = ("import sys; from attest.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('boto3', 'sigstore', 'securesystemslib', 'in_toto_attestation', "
            "'google.protobuf', 'pydantic', 'yaml', 'rich') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in done.stdout
    for command in ("build", "verify", "inspect", "key"):
        assert command in done.stdout


@pytest.mark.parametrize("command", ["build", "verify", "inspect", "key"])
def test_every_command_has_help(command: str, attest: AttestRunner) -> None:
    result = attest(command, "--help")
    assert result.code == 0 and "Usage: attest" in result.out


def test_unknown_command_is_usage_error(attest: AttestRunner) -> None:
    result = attest("frobnicate")  # not "deploy": that is a command now (issue 19)
    assert result.code == 2 and "No such command 'frobnicate'" in result.err


def test_exit_code_table() -> None:
    assert exit_code(SignatureInvalid("x")) == 1
    assert exit_code(MalformedEvidence("x")) == 1
    assert exit_code(CommandFailed("x", 3)) == 1
    assert exit_code(PolicyError("x")) == 3
    assert exit_code(InputError("x")) == 3
    assert exit_code(BuildRefused("x")) == 3
    assert exit_code(SignerError("x")) == 3
    assert exit_code(StoreError("x")) == 3
    assert exit_code(RemoteError("x")) == 4
    assert exit_code(ValueError("x")) == 70
    assert len({cls for cls, _ in EXIT_CODES}) == len(EXIT_CODES)


def test_key_generate_force_keeps_the_old_pair_when_the_new_one_cannot_be_written(tmp_path: Path,
                                                                                  attest: AttestRunner) -> None:
    """--force replaced the private key, then the public key could not be written (a folder in its place), and the
    new private key was removed: no key at all. The old private key is put back."""
    assert attest("key", "generate", "--out", tmp_path / "k").code == 0
    old = (tmp_path / "k.pem").read_bytes()
    (tmp_path / "k.pub.pem").unlink()
    (tmp_path / "k.pub.pem").mkdir()
    result = attest("key", "generate", "--out", tmp_path / "k", "--force")
    assert result.code == 3 and "is a folder" in result.err, result
    assert (tmp_path / "k.pem").read_bytes() == old
    assert ((tmp_path / "k.pem").stat().st_mode & 0o777) == 0o600
