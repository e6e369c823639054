"""A real OCI registry for the tests: Debian's ``docker-registry`` (distribution 2.8) on 127.0.0.1.

``oci_registry`` (session) starts one registry process with a temporary storage folder on a free loopback
port, waits until ``/v2/`` answers, yields ``127.0.0.1:PORT``, and stops it at the end: one process per
test session, not per test (each test uses its own repository names). It speaks plain HTTP, as a test
registry does: clients pass ``--tls-verify=false`` (skopeo). distribution 2.8 has no referrers API, which
is what makes attest use the referrers tag schema against it.

``oci_registry_auth`` (session) is a second such registry behind HTTP basic auth (distribution's ``htpasswd``
auth, realm ``basic-realm``): it yields a :class:`AuthRegistry` (address, username, password). distribution
reads only bcrypt hashes from the htpasswd file; the ``bcrypt`` package (the ``test`` extra) makes one.

Missing ``docker-registry`` skips (or, under CI=true, fails) naming the install command.
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import missing_tool, need_tool

__all__ = ["AuthRegistry", "oci_registry", "oci_registry_auth", "start_registry"]

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
INSTALL = "apt-get install -y docker-registry skopeo"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_registry(folder: Path, extra_config: str = "") -> tuple[subprocess.Popen[bytes], str]:
    """A registry serving from ``folder``; (its process, ``127.0.0.1:PORT``) once ``/v2/`` answers.

    ``extra_config`` is appended to the YAML configuration (top-level sections, e.g. ``auth:``); a registry
    with auth is ready when ``/v2/`` answers 401."""
    binary = need_tool("docker-registry", install=INSTALL)
    port = _free_port()
    config = folder / "config.yml"
    (folder / "storage").mkdir(parents=True, exist_ok=True)
    config.write_text(f"""\
version: 0.1
log: {{level: warn}}
storage:
  filesystem: {{rootdirectory: {folder / 'storage'}}}
  delete: {{enabled: true}}
http:
  addr: 127.0.0.1:{port}
{extra_config}""")
    log = (folder / "registry.log").open("wb")
    process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {(folder / 'registry.log').read_text()[-2000:]}")
        try:
            with _NO_PROXY.open(f"http://{address}/v2/", timeout=2) as answer:
                if answer.status == 200:
                    return process, address
        except urllib.error.HTTPError as e:
            if e.code == 401 and extra_config:
                return process, address
            time.sleep(0.1)
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("docker-registry did not answer /v2/ within 30 s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _serving(folder: Path) -> Iterator[str]:
    process, address = start_registry(folder)
    try:
        yield address
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def oci_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _serving(tmp_path_factory.mktemp("registry"))


@pytest.fixture(scope="session")
def oci_registry_prd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second registry, standing for prd's ECR in promotion tests (one process per session too)."""
    yield from _serving(tmp_path_factory.mktemp("registry-prd"))


@dataclass(frozen=True)
class AuthRegistry:
    """A registry that answers only with HTTP basic credentials: ``username`` / ``password``."""

    address: str
    username: str
    password: str = "s3cret-registry-password"


@pytest.fixture(scope="session")
def oci_registry_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthRegistry]:
    try:
        import bcrypt
    except ImportError:
        missing_tool("the bcrypt package is not installed (pip install -e '.[test]')")
    folder = tmp_path_factory.mktemp("registry-auth")
    who = AuthRegistry(address="", username="ci-pusher")
    htpasswd = folder / "htpasswd"
    hashed = bcrypt.hashpw(who.password.encode(), bcrypt.gensalt(rounds=4)).decode("ascii")  # cheap: every request
    htpasswd.write_text(f"{who.username}:{hashed}\n")
    process, address = start_registry(folder, f"auth:\n  htpasswd: {{realm: basic-realm, path: {htpasswd}}}\n")
    try:
        yield AuthRegistry(address=address, username=who.username, password=who.password)
    finally:
        _stop(process)
