"""The blake3 index of a store (``blake3/<hex>`` naming the artefact's sha256), on a directory and on S3 alike."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import blake3
import pytest

from attest import stores
from attest.errors import RemoteError, StoreError
from attest.signing import write_and_publish
from attest.stores import Store
from tests.conftest_aws import MotoEnv

BUCKET = "attest-index"
LINE = b'{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}\n'
DATA = b"the artefact"
SHA256 = hashlib.sha256(DATA).hexdigest()
BLAKE3 = blake3.blake3(DATA).hexdigest()


def _local(tmp_path: Path) -> tuple[Store, Callable[[str, bytes], None]]:
    root = tmp_path / "store"

    def plant(key: str, data: bytes) -> None:
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(data)

    return stores.from_uri(str(root)), plant


def _s3(aws_env: MotoEnv) -> tuple[Store, Callable[[str, bytes], None]]:
    client = aws_env.client("s3")
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": aws_env.region})

    def plant(key: str, data: bytes) -> None:
        client.put_object(Bucket=BUCKET, Key=f"app/{key}", Body=data)

    return stores.from_uri(f"s3://{BUCKET}/app"), plant


@pytest.fixture(params=["directory", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Store, Callable[[str, bytes], None]]:
    if request.param == "directory":
        return _local(tmp_path)
    aws_env: MotoEnv = request.getfixturevalue("aws_env")
    return _s3(aws_env)


def test_the_index_names_the_sha256_folder_of_an_artefact(backend: tuple[Store, Any]) -> None:
    store, plant = backend
    plant("sha256/" + "0" * 64 + "/junk.txt", b"x")  # the store exists, but has no index yet
    assert store.has_index() is False
    assert store.sha256_for(BLAKE3) is None
    store.put_attestation(SHA256, "provenance", LINE)
    uri = store.put_index(BLAKE3, SHA256)
    assert uri.endswith(f"blake3/{BLAKE3}")
    assert store.has_index() is True
    assert store.sha256_for(BLAKE3) == SHA256
    assert [data for _, data in store.attestations(SHA256)] == [LINE]
    # again, with the same bytes: a no-op; another sha256 for this blake3 is refused (write-once)
    store.put_index(BLAKE3, SHA256)
    with pytest.raises(StoreError, match="already holds different bytes"):
        store.put_index(BLAKE3, "f" * 64)
    assert store.sha256_for(BLAKE3) == SHA256


def test_a_statement_published_after_the_build_needs_the_sha256_and_writes_no_index(
        backend: tuple[Store, Any], tmp_path: Path) -> None:
    """VSAs, approvals and releases go under the artefact's sha256; only the build (whose role may) indexes."""
    store, plant = backend
    plant("sha256/" + "0" * 64 + "/junk.txt", b"x")
    with pytest.raises(StoreError, match="files attestations under the artefact's sha256, and it is not known"):
        write_and_publish(LINE, output=tmp_path / "vsa.intoto.jsonl", store=store.uri, kind="vsa",
                          artifacts=[{"blake3": BLAKE3}])
    [uri] = write_and_publish(LINE, output=tmp_path / "vsa.intoto.jsonl", store=store.uri, kind="vsa",
                              artifacts=[{"sha256": SHA256, "blake3": BLAKE3}])
    assert f"sha256/{SHA256}/vsa-" in uri
    assert store.has_index() is False and store.sha256_for(BLAKE3) is None


@pytest.mark.parametrize("entry", [b"", b"not hex\n", SHA256.upper().encode(), SHA256.encode() + b"\n\n",
                                   SHA256[:63].encode(), SHA256.encode() * 2],
                         ids=["empty", "not-hex", "upper-case", "two-newlines", "short", "long"])
def test_an_index_entry_that_is_not_one_is_no_entry(backend: tuple[Store, Any], entry: bytes) -> None:
    """Junk in an untrusted store gives no hint: the verifier then finds the evidence by sha256."""
    store, plant = backend
    plant(f"blake3/{BLAKE3}", entry)
    assert store.has_index() is True
    assert store.sha256_for(BLAKE3) is None


def test_a_lookup_by_a_digest_that_is_not_hex_finds_nothing(backend: tuple[Store, Any]) -> None:
    store, plant = backend
    plant(f"blake3/{BLAKE3}", SHA256.encode() + b"\n")
    assert store.sha256_for("../" + BLAKE3[3:]) is None
    assert store.sha256_for(BLAKE3.upper()) is None
    with pytest.raises(StoreError, match="is not a lower-case hex blake3 digest"):
        store.put_index("../x", SHA256)


def test_an_index_entry_that_is_a_symlink_or_a_directory_is_no_entry(tmp_path: Path) -> None:
    store, plant = _local(tmp_path)
    plant("elsewhere", SHA256.encode() + b"\n")
    (tmp_path / "store" / "blake3").mkdir()
    (tmp_path / "store" / "blake3" / BLAKE3).symlink_to(tmp_path / "store" / "elsewhere")
    assert store.sha256_for(BLAKE3) is None
    other = "ab" * 32
    (tmp_path / "store" / "blake3" / other).mkdir()
    assert store.sha256_for(other) is None


def test_the_local_output_is_written_only_once_the_attachment_is_done(backend: tuple[Store, Any],
                                                                      tmp_path: Path) -> None:
    """An image's VSA attached to it in its registry: a registry that refuses leaves no local VSA that looks like a
    success (a rerun completes what was published)."""
    store, _ = backend
    attached: list[bytes] = []

    def refused(line: bytes) -> str:
        raise RemoteError("registry answered 405 to uploading a blob")

    with pytest.raises(RemoteError):
        write_and_publish(LINE, output=tmp_path / "vsa.intoto.jsonl", store=store.uri, kind="vsa",
                          artifacts=[{"sha256": SHA256}], attach=refused)
    assert not (tmp_path / "vsa.intoto.jsonl").exists()

    def accepted(line: bytes) -> str:
        attached.append(line)
        return "oci://registry/app@sha256:" + "1" * 64

    published = write_and_publish(LINE, output=tmp_path / "vsa.intoto.jsonl", store=store.uri, kind="vsa",
                                  artifacts=[{"sha256": SHA256}], attach=accepted)
    assert attached == [LINE] and published[-1].startswith("oci://registry/app@")
    assert (tmp_path / "vsa.intoto.jsonl").read_bytes() == LINE
