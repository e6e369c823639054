"""Who attest is to a registry: credentials from the files and helpers people already have, HTTP basic and the
bearer token handshake, and ECR's password; each failure one sentence with the right exit code.

* A registry behind htpasswd basic auth (distribution 2.8, ``oci_registry_auth``): build --publish with a
  podman auth file (REGISTRY_AUTH_FILE), verify with a docker config (DOCKER_CONFIG), a credential helper,
  and the failures: no credentials, a wrong password, a missing helper, an auth file that is not JSON.
* The bearer token handshake: a stdlib token server and a stdlib front that asks for its tokens before
  passing requests on to the session's plain registry (``oci_registry``).
* ECR: the password from GetAuthorizationToken, against the local moto server.

Every run gets an empty HOME and XDG_RUNTIME_DIR, and REGISTRY_AUTH_FILE / DOCKER_CONFIG set empty (unset as
far as attest is concerned), so nothing of the developer's own logins is read.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import stat
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.client import HTTPConnection
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import KeyPair, Result, make_keypair, make_repo, run_attest
from tests.conftest_aws import MotoEnv
from tests.registry_infra import AuthRegistry, oci_registry_auth  # noqa: F401  (the session's fixture)

EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}
REPOSITORY = "auth/app"
BEARER_REPOSITORY = "bearer/app"


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _isolated(home: Path, **extra: str) -> dict[str, str]:
    """An environment where attest finds only the credentials a test puts there."""
    home.mkdir(parents=True, exist_ok=True)
    return {"HOME": str(home), "XDG_RUNTIME_DIR": str(home / "run"), "REGISTRY_AUTH_FILE": "",
            "DOCKER_CONFIG": "", **extra}


def _auth_file(path: Path, host: str, user: str, password: str) -> Path:
    """A podman/skopeo auth.json (or docker config.json: the same ``auths`` shape) for ``host``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"auths": {host: {"auth": _basic(user, password)}}}))
    return path


def _one_sentence(ran: Result, code: int) -> str:
    assert ran.code == code, ran
    assert "Traceback" not in ran.err, ran
    lines = ran.err.strip().splitlines()
    assert len(lines) == 1, ran
    return lines[0]


def _build(repo: Path, key: KeyPair, target: str, *insecure: str, env: dict[str, str]) -> Result:
    """pack an image into ../image (outside the git work tree) and build --publish it to ``target``."""
    if not (repo.parent / "image").exists():
        site = repo.parent / "site"
        site.mkdir()
        (site / "index.html").write_text("<h1>authenticated</h1>\n")
        packed = run_attest("pack", site, "--output", "oci-layout:../image:v1", cwd=repo, env={**env, **EPOCH})
        assert packed.code == 0, packed
    options = [part for host in insecure for part in ("--registry-insecure", host)]
    return run_attest("build", "--signer", key.private, "--artifact", "oci-layout:../image:v1", "--publish",
                      f"oci://{target}", *options, cwd=repo, env=env)


# --- a registry behind htpasswd basic auth ---------------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    registry: AuthRegistry
    repo: Path
    key: KeyPair
    image: str
    """oci://ADDR/auth/app:v1"""


@pytest.fixture(scope="module")
def published(oci_registry_auth: AuthRegistry, tmp_path_factory: pytest.TempPathFactory) -> Published:  # noqa: F811
    """An image built and published to the basic-auth registry, the push logged in by a podman auth file."""
    top = tmp_path_factory.mktemp("auth-flow")
    repo = make_repo(top / "app")
    key = make_keypair(top, "dev")
    registry = oci_registry_auth
    podman = _auth_file(top / "podman" / "auth.json", registry.address, registry.username, registry.password)
    built = _build(repo, key, f"{registry.address}/{REPOSITORY}", registry.address,
                   env=_isolated(top / "home", REGISTRY_AUTH_FILE=str(podman)))
    assert built.code == 0, built
    return Published(registry, repo, key, f"oci://{registry.address}/{REPOSITORY}:v1")


def _verify(published: Published, env: dict[str, str]) -> Result:
    return run_attest("verify", published.image, "--key", published.key.public, "--registry-insecure",
                      published.registry.address, cwd=published.repo, env=env)


