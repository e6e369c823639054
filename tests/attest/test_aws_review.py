"""What a review of the KMS signer and the S3 store found: two KMS keys pinned by one file, policies that could not
pin keys of the China or GovCloud partitions, an SM2 key or a non-UTF-8 store URI that stopped attest with an
internal error, and a missing KMS key found only after the build command had run."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from attest.errors import SignerError, StoreError
from attest.signers import awskms
from attest.stores.s3 import parse_s3_uri
from tests.conftest import AttestRunner, KeyPair, make_keypair, missing_tool, need_tool
from tests.conftest_aws import MotoEnv
from verify.errors import PolicyError
from verify.policy_file import kms_pem_name, load_policy

DEV = "arn:aws:kms:eu-west-1:111111111111:alias/dev/signer"
STG = "arn:aws:kms:eu-west-1:222222222222:alias/stg/signer"


def _policy(tmp_path: Path, dev: str, stg: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(f"version: 1\nidentities:\n  dev-build: {{kms: [{dev}]}}\n  stg-verifier: {{kms: [{stg}]}}\n"
                    "provenance:\n  signed-by: [dev-build]\nstages:\n  stg: {verifier: stg-verifier}\n")
    return path


def test_two_kms_keys_whose_default_pins_are_one_file_are_refused(tmp_path: Path) -> None:
    # both default to signer.pub.pem: the dev key's export made stg-verifier trust the dev key
    assert kms_pem_name(DEV) == kms_pem_name(STG) == "signer.pub.pem"
    shutil.copy(make_keypair(tmp_path, "dev").public, tmp_path / "signer.pub.pem")
    with pytest.raises(PolicyError, match=r"identities\.stg-verifier\.kms: pins KMS key .*alias/stg/signer with the "
                                          r"public key that pins .*alias/dev/signer of identity 'dev-build'"):
        load_policy(_policy(tmp_path, DEV, STG))


def test_kms_keys_pinned_by_files_of_their_own_load(tmp_path: Path) -> None:
    for name in ("dev", "stg"):
        make_keypair(tmp_path, name)  # (writes NAME.pub.pem)
    policy = load_policy(_policy(tmp_path, f"{{arn: {DEV}, pem: dev.pub.pem}}", f"{{arn: {STG}, pem: stg.pub.pem}}"))
    assert policy.identities["dev-build"].keys[0].fingerprint != policy.identities["stg-verifier"].keys[0].fingerprint


@pytest.mark.parametrize("partition", ["aws", "aws-cn", "aws-us-gov"])
def test_a_kms_key_of_any_partition_is_pinned_by_its_arn(tmp_path: Path, partition: str) -> None:
    arn = f"arn:{partition}:kms:cn-north-1:111111111111:key/0f4e3a5e-6c1d-4c57-9d6b-0d3c3e3b0a11"
    shutil.copy(make_keypair(tmp_path, "dev").public, tmp_path / kms_pem_name(arn))
    (tmp_path / "policy.yaml").write_text(f"version: 1\nidentities:\n  dev: {{kms: [{arn}]}}\n"
                                          "provenance:\n  signed-by: [dev]\n")
    assert load_policy(tmp_path / "policy.yaml").identities["dev"].keys[0].name == arn


def test_a_kms_key_attest_cannot_sign_with_is_refused_by_its_spec(tmp_path: Path) -> None:
    openssl = need_tool("openssl", install="apt-get install openssl")
    made = subprocess.run([openssl, "genpkey", "-algorithm", "SM2", "-out", str(tmp_path / "sm2.pem")],
                          capture_output=True, check=False)
    if made.returncode != 0:  # (under CI=true a failure: .ci/run installs Debian's openssl, which has SM2)
        missing_tool(f"this openssl makes no SM2 key ({made.stderr.decode(errors='replace').strip()[:200]}); "
                     "apt-get install openssl")
    der = subprocess.run([openssl, "pkey", "-in", str(tmp_path / "sm2.pem"), "-pubout", "-outform", "DER"],
                         capture_output=True, check=True).stdout
    signer = awskms.from_uri("awskms:arn:aws:kms:eu-west-1:111111111111:key/0f4e3a5e-6c1d-4c57-9d6b-0d3c3e3b0a11")
    answer: dict[str, Any] = {"KeyUsage": "SIGN_VERIFY", "KeySpec": "SM2", "PublicKey": der,
                              "SigningAlgorithms": ["SM2DSA"]}  # what KMS answers GetPublicKey for an SM2 key
    with pytest.raises(SignerError, match="has key spec SM2; attest signs with ECC_NIST_P256"):
        signer._check_key(answer)


def test_a_missing_kms_key_is_found_before_the_build_command_runs(aws_env: MotoEnv, repo: Path,
                                                                  attest: AttestRunner) -> None:
    missing = f"arn:aws:kms:{aws_env.region}:{aws_env.account_id}:key/0f4e3a5e-6c1d-4c57-9d6b-0d3c3e3b0a11"
    result = attest("build", "--signer", f"awskms:{missing}", "--artifact", "dist/", "--", "python", "-c",
                    "import pathlib; pathlib.Path('ran').touch(); pathlib.Path('dist').mkdir(); "
                    "pathlib.Path('dist/a').touch()", cwd=repo)
    assert result.code == 3 and "not found" in result.err, result
    assert not (repo / "ran").exists()


@pytest.mark.parametrize("uri", ["s3://store/app\udcff", "s3://store/\udcc3\udca9/x"])
def test_a_store_uri_that_is_not_utf8_is_refused_when_read(uri: str) -> None:
    with pytest.raises(StoreError, match="names a prefix that is not UTF-8 text"):
        parse_s3_uri(uri)


def test_retention_on_a_bucket_without_object_lock_is_refused_before_any_work(aws_env: MotoEnv, repo: Path,
                                                                             keys: dict[str, KeyPair],
                                                                             attest: AttestRunner) -> None:
    s3 = aws_env.client("s3")
    s3.create_bucket(Bucket="no-lock", CreateBucketConfiguration={"LocationConstraint": aws_env.region})
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "dist/", "--publish", "s3://no-lock/app",
                    "--retain-days", "3", "--", "python", "-c",
                    "import pathlib; pathlib.Path('ran').touch(); pathlib.Path('dist').mkdir(); "
                    "pathlib.Path('dist/a').touch()", cwd=repo)
    assert result.code == 3 and "does not have Object Lock enabled" in result.err, result
    assert not (repo / "ran").exists()
    assert s3.list_objects_v2(Bucket="no-lock").get("KeyCount") == 0  # no artefact without its attestation


def test_a_stored_artefact_whose_key_holds_a_newline_is_still_listed_for_the_audit() -> None:
    from attest.stores.s3 import _ARTIFACT_RE

    key = "sha256/" + "a" * 64 + "/artifact/dist/a\nb"
    match = _ARTIFACT_RE.fullmatch(key)
    assert match is not None and match.group(1) == "a" * 64
