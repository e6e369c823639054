"""The shipped buildspecs (docs/aws/buildspec*.yml), run as CodeBuild runs them, against the local moto server.

Each test reads the YAML and runs ``phases.build.commands`` as written (a folded ``>-`` command is
one line, exactly the string CodeBuild hands its shell), one command at a time with bash, stopping
at the first that fails as CodeBuild does. The work tree is laid out as CodeBuild lays it out:
``$CODEBUILD_SRC_DIR`` is the primary source (dev: a clone of the app; stg and prd: the
DeployConfig repository, with the policy README.md documents and the PEMs exported from the KMS
keys) and ``$CODEBUILD_SRC_DIR_BuildOutput`` holds what dev's ``artifacts`` section hands on.

Only what a real account provides differently is replaced: the KMS key ARNs (moto's account), the
paths, and, where a test says so, the bucket. Every other variable is the buildspec's own. The
install phase (pip) is skipped: ``attest`` is the virtualenv's, first on PATH. ``./deploy.sh`` is a
stub that records what it was asked to deploy.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blake3
import yaml
from cryptography.hazmat.primitives import serialization
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.signer import SSlibKey

from tests.conftest import AttestRunner, attest_bin, git
from tests.conftest_aws import MotoEnv

DOCS = Path(__file__).resolve().parents[2] / "docs" / "aws"
DEV, STG, PRD = "buildspec.yml", "buildspec-verify-stg.yml", "buildspec-verify-prd.yml"
VENV_BIN = Path(sys.executable).parent
#: The accounts of the example set-up (README.md); moto signs in its own account instead.
EXAMPLE_ACCOUNT = {"dev": "111111111111", "stg": "222222222222", "prd": "333333333333"}
PROJECT = {"stg": "app-verify-stg", "prd": "app-verify-prd"}
VSA_V1 = "https://slsa.dev/verification_summary/v1"
_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")

MAKEFILE = ".PHONY: dist\ndist:\n\tpython3 build.py\n"
BUILD = """\
import gzip, os, pathlib, tarfile
epoch = int(os.environ["SOURCE_DATE_EPOCH"])
pathlib.Path("dist").mkdir(exist_ok=True)
with gzip.GzipFile("dist/app.tar.gz", "wb", mtime=epoch) as packed, tarfile.open(fileobj=packed, mode="w") as tar:
    info = tar.gettarinfo("app.py")
    info.mtime, info.uid, info.gid, info.uname, info.gname = epoch, 0, 0, "", ""
    with open("app.py", "rb") as source:
        tar.addfile(info, source)
"""


# --- the buildspecs, as shipped ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Buildspec:
    name: str
    variables: dict[str, str]
    commands: list[str]
    artifacts: list[str] = field(default_factory=list)


def buildspec(name: str) -> Buildspec:
    doc = yaml.safe_load((DOCS / name).read_text())
    assert doc["version"] == 0.2, name
    variables = {str(k): str(v) for k, v in doc["env"]["variables"].items()}
    commands = doc["phases"]["build"]["commands"]
    assert commands and all(isinstance(c, str) for c in commands), name
    return Buildspec(name=name, variables=variables, commands=commands,
                     artifacts=list(doc.get("artifacts", {}).get("files", [])))


def documented_policy() -> str:
    """The policy README.md documents for the stg and prd deployment repositories, as written there."""
    found = re.search(r"```yaml\n(# policy/attest\.yaml[^\n]*\n.*?)```", (DOCS / "README.md").read_text(), re.S)
    assert found, "README.md documents no policy/attest.yaml"
    return found.group(1)


def emitted_file(spec: Buildspec) -> str:
    """The FILE of ``--emit-vsa FILE`` in the buildspec's attest command."""
    for command in spec.commands:
        words = shlex.split(command)
        if "--emit-vsa" in words:
            return words[words.index("--emit-vsa") + 1]
    raise AssertionError(f"{spec.name} emits no VSA")


@dataclass(frozen=True)
class Step:
    command: str
    code: int
    out: str
    err: str

    def __repr__(self) -> str:  # shown by pytest when an assertion fails
        return f"Step(code={self.code}, command={self.command!r}, out={self.out[-1500:]!r}, err={self.err[-1500:]!r})"


