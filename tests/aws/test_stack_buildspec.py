"""docs/aws/buildspec-stack.yml, run as CodeBuild runs it, for two stacks in stg and prd, on the local moto server.

The buildspec is one stack's CodeBuild action in one account (docs/path.md): the gate for the stack, the
deployment (``./deploy.sh``, a stub that records what it deployed, and fails when asked to), the account's
signed deployment record with its KMS deployer key, and, in ``post_build``, a failed record for a
deployment that started and failed. Its commands run as written, one at a time with bash; only the KMS key
ARN (moto's account), the paths and the project's STACK and STAGE are set, as a CodeBuild project sets them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import AttestRunner, attest_bin, git, make_keypair
from tests.conftest_aws import MotoEnv

SPEC = Path(__file__).resolve().parents[2] / "docs" / "aws" / "buildspec-stack.yml"
VENV_BIN = Path(sys.executable).parent
ACCOUNT = {"stg": "222222222222", "prd": "333333333333"}


@dataclass(frozen=True)
class Ran:
    codes: list[int]
    out: str
    err: str


def _spec() -> dict[str, object]:
    doc = yaml.safe_load(SPEC.read_text())
    assert doc["version"] == 0.2
    return dict(doc)


def run_action(env: dict[str, str], cwd: Path) -> Ran:
    """The build phase until a command fails, then post_build, as CodeBuild runs them by default (with
    ``on-failure: ABORT`` a failed build phase would end the build, post_build not run: the spec must not say so)."""
    doc = _spec()
    phases = doc["phases"]
    assert isinstance(phases, dict)
    assert phases["build"].get("on-failure", "CONTINUE") != "ABORT", "a failed deployment would go unrecorded"
    codes, out, err = [], "", ""
    succeeding = "1"
    for command in phases["build"]["commands"]:
        done = subprocess.run(["bash", "-u", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=180)
        codes.append(done.returncode)
        out, err = out + done.stdout, err + done.stderr
        if done.returncode != 0:
            succeeding = "0"
            break
    for command in phases["post_build"]["commands"]:
        done = subprocess.run(["bash", "-u", "-c", command], cwd=cwd,
                              env={**env, "CODEBUILD_BUILD_SUCCEEDING": succeeding}, capture_output=True, text=True,
                              timeout=180)
        codes.append(done.returncode)
        out, err = out + done.stdout, err + done.stderr
    return Ran(codes, out, err)


@dataclass
class Accounts:
    aws: MotoEnv
    root: Path
    config: Path
    release: Path
    deploy_keys: dict[str, str]
    runs: int = 0

    @property
    def store(self) -> str:
        variables = _spec()["env"]["variables"]  # type: ignore[index]
        return f"s3://{variables['ATTEST_STORE']}/{variables['STORE_PREFIX']}"

    def action(self, stage: str, stack: str, *, fail_deploy: bool = False) -> Ran:
        """One stack's action in one account, in a fresh CodeBuild workspace."""
        self.runs += 1
        workspace = self.root / f"{stage}-{stack}-{self.runs}"
        src, release = workspace / "DeployConfig", workspace / "Release"
        shutil.copytree(self.config, src)
        release.mkdir(parents=True)
        (release / "release.intoto.jsonl").write_bytes(self.release.read_bytes())
        variables = {str(k): str(v) for k, v in _spec()["env"]["variables"].items()}  # type: ignore[union-attr]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CODEBUILD_", "ATTEST_", "GITHUB_", "CI_"))}
        env.update({"PATH": os.pathsep.join([attest_bin(), str(VENV_BIN), env.get("PATH", "")]), "NO_COLOR": "1",
                    **variables, "STACK": stack, "STAGE": stage, "ATTEST_DEPLOY_KEY": self.deploy_keys[stage],
                    "CODEBUILD_SRC_DIR": str(src), "CODEBUILD_SRC_DIR_Release": str(release),
                    "CODEBUILD_BUILD_ARN": f"arn:aws:codebuild:{self.aws.region}:{ACCOUNT[stage]}:build/"
                                           f"{stack}-{stage}:{uuid.uuid4()}"})
        if fail_deploy:
            env["FAIL_DEPLOY"] = "1"
        return run_action(env, src)

    def deployed(self) -> list[str]:
        log = self.root / "deployed.log"
        return log.read_text().splitlines() if log.exists() else []


