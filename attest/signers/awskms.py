"""AWS KMS signer: ``awskms:<key id | key ARN | alias/NAME | alias ARN>``.

The DSSE PAE is hashed here, with the hash the key's signing algorithm names,
and only the digest goes to KMS (``Sign`` with ``MessageType=DIGEST``), so an
envelope of any size signs in one call and no payload leaves the machine.

=================  ========================================================
key spec           signing algorithm (hash of the PAE)
=================  ========================================================
ECC_NIST_P256      ECDSA_SHA_256
ECC_NIST_P384      ECDSA_SHA_384
RSA_2048/3072/4096 RSASSA_PSS_SHA_256 (default) or RSASSA_PKCS1_V1_5_SHA_256
                   (``rsa_scheme="pkcs1v15"``)
=================  ========================================================

Every signature KMS returns is checked against the key's public key before it
is handed back, so a misbehaving endpoint cannot make attest publish an
envelope nobody can verify.

Also accepted, as cosign writes them: ``awskms:///<key>`` and
``awskms://<host[:port]>/<key>`` (the second sends KMS calls to
``https://<host[:port]>``).

Region: the one in the ARN when the key is named by ARN, otherwise the
``region`` option, otherwise boto3's default chain (``AWS_DEFAULT_REGION``, the
profile) and finally ``AWS_REGION``. Credentials come from boto3's default
chain. ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_KMS`` are honoured by boto3.

boto3 is imported only when a KMS signer is used.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from typing import Any, Final, Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from attest._aws import transport_error
from attest.errors import AttestError, RemoteError, SignerError

__all__ = ["AwsKmsSigner", "KmsKeyRef", "export_public_key_pem", "from_uri", "parse_uri"]

log = logging.getLogger(__name__)

_PARTITION = r"aws(?:-[a-z]+)*"
_KEY_ID = r"(?:mrk-[0-9a-f]{32}|(?:mrk-)?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
_ALIAS = r"alias/[A-Za-z0-9/_-]{1,250}"
_KEY_ID_RE: Final = re.compile(_KEY_ID, re.IGNORECASE)
_ALIAS_RE: Final = re.compile(_ALIAS)
_ARN_RE: Final = re.compile(
    rf"arn:(?P<partition>{_PARTITION}):kms:(?P<region>[a-z0-9-]+):(?P<account>\d{{12}}):"
    rf"(?P<resource>key/{_KEY_ID}|{_ALIAS})",
    re.IGNORECASE,
)
_COSIGN_FORM: Final = re.compile(r"awskms://(?P<endpoint>[^/]*)/(?P<key>.+)")

RsaScheme = Literal["pss", "pkcs1v15"]


@dataclass(frozen=True)
class _Scheme:
    """How one key spec signs: the KMS algorithm and the matching local hash and check."""

    algorithm: str
    hash_name: str

    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return hashes.SHA384() if self.hash_name == "sha384" else hashes.SHA256()


_EC_SCHEMES: Final = {
    "ECC_NIST_P256": _Scheme("ECDSA_SHA_256", "sha256"),
    "ECC_NIST_P384": _Scheme("ECDSA_SHA_384", "sha384"),
}
_EC_CURVES: Final = {"secp256r1": "ECC_NIST_P256", "secp384r1": "ECC_NIST_P384", "secp521r1": "ECC_NIST_P521",
                     "secp256k1": "ECC_SECG_P256K1"}
_RSA_SPECS: Final = ("RSA_2048", "RSA_3072", "RSA_4096")
_RSA_SCHEMES: Final = {
    "pss": _Scheme("RSASSA_PSS_SHA_256", "sha256"),
    "pkcs1v15": _Scheme("RSASSA_PKCS1_V1_5_SHA_256", "sha256"),
}
_SUPPORTED = "ECC_NIST_P256, ECC_NIST_P384 or RSA_2048/3072/4096"


@dataclass(frozen=True)
class KmsKeyRef:
    """A KMS key as named on the command line.

    ``key`` is what KMS is asked for (key id, key ARN, alias name or alias ARN);
    ``region`` is the ARN's region, if any; ``endpoint_url`` comes from the cosign
    ``awskms://host/...`` form.
    """

    key: str
    region: str | None = None
    endpoint_url: str | None = None

    @property
    def is_arn(self) -> bool:
        return self.key.startswith("arn:")


def parse_uri(uri: str) -> KmsKeyRef:
    """Parse an ``awskms:`` signer URI, refusing anything that does not name one KMS key."""
    endpoint: str | None = None
    if uri.startswith("awskms://"):
        match = _COSIGN_FORM.fullmatch(uri)
        if match is None:
            raise SignerError(f"signer {uri!r} is not 'awskms:///KEY' or 'awskms://HOST/KEY'")
        key, host = match["key"], match["endpoint"]
        endpoint = f"https://{host}" if host else None
    elif uri.startswith("awskms:"):
        key = uri.removeprefix("awskms:")
    else:
        raise SignerError(f"signer {uri!r} is not an awskms: URI")

    arn = _ARN_RE.fullmatch(key)
    if arn is not None:
        return KmsKeyRef(key=key, region=arn["region"], endpoint_url=endpoint)
    if key.startswith("arn:"):
        raise SignerError(f"signer {uri!r} names {key!r}, which is not a KMS key ARN or alias ARN")
    if _KEY_ID_RE.fullmatch(key) or _ALIAS_RE.fullmatch(key):
        return KmsKeyRef(key=key, endpoint_url=endpoint)
    raise SignerError(
        f"signer {uri!r} names {key!r}, which is not a KMS key id, key ARN, 'alias/NAME' or alias ARN"
    )


@dataclass(frozen=True)
class _KeyInfo:
    """What GetPublicKey told us about the key, checked."""

    arn: str
    key_spec: str
    scheme: _Scheme
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey
    public_key_pem: bytes


def _endpoint_of(client: Any) -> str:
    return str(getattr(getattr(client, "meta", None), "endpoint_url", "the KMS endpoint"))


def _access_denied(action: str, key: str) -> RemoteError:
    return RemoteError(f"AccessDenied on kms:{action} for {key}: the role needs kms:{action} on it "
                       "(in the key policy or an IAM policy)")


def _translate(error: Exception, *, action: str, key: str, region: str | None, endpoint: str) -> AttestError:
    """Turn a boto3/botocore failure of ``kms:<action>`` into one of our errors with a one-sentence fix."""
    from botocore.exceptions import ClientError, NoRegionError, ProfileNotFound

    where = region or "the configured region"
    if isinstance(error, ClientError):
        err = error.response.get("Error", {})
        code = str(err.get("Code", ""))
        message = str(err.get("Message", "")).rstrip(".")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("AccessDeniedException", "AccessDenied"):
            return _access_denied(action, key)
        if code == "NotFoundException":
            return SignerError(f"KMS key {key} not found in {where}: check the key ARN or alias")
        if code == "DisabledException":
            return SignerError(f"KMS key {key} is disabled: enable it or sign with another key")
        if code == "KMSInvalidStateException":
            return SignerError(f"KMS key {key} cannot sign in its current state ({message}): "
                               "check it is not pending deletion or import")
        if code == "InvalidKeyUsageException":
            return SignerError(f"KMS key {key} is not a SIGN_VERIFY key: create an asymmetric signing key")
        if code in ("UnrecognizedClientException", "InvalidSignatureException", "ExpiredTokenException",
                    "InvalidClientTokenId", "IncompleteSignature"):
            return RemoteError(f"KMS rejected the AWS credentials ({code}) on kms:{action} for {key}: "
                               "refresh them or check the clock")
        if status == 403:
            return _access_denied(action, key)
        if code == "UnsupportedOperationException":
            return SignerError(f"KMS key {key} cannot sign ({message}): use an asymmetric signing key")
        if code == "ValidationException":
            return SignerError(f"KMS refused kms:{action} for {key}: {message}")
        return RemoteError(f"kms:{action} for {key} failed with {code or status}: {message or 'no message'}")
    transport = transport_error(error, service="KMS", action=f"kms:{action}", resource=key, endpoint=endpoint)
    if transport is not None:
        return transport
    if isinstance(error, NoRegionError):
        return SignerError(f"no AWS region for KMS key {key}: name the key by its ARN or set AWS_REGION")
    if isinstance(error, ProfileNotFound):
        return SignerError(f"cannot use KMS key {key}: {error}; fix AWS_PROFILE or the AWS config file")
    return RemoteError(f"kms:{action} for {key} failed: {error}")


def _make_client(ref: KmsKeyRef, *, region: str | None, endpoint_url: str | None) -> Any:
    """A KMS client for ``ref``: region from the ARN, else ``region``, else boto3's chain, else AWS_REGION."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    try:
        session = boto3.session.Session()
        chosen = ref.region or region or session.region_name or os.environ.get("AWS_REGION") or None
        if chosen is None:
            raise SignerError(f"no AWS region for KMS key {ref.key}: "
                              "name the key by its ARN or set AWS_REGION")
        config = Config(retries={"mode": "standard"}, connect_timeout=10, read_timeout=30,
                        user_agent_extra="attest")
        return session.client("kms", region_name=chosen, endpoint_url=endpoint_url or ref.endpoint_url,
                              config=config)
    except BotoCoreError as e:
        raise _translate(e, action="Sign", key=ref.key, region=ref.region or region,
                         endpoint=endpoint_url or ref.endpoint_url or "the KMS endpoint") from e


