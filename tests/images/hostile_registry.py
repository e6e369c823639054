"""A hostile (or merely broken) OCI registry on 127.0.0.1: the adversary attest's registry client must survive.

attest verifies images in registries it does not run: a registry is a stranger's web server, and nothing it
answers is believed until it hashes to what was asked for. :class:`HostileRegistry` is that stranger, played
by the standard library's ``ThreadingHTTPServer`` on a free loopback port, speaking just enough of the
distribution API (https://github.com/opencontainers/distribution-spec) to be asked the questions attest
asks, and answering whatever a test tells it to:

* a table of routes, ``(method, path) -> (status, headers, body)``, the body bytes or a function yielding
  chunks (a 50 MB blob made lazily, a 20 MB referrers index made once); HEAD answers as GET without a body;
* helpers for what a registry serves: :meth:`~HostileRegistry.add_manifest` (by digest and/or tag, whatever
  bytes, so a manifest may lie about its digest), :meth:`~HostileRegistry.add_blob` (likewise),
  :meth:`~HostileRegistry.set_referrers` (the OCI 1.1 referrers API, which Debian's docker-registry lacks;
  without it the API path is a 404, as on a registry that has none);
* misbehaviour: :meth:`~HostileRegistry.redirect` (a loop, or off to another host),
  :meth:`~HostileRegistry.demand_basic` (401 with ``WWW-Authenticate: Basic`` until the right password comes),
  :meth:`~HostileRegistry.fail` (a 5xx);
* :attr:`~HostileRegistry.log`: every request as it arrived (method, path, headers), to show what attest
  sent where (no password to another host, no read past a blob's size).

``GET /v2/`` answers 200; any other route nobody set is a 404 with a distribution error body, as a registry
answers for what it does not have. The server is cheap: the ``hostile_registry`` fixture starts one per test,
and :func:`start_hostile_registry` more where a test needs a second host.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

__all__ = ["HostileRegistry", "Response", "Seen", "hostile_registry", "start_hostile_registry"]

MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"

Body = bytes | Callable[[], Iterable[bytes]]
"""What a route answers with: bytes, or a function yielding the body in chunks (then ``length`` is declared)."""


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Response:
    """A canned answer."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Body = b""
    length: int | None = None
    """The Content-Length sent for a chunked-up body (bytes: their length)."""
    sent: int = 0
    """How many body bytes were written so far (all requests to this route)."""

    def __post_init__(self) -> None:
        if isinstance(self.body, bytes) and self.length is None:
            self.length = len(self.body)
        assert self.length is not None, "a body made in chunks needs its length declared"


@dataclass(frozen=True)
class Seen:
    """A request as the registry received it."""

    method: str
    path: str
    headers: Mapping[str, str]
    """Lower-cased names."""

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


def _error(code: str, message: str) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode()