def test_build_logs_in_from_the_podman_auth_file_and_verify_from_the_docker_config(published: Published,
                                                                                    tmp_path: Path) -> None:
    registry = published.registry
    docker = tmp_path / "docker"
    _auth_file(docker / "config.json", registry.address, registry.username, registry.password)
    ran = _verify(published, _isolated(tmp_path / "home", DOCKER_CONFIG=str(docker)))
    assert ran.code == 0, ran
    # a docker config in the default place (~/.docker) is found as well
    _auth_file(tmp_path / "home2" / ".docker" / "config.json", registry.address, registry.username,
               registry.password)
    assert _verify(published, _isolated(tmp_path / "home2")).code == 0


def test_without_credentials_the_refusal_says_to_log_in(published: Published, tmp_path: Path) -> None:
    line = _one_sentence(_verify(published, _isolated(tmp_path / "home")), 4)
    assert "log in" in line and published.registry.address in line


def test_a_wrong_password_is_refused_in_one_sentence(published: Published, tmp_path: Path) -> None:
    registry = published.registry
    wrong = _auth_file(tmp_path / "auth.json", registry.address, registry.username, "not-the-password")
    line = _one_sentence(_verify(published, _isolated(tmp_path / "home", REGISTRY_AUTH_FILE=str(wrong))), 4)
    assert "401" in line and "log in" in line
    assert "not-the-password" not in line


def _helper(bin_dir: Path, name: str, body: str) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / f"docker-credential-{name}"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


def test_a_credential_helper_named_in_the_docker_config_is_asked(published: Published, tmp_path: Path) -> None:
    registry = published.registry
    asked = tmp_path / "asked"
    _helper(tmp_path / "bin", "fake", f"""\
read -r host
echo "$1 $host" >> {asked}
if [ "$1" = get ] && [ "$host" = "{registry.address}" ]; then
  printf '{{"ServerURL": "%s", "Username": "{registry.username}", "Secret": "{registry.password}"}}\\n' "$host"
else
  echo "credentials not found in native keychain"; exit 1
fi
""")
    docker = tmp_path / "docker"
    docker.mkdir()
    (docker / "config.json").write_text(json.dumps({"credHelpers": {registry.address: "fake"}}))
    path = f"{tmp_path / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    ran = _verify(published, _isolated(tmp_path / "home", DOCKER_CONFIG=str(docker), PATH=path))
    assert ran.code == 0, ran
    assert asked.read_text().splitlines() == [f"get {registry.address}"]  # asked once per run, for this host


def test_a_credential_helper_that_is_not_installed_is_named(published: Published, tmp_path: Path) -> None:
    docker = tmp_path / "docker"
    docker.mkdir()
    (docker / "config.json").write_text(json.dumps({"credHelpers": {published.registry.address: "absent-xyz"}}))
    line = _one_sentence(_verify(published, _isolated(tmp_path / "home", DOCKER_CONFIG=str(docker))), 3)
    assert "docker-credential-absent-xyz" in line and "not installed" in line


def test_an_auth_file_that_is_not_json_is_named(published: Published, tmp_path: Path) -> None:
    broken = tmp_path / "auth.json"
    broken.write_text('{"auths": {"127.0.0.1": ')
    line = _one_sentence(_verify(published, _isolated(tmp_path / "home", REGISTRY_AUTH_FILE=str(broken))), 3)
    assert str(broken) in line and "not valid JSON" in line


# --- the bearer token handshake ----------------------------------------------------------------------------------

_NAME = re.compile(r"^/v2/(?P<name>.+?)/(?:manifests|blobs|referrers|tags)/")
_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade", "authorization"}


@dataclass
class TokenService:
    """What the token server saw and granted; ``key`` is the JSON field it answers the token in."""

    user: str = "token-user"
    password: str = "token-password"
    key: str = "token"
    seen: list[dict[str, Any]] = field(default_factory=list)
    grants: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def issue(self, query: dict[str, list[str]], authorization: str | None) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.seen.append({"query": query, "authorization": authorization})
        if authorization != "Basic " + _basic(self.user, self.password):
            return 401, {"errors": [{"code": "UNAUTHORIZED"}]}
        if query.get("service") != ["test"]:
            return 400, {"errors": [{"code": "SERVICE"}]}
        granted: set[tuple[str, str]] = set()
        for scope in query.get("scope", []):
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind == "repository" and name == BEARER_REPOSITORY:
                granted |= {(name, action) for action in actions.split(",") if action in ("pull", "push")}
        token = secrets.token_urlsafe(16)
        with self.lock:
            self.grants[token] = granted
        return 200, {self.key: token}


