"""attest.build: a build run from Python (no click), checked by verify/ as a pipeline would check it.

CMD runs with ``pass_credentials=True`` here: without it, run_build hides attest's secrets from CMD
by scrubbing this process's original environment block and making it non-dumpable
(:mod:`attest._secrets`), which would change the test process itself. The CLI tests cover that path.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import blake3
import pytest

from attest.build import BuildOutcome, BuildRequest, run_build
from attest.errors import BuildRefused, CommandFailed
from tests.conftest import KeyPair, git
from verify.formats.evidence import load_evidence
from verify.policy import Policy, ProvenanceRules, SourceRule, TrustedBuilder
from verify.trust import Identity, load_public_key
from verify.verifier import Verdict, verify_artifact

BUILD = (sys.executable, "build.py")


@pytest.fixture
def workdir(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``repo`` as the current directory, in an environment that names no CI platform."""
    for name in list(os.environ):
        if name.startswith(("CODEBUILD_", "GITHUB_", "GITLAB_", "CI_", "ATTEST_", "SIGSTORE_")) \
                or name == "SOURCE_DATE_EPOCH":
            monkeypatch.delenv(name)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.chdir(repo)
    return repo


def _request(keys: dict[str, KeyPair], **fields: Any) -> BuildRequest:
    """Build dist/ with build.py, signed by the dev key; ``fields`` change that."""
    return replace(BuildRequest(signer=str(keys["dev"].private), artifacts=("dist/",), command=BUILD,
                                pass_credentials=True), **fields)


def _digests(path: Path) -> dict[str, str]:
    data = path.read_bytes()
    return {"sha256": hashlib.sha256(data).hexdigest(), "blake3": blake3.blake3(data).hexdigest()}


def _verify(outcome: BuildOutcome, artifact: Path, *, public_key: Path, commit: str) -> Verdict:
    """What a pipeline checks: the dev key signed it, for this repository, branch, commit and lockfile."""
    policy = Policy(identities={"dev": Identity(name="dev", keys=(load_public_key(public_key.read_bytes(),
                                                                                  name="dev.pub.pem"),))},
                    provenance=ProvenanceRules(signed_by=("dev",),
                                               source=SourceRule(uri="github.com/acme/app", branches=("main",)),
                                               builders=(TrustedBuilder("attest:builder:local"),), commit=commit,
                                               lockfiles=("requirements.txt",)))
    evidence = load_evidence(outcome.output.read_bytes(), source=str(outcome.output))
    return verify_artifact(str(artifact), evidence, policy=policy, digests=_digests(artifact))


def test_run_build_signs_provenance_that_verifies_against_the_public_key(workdir: Path,
                                                                        keys: dict[str, KeyPair]) -> None:
    commit = git(workdir, "rev-parse", "HEAD")

    outcome = run_build(_request(keys))

    assert outcome.output == Path("provenance.intoto.jsonl")
    assert (outcome.commit, outcome.ref, outcome.source) == (commit, "refs/heads/main", "https://github.com/acme/app")
    assert outcome.dirty is False
    assert outcome.builder_id == "attest:builder:local"
    assert outcome.lockfiles == ("requirements.txt",)
    assert (outcome.published, outcome.bundle, outcome.keyless) == ((), None, None)
    assert [(name, dict(digests)) for name, digests in outcome.subjects] == [
        ("dist/app.tar.gz", _digests(workdir / "dist/app.tar.gz")),
        ("dist/sub/data.bin", _digests(workdir / "dist/sub/data.bin"))]
    # CMD saw SOURCE_DATE_EPOCH = the commit time
    commit_time = git(workdir, "log", "-1", "--format=%ct")
    assert (workdir / "dist/app.tar.gz").read_bytes() == f"app built at {commit_time}".encode()
    for name, _ in outcome.subjects:
        verdict = _verify(outcome, workdir / name, public_key=keys["dev"].public, commit=commit)
        assert verdict.subject.name == name
        assert verdict.provenance is not None
        assert verdict.provenance.commit == commit
        assert [lock.name for lock in verdict.provenance.lockfiles] == ["requirements.txt"]
        assert verdict.provenance.external_parameters["command"] == list(BUILD)


