"""Exit codes: the one table that maps outcomes to what a pipeline should do."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from attest.errors import AttestError, BuildRefused, CommandFailed, RemoteError, SignerError, StoreError
from verify.encoding import printable
from verify.errors import ConfigError, EvidenceRejected, VerifyError

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
    (ConfigError, CONFIG),
    (BuildRefused, CONFIG),
    (SignerError, CONFIG),
    (StoreError, CONFIG),
    (RemoteError, REMOTE),
)


def exit_code(error: BaseException) -> int:
    for cls, code in EXIT_CODES:
        if isinstance(error, cls):
            return code
    return INTERNAL


def _sentence(message: str) -> str:
    message = printable(" ".join(message.split()))  # a message may quote evidence: no terminal escapes
    return message if message.endswith((".", "?", "!")) else message + "."


def run(group: click.Group, argv: list[str] | None) -> NoReturn:
    """Run the CLI; turn every failure into one sentence on stderr and an exit code."""
    verbose = "-vv" in (argv if argv is not None else sys.argv) or (argv or sys.argv).count("-v") > 1
    prog = "attest"
    try:
        from attest.cli._signals import stop_signals_unwind

        with stop_signals_unwind():
            group.main(args=argv, prog_name=prog, standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(USAGE if e.exit_code == 2 else e.exit_code)
    except click.exceptions.Abort:
        click.echo("attest: interrupted.", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("attest: interrupted.", err=True)
        sys.exit(130)
    except (VerifyError, AttestError) as e:
        if verbose:
            import traceback

            traceback.print_exc()
        code = exit_code(e)
        if isinstance(e, CommandFailed):
            code = REJECTED
        click.echo(f"{prog}: {_sentence(str(e))}", err=True)
        sys.exit(code)
    except BrokenPipeError:
        sys.exit(OK)
    except Exception as e:  # a bug: say so, plainly, and how to report it
        if verbose:
            import traceback

            traceback.print_exc()
        click.echo(f"{prog}: internal error ({type(e).__name__}: {_sentence(str(e)).rstrip('.')}); this is a bug "
                   "in attest: rerun with -vv and report the output.", err=True)
        sys.exit(INTERNAL)
    sys.exit(OK)


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"attest: {_sentence(message)}", err=True)
    sys.exit(code)
