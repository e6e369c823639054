"""A local moto server whose KMS behaves like AWS where attest depends on it.

Run as a script (``python tests/aws_server.py``): it binds 127.0.0.1 on a free
port, prints ``PORT <n>`` on stdout once it accepts connections, and serves
until it is terminated or its stdin is closed (so a crashed pytest run never
leaves a server behind). ``--raw`` serves moto unchanged; the tests use that to
notice when an upgrade of moto makes a correction unnecessary.

Corrections applied to moto 5.2.5 (each one is something real AWS KMS does and
moto does not; leaving them in would make attest's KMS signer look broken, or
worse, let a broken signer pass):

1. ``Sign``/``Verify`` ignore ``MessageType=DIGEST``: moto hashes the digest
   again, so a signature over a digest never verifies. Corrected: a DIGEST
   message is signed as a pre-hashed value, and its length must equal the
   algorithm's digest size (AWS answers ``ValidationException`` otherwise).
2. ``RSASSA_PSS_*`` signs with the maximum salt length. AWS uses a salt as long
   as the digest, which is what every verifier expects. Corrected.
3. ``Sign``/``Verify`` accept a RAW message of any length. AWS refuses a RAW
   message over 4096 bytes with ``ValidationException``. Corrected.
4. ``GetPublicKey`` answers the bare key id in ``KeyId`` and no ``KeySpec``.
   AWS answers the key ARN and both ``KeySpec`` and the deprecated
   ``CustomerMasterKeySpec``. Corrected.
5. With IAM enforcement switched on (``POST /moto-api/reset-auth``), a KMS
   request the caller's policy does not allow is refused with an XML
   ``AccessDenied`` body and HTTP 403, which botocore (KMS speaks JSON) reads
   as error code ``403``. AWS answers HTTP 400 with JSON
   ``AccessDeniedException``. Corrected, so the signer's AccessDenied
   translation is tested against what AWS sends.

S3 conditional writes (``If-None-Match: *`` on PutObject and
CompleteMultipartUpload) are honoured by moto 5.2.5 as they are; the tests in
``tests/aws/test_moto_corrections.py`` keep checking that.

If moto's internals move (a method renamed), :func:`apply_corrections` fails
loudly at start-up instead of serving uncorrected behaviour.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import threading
from typing import Any

#: RAW messages longer than this are refused by AWS KMS Sign and Verify.
KMS_MAX_RAW_MESSAGE = 4096


def _hash_for(algorithm: str) -> Any:
    """The cryptography hash named by the suffix of a KMS signing algorithm."""
    from cryptography.hazmat.primitives import hashes

    by_suffix = {"_SHA_256": hashes.SHA256(), "_SHA_384": hashes.SHA384(), "_SHA_512": hashes.SHA512()}
    for suffix, digest in by_suffix.items():
        if algorithm.endswith(suffix):
            return digest
    raise ValueError(f"no hash known for signing algorithm {algorithm!r}")


def _check_message(message: bytes, message_type: str, algorithm: str) -> None:
    """Refuse what AWS refuses: over-long RAW messages and DIGESTs of the wrong size."""
    from moto.kms.exceptions import ValidationException

    if message_type not in ("RAW", "DIGEST"):
        raise ValidationException(
            f"1 validation error detected: Value '{message_type}' at 'messageType' failed to satisfy "
            "constraint: Member must satisfy enum value set: [DIGEST, RAW]"
        )
    if message_type == "RAW" and len(message) > KMS_MAX_RAW_MESSAGE:
        raise ValidationException(
            "1 validation error detected: Value at 'message' failed to satisfy constraint: "
            f"Member must have length less than or equal to {KMS_MAX_RAW_MESSAGE}"
        )
    if message_type == "DIGEST" and len(message) != _hash_for(algorithm).digest_size:
        raise ValidationException(
            f"Digest is invalid length for algorithm {algorithm}."
        )


def _padding_and_hash(algorithm: str, message_type: str) -> tuple[Any, Any]:
    """The (padding or None, hash argument) AWS uses for ``algorithm``; ``None`` padding means ECDSA."""
    from cryptography.hazmat.primitives.asymmetric import padding, utils

    digest = _hash_for(algorithm)
    hash_arg = utils.Prehashed(digest) if message_type == "DIGEST" else digest
    if algorithm.startswith("RSASSA_PSS_"):
        return padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size), hash_arg
    if algorithm.startswith("RSASSA_PKCS1_V1_5_"):
        return padding.PKCS1v15(), hash_arg
    return None, hash_arg


def _kms_sign(key: Any, message: bytes, message_type: str, algorithm: str) -> bytes:
    from cryptography.hazmat.primitives.asymmetric import ec

    private_key = key.private_key.private_key
    pad, hash_arg = _padding_and_hash(algorithm, message_type)
    if pad is None:
        return bytes(private_key.sign(message, ec.ECDSA(hash_arg)))
    return bytes(private_key.sign(message, pad, hash_arg))


def _kms_verify(key: Any, message: bytes, signature: bytes, message_type: str, algorithm: str) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec

    public_key = key.private_key.private_key.public_key()
    pad, hash_arg = _padding_and_hash(algorithm, message_type)
    try:
        if pad is None:
            public_key.verify(signature, message, ec.ECDSA(hash_arg))
        else:
            public_key.verify(signature, message, pad, hash_arg)
    except InvalidSignature:
        return False
    return True


def apply_corrections() -> None:
    """Patch moto's KMS so Sign, Verify and GetPublicKey answer as AWS does (see the module docstring)."""
    from moto.core.exceptions import AccessDeniedError, JsonRESTError
    from moto.kms.exceptions import ValidationException
    from moto.kms.models import KmsBackend
    from moto.kms.responses import KmsResponse

    required = (
        (KmsBackend, "_KmsBackend__ensure_valid_sign_and_verify_key"),
        (KmsBackend, "_KmsBackend__ensure_valid_signing_algorithm"),
        (KmsBackend, "describe_key"),
        (KmsResponse, "sign"),
        (KmsResponse, "verify"),
        (KmsResponse, "get_public_key"),
        (KmsResponse, "_validate_key_id"),
        (KmsResponse, "_authenticate_and_authorize_normal_action"),
    )
    missing = [f"{cls.__name__}.{name}" for cls, name in required if not hasattr(cls, name)]
    if missing:
        raise RuntimeError(f"moto changed: {missing} no longer exist; revisit tests/aws_server.py")

    def checked_key(self: Any, key_id: str, algorithm: str) -> Any:
        self._validate_key_id(key_id)
        backend = self.kms_backend
        key = backend.describe_key(key_id)
        backend._KmsBackend__ensure_valid_sign_and_verify_key(key)
        backend._KmsBackend__ensure_valid_signing_algorithm(key, algorithm)
        if algorithm == "SM2DSA":
            raise ValidationException("SM2DSA is not supported by this test server")
        return key

    def sign(self: Any) -> str:
        key_id = self._get_param("KeyId")
        message = self._get_param("Message") or b""
        message_type = self._get_param("MessageType") or "RAW"
        algorithm = self._get_param("SigningAlgorithm")
        key = checked_key(self, key_id, algorithm)
        if not message:
            raise ValidationException(
                "1 validation error detected: Value at 'Message' failed to satisfy constraint: "
                "Member must have length greater than or equal to 1"
            )
        _check_message(message, message_type, algorithm)
        signature = _kms_sign(key, message, message_type, algorithm)
        return json.dumps({"KeyId": key.arn, "Signature": base64.b64encode(signature).decode(),
                           "SigningAlgorithm": algorithm})

    def verify(self: Any) -> str:
        key_id = self._get_param("KeyId")
        message = self._get_param("Message") or b""
        message_type = self._get_param("MessageType") or "RAW"
        algorithm = self._get_param("SigningAlgorithm")
        signature = base64.b64decode(self._get_param("Signature") or "")
        key = checked_key(self, key_id, algorithm)
        if not message or not signature:
            raise ValidationException(
                "1 validation error detected: Message and Signature must have length greater than or "
                "equal to 1"
            )
        _check_message(message, message_type, algorithm)
        valid = _kms_verify(key, message, signature, message_type, algorithm)
        return json.dumps({"KeyId": key.arn, "SignatureValid": valid, "SigningAlgorithm": algorithm})

    original_get_public_key = KmsResponse.get_public_key

    def get_public_key(self: Any) -> str:
        answer = json.loads(original_get_public_key(self))
        key = self.kms_backend.describe_key(self._get_param("KeyId"))
        answer["KeyId"] = key.arn
        answer["KeySpec"] = key.key_spec
        return json.dumps(answer)

    original_authorize = KmsResponse._authenticate_and_authorize_normal_action

    def authorize(self: Any, resource: str = "*") -> None:
        try:
            original_authorize(self, resource)
        except AccessDeniedError as e:
            action = f"kms:{self._get_action()}"
            raise JsonRESTError(
                "AccessDeniedException",
                f"{e.message} on resource: {resource} because no identity-based policy allows the "
                f"{action} action",
            ) from e

    KmsResponse._authenticate_and_authorize_normal_action = authorize  # type: ignore[method-assign]
    KmsResponse.sign = sign  # type: ignore[method-assign]
    KmsResponse.verify = verify  # type: ignore[method-assign]
    KmsResponse.get_public_key = get_public_key  # type: ignore[method-assign]


def _exit_when_stdin_closes() -> None:
    """Stop the process once the parent (pytest) closes our stdin or dies."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)


def serve(host: str, port: int, *, corrected: bool = True) -> None:
    """Serve moto on ``host:port`` (0 picks a free port) and announce the port on stdout."""
    if corrected:
        apply_corrections()
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    threading.Thread(target=_exit_when_stdin_closes, daemon=True).start()
    sys.stdout.write(f"PORT {server.port}\n")
    sys.stdout.flush()
    server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--raw", action="store_true", help="serve moto without attest's corrections")
    args = parser.parse_args(argv)
    serve(args.host, args.port, corrected=not args.raw)


if __name__ == "__main__":
    main()
