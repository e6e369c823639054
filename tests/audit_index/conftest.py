"""What the audit index tests share: their keys, a policy for a history of builds, and that history."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests import factory as f
from tests.conftest import KeyPair, make_keypair

APP = "dist/app.tar.gz"
#: What ``attest audit -v`` says of its index: (path, files answered from it, files checked).
USED = re.compile(r"attest: index (\S+): (\d+) attestation file\(s\) answered from it, (\d+) checked")


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, KeyPair]:
    """The builder's, stg's and a stranger's keys; and the release manager's and prd's, for tests.dora.history."""
    (tmp_path / "keys").mkdir()
    return {name: make_keypair(tmp_path / "keys", name)
            for name in ("dev", "stg", "other", "release", "prd", "mallory")}


def write_builds_policy(tmp_path: Path, keys: dict[str, KeyPair], *, branches: str = "[main]") -> None:
    (tmp_path / "policy.yaml").write_text(f"""version: 1
identities:
  dev-build: {{keys: ["{keys['dev'].public}"]}}
  stg-verifier: {{keys: ["{keys['stg'].public}"]}}
provenance:
  signed-by: [dev-build]
  source: {{uri: github.com/acme/app, branches: {branches}}}
stages:
  stg: {{verifier: stg-verifier}}
""")


def publish_builds(store: Path, keys: dict[str, KeyPair], count: int, *, start: int = 0) -> None:
    """Builds ``start`` .. ``start + count - 1`` of APP, each its own commit, signed by the builder."""
    for n in range(start, start + count):
        f.publish(store, f.provenance(keys["dev"].private, subjects={APP: f"v{n}".encode()}, commit=f"{n:040x}"))
