"""A real PostgreSQL 15 for the tests: a throw-away cluster made with initdb and run with pg_ctl on 127.0.0.1.

``postgres_dsn`` (session) makes a cluster in a temporary folder (owned by the ``postgres`` user when the tests
run as root: PostgreSQL refuses to run as root, and CI runs as root), starts it on a free loopback port with
trust authentication for loopback only, yields ``postgresql://postgres@127.0.0.1:PORT/postgres``, and stops and
removes it at the end. Each test takes a database of its own (:func:`fresh_database`).

Missing PostgreSQL skips (or, under CI=true, fails) naming the install command; so does missing psycopg.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import missing_tool

__all__ = ["INSTALL", "fresh_database", "postgres_dsn", "start_postgres"]

INSTALL = "apt-get install -y postgresql"


def _binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        missing_tool(f"PostgreSQL's {name} is not installed ({INSTALL})")
    return found


def _as_postgres(argv: list[str]) -> list[str]:
    """Run as the postgres user when this process is root (PostgreSQL will not run as root)."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


def start_postgres(folder: Path) -> tuple[str, Path]:
    """A cluster in ``folder`` on a free loopback port: (its DSN, its data folder)."""
    from tests.registry_infra import _free_port

    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data = folder / "data"
    done = subprocess.run(_as_postgres([initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync",
                                        "-E", "UTF8", "--locale=C"]), capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed: {done.stderr[-2000:]}")
    port = _free_port()
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    done = subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w",
                                        "-t", "60", "start"]), capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"pg_ctl start failed: {done.stderr[-2000:]} {(folder / 'log').read_text()[-2000:]}")
    return f"postgresql://postgres@127.0.0.1:{port}/postgres", data


def stop_postgres(data: Path, *, mode: str = "fast") -> None:
    subprocess.run(_as_postgres([_binary("pg_ctl"), "-D", str(data), "-m", mode, "-w", "stop"]),
                   capture_output=True, timeout=120, check=False)


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing_tool("psycopg is not installed (pip install 'attest-gate[postgres]')")
    folder = Path(tempfile.mkdtemp(prefix="attest-pg-"))  # not under pytest's root-only folder: postgres reads it
    try:
        dsn, data = start_postgres(folder)
        try:
            yield dsn
        finally:
            stop_postgres(data)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def fresh_database(dsn: str, name: str) -> str:
    """A new, empty database on the server ``dsn`` names; its DSN."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}"')
        db.execute(f'CREATE DATABASE "{name}"')
    return dsn.rsplit("/", 1)[0] + f"/{name}"
