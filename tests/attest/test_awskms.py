"""attest.signers.awskms against a local moto KMS over real HTTP (see tests/conftest_aws.py)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from attest import signers
from attest.errors import RemoteError, SignerError
from attest.signers import awskms, sign_envelope
from tests.conftest_aws import MotoEnv, answering, free_port
from verify.formats.envelope import INTOTO_PAYLOAD_TYPE, Envelope
from verify.trust import load_public_key

ROOT = Path(__file__).resolve().parents[2]
PAYLOAD = b'{"_type":"https://in-toto.io/Statement/v1","subject":[]}'

# (key spec, rsa_scheme option, hash the signature is over)
SPECS = [
    ("ECC_NIST_P256", "pss", hashes.SHA256),
    ("ECC_NIST_P384", "pss", hashes.SHA384),
    ("RSA_2048", "pss", hashes.SHA256),
    ("RSA_2048", "pkcs1v15", hashes.SHA256),
    ("RSA_3072", "pss", hashes.SHA256),
]


def verify_envelope(envelope: Envelope, public_pem: bytes, hash_cls: type[hashes.HashAlgorithm],
                    rsa_scheme: str = "pss") -> None:
    """Check the envelope's one signature over its PAE with ``cryptography`` (raises InvalidSignature)."""
    key = serialization.load_pem_public_key(public_pem)
    signature = envelope.signatures[0].sig
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, envelope.pae(), ec.ECDSA(hash_cls()))
    elif rsa_scheme == "pss":
        assert isinstance(key, rsa.RSAPublicKey)
        pss = padding.PSS(mgf=padding.MGF1(hash_cls()), salt_length=hash_cls().digest_size)
        key.verify(signature, envelope.pae(), pss, hash_cls())
    else:
        assert isinstance(key, rsa.RSAPublicKey)
        key.verify(signature, envelope.pae(), padding.PKCS1v15(), hash_cls())


def pem_from_kms(kms: Any, key: str) -> bytes:
    der = kms.get_public_key(KeyId=key)["PublicKey"]
    public_key = serialization.load_der_public_key(der)
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture
def kms(aws_env: MotoEnv) -> Any:
    return aws_env.client("kms")


def new_key(kms: Any, spec: str = "ECC_NIST_P256", usage: str = "SIGN_VERIFY") -> dict[str, Any]:
    metadata: dict[str, Any] = kms.create_key(KeyUsage=usage, KeySpec=spec)["KeyMetadata"]
    return metadata


@pytest.mark.parametrize(("spec", "scheme", "hash_cls"), SPECS, ids=[f"{s}-{m}" for s, m, _ in SPECS])
def test_signed_envelope_verifies_with_the_kms_public_key(kms: Any, spec: str, scheme: str,
                                                          hash_cls: type[hashes.HashAlgorithm]) -> None:
    key = new_key(kms, spec)
    signer = signers.from_uri(f"awskms:{key['Arn']}", rsa_scheme=scheme)
    envelope = sign_envelope(signer, payload_type=INTOTO_PAYLOAD_TYPE, payload=PAYLOAD)

    pinned = pem_from_kms(kms, key["Arn"])
    assert signer.public_key_pem() == pinned
    assert envelope.signatures[0].keyid == key["Arn"]
    verify_envelope(envelope, pinned, hash_cls, scheme)


@pytest.mark.parametrize(("spec", "scheme", "hash_cls"), SPECS[:4], ids=[f"{s}-{m}" for s, m, _ in SPECS[:4]])
def test_attest_own_verifier_accepts_kms_signatures(kms: Any, spec: str, scheme: str,
                                                    hash_cls: type[hashes.HashAlgorithm]) -> None:
    """What the pipeline gate does: a pinned PEM exported from KMS verifies the signer's envelopes."""
    key = new_key(kms, spec)
    pem = awskms.export_public_key_pem(f"awskms:{key['Arn']}")
    envelope = sign_envelope(awskms.from_uri(f"awskms:{key['Arn']}", rsa_scheme=scheme),
                             payload_type=INTOTO_PAYLOAD_TYPE, payload=PAYLOAD)
    pinned = load_public_key(pem, name="dev-build.pub.pem")
    assert pinned.verify(envelope.signatures[0].sig, envelope.pae())
    assert not pinned.verify(envelope.signatures[0].sig, envelope.pae() + b" ")