POLICY = """\
version: 1
identities:
  dev-build: {{keys: [keys/dev-build.pub.pem]}}
  release-manager: {{keys: [keys/release.pub.pem]}}
  stg-deployer: {{keys: [keys/stg-deployer.pub.pem]}}
  prd-deployer: {{keys: [keys/prd-deployer.pub.pem]}}
provenance:
  signed-by: [dev-build]
components:
  infra: {{source: {{uri: github.com/acme/infra, branches: [main]}}}}
  app: {{source: {{uri: github.com/acme/app, branches: [main]}}}}
releases: {{signed-by: [release-manager]}}
stages:
  stg: {{deployed-by: [stg-deployer]}}
  prd: {{deployed-by: [prd-deployer], require-deployed: [stg]}}
"""


def _key(aws: MotoEnv, alias: str) -> str:
    kms = aws.client("kms")
    key = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    return f"arn:aws:kms:{aws.region}:{aws.account_id}:{alias}"


@pytest.fixture
def accounts(aws_env: MotoEnv, tmp_path: Path, attest: AttestRunner) -> Accounts:
    """The store bucket; dev's KMS key and two stacks built and published with it; a release; the deployer
    KMS keys of stg and prd (the buildspec's alias, in moto's account); DeployConfig with the policy and the
    pinned PEMs."""
    variables = _spec()["env"]["variables"]  # type: ignore[index]
    example = re.fullmatch(r"arn:aws:kms:[\w-]+:\d{12}:alias/attest-stg-deployer", variables["ATTEST_DEPLOY_KEY"])
    assert example, "the buildspec's ATTEST_DEPLOY_KEY is not the stg deployer key's alias ARN"
    aws_env.client("s3").create_bucket(Bucket=variables["ATTEST_STORE"],
                                       CreateBucketConfiguration={"LocationConstraint": aws_env.region})
    config = tmp_path / "DeployConfig"
    (config / "policy" / "keys").mkdir(parents=True)
    keys = {"dev-build": _key(aws_env, "alias/attest-dev-build"),
            "stg-deployer": _key(aws_env, "alias/attest-stg-deployer"),
            "prd-deployer": _key(aws_env, "alias/attest-prd-deployer")}
    for name, arn in keys.items():
        exported = attest("key", "export", f"awskms:{arn}", "--out", config / "policy" / "keys" / f"{name}.pub.pem")
        assert exported.code == 0, exported
    release_key = make_keypair(tmp_path, "release")
    (config / "policy" / "keys" / "release.pub.pem").write_bytes(release_key.public.read_bytes())
    (config / "policy" / "attest.yaml").write_text(POLICY.format())
    store = f"s3://{variables['ATTEST_STORE']}/{variables['STORE_PREFIX']}"
    for stack in ("infra", "app"):
        repo = tmp_path / stack
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        git(repo, "remote", "add", "origin", f"git@github.com:acme/{stack}.git")
        (repo / "build.sh").write_text(f"mkdir -p dist && echo {stack} > dist/{stack}.zip\n")
        (repo / ".gitignore").write_text("dist/\n")
        git(repo, "add", ".")
        git(repo, "commit", "-q", "-m", stack)
        built = attest("build", "--signer", f"awskms:{keys['dev-build']}", "--artifact", "dist/", "--no-lockfile",
                       "--publish", store, "-o", tmp_path / f"{stack}.intoto.jsonl", "--", "sh", "build.sh", cwd=repo)
        assert built.code == 0, built
    release = tmp_path / "release.intoto.jsonl"
    made = attest("release", "create", "--name", "2026.12.1", "--component", "infra=infra.intoto.jsonl",
                  "--component", "app=app.intoto.jsonl", "--needs", "app=infra", "--signer", release_key.private,
                  "--store", store, "-o", release, cwd=tmp_path)
    assert made.code == 0, made
    deployed = tmp_path / "deployed.log"
    stub = config / "deploy.sh"
    stub.write_text("#!/bin/sh\n# stub: records what it deployed (stage, stack); fails when FAIL_DEPLOY is set\n"
                    f"set -eu\nif [ -n \"${{FAIL_DEPLOY:-}}\" ]; then echo 'stack update failed' >&2; exit 1; fi\n"
                    f"printf '%s %s\\n' \"$1\" \"$2\" >> {deployed}\n")
    stub.chmod(0o755)
    return Accounts(aws=aws_env, root=tmp_path, config=config, release=release,
                    deploy_keys={"stg": keys["stg-deployer"], "prd": keys["prd-deployer"]})


