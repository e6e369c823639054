"""Exit codes: the one table that maps outcomes to what a pipeline should do."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NoReturn

import click

from attest.errors import (
    AttestError,
    BuildRefused,
    CommandFailed,
    OutputError,
    RemoteError,
    SignerError,
    SourceChanged,
    StoreError,
)
from verify.errors import ConfigError, EvidenceRejected, RequestError, VerifyError
from verify.formats.encoding import printable

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

OK = 0
REJECTED = 1          # evidence rejected: block
USAGE = 2             # usage error (click): fix the invocation
CONFIG = 3            # input or configuration unreadable: fix the pipeline
REMOTE = 4            # S3 or KMS unreachable or access denied: retry or fix IAM
INTERNAL = 70         # a bug: report it

#: Exception class -> exit code; the first matching entry wins.
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (EvidenceRejected, REJECTED),
    (CommandFailed, REJECTED),
    (SourceChanged, REJECTED),
    (RequestError, USAGE),
    (ConfigError, CONFIG),
    (BuildRefused, CONFIG),
    (SignerError, CONFIG),
    (StoreError, CONFIG),
    (OutputError, CONFIG),
    (RemoteError, REMOTE),
)


def exit_code(error: BaseException) -> int:
    for cls, code in EXIT_CODES:
        if isinstance(error, cls):
            return code
    return INTERNAL


#: How many times -v/--verbose was given, before or after the command name (see :func:`count_verbose`).
_verbosity = 0


def count_verbose(times: int) -> int:
    """Record ``times`` more -v; return the total. Twice or more prints tracebacks on failure."""
    global _verbosity
    _verbosity += times
    return _verbosity


def _sentence(message: str) -> str:
    message = printable(" ".join(message.split()))  # a message may quote evidence: no terminal escapes
    return message if message.endswith((".", "?", "!")) else message + "."


def run(group: click.Group, argv: list[str] | None) -> NoReturn:
    """Run the CLI; turn every failure into one sentence on stderr and an exit code."""
    global _verbosity  # reset: main() may run more than once in one process
    _verbosity = 0
    prog = "attest"
    with _stdout_tolerates_closed_pipe():
        try:
            from attest.cli._signals import stop_signals_unwind

            with stop_signals_unwind():
                group.main(args=argv, prog_name=prog, standalone_mode=False)
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
        except click.UsageError as e:  # one sentence like every other failure, with where to look
            command = e.ctx.command_path if e.ctx is not None else prog
            click.echo(f"{prog}: {_sentence(e.format_message())} (see '{command} --help')", err=True)
            sys.exit(USAGE)
        except click.ClickException as e:
            click.echo(f"{prog}: {_sentence(e.format_message())}", err=True)
            sys.exit(USAGE if e.exit_code == 2 else e.exit_code)
        except click.exceptions.Abort:
            click.echo("attest: interrupted.", err=True)
            sys.exit(130)
        except KeyboardInterrupt:
            click.echo("attest: interrupted.", err=True)
            sys.exit(130)
        except (VerifyError, AttestError) as e:
            if _verbosity > 1:
                import traceback

                traceback.print_exc()
            code = exit_code(e)
            if isinstance(e, CommandFailed):
                code = REJECTED
            click.echo(f"{prog}: {_sentence(str(e))}", err=True)
            sys.exit(code)
        except PermissionError as e:  # a path this process may not enter or read, met where none was expected
            if _verbosity > 1:
                import traceback

                traceback.print_exc()
            where = f" {printable(os.fsdecode(e.filename))}" if e.filename is not None else ""
            click.echo(f"{prog}: cannot reach{where}: permission denied; give this process access to it and to the "
                       "folders on its way.", err=True)
            sys.exit(CONFIG)
        except Exception as e:  # a bug: say so, plainly, and how to report it
            if _verbosity > 1:
                import traceback

                traceback.print_exc()
            click.echo(f"{prog}: internal error ({type(e).__name__}: {_sentence(str(e)).rstrip('.')}); this is a "
                       "bug in attest: rerun with -vv and report the output.", err=True)
            sys.exit(INTERNAL)
    sys.exit(OK)


class _ClosedPipeTolerantFile(io.FileIO):
    """Standard output that a reader may close early (``attest verify ... | head -1``).

    Python ignores SIGPIPE, so a write to a pipe nobody reads raises BrokenPipeError: in the
    middle of the command (click then exits 1 without a word, whatever the command's outcome)
    or when the interpreter flushes stdout at exit ("Exception ignored ... BrokenPipeError",
    exit 120). Here the first such write points the file descriptor at /dev/null instead, so
    the rest of the output is discarded and the exit code is the command's own: a verification
    that passed exits 0 and one that failed still exits 1.
    """

    def write(self, data: ReadableBuffer, /) -> int:
        try:
            return super().write(data)
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, self.fileno())
            finally:
                os.close(devnull)
            return memoryview(data).nbytes


@contextmanager
def _stdout_tolerates_closed_pipe() -> Iterator[None]:
    """Within the block, ``sys.stdout`` writes through :class:`_ClosedPipeTolerantFile`."""
    original = sys.stdout
    try:
        fd = original.fileno()
        original.flush()
    except (AttributeError, OSError, ValueError):  # no stdout, or a test harness's in-memory one
        yield
        return
    tolerant = io.TextIOWrapper(io.BufferedWriter(_ClosedPipeTolerantFile(fd, "wb", closefd=False)),
                                encoding=original.encoding, errors=original.errors,
                                line_buffering=bool(original.line_buffering),
                                write_through=getattr(original, "write_through", False))
    sys.stdout = tolerant
    try:
        yield
    finally:
        tolerant.flush()
        sys.stdout = original


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"attest: {_sentence(message)}", err=True)
    sys.exit(code)
