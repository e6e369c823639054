"""An artefact store in S3: ``s3://bucket/prefix``, content-addressed and write-once.

Every object is written with ``If-None-Match: *`` (S3 refuses to overwrite an
existing key) and an ``x-amz-checksum-sha256`` that S3 checks on arrival. When
the key already exists, the bytes already there are compared with ours (an
artefact by re-hashing the stored object, an attestation byte for byte): the
same bytes make the write a no-op, other bytes are refused, because the store
is write-once. Artefacts larger than :data:`MULTIPART_THRESHOLD` go up as a
multipart upload with a SHA-256 checksum per part; the upload is completed
with the same condition, and aborted on any failure so nothing half-written is
left behind.

Attestation objects can carry an Object Lock retention (``retain_days`` and
``retention_mode``); that needs a bucket created with Object Lock, which is
checked once before the first such write.

The store is untrusted: what is read back is only evidence, checked by its
signatures. Reads are bounded by :data:`verify.limits.MAX_EVIDENCE_BYTES`.

boto3 is imported only when S3 is used. Credentials and region come from
boto3's default chain; ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` are
honoured by boto3.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import io
import logging
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Final, Literal

from attest._aws import transport_error
from attest.errors import AttestError, RemoteError, StoreError
from attest.stores.layout import (
    INDEX_FOLDER,
    FiledDeployment,
    artifact_key,
    attestation_key,
    deployment_prefix,
    index_entry,
    index_key,
    parse_deployment_key,
    parse_index_entry,
    safe_name,
)
from verify.errors import EvidenceRejected, LimitExceeded, MalformedEvidence
from verify.limits import MAX_EVIDENCE_BYTES, MAX_STORE_KEYS

__all__ = [
    "CHUNK_SIZE",
    "LIST_PAGE_SIZE",
    "MAX_PARTS",
    "MULTIPART_THRESHOLD",
    "PART_SIZE",
    "Progress",
    "RetentionMode",
    "S3Store",
    "parse_s3_uri",
    "stream_object",
]

log = logging.getLogger(__name__)

#: Artefacts larger than this many bytes are uploaded in parts (tests lower it).
MULTIPART_THRESHOLD = 64 * 1024 * 1024
#: Size of one part of a multipart upload (S3 needs at least 5 MiB for all parts but the last).
PART_SIZE = 16 * 1024 * 1024
#: Most parts S3 accepts in one upload; the part size grows for larger files.
MAX_PARTS: Final = 10_000
#: Bytes read at a time when streaming an object.
CHUNK_SIZE = 1024 * 1024
#: Keys asked for per ListObjectsV2 page (S3's maximum; tests lower it to exercise paging).
LIST_PAGE_SIZE = 1000

#: Called with the number of bytes just transferred (as ``verify.digests.hash_file`` and the local store do).
Progress = Callable[[int], None]
RetentionMode = Literal["GOVERNANCE", "COMPLIANCE"]

_BUCKET_RE: Final = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_HEX64: Final = re.compile(r"[0-9a-f]{64}")
_ATTESTATION_RE: Final = re.compile(r"sha256/[0-9a-f]{64}/[^/]+\.(?:intoto\.jsonl|sigstore\.json)")
_ARTIFACT_RE: Final = re.compile(r"sha256/([0-9a-f]{64})/artifact/.+", re.DOTALL)  # (a name may hold a newline)
#: More than an index entry ever holds (64 hex digits and a newline): a longer one is not an entry.
_INDEX_ENTRY_MAX: Final = 80


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/key-or-prefix`` into (bucket, key), checking the bucket name."""
    if not uri.startswith("s3://"):
        raise StoreError(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket:
        raise StoreError(f"{uri!r} does not name a valid S3 bucket")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:  # (bytes a shell passed that are not UTF-8): S3 names keys in UTF-8 only
        raise StoreError(f"{uri!r} names a prefix that is not UTF-8 text, which S3 cannot name; fix the "
                         "URI") from None
    return bucket, key


def _b64_sha256(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def _plain_path(name: str) -> str:
    """``safe_name``, plus a segment-by-segment check (``PurePosixPath`` hides ``.`` and trailing ``/``)."""
    safe_name(name)
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise StoreError(f"subject name {name!r} cannot be stored: "
                         "it must not contain '.', '..' or empty parts")
    return name


def _changed(source: Path, sha256: str) -> StoreError:
    return StoreError(f"artefact {source} no longer has sha256 {sha256}: it changed after it was hashed")


def _error_code(error: BaseException | None) -> str:
    from botocore.exceptions import ClientError

    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


def _access_denied(action: str, uri: str) -> RemoteError:
    return RemoteError(f"AccessDenied on s3:{action} for {uri}: the role needs s3:{action} on it "
                       "(IAM policy and bucket policy)")


def _translate(error: Exception, *, action: str, uri: str, endpoint: str) -> AttestError:
    """Turn a boto3/botocore failure of ``s3:<action>`` on ``uri`` into one of our errors."""
    from botocore.exceptions import ClientError

    if isinstance(error, ClientError):
        err = error.response.get("Error", {})
        code = str(err.get("Code", ""))
        message = str(err.get("Message", "")).rstrip(".")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        bucket = uri.removeprefix("s3://").partition("/")[0]
        if code == "PreconditionFailed" or status == 412:
            return Changed(f"{uri} changed while it was read (it is no longer the object the listing named): what was "
                           "listed is not what would be read; read it again")
        if code == "NoSuchBucket":
            return StoreError(f"bucket {bucket} does not exist: create it or fix the store URI {uri}")
        if code in ("AccessDenied", "AllAccessDisabled"):
            return _access_denied(action, uri)
        if code in ("NoSuchKey", "404", "NotFound"):
            return Unreadable(f"{uri} does not exist")
        if code == "InvalidObjectState":  # (a 403: never the role's permissions)
            return Unreadable(f"{uri} is archived ({err.get('StorageClass') or 'InvalidObjectState'}): S3 gives its "
                              "bytes only once it is restored; restore it, or keep attestations out of archive tiers")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "TokenRefreshRequired"):
            return RemoteError(f"S3 rejected the AWS credentials ({code}) on s3:{action} for {uri}: "
                               "refresh them or check the clock")
        if status == 403:
            return _access_denied(action, uri)
        if code in ("InvalidRequest", "InvalidArgument", "InvalidBucketName", "EntityTooLarge",
                    "EntityTooSmall", "InvalidPart", "InvalidPartOrder", "MissingContentLength"):
            return StoreError(f"S3 refused s3:{action} on {uri}: {message or code}")
        return RemoteError(f"s3:{action} on {uri} failed with {code or status}: {message or 'no message'}")
    transport = transport_error(error, service="S3", action=f"s3:{action}", resource=uri, endpoint=endpoint)
    if transport is not None:
        return transport
    return RemoteError(f"s3:{action} on {uri} failed: {error}")


def _not_s3(action: str, uri: str, client: Any, why: str) -> RemoteError:
    return RemoteError(f"the answer to s3:{action} on {uri} from {_endpoint_of(client)} is not one S3 gives ({why}); "
                       "check the endpoint (AWS_ENDPOINT_URL, a proxy) and retry")


class Unreadable(StoreError):
    """One object S3 will not give (gone since it was listed, archived): that object's problem, not the store's."""


class Changed(Unreadable):
    """An object replaced between the listing that named it and its read (a read asked for the listed ETag)."""


def _make_client() -> Any:
    """An S3 client from boto3's default chain, with standard retries."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    try:
        return boto3.session.Session().client(
            "s3", config=Config(retries={"mode": "standard"}, connect_timeout=10, read_timeout=60,
                                user_agent_extra="attest"))
    except BotoCoreError as e:
        raise StoreError(f"cannot set up an S3 client: {e}") from e


def _endpoint_of(client: Any) -> str:
    return str(getattr(getattr(client, "meta", None), "endpoint_url", "the S3 endpoint"))


class _Call:
    """Runs one S3 API call and translates its failures (``s3:<action>`` names the IAM permission)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def __call__(self, method: str, action: str, uri: str, **params: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        log.debug("s3:%s %s", action, uri)
        try:
            answer: dict[str, Any] = getattr(self.client, method)(**params)
        except (BotoCoreError, ClientError) as e:
            raise _translate(e, action=action, uri=uri, endpoint=_endpoint_of(self.client)) from e
        except (ValueError, TypeError) as e:  # botocore could not read the answer (a size that is no number, say)
            raise _not_s3(action, uri, self.client, str(e)) from e
        return answer


class _ProgressReader(io.RawIOBase):
    """A seekable reader over bytes reporting the furthest position read (botocore re-reads on retry)."""

    def __init__(self, data: bytes, progress: Progress | None) -> None:
        self._buffer = io.BytesIO(data)
        self._progress = progress
        self._reported = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._buffer.seek(offset, whence)

    def tell(self) -> int:
        return self._buffer.tell()

    def readinto(self, buffer: Any) -> int:
        count = self._buffer.readinto(buffer)
        position = self._buffer.tell()
        if self._progress is not None and position > self._reported:
            self._progress(position - self._reported)
            self._reported = position
        return count


class _ObjectReader(io.RawIOBase):
    """A readable stream over an S3 GetObject body that translates transport failures into our errors."""

    def __init__(self, body: Any, *, uri: str, endpoint: str, progress: Progress | None) -> None:
        self._body = body
        self._uri = uri
        self._endpoint = endpoint
        self._progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        from botocore.exceptions import BotoCoreError
        from urllib3.exceptions import HTTPError

        view = memoryview(buffer).cast("B")
        try:
            chunk: bytes = self._body.read(len(view))
        except (BotoCoreError, HTTPError, OSError) as e:
            raise _translate(e, action="GetObject", uri=self._uri, endpoint=self._endpoint) from e
        view[: len(chunk)] = chunk
        if chunk and self._progress is not None:
            self._progress(len(chunk))
        return len(chunk)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


def _open(client: Any, bucket: str, key: str, *, progress: Progress | None,
          etag: str | None = None) -> tuple[BinaryIO, int]:
    """GET ``s3://bucket/key`` and return a reader over its bytes and its length; with ``etag`` (a listing's), only
    that object: one replaced since is :class:`Changed`, so that a stamp from the listing stands for the bytes."""
    uri = f"s3://{bucket}/{key}"
    matched = {"IfMatch": etag} if etag else {}
    answer = _Call(client)("get_object", "GetObject", uri, Bucket=bucket, Key=key, **matched)
    raw = _ObjectReader(answer["Body"], uri=uri, endpoint=_endpoint_of(client), progress=progress)
    return io.BufferedReader(raw, buffer_size=CHUNK_SIZE), int(answer.get("ContentLength", -1))


def stream_object(uri: str, *, chunk_size: int = CHUNK_SIZE, progress: Progress | None = None,
                  client: Any = None) -> Iterator[bytes]:
    """Yield the bytes of the object at ``s3://bucket/key`` in chunks.

    Nothing about the object is trusted: callers hash what this yields
    (``attest verify s3://.../artifact/NAME`` does) and never rely on S3's
    stored checksums or ETags.
    """
    bucket, key = parse_s3_uri(uri)
    if not key or key.endswith("/"):
        raise StoreError(f"{uri!r} names no object")
    stream, _ = _open(client or _make_client(), bucket, key, progress=progress)
    with stream:
        while chunk := stream.read(chunk_size):
            yield chunk


#: Pages of a listing that list nothing and say there is more: a few may come from a store under heavy deletes;
#: endless ones (each with a new token) would keep a listing going forever.
_MAX_EMPTY_PAGES = 100


class S3Store:
    """The store at ``s3://bucket/prefix`` (see the module docstring)."""

    def __init__(self, bucket: str, prefix: str = "", *, retain_days: int | None = None,
                 retention_mode: RetentionMode = "GOVERNANCE", progress: Progress | None = None,
                 client: Any = None) -> None:
        prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self.remote = True
        parse_s3_uri(self.uri)
        if prefix:
            _plain_path(prefix)
        if retain_days is not None and (not isinstance(retain_days, int) or isinstance(retain_days, bool)
                                        or retain_days < 1):
            raise StoreError(f"retain_days must be a whole number of days of at least 1, not {retain_days!r}")
        if retention_mode not in ("GOVERNANCE", "COMPLIANCE"):
            raise StoreError(f"retention_mode must be 'GOVERNANCE' or 'COMPLIANCE', not {retention_mode!r}")
        self.bucket = bucket
        self.prefix = prefix
        self.retain_days = retain_days
        self.retention_mode: RetentionMode = retention_mode
        self.progress = progress
        self._client: Any = client
        self._lock_checked = False

    @classmethod
    def from_uri(cls, uri: str, *, retain_days: int | None = None,
                 retention_mode: RetentionMode = "GOVERNANCE", progress: Progress | None = None,
                 client: Any = None) -> S3Store:
        """The store at ``s3://bucket/prefix``."""
        bucket, prefix = parse_s3_uri(uri)
        return cls(bucket, prefix, retain_days=retain_days, retention_mode=retention_mode,
                   progress=progress, client=client)

    def __repr__(self) -> str:
        return f"S3Store({self.uri!r})"

    # -- plumbing -----------------------------------------------------------

    @property
    def client(self) -> Any:
        """The boto3 S3 client, made on first use."""
        if self._client is None:
            self._client = _make_client()
        return self._client

    def _key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def _uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _call(self, method: str, action: str, key: str, **params: Any) -> dict[str, Any]:
        return _Call(self.client)(method, action, self._uri(key), Bucket=self.bucket, **params)

    def _exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._call("head_object", "GetObject", key, Key=key)
        except StoreError as e:
            cause = e.__cause__
            if isinstance(cause, ClientError) and _error_code(cause) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def _stored_sha256(self, key: str) -> str:
        """The sha256 of the object's bytes, hashed here as they stream in."""
        hasher = hashlib.sha256()
        stream, _ = _open(self.client, self.bucket, key, progress=None)
        with stream:
            while chunk := stream.read(CHUNK_SIZE):
                hasher.update(chunk)
        return hasher.hexdigest()

    def _refuse_other_bytes(self, key: str) -> StoreError:
        return StoreError(f"{self._uri(key)} already holds different bytes; the store is write-once")

    def _conditional_put(self, key: str, body: bytes, *, progress: Progress | None,
                         extra: dict[str, Any]) -> bool:
        """PUT ``body`` at ``key`` unless the key exists; return False (nothing written) if it does."""
        from botocore.exceptions import ClientError

        try:
            self._call("put_object", "PutObject", key, Key=key, Body=_ProgressReader(body, progress),
                       ContentLength=len(body), ChecksumAlgorithm="SHA256",
                       ChecksumSHA256=_b64_sha256(hashlib.sha256(body).digest()), IfNoneMatch="*", **extra)
        except AttestError as e:
            cause = e.__cause__
            if isinstance(cause, ClientError) and _error_code(cause) in (
                    "PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise
        return True

    # -- writing ------------------------------------------------------------

    def put_artifact(self, sha256: str, name: str, source: Path, progress: Progress | None = None) -> str:
        """Store the file ``source`` (whose sha256 is ``sha256``) as artefact ``name``; return its URI.

        The file is hashed again as it is read and refused if it no longer has
        the digest it was published under. ``progress`` (default: the store's)
        is called with the number of bytes sent since its last call.
        """
        progress = progress or self.progress
        key = self._key(artifact_key(sha256, _plain_path(name)))
        uri = self._uri(key)
        try:
            size = source.stat().st_size
        except OSError as e:
            raise StoreError(f"cannot read artefact {source}: {e.strerror or e}") from e
        if size > MULTIPART_THRESHOLD:
            self._put_multipart(key, sha256, source, size, progress)
            return uri

        try:
            data = source.read_bytes()
        except OSError as e:
            raise StoreError(f"cannot read artefact {source}: {e.strerror or e}") from e
        if hashlib.sha256(data).hexdigest() != sha256:
            raise _changed(source, sha256)
        if not self._conditional_put(key, data, progress=progress, extra={}):
            if self._stored_sha256(key) != sha256:
                raise self._refuse_other_bytes(key)
            log.info("%s already holds these bytes", uri)
        return uri

    def _put_multipart(self, key: str, sha256: str, source: Path, size: int,
                       progress: Progress | None) -> None:
        """Upload ``source`` in parts with per-part SHA-256 checksums; complete only if the key is free."""
        from botocore.exceptions import ClientError

        uri = self._uri(key)
        # A large object already there need not be uploaded again to find out.
        if self._exists(key):
            if self._stored_sha256(key) != sha256:
                raise self._refuse_other_bytes(key)
            return
        part_size = max(PART_SIZE, math.ceil(size / MAX_PARTS))
        upload_id = self._call("create_multipart_upload", "PutObject", key, Key=key,
                               ChecksumAlgorithm="SHA256")["UploadId"]
        try:
            parts = self._upload_parts(key, upload_id, sha256, source, part_size, progress)
            try:
                self._call("complete_multipart_upload", "PutObject", key, Key=key, UploadId=upload_id,
                           MultipartUpload={"Parts": parts}, IfNoneMatch="*")
                return
            except AttestError as e:
                cause = e.__cause__
                if not (isinstance(cause, ClientError)
                        and _error_code(cause) in ("PreconditionFailed", "ConditionalRequestConflict")):
                    raise
        except BaseException:
            self._abort(key, upload_id)
            raise
        # Someone else completed this key first: ours is not needed, theirs must be the same bytes.
        self._abort(key, upload_id)
        if self._stored_sha256(key) != sha256:
            raise self._refuse_other_bytes(key)
        log.info("%s already holds these bytes", uri)

    def _upload_parts(self, key: str, upload_id: str, sha256: str, source: Path, part_size: int,
                      progress: Progress | None) -> list[dict[str, Any]]:
        """Upload ``source`` part by part, hashing it again; return the parts for CompleteMultipartUpload."""
        hasher = hashlib.sha256()
        parts: list[dict[str, Any]] = []
        try:
            with source.open("rb") as f:
                while chunk := f.read(part_size):
                    hasher.update(chunk)
                    checksum = _b64_sha256(hashlib.sha256(chunk).digest())
                    number = len(parts) + 1
                    answer = self._call("upload_part", "PutObject", key, Key=key, UploadId=upload_id,
                                        PartNumber=number, Body=chunk, ChecksumAlgorithm="SHA256",
                                        ChecksumSHA256=checksum)
                    parts.append({"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": checksum})
                    if progress is not None:
                        progress(len(chunk))
        except OSError as e:
            raise StoreError(f"cannot read artefact {source}: {e.strerror or e}") from e
        if hasher.hexdigest() != sha256:
            raise _changed(source, sha256)
        return parts

    def _abort(self, key: str, upload_id: str) -> None:
        """Abort a multipart upload, best effort (S3 lifecycle rules clean up what this cannot)."""
        try:
            self._call("abort_multipart_upload", "AbortMultipartUpload", key, Key=key, UploadId=upload_id)
        except AttestError as e:
            log.warning("could not abort multipart upload %s of %s: %s", upload_id, self._uri(key), e)

    def check_retention(self) -> None:
        """Check now (a read) that the bucket has Object Lock, if attestations are to be retained."""
        self._retention()

    def _retention(self) -> dict[str, Any]:
        """Object Lock PUT parameters for an attestation; checks once that the bucket has Object Lock."""
        if self.retain_days is None:
            return {}
        if not self._lock_checked:

            try:
                answer = _Call(self.client)("get_object_lock_configuration",
                                            "GetBucketObjectLockConfiguration", f"s3://{self.bucket}",
                                            Bucket=self.bucket)
            except AttestError as e:
                cause = e.__cause__
                if _error_code(cause) == "ObjectLockConfigurationNotFoundError":
                    answer = {}
                else:
                    raise
            enabled = answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
            if enabled != "Enabled":
                raise StoreError(f"bucket {self.bucket} does not have Object Lock enabled, so attestations "
                                 f"cannot be retained for {self.retain_days} days: use a bucket created with "
                                 "Object Lock or drop the retention option")
            self._lock_checked = True
        until = dt.datetime.now(dt.UTC) + dt.timedelta(days=self.retain_days)
        return {"ObjectLockMode": self.retention_mode, "ObjectLockRetainUntilDate": until}

    def put_attestation(self, sha256: str, kind: str, data: bytes) -> str:
        """Store ``data`` (one or more envelope lines) for the artefact ``sha256``; return its URI."""
        if not data:
            raise StoreError("refusing to store an empty attestation file")
        return self._put_once(self._key(attestation_key(sha256, kind, data)), data)

    def put_index(self, blake3: str, sha256: str) -> str:
        """Write ``blake3/<blake3>`` once, naming ``sha256``; return its URI."""
        return self._put_once(self._key(index_key(blake3)), index_entry(sha256))

    def _put_once(self, key: str, data: bytes) -> str:
        """A small object written once (with the store's retention): the same bytes there already are fine."""
        if not self._conditional_put(key, data, progress=None, extra=self._retention()):
            stream, length = _open(self.client, self.bucket, key, progress=None)
            with stream:
                stored = stream.read(len(data) + 1) if length in (-1, len(data)) else b""
            if stored != data:
                raise self._refuse_other_bytes(key)
            log.info("%s already holds these bytes", self._uri(key))
        return self._uri(key)

    # -- reading ------------------------------------------------------------

    def _read_evidence(self, key: str, size: int | None, etag: str | None = None) -> bytes:
        uri = self._uri(key)
        if size is not None and size > MAX_EVIDENCE_BYTES:
            raise LimitExceeded(f"{uri} is {size} bytes; attestation files over {MAX_EVIDENCE_BYTES} bytes "
                                "are not read")
        stream, _ = _open(self.client, self.bucket, key, progress=None, etag=etag)
        with stream:
            data = stream.read(MAX_EVIDENCE_BYTES + 1)
        if len(data) > MAX_EVIDENCE_BYTES:
            raise LimitExceeded(f"{uri} is over {MAX_EVIDENCE_BYTES} bytes; "
                                "larger attestation files are not read")
        return data

    def _list(self, prefix: str, *, delimiter: str | None) -> Iterator[tuple[str, int | None]]:
        """(key, size) of every object under ``prefix``, across pages (see :meth:`_objects`)."""
        for key, size, _, _ in self._objects(prefix, delimiter=delimiter):
            yield key, size

    def _objects(self, prefix: str, *, delimiter: str | None
                 ) -> Iterator[tuple[str, int | None, str | None, str | None]]:
        """(key, size, stamp (:func:`_stamp`), ETag) of every object under ``prefix``, across pages.

        A listing that could go on forever is refused, not followed: S3 lists keys in ascending order and
        never repeats a continuation token, so a key that does not follow the one before, a token seen
        before, more than :data:`~verify.limits.MAX_STORE_KEYS` keys, more than :data:`_MAX_EMPTY_PAGES` pages
        that list nothing, or an entry without a key is a store (or a proxy) that misbehaves: :class:`StoreError`,
        naming where it went wrong.
        """
        params: dict[str, Any] = {"Prefix": prefix, "MaxKeys": LIST_PAGE_SIZE}
        if delimiter:
            params["Delimiter"] = delimiter
        where = f"s3://{self.bucket}/{prefix}"
        tokens: set[str] = set()
        last: str | None = None
        listed = empty = 0
        while True:
            page = self._call("list_objects_v2", "ListBucket", prefix, **params)
            if "IsTruncated" not in page or "Name" not in page:  # (S3 always says both: an HTML page says neither)
                raise _not_s3("ListBucket", where, self.client, "no ListBucketResult")
            empty += not page.get("Contents") and not page.get("CommonPrefixes")
            if empty > _MAX_EMPTY_PAGES:
                raise StoreError(f"the listing of {where} goes on with page after empty page; the store or a proxy "
                                 "misbehaves: refusing to read on")
            for item in page.get("Contents", []):
                key, size = item.get("Key"), item.get("Size")
                if not isinstance(key, str) or not key or not (size is None or (type(size) is int and size >= 0)):
                    raise StoreError(f"the listing of {where} holds an entry without a key or a size ({item!r:.80}); "
                                     "the store or a proxy misbehaves: refusing to read on")
                if last is not None and key <= last:
                    raise StoreError(f"the listing of {where} goes back from {last!r} to {key!r}; S3 lists keys in "
                                     "order, so the store or a proxy misbehaves: refusing to read on")
                last, listed = key, listed + 1
                if listed > MAX_STORE_KEYS:
                    raise StoreError(f"the listing of {where} goes past {MAX_STORE_KEYS} keys; refusing to read on")
                etag = item.get("ETag")
                yield key, size, _stamp(etag, size, item.get("LastModified")), etag if isinstance(etag, str) else None
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated"):
                return
            if not token:
                raise StoreError(f"the listing of {where} says it goes on but gives no continuation token; the "
                                 "store or a proxy misbehaves: refusing to take part of it for the whole")
            if token in tokens:
                raise StoreError(f"the listing of {where} repeats a continuation token, so it would never end; the "
                                 "store or a proxy misbehaves: refusing to read on")
            tokens.add(token)
            params["ContinuationToken"] = token

    def _relative(self, key: str) -> str:
        return key[len(self.prefix) + 1:] if self.prefix else key

    def _evidence(self, key: str, size: int | None, etag: str | None = None) -> bytes | EvidenceRejected:
        """One attestation object, or why it is not read (over the size limit, or replaced since it was listed as
        ``etag``): that object's problem only."""
        try:
            return self._read_evidence(key, size, etag)
        except LimitExceeded as e:
            return e
        except Unreadable as e:  # (replaced, gone or archived since the listing)
            return MalformedEvidence(str(e))

    def has_index(self) -> bool:
        """Whether any ``blake3/`` index entry exists (one LIST of at most one key)."""
        page = self._call("list_objects_v2", "ListBucket", self._key(f"{INDEX_FOLDER}/"),
                          Prefix=self._key(f"{INDEX_FOLDER}/"), MaxKeys=1)
        return bool(page.get("Contents"))

    def sha256_for(self, blake3: str) -> str | None:
        """The sha256 the entry ``blake3/<blake3>`` names, or None when there is none (or it is not an entry)."""
        from botocore.exceptions import ClientError

        try:
            key = self._key(index_key(blake3))
            stream, _ = _open(self.client, self.bucket, key, progress=None)
            with stream:
                return parse_index_entry(stream.read(_INDEX_ENTRY_MAX))
        except StoreError as e:
            cause = e.__cause__
            if cause is None or (isinstance(cause, ClientError) and _error_code(cause) in ("404", "NoSuchKey")):
                return None  # no entry (or no blake3 digest to look up): the sha256 read finds the evidence
            raise

    def attestations(self, sha256: str) -> Iterator[tuple[str, bytes | EvidenceRejected]]:
        """Every attestation file stored for the artefact ``sha256``, as (URI, bytes or why not)."""
        if not _HEX64.fullmatch(sha256):
            raise StoreError(f"{sha256!r} is not a lower-case hex sha256 digest")
        folder = self._key(f"sha256/{sha256}/")
        for key, size in self._list(folder, delimiter="/"):
            if _ATTESTATION_RE.fullmatch(self._relative(key)):
                yield self._uri(key), self._evidence(key, size)

    def all_attestations(self) -> Iterator[tuple[str, bytes | EvidenceRejected]]:
        """Every attestation file in the store, as (URI, bytes or why not), for audits."""
        for uri, _, read in self.listed_attestations():
            yield uri, read()

    def listed_attestations(self) -> Iterator[tuple[str, str | None, Callable[[], bytes | EvidenceRejected]]]:
        """As :meth:`all_attestations`, from the listing alone: (URI, its stamp (:func:`_stamp`), a reader)."""
        for key, size, stamp, etag in self._objects(self._key("sha256/"), delimiter=None):
            if _ATTESTATION_RE.fullmatch(self._relative(key)):  # (read as listed: the stamp stands for those bytes)
                yield self._uri(key), stamp, functools.partial(self._evidence, key, size, etag)

    def put_deployment(self, key: str, data: bytes) -> str:
        """Write ``data`` once at ``key``, an entry of the deployment index; return its URI."""
        if parse_deployment_key(key) is None:
            raise StoreError(f"{key!r} is not a key of the store's deployment index")
        return self._put_once(self._key(key), data)

    def deployments(self, environment: str | None = None) -> list[FiledDeployment]:
        """The deployment index from one listing (a thousand entries a page); nothing is read."""
        prefix = self._key(deployment_prefix(environment))
        found = [parse_deployment_key(self._relative(key)) for key, _ in self._list(prefix, delimiter=None)]
        return [f for f in found if f is not None and (environment is None or f.environment == environment)]

    def read_deployment(self, filed: FiledDeployment) -> tuple[str, bytes | EvidenceRejected]:
        key = self._key(filed.key)
        return self._uri(key), self._evidence(key, None)

    def artifacts(self) -> Iterator[tuple[str, str, Callable[[], BinaryIO]]]:
        """(URI, the sha256 its address claims, an opener) of every stored artefact, for audits."""
        for uri, claimed, opener, _ in self.listed_artifacts():
            yield uri, claimed, opener

    def listed_artifacts(self) -> Iterator[tuple[str, str, Callable[[], BinaryIO], str | None]]:
        """As :meth:`artifacts`, with each one's stamp (:func:`_stamp`) from the listing."""
        for key, _, stamp, etag in self._objects(self._key("sha256/"), delimiter=None):
            relative = self._relative(key)
            match = _ARTIFACT_RE.fullmatch(relative)
            if match:  # (read as listed: the stamp stands for those bytes)
                yield (self._uri(key), match.group(1), functools.partial(self.open_artifact, relative, etag=etag),
                       stamp)

    def open_artifact(self, key: str, *, progress: Progress | None = None, etag: str | None = None) -> BinaryIO:
        """A binary stream over the object ``key``, relative to the store (only as listed with ``etag``, if given:
        else :class:`Changed`).

        ``key`` is for example ``sha256/<hex>/artifact/NAME``. The bytes are
        untrusted: hash them as they are read.
        """
        _plain_path(key)
        stream, _ = _open(self.client, self.bucket, self._key(key), progress=progress or self.progress, etag=etag)
        return stream


def _stamp(etag: str | None, size: int | None, modified: dt.datetime | None) -> str | None:
    """What changes when an object is replaced, or None when the listing does not say: ``s3:ETAG:SIZE:SECONDS``.
    The time S3 stored it counts, not the ETag alone: a single-part object's ETag is the MD5 of its bytes, and two
    objects of one size and one MD5 can be made; S3 sets the time itself, and a replacement takes a new one."""
    if not etag or size is None or not isinstance(modified, dt.datetime):
        return None
    return f"s3:{etag.replace(':', '')}:{size}:{int(modified.timestamp())}"