def test_provenance_does_not_verify_against_another_key(workdir: Path, keys: dict[str, KeyPair]) -> None:
    from verify.errors import EvidenceRejected

    outcome = run_build(_request(keys))

    with pytest.raises(EvidenceRejected):
        _verify(outcome, workdir / "dist/app.tar.gz", public_key=keys["other"].public,
                commit=git(workdir, "rev-parse", "HEAD"))


def test_dirty_tree_is_refused_and_nothing_is_written(workdir: Path, keys: dict[str, KeyPair]) -> None:
    (workdir / "build.py").write_text("print('changed')\n")

    with pytest.raises(BuildRefused, match=r"uncommitted changes to tracked files.*--allow-dirty"):
        run_build(_request(keys, artifacts=("build.py",), command=()))

    assert not (workdir / "provenance.intoto.jsonl").exists()


def test_allow_dirty_builds_and_says_so(workdir: Path, keys: dict[str, KeyPair]) -> None:
    (workdir / "build.py").write_text("print('changed')\n")

    outcome = run_build(_request(keys, artifacts=("build.py",), command=(), allow_dirty=True))

    assert outcome.dirty is True
    assert outcome.output.is_file()


def test_failing_command_raises_command_failed_and_writes_nothing(workdir: Path, keys: dict[str, KeyPair]) -> None:
    command = (sys.executable, "-c", "import sys; sys.exit(7)")

    with pytest.raises(CommandFailed, match="failed with exit status 7; no attestation was written") as failed:
        run_build(_request(keys, command=command))

    assert failed.value.returncode == 7
    assert not (workdir / "provenance.intoto.jsonl").exists()


def test_publishing_to_a_directory_puts_artefact_and_provenance_under_its_sha256(workdir: Path, tmp_path: Path,
                                                                                 keys: dict[str, KeyPair]) -> None:
    store = tmp_path / "store"

    outcome = run_build(_request(keys, publish=str(store)))

    line = outcome.output.read_bytes()
    provenance_name = f"provenance-{hashlib.sha256(line).hexdigest()}.intoto.jsonl"
    for name, digests in outcome.subjects:
        folder = store / "sha256" / digests["sha256"]
        assert (folder / "artifact" / name).read_bytes() == (workdir / name).read_bytes()
        assert (folder / provenance_name).read_bytes() == line
    assert len(outcome.published) == 2 * len(outcome.subjects)


def test_publishing_without_artefacts_puts_the_provenance_only(workdir: Path, tmp_path: Path,
                                                              keys: dict[str, KeyPair]) -> None:
    store = tmp_path / "store"

    outcome = run_build(_request(keys, publish=str(store), publish_artifacts=False))

    provenance_name = f"provenance-{hashlib.sha256(outcome.output.read_bytes()).hexdigest()}.intoto.jsonl"
    for _, digests in outcome.subjects:
        assert [p.name for p in (store / "sha256" / digests["sha256"]).iterdir()] == [provenance_name]


def test_bundle_is_written_beside_the_output(workdir: Path, tmp_path: Path, keys: dict[str, KeyPair]) -> None:
    output = tmp_path / "out" / "app.intoto.jsonl"
    output.parent.mkdir()

    outcome = run_build(_request(keys, output=output, bundle=True))

    assert outcome.output == output and output.is_file()
    assert outcome.bundle == tmp_path / "out" / "app.sigstore.json"
    assert outcome.bundle.is_file()


def test_the_log_says_what_runs_with_which_source_date_epoch(workdir: Path, keys: dict[str, KeyPair]) -> None:
    lines: list[str] = []

    run_build(_request(keys), log=lines.append)

    commit_time = git(workdir, "log", "-1", "--format=%ct")
    assert lines == [f"running {' '.join(BUILD)} (SOURCE_DATE_EPOCH={commit_time})"]