class HostileRegistry:
    """The registry a test configures (see the module docstring)."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Response] = {}
        self.log: list[Seen] = []
        self._basic: tuple[str, str] | None = None  # (expected Authorization, realm)
        self._server = _Server(("127.0.0.1", 0), _handler(self))
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"hostile-registry-{self.address}", daemon=True)

    # --- configuring ---------------------------------------------------------------------------------------

    def route(self, method: str, path: str, status: int = 200, headers: Mapping[str, str] | None = None,
              body: Body = b"", *, length: int | None = None) -> Response:
        """Answer ``method path`` with this, every time (a path without a query answers whatever the query)."""
        response = Response(status=status, headers=dict(headers or {}), body=body, length=length)
        self.routes[(method.upper(), path)] = response
        return response

    def add_manifest(self, repository: str, data: bytes, content_type: str = MEDIA_OCI_MANIFEST, *,
                     digest: str | None = None, tag: str | None = None) -> str:
        """Serve ``data`` as the manifest ``digest`` (by default its true digest) and under ``tag``; the digest."""
        digest = digest or sha256_digest(data)
        headers = {"Content-Type": content_type, "Docker-Content-Digest": digest}
        for reference in (digest, tag):
            if reference is not None:
                self.route("GET", f"/v2/{repository}/manifests/{reference}", 200, headers, data)
                self.route("HEAD", f"/v2/{repository}/manifests/{reference}", 200, headers, data)
        return digest

    def add_blob(self, repository: str, data: Body, *, digest: str | None = None,
                 length: int | None = None) -> str:
        """Serve ``data`` as the blob ``digest`` (by default its true digest); the digest."""
        if digest is None:
            assert isinstance(data, bytes), "a lazily made blob needs its digest given"
            digest = sha256_digest(data)
        headers = {"Content-Type": "application/octet-stream", "Docker-Content-Digest": digest}
        for method in ("GET", "HEAD"):
            self.route(method, f"/v2/{repository}/blobs/{digest}", 200, headers, data, length=length)
        return digest

    def set_referrers(self, repository: str, subject: str, index: bytes | list[Mapping[str, Any]]) -> None:
        """The referrers API's answer for ``subject``: an OCI index of ``index`` descriptors, or those bytes."""
        data = index if isinstance(index, bytes) else json.dumps(
            {"schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX, "manifests": list(index)}).encode()
        self.route("GET", f"/v2/{repository}/referrers/{subject}", 200, {"Content-Type": MEDIA_OCI_INDEX}, data)

    def redirect(self, method: str, path: str, location: str, status: int = 307) -> None:
        """Answer ``method path`` with a redirect to ``location`` (itself, for a loop)."""
        self.route(method, path, status, {"Location": location}, b"")

    def fail(self, method: str, path: str, status: int = 500) -> None:
        self.route(method, path, status, {"Content-Type": "application/json"},
                   _error("UNKNOWN", "the hostile registry is having a bad day"))

    def demand_basic(self, username: str, password: str, realm: str = "x") -> None:
        """Every request without ``Authorization: Basic base64(username:password)`` gets a 401 challenge."""
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        self._basic = (f"Basic {token}", realm)

    # --- what happened -------------------------------------------------------------------------------------

    def requests(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        return [seen for seen in list(self.log)
                if (method is None or seen.method == method) and (path is None or seen.path == path)]

    # --- serving -------------------------------------------------------------------------------------------

    def answer(self, method: str, path: str, headers: Mapping[str, str]) -> Response:
        self.log.append(Seen(method, path, dict(headers)))
        if self._basic is not None and headers.get("authorization") != self._basic[0]:
            return Response(401, {"WWW-Authenticate": f'Basic realm="{self._basic[1]}"',
                                  "Content-Type": "application/json"},
                            _error("UNAUTHORIZED", "authentication required"))
        if method in ("GET", "HEAD") and path == "/v2/":
            return Response(200, {"Content-Type": "application/json"}, b"{}")
        route = self.routes.get((method, path))
        if route is not None:
            return route
        kind = path.split("/")[-2] if path.count("/") >= 3 else ""
        code = {"manifests": "MANIFEST_UNKNOWN", "blobs": "BLOB_UNKNOWN", "referrers": "NAME_UNKNOWN"}.get(
            kind, "NAME_UNKNOWN")
        return Response(404, {"Content-Type": "application/json"}, _error(code, f"{path} is unknown"))

    def start(self) -> HostileRegistry:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a handler still writing to a client that hung up does not hold up the test

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client hanging up mid-answer is what these tests provoke, not news


def _handler(registry: HostileRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a registry: urllib3 reuses its connections

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)  # an upload's bytes: read and thrown away
            path = self.path  # a route with its query (a page of the referrers API) first, else without it
            if (self.command, path) not in registry.routes:
                path = self.path.split("?", 1)[0]
            response = registry.answer(self.command, path, {k.lower(): v for k, v in self.headers.items()})
            try:
                self.send_response(response.status)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(response.length if response.length is not None else 0))
                self.end_headers()
                if self.command != "HEAD":
                    for chunk in _chunks(response.body):
                        self.wfile.write(chunk)
                        response.sent += len(chunk)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError):
                self.close_connection = True  # attest hung up (as it should, on a blob longer than said)

        do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _serve

    return Handler


def _chunks(body: Body) -> Iterator[bytes]:
    if isinstance(body, bytes):
        if body:
            yield body
        return
    yield from body()


@contextmanager
def start_hostile_registry() -> Iterator[HostileRegistry]:
    """A hostile registry serving until the block ends."""
    registry = HostileRegistry().start()
    try:
        yield registry
    finally:
        registry.stop()


@pytest.fixture
def hostile_registry() -> Iterator[HostileRegistry]:
    """A fresh :class:`HostileRegistry` on 127.0.0.1 (``.address`` is ``127.0.0.1:PORT``) for one test."""
    with start_hostile_registry() as registry:
        yield registry
