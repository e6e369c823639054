"""The local AWS (tests/aws_server.py) behaves like AWS where attest depends on it.

Two kinds of test here:

* through the corrected server: KMS signatures verify with ``cryptography`` as
  AWS KMS signatures do (DIGEST mode, PSS salt = digest length), oversized RAW
  messages are refused, GetPublicKey answers the ARN, IAM denials look like
  AWS's, and S3 conditional writes refuse to overwrite;
* through an unchanged moto: the faults the server corrects are still there.
  When one of those fails after a moto upgrade, moto fixed the fault and the
  matching correction in tests/aws_server.py can be deleted.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from tests.conftest_aws import MotoEnv

MESSAGE = b"DSSEv1 28 application/vnd.in-toto+json 2 {}"

# (key spec, signing algorithm, hash)
SCHEMES = [
    ("ECC_NIST_P256", "ECDSA_SHA_256", hashes.SHA256),
    ("ECC_NIST_P384", "ECDSA_SHA_384", hashes.SHA384),
    ("RSA_2048", "RSASSA_PSS_SHA_256", hashes.SHA256),
    ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_256", hashes.SHA256),
]


def _verify_like_aws(public_key: Any, signature: bytes, message: bytes, algorithm: str,
                     hash_cls: type[hashes.HashAlgorithm]) -> None:
    """Verify ``signature`` over ``message`` exactly as AWS KMS signatures are specified (raises if not)."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, message, ec.ECDSA(hash_cls()))
    elif algorithm.startswith("RSASSA_PSS_"):
        assert isinstance(public_key, rsa.RSAPublicKey)
        salt = hash_cls().digest_size  # AWS: salt length = digest length
        public_key.verify(signature, message, padding.PSS(padding.MGF1(hash_cls()), salt), hash_cls())
    else:
        assert isinstance(public_key, rsa.RSAPublicKey)
        public_key.verify(signature, message, padding.PKCS1v15(), hash_cls())


def _digest(message: bytes, hash_cls: type[hashes.HashAlgorithm]) -> bytes:
    return hashlib.new(hash_cls().name, message).digest()


def _new_key(kms: Any, spec: str) -> tuple[str, Any]:
    arn = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec=spec)["KeyMetadata"]["Arn"]
    public_key = serialization.load_der_public_key(kms.get_public_key(KeyId=arn)["PublicKey"])
    return arn, public_key


@pytest.fixture
def kms(aws_env: MotoEnv) -> Any:
    return aws_env.client("kms")


@pytest.mark.parametrize(("spec", "algorithm", "hash_cls"), SCHEMES, ids=[f"{s}-{a}" for s, a, _ in SCHEMES])
def test_digest_signature_verifies_with_the_public_key(kms: Any, spec: str, algorithm: str,
                                                       hash_cls: type[hashes.HashAlgorithm]) -> None:
    arn, public_key = _new_key(kms, spec)
    answer = kms.sign(KeyId=arn, Message=_digest(MESSAGE, hash_cls), MessageType="DIGEST",
                      SigningAlgorithm=algorithm)
    assert answer["KeyId"] == arn and answer["SigningAlgorithm"] == algorithm
    _verify_like_aws(public_key, answer["Signature"], MESSAGE, algorithm, hash_cls)
    with pytest.raises(InvalidSignature):
        _verify_like_aws(public_key, answer["Signature"], MESSAGE + b"x", algorithm, hash_cls)


@pytest.mark.parametrize(("spec", "algorithm", "hash_cls"), SCHEMES, ids=[f"{s}-{a}" for s, a, _ in SCHEMES])
def test_raw_signature_verifies_with_the_public_key(kms: Any, spec: str, algorithm: str,
                                                    hash_cls: type[hashes.HashAlgorithm]) -> None:
    arn, public_key = _new_key(kms, spec)
    answer = kms.sign(KeyId=arn, Message=MESSAGE, MessageType="RAW", SigningAlgorithm=algorithm)
    signature = answer["Signature"]
    _verify_like_aws(public_key, signature, MESSAGE, algorithm, hash_cls)


@pytest.mark.parametrize(("spec", "algorithm", "hash_cls"), SCHEMES, ids=[f"{s}-{a}" for s, a, _ in SCHEMES])
def test_kms_verify_agrees_in_digest_mode(kms: Any, spec: str, algorithm: str,
                                          hash_cls: type[hashes.HashAlgorithm]) -> None:
    arn, _ = _new_key(kms, spec)
    digest = _digest(MESSAGE, hash_cls)
    answer = kms.sign(KeyId=arn, Message=digest, MessageType="DIGEST", SigningAlgorithm=algorithm)
    signature = answer["Signature"]
    ok = kms.verify(KeyId=arn, Message=digest, MessageType="DIGEST", Signature=signature,
                    SigningAlgorithm=algorithm)
    assert ok["SignatureValid"] is True
    other = _digest(MESSAGE + b"x", hash_cls)
    bad = kms.verify(KeyId=arn, Message=other, MessageType="DIGEST", Signature=signature,
                     SigningAlgorithm=algorithm)
    assert bad["SignatureValid"] is False


