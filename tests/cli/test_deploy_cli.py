"""Issue 19, part 3: ``attest deploy record``, an environment's signed word that it deployed a stack of a release.

Two stacks from two repositories (infra and app) built into one store and bound by one release manifest; a
policy with stages stg and prd, each with its verifier and the identity that may sign its deployment
records. A record is signed only after (a) the environment and the signer, (b) the manifest and the
component, and (c), for a success, the environment's gate; anything refused leaves nothing written and
nothing published.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests import factory as f
from tests.conftest import KeyPair, Result, make_keypair, make_repo, run_attest
from verify.formats.deployment import read_deployment
from verify.formats.envelope import Envelope
from verify.formats.statement import parse_statement
from verify.trust import Identity, load_public_key_file
from verify.verifier import verify_signature


@dataclass(frozen=True)
class Stacks:
    root: Path
    keys: dict[str, KeyPair]

    @property
    def release(self) -> Path:
        return self.root / "release.intoto.jsonl"

    def manifest(self) -> dict[str, Any]:
        """The release manifest's statement, as signed."""
        statement: dict[str, Any] = json.loads(Envelope.from_json(self.release.read_bytes().strip()).payload)
        return statement

    def artifacts(self, component: str) -> list[dict[str, Any]]:
        """The component's artefacts, as the manifest names them."""
        return next(c["artifacts"] for c in self.manifest()["predicate"]["components"] if c["name"] == component)


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Stacks:
    """infra and app built into ``store``, a release r1 of both (app needs infra), and the policy."""
    root = tmp_path_factory.mktemp("deploy")
    keys = {name: make_keypair(root, name) for name in ("dev", "release", "stg", "prd", "stg-deploy", "prd-deploy")}
    for name in ("infra", "app"):
        repo = make_repo(root / name, origin=f"git@github.com:acme/{name}.git")
        built = run_attest("build", "--signer", keys["dev"].private, "--artifact", "dist/", "--publish", "../store",
                           "-o", f"../{name}.intoto.jsonl", "--", sys.executable, "build.py", cwd=repo)
        assert built.code == 0, built
    made = run_attest("release", "create", "--name", "r1", "--component", "infra=infra.intoto.jsonl",
                      "--component", "app=app.intoto.jsonl", "--needs", "app=infra", "--signer",
                      keys["release"].private, cwd=root)
    assert made.code == 0, made
    (root / "policy.yaml").write_text(f"""\
version: 1
identities:
  dev-build: {{keys: ["{keys['dev'].public}"]}}
  release-manager: {{keys: ["{keys['release'].public}"]}}
  stg-verifier: {{keys: ["{keys['stg'].public}"]}}
  prd-verifier: {{keys: ["{keys['prd'].public}"]}}
  stg-deployer: {{keys: ["{keys['stg-deploy'].public}"]}}
  prd-deployer: {{keys: ["{keys['prd-deploy'].public}"]}}
provenance:
  signed-by: [dev-build]
stages:
  stg: {{verifier: stg-verifier, deployed-by: [stg-deployer]}}
  prd:
    verifier: prd-verifier
    require-vsa: [{{stage: stg, signed-by: stg-verifier}}]
    deployed-by: [prd-deployer]
releases: {{signed-by: [release-manager]}}
""")
    return Stacks(root=root, keys=keys)


@dataclass(frozen=True)
class Run:
    result: Result
    store: Path
    output: Path

    @property
    def said(self) -> str:
        lines = self.result.err.strip().splitlines()
        return lines[-1] if lines else ""

    def records(self) -> list[Path]:
        """Every deployment record in the store."""
        return sorted(self.store.glob("sha256/*/deployment-*.intoto.jsonl"))


