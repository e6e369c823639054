"""``attest build``: exit codes, messages, and the provenance it writes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import blake3

from tests.conftest import AttestRunner, KeyPair, git, need_tool
from verify.formats.envelope import Envelope
from verify.formats.statement import PROVENANCE_V1, STATEMENT_V1


def _statement(path: Path) -> dict:
    envelope = Envelope.from_json(path.read_bytes().strip())
    return json.loads(envelope.payload)


def test_build_records_commit_lockfile_and_both_digests(built: Path) -> None:
    doc = _statement(built / "provenance.intoto.jsonl")
    assert doc["_type"] == STATEMENT_V1
    assert doc["predicateType"] == PROVENANCE_V1
    names = [s["name"] for s in doc["subject"]]
    assert names == ["dist/app.tar.gz", "dist/sub/data.bin"]
    for subject in doc["subject"]:
        data = (built / subject["name"]).read_bytes()
        assert subject["digest"] == {"sha256": hashlib.sha256(data).hexdigest(),
                                     "blake3": blake3.blake3(data).hexdigest()}
    definition = doc["predicate"]["buildDefinition"]
    commit = git(built, "rev-parse", "HEAD")
    source, lock = definition["resolvedDependencies"][:2]
    assert source == {"uri": "git+https://github.com/acme/app@refs/heads/main", "digest": {"gitCommit": commit}}
    lock_bytes = (built / "requirements.txt").read_bytes()
    assert lock == {"name": "requirements.txt",
                    "uri": f"git+https://github.com/acme/app@{commit}#requirements.txt",
                    "digest": {"sha256": hashlib.sha256(lock_bytes).hexdigest(),
                               "blake3": blake3.blake3(lock_bytes).hexdigest()}}
    assert definition["externalParameters"]["source"] == {"uri": "git+https://github.com/acme/app",
                                                          "ref": "refs/heads/main"}
    assert definition["externalParameters"]["command"] == [sys.executable, "build.py"]
    commit_time = int(git(built, "log", "-1", "--format=%ct"))
    assert definition["internalParameters"]["SOURCE_DATE_EPOCH"] == commit_time
    assert definition["internalParameters"]["dirty"] is False
    # the build command saw SOURCE_DATE_EPOCH = the commit time
    assert (built / "dist/app.tar.gz").read_bytes() == f"app built at {commit_time}".encode()
    run = doc["predicate"]["runDetails"]
    assert run["builder"]["id"] == "attest:builder:local"
    assert run["metadata"]["invocationId"].startswith("urn:uuid:")


def test_digests_equal_sha256sum_and_b3sum(built: Path) -> None:
    need_tool("b3sum", install="apt-get install -y b3sum")
    doc = _statement(built / "provenance.intoto.jsonl")
    for subject in doc["subject"]:
        path = built / subject["name"]
        sha = subprocess.run(["sha256sum", path], capture_output=True, text=True, check=True).stdout.split()[0]
        b3 = subprocess.run(["b3sum", path], capture_output=True, text=True, check=True).stdout.split()[0]
        assert subject["digest"] == {"sha256": sha, "blake3": b3}


def test_dirty_tree_is_refused_and_nothing_written(repo: Path, keys: dict[str, KeyPair],
                                                   attest: AttestRunner) -> None:
    (repo / "build.py").write_text("print('changed')\n")
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "build.py", cwd=repo)
    assert result.code == 3
    assert "uncommitted changes" in result.err and "--allow-dirty" in result.err
    assert "Traceback" not in result.err
    assert not (repo / "provenance.intoto.jsonl").exists()


def test_allow_dirty_is_recorded(repo: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    (repo / "build.py").write_text("print('changed')\n")
    result = attest("build", "--allow-dirty", "--signer", keys["dev"].private, "--artifact", "build.py", cwd=repo)
    assert result.code == 0, result
    assert _statement(repo / "provenance.intoto.jsonl")["predicate"]["buildDefinition"][
        "internalParameters"]["dirty"] is True


def test_changed_lockfile_is_refused(repo: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    (repo / "requirements.txt").write_text("requests==2.0.0\n")
    result = attest("build", "--allow-dirty", "--signer", keys["dev"].private, "--artifact", "build.py", cwd=repo)
    assert result.code == 3
    assert "lockfile requirements.txt differs from the committed one" in result.err


def test_uncommitted_lockfile_is_refused(repo: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    (repo / "poetry.lock").write_text("# new\n")
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "build.py", cwd=repo)
    assert result.code == 3
    assert "lockfile poetry.lock is not committed" in result.err


def test_no_lockfile_needs_the_flag(repo: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    git(repo, "rm", "-q", "requirements.txt")
    git(repo, "commit", "-q", "-m", "no lock")
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "build.py", cwd=repo)
    assert result.code == 3
    assert "no lockfile found" in result.err and "--no-lockfile" in result.err
    result = attest("build", "--no-lockfile", "--signer", keys["dev"].private, "--artifact", "build.py", cwd=repo)
    assert result.code == 0, result
    deps = _statement(repo / "provenance.intoto.jsonl")["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert len(deps) == 1 and "gitCommit" in deps[0]["digest"]


def test_explicit_lockfile(repo: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    (repo / "sub").mkdir()
    (repo / "sub" / "uv.lock").write_text("version = 1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "lock")
    result = attest("build", "--lockfile", "sub/uv.lock", "--signer", keys["dev"].private,
                    "--artifact", "build.py", cwd=repo)
    assert result.code == 0, result
    deps = _statement(repo / "provenance.intoto.jsonl")["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert [d.get("name") for d in deps[1:]] == ["sub/uv.lock"]


def test_failing_command_writes_nothing_and_reports_status(repo: Path, keys: dict[str, KeyPair],
                                                           attest: AttestRunner) -> None:
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "dist/",
                    "--", sys.executable, "-c", "import sys; print('compiling'); sys.exit(7)", cwd=repo)
    assert result.code == 1
    assert "failed with exit status 7" in result.err and "no attestation was written" in result.err
    assert "compiling" in result.err  # the command's output is streamed (to stderr: stdout is for results)
    assert not (repo / "provenance.intoto.jsonl").exists()


def test_command_runs_without_credentials(repo: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    script = ("import os, pathlib; pathlib.Path('env.txt').write_text(' '.join(sorted(k for k in os.environ "
              "if k.startswith(('AWS_', 'ATTEST_')))))")
    env = {"AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t",
           "AWS_PROFILE": "p", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/x", "AWS_REGION": "eu-west-1"}
    result = attest("build", "--allow-dirty", "--signer", keys["dev"].private, "--artifact", "build.py",
                    "--", sys.executable, "-c", script, cwd=repo, env=env)
    assert result.code == 0, result
    seen = set((repo / "env.txt").read_text().split())
    assert "AWS_REGION" in seen
    assert not seen & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                       "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"}


def test_missing_artifact(repo: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "dist/nothing.zip", cwd=repo)
    assert result.code == 3
    assert "artifact dist/nothing.zip does not exist" in result.err


def test_symlinked_artifact_is_refused(repo: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    (repo / "dist").mkdir()
    (repo / "dist" / "link").symlink_to("/etc/hostname")
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "dist/", cwd=repo)
    assert result.code == 3
    assert "symbolic link" in result.err


def test_glob_artifacts(built: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "dist/**/*.bin", "--format", "json",
                    cwd=built)
    assert result.code == 0, result
    assert [s["name"] for s in json.loads(result.out)["subjects"]] == ["dist/sub/data.bin"]


def test_bad_signer(repo: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    result = attest("build", "--signer", repo / "nope.pem", "--artifact", "build.py", cwd=repo)
    assert result.code == 3 and "cannot read signing key" in result.err
    result = attest("build", "--signer", keys["dev"].public, "--artifact", "build.py", cwd=repo)
    assert result.code == 3 and "is a public key" in result.err
    os.chmod(keys["dev"].private, 0o644)
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "build.py", cwd=repo)
    assert result.code == 3 and "readable by other users" in result.err


def test_encrypted_key(repo: Path, tmp_path: Path, attest: AttestRunner) -> None:
    result = attest("key", "generate", "--out", tmp_path / "enc", env={"ATTEST_KEY_PASSWORD": "s3cret"})
    assert result.code == 0, result
    assert b"ENCRYPTED" in (tmp_path / "enc.pem").read_bytes()
    assert oct((tmp_path / "enc.pem").stat().st_mode & 0o777) == "0o600"
    args = ("build", "--signer", f"key:{tmp_path / 'enc.pem'}", "--artifact", "build.py")
    missing = attest(*args, cwd=repo)
    assert missing.code == 3 and "set ATTEST_KEY_PASSWORD" in missing.err
    wrong = attest(*args, cwd=repo, env={"ATTEST_KEY_PASSWORD": "nope"})
    assert wrong.code == 3 and "wrong ATTEST_KEY_PASSWORD" in wrong.err and "nope" not in wrong.err
    assert attest(*args, cwd=repo, env={"ATTEST_KEY_PASSWORD": "s3cret"}).code == 0


def test_not_a_git_repo(tmp_path: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    (tmp_path / "a.txt").write_text("a")
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "a.txt", cwd=tmp_path)
    assert result.code == 3 and "not inside a git work tree" in result.err


def test_codebuild_provenance(repo: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    commit = git(repo, "rev-parse", "HEAD")
    arn = "arn:aws:codebuild:eu-west-1:111111111111:build/app-build:0b1c2d3e-aaaa-bbbb-cccc-111122223333"
    env = {"CODEBUILD_BUILD_ARN": arn, "CODEBUILD_RESOLVED_SOURCE_VERSION": commit,
           "CODEBUILD_BUILD_IMAGE": "aws/codebuild/standard:7.0", "CODEBUILD_INITIATOR": "codepipeline/app",
           "CODEBUILD_START_TIME": "1700000000000", "CODEBUILD_WEBHOOK_TRIGGER": "branch/main",
           "CODEBUILD_SOURCE_REPO_URL": "https://user:token@git-codecommit.eu-west-1.amazonaws.com/v1/repos/app"}
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "build.py", cwd=repo, env=env)
    assert result.code == 0, result
    doc = _statement(repo / "provenance.intoto.jsonl")
    run = doc["predicate"]["runDetails"]
    assert run["builder"]["id"] == "arn:aws:codebuild:eu-west-1:111111111111:project/app-build"
    assert run["metadata"]["invocationId"] == arn
    internal = doc["predicate"]["buildDefinition"]["internalParameters"]
    assert internal["environment"]["CODEBUILD_BUILD_IMAGE"] == "aws/codebuild/standard:7.0"
    assert internal["environment"]["CODEBUILD_WEBHOOK_TRIGGER"] == "branch/main"
    source = doc["predicate"]["buildDefinition"]["resolvedDependencies"][0]["uri"]
    assert source == "git+https://git-codecommit.eu-west-1.amazonaws.com/v1/repos/app@refs/heads/main"
    assert "token" not in json.dumps(doc)

    env["CODEBUILD_RESOLVED_SOURCE_VERSION"] = "f" * 40
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "build.py", cwd=repo, env=env)
    assert result.code == 3 and "would name the wrong commit" in result.err