def test_raw_message_over_4096_bytes_is_refused(kms: Any) -> None:
    arn, _ = _new_key(kms, "ECC_NIST_P256")
    kms.sign(KeyId=arn, Message=b"x" * 4096, MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256")
    with pytest.raises(ClientError) as caught:
        kms.sign(KeyId=arn, Message=b"x" * 4097, MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256")
    assert caught.value.response["Error"]["Code"] == "ValidationException"


def test_digest_of_the_wrong_length_is_refused(kms: Any) -> None:
    arn, _ = _new_key(kms, "ECC_NIST_P384")
    with pytest.raises(ClientError) as caught:
        kms.sign(KeyId=arn, Message=b"\0" * 32, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_384")
    assert caught.value.response["Error"]["Code"] == "ValidationException"


def test_get_public_key_answers_the_key_arn_and_spec(kms: Any) -> None:
    metadata = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]
    kms.create_alias(AliasName="alias/probe", TargetKeyId=metadata["KeyId"])
    for name in (metadata["KeyId"], metadata["Arn"], "alias/probe"):
        answer = kms.get_public_key(KeyId=name)
        assert answer["KeyId"] == metadata["Arn"]
        assert answer["KeySpec"] == "ECC_NIST_P256"
        assert answer["KeyUsage"] == "SIGN_VERIFY"


def test_iam_denial_looks_like_aws(aws_env: MotoEnv, kms: Any) -> None:
    arn, _ = _new_key(kms, "ECC_NIST_P256")
    limited = aws_env.client("kms", **aws_env.credentials_allowing("kms:GetPublicKey"))
    with aws_env.iam_enforced():
        limited.get_public_key(KeyId=arn)
        with pytest.raises(ClientError) as caught:
            limited.sign(KeyId=arn, Message=b"\0" * 32, MessageType="DIGEST",
                         SigningAlgorithm="ECDSA_SHA_256")
    error = caught.value.response["Error"]
    assert error["Code"] == "AccessDeniedException"
    assert "kms:Sign" in error["Message"]


# -- S3 conditional writes (moto 5.2.5 honours them; keep checking) ----------


@pytest.fixture
def s3(aws_env: MotoEnv) -> Any:
    client = aws_env.client("s3")
    client.create_bucket(Bucket="probe-bucket",
                         CreateBucketConfiguration={"LocationConstraint": aws_env.region})
    return client


def _status(error: ClientError) -> tuple[str, int]:
    return error.response["Error"]["Code"], error.response["ResponseMetadata"]["HTTPStatusCode"]


def test_put_if_none_match_refuses_an_existing_key(s3: Any) -> None:
    s3.put_object(Bucket="probe-bucket", Key="k", Body=b"one", IfNoneMatch="*")
    with pytest.raises(ClientError) as caught:
        s3.put_object(Bucket="probe-bucket", Key="k", Body=b"two", IfNoneMatch="*")
    assert _status(caught.value) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket="probe-bucket", Key="k")["Body"].read() == b"one"


def test_complete_multipart_if_none_match_refuses_an_existing_key(s3: Any) -> None:
    s3.put_object(Bucket="probe-bucket", Key="k", Body=b"one")
    upload = s3.create_multipart_upload(Bucket="probe-bucket", Key="k")["UploadId"]
    part = s3.upload_part(Bucket="probe-bucket", Key="k", UploadId=upload, PartNumber=1, Body=b"two")
    with pytest.raises(ClientError) as caught:
        s3.complete_multipart_upload(Bucket="probe-bucket", Key="k", UploadId=upload, IfNoneMatch="*",
                                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert _status(caught.value) == ("PreconditionFailed", 412)
    s3.abort_multipart_upload(Bucket="probe-bucket", Key="k", UploadId=upload)
    assert s3.get_object(Bucket="probe-bucket", Key="k")["Body"].read() == b"one"


# -- the corrections are still needed ---------------------------------------


@pytest.fixture
def raw_kms(aws_env: MotoEnv, moto_raw_endpoint: str) -> Any:
    return aws_env.client("kms", endpoint_url=moto_raw_endpoint)


def test_unchanged_moto_still_hashes_digests_again(raw_kms: Any) -> None:
    arn, public_key = _new_key(raw_kms, "ECC_NIST_P256")
    signature = raw_kms.sign(KeyId=arn, Message=_digest(MESSAGE, hashes.SHA256), MessageType="DIGEST",
                             SigningAlgorithm="ECDSA_SHA_256")["Signature"]
    with pytest.raises(InvalidSignature):  # if this fails, moto fixed DIGEST: drop correction 1
        _verify_like_aws(public_key, signature, MESSAGE, "ECDSA_SHA_256", hashes.SHA256)


def test_unchanged_moto_still_uses_the_maximum_pss_salt(raw_kms: Any) -> None:
    arn, public_key = _new_key(raw_kms, "RSA_2048")
    signature = raw_kms.sign(KeyId=arn, Message=MESSAGE, MessageType="RAW",
                             SigningAlgorithm="RSASSA_PSS_SHA_256")["Signature"]
    with pytest.raises(InvalidSignature):  # if this fails, moto fixed the PSS salt: drop correction 2
        _verify_like_aws(public_key, signature, MESSAGE, "RSASSA_PSS_SHA_256", hashes.SHA256)
    max_salt = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.MAX_LENGTH)
    public_key.verify(signature, MESSAGE, max_salt, hashes.SHA256())


def test_unchanged_moto_still_accepts_oversized_raw_messages(raw_kms: Any) -> None:
    arn, _ = _new_key(raw_kms, "ECC_NIST_P256")
    # if this raises, moto now enforces the 4096-byte limit: drop correction 3
    raw_kms.sign(KeyId=arn, Message=b"x" * 4097, MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256")


def test_unchanged_moto_still_answers_a_bare_key_id(raw_kms: Any) -> None:
    metadata = raw_kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]
    answer = raw_kms.get_public_key(KeyId=metadata["Arn"])
    # if this fails, moto answers the ARN (and KeySpec) now: drop correction 4
    assert answer["KeyId"] == metadata["KeyId"]
    assert "KeySpec" not in answer
