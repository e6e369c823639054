"""The image buildspecs (docs/aws/buildspec-image*.yml), run as CodeBuild runs them: dev builds, attests and pushes
an image with its KMS key; stg verifies it in dev's registry and attaches its VSA with its KMS key; prd promotes
it with its evidence into prd's registry and verifies it there. KMS is the local AWS endpoint; the two ECR
repositories are two local registries (Debian's docker-registry), reached over plain HTTP through
ATTEST_REGISTRY_INSECURE, the only thing a real account does not need.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from pathlib import Path

import yaml

from tests.aws.test_buildspecs import (
    EXAMPLE_ACCOUNT,
    VENV_BIN,
    Buildspec,
    buildspec,
    documented_policy,
    run_build_phase,
)
from tests.conftest import AttestRunner, attest_bin, git
from tests.conftest_aws import MotoEnv
from tests.images.conftest import get

DEV, STG, PRD = "buildspec-image.yml", "buildspec-image-stg.yml", "buildspec-image-prd.yml"
PROJECT_ARN = "arn:aws:codebuild:eu-west-1:111111111111:project/app-build"


def _kms_alias(aws: MotoEnv, example: str) -> tuple[str, str]:
    """A key for the alias the buildspec names, in moto's account: (the alias ARN to use, the key ARN)."""
    alias = example.rsplit(":", 1)[1]
    kms = aws.client("kms")
    key = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    return f"arn:aws:kms:{aws.region}:{aws.account_id}:{alias}", key["Arn"]


def _env(spec: Buildspec, src: Path, overrides: dict[str, str], insecure: str, **codebuild: str) -> dict[str, str]:
    unknown = set(overrides) - set(spec.variables) - {"IMAGE_DIGEST", "RELEASE"}
    assert not unknown, f"{spec.name} defines no {sorted(unknown)}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CODEBUILD_", "ATTEST_", "GITHUB_", "CI_"))}
    env.update({"PATH": os.pathsep.join([attest_bin(), str(VENV_BIN), env.get("PATH", "")]), "NO_COLOR": "1",
                "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"})
    env.update(spec.variables)
    env.update(overrides)
    env.update({"CODEBUILD_SRC_DIR": str(src), "CODEBUILD_BUILD_IMAGE": "aws/codebuild/standard:7.0",
                "ATTEST_REGISTRY_INSECURE": insecure, **codebuild})
    return env


