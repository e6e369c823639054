"""Options shared by several commands, as named decorators, and output helpers."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from attest._atomic import same_file

F = TypeVar("F", bound=Callable[..., Any])

#: Files larger than this get a progress bar while hashed or uploaded (on a terminal only).
PROGRESS_THRESHOLD = 64 * 1024 * 1024


def format_option(f: F) -> F:
    return click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
                        show_default=True, help="Human text, or JSON on stdout for machines.")(f)


def registry_insecure_option(f: F) -> F:
    return click.option("--registry-insecure", "registry_insecure", multiple=True, metavar="HOST[:PORT]",
                        envvar="ATTEST_REGISTRY_INSECURE",
                        help="Reach this registry over plain HTTP, without TLS: a local test registry only. "
                             "Repeatable [env: ATTEST_REGISTRY_INSECURE, hosts separated by spaces].")(f)


def signer_option(required: bool = False) -> Callable[[F], F]:
    def decorate(f: F) -> F:
        f = click.option("--insecure-key-permissions", is_flag=True,
                         help="Accept a private key file that other users can read.")(f)
        return click.option("--signer", "signer_uri", required=required, metavar="URI",
                            help="Signing key: PATH or key:PATH (PEM, PKCS#8; password from ATTEST_KEY_PASSWORD), "
                                 "awskms:<key id|ARN|alias/NAME>.")(f)
    return decorate


class OutputPath(click.Path):
    """A file attest writes. Checked when the command line is read, before any work: its folder must exist
    and be a folder (a missing folder is a usage error, never created), and it must not be a folder itself.
    That it is not also an input of the same run is checked once every option is read
    (:func:`refuse_outputs_over_inputs`)."""

    def __init__(self, *, dir_okay: bool = False) -> None:
        super().__init__(dir_okay=dir_okay, path_type=Path)  # dir_okay: written inside, or a PREFIX beside it

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        path = Path(os.fsdecode(super().convert(value, param, ctx)))
        folder = path.parent
        if not folder.exists():
            self.fail(f"{path}: its folder {folder} does not exist; create it first", param, ctx)
        if not folder.is_dir():
            self.fail(f"{path}: {folder} is not a folder", param, ctx)
        return path


def refuse_outputs_over_inputs(command: click.Command) -> None:
    """Make ``command`` refuse, as a usage error and before any work, an output (an :class:`OutputPath`
    option) that is also a file one of its other options or arguments names: ``--emit-vsa`` onto the
    ``--attestation`` file would replace the evidence with the verdict on it."""
    outputs = [p for p in command.params if isinstance(getattr(p.type, "inner", p.type), OutputPath)]
    callback = command.callback
    if not outputs or callback is None or callback in _CHECKED:
        return

    def checked(*args: Any, **kwargs: Any) -> Any:
        named = [(p, v) for p in command.params if p not in outputs for v in _files_named(kwargs.get(p.name or ""))]
        for output in outputs:
            value = kwargs.get(output.name or "")
            if value is None:
                continue
            for param, given in named:
                if same_file(Path(value), given):
                    raise click.UsageError(f"{_show(output)} {value} is also {_show(param)}; write the output "
                                           "elsewhere")
        return callback(*args, **kwargs)

    _CHECKED.add(checked)
    command.callback = checked


_CHECKED: set[Callable[..., Any]] = set()
"""Callbacks that already check their outputs (a command is set up once, however often it is looked up)."""


def _files_named(value: Any) -> list[Path]:
    """The existing files a parameter's value names: a path, a ``key:PATH`` signer, a ``NAME=PATH``."""
    values = value if isinstance(value, list | tuple) else [value]
    found: list[Path] = []
    for item in values:
        if not isinstance(item, str | Path) or not str(item):
            continue
        text = str(item)
        for candidate in (text, text.partition(":")[2], text.partition("=")[2]):
            if candidate and os.path.exists(candidate):
                found.append(Path(candidate))
    return found


def _show(param: click.Parameter) -> str:
    return max(param.opts, key=len) if isinstance(param, click.Option) else (param.name or "").upper()


