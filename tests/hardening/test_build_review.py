"""What a review of ``attest build`` and ``attest pack`` found, each case as a user meets it: a lockfile bound by
other bytes than its commit's, a build from a sub-folder that could not be rebuilt, two outputs on one file, a
lockfile or an epoch that stopped attest with an internal error, and a stopped build whose processes went on
writing artefacts."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AttestRunner, KeyPair, _clean_env, git


def _statement(path: Path) -> dict[str, Any]:
    statement: dict[str, Any] = json.loads(base64.b64decode(json.loads(path.read_text())["payload"]))
    return statement


def test_a_lockfile_whose_bytes_a_line_ending_filter_changed_is_refused(repo: Path, keys: dict[str, KeyPair],
                                                                        attest: AttestRunner) -> None:
    # git status says clean (its filters turn CRLF back into LF), but the provenance would have bound the CRLF
    # bytes under the name of the commit's blob
    git(repo, "config", "core.autocrlf", "true")
    (repo / "requirements.txt").unlink()
    git(repo, "checkout", "--", "requirements.txt")
    assert b"\r\n" in (repo / "requirements.txt").read_bytes() and git(repo, "status", "--porcelain") == ""
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "build.py", cwd=repo)
    assert result.code == 3, result
    assert "lockfile requirements.txt differs from the committed one, byte for byte" in result.err
    assert "core.autocrlf" in result.err and not (repo / "provenance.intoto.jsonl").exists()


def test_a_lockfile_given_twice_is_bound_once(repo: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "build.py", "--lockfile",
                    "requirements.txt", "--lockfile", "./requirements.txt", cwd=repo)
    assert result.code == 0, result
    dependencies = _statement(repo / "provenance.intoto.jsonl")["predicate"]["buildDefinition"][
        "resolvedDependencies"]
    assert [d.get("name") for d in dependencies].count("requirements.txt") == 1


@pytest.mark.parametrize(("name", "content"), [
    ("package-lock.json", "[" * 100_000 + "]" * 100_000),
    ("Cargo.lock", "a = " + "[" * 100_000 + "]" * 100_000),
])
def test_a_lockfile_nested_too_deep_is_bound_by_its_digest(repo: Path, keys: dict[str, KeyPair],
                                                          attest: AttestRunner, name: str, content: str) -> None:
    (repo / name).write_text(content)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", "deep")
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "build.py", "--lockfile", name,
                    cwd=repo)
    assert result.code == 0, result
    assert f"lockfile {name} could not be read" in result.err and "nests deeper" in result.err
    bound = [d for d in _statement(repo / "provenance.intoto.jsonl")["predicate"]["buildDefinition"][
        "resolvedDependencies"] if d.get("name") == name]
    assert len(bound) == 1 and len(bound[0]["digest"]["sha256"]) == 64


def test_a_lockfile_whose_name_is_not_utf8_is_refused_in_one_sentence(repo: Path, keys: dict[str, KeyPair],
                                                                     attest: AttestRunner) -> None:
    name = os.fsdecode(b"requirements-\xff.txt")
    (repo / name).write_text("requests==2.32.3\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "odd name")
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "build.py", cwd=repo)
    assert result.code == 3, result
    assert "has a name that is not UTF-8" in result.err and "Traceback" not in result.err


def test_a_build_from_a_sub_folder_records_where_it_ran(repo: Path, keys: dict[str, KeyPair],
                                                       attest: AttestRunner) -> None:
    (repo / "app").mkdir()
    (repo / "app" / "build.sh").write_text("mkdir -p out && echo app > out/app.bin\n")
    git(repo, "add", "app")
    git(repo, "commit", "-q", "-m", "app")
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "out/", "-o", "../p.intoto.jsonl",
                    "--", "sh", "build.sh", cwd=repo / "app")
    assert result.code == 0, result
    parameters = _statement(repo / "p.intoto.jsonl")["predicate"]["buildDefinition"]["externalParameters"]
    assert parameters["workingDirectory"] == "app"
    rebuilt = attest("reproduce", repo / "p.intoto.jsonl", "--repo", repo, "--key", keys["dev"].public, cwd=repo)
    assert rebuilt.code == 0 and "REPRODUCIBLE" in rebuilt.out, rebuilt


def test_a_build_at_the_root_records_no_working_directory(repo: Path, keys: dict[str, KeyPair],
                                                         attest: AttestRunner) -> None:
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "build.py", cwd=repo)
    assert result.code == 0, result
    assert "workingDirectory" not in _statement(repo / "provenance.intoto.jsonl")["predicate"]["buildDefinition"][
        "externalParameters"]


@pytest.mark.parametrize(("options", "named"), [
    (["-o", "same.jsonl", "--link", "same.jsonl"], "--output and --link are both same.jsonl"),
    (["-o", "x.intoto.jsonl", "--bundle", "--link", "x.sigstore.json"],
     "--output's bundle and --link are both x.sigstore.json"),
])
def test_two_outputs_on_one_file_are_refused_before_any_work(repo: Path, keys: dict[str, KeyPair],
                                                             attest: AttestRunner, options: list[str],
                                                             named: str) -> None:
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "build.py", *options, "--",
                    sys.executable, "-c", "open('ran', 'w').close()", cwd=repo)
    assert result.code == 2, result
    assert named in result.err
    assert not (repo / "ran").exists() and not list(repo.glob("*.json*"))


@pytest.mark.parametrize("value", ["253402300800", "99999999999999999999", "9" * 5000])
@pytest.mark.parametrize("output", ["x.zip", "x.tar.gz", "oci-layout:layout"])
def test_pack_refuses_an_epoch_out_of_range_as_build_does(tmp_path: Path, attest: AttestRunner, value: str,
                                                         output: str) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_text("a")
    result = attest("pack", "d", "-o", output, cwd=tmp_path, env={"SOURCE_DATE_EPOCH": value})
    assert result.code == 3, result
    assert f"SOURCE_DATE_EPOCH is '{value[:64]}" in result.err and "253402300799" in result.err
    assert not (tmp_path / output.removeprefix("oci-layout:")).exists()


def test_sigterm_stops_every_process_the_build_command_started(repo: Path, keys: dict[str, KeyPair]) -> None:
    """A build command's own children (make's jobs, a compiler) are stopped with it: none goes on writing artefacts
    after attest has exited."""
    (repo / "slow.sh").write_text("( sleep 2; echo late > dist/late.bin ) &\necho $! > child.pid\nsleep 60\n")
    (repo / "dist").mkdir()
    process = subprocess.Popen([sys.executable, "-m", "attest", "build", "--signer", str(keys["dev"].private),
                                "--artifact", "dist/", "--allow-dirty", "--", "sh", "slow.sh"], cwd=repo,
                               env=_clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (repo / "child.pid").exists() or not (repo / "child.pid").read_text().strip():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.01)
    child = int((repo / "child.pid").read_text())
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    time.sleep(3)  # past the moment the child would have written
    assert not (repo / "dist" / "late.bin").exists()
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)


def test_an_option_given_twice_is_refused_but_the_command_s_own_options_are_its_own(
        repo: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    twice = attest("build", "--signer", keys["dev"].private, "-o", "a.intoto.jsonl", "--artifact", "build.py",
                   "--output", "b.intoto.jsonl", cwd=repo)
    assert twice.code == 2 and "--output/-o is given more than once" in twice.err, twice
    assert not list(repo.glob("*.intoto.jsonl"))
    # what follows -- is the build command's: its -o and --output are no second --output of attest's
    ran = attest("build", "--signer", keys["dev"].private, "-o", "p.intoto.jsonl", "--artifact", "out.txt",
                 "--", sys.executable, "-c", "import sys; open('out.txt', 'w').write(' '.join(sys.argv[1:]))",
                 "-o", "x", "--output", "y", cwd=repo)
    assert ran.code == 0, ran
    assert (repo / "out.txt").read_text() == "-o x --output y" and (repo / "p.intoto.jsonl").exists()


def test_an_out_of_source_build_in_an_ignored_folder_is_rebuilt_there(repo: Path, keys: dict[str, KeyPair],
                                                                      attest: AttestRunner) -> None:
    """cmake's and meson's way: cd build (ignored, so not in a clone) && attest build ...; the rebuild makes the
    folder, a real one, and runs there."""
    (repo / ".gitignore").write_text((repo / ".gitignore").read_text() + "build/\n")
    (repo / "src.txt").write_text("source\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "out of source")
    (repo / "build").mkdir()
    built = attest("build", "--signer", keys["dev"].private, "--artifact", "app.bin", "-o", "../p.intoto.jsonl",
                   "--", "sh", "-c", "cp ../src.txt app.bin", cwd=repo / "build")
    assert built.code == 0, built
    rebuilt = attest("reproduce", repo / "p.intoto.jsonl", "--repo", repo, "--key", keys["dev"].public, cwd=repo)
    assert rebuilt.code == 0 and "REPRODUCIBLE" in rebuilt.out, rebuilt


def test_without_dashes_the_build_command_s_options_are_still_its_own(repo: Path, keys: dict[str, KeyPair],
                                                                     attest: AttestRunner) -> None:
    """attest build takes its arguments as they come: the first one starts the command, whose own -o is not attest's."""
    ran = attest("build", "--signer", keys["dev"].private, "-o", "p.intoto.jsonl", "-a", "out.txt", sys.executable,
                 "-c", "import sys; open('out.txt', 'w').write(' '.join(sys.argv[1:]))", "-o", "x", cwd=repo)
    assert ran.code == 0, ran
    assert (repo / "out.txt").read_text() == "-o x"
