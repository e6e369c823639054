"""What the image tests share: a packed image built and published to the session's registry, and a policy."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AttestRunner, KeyPair

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}


def get(registry: str, path: str, accept: str = "application/vnd.oci.image.index.v1+json") -> tuple[bytes, Any]:
    request = urllib.request.Request(f"http://{registry}{path}", headers={"Accept": accept})
    with _NO_PROXY.open(request, timeout=10) as answer:
        return answer.read(), answer.headers


def write_policy(repo: Path, keys: dict[str, KeyPair]) -> None:
    (repo / "policy.yaml").write_text(f"""\
version: 1
identities:
  dev-build: {{keys: ["{keys['dev'].public}"]}}
  stg-verifier: {{keys: ["{keys['stg'].public}"]}}
provenance:
  signed-by: [dev-build]
  source: {{uri: github.com/acme/app, branches: [main]}}
stages:
  stg: {{verifier: stg-verifier}}
  prd:
    require-vsa: [{{stage: stg, signed-by: stg-verifier}}]
""")


def pack(attest: AttestRunner, repo: Path, content: str, layout: str) -> str:
    site = repo.parent / f"site-{Path(layout.split(':')[1]).name}"
    site.mkdir()
    (site / "index.html").write_text(content)
    packed = attest("pack", site, "--output", layout, "--format", "json", cwd=repo, env=EPOCH)
    assert packed.code == 0, packed
    digest: str = json.loads(packed.out)["manifest"]["digest"]
    return digest


@pytest.fixture
def pushed(repo: Path, keys: dict[str, KeyPair], attest: AttestRunner, oci_registry: str,
           request: pytest.FixtureRequest) -> dict[str, Any]:
    """An image packed, built and published to its own repository of the session's registry."""
    repository = f"{oci_registry}/flow/{re.sub('[^a-z0-9]+', '-', request.node.name.lower())[:60].strip('-')}"
    digest = pack(attest, repo, "<h1>v1</h1>\n", "oci-layout:../image:v1")
    built = attest("build", "--signer", keys["dev"].private, "--artifact", "oci-layout:../image:v1",
                   "--publish", f"oci://{repository}", "--registry-insecure", oci_registry, "--format", "json",
                   cwd=repo)
    assert built.code == 0, built
    write_policy(repo, keys)
    return {"repository": repository, "digest": digest, "build": json.loads(built.out), "registry": oci_registry}