def emit_json(value: Any) -> None:
    import json  # here, not at the top: this module loads with every command, --help included

    click.echo(json.dumps(_texts(value), indent=2, sort_keys=True, default=str))


def _texts(value: Any) -> Any:
    """``value`` with every string that is not text (a file name the file system holds in bytes that are not UTF-8,
    kept by Python as lone surrogates) spelled with escapes: JSON whose strings hold lone surrogates is no UTF-8,
    and strict readers refuse it."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            from verify.formats.encoding import printable

            return printable(value)
        return value
    if isinstance(value, dict):
        return {_texts(k): _texts(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_texts(v) for v in value]
    return value


@contextmanager
def progress(description: str, total: int) -> Iterator[Callable[[int], None] | None]:
    """A progress callback drawing a bar on stderr, when stderr is a terminal and the work is large."""
    if total < PROGRESS_THRESHOLD or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def refuse_repeated_options(command: click.Command) -> None:
    """Make ``command`` refuse, as a usage error, an option that takes one value given more than once: click would
    keep the last and drop the others without a word, so that ``--policy strict.yaml --policy lax.yaml`` (a
    pipeline's variable and a default, say) verified under the second. Options that take many (``multiple``) and
    flags are left alone. Read from the arguments as given, before click parses them: the options up to ``--`` (and,
    for a command that takes its arguments as they come, such as ``attest build``'s, up to the first of those)."""
    if getattr(command.parse_args, "refuses_repeats", False):
        return  # (a command is set up once, however often it is looked up)
    single: dict[str, click.Option] = {}
    valued: set[str] = set()
    options = [param for param in command.params if isinstance(param, click.Option)]
    for param in options:
        if not param.is_flag and not param.count:
            valued.update(param.opts)
            if not param.multiple:
                single.update(dict.fromkeys(param.opts, param))
    sharing = {param.name for param in options if sum(other.name == param.name for other in options) > 1}
    choices = {opt: param for param in options if param.name in sharing for opt in param.opts}
    """Flags that set one value each (``--rollback``, ``--hotfix``): two of them exclude each other."""
    parse_args = command.parse_args
    # (a command's context settings decide: attest build's command line ends at its first argument)
    interspersed = command.context_settings.get("allow_interspersed_args", command.allow_interspersed_args)

    def parse(ctx: click.Context, args: list[str]) -> list[str]:
        seen: set[str] = set()
        chosen: dict[str, str] = {}
        given = iter(args)
        for word in given:
            if word == "--" or not word.startswith("-") or word == "-":
                if word == "--" or not interspersed:
                    break
                continue
            for name, attached in _options_in(word, valued):
                if name in valued and not attached:
                    next(given, None)  # its value, whatever it looks like
                param = single.get(name)
                if param is not None:
                    if param.name in seen:
                        raise click.UsageError(f"{'/'.join(param.opts)} is given more than once; give it once "
                                               "(only the last would count)", ctx=ctx)
                    seen.add(param.name or name)
                flag = choices.get(name)
                if flag is not None:
                    other = chosen.setdefault(flag.name or name, name)
                    if other != name:
                        raise click.UsageError(f"{other} and {name} exclude each other; give one", ctx=ctx)
        return parse_args(ctx, args)

    parse.refuses_repeats = True  # type: ignore[attr-defined]
    command.parse_args = parse  # type: ignore[method-assign]


def _options_in(word: str, valued: set[str]) -> list[tuple[str, str]]:
    """The options one word of a command line gives, each with the value attached to it ("" if none): ``--name``
    or ``--name=value``; ``-o``, ``-oVALUE``, or a cluster of flags that may end in an option with a value
    (``-vo FILE``, ``-vvoFILE``)."""
    if word.startswith("--"):
        name, _, value = word.partition("=")
        return [(name, value or ("=" if "=" in word else ""))]
    found = []
    for i in range(1, len(word)):
        name = "-" + word[i]
        if name in valued:
            found.append((name, word[i + 1:]))
            break
        found.append((name, ""))
    return found
