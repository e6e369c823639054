"""An audit stopped (^C, SIGTERM) while its worker processes start: a worker that can no longer start, its pool's
queues gone with the audit, ends without a traceback (verify.audit._preload); the audit has said, in one sentence,
why it stopped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="forkserver, the start method on Linux")

# A process started from the audit workers' server, as the pool starts one, whose queue's semaphore is gone by the
# time it reads what to run: as when the audit stopped meanwhile and its pool's queues went with it.
_WORKER_OF_A_STOPPED_AUDIT = """
import _multiprocessing, os, sys
from multiprocessing import resource_tracker
from verify.audit._workers import _context, _server

_server()
context = _context()
lock = context.Lock()
_multiprocessing.sem_unlink(lock._semlock.name)  # gone before the new process looks for it
process = context.Process(target=print, args=(lock,))
process.start()
process.join()
print(process.exitcode, flush=True)
resource_tracker.unregister(lock._semlock.name, "semaphore")  # (unlinked already: nothing for it to clean up)
sys.stderr.flush()
os._exit(0)  # (nor for the lock's own finalizer)
"""


def _started(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).parents[2], timeout=60)


def test_a_worker_that_cannot_start_because_the_audit_has_gone_prints_no_traceback() -> None:
    done = _started(_WORKER_OF_A_STOPPED_AUDIT)
    assert done.stdout.split() == ["1"]  # it did not start (and the pool, were one waiting, would say so)
    assert done.stderr == "", done.stderr


def test_without_the_preload_the_same_start_prints_the_traceback_it_hides() -> None:
    """The control: the server as multiprocessing makes it, without verify.audit._preload."""
    done = _started(_WORKER_OF_A_STOPPED_AUDIT.replace("_server()\ncontext = _context()",
                                                       "context = _context()\ncontext.set_forkserver_preload([])"))
    assert done.stdout.split() == ["1"]
    assert "Traceback" in done.stderr and "FileNotFoundError" in done.stderr


_OTHER_ERRORS = """
import sys
import verify.audit._preload
raise {error}
"""


@pytest.mark.parametrize(("error", "printed"), [("FileNotFoundError(2, 'gone')", False), ("EOFError()", False),
                                                ("BrokenPipeError()", False), ("RuntimeError('a bug')", True),
                                                ("KeyError('a bug')", True)])
def test_only_the_errors_of_a_gone_audit_are_quiet(error: str, printed: bool) -> None:
    done = subprocess.run([sys.executable, "-c", _OTHER_ERRORS.format(error=error)], capture_output=True, text=True,
                          cwd=Path(__file__).parents[2], timeout=60)
    assert done.returncode == 1
    assert ("Traceback" in done.stderr) is printed, done.stderr


def test_the_audit_process_itself_keeps_its_own_excepthook() -> None:
    """The module is the server's preload only: the audit's own process never imports it."""
    done = _started("import sys\nimport verify.audit, attest.cli.audit\nprint('verify.audit._preload' in sys.modules, "
                    "sys.excepthook is sys.__excepthook__)")
    assert done.stdout.split() == ["False", "True"]
