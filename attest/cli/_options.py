"""Options shared by several commands, as named decorators, and output helpers."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

#: Files larger than this get a progress bar while hashed or uploaded (on a terminal only).
PROGRESS_THRESHOLD = 64 * 1024 * 1024


def format_option(f: F) -> F:
    return click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
                        show_default=True, help="Human text, or JSON on stdout for machines.")(f)


def signer_option(required: bool = False) -> Callable[[F], F]:
    def decorate(f: F) -> F:
        f = click.option("--insecure-key-permissions", is_flag=True,
                         help="Accept a private key file that other users can read.")(f)
        return click.option("--signer", "signer_uri", required=required, metavar="URI",
                            help="Signing key: PATH or key:PATH (PEM, PKCS#8; password from ATTEST_KEY_PASSWORD), "
                                 "awskms:<key id|ARN|alias/NAME>.")(f)
    return decorate


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


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