def test_an_image_goes_from_dev_through_stg_to_prd_with_its_evidence(
        aws_env: MotoEnv, tmp_path: Path, attest: AttestRunner, oci_registry: str, oci_registry_prd: str) -> None:
    dev, stg, prd = buildspec(DEV), buildspec(STG), buildspec(PRD)
    build_key, build_arn = _kms_alias(aws_env, dev.variables["ATTEST_KMS_KEY"])
    vsa_key, vsa_arn = _kms_alias(aws_env, stg.variables["ATTEST_VSA_KEY"])
    insecure = f"{oci_registry} {oci_registry_prd}"
    registries = {"DEV_ECR": oci_registry, "PRD_ECR": oci_registry_prd}

    # the app: a folder the image serves, and `make site` to write it
    app = tmp_path / "app"
    app.mkdir()
    git(app, "init", "-q", "-b", "main")
    git(app, "remote", "add", "origin", "git@github.com:acme/app.git")
    (app / "Makefile").write_text(".PHONY: site\nsite:\n\tmkdir -p site && echo '<h1>app</h1>' > site/index.html\n")
    (app / "requirements.txt").write_text("click==8.1.7 --hash=sha256:" + "0" * 64 + "\n")
    (app / ".gitignore").write_text("site/\nimage/\n*.intoto.jsonl\nbuild.json\n")
    git(app, "add", ".")
    git(app, "commit", "-q", "-m", "app")
    commit = git(app, "rev-parse", "HEAD")

    # DeployConfig: the documented policy, the PEMs exported from the two keys, a deploy stub
    config = tmp_path / "DeployConfig"
    (config / "policy").mkdir(parents=True)
    policy = documented_policy()
    (config / "policy" / "attest.yaml").write_text(policy)
    identities = yaml.safe_load(policy)["identities"]
    for identity, arn in (("dev-build", build_arn), ("stg-verifier", vsa_arn)):
        (pem,) = identities[identity]["keys"]
        (config / "policy" / pem).parent.mkdir(parents=True, exist_ok=True)
        exported = attest("key", "export", f"awskms:{arn}", "--out", config / "policy" / pem)
        assert exported.code == 0, exported
    deployed = tmp_path / "deployed.log"
    (config / "deploy.sh").write_text(f"#!/bin/sh\nprintf '%s %s\\n' \"$1\" \"$2\" >> {deployed}\n")
    (config / "deploy.sh").chmod(0o755)

    # dev: build, attest, push with the provenance attached
    steps = run_build_phase(dev, cwd=app, env=_env(
        dev, app, {"ATTEST_KMS_KEY": build_key, "DEV_ECR": oci_registry}, insecure,
        CODEBUILD_BUILD_ARN=f"{PROJECT_ARN.replace(':project/', ':build/')}:{uuid.uuid4()}",
        CODEBUILD_RESOLVED_SOURCE_VERSION=commit, CODEBUILD_INITIATOR="codepipeline/app"))
    assert all(step.code == 0 for step in steps), steps
    digest = "sha256:" + json.loads((app / "build.json").read_text())["subjects"][0]["digest"]["sha256"]
    assert f"pushed oci://{oci_registry}/app@{digest}" in steps[-1].out
    _, headers = get(oci_registry, f"/v2/app/manifests/{commit}", "application/vnd.oci.image.manifest.v1+json")
    assert headers["Docker-Content-Digest"] == digest  # tagged with the commit, after the provenance

    # stg: the gate against dev's registry, the VSA signed with stg's KMS key and attached there
    src = shutil.copytree(config, tmp_path / "stg" / "DeployConfig")
    steps = run_build_phase(stg, cwd=src, env=_env(
        stg, src, {"ATTEST_VSA_KEY": vsa_key, "DEV_ECR": oci_registry, "IMAGE_DIGEST": digest}, insecure,
        CODEBUILD_BUILD_ARN=f"arn:aws:codebuild:{aws_env.region}:{EXAMPLE_ACCOUNT['stg']}:build/app-verify-stg:x"))
    assert all(step.code == 0 for step in steps), steps
    assert "vsa       stg PASSED" in steps[0].out and f"oci://{oci_registry}/app@sha256:" in steps[0].out

    # prd: promote into prd's registry with the evidence, verify there, deploy by digest
    src = shutil.copytree(config, tmp_path / "prd" / "DeployConfig")
    steps = run_build_phase(prd, cwd=src, env=_env(
        prd, src, {**registries, "IMAGE_DIGEST": digest, "RELEASE": "v1"}, insecure,
        CODEBUILD_BUILD_ARN=f"arn:aws:codebuild:{aws_env.region}:{EXAMPLE_ACCOUNT['prd']}:build/app-verify-prd:x"))
    assert all(step.code == 0 for step in steps), steps
    assert "evidence  2 attestation(s) attached" in steps[0].out
    assert "vsa       stg by stg-verifier" in steps[1].out
    assert deployed.read_text().split("\n")[:2] == [f"stg {oci_registry}/app@{digest}",
                                                      f"prd {oci_registry_prd}/app@{digest}"]


def test_the_image_buildspecs_use_only_variables_they_set_or_are_handed() -> None:
    handed = {"CODEBUILD_SRC_DIR", "CODEBUILD_RESOLVED_SOURCE_VERSION", "IMAGE_DIGEST", "RELEASE"}
    for name in (DEV, STG, PRD):
        spec = buildspec(name)
        used = {v for command in spec.commands for v in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", command)}
        assert used <= set(spec.variables) | handed, (name, used - set(spec.variables) - handed)
