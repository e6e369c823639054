"""verify.digests: streaming multi-hash against hashlib, blake3 and sha256sum."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
from pathlib import Path

import blake3
import pytest

from tests._modes import file_modes_enforced
from verify.digests import hash_file, hash_stream, new_hasher
from verify.errors import InputError

CHUNK = 4096


def _data(size: int) -> bytes:
    # not a repeating short pattern, so an off-by-one chunk boundary changes the digest
    return hashlib.shake_256(b"attest-%d" % size).digest(size) if size else b""


def _expected(data: bytes) -> dict[str, str]:
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "blake3": blake3.blake3(data).hexdigest(),
        "sha384": hashlib.sha384(data).hexdigest(),
        "sha512": hashlib.sha512(data).hexdigest(),
    }


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 7])
def test_hash_file_matches_hashlib_and_blake3(tmp_path: Path, size: int) -> None:
    data = _data(size)
    path = tmp_path / "artefact.bin"
    path.write_bytes(data)
    expected = _expected(data)
    assert hash_file(path, chunk_size=CHUNK) == {"sha256": expected["sha256"], "blake3": expected["blake3"]}
    every = ("blake3", "sha256", "sha384", "sha512")
    assert hash_file(path, every, chunk_size=CHUNK) == {name: expected[name] for name in every}
    assert hash_file(path, ["sha512"], chunk_size=CHUNK) == {"sha512": expected["sha512"]}


def test_hash_file_default_chunk_size_matches_sha256sum(tmp_path: Path) -> None:
    data = _data(3 * 1024 * 1024 + 5)
    path = tmp_path / "artefact with space.bin"
    path.write_bytes(data)
    done = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True)
    assert hash_file(path, ["sha256"])["sha256"] == done.stdout.split()[0]


@pytest.mark.parametrize("size", [0, 1, CHUNK, 3 * CHUNK + 7])
def test_progress_totals_the_file_size(tmp_path: Path, size: int) -> None:
    path = tmp_path / "a"
    path.write_bytes(_data(size))
    seen: list[int] = []
    hash_file(path, progress=seen.append, chunk_size=CHUNK)
    assert sum(seen) == size
    assert all(0 < n <= CHUNK for n in seen)
    assert len(seen) == -(-size // CHUNK)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"cannot read .*nope\.bin: No such file or directory"):
        hash_file(tmp_path / "nope.bin")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        hash_file(tmp_path)
    assert str(info.value) == f"{tmp_path} is not a regular file"


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(b"x")
    path.chmod(0)
    with file_modes_enforced(), pytest.raises(InputError, match=r"cannot read .*secret: Permission denied"):
        hash_file(path)


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    # regression: opening a FIFO for reading blocked until a writer came (forever, in a pipeline)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    outcome: list[BaseException | dict[str, str]] = []

    def run() -> None:
        try:
            outcome.append(hash_file(fifo))
        except BaseException as e:  # reported to the test thread below
            outcome.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=10)
    if thread.is_alive():
        # unblock the reader so the thread can end, then fail
        with fifo.open("wb"):
            pass
        thread.join(timeout=10)
        pytest.fail("hash_file blocked on a FIFO")
    assert len(outcome) == 1 and isinstance(outcome[0], InputError), outcome
    assert str(outcome[0]) == f"{fifo} is not a regular file"


def test_character_device_is_refused() -> None:
    with pytest.raises(InputError, match="/dev/null is not a regular file"):
        hash_file(Path("/dev/null"))


def test_file_appended_while_hashed(tmp_path: Path) -> None:
    path = tmp_path / "growing.bin"
    path.write_bytes(_data(4 * CHUNK))

    def append(_: int) -> None:
        with path.open("ab") as f:
            f.write(b"more")

    with pytest.raises(InputError, match=r"growing\.bin changed while it was being hashed; hash it again"):
        hash_file(path, progress=append, chunk_size=CHUNK)


def test_file_truncated_while_hashed(tmp_path: Path) -> None:
    path = tmp_path / "shrinking.bin"
    path.write_bytes(_data(4 * CHUNK))
    with pytest.raises(InputError, match="changed while it was being hashed"):
        hash_file(path, progress=lambda _: os.truncate(path, CHUNK), chunk_size=CHUNK)


@pytest.mark.parametrize("algorithms", [("sha256", "md5"), ("sha1",), ("SHA256",), ("sha3_256",)])
def test_unknown_algorithm(tmp_path: Path, algorithms: tuple[str, ...]) -> None:
    path = tmp_path / "a"
    path.write_bytes(b"x")
    bad = next(a for a in algorithms if a != "sha256")
    with pytest.raises(ValueError, match=f"unsupported digest algorithm '{bad}'"):
        hash_file(path, algorithms)
    with pytest.raises(ValueError, match=f"unsupported digest algorithm '{bad}'"):
        hash_stream([b"x"], algorithms)
    with pytest.raises(ValueError, match=f"unsupported digest algorithm '{bad}'"):
        new_hasher(bad)


def test_no_algorithm(tmp_path: Path) -> None:
    path = tmp_path / "a"
    path.write_bytes(b"x")
    with pytest.raises(ValueError, match="no digest algorithm asked for"):
        hash_file(path, ())
    with pytest.raises(ValueError, match="no digest algorithm asked for"):
        hash_stream([b"x"], [])


def test_hash_stream() -> None:
    data = _data(10_000)
    chunks = [data[i : i + 333] for i in range(0, len(data), 333)]
    assert hash_stream(chunks, ["sha256", "blake3"]) == {
        "sha256": hashlib.sha256(data).hexdigest(),
        "blake3": blake3.blake3(data).hexdigest(),
    }
    assert hash_stream(iter([memoryview(data)]), ["sha384"]) == {"sha384": hashlib.sha384(data).hexdigest()}
    assert hash_stream([], ["sha256"]) == {"sha256": hashlib.sha256(b"").hexdigest()}


def test_new_hasher_is_fresh() -> None:
    first, second = new_hasher("blake3"), new_hasher("blake3")
    first.update(b"a")
    assert second.hexdigest() == blake3.blake3(b"").hexdigest()
    assert first.hexdigest() == blake3.blake3(b"a").hexdigest()


def test_cancel_stops_hashing(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(_data(8 * CHUNK))
    cancel = threading.Event()
    seen: list[int] = []

    def progress(n: int) -> None:
        seen.append(n)
        cancel.set()

    with pytest.raises(InputError, match=r"hashing .*big\.bin was cancelled"):
        hash_file(path, progress=progress, chunk_size=CHUNK, cancel=cancel)
    assert seen == [CHUNK]  # stopped at the next chunk, not at the end of the file
    assert (
        hash_file(path, chunk_size=CHUNK, cancel=threading.Event())["sha256"]
        == hashlib.sha256(_data(8 * CHUNK)).hexdigest()
    )


def test_read_error_mid_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # fault injection at the I/O boundary (a disk error on the second read); hashing itself is real
    import errno

    import verify.digests as digests

    path = tmp_path / "bad-disk.bin"
    path.write_bytes(_data(3 * CHUNK))
    real = digests._read_into
    calls = []

    def failing(f: object, buf: bytearray) -> int:
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.EIO, "Input/output error")
        return real(f, buf)  # type: ignore[arg-type]

    monkeypatch.setattr(digests, "_read_into", failing)
    with pytest.raises(InputError, match=r"cannot read .*bad-disk\.bin: Input/output error"):
        hash_file(path, chunk_size=CHUNK)
