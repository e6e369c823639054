"""Keys: a private key others can read is refused (build, approve, release) unless the operator opts out,
and no secret (key password, identity token, key material) is ever printed, even with -vv.
"""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from tests.conftest import AttestRunner, KeyPair
from tests.hardening._helpers import Ran, run_in_process

PASSWORD = "hunter2-correct-horse-battery"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LWlkZW50aXR5LXRva2Vu.bm90LWEtc2lnbmF0dXJl"


def _loose(pair: KeyPair, mode: int) -> Path:
    pair.private.chmod(mode)
    return pair.private


def _build(repo: Path, key: Path, monkeypatch: pytest.MonkeyPatch, *extra: str) -> Ran:
    output = [] if "--output" in extra else ["--output", "p.intoto.jsonl"]
    return run_in_process(["build", "--signer", key, "--artifact", "build.py", "--no-lockfile", *output, *extra],
                          cwd=repo, monkeypatch=monkeypatch)


def _refused(result: Ran, key: Path, mode: int, exposed: str = "readable") -> None:
    assert result.code == 3, result
    assert result.err.strip() == (f"attest: signing key {key} is {exposed} by other users (mode {mode:o}); run "
                                  f"'chmod 600 {key}' or pass --insecure-key-permissions.")
    assert result.out == ""


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o601])
def test_build_refuses_a_key_others_can_read(repo: Path, keys: dict[str, KeyPair],
                                             monkeypatch: pytest.MonkeyPatch, mode: int) -> None:
    key = _loose(keys["dev"], mode)
    exposed = {0o620: "writable", 0o601: "accessible"}.get(mode, "readable")
    _refused(_build(repo, key, monkeypatch), key, mode, exposed)
    assert not (repo / "p.intoto.jsonl").exists()


def test_approve_and_release_refuse_a_key_others_can_read_and_all_three_accept_the_opt_out(
        repo: Path, keys: dict[str, KeyPair], monkeypatch: pytest.MonkeyPatch) -> None:
    assert _build(repo, keys["dev"].private, monkeypatch).code == 0  # 0600: fine
    key = _loose(keys["stg"], 0o644)
    (repo / "approvals.yaml").write_text(f"""version: 1
identities:
  dev: {{keys: ["{keys['dev'].public}"]}}
  approver: {{keys: ["{keys['stg'].public}"]}}
provenance: {{signed-by: [dev]}}
stages:
  prd: {{require-approvals: {{count: 1, signed-by: [approver]}}}}
""")
    approve: list[str | Path] = ["approve", "build.py", "--signer", key, "--stage", "prd", "--policy", "approvals.yaml",
                                 "--output", "a.intoto.jsonl"]
    release: list[str | Path] = ["release", "create", "--name", "r1", "--component", "app=p.intoto.jsonl",
                                 "--signer", key, "--output", "r.intoto.jsonl"]
    for args in (approve, release):
        _refused(run_in_process(args, cwd=repo, monkeypatch=monkeypatch), key, 0o644)
    assert not (repo / "a.intoto.jsonl").exists() and not (repo / "r.intoto.jsonl").exists()
    for args in (approve, release):
        result = run_in_process([*args, "--insecure-key-permissions"], cwd=repo, monkeypatch=monkeypatch)
        assert result.code == 0, result
    result = _build(repo, key, monkeypatch, "--insecure-key-permissions", "--output", "p2.intoto.jsonl")
    assert result.code == 0, result
    assert (repo / "a.intoto.jsonl").exists() and (repo / "r.intoto.jsonl").exists()
    assert (repo / "p2.intoto.jsonl").exists()
    assert stat.S_IMODE(key.stat().st_mode) == 0o644  # attest never changes the operator's file


# --- secrets never printed ---------------------------------------------------------------------------


def _assert_silent(result: object, *secrets: str) -> None:
    text = repr(result)
    for secret in secrets:
        assert secret not in text, f"a secret was printed: {result!r}"
        assert secret[:12] not in text


