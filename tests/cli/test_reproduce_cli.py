"""``attest reproduce``: real rebuilds (a setuptools wheel, a time-stamping one), verdicts, exit codes."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from attest.reproduce import Reproduction, SubjectResult, diff_artifacts, safe_path
from attest.signers import from_uri, sign_envelope
from tests.conftest import AttestRunner, KeyPair, _clean_env, git
from verify.errors import SignatureInvalid
from verify.formats.envelope import Envelope
from verify.trust import Identity, load_public_key_file
from verify.verifier import verify_signature

WHEEL_COMMAND = (sys.executable, "-m", "pip", "--disable-pip-version-check", "wheel", "--no-build-isolation",
                 "--no-deps", "--no-index", "-q", "-w", "dist", ".")
WHEEL = "dist/tinypkg-1.0.0-py3-none-any.whl"
COMMIT_TIME = 1700000000  # 2023-11-14T22:13:20Z: far from "now", so a leak of the clock shows


def _wheel_backend_missing() -> str | None:
    """Why setuptools cannot build a wheel here without network access, or None if it can."""
    if importlib.util.find_spec("setuptools") is None:
        return "setuptools is not installed in the test environment (add it to the test extras)"
    from importlib.metadata import version

    major, minor = (int(x) for x in version("setuptools").split(".")[:2])
    if (major, minor) < (70, 1) and importlib.util.find_spec("wheel") is None:
        return "setuptools < 70.1 needs the 'wheel' package to build wheels (add it to the test extras)"
    return None


needs_wheel_backend = pytest.mark.skipif(_wheel_backend_missing() is not None,
                                         reason=_wheel_backend_missing() or "")

PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "tinypkg"
version = "1.0.0"
description = "A tiny package rebuilt by attest reproduce"
requires-python = ">=3.8"

[tool.setuptools.packages.find]
where = ["src"]
"""

#: A build that embeds the wall clock in the wheel: what SOURCE_DATE_EPOCH cannot fix.
STAMPING_BUILD = f"""\
import pathlib, subprocess, sys, time
pathlib.Path("src/tinypkg/_stamp.py").write_text(f"BUILT_AT = {{time.time_ns()}}\\n")
subprocess.run({list(WHEEL_COMMAND)!r}, check=True)
"""