def run_build_phase(spec: Buildspec, *, cwd: Path, env: dict[str, str]) -> list[Step]:
    """Each command of the build phase in its own bash (unset variables are errors), until one fails."""
    steps = []
    for command in spec.commands:
        done = subprocess.run(["bash", "-u", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=180)
        steps.append(Step(command, done.returncode, done.stdout, done.stderr))
        if done.returncode != 0:
            break  # CodeBuild: the phase fails and the rest of its commands do not run
    return steps


# --- a dev account, a stg and a prd pipeline, on moto -------------------------------------------------------

@dataclass
class Handed:
    """What dev's ``artifacts`` section handed on (BuildOutput), and the artefact's sha256 and blake3."""

    files: Path
    sha256: str
    blake3: str = ""


@dataclass
class Pipelines:
    aws: MotoEnv
    root: Path
    app: Path
    config: Path
    """The DeployConfig repository of stg and prd: policy/attest.yaml, policy/keys/*.pem, deploy.sh."""
    deployed: Path
    overrides: dict[str, dict[str, str]]
    runs: int = 0

    @property
    def bucket(self) -> str:
        return buildspec(DEV).variables["ATTEST_STORE"]

    def commit(self, message: str, app: str) -> str:
        (self.app / "app.py").write_text(app)
        git(self.app, "add", ".")
        git(self.app, "commit", "-q", "-m", message)
        return git(self.app, "rev-parse", "HEAD")

    def environment(self, spec: Buildspec, *, src: Path, codebuild: dict[str, str],
                    overrides: dict[str, str]) -> dict[str, str]:
        unknown = set(overrides) - set(spec.variables)
        assert not unknown, f"{spec.name} defines no {sorted(unknown)}: replace only what the buildspec sets"
        env = {k: v for k, v in os.environ.items()  # the AWS_* of the moto fixture stay
               if not k.startswith(("CODEBUILD_", "ATTEST_", "GITHUB_", "GITLAB_", "CI_"))}
        env.update({"PATH": os.pathsep.join([attest_bin(), str(VENV_BIN), env.get("PATH", "")]), "NO_COLOR": "1",
                    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"})
        env.update(spec.variables)
        env.update(overrides)
        env.update({"CODEBUILD_SRC_DIR": str(src), "CODEBUILD_BUILD_IMAGE": "aws/codebuild/standard:7.0"})
        env.update(codebuild)
        return env

    def dev_build(self, commit: str) -> tuple[list[Step], Handed]:
        """buildspec.yml in the app's clone, then its ``artifacts`` copied out as BuildOutput."""
        spec = buildspec(DEV)
        project = yaml.safe_load(documented_policy())["provenance"]["builders"][0]
        env = self.environment(spec, src=self.app, overrides=self.overrides[DEV], codebuild={
            "CODEBUILD_BUILD_ARN": f"{project.replace(':project/', ':build/')}:{uuid.uuid4()}",
            "CODEBUILD_RESOLVED_SOURCE_VERSION": commit, "CODEBUILD_INITIATOR": "codepipeline/app"})
        steps = run_build_phase(spec, cwd=self.app, env=env)
        self.runs += 1
        out = self.root / f"BuildOutput-{self.runs}"
        for pattern in spec.artifacts:
            for path in self.app.glob(pattern):
                if path.is_file():
                    (out / path.relative_to(self.app)).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, out / path.relative_to(self.app))
        artifact = out / buildspec(STG).variables["ARTIFACT"]
        data = artifact.read_bytes() if artifact.is_file() else None
        if data is None:
            return steps, Handed(out, "")
        return steps, Handed(out, hashlib.sha256(data).hexdigest(), blake3.blake3(data).hexdigest())

    def verify(self, stage: str, handed: Handed, *, overrides: dict[str, str] | None = None,
               rename: str | None = None) -> tuple[list[Step], Path]:
        """The stage's buildspec in a fresh CodeBuild workspace: DeployConfig (primary) and BuildOutput.

        ``rename``: BuildOutput holds the artefact (and nothing else) under this name instead.
        """
        spec = buildspec(STG if stage == "stg" else PRD)
        self.runs += 1
        workspace = self.root / f"{stage}-{self.runs}"
        src, secondary = workspace / "DeployConfig", workspace / "BuildOutput"
        shutil.copytree(self.config, src)
        if rename is None:
            shutil.copytree(handed.files, secondary)
        else:
            (secondary / rename).parent.mkdir(parents=True)
            shutil.copyfile(handed.files / spec.variables["ARTIFACT"], secondary / rename)
        account = EXAMPLE_ACCOUNT[stage]
        env = self.environment(spec, src=src, overrides={**self.overrides[spec.name], **(overrides or {})},
                               codebuild={
            "CODEBUILD_SRC_DIR_BuildOutput": str(secondary), "CODEBUILD_INITIATOR": f"codepipeline/app-{stage}",
            "CODEBUILD_BUILD_ARN": f"arn:aws:codebuild:{self.aws.region}:{account}:build/{PROJECT[stage]}:"
                                   f"{uuid.uuid4()}"})
        return run_build_phase(spec, cwd=src, env=env), src

    def deployments(self) -> list[tuple[str, str]]:
        if not self.deployed.exists():
            return []
        return [(line.split()[0], line.split()[1]) for line in self.deployed.read_text().splitlines()]

    def index_entry(self, blake3: str) -> bytes:
        """The store's blake3 index entry for the artefact (the sha256 it is filed under)."""
        s3 = self.aws.client("s3")
        body: bytes = s3.get_object(Bucket=self.bucket, Key=f"app/blake3/{blake3}")["Body"].read()
        return body

    def store_objects(self, sha256: str) -> dict[str, bytes]:
        """Name (below sha256/<hex>/) -> bytes of every object the store holds for the artefact."""
        s3 = self.aws.client("s3")
        listed = s3.list_objects_v2(Bucket=self.bucket, Prefix=f"app/sha256/{sha256}/").get("Contents", [])
        return {o["Key"].split(f"/{sha256}/", 1)[1]: s3.get_object(Bucket=self.bucket, Key=o["Key"])["Body"].read()
                for o in listed}


def make_bucket(aws: MotoEnv, name: str) -> None:
    """A store bucket as templates/store-bucket.yaml makes it: versioned, Object Lock with a default retention."""
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True,
                     CreateBucketConfiguration={"LocationConstraint": aws.region})
    s3.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 400}}})


