"""The attest demo on a local AWS endpoint: KMS keys sign, S3 is the store.

dev builds in a CodeBuild-like environment and signs with its KMS key; the
verifiers pin the exported public keys (no AWS access needed to verify); stg
signs its VSA with its own KMS key; prd requires it; a replaced S3 artefact is
refused. The endpoint is a local moto server (tests/aws_server.py, with the
corrections it documents), so no AWS account is needed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Final

HERE = Path(__file__).resolve().parent.parent
OUT = HERE / "demo-out-aws"
REGION: Final = "eu-west-1"


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def run(*args: str, cwd: Path, env: dict[str, str], expect: int = 0) -> subprocess.CompletedProcess[str]:
    print("$ " + " ".join(args), flush=True)
    done = subprocess.run(list(args), cwd=cwd, env=env, text=True, check=False)
    if done.returncode != expect:
        sys.exit(f"demo-aws FAILED: expected exit {expect}, got {done.returncode}")
    if expect:
        print(f"-> exit {done.returncode}, as it must be")
    return done


def start_endpoint() -> tuple[subprocess.Popen[bytes], str]:
    server = subprocess.Popen([sys.executable, str(HERE / "tests" / "aws_server.py"), "--host", "127.0.0.1",
                               "--port", "0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)
    assert server.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = server.stdout.readline().decode()
        if line.startswith("PORT "):
            return server, f"http://127.0.0.1:{line.split()[1]}"
    server.kill()
    sys.exit("demo-aws FAILED: the local AWS endpoint did not start")


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    server, url = start_endpoint()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CODEBUILD_"))}
    env.update({"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo",
                "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "NO_PROXY": "127.0.0.1,localhost", "GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
                "GIT_COMMITTER_NAME": "Dev", "GIT_COMMITTER_EMAIL": "dev@example.com",
                "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"})
    os.environ.update(env)
    try:
        import boto3

        say(f"0. A local AWS endpoint at {url}: a KMS signing key for dev and one for stg, an S3 store bucket")
        kms = boto3.client("kms", region_name=REGION)
        keys = {}
        for name in ("dev-build", "stg-verifier"):
            key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY", Description=f"attest {name}")
            kms.create_alias(AliasName=f"alias/{name}", TargetKeyId=key["KeyMetadata"]["KeyId"])
            keys[name] = key["KeyMetadata"]["Arn"]
            print(f"   {name}: {keys[name]}")
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="acme-attest-store", ObjectLockEnabledForBucket=True,
                         CreateBucketConfiguration={"LocationConstraint": REGION})
        store = "s3://acme-attest-store/app"
        print(f"   store: {store} (versioning and Object Lock on)")

        say("1. Pin the public keys once (stg/prd then verify offline, with no KMS access)")
        for name, arn in keys.items():
            run(sys.executable, "-m", "attest", "key", "export", f"awskms:{arn}", "--out", f"{name}.pub.pem",
                cwd=OUT, env=env)

        say("2. A small app, committed")
        app = OUT / "app"
        app.mkdir()
        for args in (["init", "-q", "-b", "main"], ["remote", "add", "origin", "https://github.com/acme/app.git"]):
            subprocess.run(["git", *args], cwd=app, env=env, check=True)
        (app / "requirements.txt").write_text("click==8.1.7\n")
        (app / "build.py").write_text(textwrap.dedent("""\
            import os, pathlib
            pathlib.Path("dist").mkdir(exist_ok=True)
            seen = sorted(k for k in os.environ if k.startswith("AWS_") and "KEY" in k or k == "AWS_SESSION_TOKEN")
            print("the build command sees AWS credentials:", seen or "none")
            pathlib.Path("dist/app.zip").write_bytes(b"acme app built at " + os.environ["SOURCE_DATE_EPOCH"].encode())
            """))
        (app / ".gitignore").write_text("dist/\n")
        subprocess.run(["git", "add", "."], cwd=app, env=env, check=True)
        subprocess.run(["git", "commit", "-q", "-m", "first"], cwd=app, env=env, check=True)
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=app, env=env, check=True, text=True,
                                capture_output=True).stdout.strip()

        say("3. dev, in a CodeBuild-like environment: build, sign with KMS, publish to S3")
        build_env = {**env, "CODEBUILD_BUILD_ARN":
                     f"arn:aws:codebuild:{REGION}:111111111111:build/app-build:6e0b0c1d-demo",
                     "CODEBUILD_RESOLVED_SOURCE_VERSION": commit, "CODEBUILD_BUILD_IMAGE": "aws/codebuild/standard:7.0",
                     "CODEBUILD_INITIATOR": "codepipeline/app-dev"}
        run(sys.executable, "-m", "attest", "build", "--signer", "awskms:alias/dev-build", "--artifact", "dist/app.zip",
            "--publish", store, "--", sys.executable, "build.py", cwd=app, env=build_env)

        (OUT / "policy.yaml").write_text(textwrap.dedent(f"""\
            version: 1
            identities:
              dev-build: {{kms: [{{arn: "{keys['dev-build']}", pem: dev-build.pub.pem}}]}}
              stg-verifier: {{keys: [stg-verifier.pub.pem]}}
            provenance:
              signed-by: [dev-build]
              source: {{uri: github.com/acme/app, branches: [main]}}
              builders: ["arn:aws:codebuild:{REGION}:111111111111:project/app-build"]
            stages:
              stg: {{verifier: stg-verifier}}
              prd: {{require-vsa: [{{stage: stg, signed-by: stg-verifier}}]}}
            """))
        say("4. stg: verify the artefact in S3 (streamed through the hashes) and sign a VSA with the stg KMS key")
        sha = subprocess.run(["sha256sum", "dist/app.zip"], cwd=app, text=True, capture_output=True,
                             check=True).stdout.split()[0]
        s3_artifact = f"{store}/sha256/{sha}/artifact/dist/app.zip"
        run(sys.executable, "-m", "attest", "verify", s3_artifact, "--store", store, "--policy", "policy.yaml",
            "--stage", "stg", "--emit-vsa", "stg-vsa.intoto.jsonl", "--signer", "awskms:alias/stg-verifier",
            cwd=OUT, env=env)

        say("5. prd: requires stg's VSA, verifies with pinned keys only")
        run(sys.executable, "-m", "attest", "verify", s3_artifact, "--store", store, "--policy", "policy.yaml",
            "--stage", "prd", cwd=OUT, env=env)

        say("6. Someone with write access to the bucket overwrites the artefact (no conditional PUT): refused")
        s3.put_object(Bucket="acme-attest-store", Key=s3_artifact.removeprefix("s3://acme-attest-store/"),
                      Body=b"not what dev built")
        run(sys.executable, "-m", "attest", "verify", s3_artifact, "--store", store, "--policy", "policy.yaml",
            "--stage", "prd", cwd=OUT, env=env, expect=1)

        say("7. KMS unreachable: exit 4 and one sentence")
        run(sys.executable, "-m", "attest", "key", "export", "awskms:alias/dev-build", "--out", "x.pem", cwd=OUT,
            env={**env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, expect=4)

        say("Summary")
        print(f"  dev: KMS-signed provenance naming the CodeBuild project, published to {store}")
        print("  stg: verified the S3 artefact offline against pinned PEMs, signed a VSA with its KMS key")
        print("  prd: passed with stg's VSA; a replaced artefact was refused; an unreachable KMS is exit 4")
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