def commit(repo: Path, message: str) -> None:
    when = f"@{COMMIT_TIME} +0000"
    env = _clean_env({"GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when})
    subprocess.run(["git", "-C", str(repo), "add", "."], env=env, check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-q", "-m", message], env=env, check=True)


@pytest.fixture
def wheel_repo(repo: Path) -> Path:
    """``repo`` with a tiny setuptools package, committed at COMMIT_TIME."""
    (repo / "pyproject.toml").write_text(PYPROJECT)
    (repo / "src" / "tinypkg").mkdir(parents=True)
    (repo / "src" / "tinypkg" / "__init__.py").write_text('"""A tiny package."""\nVALUE = 42\n')
    (repo / "build_stamped.py").write_text(STAMPING_BUILD)
    with (repo / ".gitignore").open("a") as f:
        f.write("build/\n*.egg-info/\nsrc/tinypkg/_stamp.py\ndiffs/\n")
    commit(repo, "tiny package")
    return repo


def payload(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(Envelope.from_json(path.read_bytes().strip()).payload)
    return document


@needs_wheel_backend
def test_a_setuptools_wheel_reproduces_bit_for_bit(wheel_repo: Path, keys: dict[str, KeyPair],
                                                   attest: AttestRunner, tmp_path: Path) -> None:
    built = attest("build", "--signer", keys["dev"].private, "--artifact", "dist/", "--", *WHEEL_COMMAND,
                   cwd=wheel_repo)
    assert built.code == 0, built
    original = (wheel_repo / WHEEL).read_bytes()
    with zipfile.ZipFile(wheel_repo / WHEEL) as wheel:  # SOURCE_DATE_EPOCH, not the clock, dated the entries
        assert {info.date_time for info in wheel.infolist()} == {(2023, 11, 14, 22, 13, 20)}

    # rebuilt in another directory, at another time, from a clone: the same bytes
    result = attest("reproduce", wheel_repo / "provenance.intoto.jsonl", "--repo", wheel_repo,
                    "--key", keys["dev"].public, "--format", "json", cwd=tmp_path)
    assert result.code == 0, result
    doc = json.loads(result.out)
    assert doc["verdict"] == "REPRODUCIBLE" and doc["reproducible"] is True
    assert doc["provenance"]["verified"] is True
    assert doc["commit"] == git(wheel_repo, "rev-parse", "HEAD")
    assert doc["sourceDateEpoch"] == COMMIT_TIME
    assert doc["lockfiles"] == [{"name": "requirements.txt", "status": "match"}]
    [subject] = doc["subjects"]
    assert subject["name"] == WHEEL and subject["status"] == "match"
    assert subject["rebuilt"]["sha256"] == subject["expected"]["sha256"]
    assert subject["expected"]["sha256"] == hashlib.sha256(original).hexdigest()
    assert "unverified" not in result.err


@needs_wheel_backend
def test_a_build_embedding_the_time_differs_names_the_file_and_emits(
        wheel_repo: Path, keys: dict[str, KeyPair], attest: AttestRunner, tmp_path: Path) -> None:
    built = attest("build", "--signer", keys["dev"].private, "--artifact", "dist/", "--", sys.executable,
                   "build_stamped.py", cwd=wheel_repo)
    assert built.code == 0, built
    emitted = tmp_path / "reproduction.intoto.jsonl"
    result = attest("reproduce", "provenance.intoto.jsonl", "--key", keys["dev"].public, "--diff", "diffs",
                    "--emit", emitted, "--signer", keys["stg"].private, "--rebuilder-id", "rebuilder.example",
                    cwd=wheel_repo)
    assert result.code == 1, result
    assert f"differs  {WHEEL}" in result.out
    assert result.out.startswith("NOT_REPRODUCIBLE: 0 of 1 artefact(s)")
    assert result.err.rstrip().endswith(f"did not reproduce ({WHEEL} differs).")

    # diffoscope says what differs inside the wheel
    if "diffoscope is not installed" in result.err:
        assert not (wheel_repo / "diffs").exists()
    else:
        report = wheel_repo / "diffs" / "dist_tinypkg-1.0.0-py3-none-any.whl.txt"
        assert report.is_file() and report.with_suffix(".html").is_file()
        assert "tinypkg/_stamp.py" in report.read_text()
        assert f"diff {WHEEL}: diffs/" in result.out

    # the reproduction attestation: signed by the rebuilder's key, about the original subject
    envelope = Envelope.from_json(emitted.read_bytes().strip())
    stg = Identity(name="stg", keys=(load_public_key_file(keys["stg"].public),))
    assert verify_signature(envelope, [stg], source="reproduction").name == "stg"
    with pytest.raises(SignatureInvalid):
        verify_signature(envelope, [Identity(name="dev", keys=(load_public_key_file(keys["dev"].public),))],
                         source="reproduction")
    statement = json.loads(envelope.payload)
    provenance_line = (wheel_repo / "provenance.intoto.jsonl").read_bytes().strip()
    original = payload(wheel_repo / "provenance.intoto.jsonl")
    assert statement["predicateType"] == "https://attest.dev/reproduction/v1"
    assert statement["subject"] == original["subject"]
    predicate = statement["predicate"]
    assert predicate["verdict"] == "NOT_REPRODUCIBLE"
    assert predicate["provenance"] == {"digest": {"sha256": hashlib.sha256(provenance_line).hexdigest()},
                                       "verified": True}
    assert predicate["rebuilder"] == {"id": "rebuilder.example"}
    assert predicate["source"]["commit"] == git(wheel_repo, "rev-parse", "HEAD")
    assert predicate["sourceDateEpoch"] == COMMIT_TIME
    [entry] = predicate["results"]
    assert entry["name"] == WHEEL and entry["status"] == "differs"
    assert entry["rebuilt"]["sha256"] != entry["expected"]["sha256"]


def test_a_deterministic_build_reproduces_from_the_current_repository(built: Path, keys: dict[str, KeyPair],
                                                                      attest: AttestRunner) -> None:
    result = attest("reproduce", "provenance.intoto.jsonl", "--key", keys["dev"].public, cwd=built)
    assert result.code == 0, result
    lines = result.out.splitlines()
    assert lines[0].startswith("REPRODUCIBLE: 2 of 2 artefact(s) of ")
    assert "(provenance signed by --key, SOURCE_DATE_EPOCH=" in lines[0]
    assert [line.split() for line in lines[1:]] == [["match", "dist/app.tar.gz"],
                                                    ["match", "dist/sub/data.bin"]]
    # without a trust anchor it still runs, and says that the provenance is unverified
    result = attest("reproduce", "provenance.intoto.jsonl", "--format", "json", cwd=built)
    assert result.code == 0, result
    assert "attest: warning: the provenance in provenance.intoto.jsonl is unverified" in result.err
    assert json.loads(result.out)["provenance"]["verified"] is False


def test_trust_anchors_usage_and_input_errors(built: Path, keys: dict[str, KeyPair], attest: AttestRunner,
                                              tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"version: 1\nidentities:\n  dev-build: {{keys: [\"{keys['dev'].public}\"]}}\n"
                      "provenance:\n  signed-by: [dev-build]\n")
    result = attest("reproduce", "provenance.intoto.jsonl", "--policy", policy, cwd=built)
    assert result.code == 0, result
    assert "provenance signed by dev-build" in result.out
    result = attest("reproduce", "provenance.intoto.jsonl", "--key", keys["other"].public, cwd=built)
    assert result.code == 1
    assert "no signature verifies with a trusted key" in result.err and "Traceback" not in result.err

    no_signer = attest("reproduce", "provenance.intoto.jsonl", "--emit", "r.jsonl", cwd=built)
    assert no_signer.code == 2 and "--emit needs --signer" in no_signer.err
    missing = attest("reproduce", "nope.intoto.jsonl", cwd=built)
    assert missing.code == 3 and "cannot read attestation nope.intoto.jsonl" in missing.err
    outside = attest("reproduce", built / "provenance.intoto.jsonl", cwd=tmp_path)
    assert outside.code == 3 and "is not inside a git repository; pass --repo" in outside.err
    bad_repo = attest("reproduce", built / "provenance.intoto.jsonl", "--repo", tmp_path / "no-such-repo.git",
                      "--key", keys["dev"].public, cwd=tmp_path)
    assert bad_repo.code == 3 and "git clone" in bad_repo.err and "failed" in bad_repo.err
    for result in (no_signer, missing, outside, bad_repo):
        assert "Traceback" not in result.err


def test_another_command_that_writes_nothing_leaves_every_artefact_missing(
        built: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    result = attest("reproduce", "provenance.intoto.jsonl", "--key", keys["dev"].public, "--format", "json",
                    "--", sys.executable, "-c", "print('no artefacts')", cwd=built)
    assert result.code == 1, result
    doc = json.loads(result.out)
    assert doc["command"] == [sys.executable, "-c", "print('no artefacts')"]
    assert [(s["name"], s["status"], s["reason"]) for s in doc["subjects"]] == [
        ("dist/app.tar.gz", "missing", "the rebuild did not write it"),
        ("dist/sub/data.bin", "missing", "the rebuild did not write it")]
    assert "no artefacts" in result.err  # the build's output goes to stderr, never into the JSON
    assert "did not reproduce (dist/app.tar.gz missing, dist/sub/data.bin missing)" in result.err
    failing = attest("reproduce", "provenance.intoto.jsonl", "--key", keys["dev"].public,
                     "--", sys.executable, "-c", "raise SystemExit(3)", cwd=built)
    assert failing.code == 1
    assert "failed with exit status 3" in failing.err


def resign(path: Path, key: KeyPair, change: Callable[[dict[str, Any]], None]) -> None:
    """Change the statement in ``path`` and sign it again with ``key`` (a builder that lies)."""
    envelope = Envelope.from_json(path.read_bytes().strip())
    document = json.loads(envelope.payload)
    change(document)
    signed = sign_envelope(from_uri(str(key.private)), payload_type=envelope.payload_type,
                           payload=json.dumps(document).encode())
    path.write_bytes(signed.to_json_line())


def test_a_lying_provenance_is_caught(built: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    """A trusted builder's provenance whose lockfile is not the commit's, or whose subjects leave the tree."""
    original = (built / "provenance.intoto.jsonl").read_bytes()

    def other_lockfile(doc: dict[str, Any]) -> None:
        doc["predicate"]["buildDefinition"]["resolvedDependencies"][1]["digest"]["sha256"] = "0" * 64

    resign(built / "provenance.intoto.jsonl", keys["dev"], other_lockfile)
    result = attest("reproduce", "provenance.intoto.jsonl", "--key", keys["dev"].public, cwd=built)
    assert result.code == 1
    assert "lockfile requirements.txt of commit" in result.err
    assert "the provenance does not describe this commit" in result.err

    (built / "provenance.intoto.jsonl").write_bytes(original)
    names = ["../outside.txt", "/etc/hostname", "dist/link", "dist/linked-dir/file", "dist/a\u0000b", "",
             "dist/real.txt"]

    def hostile_names(doc: dict[str, Any]) -> None:
        digest = {"sha256": hashlib.sha256(b"real\n").hexdigest()}
        doc["subject"] = [{"name": name, "digest": digest} for name in names]

    resign(built / "provenance.intoto.jsonl", keys["dev"], hostile_names)
    script = ("import os; os.makedirs('dist'); open('dist/real.txt', 'w').write('real\\n');"
              "os.symlink('/etc/hostname', 'dist/link'); os.symlink('/etc', 'dist/linked-dir');"
              "open('../outside.txt', 'w').write('real\\n')")
    result = attest("reproduce", "provenance.intoto.jsonl", "--key", keys["dev"].public, "--format", "json",
                    "--", sys.executable, "-c", script, cwd=built)
    assert result.code == 1, result
    found = {s["name"]: (s["status"], s.get("reason")) for s in json.loads(result.out)["subjects"]}
    assert found == {
        "../outside.txt": ("refused", "the name contains '..'"),
        "/etc/hostname": ("refused", "the name is an absolute path"),
        "dist/link": ("refused", "dist/link is a symbolic link"),
        "dist/linked-dir/file": ("refused", "dist/linked-dir is a symbolic link"),
        "dist/a\u0000b": ("refused", "the name contains a NUL byte"),
        "": ("refused", "the subject has no name"),
        "dist/real.txt": ("match", None),
    }



def test_safe_path(tmp_path: Path) -> None:
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "app.zip").write_bytes(b"x")
    assert safe_path(tmp_path, "dist/app.zip") == tmp_path / "dist" / "app.zip"
    assert safe_path(tmp_path, "./dist/./app.zip") == tmp_path / "dist" / "app.zip"
    for name in ("dist/../dist/app.zip", "/dist/app.zip", "dist", ".", "dist/app.zip\0"):
        with pytest.raises(Exception, match=r"'\.\.'|absolute|not a regular file|build root|NUL"):
            safe_path(tmp_path, name)


def test_diff_reports_explain_what_they_cannot_compare(tmp_path: Path) -> None:
    rebuilt = tmp_path / "rebuilt.bin"
    rebuilt.write_bytes(b"rebuilt")
    expected = {"sha256": hashlib.sha256(b"original").hexdigest()}
    (tmp_path / "originals").mkdir()
    (tmp_path / "originals" / "other.bin").write_bytes(b"not the attested bytes")
    from datetime import UTC, datetime

    subjects = tuple(SubjectResult(name, "differs", expected, {"sha256": "1"}, path=rebuilt)
                     for name in ("app.bin", "other.bin"))
    result = Reproduction(attestation="p", provenance_digest="0" * 64, signer=None, source_uri=None,
                          repository="r", commit="0" * 40, command=("make",), source_date_epoch=0,
                          lockfiles=(), subjects=subjects, finished=datetime.now(UTC))
    reports = diff_artifacts(result, program="/nonexistent/diffoscope", originals=tmp_path / "originals",
                             out=tmp_path / "diffs")
    assert [r.name for r in reports] == ["app.bin", "other.bin"]
    assert "no original below" in reports[0].note and "it does not exist" in reports[0].note
    assert "is not the attested artefact" in reports[1].note
    assert not list((tmp_path / "diffs").iterdir())


# --- what a review found -----------------------------------------------------------------------------------

@pytest.mark.parametrize("epoch", ["-5", "1.7e9", True, 1700000000.5, "0x10", "9" * 5000, 253402300800])
def test_a_malformed_recorded_epoch_is_refused_not_replaced(built: Path, keys: dict[str, KeyPair],
                                                            attest: AttestRunner, epoch: object) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["predicate"]["buildDefinition"]["internalParameters"]["SOURCE_DATE_EPOCH"] = epoch

    resign(built / "provenance.intoto.jsonl", keys["dev"], change)
    result = attest("reproduce", "provenance.intoto.jsonl", "--key", keys["dev"].public, cwd=built)
    assert result.code == 1, result
    assert "the provenance records SOURCE_DATE_EPOCH" in result.err and "does not rebuild with another" in result.err
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1


def test_a_recorded_command_with_a_nul_byte_is_malformed(built: Path, keys: dict[str, KeyPair],
                                                        attest: AttestRunner) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["predicate"]["buildDefinition"]["externalParameters"]["command"] = ["make", "di\u0000st"]

    resign(built / "provenance.intoto.jsonl", keys["dev"], change)
    result = attest("reproduce", "provenance.intoto.jsonl", "--key", keys["dev"].public, cwd=built)
    assert result.code == 1 and "command holds a NUL byte" in result.err, result


def test_a_clone_that_fails_says_why_in_git_s_words(built: Path, keys: dict[str, KeyPair], attest: AttestRunner,
                                                   tmp_path: Path) -> None:
    result = attest("reproduce", built / "provenance.intoto.jsonl", "--repo", "file:///nonexistent/repo.git",
                    "--key", keys["dev"].public, cwd=tmp_path)
    assert result.code == 3, result
    assert "fatal: '/nonexistent/repo.git' does not appear to be a git repository" in result.err


def test_a_working_directory_that_is_a_link_in_the_commit_is_refused(built: Path, keys: dict[str, KeyPair],
                                                                    attest: AttestRunner, tmp_path: Path) -> None:
    """A committed link named as the workingDirectory would run the rebuild outside the clone, and read its
    artefacts there."""
    (tmp_path / "outside").mkdir()
    (built / "w").symlink_to(tmp_path / "outside")
    git(built, "add", "w")
    git(built, "commit", "-q", "-m", "a link")

    def change(doc: dict[str, Any]) -> None:
        doc["predicate"]["buildDefinition"]["externalParameters"]["workingDirectory"] = "w"
        doc["predicate"]["buildDefinition"]["resolvedDependencies"][0]["digest"]["gitCommit"] = git(
            built, "rev-parse", "HEAD")

    resign(built / "provenance.intoto.jsonl", keys["dev"], change)
    result = attest("reproduce", "provenance.intoto.jsonl", "--key", keys["dev"].public, "--", "true", cwd=built)
    assert result.code == 1, result
    assert "workingDirectory w is a symbolic link in the commit" in result.err


def test_the_rebuild_s_folders_are_real_ones(tmp_path: Path) -> None:
    from attest.reproduce import real_folder

    (tmp_path / "outside").mkdir()
    (tmp_path / "tree" / "a" / "layout" / "blobs").mkdir(parents=True)
    assert real_folder(tmp_path / "tree", Path("a/layout"), what="the image layout", below=True) == \
        tmp_path / "tree" / "a" / "layout"
    (tmp_path / "tree" / "b").symlink_to(tmp_path / "outside")
    with pytest.raises(Exception, match="the image layout b is a symbolic link"):
        real_folder(tmp_path / "tree", Path("b"), what="the image layout")
    (tmp_path / "tree" / "a" / "layout" / "blobs" / "x").symlink_to(tmp_path / "outside")
    with pytest.raises(Exception, match=r"the image layout a/layout holds a symbolic link, blobs/x"):
        real_folder(tmp_path / "tree", Path("a/layout"), what="the image layout", below=True)
    with pytest.raises(Exception, match=r"is not a folder|cannot be read"):
        real_folder(tmp_path / "tree", Path("a/missing"), what="the image layout")


def test_a_diff_that_fails_half_way_leaves_no_report(tmp_path: Path) -> None:
    """diffoscope writes its reports as it goes: one that fails part-way leaves nothing half-written in --diff."""
    from datetime import UTC, datetime

    fake = tmp_path / "diffoscope"
    fake.write_text("#!/bin/sh\nprintf '<html><body><h1>diffoscope report (trunc' > \"$2\"\n"
                    "echo 'MemoryError: killed half-way' >&2\nexit 2\n")
    fake.chmod(0o755)
    (tmp_path / "originals").mkdir()
    (tmp_path / "originals" / "app.bin").write_bytes(b"original")
    rebuilt = tmp_path / "rebuilt.bin"
    rebuilt.write_bytes(b"rebuilt")
    subject = SubjectResult("app.bin", "differs", {"sha256": hashlib.sha256(b"original").hexdigest()},
                            {"sha256": "1"}, path=rebuilt)
    result = Reproduction(attestation="p", provenance_digest="0" * 64, signer=None, source_uri=None,
                          repository="r", commit="0" * 40, command=("make",), source_date_epoch=0,
                          lockfiles=(), subjects=(subject,), finished=datetime.now(UTC))
    [report] = diff_artifacts(result, program=str(fake), originals=tmp_path / "originals", out=tmp_path / "diffs")
    assert report.html is None and "diffoscope failed: MemoryError: killed half-way" in (report.note or "")
    assert list((tmp_path / "diffs").iterdir()) == []


@pytest.mark.parametrize(("status", "code"), [("match", 0), ("differs", 1)])
def test_verify_takes_a_reproduction_only_if_it_reproduced(tmp_path: Path, keys: dict[str, KeyPair],
                                                          attest: AttestRunner, status: str, code: int) -> None:
    """``attest reproduce`` names a differing subject too (with the provenance's digest, for the audit): a gate that
    asks for a reproduction must not take a NOT_REPRODUCIBLE one for a yes."""
    from datetime import UTC, datetime

    from tests import factory as f

    (tmp_path / "app.bin").write_bytes(b"app")
    envelope = f.reproduction(keys["other"].private, results={"app.bin": (b"app", status)},
                              at=datetime(2026, 1, 1, tzinfo=UTC))
    (tmp_path / "repro.intoto.jsonl").write_bytes(envelope.to_json_line())
    result = attest("verify", "app.bin", "--attestation", "repro.intoto.jsonl", "--predicate-type",
                    "https://attest.dev/reproduction/v1", "--key", keys["other"].public, cwd=tmp_path)
    assert result.code == code, result
    if code:
        assert "the reproduction's verdict is 'NOT_REPRODUCIBLE'" in result.err


def test_a_provenance_of_two_commits_is_not_rebuilt(built: Path, keys: dict[str, KeyPair],
                                                    attest: AttestRunner) -> None:
    """A provenance naming two commits was rebuilt from the first and called REPRODUCIBLE: a rebuild of one commit
    speaks for neither."""
    original = (built / "provenance.intoto.jsonl").read_bytes()
    other = "b" * 40

    def second_commit(doc: dict[str, Any]) -> None:
        doc["predicate"]["buildDefinition"]["resolvedDependencies"].insert(
            1, {"uri": "git+https://github.com/acme/app@refs/heads/main", "digest": {"gitCommit": other}})

    resign(built / "provenance.intoto.jsonl", keys["dev"], second_commit)
    result = attest("reproduce", "provenance.intoto.jsonl", "--key", keys["dev"].public, cwd=built)
    assert result.code == 1 and "the provenance names 2 commits" in result.err, result
    (built / "provenance.intoto.jsonl").write_bytes(original)


def test_a_commit_named_by_a_prefix_is_not_rebuilt(tmp_path: Path, keys: dict[str, KeyPair],
                                                   attest: AttestRunner) -> None:
    """A commit named by the first 40 hex digits of a SHA-256 repository's commit was resolved by git as a short id,
    and that commit rebuilt; a commit is named whole."""
    from tests.conftest import BUILD_SCRIPT

    repo = tmp_path / "app"
    repo.mkdir()
    git(repo, "init", "-q", "--object-format=sha256", "-b", "main")
    git(repo, "remote", "add", "origin", "git@github.com:acme/app.git")
    (repo / "build.py").write_text(BUILD_SCRIPT)
    (repo / ".gitignore").write_text("dist/\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "one")
    built = attest("build", "--signer", keys["dev"].private, "--artifact", "dist/", "--no-lockfile", "--",
                   sys.executable, "build.py", cwd=repo)
    assert built.code == 0, built
    full = git(repo, "rev-parse", "HEAD")

    def prefix(doc: dict[str, Any]) -> None:
        doc["predicate"]["buildDefinition"]["resolvedDependencies"][0]["digest"]["gitCommit"] = full[:40]

    resign(repo / "provenance.intoto.jsonl", keys["dev"], prefix)
    result = attest("reproduce", "provenance.intoto.jsonl", "--key", keys["dev"].public, cwd=repo)
    assert result.code == 1 and f"is only the start of commit {full}" in result.err, result


def test_a_recorded_command_that_is_no_list_of_arguments_is_malformed(built: Path, keys: dict[str, KeyPair],
                                                                      attest: AttestRunner) -> None:
    """A command recorded as one string was "the provenance records no build command" (exit 3, as if the user had
    forgotten something): the evidence is malformed (exit 1)."""
    def change(doc: dict[str, Any]) -> None:
        doc["predicate"]["buildDefinition"]["externalParameters"]["command"] = "python build.py"

    resign(built / "provenance.intoto.jsonl", keys["dev"], change)
    result = attest("reproduce", "provenance.intoto.jsonl", "--key", keys["dev"].public, cwd=built)
    assert result.code == 1 and "as something other than a list of arguments" in result.err, result


def test_emit_never_replaces_a_key_file_the_policy_pins(built: Path, keys: dict[str, KeyPair],
                                                        attest: AttestRunner) -> None:
    (built / "policy.yaml").write_text(f"version: 1\nidentities:\n  dev-build: {{keys: ['{keys['dev'].public}']}}\n"
                                       "provenance:\n  signed-by: [dev-build]\n")
    before = Path(keys["dev"].public).read_bytes()
    refused = attest("reproduce", "provenance.intoto.jsonl", "--policy", "policy.yaml", "--emit", keys["dev"].public,
                     "--signer", keys["dev"].private, cwd=built)
    assert refused.code == 2 and "is the key file" in refused.err, refused
    assert Path(keys["dev"].public).read_bytes() == before


def test_the_json_report_has_every_documented_key(built: Path, keys: dict[str, KeyPair],
                                                  attest: AttestRunner) -> None:
    """docs/reproducibility.md lists `diff` and each subject's `reason`: a run without --diff had no `diff`, and a
    subject that matched no `reason`, so a script reading them met a KeyError."""
    result = attest("reproduce", "provenance.intoto.jsonl", "--key", keys["dev"].public, "--format", "json",
                    cwd=built)
    shown = json.loads(result.out)
    assert "diff" in shown and shown["diff"] is None
    assert all(set(s) == {"name", "status", "expected", "rebuilt", "reason"} for s in shown["subjects"]), shown