def test_large_payload_signs_in_digest_mode(kms: Any) -> None:
    """The PAE is hashed locally, so payloads far over KMS's 4096-byte RAW limit sign fine."""
    key = new_key(kms)
    signer = awskms.from_uri(f"awskms:{key['Arn']}")
    envelope = sign_envelope(signer, payload_type=INTOTO_PAYLOAD_TYPE, payload=b"x" * 1_000_000)
    verify_envelope(envelope, pem_from_kms(kms, key["Arn"]), hashes.SHA256)


def test_every_way_of_naming_a_key_signs_with_it(aws_env: MotoEnv, kms: Any) -> None:
    key = new_key(kms)
    kms.create_alias(AliasName="alias/attest-dev", TargetKeyId=key["KeyId"])
    alias_arn = f"arn:aws:kms:{aws_env.region}:{aws_env.account_id}:alias/attest-dev"
    pinned = pem_from_kms(kms, key["Arn"])
    for uri in (f"awskms:{key['KeyId']}", f"awskms:{key['Arn']}", "awskms:alias/attest-dev",
                f"awskms:{alias_arn}", f"awskms:///{key['Arn']}", "awskms:///alias/attest-dev"):
        signer = awskms.from_uri(uri)
        assert signer.keyid == key["Arn"], uri
        envelope = sign_envelope(signer, payload_type=INTOTO_PAYLOAD_TYPE, payload=PAYLOAD)
        verify_envelope(envelope, pinned, hashes.SHA256)


def test_region_comes_from_the_arn(aws_env: MotoEnv) -> None:
    us = aws_env.client("kms", region_name="us-east-1")
    key = new_key(us)
    assert ":us-east-1:" in key["Arn"] and aws_env.region != "us-east-1"
    signer = awskms.from_uri(f"awskms:{key['Arn']}")
    envelope = sign_envelope(signer, payload_type=INTOTO_PAYLOAD_TYPE, payload=PAYLOAD)
    verify_envelope(envelope, pem_from_kms(us, key["Arn"]), hashes.SHA256)
    # The bare key id is looked up in the default region, where it does not exist.
    with pytest.raises(SignerError, match=rf"KMS key {key['KeyId']} not found in {aws_env.region}: check"):
        awskms.from_uri(f"awskms:{key['KeyId']}").public_key_pem()


def test_the_region_option_is_used_for_key_ids(aws_env: MotoEnv) -> None:
    key = new_key(aws_env.client("kms", region_name="us-east-1"))
    assert awskms.from_uri(f"awskms:{key['KeyId']}", region="us-east-1").keyid == key["Arn"]


def test_aws_endpoint_url_is_honoured(aws_env: MotoEnv) -> None:
    signer = awskms.from_uri(f"awskms:{uuid.uuid4()}")
    assert signer.client.meta.endpoint_url == aws_env.endpoint


def test_public_key_is_fetched_once(kms: Any) -> None:
    key = new_key(kms)
    signer = awskms.from_uri(f"awskms:{key['Arn']}")
    calls: list[str] = []
    signer.client.meta.events.register("before-call.kms.*", lambda model, **_: calls.append(model.name))
    for _ in range(3):
        sign_envelope(signer, payload_type=INTOTO_PAYLOAD_TYPE, payload=PAYLOAD)
    signer.public_key_pem()
    assert calls == ["GetPublicKey", "Sign", "Sign", "Sign"]


def test_export_public_key_pem(kms: Any) -> None:
    key = new_key(kms, "ECC_NIST_P384")
    pem = awskms.export_public_key_pem(f"awskms:{key['Arn']}")
    assert pem == pem_from_kms(kms, key["Arn"])
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")


@pytest.mark.parametrize("name", [str(uuid.UUID(int=7)), "alias/no-such-alias",
                                  "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000007"])
def test_unknown_key_is_a_signer_error(aws_env: MotoEnv, name: str) -> None:
    with pytest.raises(SignerError,
                       match=rf"^KMS key {name} not found in eu-west-1: check the key ARN or alias$"):
        awskms.from_uri(f"awskms:{name}").sign(b"data")


