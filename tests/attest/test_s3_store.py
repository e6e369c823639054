"""attest.stores.s3 against a local moto S3 over real HTTP (see tests/conftest_aws.py)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from attest import stores
from attest.errors import RemoteError, StoreError
from attest.stores import s3 as s3store
from attest.stores.s3 import S3Store, stream_object
from tests.conftest_aws import MotoEnv, answering, free_port
from verify.errors import LimitExceeded

BUCKET = "attest-store"
MiB = 1024 * 1024
LINE = b'{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}\n'


@pytest.fixture
def s3(aws_env: MotoEnv) -> Any:
    client = aws_env.client("s3")
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": aws_env.region})
    return client


@pytest.fixture
def store(s3: Any) -> S3Store:
    made = stores.from_uri(f"s3://{BUCKET}/app")
    assert isinstance(made, S3Store)
    return made


def artefact(tmp_path: Path, data: bytes, name: str = "app.tar.gz") -> tuple[Path, str]:
    path = tmp_path / name
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def read(s3: Any, uri: str) -> bytes:
    bucket, key = s3store.parse_s3_uri(uri)
    body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def keys(s3: Any, bucket: str = BUCKET) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def pending_uploads(s3: Any) -> list[Any]:
    uploads: list[Any] = s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
    return uploads


def test_round_trip(s3: Any, store: S3Store, tmp_path: Path) -> None:
    path, sha = artefact(tmp_path, b"the artefact")
    uri = store.put_artifact(sha, "dist/app.tar.gz", path)
    assert uri == f"s3://{BUCKET}/app/sha256/{sha}/artifact/dist/app.tar.gz"
    assert read(s3, uri) == b"the artefact"
    head = s3.head_object(Bucket=BUCKET, Key=uri.removeprefix(f"s3://{BUCKET}/"), ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == base64.b64encode(bytes.fromhex(sha)).decode()

    att_uri = store.put_attestation(sha, "provenance", LINE)
    assert att_uri == f"s3://{BUCKET}/app/sha256/{sha}/provenance-{hashlib.sha256(LINE).hexdigest()}.intoto.jsonl"
    assert list(store.attestations(sha)) == [(att_uri, LINE)]

    with store.open_artifact(f"sha256/{sha}/artifact/dist/app.tar.gz") as stream:
        assert stream.read() == b"the artefact"
    assert b"".join(stream_object(uri)) == b"the artefact"


def test_all_attestations_pages_through_the_whole_store(s3: Any, store: S3Store, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3store, "LIST_PAGE_SIZE", 2)
    written = set()
    for i in range(3):
        path, sha = artefact(tmp_path, f"artefact {i}".encode())
        store.put_artifact(sha, "app.tar.gz", path)
        for kind in ("provenance", "vsa"):
            data = LINE.replace(b"e30=", base64.b64encode(f"{kind}{i}".encode()))
            written.add((store.put_attestation(sha, kind, data), data))
    # Another prefix in the same bucket is another store.
    S3Store.from_uri(f"s3://{BUCKET}/other").put_attestation("0" * 64, "provenance", LINE)
    assert set(store.all_attestations()) == written
    assert len(list(store.all_attestations())) == 6


def test_attestations_lists_only_attestation_files(s3: Any, store: S3Store, tmp_path: Path) -> None:
    path, sha = artefact(tmp_path, b"x")
    store.put_artifact(sha, "looks-like.intoto.jsonl", path)  # an artefact, not evidence
    s3.put_object(Bucket=BUCKET, Key=f"app/sha256/{sha}/notes.txt", Body=b"hello")
    uri = store.put_attestation(sha, "vsa", LINE)
    assert [u for u, _ in store.attestations(sha)] == [uri]
    assert list(store.attestations("f" * 64)) == []
    with pytest.raises(StoreError, match="not a lower-case hex sha256"):
        list(store.attestations("ABC"))


def test_writing_the_same_bytes_again_is_a_no_op(s3: Any, store: S3Store, tmp_path: Path) -> None:
    path, sha = artefact(tmp_path, b"same")
    first = store.put_artifact(sha, "app.tar.gz", path)
    assert store.put_artifact(sha, "app.tar.gz", path) == first
    att = store.put_attestation(sha, "provenance", LINE)
    assert store.put_attestation(sha, "provenance", LINE) == att
    assert len(keys(s3)) == 2


def test_an_artefact_key_holding_other_bytes_is_refused(s3: Any, store: S3Store, tmp_path: Path) -> None:
    path, sha = artefact(tmp_path, b"ours")
    key = f"app/sha256/{sha}/artifact/app.tar.gz"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"theirs")
    with pytest.raises(StoreError, match=rf"^s3://{BUCKET}/{key} already holds different bytes; "
                                         "the store is write-once$"):
        store.put_artifact(sha, "app.tar.gz", path)
    assert read(s3, f"s3://{BUCKET}/{key}") == b"theirs"


def test_an_attestation_key_holding_other_bytes_is_refused(s3: Any, store: S3Store) -> None:
    sha = "a" * 64
    key = f"app/sha256/{sha}/provenance-{hashlib.sha256(LINE).hexdigest()}.intoto.jsonl"
    for other in (LINE + b"\n", LINE[:-1], b"x" * len(LINE)):
        s3.put_object(Bucket=BUCKET, Key=key, Body=other)
        with pytest.raises(StoreError, match="already holds different bytes; the store is write-once"):
            store.put_attestation(sha, "provenance", LINE)
        assert read(s3, f"s3://{BUCKET}/{key}") == other
        s3.delete_object(Bucket=BUCKET, Key=key)


def test_an_artefact_that_changed_since_it_was_hashed_is_refused(s3: Any, store: S3Store,
                                                                  tmp_path: Path) -> None:
    path, _ = artefact(tmp_path, b"new bytes")
    with pytest.raises(StoreError, match="no longer has sha256"):
        store.put_artifact(hashlib.sha256(b"old bytes").hexdigest(), "app.tar.gz", path)
    assert keys(s3) == []


def test_upload_progress_counts_every_byte_once(s3: Any, store: S3Store, tmp_path: Path) -> None:
    path, sha = artefact(tmp_path, os.urandom(200_000))
    sent: list[int] = []
    store.put_artifact(sha, "app.tar.gz", path, progress=sent.append)
    assert sum(sent) == 200_000 and all(n > 0 for n in sent)


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> int:
    """Send anything over 1 MiB as a multipart upload of 5 MiB parts (S3's smallest)."""
    monkeypatch.setattr(s3store, "MULTIPART_THRESHOLD", 1 * MiB)
    monkeypatch.setattr(s3store, "PART_SIZE", 5 * MiB)
    return 5 * MiB


def test_large_artefacts_go_up_in_parts(s3: Any, tmp_path: Path, small_parts: int) -> None:
    data = os.urandom(2 * small_parts + 123)
    path, sha = artefact(tmp_path, data)
    progress: list[int] = []
    store = S3Store.from_uri(f"s3://{BUCKET}/app", progress=progress.append)
    uri = store.put_artifact(sha, "big.bin", path)
    assert read(s3, uri) == data
    head = s3.head_object(Bucket=BUCKET, Key=uri.removeprefix(f"s3://{BUCKET}/"))
    assert head["ETag"].strip('"').endswith("-3")
    assert progress == [small_parts, small_parts, 123]
    assert pending_uploads(s3) == []
    # Again: found in place, not uploaded again.
    progress.clear()
    assert store.put_artifact(sha, "big.bin", path) == uri
    assert progress == []


def test_a_large_artefact_key_holding_other_bytes_is_refused(s3: Any, store: S3Store, tmp_path: Path,
                                                              small_parts: int) -> None:
    path, sha = artefact(tmp_path, os.urandom(small_parts + 1))
    s3.put_object(Bucket=BUCKET, Key=f"app/sha256/{sha}/artifact/big.bin", Body=b"theirs")
    with pytest.raises(StoreError, match="already holds different bytes; the store is write-once"):
        store.put_artifact(sha, "big.bin", path)
    assert pending_uploads(s3) == []


@pytest.mark.parametrize("racer_bytes", ["same", "other"])
def test_a_multipart_upload_losing_the_race_is_resolved_by_comparing(
        s3: Any, tmp_path: Path, small_parts: int, racer_bytes: str) -> None:
    """Another writer completes the key while our parts go up: the conditional completion notices."""
    data = os.urandom(small_parts + 1)
    path, sha = artefact(tmp_path, data)
    key = f"app/sha256/{sha}/artifact/big.bin"

    def racer(sent: int) -> None:
        if sent == small_parts:
            s3.put_object(Bucket=BUCKET, Key=key, Body=data if racer_bytes == "same" else b"theirs")

    store = S3Store.from_uri(f"s3://{BUCKET}/app", progress=racer)
    if racer_bytes == "same":
        store.put_artifact(sha, "big.bin", path)
    else:
        with pytest.raises(StoreError, match="already holds different bytes"):
            store.put_artifact(sha, "big.bin", path)
    assert pending_uploads(s3) == []
    assert read(s3, f"s3://{BUCKET}/{key}") == (data if racer_bytes == "same" else b"theirs")


def test_a_failed_multipart_upload_is_aborted(s3: Any, tmp_path: Path, small_parts: int) -> None:
    data = os.urandom(2 * small_parts)
    path, sha = artefact(tmp_path, data)

    def interrupted(sent: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        S3Store.from_uri(f"s3://{BUCKET}/app", progress=interrupted).put_artifact(sha, "big.bin", path)
    assert keys(s3) == []
    assert pending_uploads(s3) == []

    # The file changed between hashing and uploading: found at the end, nothing completed.
    wrong = hashlib.sha256(b"what it was").hexdigest()
    with pytest.raises(StoreError, match="no longer has sha256"):
        S3Store.from_uri(f"s3://{BUCKET}/app").put_artifact(wrong, "big.bin", path)
    assert keys(s3) == []
    assert pending_uploads(s3) == []


@pytest.mark.parametrize("mode", ["GOVERNANCE", "COMPLIANCE"])
def test_retention_on_an_object_lock_bucket(aws_env: MotoEnv, s3: Any, mode: str) -> None:
    s3.create_bucket(Bucket="locked-store", ObjectLockEnabledForBucket=True,
                     CreateBucketConfiguration={"LocationConstraint": aws_env.region})
    store = S3Store.from_uri("s3://locked-store", retain_days=30, retention_mode=mode)  # type: ignore[arg-type]
    before = dt.datetime.now(dt.UTC)
    uri = store.put_attestation("b" * 64, "provenance", LINE)
    head = s3.head_object(Bucket="locked-store", Key=uri.removeprefix("s3://locked-store/"))
    assert head["ObjectLockMode"] == mode
    until = head["ObjectLockRetainUntilDate"]
    assert before + dt.timedelta(days=30) - dt.timedelta(minutes=1) <= until
    assert until <= dt.datetime.now(dt.UTC) + dt.timedelta(days=30, minutes=1)
    assert store.put_attestation("b" * 64, "provenance", LINE) == uri


def test_retention_on_a_bucket_without_object_lock_is_refused(s3: Any) -> None:
    store = S3Store.from_uri(f"s3://{BUCKET}/app", retain_days=30)
    with pytest.raises(StoreError, match=f"^bucket {BUCKET} does not have Object Lock enabled"):
        store.put_attestation("b" * 64, "provenance", LINE)
    assert keys(s3) == []


@pytest.mark.parametrize("name", [
    "../evil", "a/../../b", "/etc/passwd", "a//b", "./a", "a/./b", "a/", ".", "a\\b", "C:/x", "a\0b", "",
])
def test_subject_names_that_climb_out_are_refused(s3: Any, store: S3Store, tmp_path: Path, name: str) -> None:
    path, sha = artefact(tmp_path, b"x")
    with pytest.raises(StoreError, match="cannot be stored"):
        store.put_artifact(sha, name, path)
    with pytest.raises(StoreError):
        store.open_artifact(f"sha256/{sha}/artifact/{name}")
    assert keys(s3) == []


@pytest.mark.parametrize(("uri", "options"), [
    ("s3://", {}), ("s3://A_Bucket/x", {}), ("s3://ok-bucket/../x", {}),
    ("s3://ok-bucket", {"retain_days": 0}), ("s3://ok-bucket", {"retain_days": "7"}),
    ("s3://ok-bucket", {"retain_days": 7, "retention_mode": "LEGAL_HOLD"}),
])
def test_bad_store_uris_and_options_are_refused(uri: str, options: dict[str, Any]) -> None:
    with pytest.raises(StoreError):
        S3Store.from_uri(uri, **options)


def test_no_such_bucket_is_a_store_error(aws_env: MotoEnv, tmp_path: Path) -> None:
    store = S3Store.from_uri("s3://no-such-bucket/app")
    path, sha = artefact(tmp_path, b"x")
    with pytest.raises(StoreError, match=r"^bucket no-such-bucket does not exist: create it or fix"):
        store.put_artifact(sha, "app.tar.gz", path)
    with pytest.raises(StoreError, match=r"^bucket no-such-bucket does not exist"):
        list(store.all_attestations())


def test_a_missing_object_is_a_store_error(s3: Any) -> None:
    with pytest.raises(StoreError, match=rf"^s3://{BUCKET}/app/nothing does not exist$"):
        list(stream_object(f"s3://{BUCKET}/app/nothing"))
    with pytest.raises(StoreError, match="names no object"):
        list(stream_object(f"s3://{BUCKET}/"))


def test_stream_object_yields_chunks(s3: Any) -> None:
    data = os.urandom(300_000)
    s3.put_object(Bucket=BUCKET, Key="blob", Body=data)
    seen: list[int] = []
    chunks = list(stream_object(f"s3://{BUCKET}/blob", chunk_size=100_000, progress=seen.append))
    assert b"".join(chunks) == data and len(chunks) == 3
    assert sum(seen) == len(data)


def test_oversized_evidence_is_not_read(s3: Any, store: S3Store, monkeypatch: pytest.MonkeyPatch) -> None:
    store.put_attestation("c" * 64, "provenance", LINE)
    monkeypatch.setattr(s3store, "MAX_EVIDENCE_BYTES", len(LINE) - 1)
    [(_, refused)] = list(store.attestations("c" * 64))  # that object's rejection, not the whole store's
    assert isinstance(refused, LimitExceeded) and "attestation files over" in str(refused)


def test_access_denied_names_the_action(aws_env: MotoEnv, s3: Any, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    limited = aws_env.credentials_allowing("s3:GetObject", "s3:ListBucket")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", limited["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", limited["aws_secret_access_key"])
    store = S3Store.from_uri(f"s3://{BUCKET}/app")
    path, sha = artefact(tmp_path, b"x")
    with aws_env.iam_enforced():
        assert list(store.attestations(sha)) == []
        with pytest.raises(RemoteError, match=rf"^AccessDenied on s3:PutObject for s3://{BUCKET}/app/sha256/{sha}/"
                                              r"artifact/app.tar.gz: the role needs s3:PutObject on it"):
            store.put_artifact(sha, "app.tar.gz", path)


def test_unreachable_endpoint_is_a_remote_error(aws_env: MotoEnv, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    store = S3Store.from_uri(f"s3://{BUCKET}/app")
    assert store.client.meta.endpoint_url == endpoint
    with pytest.raises(RemoteError, match=rf"^cannot reach S3 at {endpoint}: "):
        store.put_attestation("d" * 64, "provenance", LINE)
    with pytest.raises(RemoteError, match=rf"^cannot reach S3 at {endpoint}: "):
        list(stream_object(f"s3://{BUCKET}/x"))


def test_missing_credentials_say_how_to_provide_them(aws_env: MotoEnv,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(RemoteError, match=r"^no usable AWS credentials for s3:ListBucket on .*: provide AWS"):
        list(S3Store.from_uri(f"s3://{BUCKET}/app").all_attestations())


def test_a_listed_object_replaced_before_it_is_read_is_not_read_as_listed(s3: Any, store: S3Store,
                                                                           tmp_path: Path) -> None:
    """An audit remembers what it hashed by the stamp the listing gave: the read asks for the listed object (its
    ETag), so bytes put there since are refused (:class:`s3store.Changed`), never hashed under the old stamp; an
    attestation so replaced is that file's problem, not the store's."""
    path, sha = artefact(tmp_path, b"the bytes listed")
    store.put_artifact(sha, "app.tar.gz", path)
    store.put_attestation(sha, "provenance", LINE)
    ((_, _, opener, stamp),) = store.listed_artifacts()
    ((_, _, read),) = store.listed_attestations()
    assert stamp is not None and opener().read() == b"the bytes listed"  # unchanged: read as listed
    for key in keys(s3):
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"other bytes")
    with pytest.raises(s3store.Changed, match="changed while it was read"):
        opener()
    assert "changed while it was read" in str(read())


def _listing(size: str = "10", modified: str = "2024-01-01T00:00:00.000Z") -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            "<Name>bkt1</Name><Prefix>app/</Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys>"
            f"<IsTruncated>false</IsTruncated><Contents><Key>app/sha256/{'a' * 64}/provenance-x.intoto.jsonl</Key>"
            f"<LastModified>{modified}</LastModified><ETag>\"e\"</ETag><Size>{size}</Size></Contents>"
            "</ListBucketResult>").encode()


@pytest.mark.parametrize("body", [b"<html><body>captive portal</body></html>", b"", _listing(size="abc"),
                                  _listing(modified="yesterday")],
                         ids=["html", "empty", "size-not-a-number", "time-not-a-time"])
def test_an_answer_that_is_not_s3s_is_a_remote_failure_never_an_empty_store(aws_env: MotoEnv, body: bytes,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A 200 that is no ListBucketResult listed nothing (status said nothing was deployed), and one botocore cannot
    parse was an internal error: both are RemoteError (exit 4: retry, or fix the endpoint)."""
    with answering(body, "application/xml") as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        with pytest.raises(RemoteError, match="is not one S3 gives"):
            list(stores.from_uri("s3://bkt1/app").listed_attestations())


def test_an_object_gone_or_archived_since_the_listing_is_that_files_problem(s3: Any, store: S3Store,
                                                                             tmp_path: Path) -> None:
    """One attestation S3 will not give (deleted since it was listed, or archived to Glacier: a 403 that is no
    permission) stopped the whole status, gate or audit, called an access denial; it is that file's rejection."""
    _, sha = artefact(tmp_path, b"bytes")
    store.put_attestation(sha, "provenance", LINE)
    ((_, _, read),) = store.listed_attestations()
    key = next(k for k in keys(s3) if "provenance" in k)
    s3.put_object(Bucket=BUCKET, Key=key, Body=LINE, StorageClass="GLACIER")
    ((_, _, archived),) = store.listed_attestations()
    assert "is archived" in str(archived())
    s3.delete_object(Bucket=BUCKET, Key=key)
    gone = read()
    assert not isinstance(gone, bytes) and "does not exist" in str(gone)
