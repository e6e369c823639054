"""Step (2) of an audit (:mod:`verify.audit`) on every core: batches of files checked by worker processes forked
from a server that imported the checking code once, their facts in the order read; the first files, or all of
few, in this process."""

from __future__ import annotations

import contextlib
import itertools
from collections import deque
from collections.abc import Generator, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from verify.audit._check import _Checker, _Fact, _Setup
from verify.audit._collections import no_collections
from verify.errors import ConfigError, EvidenceRejected

if TYPE_CHECKING:
    from concurrent.futures import Future, ProcessPoolExecutor
    from multiprocessing.context import BaseContext

__all__ = ["BATCH_FILES", "INLINE_FILES", "start_server"]

#: Files per unit of work sent to a worker process, and bytes at most (:data:`_BATCH_BYTES`). Each batch costs this
#: process a submission and a result through the pool's threads and pipes: at 64 files a batch, 100,000 files were
#: 1,563 of them and about 0.8 CPU-s more than at 512 (a cold audit 15.4 s against 14.6 s, the mean of three runs
#: each); a worker takes about 0.1 s over 512 files, so progress is still shown often and the last batch is short.
BATCH_FILES = 512
#: Files an audit that chooses its own workers checks in its own process before it starts worker processes: about
#: 0.3 s of checking, less than starting two workers costs (a warm audit's increment is often fewer).
INLINE_FILES = 2048
_BATCH_BYTES = 4 * 1024 * 1024


_WORKER: _Checker | None = None


def _init_worker(setup: _Setup) -> None:
    import signal

    global _WORKER  # one checker per worker process
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles ^C
    _WORKER = setup.checker()


def _work(batch: Sequence[tuple[str, bytes | EvidenceRejected]]) -> list[list[_Fact]]:
    assert _WORKER is not None
    return _WORKER.check_batch(batch)


def _batches(sources: Iterable[tuple[str, bytes | EvidenceRejected]], size: int
             ) -> Iterator[list[tuple[str, bytes | EvidenceRejected]]]:
    batch: list[tuple[str, bytes | EvidenceRejected]] = []
    held = 0
    for uri, data in sources:
        batch.append((uri, data))
        held += len(data) if isinstance(data, bytes) else 0
        if len(batch) >= size or held >= _BATCH_BYTES:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch


def _facts(sources: Iterable[tuple[str, bytes | EvidenceRejected]], setup: _Setup, *, workers: int,
           batch_size: int, inline: int = 0
           ) -> Generator[tuple[list[tuple[str, bytes | EvidenceRejected]], list[list[_Fact]]]]:
    """(batch, the facts of each of its files) per batch, in the order read: the batches within the first ``inline``
    files in this process, then the rest in worker processes when there is more than one batch left.

    A worker gets the identities and the trusted root's path, never a verifier: each process makes
    its own bundle verifier (and imports sigstore-python) only if it meets a keyless bundle.

    While the workers check, this process's cyclic garbage collector is off: what this process makes meanwhile
    (facts as they arrive, the files' records, index entries) lives until the report and makes no cycle, so each
    collection only looked at it again (100,000 attestations: 2 of the 8 CPU-seconds this process spent reading,
    a core the workers need). A check in this process, which does make cycles (an exception's frames, about 30
    objects a rejected file), runs with it on.
    """
    batches = _batches(sources, batch_size)
    first = next(batches, None)
    checker: _Checker | None = None
    checked = 0
    while first is not None and checked + len(first) <= inline:  # fewer than a pool is worth starting for
        checker = checker or setup.checker()
        yield first, checker.check_batch(first)
        checked += len(first)
        first = next(batches, None)
    if first is None:
        return
    second = next(batches, None)
    if second is None or workers < 2:
        checker = checker or setup.checker()
        for batch in itertools.chain([first], [] if second is None else [second], batches):
            yield batch, checker.check_batch(batch)
        return
    with _pool(setup, workers) as pool, no_collections():  # (below)
        pending: deque[tuple[list[tuple[str, bytes | EvidenceRejected]], Future[list[list[_Fact]]]]] = deque()
        try:
            for batch in itertools.chain([first, second], batches):  # lazily: one batch read at a time
                pending.append((batch, pool.submit(_work, batch)))
                while len(pending) > 2 * workers:  # bounded: a few batches in flight, whatever the input size
                    done, future = pending.popleft()
                    yield done, future.result()
            while pending:
                done, future = pending.popleft()
                yield done, future.result()
        except BaseException as e:
            pool.shutdown(wait=False, cancel_futures=True)
            from concurrent.futures.process import BrokenProcessPool

            if isinstance(e, BrokenProcessPool):  # (a worker killed: the out-of-memory killer, say; never a report)
                raise ConfigError("a process checking the attestations ended abruptly (killed, perhaps for want of "
                                  "memory), so no report was made; give the audit more memory and run it again") from e
            raise


def _pool(setup: _Setup, workers: int) -> ProcessPoolExecutor:
    """``workers`` processes checking under ``setup``: forked from a server that imported this module once (never
    from this process and its threads: a progress bar), else spawned."""
    from concurrent.futures import ProcessPoolExecutor

    _server()
    return ProcessPoolExecutor(max_workers=workers, mp_context=_context(), initializer=_init_worker,
                               initargs=(setup,))


def start_server() -> None:
    """Start the server worker processes are forked from now, without waiting for it: it imports this module on
    another core while this process lists and reads the first files, instead of once they are read (with one core
    idle meanwhile: 0.5 s of a cold audit). For an audit that will check every file (no index, or one that knows
    none of them): one that checks few never starts workers, and would start the server for nothing. Only a head
    start: a server that cannot be started now (no socket allowed, say) is no error here; an audit that then needs
    workers starts them as before, or says why it cannot."""
    with contextlib.suppress(OSError):
        _server()


def _server() -> None:
    """The server worker processes are forked from, started if it is not running, deaf to ^C from birth: a ^C
    while it imports this module would print its traceback beside this process's one sentence (this process is
    told, and stops the workers)."""
    if _context().get_start_method() != "forkserver":
        return
    import signal
    import threading
    from multiprocessing import forkserver

    if threading.current_thread() is not threading.main_thread():  # (only the main thread may set a handler)
        forkserver.ensure_running()
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)  # (inherited, ignored, through the server's exec)
    try:
        forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, before)


def _context() -> BaseContext:
    import multiprocessing

    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if context.get_start_method() == "forkserver":
        context.set_forkserver_preload([__name__, "verify.audit._preload"])
    return context
