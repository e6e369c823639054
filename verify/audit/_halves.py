"""The report's per-artefact steps (:mod:`verify.audit`) on two cores: the second half in a forked copy of this
process, which already holds every record it needs (nothing is sent to it), and sends back only what it made."""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, Any, TypeVar

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
    running no other thread: a lock another thread holds would stay held in the copy) and has room
    (:func:`_room_for_a_copy`).

    ``work`` must only compute (no output, no index write, nothing shared changed that this process needs): the
    copy's changes are lost with it, and it leaves through ``os._exit``, flushing nothing. The copy makes its
    whole half, then sends it in frames, read one at a time once this half is made (the received bytes held at
    once stay small). Whatever goes wrong in the copy (an exception, a crash, a frame that does not read back),
    what it did not send is made here, so the results are the same as ``work(items)``'s, or its exception.
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
            _send(write_end, list(work(items[half:])))  # (all made before any is sent: the pipe holds little)
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    came = 0
    """Results of the second half yielded from the copy."""
    done = False
    try:
        yield from work(items[:half])
        with os.fdopen(read_end, "rb", closefd=False) as pipe:
            for frame in _frames(pipe):
                came += len(frame)
                yield from frame
        done = came == len(items) - half
    finally:
        os.close(read_end)
        if not done:  # stopped early (an error, no more asked for, or the copy failed): its work is not needed
            os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
    if not done:  # (here only if the copy failed: it sent less than its half, or what does not read back)
        yield from work(items[half + came:])


#: Results a frame of the copy's answer holds: the received bytes held at once stay small (a few MB).
_FRAME = 1024


def _send(fd: int, results: list[object]) -> None:
    with os.fdopen(fd, "wb", closefd=False) as pipe:
        for start in range(0, len(results), _FRAME):
            data = pickle.dumps(results[start:start + _FRAME], protocol=pickle.HIGHEST_PROTOCOL)
            pipe.write(len(data).to_bytes(8, "big"))
            pipe.write(data)
            pipe.flush()  # (a frame whole, before the next is made)


def _frames(pipe: IO[bytes]) -> Iterator[list[Any]]:
    """Each whole frame the copy sent, until the pipe ends or a frame does not read back (the copy died)."""
    while len(head := pipe.read(8)) == 8:
        data = pipe.read(int.from_bytes(head, "big"))
        try:
            frame = pickle.loads(data)  # noqa: S301 (this very process's copy wrote it)
        except Exception:  # (truncated: the copy was killed while sending)
            return
        if not isinstance(frame, list):
            return
        yield frame


def _fork_is_safe() -> bool:
    return sys.platform == "linux" and hasattr(os, "fork") and threading.active_count() == 1 and _room_for_a_copy()


#: Where Linux says how much memory the machine has available.
_MEMINFO = "/proc/meminfo"


def _room_for_a_copy() -> bool:
    """Whether the machine has the memory a copy of this process may come to: it shares this one's pages until it
    touches them, and making its half touches most (at 100,000 attestations, about 350 MB of this process's 450).
    Without that room the work is done here: a copy pushing the machine out of memory could have this process
    killed instead, and no report made."""
    try:
        with open(_MEMINFO, "rb") as info:
            available = next(int(line.split()[1]) for line in info if line.startswith(b"MemAvailable:"))
        with open("/proc/self/status", "rb") as status:
            resident = next(int(line.split()[1]) for line in status if line.startswith(b"VmRSS:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return False  # (not known: not risked)
    return available > resident