@pytest.mark.parametrize(("spec", "usage"), [
    ("ECC_SECG_P256K1", "SIGN_VERIFY"), ("ECC_NIST_P521", "SIGN_VERIFY"),
    ("RSA_2048", "ENCRYPT_DECRYPT"), ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
])
def test_unsupported_keys_are_refused(kms: Any, spec: str, usage: str) -> None:
    key = new_key(kms, spec, usage)
    with pytest.raises(SignerError,
                       match=rf"KMS key {key['Arn']} (has key spec {spec}|has key usage {usage})"):
        awskms.from_uri(f"awskms:{key['Arn']}").sign(b"data")


@pytest.mark.parametrize("uri", [
    "awskms:", "awskms:not-a-key", "awskms:alias/", "awskms:arn:aws:s3:::bucket",
    "awskms:arn:aws:kms:eu-west-1:123456789012:key/not-a-uuid", "awskms://", "awskms://host-only",
    "awskms://host/not-a-key", "key:/tmp/x.pem",
])
def test_malformed_uris_are_refused(uri: str) -> None:
    with pytest.raises(SignerError):
        awskms.from_uri(uri)


def test_cosign_endpoint_form_is_parsed() -> None:
    ref = awskms.parse_uri("awskms://localhost:4566/alias/app")
    assert (ref.key, ref.endpoint_url, ref.region) == ("alias/app", "https://localhost:4566", None)
    arn = "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    assert awskms.parse_uri(f"awskms:///{arn}") == awskms.KmsKeyRef(key=arn, region="us-west-2")
    mrk = "mrk-1234abcd12ab34cd56ef1234567890ab"
    assert awskms.parse_uri(f"awskms:{mrk}").key == mrk


def test_signer_options_the_cli_passes_are_accepted(kms: Any) -> None:
    key = new_key(kms)
    signer = signers.from_uri(f"awskms:{key['Arn']}", insecure_permissions=False)
    assert signer.keyid == key["Arn"]


def test_bad_options_are_refused() -> None:
    with pytest.raises(SignerError, match="rsa_scheme"):
        awskms.from_uri("awskms:alias/x", rsa_scheme="pkcs1")
    with pytest.raises(SignerError, match="takes no option 'password'"):
        awskms.from_uri("awskms:alias/x", password="x")


