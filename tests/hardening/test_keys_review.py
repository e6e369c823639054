"""What a review of keys and secrets found: a build command that had attest's own git run its hook with attest's
credentials, a signing key published as an artefact, public keys that let anyone sign (a small-order Ed25519 key)
or pinned less than the file held (two PEM blocks), a git token in an error, key pairs that a concurrent generate
could mismatch, and passwords or file names that stopped attest with an internal error."""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

import pytest

from tests.conftest import AttestRunner, KeyPair, git, make_keypair
from verify.errors import TrustConfigError
from verify.trust import load_public_key


def test_attest_s_own_git_runs_no_program_the_build_command_configured(repo: Path, keys: dict[str, KeyPair],
                                                                        attest: AttestRunner, tmp_path: Path) -> None:
    """The command writes core.fsmonitor into .git/config; attest's git status after it must not run that program,
    which would see attest's environment (the key's password, the AWS credentials). The build is refused too: the
    command changed git's settings, which git compares the source through."""
    captured = tmp_path / "captured.txt"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\nenv > {captured}\nexit 1\n")
    hook.chmod(0o755)
    command = ("import subprocess, runpy; runpy.run_path('build.py'); "
               f"subprocess.run(['git', 'config', 'core.fsmonitor', {str(hook)!r}], check=True)")
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "dist/", "--", sys.executable, "-c",
                    command, cwd=repo, env={"AWS_SECRET_ACCESS_KEY": "the-secret-value"})
    assert result.code == 1 and "git's settings changed" in result.err, result
    assert not captured.exists() or "the-secret-value" not in captured.read_text()
    assert not captured.exists()  # not run at all (core.fsmonitor=false for every git attest runs)


@pytest.mark.parametrize("remote", ["https://x-access-token:ghp_SECRETTOKEN123@github.com:99999/acme/app",
                                    "https://build:SECRETab/cdTOKEN123@git-codecommit.eu-west-1.amazonaws.com:no/v1/app"])
def test_a_git_token_in_a_malformed_remote_never_reaches_the_log(repo: Path, keys: dict[str, KeyPair],
                                                                attest: AttestRunner, remote: str) -> None:
    git(repo, "remote", "set-url", "origin", remote)
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "build.py", cwd=repo)
    assert result.code == 3 and "is not a URL" in result.err, result
    assert "TOKEN123" not in result.err + result.out and "SECRET" not in result.err


def test_the_signing_key_is_never_published_as_an_artefact(repo: Path, attest: AttestRunner, tmp_path: Path) -> None:
    key = make_keypair(repo, "dev")  # in the folder given as the artefact (ignored by git: *.pem)
    result = attest("build", "--signer", key.private, "--artifact", ".", "--publish", tmp_path / "store", cwd=repo)
    assert result.code == 2 and "is the signing key" in result.err, result
    assert not (tmp_path / "store").exists() or not any(p.name == "dev.pem" for p in (tmp_path / "store").rglob("*"))


def _pem(raw: bytes) -> bytes:
    der = bytes.fromhex("302a300506032b6570032100") + raw  # an Ed25519 SubjectPublicKeyInfo
    return b"-----BEGIN PUBLIC KEY-----\n" + base64.encodebytes(der) + b"-----END PUBLIC KEY-----\n"


@pytest.mark.parametrize("point", [
    "0100000000000000000000000000000000000000000000000000000000000000",  # the identity
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # of order 2
    "0000000000000000000000000000000000000000000000000000000000000000",  # of order 4
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  # of order 8
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = p: not canonical
])
def test_an_ed25519_key_of_small_order_is_refused(point: str) -> None:
    """With such a key, a constant R and S = 0 verify any message: anyone could sign as its identity."""
    with pytest.raises(TrustConfigError, match="is an Ed25519 key of small order"):
        load_public_key(_pem(bytes.fromhex(point)), name="weird.pub.pem")


def test_real_ed25519_keys_are_accepted(tmp_path: Path) -> None:
    for n in range(20):
        pair = make_keypair(tmp_path, f"k{n}", "ed25519")
        assert load_public_key(pair.public.read_bytes(), name="k").algorithm == "ed25519"


@pytest.mark.parametrize("shape", ["two keys", "two keys, CR line ends", "junk after", "junk before"])
def test_a_key_file_holds_one_public_key_and_nothing_else(tmp_path: Path, shape: str) -> None:
    first, second = (make_keypair(tmp_path, name).public.read_bytes() for name in ("a", "b"))
    data = {"two keys": first + second, "two keys, CR line ends": (first + second).replace(b"\n", b"\r"),
            "junk after": first + b"trailing text\n", "junk before": b"a comment\n" + first}[shape]
    with pytest.raises(TrustConfigError, match=r"holds (more than one PEM block|text around its PEM block)"):
        load_public_key(data, name="key.pub.pem")
    for written in (first + b"\n\n", first.replace(b"\n", b"\r\n"), b"\xef\xbb\xbf" + first):
        assert load_public_key(written, name="key.pub.pem")  # white space, CRLF, a byte-order mark: as tools write


def test_key_generate_never_replaces_either_half_without_force(tmp_path: Path, attest: AttestRunner) -> None:
    (tmp_path / "k.pub.pem").write_text("someone else's\n")
    result = attest("key", "generate", "--out", "k", cwd=tmp_path)
    assert result.code == 3 and "already exists" in result.err, result
    assert (tmp_path / "k.pub.pem").read_text() == "someone else's\n" and not (tmp_path / "k.pem").exists()


@pytest.mark.parametrize(("password", "words"), [
    (os.fsdecode(b"pass\xff"), "is not UTF-8 text"),
    ("p" * 2000, "is longer than 1023 bytes"),
])
def test_a_password_attest_cannot_use_is_one_sentence(tmp_path: Path, attest: AttestRunner, password: str,
                                                     words: str) -> None:
    result = attest("key", "generate", "--out", "k", cwd=tmp_path, env={"ATTEST_KEY_PASSWORD": password})
    assert result.code == 3 and words in result.err, result
    assert "Traceback" not in result.err and password not in result.err


def test_a_key_name_too_long_for_the_file_system_is_one_sentence(tmp_path: Path, attest: AttestRunner) -> None:
    result = attest("key", "generate", "--out", "k" * 300, cwd=tmp_path)
    assert result.code == 3 and "cannot write the key pair" in result.err, result
