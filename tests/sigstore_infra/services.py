"""Fulcio, Rekor and an identity provider on one local HTTP server, for keyless signing in tests.

Endpoints (the parts of each API sigstore-python 4.x calls, plus the cheap read-only ones):

    POST /api/v2/signingCert   Fulcio: {"certificateSigningRequest": base64(PEM CSR)} + Bearer token
                               -> {"signedCertificateEmbeddedSct": {"chain": {"certificates": [PEM...]}}}
    GET  /api/v2/trustBundle   Fulcio: {"chains": [{"certificates": [intermediate, root]}]}
    POST /api/v1/log/entries   Rekor v1: a proposed hashedrekord/dsse 0.0.1 entry -> {uuid: LogEntry}
    GET  /api/v1/log           Rekor v1: the tree head

Tokens are minted in-process (`SigstoreServices.mint_token`); there is no OIDC endpoint.

    with SigstoreServices() as services:
        files = services.write_trust_files(tmp_path)
        token = services.mint_token("alice@example.com", "https://accounts.example.com")
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import threading
from collections.abc import Callable
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from ._encoding import pem
from .ca import CertificateAuthority, CertificateRequestRejected
from .ct import CTLog
from .tlog import EntryRejected, TransparencyLog
from .tokens import InvalidToken, TokenMinter
from .trust import TrustFiles, write_trust_files

_logger = logging.getLogger(__name__)

# Keys and CA certificates are valid from a little before start-up, so clock skew cannot bite.
_BACKDATE = dt.timedelta(minutes=5)


class _BadRequest(Exception):
    """The request body is not what the endpoint expects."""


class SigstoreServices:
    """The local Sigstore instance: fresh keys, one CA, one CT log, one Rekor log, one token minter."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        """Generate every key and bind a free port on `host` (serving starts with `start()`)."""
        self.valid_from = dt.datetime.now(dt.UTC).replace(microsecond=0) - _BACKDATE
        self.tokens = TokenMinter()
        self.ct_log = CTLog()
        self.ca = CertificateAuthority(ct_log=self.ct_log, tokens=self.tokens, valid_from=self.valid_from)
        self.tlog = TransparencyLog()
        self._server = _Server((host, 0), self)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL of every service, e.g. `http://127.0.0.1:41234`."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        """Serve requests on a daemon thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="sigstore-local",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> SigstoreServices:
        """Start serving."""
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        """Stop serving."""
        self.stop()

    def mint_token(self, identity: str, issuer: str, **claims: Any) -> str:
        """An identity token the local CA accepts (see `TokenMinter.mint`)."""
        return self.tokens.mint(identity, issuer, **claims)

    def write_trust_files(self, directory: Path) -> TrustFiles:
        """Write trusted_root.json, signing_config.json and trust_config.json for this instance."""
        return write_trust_files(
            directory,
            url=self.url,
            ca=self.ca,
            tlog=self.tlog,
            ct_log=self.ct_log,
            valid_from=self.valid_from,
        )

    # The endpoints, independent of HTTP: (request JSON, headers) -> (status, response JSON).

    def _signing_cert(self, request: Any, headers: Message) -> tuple[int, dict[str, Any]]:
        scheme, _, token = (headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise InvalidToken("no bearer token in the Authorization header")
        try:
            csr_pem = base64.b64decode(request["certificateSigningRequest"], validate=True)
        except (KeyError, TypeError, ValueError) as e:
            raise _BadRequest("expected {'certificateSigningRequest': base64 PEM CSR}") from e
        chain = self.ca.issue(csr_pem=csr_pem, token=token)
        return 201, {"signedCertificateEmbeddedSct": {"chain": {"certificates": [pem(c) for c in chain]}}}

    def _trust_bundle(self, request: Any, headers: Message) -> tuple[int, dict[str, Any]]:
        return 200, {"chains": [{"certificates": [pem(c) for c in self.ca.chain]}]}

    def _create_entry(self, request: Any, headers: Message) -> tuple[int, dict[str, Any]]:
        if not isinstance(request, dict):
            raise _BadRequest("expected a proposed entry object")
        return 201, self.tlog.add(request)

    def _log_info(self, request: Any, headers: Message) -> tuple[int, dict[str, Any]]:
        return 200, self.tlog.info()

    def route(self, method: str, path: str) -> Callable[[Any, Message], tuple[int, dict[str, Any]]] | None:
        """The endpoint serving `method path`, if any."""
        routes = {
            ("POST", "/api/v2/signingCert"): self._signing_cert,
            ("GET", "/api/v2/trustBundle"): self._trust_bundle,
            ("POST", "/api/v1/log/entries"): self._create_entry,
            ("GET", "/api/v1/log"): self._log_info,
        }
        return routes.get((method, path))


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], services: SigstoreServices) -> None:
        self.services = services
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    """JSON in, JSON out; errors as `{"code": status, "message": text}` as Fulcio and Rekor answer them."""

    server: _Server

    def do_GET(self) -> None:
        """Serve a GET."""
        self._dispatch("GET")

    def do_POST(self) -> None:
        """Serve a POST."""
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        endpoint = self.server.services.route(method, urlsplit(self.path).path)
        if endpoint is None:
            self._reply(404, {"code": 404, "message": f"no endpoint {method} {self.path}"})
            return
        try:
            request = None
            if method == "POST":
                length = int(self.headers.get("Content-Length") or 0)
                request = json.loads(self.rfile.read(length))
            status, answer = endpoint(request, self.headers)
        except InvalidToken as e:
            status, answer = 401, {"code": 401, "message": str(e)}
        except (_BadRequest, CertificateRequestRejected, EntryRejected, ValueError) as e:
            status, answer = 400, {"code": 400, "message": str(e)}
        self._reply(status, answer)

    def _reply(self, status: int, answer: dict[str, Any]) -> None:
        body = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Log requests through `logging` instead of stderr."""
        _logger.debug("%s %s", self.address_string(), format % args)
