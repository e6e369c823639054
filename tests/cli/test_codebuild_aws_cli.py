"""Issue 3's end-to-end: a CodeBuild-like dev build signs with KMS and publishes to S3; stg verifies offline."""

from __future__ import annotations

import base64
import copy
import json
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.signer import SSlibKey

from tests.conftest import AttestRunner, git
from tests.conftest_aws import MotoEnv

SCRIPT = """\
import os, pathlib
pathlib.Path("dist").mkdir(exist_ok=True)
names = sorted(k for k in os.environ if k.startswith("AWS_"))
pathlib.Path("seen-env.txt").write_text("\\n".join(names))
pathlib.Path("dist/app.zip").write_bytes(b"app " + os.environ["SOURCE_DATE_EPOCH"].encode())
"""


def test_codebuild_kms_s3_round_trip(aws_env: MotoEnv, repo: Path, attest: AttestRunner, tmp_path: Path) -> None:
    kms, s3 = aws_env.client("kms"), aws_env.client("s3")
    key = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]
    s3.create_bucket(Bucket="store", ObjectLockEnabledForBucket=True,
                     CreateBucketConfiguration={"LocationConstraint": aws_env.region})
    (repo / "build_zip.py").write_text(SCRIPT)
    (repo / ".gitignore").write_text((repo / ".gitignore").read_text() + "seen-env.txt\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "zip build")
    commit = git(repo, "rev-parse", "HEAD")
    pinned = tmp_path / "dev.pub.pem"
    assert attest("key", "export", f"awskms:{key['Arn']}", "--out", pinned, cwd=repo).code == 0

    build_arn = f"arn:aws:codebuild:{aws_env.region}:111111111111:build/app-build:1c2d3e4f-0000-1111-2222-333344445555"
    env = {"CODEBUILD_BUILD_ARN": build_arn, "CODEBUILD_RESOLVED_SOURCE_VERSION": commit,
           "CODEBUILD_BUILD_IMAGE": "aws/codebuild/standard:7.0", "CODEBUILD_INITIATOR": "codepipeline/app"}
    built = attest("build", "--signer", f"awskms:{key['Arn']}", "--artifact", "dist/app.zip",
                   "--publish", "s3://store/app", "--retain-days", "7", "--retention-mode", "COMPLIANCE",
                   "--format", "json", "--", sys.executable, "build_zip.py", cwd=repo, env=env)
    assert built.code == 0, built

    # the build command saw no credentials (the signer did: it signed through KMS)
    seen = set((repo / "seen-env.txt").read_text().split())
    assert not seen & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"}

    # the provenance names the project and the build, and verifies under a spec-following DSSE verifier
    line = json.loads((repo / "provenance.intoto.jsonl").read_bytes())
    public = serialization.load_pem_public_key(pinned.read_bytes())
    sslib_key = SSlibKey.from_crypto(public, keyid=line["signatures"][0]["keyid"])
    envelope = SslibEnvelope.from_dict(copy.deepcopy(line))
    envelope.verify([sslib_key], 1)
    statement: dict[str, Any] = json.loads(base64.b64decode(line["payload"]))
    run = statement["predicate"]["runDetails"]
    assert run["builder"]["id"] == f"arn:aws:codebuild:{aws_env.region}:111111111111:project/app-build"
    assert run["metadata"]["invocationId"] == build_arn

    # stg: find it in S3 by digest, verify with the pinned PEM only
    sha = statement["subject"][0]["digest"]["sha256"]
    s3_artifact = f"s3://store/app/sha256/{sha}/artifact/dist/app.zip"
    ok = attest("verify", s3_artifact, "--store", "s3://store/app", "--key", pinned, "--builder-id",
                run["builder"]["id"], cwd=repo)
    assert ok.code == 0, ok
    # attestations carry Object Lock retention
    listed = s3.list_objects_v2(Bucket="store", Prefix=f"app/sha256/{sha}/provenance-")["Contents"]
    head = s3.head_object(Bucket="store", Key=listed[0]["Key"])
    assert head["ObjectLockMode"] == "COMPLIANCE"

    # someone overwrites the artefact in S3: refused
    s3.put_object(Bucket="store", Key=f"app/sha256/{sha}/artifact/dist/app.zip", Body=b"evil")
    refused = attest("verify", s3_artifact, "--store", "s3://store/app", "--key", pinned, cwd=repo)
    assert refused.code == 1, refused
    assert "holds no attestation for sha256:" in refused.err


def test_retain_days_needs_s3(repo: Path, attest: AttestRunner, keys: dict[str, Any]) -> None:
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "build.py", "--publish", "store",
                    "--retain-days", "3", cwd=repo)
    assert result.code == 3 and "--retain-days needs an s3:// store" in result.err
    # without a store at all, or for longer than S3 keeps a date (it crashed at 3,000,000 days): usage errors
    for days, publish, words in (("3", (), "--retain-days locks what --publish s3://... writes"),
                                 ("3000000", ("--publish", "s3://store/app"), "is not in the range 1<=x<=36500")):
        result = attest("build", "--signer", keys["dev"].private, "--artifact", "build.py", *publish,
                        "--retain-days", days, cwd=repo)
        assert result.code == 2 and words in result.err and "Traceback" not in result.err, result


def test_verify_with_a_live_kms_key_warns(aws_env: MotoEnv, repo: Path, attest: AttestRunner) -> None:
    kms = aws_env.client("kms")
    key = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P384")["KeyMetadata"]
    assert attest("build", "--signer", f"awskms:{key['Arn']}", "--artifact", "build.py", cwd=repo).code == 0
    result = attest("verify", "build.py", "--attestation", "provenance.intoto.jsonl", "--key", f"awskms:{key['Arn']}",
                    cwd=repo)
    assert result.code == 0, result
    assert "warning: fetching the public key" in result.err and "attest key export" in result.err
    other = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]
    refused = attest("verify", "build.py", "--attestation", "provenance.intoto.jsonl", "--key",
                     f"awskms:{other['Arn']}", cwd=repo)
    assert refused.code == 1 and "no signature verifies" in refused.err