def _serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"127.0.0.1:{server.server_address[1]}"


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


@dataclass(frozen=True)
class BearerRegistry:
    address: str
    token_host: str
    tokens: TokenService


@pytest.fixture(scope="module")
def bearer_registry(oci_registry: str) -> Iterator[BearerRegistry]:
    """A front that wants a bearer token from its token server for every request, then passes the request on
    to the session's plain registry (with its own Host, so upload locations point back at the front)."""
    tokens = TokenService()

    class TokenHandler(_Quiet):
        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            if url.path != "/token":
                self._answer(404, b"")
                return
            status, answer = tokens.issue(urllib.parse.parse_qs(url.query), self.headers.get("Authorization"))
            self._answer(status, json.dumps(answer).encode(), {"Content-Type": "application/json"})

    token_server, token_host = _serve(TokenHandler)
    upstream_host, _, upstream_port = oci_registry.partition(":")

    class FrontHandler(_Quiet):
        def _handle(self) -> None:
            body = self._body()  # read before any answer, or a refused upload breaks the connection
            match = _NAME.match(urllib.parse.urlsplit(self.path).path)
            name = match["name"] if match else ""
            action = "pull" if self.command in ("GET", "HEAD") else "push"
            authorization = self.headers.get("Authorization", "")
            granted = tokens.grants.get(authorization.removeprefix("Bearer ")) \
                if authorization.startswith("Bearer ") else None
            if not granted or (name, action) not in granted:
                scope = f"repository:{name}:{'pull' if action == 'pull' else 'pull,push'}"
                challenge = f'Bearer realm="http://{token_host}/token",service="test",scope="{scope}"'
                self._answer(401, json.dumps({"errors": [{"code": "UNAUTHORIZED"}]}).encode(),
                             {"WWW-Authenticate": challenge, "Content-Type": "application/json"})
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            connection = HTTPConnection(upstream_host, int(upstream_port), timeout=30)
            try:
                connection.request(self.command, self.path, body=body if body or self.command != "GET" else None,
                                   headers=headers)
                response = connection.getresponse()
                data = response.read()
                relayed = {k: v for k, v in response.getheaders()
                           if k.lower() not in _HOP and k.lower() != "content-length"}
            finally:
                connection.close()
            if self.command == "HEAD":
                self.send_response(response.status)
                for k, v in relayed.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", response.headers.get("Content-Length", "0"))
                self.end_headers()
                return
            self._answer(response.status, data, relayed)

        do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

    front_server, front = _serve(FrontHandler)
    try:
        yield BearerRegistry(front, token_host, tokens)
    finally:
        for server in (front_server, token_server):
            server.shutdown()
            server.server_close()


@pytest.fixture(scope="module")
def bearer_published(bearer_registry: BearerRegistry, tmp_path_factory: pytest.TempPathFactory) -> Published:
    top = tmp_path_factory.mktemp("bearer-flow")
    repo = make_repo(top / "app")
    key = make_keypair(top, "dev")
    tokens = bearer_registry.tokens
    auth = _auth_file(top / "auth.json", bearer_registry.address, tokens.user, tokens.password)
    built = _build(repo, key, f"{bearer_registry.address}/{BEARER_REPOSITORY}", bearer_registry.address,
                   bearer_registry.token_host, env=_isolated(top / "home", REGISTRY_AUTH_FILE=str(auth)))
    assert built.code == 0, built
    with tokens.lock:
        scopes = {scope for seen in tokens.seen for scope in seen["query"].get("scope", [])}
        tokens.seen.clear()
    assert f"repository:{BEARER_REPOSITORY}:pull,push" in scopes  # the push asked for a push token
    return Published(AuthRegistry(bearer_registry.address, tokens.user, tokens.password), repo, key,
                     f"oci://{bearer_registry.address}/{BEARER_REPOSITORY}:v1")