class AwsKmsSigner:
    """Signs DSSE PAE bytes with an asymmetric AWS KMS key (see the module docstring)."""

    def __init__(self, ref: KmsKeyRef, *, rsa_scheme: RsaScheme = "pss", client: Any = None,
                 region: str | None = None, endpoint_url: str | None = None) -> None:
        if rsa_scheme not in _RSA_SCHEMES:
            raise SignerError(f"rsa_scheme {rsa_scheme!r} is not one of {sorted(_RSA_SCHEMES)}")
        self.ref = ref
        self.rsa_scheme: RsaScheme = rsa_scheme
        self._region = region
        self._endpoint_url = endpoint_url
        self._client: Any = client
        self._info: _KeyInfo | None = None

    def __repr__(self) -> str:
        return f"AwsKmsSigner({self.ref.key!r})"

    # -- the Signer protocol ------------------------------------------------

    @property
    def keyid(self) -> str:
        """The key's ARN, as KMS reports it (a hint for verifiers, never trusted)."""
        return self._key_info().arn

    def public_key_pem(self) -> bytes:
        """The key's SubjectPublicKeyInfo PEM, fetched once with kms:GetPublicKey."""
        return self._key_info().public_key_pem

    def sign(self, data: bytes) -> bytes:
        """Hash ``data`` locally, have KMS sign the digest, check the signature and return it."""
        info = self._key_info()
        digest = hashlib.new(info.scheme.hash_name, data).digest()
        log.debug("kms:Sign %s with %s over the %s digest", info.arn, info.scheme.algorithm,
                  info.scheme.hash_name)
        answer = self._call("Sign", KeyId=info.arn, Message=digest, MessageType="DIGEST",
                            SigningAlgorithm=info.scheme.algorithm)
        signature = answer.get("Signature")
        if not isinstance(signature, bytes) or not signature:
            raise RemoteError(f"kms:Sign for {info.arn} returned no signature")
        if not _verifies(info, digest, signature):
            raise RemoteError(f"kms:Sign for {info.arn} returned a signature that does not verify with the "
                              "key's public key: the KMS endpoint is not behaving like AWS KMS")
        return signature

    # -- internals ----------------------------------------------------------

    @property
    def client(self) -> Any:
        """The boto3 KMS client, made on first use."""
        if self._client is None:
            self._client = _make_client(self.ref, region=self._region, endpoint_url=self._endpoint_url)
        return self._client

    def _call(self, action: str, **params: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client
        try:
            answer: dict[str, Any] = getattr(client, _snake(action))(**params)
        except (BotoCoreError, ClientError) as e:
            region = getattr(client.meta, "region_name", None)
            raise _translate(e, action=action, key=self.ref.key, region=region,
                             endpoint=_endpoint_of(client)) from e
        except (ValueError, TypeError) as e:  # botocore could not read the answer: not one KMS gives
            raise RemoteError(f"the answer to kms:{action} from {_endpoint_of(client)} is not one KMS gives ({e}); "
                              "check the endpoint (AWS_ENDPOINT_URL, a proxy) and retry") from e
        return answer

    def _key_info(self) -> _KeyInfo:
        if self._info is None:
            log.debug("kms:GetPublicKey %s", self.ref.key)
            self._info = self._check_key(self._call("GetPublicKey", KeyId=self.ref.key))
        return self._info

    def _check_key(self, answer: dict[str, Any]) -> _KeyInfo:
        """Check that GetPublicKey describes a signing key we support, and work out how to sign with it."""
        name = self.ref.key
        usage = answer.get("KeyUsage")
        if usage is not None and usage != "SIGN_VERIFY":
            raise SignerError(f"KMS key {name} has key usage {usage}, not SIGN_VERIFY: "
                              "create an asymmetric signing key")
        der = answer.get("PublicKey")
        if not isinstance(der, bytes):
            raise RemoteError(f"kms:GetPublicKey for {name} returned no public key")
        try:
            public_key = serialization.load_der_public_key(der)
        except UnsupportedAlgorithm as e:  # a key of a spec attest does not sign with (SM2)
            spec = answer.get("KeySpec") or answer.get("CustomerMasterKeySpec") or "of an unknown spec"
            raise SignerError(f"KMS key {name} has key spec {spec}; attest signs with {_SUPPORTED} keys") from e
        except ValueError as e:
            raise RemoteError(f"kms:GetPublicKey for {name} returned an unreadable public key") from e

        if isinstance(public_key, ec.EllipticCurvePublicKey):
            found_spec = _EC_CURVES.get(public_key.curve.name, f"EC curve {public_key.curve.name}")
            scheme = _EC_SCHEMES.get(found_spec)
        elif isinstance(public_key, rsa.RSAPublicKey):
            found_spec = f"RSA_{public_key.key_size}"
            scheme = _RSA_SCHEMES[self.rsa_scheme] if found_spec in _RSA_SPECS else None
        else:
            found_spec, scheme = type(public_key).__name__, None
        declared = answer.get("KeySpec") or answer.get("CustomerMasterKeySpec") or found_spec
        if declared != found_spec:
            raise RemoteError(f"kms:GetPublicKey for {name} says key spec {declared} but returned a "
                              f"{found_spec} public key")
        if scheme is None or not isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            raise SignerError(f"KMS key {name} has key spec {declared}; attest signs with {_SUPPORTED} keys")
        offered = answer.get("SigningAlgorithms")
        if isinstance(offered, list) and scheme.algorithm not in offered:
            raise SignerError(f"KMS key {name} does not offer {scheme.algorithm} (it offers {offered})")

        arn = answer.get("KeyId")
        if not isinstance(arn, str) or not arn:
            arn = name
        pem = public_key.public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)
        return _KeyInfo(arn=arn, key_spec=declared, scheme=scheme, public_key=public_key, public_key_pem=pem)