def deploy(stacks: Stacks, tmp: Path, *, env: str = "stg", component: str = "infra", status: str = "succeeded",
           signer: str = "stg-deploy", release: Path | None = None, more: tuple[str, ...] = (),
           environ: dict[str, str] | None = None) -> Run:
    """``attest deploy record`` against a copy of the stacks' store (each test its own), writing into ``tmp``."""
    store = tmp / "store"
    if not store.exists():
        shutil.copytree(stacks.root / "store", store)
    output = tmp / "deployment.intoto.jsonl"
    result = run_attest("deploy", "record", "--env", env, "--release", release or stacks.release, "--component",
                        component, "--status", status, "--signer", stacks.keys[signer].private, "--policy",
                        stacks.root / "policy.yaml", "--store", store, "-o", output, *more, cwd=stacks.root,
                        env=environ)
    return Run(result=result, store=store, output=output)


def test_a_succeeded_record_is_signed_written_published_and_reads_back(stacks: Stacks, tmp_path: Path) -> None:
    replaced = "ab" * 32
    ran = deploy(stacks, tmp_path, more=("--replaces", replaced, "--format", "json"),
                 environ={"GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "42", "GITHUB_REPOSITORY": "acme/infra"})
    assert ran.result.code == 0, ran.result
    line = ran.output.read_bytes()
    manifest_sha = hashlib.sha256(stacks.release.read_bytes().strip()).hexdigest()
    artifacts = stacks.artifacts("infra")
    shown = json.loads(ran.result.out)
    assert shown["environment"] == "stg" and shown["component"] == "infra" and shown["status"] == "succeeded"
    assert shown["release"] == {"name": "r1", "digest": {"sha256": manifest_sha}}
    assert shown["kind"] == "deploy" and shown["signer"] == "stg-deployer" and shown["artifacts"] == artifacts
    # published under each artefact of the component, and in the deployment index: the very bytes of the output
    wanted = {a["digest"]["sha256"] for a in artifacts}
    assert {p.parent.name for p in ran.records()} == wanted and len(shown["published"]) == len(wanted) + 1
    assert all(p.read_bytes() == line for p in ran.records())
    assert all(p.name == f"deployment-{hashlib.sha256(line).hexdigest()}.intoto.jsonl" for p in ran.records())
    # filed in the index by environment, component, the signed time and the digest of the envelope line
    indexed = sorted((ran.store / "deployments").rglob("*.intoto.jsonl"))
    assert [p.parent.relative_to(ran.store).as_posix() for p in indexed] == ["deployments/stg/infra"]
    assert str(indexed[0]) in shown["published"] and indexed[0].read_bytes() == line
    # signed by the stg deployer's key, and every field reads back
    envelope = Envelope.from_json(line.strip())
    stg = Identity(name="stg-deployer", keys=(load_public_key_file(stacks.keys["stg-deploy"].public),))
    assert verify_signature(envelope, [stg], source=str(ran.output)).name == "stg-deployer"
    record = read_deployment(parse_statement(envelope.payload))
    assert (record.environment, record.release, record.release_sha256) == ("stg", "r1", manifest_sha)
    assert (record.component, record.status, record.kind, record.replaces) == ("infra", "succeeded", "deploy",
                                                                                 replaced)
    assert [(s.name, dict(s.digest)) for s in record.artifacts] == [(a["name"], a["digest"]) for a in artifacts]
    assert record.invocation is not None and record.invocation.platform == "github-actions"
    assert record.invocation.id == "https://github.com/acme/infra/actions/runs/42/attempts/1"
    assert abs((datetime.now(UTC) - record.time).total_seconds()) < 300


def test_without_a_pipeline_run_the_invocation_is_left_out(stacks: Stacks, tmp_path: Path) -> None:
    ran = deploy(stacks, tmp_path, component="infra", status="failed", more=("--kind", "hotfix"))
    assert ran.result.code == 0, ran.result
    assert "stg-deployer recorded failed hotfix of infra (release r1) in stg" in ran.result.out
    statement = json.loads(Envelope.from_json(ran.output.read_bytes().strip()).payload)
    assert "invocation" not in statement["predicate"] and "replaces" not in statement["predicate"]
    assert statement["predicate"]["kind"] == "hotfix" and statement["subject"] == stacks.artifacts("infra")


@pytest.mark.parametrize(("change", "words"), [
    pytest.param({"env": "qa"}, "--env 'qa' is not a stage of the policy (its stages: stg, prd)", id="unknown-env"),
    pytest.param({"component": "db"}, "--component 'db' is not a component of release 'r1' (its components: infra, "
                                      "app)", id="unknown-component"),
    pytest.param({"signer": "prd-deploy"}, "--signer's public key is not a key of an identity that may sign "
                                           "deployment records for 'stg' (stages.stg.deployed-by: stg-deployer)",
                 id="signer-not-deployed-by"),
    pytest.param({"signer": "stg"}, "stages.stg.deployed-by: stg-deployer", id="the-stage-verifier-is-not-a-deployer"),
    pytest.param({"release": "by-dev.intoto.jsonl"}, "the release manifest is not signed by a release signer of the "
                                                     "policy (releases.signed-by: release-manager)",
                 id="manifest-not-signed-by-a-release-signer"),
    pytest.param({"status": "failed", "env": "qa"}, "--env 'qa' is not a stage", id="a-failure-for-an-unknown-env"),
])
def test_a_record_the_policy_would_not_count_is_refused_before_anything_is_signed(
        stacks: Stacks, tmp_path: Path, change: dict[str, Any], words: str) -> None:
    if "release" in change:
        made = run_attest("release", "create", "--name", "r1", "--component", "infra=infra.intoto.jsonl",
                          "--signer", stacks.keys["dev"].private, "-o", tmp_path / "by-dev.intoto.jsonl",
                          cwd=stacks.root)
        assert made.code == 0, made
        change = {"release": tmp_path / "by-dev.intoto.jsonl"}
    ran = deploy(stacks, tmp_path, **change)
    assert ran.result.code == 2 and words in ran.said, ran.result
    assert "Traceback" not in ran.result.err
    assert not ran.output.exists() and ran.records() == []


def test_a_success_is_not_recorded_when_the_environments_gate_refuses(stacks: Stacks, tmp_path: Path) -> None:
    ran = deploy(stacks, tmp_path, env="prd", signer="prd-deploy")  # prd requires stg's VSA; there is none
    assert ran.result.code == 1, ran.result
    assert "component infra: " in ran.said and "stg" in ran.said, ran.said
    assert not ran.output.exists() and ran.records() == []


def test_a_failure_is_recorded_whatever_the_gate_says(stacks: Stacks, tmp_path: Path) -> None:
    ran = deploy(stacks, tmp_path, env="prd", signer="prd-deploy", status="failed", more=("--kind", "rollback"))
    assert ran.result.code == 0, ran.result
    record = read_deployment(parse_statement(Envelope.from_json(ran.output.read_bytes().strip()).payload))
    assert (record.environment, record.status, record.kind) == ("prd", "failed", "rollback")
    assert {p.parent.name for p in ran.records()} == {a["digest"]["sha256"] for a in stacks.artifacts("infra")}


@pytest.mark.parametrize(("more", "words"), [
    (("--replaces", "AB" * 32), "is not a sha256 (64 lower-case hex digits) of a deployment record"),
    (("--kind", "canary"), "'canary' is not one of 'deploy', 'rollback', 'hotfix'"),
])
def test_a_bad_flag_is_a_usage_error(stacks: Stacks, tmp_path: Path, more: tuple[str, ...], words: str) -> None:
    ran = deploy(stacks, tmp_path, more=more)
    assert ran.result.code == 2 and words in ran.said, ran.result
    assert not ran.output.exists() and ran.records() == []


def test_the_audit_counts_deployment_records_and_flags_one_by_another_signer(stacks: Stacks, tmp_path: Path) -> None:
    ran = deploy(stacks, tmp_path)
    assert ran.result.code == 0, ran.result
    policy = stacks.root / "policy.yaml"
    # the release's manifest among the sources: the records are placed in it (else they count in no figure)
    clean = run_attest("audit", ran.store, stacks.release, "--policy", policy, "--format", "json", cwd=tmp_path)
    assert clean.code == 0, clean
    report = json.loads(clean.out)
    assert report["anomalies"] == []
    listed = [d for a in report["artifacts"] for s in a["stages"] if s["stage"] == "stg" for d in s["deployments"]]
    assert len(listed) == len(stacks.artifacts("infra"))
    assert all(d["status"] == "succeeded" and d["environment"] == "stg" and d["release"] == "r1"
               and d["component"] == "infra" and d["kind"] == "deploy" and d["signers"] == ["stg-deployer"]
               for d in listed), listed

    # a record for stg signed by prd's deployer (an identity of the policy, but not one of stg's deployed-by)
    infra = stacks.artifacts("infra")
    forged = f.sign(stacks.keys["prd-deploy"].private, {
        "_type": "https://in-toto.io/Statement/v1", "subject": infra,
        "predicateType": "https://attest.dev/deployment/v1",
        "predicate": {"environment": "stg", "release": {"name": "r1", "digest": {"sha256": "cd" * 32}},
                      "component": "infra", "status": "succeeded", "timeDeployed": "2026-11-28T10:00:00Z",
                      "kind": "deploy"}})
    f.publish(ran.store, forged, kind="deployment")
    flagged = run_attest("audit", ran.store, stacks.release, "--policy", policy, "--format", "json", cwd=tmp_path)
    assert flagged.code == 1, flagged
    anomalies = json.loads(flagged.out)["anomalies"]
    assert {a["kind"] for a in anomalies} == {"untrusted-signer"}
    assert {a["sha256"] for a in anomalies} == {a["digest"]["sha256"] for a in infra}
    assert all("a deployment record for environment 'stg' is signed by prd-deployer, but stages.stg.deployed-by "
               "allows stg-deployer" in a["message"] and a["step"] == "stg" for a in anomalies), anomalies


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, None),
    ({"CODEPIPELINE_EXECUTION_ID": "3f1c-e1", "CODEBUILD_BUILD_ARN":
      "arn:aws:codebuild:eu-west-1:111111111111:build/deploy:9"}, ("codepipeline", "3f1c-e1")),
    ({"CODEBUILD_BUILD_ARN": "arn:aws:codebuild:eu-west-1:111111111111:build/deploy:9"},
     ("codebuild", "arn:aws:codebuild:eu-west-1:111111111111:build/deploy:9")),
    ({"CODEBUILD_BUILD_ID": "deploy:9"}, ("codebuild", "deploy:9")),
    ({"GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "7", "GITHUB_REPOSITORY": "acme/app", "GITHUB_RUN_ATTEMPT": "2"},
     ("github-actions", "https://github.com/acme/app/actions/runs/7/attempts/2")),
    ({"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "acme/app"}, None),
])
def test_the_pipeline_run_is_what_the_environment_tells(environ: dict[str, str],
                                                        expected: tuple[str, str] | None) -> None:
    from attest.collect import pipeline_run

    assert pipeline_run(environ) == expected


def test_a_record_that_could_not_be_published_under_its_artefacts_is_not_indexed(stacks: Stacks,
                                                                                 tmp_path: Path) -> None:
    """The deployment index is written last: what attest status and the order rule count is never a record whose
    publishing failed (a rerun publishes it whole)."""
    store = tmp_path / "store"
    shutil.copytree(stacks.root / "store", store)
    folder = store / "sha256" / stacks.artifacts("infra")[0]["digest"]["sha256"]
    shutil.rmtree(folder)
    folder.write_text("not a folder")  # the publish under this artefact fails
    ran = deploy(stacks, tmp_path, status="failed")
    assert ran.result.code == 3 and "Traceback" not in ran.result.err, ran.result
    assert not (store / "deployments").exists() and not ran.output.exists()
