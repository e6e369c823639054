"""Shared fixtures: throw-away git repositories, key pairs, and a way to run the real CLI."""

from __future__ import annotations

import atexit
import locale
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from attest.signers.key import generate
from tests._zygote import Zygote, needs_exec

pytest_plugins = ["tests.conftest_aws"]  # a local moto server for AWS tests (real boto3, real HTTP)

# attest audit keeps an index under the user's cache folder by default: the tests (and the attest processes they
# start, which inherit this) keep theirs in a folder of their own, never in the home of whoever runs them
os.environ["XDG_CACHE_HOME"] = _CACHE = tempfile.mkdtemp(prefix="attest-tests-cache-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)  # each pytest process (and xdist worker) its own

ROOT = Path(__file__).resolve().parent.parent
CONFORMANCE = ROOT / "tests" / "assets" / "conformance"  # third-party vectors and trusted roots (its README.md)


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def __repr__(self) -> str:  # shown by pytest when an assertion fails
        return f"Result(code={self.code}, out={self.out[-2000:]!r}, err={self.err[-2000:]!r})"


def _clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CODEBUILD_", "GITHUB_", "GITLAB_", "CI_", "ATTEST_"))}
    env.update({"GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@example.com",
                "GIT_COMMITTER_NAME": "Dev", "GIT_COMMITTER_EMAIL": "dev@example.com",
                "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "NO_COLOR": "1"})
    env.update(extra or {})
    return env


AttestRunner = Callable[..., Result]


_ZYGOTE: Zygote | None = None


def _text(data: bytes) -> str:
    """Output decoded as ``subprocess.run(text=True)`` decodes it (the locale's encoding, universal newlines)."""
    return data.decode(locale.getpreferredencoding(False)).replace("\r\n", "\n").replace("\r", "\n")


def _zygote() -> Zygote:
    global _ZYGOTE
    if _ZYGOTE is None:
        _ZYGOTE = Zygote()
        atexit.register(_ZYGOTE.stop)
    return _ZYGOTE


def attest_bin() -> str:
    """A folder to put first on the PATH of a shell that runs ``attest`` as a user types it (a guide, a
    buildspec): its ``attest`` runs the real CLI as :func:`run_attest` does, forked, not started afresh (with
    ATTEST_TESTS_FRESH=1, the installed ``attest`` itself)."""
    if os.environ.get("ATTEST_TESTS_FRESH") == "1":
        return str(Path(sys.executable).parent)
    return _zygote().shim()


def run_attest(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None,
               input: str | None = None, timeout: float = 120, fresh: bool = False) -> Result:
    """Run the real ``attest`` CLI in a process of its own, in a clean environment (no CI variables).

    The process is forked from a zygote that has imported attest and its dependencies once (tests/_zygote.py: the
    suite's time is mostly Python's start-up otherwise); ``fresh=True``, or an environment that changes Python's
    start-up settings, execs ``python -m attest`` instead (a test reading attest's original environment block)."""
    argv, environment = [str(arg) for arg in args], _clean_env(env)
    if fresh or needs_exec(environment) or os.environ.get("ATTEST_TESTS_FRESH") == "1":
        done = subprocess.run([sys.executable, "-m", "attest", *argv], cwd=cwd, env=environment,
                              capture_output=True, text=True, input=input, timeout=timeout)
        return Result(done.returncode, done.stdout, done.stderr)
    folder = os.path.abspath(cwd if cwd is not None else os.getcwd())
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"no folder {folder} to run attest in")
    code, out, err = _zygote().run(argv, cwd=folder, env=environment, timeout=timeout,
                                 input=None if input is None else input.encode(locale.getpreferredencoding(False)))
    return Result(code, _text(out), _text(err))


@pytest.fixture
def attest() -> AttestRunner:
    """Run the real ``attest`` CLI in a subprocess: ``attest("verify", ..., cwd=dir, env={...})``."""
    return run_attest


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], env=_clean_env(), capture_output=True, text=True,
                          check=True)
    return done.stdout.strip()