def set_up(aws: MotoEnv, root: Path, attest: AttestRunner) -> Pipelines:
    """The KMS keys the buildspecs name (as aliases in moto's account), the store bucket, the app, and the
    DeployConfig repository with README's policy and the PEMs exported from the two keys."""
    kms = aws.client("kms")
    overrides: dict[str, dict[str, str]] = {DEV: {}, STG: {}, PRD: {}}
    arns: dict[str, str] = {}
    for spec_name, variable in ((DEV, "ATTEST_KMS_KEY"), (STG, "ATTEST_VSA_KEY")):
        example = buildspec(spec_name).variables[variable]
        alias = re.fullmatch(r"arn:aws:kms:[\w-]+:\d{12}:(alias/[\w/-]+)", example)
        assert alias, f"{spec_name}: {variable} {example!r} is not a KMS alias ARN"
        key = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]
        kms.create_alias(AliasName=alias.group(1), TargetKeyId=key["KeyId"])
        overrides[spec_name][variable] = f"arn:aws:kms:{aws.region}:{aws.account_id}:{alias.group(1)}"
        arns[spec_name] = key["Arn"]
    stores = {buildspec(name).variables["ATTEST_STORE"] for name in (DEV, STG, PRD)}
    assert len(stores) == 1, f"the three buildspecs name different stores: {stores}"
    make_bucket(aws, stores.pop())

    app = root / "app"
    app.mkdir()
    git(app, "init", "-q", "-b", "main")
    git(app, "remote", "add", "origin", "git@github.com:acme/app.git")
    (app / "requirements.txt").write_text("click==8.1.7 --hash=sha256:" + "0" * 64 + "\n")
    (app / "Makefile").write_text(MAKEFILE)
    (app / "build.py").write_text(BUILD)
    (app / ".gitignore").write_text("dist/\n*.intoto.jsonl\n")

    config = root / "DeployConfig"
    (config / "policy").mkdir(parents=True)
    policy = documented_policy()
    (config / "policy" / "attest.yaml").write_text(policy)
    identities = yaml.safe_load(policy)["identities"]
    for identity, spec_name in (("dev-build", DEV), ("stg-verifier", STG)):
        (pem,) = identities[identity]["keys"]
        (config / "policy" / pem).parent.mkdir(parents=True, exist_ok=True)
        exported = attest("key", "export", f"awskms:{arns[spec_name]}", "--out", config / "policy" / pem)
        assert exported.code == 0, exported
    deployed = root / "deployed.log"
    stub = config / "deploy.sh"
    stub.write_text("#!/bin/sh\n# stub: records what it would deploy (stage, sha256, file)\nset -eu\n"
                    f"printf '%s %s %s\\n' \"$1\" \"$(sha256sum \"$2\" | cut -d' ' -f1)\" \"$2\" >> {deployed}\n")
    stub.chmod(0o755)
    return Pipelines(aws=aws, root=root, app=app, config=config, deployed=deployed, overrides=overrides)