def test_access_denied_names_the_action_and_the_fix(aws_env: MotoEnv, kms: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    key = new_key(kms)
    limited = aws_env.credentials_allowing("kms:GetPublicKey")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", limited["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", limited["aws_secret_access_key"])
    pinned = pem_from_kms(kms, key["Arn"])
    with aws_env.iam_enforced():
        signer = awskms.from_uri(f"awskms:{key['Arn']}")
        assert signer.public_key_pem() == pinned
        with pytest.raises(RemoteError, match=rf"^AccessDenied on kms:Sign for {key['Arn']}: "
                                              r"the role needs kms:Sign on it") as caught:
            signer.sign(b"data")
    assert caught.value.__cause__ is not None


def test_access_denied_on_export(aws_env: MotoEnv, kms: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    key = new_key(kms)
    limited = aws_env.credentials_allowing("kms:Sign")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", limited["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", limited["aws_secret_access_key"])
    with aws_env.iam_enforced(), pytest.raises(RemoteError, match=r"^AccessDenied on kms:GetPublicKey for "):
        awskms.export_public_key_pem(f"awskms:{key['Arn']}")


def test_unreachable_endpoint_is_a_remote_error(aws_env: MotoEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(RemoteError, match=rf"^cannot reach KMS at {endpoint}: "):
        awskms.from_uri("awskms:alias/app").sign(b"data")


def test_missing_credentials_say_how_to_provide_them(aws_env: MotoEnv,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(RemoteError, match=r"^no usable AWS credentials for kms:GetPublicKey on alias/app: "
                                          r"provide AWS credentials \(an IAM role"):
        awskms.from_uri("awskms:alias/app").public_key_pem()


def test_unknown_profile_is_a_signer_error(aws_env: MotoEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    with pytest.raises(SignerError, match=r"^cannot use KMS key alias/app: .*no-such-profile.*; fix AWS_"):
        awskms.from_uri("awskms:alias/app").public_key_pem()


def test_missing_region_is_a_signer_error(aws_env: MotoEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION")
    with pytest.raises(SignerError, match=r"^no AWS region for KMS key alias/app: name the key by its ARN"):
        awskms.from_uri("awskms:alias/app").public_key_pem()


def test_a_signature_that_does_not_verify_is_never_returned(aws_env: MotoEnv, moto_raw_endpoint: str) -> None:
    """Unchanged moto signs DIGEST messages wrongly: the signer notices instead of publishing it."""
    raw = aws_env.client("kms", endpoint_url=moto_raw_endpoint)
    key = new_key(raw)
    signer = awskms.from_uri(f"awskms:{key['Arn']}", endpoint_url=moto_raw_endpoint)
    with pytest.raises(RemoteError, match="does not verify with the key's public key"):
        signer.sign(b"data")


def test_importing_signers_and_stores_does_not_import_boto3() -> None:
    code = ("import sys, attest.signers, attest.signers.awskms, attest.stores, attest.stores.s3; "
            "print(sorted(m for m in ('boto3', 'botocore') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# -- through the real CLI (fixtures ``repo`` and ``attest`` from tests/conftest.py) -------------


def test_cli_dev_build_signs_with_kms_publishes_to_s3_and_verifies(aws_env: MotoEnv, kms: Any, repo: Path,
                                                                   attest: Any, tmp_path: Path) -> None:
    """docs/aws/buildspec.yml and the stg gate, end to end against the local AWS."""
    aws_env.client("s3").create_bucket(Bucket="attest-store",
                                       CreateBucketConfiguration={"LocationConstraint": aws_env.region})
    key = new_key(kms)
    kms.create_alias(AliasName="alias/attest-dev-build", TargetKeyId=key["KeyId"])
    pinned = tmp_path / "dev-build.pub.pem"
    exported = attest("key", "export", f"awskms:{key['Arn']}", "--out", pinned, cwd=repo)
    assert exported.code == 0, exported
    assert pinned.read_bytes() == pem_from_kms(kms, key["Arn"])

    built = attest("build", "--signer", "awskms:alias/attest-dev-build", "--artifact", "dist/",
                   "--publish", "s3://attest-store/app", "--", sys.executable, "build.py", cwd=repo)
    assert built.code == 0, built
    verified = attest("verify", repo / "dist" / "app.tar.gz", "--store", "s3://attest-store/app",
                      "--key", pinned, "--source-uri", "github.com/acme/app", cwd=repo)
    assert verified.code == 0, verified
    refused = attest("verify", repo / "dist" / "app.tar.gz", "--store", "s3://attest-store/app",
                     "--key", pinned, "--source-uri", "github.com/acme/other", cwd=repo)
    assert refused.code == 1, refused


def test_cli_unreachable_kms_exits_4_with_one_sentence(aws_env: MotoEnv, repo: Path, attest: Any,
                                                       tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    result = attest("key", "export", "awskms:alias/attest-dev-build", "--out", tmp_path / "k.pem", cwd=repo,
                    env={"AWS_ENDPOINT_URL": endpoint, "AWS_MAX_ATTEMPTS": "1"})
    assert result.code == 4, result
    assert f"cannot reach KMS at {endpoint}" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize("public_key", ['"not base64!"', "12"], ids=["not-base64", "a-number"])
def test_an_answer_that_is_not_kmss_is_a_remote_failure(aws_env: MotoEnv, monkeypatch: pytest.MonkeyPatch,
                                                        public_key: str) -> None:
    """A GetPublicKey answer botocore cannot read (a PublicKey that is no base64) was an internal error (exit 70):
    it is a RemoteError (exit 4: retry, or fix the endpoint)."""
    body = ('{"KeyId": "arn:aws:kms:eu-west-1:111111111111:key/k", "KeySpec": "ECC_NIST_P256", '
            f'"KeyUsage": "SIGN_VERIFY", "SigningAlgorithms": ["ECDSA_SHA_256"], "PublicKey": {public_key}}}').encode()
    with answering(body, "application/x-amz-json-1.1") as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        with pytest.raises(RemoteError, match="is not one KMS gives"):
            awskms.export_public_key_pem("awskms:alias/attest")