BUILD_SCRIPT = """\
import os, pathlib
out = pathlib.Path("dist")
out.mkdir(exist_ok=True)
(out / "app.tar.gz").write_bytes(b"app built at " + os.environ["SOURCE_DATE_EPOCH"].encode())
(out / "sub").mkdir(exist_ok=True)
(out / "sub" / "data.bin").write_bytes(bytes(range(256)) * 1000)
"""


def make_repo(path: Path, *, ignore: str = "dist/\n*.pem\n*.intoto.jsonl\nstore/\n",
              origin: str = "git@github.com:acme/app.git", message: str = "first") -> Path:
    """A committed git work tree at ``path`` with an origin, a lockfile and a build script writing dist/."""
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "remote", "add", "origin", origin)
    (path / "requirements.txt").write_text("requests==2.32.3 --hash=sha256:" + "0" * 64 + "\n")
    (path / "build.py").write_text(BUILD_SCRIPT)
    (path / ".gitignore").write_text(ignore)
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", message)
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A committed git work tree with an origin, a lockfile and a build script writing dist/."""
    return make_repo(tmp_path / "app")


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path


def make_keypair(directory: Path, name: str, key_type: str = "ecdsa-p256") -> KeyPair:
    private_pem, public_pem = generate(key_type)
    private, public = directory / f"{name}.pem", directory / f"{name}.pub.pem"
    private.write_bytes(private_pem)
    private.chmod(0o600)
    public.write_bytes(public_pem)
    return KeyPair(private, public)


@pytest.fixture
def keys(tmp_path: Path) -> Iterator[dict[str, KeyPair]]:
    """dev (the builder), stg and other (an untrusted key) P-256 key pairs."""
    directory = tmp_path / "keys"
    directory.mkdir()
    yield {name: make_keypair(directory, name) for name in ("dev", "stg", "other")}


@pytest.fixture
def built(repo: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> Path:
    """``repo`` after a successful ``attest build`` (provenance.intoto.jsonl and dist/)."""
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "dist/",
                    "--", sys.executable, "build.py", cwd=repo)
    assert result.code == 0, result
    return repo


def missing_tool(reason: str) -> NoReturn:
    """A system tool or package a test needs is missing: skip, saying how to install it; under CI=true, fail
    (.ci/run and `make test` install every one, so there its absence is a broken set-up, not a skip)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI installs it, so its absence there is a failure", pytrace=False)
    pytest.skip(reason)


def need_tool(name: str, *, install: str) -> str:
    """The path of the program ``name``; :func:`missing_tool` (naming ``install``) if it is not on PATH."""
    path = shutil.which(name)
    if path is None:
        missing_tool(f"{name} is not installed ({install})")
    return path


from tests.postgres_infra import postgres_dsn  # noqa: E402,F401  (a throw-away PostgreSQL cluster)
from tests.registry_infra import oci_registry, oci_registry_prd  # noqa: E402,F401  (local docker-registries)
from tests.sigstore_infra.fixture import sigstore_local  # noqa: E402,F401  (local Fulcio/Rekor test services)


@pytest.fixture
def forked_halves(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """An audit's per-artefact steps split in two (verify.audit._halves) from 2 artefacts on, as they are from
    thousands; the pid of each copy forked is listed. Threads an earlier test left in this process (a worker pool's
    feeder, finishing) are not counted among those that would keep it from forking: the copy runs none of them and
    takes none of their locks; a thread the test starts still counts."""
    from verify.audit import _halves

    made: list[int] = []
    fork, stray = os.fork, {t for t in threading.enumerate() if t is not threading.current_thread()}

    def counted() -> int:
        pid = fork()
        if pid:
            made.append(pid)
        return pid

    monkeypatch.setattr(_halves, "SPLIT_AT_LEAST", 2)
    monkeypatch.setattr(os, "fork", counted)
    monkeypatch.setattr(threading, "active_count",
                        lambda: sum(1 for t in threading.enumerate() if t not in stray))  # (one ending meanwhile too)
    return made