def _status(accounts: Accounts, attest: AttestRunner) -> dict[str, dict[str, dict[str, object]]]:
    shown = attest("status", "--store", accounts.store, "--policy", accounts.config / "policy" / "attest.yaml",
                   "--format", "json")
    assert shown.code == 0, shown
    environments: dict[str, dict[str, dict[str, object]]] = json.loads(shown.out)["environments"]
    return environments


def test_two_stacks_through_stg_and_prd_in_order(accounts: Accounts, attest: AttestRunner) -> None:
    # prd before stg ran the release: refused (require-deployed), nothing deployed
    ran = accounts.action("prd", "infra")
    assert ran.codes == [1, 0], ran
    assert "component infra: no succeeded deployment record of these artefacts in stg" in ran.err
    # app first in stg: the gate refuses, nothing is deployed, nothing is recorded (not even a failure)
    early = accounts.action("stg", "app")
    assert early.codes == [1, 0], early
    assert "app needs infra, and no succeeded deployment record of infra in stg is trusted" in early.err
    assert accounts.deployed() == [] and _status(accounts, attest)["stg"] == {}
    # infra, then app: each gate passes, each deployment is recorded with the stg deployer's KMS key
    for stack in ("infra", "app"):
        ran = accounts.action("stg", stack)
        assert ran.codes == [0, 0, 0, 0, 0], ran
        assert f"stg-deployer recorded succeeded deploy of {stack} (release 2026.12.1) in stg" in ran.out
    assert accounts.deployed() == ["stg infra", "stg app"]
    stg = _status(accounts, attest)["stg"]
    assert {name: (entry["release"], entry["signer"]) for name, entry in stg.items()} == {
        "infra": ("2026.12.1", "stg-deployer"), "app": ("2026.12.1", "stg-deployer")}
    # prd: app before infra is refused; then both, in order
    assert accounts.action("prd", "app").codes == [1, 0]
    for stack in ("infra", "app"):
        assert accounts.action("prd", stack).codes == [0, 0, 0, 0, 0]
    assert accounts.deployed() == ["stg infra", "stg app", "prd infra", "prd app"]
    prd = _status(accounts, attest)["prd"]
    assert {name: entry["signer"] for name, entry in prd.items()} == {"infra": "prd-deployer", "app": "prd-deployer"}


def test_a_deployment_that_fails_is_recorded_as_failed(accounts: Accounts, attest: AttestRunner) -> None:
    ran = accounts.action("stg", "infra", fail_deploy=True)
    assert ran.codes == [0, 0, 1, 0], ran  # the gate, the marker, the deployment failed; post_build recorded it
    assert "stg-deployer recorded failed deploy of infra (release 2026.12.1) in stg" in ran.out
    infra = _status(accounts, attest)["stg"]["infra"]
    assert infra["release"] is None and infra["lastFailed"]["status"] == "failed"  # type: ignore[index]
    # a failure is no deployment: app still waits for infra
    assert accounts.action("stg", "app").codes == [1, 0]
