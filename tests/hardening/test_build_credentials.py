"""The build command gets no signing credential, from any CI: checked from the command's own view.

For each CI system whose ambient identity token attest's keyless signer can use (sigstore-python's
``detect_credential``), the environment that CI gives a job is simulated, with stand-ins for the tools the
detection calls (``buildkite-agent``, ``circleci``: each prints the token its credential variable would
get it). The build command runs that very detection, and looks for any credential variable attest knows
(``attest.collect.CREDENTIAL_SOURCES``). Run by ``attest build`` it finds nothing; run with
``--pass-aws-env`` (the documented opt-out) it finds the token, which shows the simulation is real.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from attest.collect import CREDENTIAL_SOURCES, CREDENTIAL_VARIABLES
from tests.conftest import AttestRunner, KeyPair


def _jwt(claims: dict[str, object]) -> str:
    """An unsigned JWT: what the detection checks is its shape, not its signature."""
    part = [base64.urlsafe_b64encode(json.dumps(c).encode()).rstrip(b"=").decode()
            for c in ({"alg": "RS256", "typ": "JWT"}, claims)]
    return f"{part[0]}.{part[1]}.c2ln"


TOKEN = _jwt({"iss": "https://ci.example", "aud": "sigstore", "sub": "job", "exp": 4102444800})

#: What each CI gives a job: its flag and its credential variables.
CI: dict[str, dict[str, str]] = {
    "github": {"GITHUB_ACTIONS": "true", "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "request-token",
               "ACTIONS_ID_TOKEN_REQUEST_URL": "http://127.0.0.1:9/token"},
    "gitlab": {"GITLAB_CI": "true", "SIGSTORE_ID_TOKEN": TOKEN},
    "buildkite": {"BUILDKITE": "true", "BUILDKITE_AGENT_ACCESS_TOKEN": TOKEN},
    "circleci": {"CIRCLECI": "true", "CIRCLE_OIDC_TOKEN": TOKEN, "CIRCLE_OIDC_TOKEN_V2": TOKEN},
}

#: Stand-ins for the CI tools sigstore-python's detection runs: they hand out a token only with the credential.
TOOLS = {
    "buildkite-agent": '#!/bin/sh\n[ -n "$BUILDKITE_AGENT_ACCESS_TOKEN" ] || exit 1\n'
                       'printf %s "$BUILDKITE_AGENT_ACCESS_TOKEN"\n',
    "circleci": '#!/bin/sh\nt="${CIRCLE_OIDC_TOKEN_V2:-$CIRCLE_OIDC_TOKEN}"\n[ -n "$t" ] || exit 1\nprintf %s "$t"\n',
}

#: The build command: sigstore-python's ambient detection and a look at its own environment, written to dist/.
LOOK = """
import json, os, pathlib, runpy, sys
runpy.run_path("build.py")
try:
    from sigstore.oidc import detect_credential
    token = detect_credential()
except Exception as e:  # a CI without its credential: the detection says so
    token = None
seen = sorted(set(json.loads(sys.argv[1])) & set(os.environ))
pathlib.Path("dist/seen.json").write_text(json.dumps({"token": token, "variables": seen}))
"""


@pytest.fixture
def tools(tmp_path: Path) -> Path:
    directory = tmp_path / "ci-tools"
    directory.mkdir()
    for name, script in TOOLS.items():
        path = directory / name
        path.write_text(script)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return directory


def _build(attest: AttestRunner, repo: Path, key: KeyPair, env: dict[str, str], *extra: str) -> dict[str, object]:
    command = [sys.executable, "-c", LOOK, json.dumps(CREDENTIAL_VARIABLES)]
    result = attest("build", "--signer", key.private, "--artifact", "dist/app.tar.gz", *extra, "--", *command,
                    cwd=repo, env=env)
    assert result.code == 0, result
    seen: dict[str, object] = json.loads((repo / "dist" / "seen.json").read_text())
    return seen


@pytest.mark.parametrize("ci", sorted(CI))
def test_the_build_command_cannot_get_an_identity_token_on_any_ci(repo: Path, keys: dict[str, KeyPair],
                                                                   attest: AttestRunner, tools: Path,
                                                                   ci: str) -> None:
    env = {**CI[ci], "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}"}
    seen = _build(attest, repo, keys["dev"], env)
    assert seen == {"token": None, "variables": []}, seen
    if ci != "github":  # the control (GitHub's token comes from an HTTP endpoint, which is not simulated)
        given = _build(attest, repo, keys["dev"], env, "--pass-aws-env")
        assert given["token"] == TOKEN, given


def test_every_cloud_and_key_credential_variable_is_kept_from_the_command(repo: Path, keys: dict[str, KeyPair],
                                                                         attest: AttestRunner) -> None:
    env = {name: "secret" for name in CREDENTIAL_VARIABLES if name not in ("ATTEST_KEY_PASSWORD",)}
    env.update({"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials", "AWS_CONFIG_FILE": "/nonexistent/config"})
    seen = _build(attest, repo, keys["dev"], env)
    assert seen["variables"] == [], seen
    assert {n for names in CREDENTIAL_SOURCES.values() for n in names} == set(CREDENTIAL_VARIABLES)