def _bearer_verify(published: Published, bearer: BearerRegistry, home: Path, *insecure: str,
                   user: str | None = None, password: str | None = None) -> Result:
    auth = _auth_file(home / "auth.json", bearer.address, user or bearer.tokens.user,
                      password or bearer.tokens.password)
    options = [part for host in insecure for part in ("--registry-insecure", host)]
    return run_attest("verify", published.image, "--key", published.key.public, *options, cwd=published.repo,
                      env=_isolated(home, REGISTRY_AUTH_FILE=str(auth)))


def test_the_bearer_handshake_asks_the_realm_for_a_pull_token_with_the_basic_credentials(
        bearer_published: Published, bearer_registry: BearerRegistry, tmp_path: Path) -> None:
    tokens = bearer_registry.tokens
    ran = _bearer_verify(bearer_published, bearer_registry, tmp_path / "home", bearer_registry.address,
                         bearer_registry.token_host)
    assert ran.code == 0, ran
    with tokens.lock:
        seen = list(tokens.seen)
        tokens.seen.clear()
    assert seen, "the token server was never asked"
    for asked in seen:
        assert asked["query"] == {"service": ["test"], "scope": [f"repository:{BEARER_REPOSITORY}:pull"]}
        assert asked["authorization"] == "Basic " + _basic(tokens.user, tokens.password)


def test_a_token_answered_as_access_token_is_used_too(bearer_published: Published, bearer_registry: BearerRegistry,
                                                      tmp_path: Path) -> None:
    from attest.registries.client import Registry

    tokens = bearer_registry.tokens
    auth = _auth_file(tmp_path / "auth.json", bearer_registry.address, tokens.user, tokens.password)
    tokens.key = "access_token"
    try:
        client = Registry(bearer_registry.address, insecure=[bearer_registry.address, bearer_registry.token_host],
                          env=_isolated(tmp_path / "home", REGISTRY_AUTH_FILE=str(auth)))
        fetched = client.manifest(BEARER_REPOSITORY, "v1", accept="application/vnd.oci.image.manifest.v1+json")
    finally:
        tokens.key = "token"
    assert fetched is not None and json.loads(fetched.data)["schemaVersion"] == 2


def test_wrong_credentials_at_the_token_server_are_refused_in_one_sentence(
        bearer_published: Published, bearer_registry: BearerRegistry, tmp_path: Path) -> None:
    ran = _bearer_verify(bearer_published, bearer_registry, tmp_path / "home", bearer_registry.address,
                         bearer_registry.token_host, password="wrong")
    line = _one_sentence(ran, 4)
    assert "token" in line and "401" in line


def test_a_plain_http_realm_not_named_insecure_gets_no_credentials(bearer_published: Published,
                                                                    bearer_registry: BearerRegistry,
                                                                    tmp_path: Path) -> None:
    tokens = bearer_registry.tokens
    with tokens.lock:
        tokens.seen.clear()
    ran = _bearer_verify(bearer_published, bearer_registry, tmp_path / "home", bearer_registry.address)
    line = _one_sentence(ran, 4)
    assert "not https" in line and bearer_registry.token_host in line
    assert tokens.seen == []  # the credentials never left


# --- ECR ---------------------------------------------------------------------------------------------------------


def test_an_ecr_host_gets_its_password_from_get_authorization_token(aws_env: MotoEnv, tmp_path: Path) -> None:
    from attest.registries.auth import find_credentials

    host = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    found = find_credentials(host, _isolated(tmp_path / "home"))
    assert found is not None
    assert found.username == "AWS"
    assert found.password == "123456789012-auth-token"  # moto's password for the account asked for
    assert found.source == "ecr:GetAuthorizationToken"


def test_an_auth_file_entry_for_an_ecr_host_wins_over_ecr(aws_env: MotoEnv, tmp_path: Path) -> None:
    from attest.registries.auth import find_credentials

    host = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    auth = _auth_file(tmp_path / "auth.json", host, "AWS", "from-docker-login")
    found = find_credentials(host, _isolated(tmp_path / "home", REGISTRY_AUTH_FILE=str(auth)))
    assert found is not None and found.password == "from-docker-login"