def _snake(action: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower()


def _verifies(info: _KeyInfo, digest: bytes, signature: bytes) -> bool:
    """Check a KMS signature over ``digest`` with the key's public key, as AWS KMS makes them."""
    algorithm = info.scheme.hash_algorithm()
    prehashed = utils.Prehashed(algorithm)
    try:
        if isinstance(info.public_key, ec.EllipticCurvePublicKey):
            info.public_key.verify(signature, digest, ec.ECDSA(prehashed))
        elif info.scheme.algorithm.startswith("RSASSA_PSS_"):
            pss = padding.PSS(mgf=padding.MGF1(algorithm), salt_length=padding.PSS.DIGEST_LENGTH)
            info.public_key.verify(signature, digest, pss, prehashed)
        else:
            info.public_key.verify(signature, digest, padding.PKCS1v15(), prehashed)
    except InvalidSignature:
        return False
    return True


def from_uri(uri: str, **options: object) -> AwsKmsSigner:
    """The KMS signer named by ``uri``.

    Options: ``rsa_scheme`` (``"pss"``, the default, or ``"pkcs1v15"``),
    ``region`` (used when the key is not named by ARN), ``endpoint_url`` and
    ``client`` (a ready boto3 KMS client); ``insecure_permissions`` is accepted
    and ignored (it concerns key files). Any other option is refused.
    """
    ref = parse_uri(uri)
    # insecure_permissions is about key files; the CLI passes it to every backend.
    known = {"rsa_scheme", "region", "endpoint_url", "client", "insecure_permissions"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise SignerError(f"the awskms signer takes no option {unknown[0]!r}; it takes {sorted(known)}")
    rsa_scheme = options.get("rsa_scheme", "pss")
    if rsa_scheme not in ("pss", "pkcs1v15"):
        raise SignerError(f"rsa_scheme {rsa_scheme!r} is not 'pss' or 'pkcs1v15'")
    region = options.get("region")
    endpoint_url = options.get("endpoint_url")
    for label, value in (("region", region), ("endpoint_url", endpoint_url)):
        if value is not None and not isinstance(value, str):
            raise SignerError(f"the awskms option {label} must be a string, not {type(value).__name__}")
    return AwsKmsSigner(ref, rsa_scheme="pkcs1v15" if rsa_scheme == "pkcs1v15" else "pss",
                        client=options.get("client"), region=region if isinstance(region, str) else None,
                        endpoint_url=endpoint_url if isinstance(endpoint_url, str) else None)


def export_public_key_pem(uri: str, **options: object) -> bytes:
    """The PEM public key of the KMS key named by ``uri`` (``attest key export awskms:...``)."""
    return from_uri(uri, **options).public_key_pem()
