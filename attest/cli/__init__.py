"""The ``attest`` command line: a thin layer over :mod:`verify` and :mod:`attest`.

Commands are imported only when they run, so ``attest --help`` stays fast.
Only this layer prints and chooses exit codes (see :mod:`attest.cli._exit`).
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from attest import DISTRIBUTION
from attest.cli._options import refuse_outputs_over_inputs, refuse_repeated_options

__all__ = ["cli", "main"]

# name -> (module, attribute, one-line help shown by `attest --help` without importing the module)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "build": ("attest.cli.build", "build", "Run the build, hash the artefacts, sign SLSA provenance, publish."),
    "verify": ("attest.cli.verify", "verify", "Check an artefact against signed evidence and a policy (the gate)."),
    "inspect": ("attest.cli.inspect", "inspect", "Decode envelopes and bundles for reading (nothing is verified)."),
    "key": ("attest.cli.key", "key", "Generate local key pairs; export KMS public keys to pinned PEM files."),
    "audit": ("attest.cli.audit", "audit_command", "Audit a whole history offline: paths and anomalies."),
    "pack": ("attest.cli.pack", "pack", "Pack a directory into a byte-for-byte reproducible zip or tarball."),
    "reproduce": ("attest.cli.reproduce", "reproduce", "Rebuild an attested commit and compare every artefact."),
    "approve": ("attest.cli.approve", "approve", "Sign an approval of an artefact for a stage (PO sign-off)."),
    "release": ("attest.cli.release", "release", "Bind several stacks' artefacts and provenances into one manifest."),
    "deploy": ("attest.cli.deploy", "deploy", "Record, signed, that an environment deployed a stack of a release."),
    "status": ("attest.cli.status", "status", "What runs where, since when: from verified deployment records alone."),
    "promote": ("attest.cli.promote", "promote", "Copy an image to another registry with the evidence its gate "
                "relied on."),
}


VERBOSE_HELP = "Log each step; twice for debug output and tracebacks."


class _Printable(logging.Formatter):
    """Log lines as attest prints every sentence: a message may quote evidence (a subject name, a path, a layout's
    name), and its control characters are spelled as escapes, never sent to the terminal raw."""

    def format(self, record: logging.LogRecord) -> str:
        from verify.formats.encoding import printable

        return "\n".join(printable(line) for line in super().format(record).split("\n"))


def _logging() -> None:
    """Log to stderr, warnings by default, through :class:`_Printable` (once: a root that has a handler keeps it)."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_Printable("attest: %(message)s"))
        root.addHandler(handler)


def _verbose(count: int) -> None:
    """Count ``count`` more -v (before or after the command name) and log to stderr accordingly."""
    from attest.cli._exit import count_verbose

    total = count_verbose(count)
    if total:
        _logging()
        logging.getLogger().setLevel(logging.DEBUG if total > 1 else logging.INFO)


def _verbose_after_command(ctx: click.Context, param: click.Parameter, value: int) -> None:
    if value:
        _verbose(value)
        if isinstance(ctx.obj, dict):
            ctx.obj["verbose"] = ctx.obj.get("verbose", 0) + value


def _accept_verbose(command: click.Command) -> None:
    """Give ``command`` (and its subcommands) -v/--verbose, so that it works after the command name too.

    Options end where a command's arguments do: ``attest build ... -- CMD -v`` passes -v to CMD.
    """
    if not any(isinstance(p, click.Option) and {"-v", "--verbose"} & set(p.opts) for p in command.params):
        command.params.append(click.Option(["-v", "--verbose"], count=True, expose_value=False,
                                           callback=_verbose_after_command, help=VERBOSE_HELP))
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _accept_verbose(sub)


class _NonEmpty(click.ParamType[Any]):
    """Any option's own type, except that an empty value is a usage error: an unset pipeline variable
    (``--source-branch "$BRANCH"``) must never read as "no value", nor as a path to the current directory."""

    def __init__(self, inner: click.ParamType[Any]) -> None:
        self.inner = inner
        self.name = inner.name

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        given = ctx is None or param is None or param.name is None or \
            ctx.get_parameter_source(param.name) is not click.core.ParameterSource.DEFAULT
        if given and isinstance(value, str) and not value.strip():
            leave = " or leave the option out" if isinstance(param, click.Option) else ""
            self.fail(f"it is empty (an unset pipeline variable?); give a value{leave}", param, ctx)
        return self.inner.convert(value, param, ctx)

    def get_metavar(self, param: click.Parameter, *args: Any, **kwargs: Any) -> str | None:
        return self.inner.get_metavar(param, *args, **kwargs)

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> Any:
        return self.inner.shell_complete(ctx, param, incomplete)


def _refuse_empty_values(command: click.Command) -> None:
    """Every option of ``command`` (and its subcommands) that takes a value refuses an empty one, and so does every
    argument but a command's own words (``attest build -- CMD ...``, passed as given): ``attest audit ""`` audited
    the current folder."""
    for param in command.params:
        valued = (isinstance(param, click.Option) and not param.is_flag and param.count is False) or \
            (isinstance(param, click.Argument) and not isinstance(param.type, click.types.UnprocessedParamType))
        if valued and not isinstance(param.type, _NonEmpty):
            param.type = _NonEmpty(param.type)
    refuse_outputs_over_inputs(command)
    refuse_repeated_options(command)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _refuse_empty_values(sub)


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        _accept_verbose(command)
        _refuse_empty_values(command)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError as e:
            # stdout never raises it (see attest.cli._exit.run); any other pipe is not the reader going
            # away, and click would turn it into exit 1 without a word
            raise RuntimeError(f"a pipe closed while attest wrote to it ({e.strerror})") from e

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][2]) for name in sorted(COMMANDS)])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name=DISTRIBUTION, prog_name="attest", message="%(prog)s (%(package)s) %(version)s")
@click.option("-v", "--verbose", count=True, help=VERBOSE_HELP)
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Build once in dev, verify everywhere: signed SLSA provenance for a dev -> stg -> prd path.

    \b
    Typical use:
      attest key generate --out dev-build
      attest build --signer dev-build.pem --artifact dist/ -- make dist
      attest verify dist/app.tar.gz --attestation provenance.intoto.jsonl --key dev-build.pub.pem

    Exit codes: 0 verified, 1 evidence rejected, 2 usage error, 3 input or
    configuration unreadable, 4 remote failure (S3, KMS), 70 internal error.
    """
    ctx.obj = {"verbose": verbose}
    _logging()
    _verbose(verbose)


def main(argv: list[str] | None = None) -> Any:
    from attest.cli._exit import run

    return run(cli, argv)
