"""Streaming multi-hash: sha256 and blake3 of a file in one read, with flat memory.

The file is read once, in fixed-size chunks, into two alternating buffers:
while one chunk is being hashed (each algorithm on its own thread; hashlib and
blake3 both release the GIL, and blake3 spreads one chunk over every core) the
next chunk is read into the other buffer. Memory is two buffers whatever the
file size. A file that changes while it is hashed (its size, mtime or ctime
differ before and after, or it grows past its starting size) is an error, not a
silent mismatch: the digest would name bytes that never existed together.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from verify.errors import InputError

__all__ = ["ACCEPTED", "CHEAPEST_FIRST", "CHUNK_SIZE", "KNOWN", "WEAK", "DigestSet", "hash_file", "hash_stream",
           "new_hasher"]

#: Algorithms attest computes and accepts as evidence of identity, strongest first.
ACCEPTED = ("blake3", "sha256", "sha512", "sha384")
#: Algorithms attest can compute.
KNOWN = frozenset({"blake3", "sha256", "sha384", "sha512"})
#: Algorithms that never count as a match on their own.
WEAK = frozenset({"md5", "sha1"})
#: The order in which a verifier prefers algorithms: cheapest to compute first (blake3 spreads one read over
#: every core; sha256 has instructions of its own on current CPUs, which sha512 and sha384 lack).
CHEAPEST_FIRST = ("blake3", "sha256", "sha512", "sha384")

#: A Sigstore message signature's ``messageDigest.algorithm`` (absent: SHA2_256) and the digest it names.
MESSAGE_DIGESTS = {"SHA2_256": "sha256", "SHA2_384": "sha384", "SHA2_512": "sha512"}

CHUNK_SIZE = 8 * 1024 * 1024
#: blake3 alone, on files at least this large, is computed over a memory map by blake3's own threads.
MMAP_THRESHOLD = 64 * 1024 * 1024

Progress = Callable[[int], None]


@dataclass(frozen=True)
class DigestSet:
    """The artefact's digests, all computed from one read of its bytes (or given as ``sha256:HEX``)."""

    digests: Mapping[str, str]
    head: bytes | None = None
    """The first bytes of the artefact (None when only a digest was given): what kind of message it is."""

    def __post_init__(self) -> None:
        if not self.digests:
            raise ValueError("a digest set needs at least one digest")

    @property
    def sha256(self) -> str | None:
        return self.digests.get("sha256")

    def short(self) -> str:
        """For messages: ``sha256:0123456789abcdef..., blake3:...``."""
        return ", ".join(f"{a}:{h[:16]}..." for a, h in self.digests.items())

    def as_dict(self) -> dict[str, str]:
        return dict(self.digests)


def new_hasher(name: str) -> Any:
    """A fresh hash object for ``name`` (blake3 multithreaded)."""
    if name == "blake3":
        import blake3

        return blake3.blake3(max_threads=blake3.blake3.AUTO)
    if name in KNOWN:
        return hashlib.new(name)
    raise ValueError(f"unsupported digest algorithm {name!r}")


def _check_algorithms(algorithms: Sequence[str]) -> None:
    if not algorithms:
        raise ValueError("no digest algorithm asked for")
    for name in algorithms:
        if name not in KNOWN:
            raise ValueError(f"unsupported digest algorithm {name!r}")


def hash_stream(chunks: Iterable[bytes | memoryview], algorithms: Sequence[str], *,
                head: bytearray | None = None, cancel: threading.Event | None = None) -> dict[str, str]:
    """Hash an iterable of chunks (e.g. an S3 body) with every algorithm, in one pass; ``head`` and ``cancel``
    as for :func:`hash_file`."""
    _check_algorithms(algorithms)
    hashers = {name: new_hasher(name) for name in algorithms}
    for chunk in chunks:
        if cancel is not None and cancel.is_set():
            raise InputError("hashing the artefact was cancelled")
        if head is not None and len(head) < HEAD_SIZE:
            head.extend(bytes(chunk[:HEAD_SIZE - len(head)]))
        for h in hashers.values():
            h.update(chunk)
    return {name: h.hexdigest() for name, h in hashers.items()}


def _read_into(f: BinaryIO, buf: bytearray) -> int:
    view = memoryview(buf)
    total = 0
    while total < len(buf):
        n = f.readinto(view[total:])  # type: ignore[attr-defined]
        if not n:
            break
        total += n
    return total


#: Bytes of the start of a file kept by the one read (``head``): enough to tell what kind of message it is.
HEAD_SIZE = 16


