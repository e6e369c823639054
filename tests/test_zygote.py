"""The suite's way of running the CLI (tests/_zygote.py) gives what ``python -m attest`` gives, run by run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import KeyPair, _zygote, attest_bin, run_attest


@pytest.mark.parametrize("args", [("--version",), ("frobnicate",), ("verify", "--help"),
                                  ("verify", "missing.bin", "--attestation", "missing.jsonl", "--policy", "p.yaml")])
def test_a_forked_run_is_an_execd_run(tmp_path: Path, args: tuple[str, ...]) -> None:
    forked, execd = run_attest(*args, cwd=tmp_path), run_attest(*args, cwd=tmp_path, fresh=True)
    assert (forked.code, forked.out, forked.err) == (execd.code, execd.out, execd.err)


def test_each_run_has_its_own_environment_folder_and_stdin(tmp_path: Path) -> None:
    encrypted = run_attest("key", "generate", "--out", "a", cwd=tmp_path, env={"ATTEST_KEY_PASSWORD": "pw-1"})
    plain = run_attest("key", "generate", "--out", "b", cwd=tmp_path)  # the password was the first run's only
    assert encrypted.code == plain.code == 0, (encrypted, plain)
    assert b"ENCRYPTED" in (tmp_path / "a.pem").read_bytes()
    assert b"ENCRYPTED" not in (tmp_path / "b.pem").read_bytes()
    piped = run_attest("inspect", "-", cwd=tmp_path, input="not json\n")
    assert piped == run_attest("inspect", "-", cwd=tmp_path, input="not json\n", fresh=True)


def test_a_run_past_its_timeout_is_stopped(repo: Path, keys: dict[str, KeyPair]) -> None:
    (repo / "slow.py").write_text("import time; time.sleep(5)\n")  # the orphaned command ends soon after
    with pytest.raises(subprocess.TimeoutExpired):
        run_attest("build", "--signer", keys["dev"].private, "--artifact", "dist/", "--", sys.executable, "slow.py",
                   cwd=repo, timeout=0.5)


@pytest.mark.parametrize("command", ["attest --version", "attest frobnicate", "printf 'not json' | attest inspect -",
                                     "attest verify --help | head -3"])
def test_the_shell_attest_of_the_suite_is_the_installed_one(tmp_path: Path, command: str) -> None:
    def shell(*first: str) -> tuple[int, str, str]:
        env = {**os.environ, "PATH": os.pathsep.join([*first, str(Path(sys.executable).parent), os.environ["PATH"]])}
        done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True)
        return done.returncode, done.stdout, done.stderr

    assert shell(attest_bin()) == shell()


def test_a_zygote_that_died_is_started_again(tmp_path: Path) -> None:
    zygote = _zygote()
    assert run_attest("--version", cwd=tmp_path).code == 0  # started
    assert zygote._process is not None
    zygote._process.kill()
    zygote._process.wait()
    again = run_attest("--version", cwd=tmp_path)
    assert again.code == 0 and again.out.startswith("attest "), again


def test_the_shell_attest_killed_takes_its_run_with_it(repo: Path, keys: dict[str, KeyPair]) -> None:
    """As the installed attest killed by a CI step's timeout signs nothing, so the suite's: its run is stopped."""
    (repo / "slow.py").write_text("import pathlib, time\ntime.sleep(2)\npathlib.Path('dist').mkdir()\n"
                                  "pathlib.Path('dist/a').write_text('a')\n")
    env = {**os.environ, "PATH": os.pathsep.join([attest_bin(), str(Path(sys.executable).parent), os.environ["PATH"]])}
    shell = subprocess.Popen(["attest", "build", "--signer", str(keys["dev"].private), "--artifact", "dist/",
                              "-o", "out.intoto.jsonl", "--", sys.executable, "slow.py"], cwd=repo, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.8)
    shell.kill()
    assert shell.wait() == -9
    time.sleep(2.5)  # the build command's own time, and then some
    assert not (repo / "out.intoto.jsonl").exists()
