"""Run the real ``attest`` CLI in a fresh process without paying Python's start-up each time.

The suite runs the CLI more than a thousand times. ``python -m attest`` costs 0.1-0.4 s of CPU before attest does
anything (the interpreter, click, cryptography, boto3...), most of the suite's time. A *zygote* (one per pytest
process) imports all of that once, then forks a child for each run: the child takes the test's stdin, stdout and
stderr, its working folder, environment and umask, and runs ``attest`` exactly as ``python -m attest`` would
(:func:`runpy._run_module_as_main`, the cwd first on ``sys.path``), exits through the interpreter's own shutdown
and reports its real exit status. Each run is still a process of its own: signal handlers, caches, atexit
handlers, ``os.environ`` and the exit code are its own, never shared with the test or with the next run.

What a fork cannot give is a fresh *exec*: the interpreter's start-up settings (``PYTHON*``, the locale) and the
environment block the kernel keeps for ``/proc/<pid>/environ`` are the zygote's. :func:`run` therefore execs a
real interpreter whenever the test's environment sets a start-up variable, and a test that reads attest's
original environment block asks for one (``fresh=True`` of :func:`tests.conftest.run_attest`).

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
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_LENGTH = struct.Struct("!Q")
#: Environment variables Python reads at start-up, before any code runs: a fork cannot honour a change of them.
_START_UP = ("PYTHON", "LC_", "LANG")


def needs_exec(env: dict[str, str]) -> bool:
    """Whether a run under ``env`` must exec a real interpreter (its start-up settings differ from the zygote's)."""
    return any(name.startswith(_START_UP) and os.environ.get(name) != value for name, value in env.items()) or any(
        name.startswith(_START_UP) and name not in env for name in os.environ)


# ---------------------------------------------------------------------------------------------------- the client


class Zygote:
    """The client of one zygote process, started on first use and stopped with the test process."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._folder = tempfile.mkdtemp(prefix="attest-zygote-")
        self._address = os.path.join(self._folder, "socket")

    def _start(self) -> None:
        self._process = subprocess.Popen([sys.executable, "-m", "tests._zygote", self._address, str(os.getpid())],
                                         cwd=Path(__file__).resolve().parent.parent, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=None)
        deadline = time.monotonic() + 60
        while not os.path.exists(self._address):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the test zygote did not start (exit {self._process.poll()})")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        Path(self._address).unlink(missing_ok=True)
        os.rmdir(self._folder)

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
    ``python -m attest`` does; its SystemExit (or exception) ends this process through the interpreter."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.umask(request["umask"])
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    sys.argv = ["-m", *request["args"]]
    sys.path[0] = os.getcwd()
    import runpy

    runpy._run_module_as_main("attest", alter_argv=True)  # type: ignore[attr-defined]
    sys.exit(0)


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
    _, status = os.waitpid(pid, 0)
    connection.sendall(f"{status}\n".encode())
    return None


def serve(address: str, parent: int) -> tuple[dict, list[int]]:
    """Serve runs until the test process goes away; returns only in a run's process, with its request."""
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
