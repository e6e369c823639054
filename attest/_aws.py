"""What the KMS signer and the S3 store share: turning transport and credential failures into one sentence."""

from __future__ import annotations

from attest.errors import RemoteError

CREDENTIALS_HINT = (
    "provide AWS credentials (an IAM role such as the CodeBuild service role or an instance profile, "
    "AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
)


def transport_error(error: Exception, *, service: str, action: str, resource: str,
                    endpoint: str) -> RemoteError | None:
    """The :class:`RemoteError` for a credential or connection failure, or None for anything else.

    ``service`` is how people name it (``KMS``, ``S3``); ``action`` the IAM action (``kms:Sign``).
    """
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        CredentialRetrievalError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
        ReadTimeoutError,
    )
    from urllib3.exceptions import ProtocolError

    if isinstance(error, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
        return RemoteError(f"no usable AWS credentials for {action} on {resource}: {CREDENTIALS_HINT}")
    if isinstance(error, EndpointConnectionError | ConnectTimeoutError | ConnectionClosedError):
        return RemoteError(f"cannot reach {service} at {endpoint}: {error}")
    if isinstance(error, ReadTimeoutError | ProtocolError):
        return RemoteError(f"{service} at {endpoint} did not complete {action} on {resource}: {error}; retry later")
    return None
