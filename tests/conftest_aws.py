"""Pytest plugin: a local moto server for tests that talk to AWS over real HTTP.

Use it from ``tests/conftest.py`` with ``pytest_plugins = ["tests.conftest_aws"]``
(or ``from tests.conftest_aws import *``). Fixtures:

* ``moto_endpoint`` (session): starts ``tests/aws_server.py`` (moto with the
  corrections described there) on a free port of 127.0.0.1, points the AWS
  environment at it (``AWS_ENDPOINT_URL``, test credentials, ``eu-west-1``, no
  proxy, no shared config files, no instance metadata) for the session, and
  yields its URL. The server and the environment are undone at the end.
* ``moto_raw_endpoint`` (session, started only when asked for): a second
  server running moto unchanged, for the tests that check the corrections
  are still needed.
* ``aws_env`` (function): the same environment, reapplied for one test, with
  moto's state wiped before the test. Yields a :class:`MotoEnv` with helpers to
  make clients and to switch IAM enforcement on.

No test using these fixtures can reach real AWS: every endpoint is overridden
and the credentials are fake.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

__all__ = [
    "MotoEnv", "MotoServer", "answering", "aws_env", "free_port", "moto_endpoint", "moto_raw_endpoint", "moto_server",
    "start_moto_server",
]

REGION = "eu-west-1"
#: moto's default account, used in the ARNs it makes.
ACCOUNT_ID = "123456789012"
_SERVER_SCRIPT = Path(__file__).with_name("aws_server.py")
_START_TIMEOUT = 60.0
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for 'unreachable endpoint' tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, data: bytes = b"", timeout: float = 10.0) -> bytes:
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "text/plain"})
    with _NO_PROXY.open(request, timeout=timeout) as answer:
        body: bytes = answer.read()
        return body


@dataclass
class MotoServer:
    """One running ``tests/aws_server.py`` process."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def reset(self) -> None:
        """Forget every bucket, key and IAM entity, and switch IAM enforcement off."""
        _post(f"{self.url}/moto-api/reset")
        _post(f"{self.url}/moto-api/reset-auth", b"inf")

    def stop(self) -> None:
        """Stop the server: close its stdin (it exits on EOF), then terminate, then kill."""
        with contextlib.suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        for stop in (None, self.process.terminate, self.process.kill):
            if stop is not None:
                stop()
            try:
                self.process.wait(timeout=5)
                return
            except subprocess.TimeoutExpired:
                continue


def _read_port(process: subprocess.Popen[bytes], deadline: float) -> int:
    stdout: IO[bytes] | None = process.stdout
    assert stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=0.2):
                if process.poll() is not None:
                    break
                continue
            line = stdout.readline().decode(errors="replace").strip()
            if line.startswith("PORT "):
                return int(line.split()[1])
            if not line and process.poll() is not None:
                break
    raise RuntimeError("the moto server did not announce its port")


def start_moto_server(log_path: Path, *, corrected: bool = True) -> MotoServer:
    """Start ``tests/aws_server.py`` on a free port and wait until it answers HTTP."""
    env = dict(os.environ, NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost",
               PYTHONUNBUFFERED="1")
    command = [sys.executable, str(_SERVER_SCRIPT), "--host", "127.0.0.1", "--port", "0"]
    if not corrected:
        command.append("--raw")
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                   env=env, cwd=_SERVER_SCRIPT.parent.parent)
    server = MotoServer(process=process, url="", log_path=log_path)
    deadline = time.monotonic() + _START_TIMEOUT
    try:
        server.url = f"http://127.0.0.1:{_read_port(process, deadline)}"
        while True:
            try:
                server.reset()
                return server
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
    except Exception as e:
        server.stop()
        raise RuntimeError(f"moto server failed to start ({e}); its log ends:\n{server.log_tail()}") from e


def _aws_environment(url: str, config_dir: Path) -> dict[str, str | None]:
    """The environment every AWS test runs in (None means 'unset')."""
    env: dict[str, str | None] = {name: None for name in os.environ if name.startswith("AWS_")}
    env.update({
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        # Nothing from the developer's ~/.aws, no instance metadata lookups.
        "AWS_CONFIG_FILE": str(config_dir / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(config_dir / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    })
    return env


def _apply(monkeypatch: pytest.MonkeyPatch, env: dict[str, str | None]) -> None:
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    log_dir = tmp_path_factory.mktemp("moto")
    server = start_moto_server(log_dir / "moto.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_endpoint(moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of the session's moto server; the AWS environment points at it until the session ends."""
    config_dir = tmp_path_factory.mktemp("aws-config")
    with pytest.MonkeyPatch.context() as monkeypatch:
        _apply(monkeypatch, _aws_environment(moto_server.url, config_dir))
        yield moto_server.url


@pytest.fixture(scope="session")
def moto_raw_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a second moto server WITHOUT attest's corrections (to notice when moto fixes them)."""
    server = start_moto_server(tmp_path_factory.mktemp("moto-raw") / "moto.log", corrected=False)
    try:
        yield server.url
    finally:
        server.stop()


_LOADER: Any = None


def _botocore_session() -> Any:
    """A new botocore session sharing one model loader (parsing the service models is the slow part)."""
    import botocore.loaders
    import botocore.session

    global _LOADER
    if _LOADER is None:
        _LOADER = botocore.loaders.create_loader()
    session = botocore.session.get_session()
    session.register_component("data_loader", _LOADER)
    return session


@dataclass(frozen=True)
class MotoEnv:
    """What an AWS test gets: the endpoint, the region, and a few helpers."""

    endpoint: str
    region: str
    account_id: str
    server: MotoServer

    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client for ``service`` on the moto server (fresh session, test credentials)."""
        import boto3

        kwargs.setdefault("region_name", self.region)
        session: Any = boto3.session.Session(botocore_session=_botocore_session())
        return session.client(service, **kwargs)

    def reset(self) -> None:
        self.server.reset()

    @contextlib.contextmanager
    def iam_enforced(self) -> Iterator[None]:
        """Within the block, moto checks every request against the caller's IAM policies."""
        _post(f"{self.endpoint}/moto-api/reset-auth", b"0")
        try:
            yield
        finally:
            _post(f"{self.endpoint}/moto-api/reset-auth", b"inf")

    def credentials_allowing(self, *actions: str, name: str = "limited") -> dict[str, str]:
        """Access keys of a new IAM user allowed only ``actions`` (on any resource), as client kwargs."""
        iam = self.client("iam")
        iam.create_user(UserName=name)
        policy = {"Version": "2012-10-17",
                  "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}]}
        iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}


@pytest.fixture
def aws_env(moto_endpoint: str, moto_server: MotoServer, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> MotoEnv:
    """A clean moto (state wiped, IAM enforcement off) and the AWS environment, for one test."""
    _apply(monkeypatch, _aws_environment(moto_endpoint, tmp_path / "aws-config"))
    moto_server.reset()
    return MotoEnv(endpoint=moto_endpoint, region=REGION, account_id=ACCOUNT_ID, server=moto_server)


@contextlib.contextmanager
def answering(body: bytes, content_type: str) -> Iterator[str]:
    """An HTTP endpoint on 127.0.0.1 that answers every request with ``body`` (status 200), as a captive portal or a
    broken proxy in front of S3 or KMS would: never an AWS answer. Yields its URL."""
    import http.server
    import threading

    class Answer(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_HEAD = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