def test_a_ci_platform_naming_another_commit_is_refused(workdir: Path, keys: dict[str, KeyPair],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEBUILD_BUILD_ARN", "arn:aws:codebuild:eu-west-1:111111111111:build/app-build:0b1c")
    monkeypatch.setenv("CODEBUILD_RESOLVED_SOURCE_VERSION", "f" * 40)

    with pytest.raises(BuildRefused, match="the provenance would name the wrong commit"):
        run_build(_request(keys))

    assert not (workdir / "dist").exists()  # refused before CMD ran


@pytest.mark.parametrize(("fields", "message"), [
    ({"no_lockfile": True, "lockfiles": (Path("requirements.txt"),)},
     "--no-lockfile and --lockfile exclude each other"),
    ({"identity_token": "token"}, "--identity-token applies to --signer sigstore only"),
    ({"trust_config": Path("trust.json")}, "--trust-config applies to --signer sigstore only"),
    ({"staging": True}, "--staging applies to --signer sigstore only"),
    ({"signer": "sigstore", "trust_config": Path("trust.json"), "staging": True},
     "--trust-config and --staging exclude each other"),
    ({"artifacts": ()}, "no artefact to attest"),
], ids=["lockfile-and-no-lockfile", "token-with-key", "trust-config-with-key", "staging-with-key",
        "two-sigstore-instances", "no-artifact"])
def test_contradictory_requests_are_refused_before_anything_runs(workdir: Path, keys: dict[str, KeyPair],
                                                                 fields: dict[str, Any], message: str) -> None:
    from verify.errors import RequestError

    with pytest.raises(RequestError, match=message):
        run_build(_request(keys, **fields))

    assert not (workdir / "dist").exists()
    assert not (workdir / "provenance.intoto.jsonl").exists()


def _expand_as_unprivileged(folder: Path) -> subprocess.CompletedProcess[str]:
    """``expand_artifacts([dist])`` in a process that file permissions bind (root without the capabilities that
    bypass them)."""
    code = ("import sys; from pathlib import Path; from attest.collect import expand_artifacts\n"
            "from attest.errors import BuildRefused\n"
            "try:\n    print([a.name for a in expand_artifacts(['dist'], root=Path('.'))])\n"
            "except BuildRefused as e:\n    print('refused:', e)\n")
    command = [sys.executable, "-c", code]
    if os.geteuid() == 0:
        command = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *command]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, check=True)


def test_an_artefact_folder_part_of_which_cannot_be_listed_is_refused_never_attested_in_part(tmp_path: Path) -> None:
    (tmp_path / "dist" / "sub").mkdir(parents=True)
    (tmp_path / "dist" / "app.tar.gz").write_text("app")
    (tmp_path / "dist" / "sub" / "data.bin").write_text("data")
    (tmp_path / "dist" / "sub").chmod(0o300)  # entered, not listed
    try:
        done = _expand_as_unprivileged(tmp_path)
    finally:
        (tmp_path / "dist" / "sub").chmod(0o700)
    assert done.stdout.startswith("refused: cannot list dist/sub under an artifact directory"), done
    assert _expand_as_unprivileged(tmp_path).stdout.strip() == "['dist/app.tar.gz', 'dist/sub/data.bin']"
    os.mkfifo(tmp_path / "dist" / "sub" / "pipe")
    assert "dist/sub/pipe is not a regular file" in _expand_as_unprivileged(tmp_path).stdout


def test_on_a_ci_platform_its_own_builder_is_recorded_whatever_builder_id_asks(
        workdir: Path, keys: dict[str, KeyPair], monkeypatch: pytest.MonkeyPatch) -> None:
    """--builder-id (ATTEST_BUILDER_ID) names the builder only where no CI platform is recognised: a build of one
    CodeBuild project never passes as another project's (the builder a policy trusts)."""
    commit = git(workdir, "rev-parse", "HEAD")
    monkeypatch.setenv("CODEBUILD_BUILD_ARN", "arn:aws:codebuild:eu-west-1:111111111111:build/pr-checks:0b1c")
    monkeypatch.setenv("CODEBUILD_RESOLVED_SOURCE_VERSION", commit)
    said: list[str] = []
    outcome = run_build(_request(keys, builder_id="arn:aws:codebuild:eu-west-1:111111111111:project/app-build"),
                        log=said.append)
    assert outcome.builder_id == "arn:aws:codebuild:eu-west-1:111111111111:project/pr-checks"
    assert any("is not recorded" in line and "project/app-build" in line for line in said), said
