"""Who attest is to a registry: the credentials people already have, found where their tools keep them.

In the order skopeo and podman look (the first file with an entry for the host wins):

* ``REGISTRY_AUTH_FILE``, else ``$XDG_RUNTIME_DIR/containers/auth.json``, else
  ``~/.config/containers/auth.json`` (podman, skopeo, buildah);
* ``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json`` (docker, kaniko, crane): ``auths``
  entries (``auth`` is base64 of ``user:password``), else the host's ``credHelpers`` helper or the
  ``credsStore``, run as ``docker-credential-NAME get`` as docker runs it;
* an Amazon ECR host (``ACCOUNT.dkr.ecr.REGION.amazonaws.com``) with no entry: a password from ECR's
  ``GetAuthorizationToken`` under the usual AWS credentials (a CodeBuild role is all it needs).

No entry anywhere: anonymous. The registry's challenge (``WWW-Authenticate``) decides what is done with
the credentials: sent as HTTP basic, or exchanged for a bearer token (:func:`fetch_token`).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from attest.errors import RemoteError
from verify.errors import InputError

__all__ = ["Credentials", "auth_files", "find_credentials", "parse_challenge"]

_ECR = re.compile(r"(?P<account>[0-9]{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?")
_MAX_AUTH_FILE = 1024 * 1024
_HELPER = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)
    source: str = ""
    """Where they came from (a file, a helper, ECR), for messages."""

    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")


def auth_files(env: Mapping[str, str]) -> list[Path]:
    """The auth files to look in, in order (those that exist)."""
    home = Path(env.get("HOME") or Path.home())
    candidates: list[Path] = []
    if env.get("REGISTRY_AUTH_FILE"):
        candidates.append(Path(env["REGISTRY_AUTH_FILE"]))
    else:
        if env.get("XDG_RUNTIME_DIR"):
            candidates.append(Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
        candidates.append(home / ".config" / "containers" / "auth.json")
    docker = Path(env["DOCKER_CONFIG"]) if env.get("DOCKER_CONFIG") else home / ".docker"
    candidates.append(docker / "config.json")
    return [path for path in candidates if path.is_file()]


def _read_auth_file(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as f:
            data = f.read(_MAX_AUTH_FILE + 1)
    except OSError as e:
        raise InputError(f"cannot read the registry auth file {path}: {e.strerror or type(e).__name__}") from e
    if len(data) > _MAX_AUTH_FILE:
        raise InputError(f"the registry auth file {path} is over {_MAX_AUTH_FILE} bytes; is it the right file?")
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"the registry auth file {path} is not valid JSON; fix it or log in again") from e
    if not isinstance(document, dict):
        raise InputError(f"the registry auth file {path} is not a JSON object; fix it or log in again")
    return document


def _host_of(key: str) -> str:
    """An ``auths`` key as a host: docker writes ``https://index.docker.io/v1/`` as well as ``HOST``."""
    key = re.sub(r"^[a-z]+://", "", key)
    return key.split("/", 1)[0].lower()


def _from_entry(entry: object, *, path: Path, host: str) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            user, sep, password = base64.b64decode(auth, validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError) as e:
            raise InputError(f"the entry for {host} in {path} is not base64 of user:password; log in again") from e
        if not sep:
            raise InputError(f"the entry for {host} in {path} is not base64 of user:password; log in again")
        return Credentials(user, password, source=str(path))
    if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
        return Credentials(str(entry["username"]), str(entry["password"]), source=str(path))
    return None


def _helper(name: str, host: str, *, path: Path) -> Credentials | None:
    """``docker-credential-NAME get``, as docker runs a credential helper; None if it knows no such host."""
    if not _HELPER.fullmatch(name):
        raise InputError(f"{path} names credential helper {name!r}, which is not a program name")
    program = f"docker-credential-{name}"
    try:
        done = subprocess.run([program, "get"], input=host.encode(), capture_output=True, timeout=60, check=False)
    except FileNotFoundError as e:
        raise InputError(f"{path} says to ask {program} for {host}'s credentials, and it is not installed; "
                         "install it or log in with skopeo login / docker login") from e
    except subprocess.TimeoutExpired as e:
        raise RemoteError(f"{program} did not answer within 60 s for {host}") from e
    if done.returncode != 0:
        if b"credentials not found" in done.stdout.lower() + done.stderr.lower():
            return None
        raise RemoteError(f"{program} failed for {host} (exit {done.returncode}); log in again")
    try:
        answer = json.loads(done.stdout)
        return Credentials(str(answer["Username"]), str(answer["Secret"]), source=program)
    except (ValueError, KeyError, TypeError) as e:
        raise RemoteError(f"{program} gave an answer for {host} that is not its JSON") from e


def _from_file(path: Path, host: str) -> Credentials | None:
    document = _read_auth_file(path)
    auths = document.get("auths")
    if isinstance(auths, dict):
        for key, entry in auths.items():
            if isinstance(key, str) and _host_of(key) == host:
                found = _from_entry(entry, path=path, host=host)
                if found is not None:
                    return found
    helpers = document.get("credHelpers")
    if isinstance(helpers, dict) and isinstance(helpers.get(host), str):
        return _helper(str(helpers[host]), host, path=path)
    store = document.get("credsStore")
    if isinstance(store, str) and store:
        return _helper(store, host, path=path)
    return None


def _ecr(host: str, region: str, account: str) -> Credentials:
    """An ECR password, from GetAuthorizationToken (valid 12 hours) under the process's AWS credentials."""
    import boto3
    import botocore.exceptions

    from attest._aws import transport_error

    try:
        answer = boto3.client("ecr", region_name=region).get_authorization_token(registryIds=[account])
        token = answer["authorizationData"][0]["authorizationToken"]
        user, _, password = base64.b64decode(token).decode("utf-8").partition(":")
    except botocore.exceptions.ClientError as e:
        code = e.response.get("Error", {}).get("Code", "error")
        raise RemoteError(f"ECR refused ecr:GetAuthorizationToken for {host} ({code}); give the role that "
                          "permission") from e
    except (botocore.exceptions.BotoCoreError, ValueError, KeyError, IndexError) as e:
        mapped = transport_error(e, service="ECR", action="ecr:GetAuthorizationToken", resource=host,
                                 endpoint=f"ecr.{region}") if isinstance(e, Exception) else None
        raise (mapped or RemoteError(f"could not get an ECR password for {host}: {e}")) from e
    return Credentials(user, password, source="ecr:GetAuthorizationToken")


def find_credentials(host: str, env: Mapping[str, str] | None = None) -> Credentials | None:
    """The credentials for ``host`` (``HOST[:PORT]``), or None to go anonymously (see the module docstring)."""
    env = os.environ if env is None else env
    host = host.lower()
    for path in auth_files(env):
        found = _from_file(path, host)
        if found is not None:
            return found
    ecr = _ECR.fullmatch(host)
    if ecr is not None:
        return _ecr(host, ecr["region"], ecr["account"])
    return None


_PARAM = re.compile(r'([A-Za-z_]+)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``WWW-Authenticate: Bearer realm="...",service="...",scope="..."`` -> ("bearer", {realm, service, scope})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3) for m in _PARAM.finditer(rest)}
    return scheme.lower(), params