def check_vsa_in_store(pipelines: Pipelines, handed: Handed, stg_workspace: Path) -> None:
    """The store holds the stg VSA for the artefact: the file --emit-vsa wrote, signed by the stg key, for
    stage stg, PASSED, naming in inputAttestations the provenance dev published."""
    objects = pipelines.store_objects(handed.sha256)
    assert pipelines.index_entry(handed.blake3) == f"{handed.sha256}\n".encode()  # found by blake3 in stg and prd
    vsas = {name: data for name, data in objects.items() if name.startswith("vsa-")}
    provenances = {name: data for name, data in objects.items() if name.startswith("provenance-")}
    assert len(vsas) == 1 and len(provenances) == 1, sorted(objects)
    (data,) = vsas.values()
    assert data == (stg_workspace / emitted_file(buildspec(STG))).read_bytes()
    line = json.loads(data)
    stg_pem = pipelines.config / "policy" / yaml.safe_load(documented_policy())["identities"]["stg-verifier"]["keys"][0]
    public = serialization.load_pem_public_key(stg_pem.read_bytes())
    key = SSlibKey.from_crypto(public, keyid=line["signatures"][0]["keyid"])
    SslibEnvelope.from_dict(copy.deepcopy(line)).verify([key], 1)
    statement: dict[str, Any] = json.loads(base64.b64decode(line["payload"]))
    assert statement["predicateType"] == VSA_V1
    assert [s["digest"]["sha256"] for s in statement["subject"]] == [handed.sha256]
    predicate = statement["predicate"]
    assert predicate["resourceUri"] == "attest:stage:stg" and predicate["verificationResult"] == "PASSED"
    assert predicate["verifier"]["id"] == f"arn:aws:codebuild:{pipelines.aws.region}:{EXAMPLE_ACCOUNT['stg']}:" \
                                         f"project/{PROJECT['stg']}"
    (provenance,) = provenances.values()
    # a VSA names an attestation by the sha256 of its envelope line, without the line's end
    named = [a["digest"] for a in predicate["inputAttestations"]]
    assert {"sha256": hashlib.sha256(provenance.rstrip(b"\n")).hexdigest()} in named, named


# --- the tests ------------------------------------------------------------------------------------------------

def test_build_commands_use_only_variables_the_buildspec_or_codebuild_sets() -> None:
    codebuild = {"CODEBUILD_SRC_DIR", "CODEBUILD_SRC_DIR_BuildOutput"}
    for name in (DEV, STG, PRD):
        spec = buildspec(name)
        used = {v for command in spec.commands for v in _VARIABLE.findall(command)}
        assert used <= set(spec.variables) | codebuild, (name, used - set(spec.variables) - codebuild)
        assert any(command.startswith("attest ") for command in spec.commands), name


