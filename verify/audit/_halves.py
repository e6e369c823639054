"""The report's per-artefact steps (:mod:`verify.audit`) on two cores: the second half in a forked copy of this
process, which already holds every record it needs (nothing is sent to it), and sends back only what it made."""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

__all__ = ["SPLIT_AT_LEAST", "in_two_halves"]

T = TypeVar("T")
R = TypeVar("R")

#: Items below which the work is done in this process alone: a fork and the results' way back cost about 0.1 s
#: at 100,000 attestations, more than a few thousand artefacts' judgements take.
SPLIT_AT_LEAST = 4096


def in_two_halves(work: Callable[[Sequence[T]], Iterable[R]], items: Sequence[T], *,
                  cores: int | None = None) -> Iterator[R]:
    """``work(items)``'s results, in order: the first half's made here while a forked copy of this process makes
    the second's, once there are :data:`SPLIT_AT_LEAST` items, two cores and a fork is safe (Linux, this process
    running no other thread: a lock another thread holds would stay held in the copy).

    ``work`` must only compute (no output, no index write, nothing shared changed that this process needs): the
    copy's changes are lost with it, and it leaves through ``os._exit``, flushing nothing. Whatever goes wrong in
    the copy (an exception, a crash, results that do not read back), the second half is made again here, so the
    results are the same as ``work(items)``'s, or its exception.
    """
    cores = cores if cores is not None else os.cpu_count() or 1
    if len(items) < SPLIT_AT_LEAST or cores < 2 or not _fork_is_safe():
        yield from work(items)
        return
    half = len(items) // 2
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # the copy: make the second half, send it, leave without running anything of this process's
        code = 1
        try:
            os.close(read_end)
            _send(write_end, pickle.dumps(list(work(items[half:])), protocol=pickle.HIGHEST_PROTOCOL))
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    received = None
    try:
        yield from work(items[:half])
        received = _received(read_end)
    finally:
        os.close(read_end)
        if received is None:  # stopped early (an error here, or no more asked for): the copy's work is not needed
            os.kill(child, signal.SIGKILL)
        _, status = os.waitpid(child, 0)
    try:
        results = pickle.loads(received) if status == 0 else None  # noqa: S301 (this very process's copy wrote it)
    except Exception:  # (truncated: the copy was killed while sending)
        results = None
    if not isinstance(results, list):
        yield from work(items[half:])
        return
    yield from results


def _fork_is_safe() -> bool:
    return sys.platform == "linux" and hasattr(os, "fork") and threading.active_count() == 1


def _send(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _received(fd: int) -> bytes:
    parts = []
    while chunk := os.read(fd, 1 << 20):
        parts.append(chunk)
    return b"".join(parts)
