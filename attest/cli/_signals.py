"""Stop signals unwind like Ctrl-C: SIGTERM and SIGHUP become an exception in the main thread.

CI runners stop jobs with SIGTERM and closing a terminal sends SIGHUP. Without this, either would end
the process on the spot and leave temporary files (the store's, the output's) and a running build
command behind; with it, every ``finally`` runs, for every command.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

import click

#: Signals that end a command cleanly.
_STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Terminated(BaseException):
    """A stop signal arrived: raised in the main thread so that every ``finally`` runs.

    A ``BaseException``, like ``KeyboardInterrupt``, so that no ``except Exception`` swallows it.
    Its unwinding is what removes temporary files (the store's, the output's) and kills the build
    command; without it, SIGTERM would end the process on the spot and leave them behind.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    for stop in _STOP_SIGNALS:  # a second signal must not interrupt the clean-up of the first
        signal.signal(stop, signal.SIG_IGN)
    raise Terminated(signum)


@contextlib.contextmanager
def stop_signals_unwind() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated`; then exit with 128 + the signal."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = {stop: signal.signal(stop, _raise_terminated) for stop in _STOP_SIGNALS}
    try:
        yield
    except Terminated as e:
        name = signal.Signals(e.signum).name
        click.echo(f"attest: stopped by {name}; temporary files were removed and nothing partial was "
                   "published.", err=True)
        sys.exit(128 + e.signum)
    finally:
        for stop, handler in previous.items():
            signal.signal(stop, handler)
