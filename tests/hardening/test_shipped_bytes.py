"""What is signed is what is shipped: the bytes a store receives are the bytes that were hashed.

The local store hashes while it copies; the S3 store hashes what it sends (the whole body, or
part by part for a multipart upload) and aborts the upload when the digest changed; hashing
refuses a file that changes under it (size, mtime or ctime).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from attest.errors import StoreError
from attest.stores import artifact_key
from attest.stores import s3 as s3store
from attest.stores.local import LocalStore
from attest.stores.s3 import S3Store
from verify.digests import hash_file
from verify.errors import InputError

DATA = bytes(range(256)) * 4096  # 1 MiB


def _artefact(tmp_path: Path, data: bytes = DATA) -> tuple[Path, str]:
    path = tmp_path / "app.tar.gz"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_local_store_object_holds_exactly_the_hashed_bytes(tmp_path: Path) -> None:
    source, sha = _artefact(tmp_path)
    digests = hash_file(source, ("sha256", "blake3"))
    assert digests["sha256"] == sha
    uri = LocalStore(tmp_path / "store").put_artifact(sha, "app.tar.gz", source)
    assert hashlib.sha256(Path(uri).read_bytes()).hexdigest() == digests["sha256"]


def test_local_store_refuses_an_artefact_changed_after_hashing(tmp_path: Path) -> None:
    source, sha = _artefact(tmp_path)
    source.write_bytes(DATA[:-1] + b"X")  # same size, other bytes
    store = tmp_path / "store"
    with pytest.raises(StoreError, match="changed after it was hashed"):
        LocalStore(store).put_artifact(sha, "app.tar.gz", source)
    assert _leftovers(store) == []  # no object, no temporary file


def test_local_store_refuses_an_artefact_changed_while_copied(tmp_path: Path) -> None:
    source, sha = _artefact(tmp_path, DATA * 10)
    store = tmp_path / "store"

    def tamper(done: int) -> None:  # after the first chunk is copied, the rest changes
        with source.open("r+b") as f:
            f.seek(len(DATA) * 9)
            f.write(b"tampered")

    with pytest.raises(StoreError, match="changed after it was hashed"):
        LocalStore(store).put_artifact(sha, "app.tar.gz", source, progress=tamper)
    assert _leftovers(store) == []


def test_local_store_refuses_a_source_swapped_for_a_fifo(tmp_path: Path) -> None:
    source, sha = _artefact(tmp_path)
    source.unlink()
    os.mkfifo(source)
    with pytest.raises(StoreError, match="is no longer a regular file"):
        LocalStore(tmp_path / "store").put_artifact(sha, "app.tar.gz", source)


class _FakeS3:
    """Records the S3 calls of a put; checks every body it is sent against its stated checksum."""

    def __init__(self, on_part: Any = None) -> None:
        self.calls: list[str] = []
        self.objects: dict[str, bytes] = {}
        self.parts: list[bytes] = []
        self.on_part = on_part

    def put_object(self, *, Key: str, Body: Any, ChecksumSHA256: str, **_: Any) -> dict[str, Any]:
        self.calls.append("put_object")
        data = Body.read()
        import base64

        assert base64.b64encode(hashlib.sha256(data).digest()).decode() == ChecksumSHA256
        self.objects[Key] = data
        return {}

    def head_object(self, **_: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        self.calls.append("head_object")
        raise ClientError({"Error": {"Code": "404"}}, "HeadObject")

    def create_multipart_upload(self, **_: Any) -> dict[str, Any]:
        self.calls.append("create_multipart_upload")
        return {"UploadId": "u1"}

    def upload_part(self, *, Body: bytes, PartNumber: int, **_: Any) -> dict[str, Any]:
        self.calls.append("upload_part")
        self.parts.append(Body)
        if self.on_part is not None:
            self.on_part(PartNumber)
        return {"ETag": f"e{PartNumber}"}

    def complete_multipart_upload(self, *, Key: str, **_: Any) -> dict[str, Any]:
        self.calls.append("complete_multipart_upload")
        self.objects[Key] = b"".join(self.parts)
        return {}

    def abort_multipart_upload(self, **_: Any) -> dict[str, Any]:
        self.calls.append("abort_multipart_upload")
        return {}


def test_s3_store_sends_exactly_the_hashed_bytes(tmp_path: Path) -> None:
    source, sha = _artefact(tmp_path)
    client = _FakeS3()
    S3Store("attest-store", "app", client=client).put_artifact(sha, "app.tar.gz", source)
    assert client.objects == {f"app/{artifact_key(sha, 'app.tar.gz')}": DATA}


def test_s3_store_refuses_an_artefact_changed_after_hashing(tmp_path: Path) -> None:
    source, sha = _artefact(tmp_path)
    source.write_bytes(DATA[:-1] + b"X")
    client = _FakeS3()
    with pytest.raises(StoreError, match="no longer has sha256"):
        S3Store("attest-store", client=client).put_artifact(sha, "app.tar.gz", source)
    assert client.calls == []  # refused before anything was sent


def test_s3_multipart_upload_of_a_file_changed_mid_upload_is_aborted(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3store, "MULTIPART_THRESHOLD", 64 * 1024)
    monkeypatch.setattr(s3store, "PART_SIZE", 256 * 1024)
    source, sha = _artefact(tmp_path)

    def tamper(number: int) -> None:
        if number == 1:
            with source.open("r+b") as f:
                f.seek(len(DATA) - 10)
                f.write(b"tampered!!")

    client = _FakeS3(on_part=tamper)
    with pytest.raises(StoreError, match="no longer has sha256"):
        S3Store("attest-store", client=client).put_artifact(sha, "app.tar.gz", source)
    assert "complete_multipart_upload" not in client.calls
    assert client.calls[-1] == "abort_multipart_upload"
    assert client.objects == {}


def test_s3_multipart_upload_sends_exactly_the_hashed_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3store, "MULTIPART_THRESHOLD", 64 * 1024)
    monkeypatch.setattr(s3store, "PART_SIZE", 256 * 1024)
    source, sha = _artefact(tmp_path)
    client = _FakeS3()
    S3Store("attest-store", client=client).put_artifact(sha, "app.tar.gz", source)
    assert client.calls.count("upload_part") == 4 and client.calls[-1] == "complete_multipart_upload"
    assert hashlib.sha256(client.objects[artifact_key(sha, "app.tar.gz")]).hexdigest() == sha


# --- hashing a file that changes ------------------------------------------------------------------------


def test_a_same_size_rewrite_with_the_mtime_set_back_is_caught(tmp_path: Path) -> None:
    path, _ = _artefact(tmp_path, DATA * 4)
    before = path.stat()

    def rewrite(done: int) -> None:  # rewrite bytes already hashed, then put the mtime back: only ctime tells
        with path.open("r+b") as f:
            f.write(b"X" * 16)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))

    with pytest.raises(InputError, match="changed while it was being hashed"):
        hash_file(path, ("sha256",), progress=rewrite, chunk_size=len(DATA))


def test_a_file_growing_while_hashed_is_caught(tmp_path: Path) -> None:
    path, _ = _artefact(tmp_path, DATA * 2)

    def grow(done: int) -> None:
        with path.open("ab") as f:
            f.write(DATA)

    with pytest.raises(InputError, match="changed while it was being hashed"):
        hash_file(path, ("sha256", "blake3"), progress=grow, chunk_size=len(DATA))
