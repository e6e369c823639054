"""Run the real ``attest`` CLI in a fresh process without paying Python's start-up each time.

The suite runs the CLI more than a thousand times. ``python -m attest`` costs 0.1-0.4 s of CPU before attest does
anything (the interpreter, click, cryptography, boto3...), most of the suite's time. A *zygote* (one per pytest
process) imports all of that once, then forks a child for each run: the child takes the test's stdin, stdout and
stderr, its working folder, environment and umask, and runs ``attest`` as ``python -m attest`` would
(:func:`runpy.run_module` in a ``__main__`` of its own, the folder first on ``sys.path``), ends as the interpreter
would as far as a caller can see (:func:`_finish`) and reports its real exit status. Each run is still a process
of its own: signal handlers, caches, atexit handlers, ``os.environ`` and the exit code are its own, never shared
with the test or with the next run.

What a fork cannot give is a fresh *exec*: the interpreter's start-up settings (``PYTHON*``, the locale), its hash
seed (one per zygote, so set order is the same in every run of one test process: ``ATTEST_TESTS_FRESH=1`` runs
would show output that depends on it), the modules already imported (boto3 and sigstore too: the tests of what
the CLI imports start interpreters of their own) and the environment block the kernel keeps for
``/proc/<pid>/environ`` are the zygote's. :func:`tests.conftest.run_attest` therefore execs a real interpreter
whenever the test's environment sets a start-up variable, and a test that reads attest's original environment
block asks for one (``fresh=True``). The shell's ``attest`` passes stdin, stdout and stderr, not other open
descriptors (``/dev/fd/3``, a process substitution): a guide that needs one should run the installed attest.

Protocol, over a Unix socket: the client sends an 8-byte length with three descriptors (stdin, stdout, stderr),
then a JSON request; a first child of the zygote forks the run, sends its pid, waits for it and sends its wait
status. The zygote itself never waits (SIGCHLD ignored) and holds no thread, so forking it is safe.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import pkgutil
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_LENGTH = struct.Struct("!Q")
#: Environment variables Python reads at start-up, before any code runs: a fork cannot honour a change of them
#: (but for PYTHONPATH, which a run applies to its own sys.path).
_START_UP = ("PYTHON", "LC_", "LANG")


def start_up(env: dict[str, str] | os._Environ[str]) -> dict[str, str]:
    """The start-up settings of a Python run under ``env``."""
    return {name: value for name, value in env.items() if name.startswith(_START_UP) and name != "PYTHONPATH"}


def needs_exec(env: dict[str, str]) -> bool:
    """Whether a run under ``env`` must exec a real interpreter (its start-up settings differ from the zygote's)."""
    return start_up(env) != start_up(os.environ)


# ---------------------------------------------------------------------------------------------------- the client


class Zygote:
    """The client of one zygote process, started on first use and stopped with the test process."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._folder = tempfile.mkdtemp(prefix="attest-zygote-")
        self._address = os.path.join(self._folder, "socket")

    def _start(self) -> None:
        Path(self._address).unlink(missing_ok=True)  # a zygote that died left its socket: wait for the new one's
        self._process = subprocess.Popen([sys.executable, "-m", "tests._zygote", self._address, str(os.getpid())],
                                         cwd=Path(__file__).resolve().parent.parent, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=None)
        deadline = time.monotonic() + 60
        while not os.path.exists(self._address):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the test zygote did not start (exit {self._process.poll()})")
            time.sleep(0.01)

    def shim(self) -> str:
        """A folder holding an ``attest`` program that runs attest forked from this zygote, to put first on the
        PATH of a shell that runs attest as a user types it (a guide, a buildspec); an environment that changes
        Python's start-up settings execs ``python -m attest`` instead."""
        if self._process is None or self._process.poll() is not None:
            self._start()
        folder = os.path.join(self._folder, "bin")
        program = os.path.join(folder, "attest")
        if not os.path.exists(program):
            os.makedirs(folder, exist_ok=True)
            with open(program + ".tmp", "w") as out:
                out.write(_SHIM.format(python=sys.executable, address=self._address, start_up=start_up(os.environ),
                                       prefixes=_START_UP, length=_LENGTH.format))
            os.chmod(program + ".tmp", 0o755)
            os.rename(program + ".tmp", program)
        return folder

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        shutil.rmtree(self._folder, ignore_errors=True)

    def run(self, args: list[str], *, cwd: str, env: dict[str, str], input: bytes | None,
            timeout: float) -> tuple[int, bytes, bytes]:
        """Run ``python -m attest ARGS`` in a child of the zygote: its exit code (negative for a signal), stdout
        and stderr, as :func:`subprocess.run` gives them; :class:`subprocess.TimeoutExpired` after ``timeout``."""
        if self._process is None or self._process.poll() is not None:
            self._start()
        umask = os.umask(0o022)
        os.umask(umask)
        request = json.dumps({"args": args, "cwd": cwd, "env": env, "umask": umask}).encode()
        with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as out, \
                tempfile.TemporaryFile() as err, socket.socket(socket.AF_UNIX) as connection:
            stdin.write(input or b"")
            stdin.seek(0)
            connection.connect(self._address)
            socket.send_fds(connection, [_LENGTH.pack(len(request))], [stdin.fileno(), out.fileno(), err.fileno()])
            connection.sendall(request)
            reader = connection.makefile("rb")
            pid = int(reader.readline())
            connection.settimeout(timeout)
            try:
                line = reader.readline()
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
                raise subprocess.TimeoutExpired(["attest", *args], timeout) from None
            if not line:
                raise RuntimeError("the test zygote lost a run")
            out.seek(0)
            err.seek(0)
            return os.waitstatus_to_exitcode(int(line)), out.read(), err.read()


#: The ``attest`` of :meth:`Zygote.shim`: the standard library only, started with -IS (20 ms, not 200).
_SHIM = """#!{python} -IS
import json, os, signal, socket, struct, sys

def run_execd():
    os.execv({python!r}, [{python!r}, "-m", "attest", *sys.argv[1:]])

settings = {{k: v for k, v in os.environ.items() if k.startswith({prefixes!r}) and k != "PYTHONPATH"}}
if settings != {start_up!r}:
    run_execd()
connection = socket.socket(socket.AF_UNIX)
try:
    connection.connect({address!r})
except OSError:
    run_execd()
request = json.dumps({{"args": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ),
                      "umask": os.umask(os.umask(0o022))}}).encode()
socket.send_fds(connection, [struct.pack({length!r}, len(request))], [0, 1, 2])
connection.sendall(request)
reader = connection.makefile("rb")
pid = int(reader.readline())
for stop in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
    signal.signal(stop, lambda number, frame: os.kill(pid, number))
status = int(reader.readline())
if os.WIFSIGNALED(status):
    signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
    os.kill(os.getpid(), os.WTERMSIG(status))
sys.exit(os.waitstatus_to_exitcode(status))
"""


# ---------------------------------------------------------------------------------------------------- the zygote


def _preload() -> None:
    """Import what the CLI's commands import when they run, so that no child pays for it."""
    import attest.cli
    import verify

    for name in attest.cli.COMMANDS.values():
        importlib.import_module(name[0])
    for package in (attest, verify):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if module.name.endswith(".__main__"):  # runs the CLI when imported
                continue
            with contextlib.suppress(ImportError):  # an optional extra that is not installed (psycopg, say)
                importlib.import_module(module.name)
    for name in ("boto3", "botocore.session", "sigstore.sign", "sigstore.verify", "sigstore.models",
                 "sigstore.oidc", "rich.console", "rich.progress", "rich.table", "yaml", "blake3"):
        importlib.import_module(name)


def _receive(connection: socket.socket) -> tuple[dict, list[int]]:
    head, fds, _flags, _address = socket.recv_fds(connection, _LENGTH.size, 3)
    (length,) = _LENGTH.unpack(head)
    body = b""
    while len(body) < length:
        chunk = connection.recv(length - len(body))
        if not chunk:
            raise EOFError("the client went away")
        body += chunk
    return json.loads(body), fds


def _become_attest(request: dict, fds: list[int]) -> None:
    """In the run's process: take the test's descriptors, folder, environment and umask, then run attest as
    ``python -m attest`` does, and end this process as the interpreter would (:func:`_finish`)."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.umask(request["umask"])
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    sys.argv = ["-m", *request["args"]]  # (run_module puts attest/__main__.py first, as -m does)
    # as python -m sets it: the folder, PYTHONPATH's entries, then the interpreter's own
    sys.path[:] = [os.getcwd(), *filter(None, request["env"].get("PYTHONPATH", "").split(os.pathsep)), *_BASE_PATH]
    import runpy

    try:  # in a __main__ of its own (as -m gives it), not the zygote's
        runpy.run_module("attest", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as e:  # as the interpreter reads it: None is 0, a number itself, anything else printed and 1
        code = 0 if e.code is None else e.code if isinstance(e.code, int) else 1
        if not isinstance(e.code, int | None):
            print(e.code, file=sys.stderr)
    except BaseException:  # what the interpreter does with any exception left: print it, exit 1
        sys.excepthook(*sys.exc_info())
        code = 1
    os._exit(_finish(code))


def _finish(code: int) -> int:
    """What the interpreter does at exit that a caller can see, in its order: wait for the threads that are not
    daemons, run the atexit functions, flush stdout and stderr (a failed flush is exit 120). The rest of its
    shutdown, freeing every module's objects, is skipped: in a fork of the zygote it cost 50 ms a run, touching
    (and so copying) every page of the zygote's memory."""
    import atexit

    if "threading" in sys.modules:
        sys.modules["threading"]._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None and not stream.closed:
                stream.flush()
        except Exception as e:
            if stream is sys.stdout:
                print(f"Exception ignored in: {stream!r}\n{type(e).__name__}: {e}", file=sys.stderr)
            code = 120
    return code & 0xFF


def _handle(listener: socket.socket, connection: socket.socket) -> tuple[dict, list[int]] | None:
    """In a first child of the zygote: fork the run, report its pid, wait for it, report its wait status. Returns
    the request in the run's process (which then leaves the zygote's loop), None in the first child."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    request, fds = _receive(connection)
    pid = os.fork()
    if pid == 0:
        listener.close()
        connection.close()
        return request, fds
    for fd in fds:
        os.close(fd)
    connection.sendall(f"{pid}\n".encode())
    # the run ends, or the client goes away first (killed, say): the client stands where the real attest would
    # be, so the run is killed with it
    ready, _, _ = select.select([os.pidfd_open(pid), connection], [], [])
    if connection in ready and connection.recv(1) == b"":
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    with contextlib.suppress(OSError):
        connection.sendall(f"{status}\n".encode())
    return None


#: the interpreter's own sys.path (without the zygote's folder and PYTHONPATH), set in :func:`serve`
_BASE_PATH: list[str] = []


def serve(address: str, parent: int) -> tuple[dict, list[int]]:
    """Serve runs until the test process goes away; returns only in a run's process, with its request."""
    own = {os.path.abspath(entry) for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry}
    _BASE_PATH[:] = [entry for entry in sys.path[1:] if os.path.abspath(entry) not in own]
    _preload()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the first children reap themselves
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(address + ".tmp")
    listener.listen(64)
    os.rename(address + ".tmp", address)  # ready
    listener.settimeout(1.0)
    gc.collect()
    gc.freeze()  # the children's collections leave the zygote's objects (and their pages) alone
    while os.getppid() == parent:
        try:
            connection, _ = listener.accept()
        except TimeoutError:
            continue
        connection.settimeout(None)
        if os.fork() == 0:
            try:
                run = _handle(listener, connection)
            except BaseException:
                os._exit(1)
            if run is None:
                os._exit(0)
            return run  # the run's own process: out of the loop, to become attest
        connection.close()
    sys.exit(0)


if __name__ == "__main__":
    _become_attest(*serve(sys.argv[1], int(sys.argv[2])))
