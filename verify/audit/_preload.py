"""Imported by the server the audit's worker processes are forked from (multiprocessing's forkserver, as its
preload), and by nothing else: a worker that cannot start because the audit is stopping (^C, SIGTERM: the pool's
queues, and the semaphores they hold, gone with it) ends without a traceback beside the audit's one sentence.

Only such a start is quiet: the pool's queues and pipes gone (an OSError, an EOFError) while the new process reads
what to run. Any other exception is printed as before; and a worker that does not start, for whatever reason, breaks
the pool, which the audit reports in a sentence of its own (:func:`verify.audit._workers._facts`)."""

from __future__ import annotations

import sys
from types import TracebackType

__all__: list[str] = []

#: What a worker meets when the audit that asked for it has gone: its semaphore unlinked, its pipe closed.
_GONE = (OSError, EOFError)


def _quiet_when_the_audit_is_gone(kind: type[BaseException], value: BaseException,
                                  traceback: TracebackType | None) -> None:
    if issubclass(kind, _GONE):
        return
    sys.__excepthook__(kind, value, traceback)


sys.excepthook = _quiet_when_the_audit_is_gone
