"""A small OCI distribution client: what attest asks of a registry, and nothing a registry can turn against it.

``Registry(host)`` speaks the distribution API (https://github.com/opencontainers/distribution-spec) over
urllib3 (already installed with boto3): manifests by tag or digest, blobs, uploads (with a cross-repository
mount where the registry allows it), and the referrers API. It authenticates as the registry's challenge
asks (HTTP basic, or the bearer token handshake) with the credentials :mod:`attest.registries.auth` finds.

What a registry can make attest do is bounded: a manifest is read up to
:data:`verify.limits.MAX_OCI_MANIFEST_BYTES` (one byte past it and reading stops); a blob is streamed
and hashed as it goes, never held, and refused as soon as it is longer than its descriptor; at most
:data:`MAX_REDIRECTS` redirects are followed, never from https to plain http, and credentials are not
sent to another host; every request has a timeout. Plain HTTP is used only for hosts named with
``--registry-insecure`` (test registries).

Failures are one sentence: the registry unreachable, refusing access or failing is :class:`RemoteError`
(exit 4); bytes that are not what was asked for are the trust core's :class:`DigestMismatch` or
:class:`LimitExceeded` (exit 1).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

import urllib3

from attest.errors import RemoteError
from attest.registries.auth import Credentials, find_credentials, parse_challenge
from verify.errors import DigestMismatch, LimitExceeded
from verify.formats.encoding import printable
from verify.limits import MAX_OCI_MANIFEST_BYTES

__all__ = ["MAX_REDIRECTS", "Fetched", "Registry"]

MAX_REDIRECTS = 5
#: Pages of one referrers API answer followed (the referrers themselves are bounded by MAX_REFERRERS).
MAX_REFERRER_PAGES = 20
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
_TIMEOUT = urllib3.Timeout(connect=15, read=120)
#: Once a transfer has run for _GRACE_S seconds, it must have come at this pace on average: a registry that sends a
#: byte now and then stays inside every read timeout, and would hold a run for days.
_MIN_BYTES_PER_S = 16 * 1024
_GRACE_S = 60.0
_CHUNK = 1024 * 1024
_MAX_TOKEN_BYTES = 1024 * 1024
_MAX_ERROR_BYTES = 4096
_REDIRECTS = frozenset({301, 302, 303, 307, 308})

Body = bytes | Callable[[], IO[bytes]] | None
"""A request body: bytes, or a function opening a fresh stream (so that a request can be sent again after the
registry asked for credentials)."""


@dataclass(frozen=True)
class Fetched:
    """A manifest as the registry answered: its bytes and what the registry said they were."""

    data: bytes
    content_type: str | None
    digest: str | None
    """The registry's ``Docker-Content-Digest`` header, if any (a claim: the trust core hashes the bytes)."""


def _proxy_for(url: str) -> str | None:
    proxies = urllib.request.getproxies()
    host = urllib.parse.urlsplit(url).hostname or ""
    if not proxies or urllib.request.proxy_bypass(host) or host in ("127.0.0.1", "localhost", "::1"):
        return None
    return proxies.get(urllib.parse.urlsplit(url).scheme)