def hash_file(path: Path, algorithms: Sequence[str] = ("sha256", "blake3"), *,
              progress: Progress | None = None, chunk_size: int = CHUNK_SIZE,
              cancel: threading.Event | None = None, head: bytearray | None = None) -> dict[str, str]:
    """Digest ``path`` with every algorithm in ``algorithms``, reading it once.

    Raises :class:`InputError` if the file cannot be read, is not a regular
    file, or changes while it is being read. Setting ``cancel`` stops the
    work early (with :class:`InputError`) when the result is no longer needed.
    ``head``, if given, receives the first :data:`HEAD_SIZE` bytes of what was hashed.
    """
    _check_algorithms(algorithms)
    fd, before = _open_regular(path)
    if list(algorithms) == ["blake3"] and before.st_size >= MMAP_THRESHOLD:
        try:
            digest = _blake3_mapped(fd, path, before, progress, cancel, head)
        finally:
            os.close(fd)
        _same_file(path, before)
        return {"blake3": digest}
    with open(fd, "rb", buffering=0) as f:
        hashers = [new_hasher(name) for name in algorithms]
        _hash_chunks(f, path, before, hashers, chunk_size=chunk_size, progress=progress, cancel=cancel, head=head)
        after = os.fstat(f.fileno())
    if _version(after) != _version(before):
        raise _changed(path)
    _same_file(path, before)
    return {name: h.hexdigest() for name, h in zip(algorithms, hashers, strict=True)}


def _open_regular(path: Path) -> tuple[int, os.stat_result]:
    """A read-only descriptor of ``path`` and its status; :class:`InputError` unless it is a readable regular file."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just below)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from e
    before = os.fstat(fd)
    if not _is_regular(before.st_mode):
        os.close(fd)
        raise InputError(f"{path} is not a regular file")
    return fd, before


def _hash_chunks(f: BinaryIO, path: Path, before: os.stat_result, hashers: Sequence[Any], *, chunk_size: int,
                 progress: Progress | None, cancel: threading.Event | None, head: bytearray | None) -> None:
    """Feed each chunk of ``f`` to every hasher (one thread each) while the next is read into the other buffer."""
    buffers = (bytearray(chunk_size), bytearray(chunk_size))
    with ThreadPoolExecutor(max_workers=len(hashers), thread_name_prefix="attest-hash") as pool:
        try:
            total = n = _read_into(f, buffers[0])
            if head is not None:
                head[:] = buffers[0][:min(n, HEAD_SIZE)]
            which = 0
            while n:
                if cancel is not None and cancel.is_set():
                    raise InputError(f"hashing {path} was cancelled")
                view = memoryview(buffers[which])[:n]
                pending = [pool.submit(h.update, view) for h in hashers]
                which ^= 1
                next_n = _read_into(f, buffers[which])
                for future in pending:
                    future.result()
                view.release()
                if progress is not None:
                    progress(n)
                n = next_n
                total += n
                if total > before.st_size:  # still growing: without this, a file written as fast
                    raise _changed(path)    # as it is read would be read forever
        except OSError as e:
            raise InputError(f"cannot read {path}: {e.strerror}") from e


#: Bytes of a mapped file given to blake3 at a time (its threads split each slice), between progress calls.
MMAP_SLICE = 256 * 1024 * 1024


def _blake3_mapped(fd: int, path: Path, before: os.stat_result, progress: Progress | None,
                   cancel: threading.Event | None, head: bytearray | None) -> str:
    """blake3 alone: the open file mapped and hashed by blake3's own threads (the speed of b3sum).

    The mapping is of the descriptor already open (the file is opened once), and it is the page
    cache itself, so memory does not grow with the file. A file that changes meanwhile is still an
    error (size, mtime and ctime are compared afterwards).
    """
    import mmap

    hasher = new_hasher("blake3")
    try:
        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mapped, memoryview(mapped) as view:
            if head is not None:
                head[:] = view[:HEAD_SIZE]
            for start in range(0, len(view), MMAP_SLICE):
                if cancel is not None and cancel.is_set():
                    raise InputError(f"hashing {path} was cancelled")
                with view[start:start + MMAP_SLICE] as part:
                    hasher.update(part)
                if progress is not None:
                    progress(min(MMAP_SLICE, len(view) - start))
        after = os.fstat(fd)
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from e
    if _version(after) != _version(before):
        raise _changed(path)
    return str(hasher.hexdigest())


def _same_file(path: Path, before: os.stat_result) -> None:
    """The path still names the file that was read: not renamed over, replaced or removed meanwhile."""
    try:
        now = os.stat(path)
    except OSError as e:
        raise _changed(path) from e
    if (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino) or _version(now) != _version(before):
        raise _changed(path)


def _version(info: os.stat_result) -> tuple[int, int, int]:
    """What changes when a file's bytes do: its size, its mtime and its ctime (which no one can set back)."""
    return info.st_size, info.st_mtime_ns, info.st_ctime_ns


def _changed(path: Path) -> InputError:
    return InputError(f"{path} changed while it was being hashed; hash it again once it is complete")


def _is_regular(mode: int) -> bool:
    import stat

    return stat.S_ISREG(mode)
