"""attest.hashing.ArtifactRead: the gate's one read, whose plan may still grow."""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import blake3
import pytest

from attest.hashing import ArtifactRead
from verify.errors import InputError

MiB = 1 << 20


def _file(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "app.bin"
    path.write_bytes(data)
    return path


def _digests(data: bytes) -> dict[str, str]:
    return {"sha256": hashlib.sha256(data).hexdigest(), "blake3": blake3.blake3(data).hexdigest()}


class _Held:
    """A progress hook that holds the first read at its first chunk until released, and counts the reads."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.reads = 0

    @contextlib.contextmanager
    def __call__(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        self.reads += 1
        first = self.reads == 1

        def advance(n: int) -> None:
            if first:
                self.started.set()
                assert self.release.wait(10)

        yield advance


def test_a_provisional_plan_is_what_is_computed_when_nothing_more_is_asked(tmp_path: Path) -> None:
    data = b"a" * MiB
    with ThreadPoolExecutor(1) as pool:
        read = ArtifactRead(str(_file(tmp_path, data)), pool)
        read.start(["blake3"])
        assert read.result().digests == {"blake3": _digests(data)["blake3"]}
        read.ensure(["blake3"])  # already there: nothing more
        assert read.result().digests == {"blake3": _digests(data)["blake3"]}


def test_asking_for_more_while_the_read_runs_restarts_it_with_what_was_asked(tmp_path: Path) -> None:
    data = bytes(range(256)) * (96 * MiB // 256)  # several chunks
    held = _Held()
    with ThreadPoolExecutor(1) as pool:
        read = ArtifactRead(str(_file(tmp_path, data)), pool, progress=held)
        read.start(["blake3"])
        assert held.started.wait(10)
        read.ensure(["sha256"])  # the policy names sha256 alone
        held.release.set()
        assert read.result().digests == {"sha256": _digests(data)["sha256"]}
    assert held.reads == 2  # the first read stopped at its next chunk, the second computed the plan


def test_asking_for_more_after_the_read_reads_again_and_keeps_exactly_what_was_asked(tmp_path: Path) -> None:
    data = b"b" * MiB
    with ThreadPoolExecutor(1) as pool:
        read = ArtifactRead(str(_file(tmp_path, data)), pool)
        read.start(["blake3"])
        read.result()
        read.ensure(["sha256"])
        assert read.result().digests == {"sha256": _digests(data)["sha256"]}
        read.ensure(["blake3"])
        assert read.result().digests == _digests(data)
        assert read.has("sha256") and read.has("blake3") and not read.has("sha512")


def test_a_file_changed_between_two_reads_is_refused(tmp_path: Path) -> None:
    path = _file(tmp_path, b"c" * MiB)
    with ThreadPoolExecutor(1) as pool:
        read = ArtifactRead(str(path), pool)
        read.start(["blake3"])
        read.result()
        path.write_bytes(b"d" * MiB)  # same size, other bytes
        read.ensure(["sha256"])
        with pytest.raises(InputError, match="changed between two reads; verify it again once it is complete"):
            read.result()


def test_a_digest_given_on_the_command_line_is_all_there_is(tmp_path: Path) -> None:
    sha = "ab" * 32
    with ThreadPoolExecutor(1) as pool:
        read = ArtifactRead(f"sha256:{sha}", pool)
        read.start(["blake3"])
        read.ensure(["blake3", "sha256"])
        assert read.result().digests == {"sha256": sha} and read.fixed


def test_an_artefact_that_is_not_a_file_is_an_input_error(tmp_path: Path) -> None:
    with ThreadPoolExecutor(1) as pool, pytest.raises(InputError, match="does not exist or is not a file"):
        ArtifactRead(str(tmp_path / "missing.bin"), pool)


def test_close_stops_a_read_that_is_no_longer_needed(tmp_path: Path) -> None:
    held = _Held()
    with ThreadPoolExecutor(1) as pool:
        read = ArtifactRead(str(_file(tmp_path, b"e" * (32 * MiB))), pool, progress=held)
        read.start(["sha256"])
        assert held.started.wait(10)
        read.close()
        held.release.set()
        with pytest.raises(InputError, match="was cancelled"):
            read.result()