class Registry:
    """One registry host, with its credentials and tokens (see the module docstring)."""

    def __init__(self, host: str, *, insecure: Collection[str] = (), env: Mapping[str, str] | None = None) -> None:
        self.host = host
        self._insecure = {h.lower() for h in insecure}
        self.base = f"{'http' if host.lower() in self._insecure else 'https'}://{host}"
        self._env = env
        self._credentials: Credentials | None = None
        self._looked_up = False
        self._auth: dict[str, str] = {}
        """scope -> Authorization header (basic: the same for every scope)."""
        self._basic = False
        self._pools: dict[str | None, urllib3.PoolManager] = {}

    # --- the API -------------------------------------------------------------------------------------------

    def manifest(self, repository: str, reference: str, *, accept: str) -> Fetched | None:
        """GET a manifest by tag or digest, at most MAX_OCI_MANIFEST_BYTES; None if the registry has none."""
        what = f"manifest {reference} of {self.host}/{repository}"
        response = self._call("GET", f"/v2/{repository}/manifests/{reference}", repository=repository,
                              headers={"Accept": accept}, what=what, missing_ok=True)
        if response is None:
            return None
        data = self._read(response, MAX_OCI_MANIFEST_BYTES, what=what)
        return Fetched(data=data, content_type=response.headers.get("Content-Type"),
                       digest=response.headers.get("Docker-Content-Digest"))

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> Mapping[str, str]:
        """PUT a manifest under a tag or its digest; the response's headers (``OCI-Subject`` says the registry
        indexed a referrer itself)."""
        response = self._call("PUT", f"/v2/{repository}/manifests/{reference}", repository=repository, push=True,
                              headers={"Content-Type": media_type}, body=data, expect=(201, 200),
                              what=f"storing manifest {reference} in {self.host}/{repository}")
        self._done(response, "a manifest stored")
        return dict(response.headers)

    def has_blob(self, repository: str, digest: str) -> bool:
        response = self._call("HEAD", f"/v2/{repository}/blobs/{digest}", repository=repository,
                              what=f"blob {digest} of {self.host}/{repository}", missing_ok=True)
        if response is None:
            return False
        response.release_conn()
        return True

    def read_blob(self, repository: str, digest: str, size: int, *, limit: int) -> bytes:
        """A small blob (an attestation, a config), whole: at most ``limit`` bytes, checked against its size and
        digest."""
        what = f"blob {digest} of {self.host}/{repository}"
        if size > limit:
            raise LimitExceeded(f"{what} is {size} bytes by its descriptor; attest reads at most {limit}")
        return b"".join(self.stream_blob(repository, digest, size))

    def stream_blob(self, repository: str, digest: str, size: int) -> Iterator[bytes]:
        """A blob's bytes in chunks, hashed as they pass: longer than ``size`` stops at once, and a different
        digest is refused after the last chunk (a consumer must not commit to the bytes before the end)."""
        what = f"blob {digest} of {self.host}/{repository}"
        response = self._call("GET", f"/v2/{repository}/blobs/{digest}", repository=repository, what=what)
        sha256, seen = hashlib.sha256(), 0
        try:
            for chunk in self._paced(response, _CHUNK, what=what):
                seen += len(chunk)
                if seen > size:
                    raise DigestMismatch(f"{what} is longer than the {size} bytes its descriptor says; the registry "
                                         "is broken or tampered with")
                sha256.update(chunk)
                yield chunk
        except urllib3.exceptions.HTTPError as e:
            raise RemoteError(f"registry {self.host} broke off sending {what}: {printable(str(e))[:200]}") from e
        finally:
            response.release_conn()
        if seen != size:
            raise DigestMismatch(f"{what} is {seen} bytes where its descriptor says {size}; the registry is broken or "
                                 "tampered with")
        if f"sha256:{sha256.hexdigest()}" != digest:
            raise DigestMismatch(f"{what} hashes to sha256:{sha256.hexdigest()}; the registry is broken or tampered "
                                 "with")

    def push_blob(self, repository: str, digest: str, size: int, body: bytes | Callable[[], IO[bytes]], *,
                  mount_from: str | None = None) -> str:
        """Make the blob present in ``repository``: "exists", "mounted" (from ``mount_from`` in this registry) or
        "uploaded" (one monolithic PUT, streamed from ``body``)."""
        if self.has_blob(repository, digest):
            return "exists"
        what = f"uploading blob {digest} to {self.host}/{repository}"
        query = f"?mount={digest}&from={mount_from}" if mount_from else ""
        scopes = (f"repository:{mount_from}:pull",) if mount_from else ()
        started = self._call("POST", f"/v2/{repository}/blobs/uploads/{query}", repository=repository, push=True,
                             expect=(201, 202), what=what, also=scopes, body=b"")
        self._done(started, what)
        if started.status == 201:
            return "mounted"
        location = started.headers.get("Location")
        if not location:
            raise RemoteError(f"registry {self.host} started an upload without saying where to send it ({what})")
        url = self._joined(self.base + "/", location, what=what)
        url += ("&" if self._split(url, what=what).query else "?") + urllib.parse.urlencode({"digest": digest})
        done = self._call("PUT", url, repository=repository, push=True, body=body, expect=(201,), what=what,
                          headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)})
        self._done(done, what)
        return "uploaded"

    def referrers(self, repository: str, digest: str, *, accept: str, pages: int = MAX_REFERRER_PAGES
                  ) -> list[Fetched] | None:
        """The referrers API's answer for ``digest``, every page (``Link: <...>; rel="next"``, at most ``pages``);
        None when the registry has no referrers API (a 404), and the caller falls back to the referrers tag
        schema."""
        what = f"the referrers of {digest} in {self.host}/{repository}"
        url: str | None = f"/v2/{repository}/referrers/{digest}"
        answers: list[Fetched] = []
        while url is not None:
            if len(answers) == pages:
                raise LimitExceeded(f"{what} come in more than {pages} pages; attest reads at most that many")
            response = self._call("GET", url, repository=repository, headers={"Accept": accept}, what=what,
                                  missing_ok=not answers)
            if response is None:
                return None
            link = response.headers.get("Link")
            answers.append(Fetched(data=self._read(response, MAX_OCI_MANIFEST_BYTES, what=what),
                                   content_type=response.headers.get("Content-Type"), digest=None))
            url = self._next_page(url, link, what=what)
        return answers

    def _next_page(self, url: str, link: str | None, *, what: str) -> str | None:
        """The next page a ``Link`` header names, on this registry only."""
        if not link:
            return None
        found = _NEXT.search(link)
        if found is None:
            return None
        target = self._joined(self.base + url if url.startswith("/") else url, found.group(1), what=what)
        if not self._own(target) or self._split(target, what=what).scheme != urllib.parse.urlsplit(self.base).scheme:
            raise RemoteError(f"registry {self.host} sends the next page of {what} to another host or scheme; attest "
                              "reads referrers from the image's registry only, as it was asked")
        return target

    # --- HTTP ----------------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, repository: str, what: str, push: bool = False,
              headers: Mapping[str, str] | None = None, body: Body = None, expect: tuple[int, ...] = (200,),
              missing_ok: bool = False, also: tuple[str, ...] = ()) -> Any:
        """One request, authenticated as the registry asks (once more after a 401 challenge); the response of an
        expected status, None for a 404 when ``missing_ok``, else :class:`RemoteError`."""
        url = self._target(path, what=what) if path.startswith(("http://", "https://")) else self.base + path
        scopes = (f"repository:{repository}:{'pull,push' if push else 'pull'}", *also)
        for attempt in (0, 1):
            sent = dict(headers or {})
            token = self._auth.get(scopes[0]) if not self._basic else self._auth.get("*")
            if token and self._own(url):  # (an upload's Location elsewhere carries its own authorisation)
                sent["Authorization"] = token
            response, answered = self._send(method, url, sent, body, what=what)
            # a challenge counts only from the registry itself: after a redirect elsewhere, its credentials would
            # go to whatever token service that host names
            if response.status == 401 and attempt == 0 and self._own(answered):
                challenge = response.headers.get("WWW-Authenticate", "")
                self._done(response, what)
                self._authenticate(challenge, scopes, what=what)
                continue
            break
        if response.status in expect:
            return response
        if response.status == 404 and missing_ok:
            self._done(response, what)
            return None
        raise self._failure(response, what)

    def _own(self, url: str) -> bool:
        """Whether ``url`` is on the registry's own host (and port): the only place its credentials go."""
        return self._split(url, what="a request").netloc.lower() == urllib.parse.urlsplit(self.base).netloc.lower()

    def _target(self, url: str, *, what: str) -> str:
        """A URL the registry named (an upload's Location), checked as a redirect is: a web address, on plain http
        only for a host named with --registry-insecure."""
        return self._follow(self.base, url, {}, what=what, verb="sent")

    def _send(self, method: str, url: str, headers: dict[str, str], body: Body, *, what: str) -> tuple[Any, str]:
        """Send, following at most MAX_REDIRECTS redirects (never to plain http from https, and credentials
        never to another host); the response and the URL that gave it."""
        for _ in range(MAX_REDIRECTS + 1):
            data = body() if callable(body) else body
            try:
                response = self._pool(url).request(method, url, headers=headers, body=data, redirect=False,
                                                   retries=False, preload_content=False, timeout=_TIMEOUT)
            except urllib3.exceptions.HTTPError as e:
                raise RemoteError(f"cannot reach registry {self.host} ({what}): {printable(str(e))[:200]}") from e
            finally:
                if data is not None and hasattr(data, "close"):
                    data.close()
            if response.status not in _REDIRECTS:
                return response, url
            location = response.headers.get("Location", "")
            self._done(response, what)
            target = self._joined(url, location, what=what)
            url = self._follow(url, target, headers, what=what)
            if response.status == 303:
                method, body = "GET", None
        raise RemoteError(f"registry {self.host} redirected {what} more than {MAX_REDIRECTS} times; it is "
                          "misconfigured (a redirect loop?)")

    def _follow(self, old: str, new: str, headers: dict[str, str], *, what: str, verb: str = "redirected") -> str:
        before, after = urllib.parse.urlsplit(old), self._split(new, what=what)
        if after.scheme not in ("http", "https") or not after.netloc:
            raise RemoteError(f"registry {self.host} {verb} {what} to {printable(new)[:120]!r}, which is not a "
                              "web address")
        if after.scheme == "http" and (after.netloc.lower() not in self._insecure):
            raise RemoteError(f"registry {self.host} {verb} {what} to plain http ({after.netloc}); attest "
                              "follows plain http only to hosts named with --registry-insecure")
        if after.netloc.lower() != before.netloc.lower():
            headers.pop("Authorization", None)  # a presigned URL elsewhere carries its own authorisation
        return new

    def _split(self, url: str, *, what: str) -> urllib.parse.SplitResult:
        """``url``, an address the registry sent, in its parts; :class:`RemoteError` if it is none."""
        try:
            return urllib.parse.urlsplit(url)
        except ValueError as e:
            raise self._malformed(url, e, what) from e

    def _joined(self, base: str, url: str, *, what: str) -> str:
        """``url``, an address the registry sent, read against ``base``; :class:`RemoteError` if it is none."""
        try:
            return urllib.parse.urljoin(base, url)
        except ValueError as e:
            raise self._malformed(url, e, what) from e

    def _malformed(self, url: str, error: ValueError, what: str) -> RemoteError:
        return RemoteError(f"registry {self.host} sent a malformed address ({printable(url)[:120]!r}: {error}) for "
                           f"{what}; it misbehaves")

    def _pool(self, url: str) -> urllib3.PoolManager:
        proxy = _proxy_for(url)
        if proxy not in self._pools:
            self._pools[proxy] = (urllib3.ProxyManager(proxy, retries=False) if proxy
                                  else urllib3.PoolManager(retries=False))
        return self._pools[proxy]

    def _read(self, response: Any, limit: int, *, what: str) -> bytes:
        """The whole body, stopping one chunk past ``limit`` whatever Content-Length said."""
        chunks, seen = [], 0
        try:
            for chunk in self._paced(response, 64 * 1024, what=what):
                seen += len(chunk)
                if seen > limit:
                    raise LimitExceeded(f"{what} is over {limit} bytes; attest reads at most that much")
                chunks.append(chunk)
        except urllib3.exceptions.HTTPError as e:
            raise RemoteError(f"registry {self.host} broke off sending {what}: {printable(str(e))[:200]}") from e
        finally:
            response.release_conn()
        return b"".join(chunks)

    def _done(self, response: Any, what: str) -> None:
        """Done with a response whose body is not wanted (a redirect's, a challenge's, a 404's, an upload's): read
        up to :data:`_MAX_ERROR_BYTES` of it, paced as any body, so that its connection may be used again; a longer
        one is not read on (a registry may send one without end): its connection is closed."""
        seen = 0
        try:
            for chunk in self._paced(response, _MAX_ERROR_BYTES, what=f"the answer to {what}"):
                seen += len(chunk)
                if seen > _MAX_ERROR_BYTES:
                    break
            else:
                response.release_conn()
                return
        except (RemoteError, urllib3.exceptions.HTTPError):
            pass
        response.close()
        response.release_conn()

    def _paced(self, response: Any, amount: int, *, what: str) -> Iterator[bytes]:
        """The body in chunks of at most ``amount`` bytes, as they come (one read each): :class:`RemoteError` once
        it has come slower than :data:`_MIN_BYTES_PER_S` for longer than :data:`_GRACE_S`."""
        started, seen = time.monotonic(), 0
        while chunk := response.read1(amount):
            seen += len(chunk)
            elapsed = time.monotonic() - started
            if elapsed > _GRACE_S and seen < _MIN_BYTES_PER_S * elapsed:
                raise RemoteError(f"registry {self.host} sends {what} at {seen / elapsed:.0f} bytes a second, slower "
                                  f"than the {_MIN_BYTES_PER_S} attest waits for; it is stalled or hostile: retry "
                                  "later")
            yield chunk

    def _failure(self, response: Any, what: str) -> RemoteError:
        status = response.status
        try:
            detail = response.read(_MAX_ERROR_BYTES)
            errors = json.loads(detail).get("errors") or []
            code = " ".join(str(e.get("code", "")) for e in errors[:3] if isinstance(e, dict)).strip()
        except Exception:
            code = ""
        finally:
            response.release_conn()
        why = f" ({printable(code)[:80]})" if code else ""
        if status in (401, 403):
            return RemoteError(f"registry {self.host} refused {what}: {status}{why}; log in (skopeo login {self.host}"
                               " or docker login, or REGISTRY_AUTH_FILE) or grant this identity access")
        return RemoteError(f"registry {self.host} answered {status}{why} to {what}; retry later, or check the "
                           "registry")

    # --- authentication ------------------------------------------------------------------------------------

    def _creds(self) -> Credentials | None:
        if not self._looked_up:
            self._credentials = find_credentials(self.host, self._env)
            self._looked_up = True
        return self._credentials

    def _authenticate(self, challenge: str, scopes: tuple[str, ...], *, what: str) -> None:
        scheme, params = parse_challenge(challenge)
        credentials = self._creds()
        if scheme == "basic":
            if credentials is None:
                raise RemoteError(f"registry {self.host} asks for a password for {what} and attest has none; log in "
                                  f"(skopeo login {self.host} or docker login) or set REGISTRY_AUTH_FILE")
            self._basic = True
            self._auth["*"] = credentials.basic()
            return
        if scheme != "bearer" or not params.get("realm"):
            raise RemoteError(f"registry {self.host} asks for authentication attest does not speak "
                              f"({printable(challenge)[:80]!r}) for {what}")
        self._auth[scopes[0]] = "Bearer " + self._token(params, scopes, credentials, what=what)

    def _token(self, params: Mapping[str, str], scopes: tuple[str, ...], credentials: Credentials | None, *,
               what: str) -> str:
        """The standard token handshake: GET realm?service=...&scope=... (with basic credentials if any)."""
        realm = params["realm"]
        parts = self._split(realm, what=what)
        if parts.scheme != "https" and not (parts.scheme == "http" and parts.netloc.lower() in self._insecure):
            raise RemoteError(f"registry {self.host} sends attest for a token to {printable(realm)[:120]!r}, which "
                              "is not https; attest sends credentials over plain http only to --registry-insecure "
                              "hosts")
        query = [("service", params["service"])] if params.get("service") else []
        query += [("scope", scope) for scope in scopes]
        url = realm + ("&" if parts.query else "?") + urllib.parse.urlencode(query)
        headers = {"Authorization": credentials.basic()} if credentials is not None else {}
        response, _ = self._send("GET", url, headers, None, what=f"a token for {what}")
        if response.status != 200:
            raise self._failure(response, f"a token for {what}")
        data = self._read(response, _MAX_TOKEN_BYTES, what=f"the token for {what}")
        try:
            answer = json.loads(data)
            token = answer.get("token") or answer.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RemoteError(f"the token service of {self.host} answered without a token for {what}")
        return token