def _encrypted_key(directory: Path, password: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    from attest.signers.key import generate

    with monkeypatch.context() as m:
        m.setenv("ATTEST_KEY_PASSWORD", password)
        private_pem, _ = generate("ecdsa-p256")
    path = directory / "locked.pem"
    path.write_bytes(private_pem)
    path.chmod(0o600)
    return path


def test_wrong_key_password_is_not_echoed_even_with_vv(repo: Path, tmp_path: Path, attest: AttestRunner,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    locked = _encrypted_key(tmp_path, "the-right-one", monkeypatch)
    env = {"ATTEST_KEY_PASSWORD": PASSWORD, "SIGSTORE_ID_TOKEN": TOKEN}
    result = attest("-vv", "build", "--signer", locked, "--artifact", "build.py", "--no-lockfile", cwd=repo,
                    env=env)
    assert result.code == 3 and "cannot decrypt signing key" in result.err and "wrong ATTEST_KEY_PASSWORD" in result.err
    _assert_silent(result, PASSWORD, TOKEN)


def test_password_set_for_an_unencrypted_key_is_not_echoed(repo: Path, keys: dict[str, KeyPair],
                                                          attest: AttestRunner) -> None:
    (repo / "approvals.yaml").write_text(f"""version: 1
identities:
  dev: {{keys: ["{keys['dev'].public}"]}}
provenance: {{signed-by: [dev]}}
stages:
  prd: {{require-approvals: {{count: 1, signed-by: [dev]}}}}
""")
    result = attest("-vv", "approve", "build.py", "--signer", keys["dev"].private, "--policy", "approvals.yaml",
                    "--stage", "prd", cwd=repo, env={"ATTEST_KEY_PASSWORD": PASSWORD})
    assert result.code == 3 and "is not encrypted, but ATTEST_KEY_PASSWORD is set" in result.err
    _assert_silent(result, PASSWORD)


def test_a_build_command_printing_its_environment_never_shows_the_secrets(
        repo: Path, tmp_path: Path, attest: AttestRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = _encrypted_key(tmp_path, PASSWORD, monkeypatch)  # the password is right: the build runs
    env = {"ATTEST_KEY_PASSWORD": PASSWORD, "SIGSTORE_ID_TOKEN": TOKEN, "AWS_SECRET_ACCESS_KEY": PASSWORD + "aws"}
    dump = "import os, sys; print(sorted(os.environ.items())); sys.exit(3)"
    result = attest("-vv", "build", "--signer", locked, "--artifact", "build.py", "--no-lockfile",
                    "--", sys.executable, "-c", dump, cwd=repo, env=env)
    assert result.code == 1 and "failed with exit status 3" in result.err, result
    assert "SOURCE_DATE_EPOCH" in result.err  # the command did print its environment
    _assert_silent(result, PASSWORD, TOKEN)


def test_keyless_failure_does_not_echo_the_identity_token(repo: Path, tmp_path: Path, attest: AttestRunner) -> None:
    missing = tmp_path / "no-such-trust-config.json"
    result = attest("-vv", "build", "--signer", "sigstore", "--identity-token", TOKEN, "--trust-config", missing,
                    "--artifact", "build.py", "--no-lockfile", cwd=repo,
                    env={"SIGSTORE_ID_TOKEN": TOKEN, "ATTEST_KEY_PASSWORD": PASSWORD})
    assert result.code == 3 and str(missing) in result.err, result
    _assert_silent(result, PASSWORD, TOKEN)


def test_private_key_material_is_never_printed(repo: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    body = [line for line in keys["dev"].private.read_text().splitlines() if not line.startswith("-----")]
    damaged = keys["dev"].private.read_text().replace(body[1], body[1][::-1])
    keys["dev"].private.write_text(damaged)
    result = attest("-vv", "build", "--signer", keys["dev"].private, "--artifact", "build.py", "--no-lockfile",
                    cwd=repo)
    assert result.code == 3 and "is not a" in result.err, result
    for line in body:
        assert line not in result.err + result.out and line[::-1] not in result.err + result.out