def test_promoted_artefact_passes_prd_and_a_hotfix_that_skipped_stg_does_not(
        aws_env: MotoEnv, tmp_path: Path, attest: AttestRunner) -> None:
    pipelines = set_up(aws_env, tmp_path, attest)

    # dev: build, sign with the dev KMS key, publish to the S3 store
    commit = pipelines.commit("release", "print('hello')\n")
    steps, release = pipelines.dev_build(commit)
    assert [s.code for s in steps] == [0], steps
    published = sorted(pipelines.store_objects(release.sha256))
    assert len(published) == 2 and published[0] == "artifact/dist/app.tar.gz", published
    assert published[1].startswith("provenance-"), published

    # stg: verify, sign a VSA with the stg KMS key, deploy
    steps, stg_workspace = pipelines.verify("stg", release)
    assert [s.code for s in steps] == [0, 0], steps
    assert "vsa       stg PASSED" in steps[0].out
    check_vsa_in_store(pipelines, release, stg_workspace)

    # prd: provenance and stg's VSA, found in the store, then deploy
    steps, _ = pipelines.verify("prd", release)
    assert [s.code for s in steps] == [0, 0], steps
    assert steps[0].out.startswith("PASS ") and "vsa       stg by stg-verifier" in steps[0].out
    assert pipelines.deployments() == [("stg", release.sha256), ("prd", release.sha256)]

    # a hotfix built and published in dev goes straight to prd: refused, nothing deployed
    commit = pipelines.commit("hotfix", "print('hello, hotfix')\n")
    steps, hotfix = pipelines.dev_build(commit)
    assert [s.code for s in steps] == [0], steps
    assert hotfix.sha256 != release.sha256
    steps, _ = pipelines.verify("prd", hotfix)
    assert [s.code for s in steps] == [1], steps  # the deploy line is never reached
    assert "stage 'prd' requires stage 'stg' to have verified this artefact, but no VSA from stage 'stg' was " \
           "found for " in steps[0].err, steps
    assert f"blake3:{hotfix.blake3[:16]}" in steps[0].err, steps  # the digest verify computed: blake3 alone
    assert pipelines.deployments() == [("stg", release.sha256), ("prd", release.sha256)]


def test_prd_pass_does_not_depend_on_file_names(aws_env: MotoEnv, tmp_path: Path, attest: AttestRunner) -> None:
    pipelines = set_up(aws_env, tmp_path, attest)
    steps, release = pipelines.dev_build(pipelines.commit("release", "print('hello')\n"))
    assert [s.code for s in steps] == [0], steps
    steps, _ = pipelines.verify("stg", release)
    assert [s.code for s in steps] == [0, 0], steps

    # The same attestations in another store under swapped names (the provenance called vsa-..., the VSA
    # called provenance-...), and the artefact handed to prd under another name, without provenance file
    s3 = aws_env.client("s3")
    other = "attest-store-copy"
    make_bucket(aws_env, other)
    swapped = {"provenance-": "vsa-", "vsa-": "provenance-"}
    renamed: dict[str, str] = {}
    for name, data in pipelines.store_objects(release.sha256).items():
        kind = next((k for k in swapped if name.startswith(k)), None)
        if kind is not None:
            renamed[name] = swapped[kind] + name.removeprefix(kind)
            s3.put_object(Bucket=other, Key=f"app/sha256/{release.sha256}/{renamed[name]}", Body=data)
    assert len(renamed) == 2, renamed
    steps, _ = pipelines.verify("prd", release, overrides={"ATTEST_STORE": other, "ARTIFACT": "release/app-1.0.bin"},
                                rename="release/app-1.0.bin")
    assert [s.code for s in steps] == [0, 0], steps
    provenance = next(new for old, new in renamed.items() if old.startswith("provenance-"))
    assert f"signed by dev-build (s3://{other}/app/sha256/{release.sha256}/{provenance})" in steps[0].out
    assert pipelines.deployments()[-1] == ("prd", release.sha256)

    # ...and a name does not make a pass: stg's VSA for the release, copied beside a hotfix as vsa-...
    steps, hotfix = pipelines.dev_build(pipelines.commit("hotfix", "print('hello, hotfix')\n"))
    assert [s.code for s in steps] == [0], steps
    (vsa,) = (data for name, data in pipelines.store_objects(release.sha256).items() if name.startswith("vsa-"))
    s3.put_object(Bucket=pipelines.bucket, Key=f"app/sha256/{hotfix.sha256}/vsa-{hashlib.sha256(vsa).hexdigest()}"
                  ".intoto.jsonl", Body=vsa)
    steps, _ = pipelines.verify("prd", hotfix)
    assert [s.code for s in steps] == [1], steps
    assert "stage 'prd' requires stage 'stg' to have verified this artefact" in steps[0].err, steps
    assert ("prd", hotfix.sha256) not in pipelines.deployments()
