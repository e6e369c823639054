"""verify.audit._halves: the report's per-artefact steps on two cores, the second half in a forked copy of the
process; its results are always those of the work done in one process, whatever becomes of the copy."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from verify.audit import _halves
from verify.audit._halves import in_two_halves

ITEMS = list(range(10))


@pytest.fixture
def forks(forked_halves: list[int]) -> list[int]:
    """The pid of each copy forked, the work split from 2 items on."""
    return forked_halves


def squares(items: Sequence[int]) -> Iterator[tuple[int, int, int]]:
    """(item, its square, the process that made it)."""
    for n in items:
        yield n, n * n, os.getpid()


def reaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def test_the_second_half_is_made_in_a_copy_and_the_results_come_in_order(forks: list[int]) -> None:
    results = list(in_two_halves(squares, ITEMS, cores=2))
    assert [(n, sq) for n, sq, _ in results] == [(n, n * n) for n in ITEMS]
    (copy,) = forks
    assert {pid for n, _, pid in results if n < 5} == {os.getpid()}
    assert {pid for n, _, pid in results if n >= 5} == {copy}
    assert reaped(copy)


@pytest.fixture
def leftover() -> Iterator[tuple[threading.Event, threading.Thread]]:
    """A thread an earlier test left running (set up before ``forks``): setting the event ends it."""
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    yield stop, thread
    stop.set()
    thread.join()


def test_a_thread_left_by_an_earlier_test_ending_meanwhile_still_lets_the_copy_be_made(
        leftover: tuple[threading.Event, threading.Thread], forks: list[int]) -> None:
    stop, thread = leftover
    stop.set()  # (it ends between the fixture's count and the fork: CI's failure at a7fe733)
    thread.join()
    assert [(n, sq) for n, sq, _ in in_two_halves(squares, ITEMS, cores=2)] == [(n, n * n) for n in ITEMS]
    assert len(forks) == 1


def test_below_the_threshold_on_one_core_or_beside_a_thread_nothing_is_forked(forks: list[int]) -> None:
    assert list(in_two_halves(squares, [3], cores=2)) == [(3, 9, os.getpid())]
    assert list(in_two_halves(squares, ITEMS, cores=1)) == list(squares(ITEMS))
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert list(in_two_halves(squares, ITEMS, cores=2)) == list(squares(ITEMS))
    finally:
        stop.set()
        other.join()
    assert not forks


@pytest.mark.parametrize("fate", ["raises", "is killed", "exits without a word"])
def test_whatever_becomes_of_the_copy_its_half_is_made_here(forks: list[int], fate: str) -> None:
    here = os.getpid()

    def work(items: Sequence[int]) -> Iterator[tuple[int, int, int]]:
        if os.getpid() != here:
            if fate == "raises":
                raise RuntimeError("a bug in the copy")
            if fate == "is killed":
                os.kill(os.getpid(), signal.SIGKILL)
            os._exit(0)
        yield from squares(items)

    assert list(in_two_halves(work, ITEMS, cores=2)) == list(squares(ITEMS))
    assert len(forks) == 1 and reaped(forks[0])


def test_an_error_here_stops_the_copy_and_is_raised(forks: list[int]) -> None:
    def work(items: Sequence[int]) -> Iterator[int]:
        for n in items:
            if n == 2:
                raise ValueError("a bad artefact")
            yield n

    with pytest.raises(ValueError, match="a bad artefact"):
        list(in_two_halves(work, ITEMS, cores=2))
    assert len(forks) == 1 and reaped(forks[0])


def test_a_caller_that_stops_early_leaves_no_copy_behind(forks: list[int]) -> None:
    results = in_two_halves(squares, ITEMS, cores=2)
    assert next(results)[0] == 0
    results.close()
    assert len(forks) == 1 and reaped(forks[0])


class _KillsTheCopyWhenSent(int):
    def __reduce__(self) -> Any:
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("not reached")


def test_a_copy_that_dies_while_sending_has_the_rest_made_here(forks: list[int],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_halves, "_FRAME", 2)  # the copy's half (5 .. 9) sent as (5, 6), (7, 8), (9,)
    here = os.getpid()

    def work(items: Sequence[int]) -> Iterator[tuple[int, int, int]]:
        for n, square, pid in squares(items):
            yield n, _KillsTheCopyWhenSent(square) if n == 8 and pid != here else square, pid

    results = list(in_two_halves(work, ITEMS, cores=2))
    assert [(n, sq) for n, sq, _ in results] == [(n, n * n) for n in ITEMS]
    (copy,) = forks
    assert [pid for _, _, pid in results] == [here] * 5 + [copy] * 2 + [here] * 3  # (5, 6) came, then it died
    assert reaped(copy)


def test_without_the_memory_a_copy_may_come_to_nothing_is_forked(forks: list[int], tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy touches most of the pages it shares with this process: where the machine has less memory available
    than this process holds, the work is done here rather than risk the out-of-memory killer."""
    assert _halves._room_for_a_copy()  # (this machine, as it is)
    meminfo = tmp_path / "meminfo"
    meminfo.write_bytes(b"MemTotal:  1000 kB\nMemFree:  10 kB\nMemAvailable:  1 kB\n")
    monkeypatch.setattr(_halves, "_MEMINFO", str(meminfo))
    assert list(in_two_halves(squares, ITEMS, cores=2)) == list(squares(ITEMS))
    assert not forks
    meminfo.write_bytes(b"MemTotal:  1000 kB\n")  # (a kernel that does not say: not risked either)
    assert list(in_two_halves(squares, ITEMS, cores=2)) == list(squares(ITEMS))
    assert not forks
