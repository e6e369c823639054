"""The cyclic garbage collector while an audit runs (:mod:`verify.audit`): its full collections rare while files are
read, none at all while the report is made."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["AUDIT_GC_THRESHOLDS", "fewer_collections", "no_collections"]

#: The cyclic garbage collector's thresholds (generations 0, 1, 2) while an audit runs.
AUDIT_GC_THRESHOLDS = (5_000, 10, 1_000)


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector's full collections rarely, then as before. An audit allocates millions of
    small objects that live until the report (facts, records, index entries); at Python's default thresholds,
    full collections scanning that ever-growing heap took a third of the main process's time (100,000
    attestations: 4 of 13 CPU-seconds). Young objects are still collected often (every 5,000 allocations): the
    cycles a rejected file leaves (a caught exception and its frames) go as soon as they would have, and an audit
    of many bad files is neither slower nor larger than before."""
    before = gc.get_threshold()
    gc.set_threshold(*AUDIT_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)


@contextlib.contextmanager
def no_collections() -> Iterator[None]:
    """No cyclic garbage collection, then as before: for the report's steps, once every file is read. They make and
    drop millions of containers (a history's dicts, as it is printed), which reference counting frees, and keep what
    the report holds, and they make no reference cycles (a collection after them finds none), so the collector
    only spent time looking (100,000 attestations: about half a second, in the part of the audit no other core
    shares)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            # what was made meanwhile counts as old, not as one young generation of millions that the first
            # collection after would look through at once (half a second): moved there without looking
            gc.freeze()
            gc.unfreeze()
            gc.enable()
