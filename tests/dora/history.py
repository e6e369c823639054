"""The hand-made history of tests/dora: one component through prd three times, with a rollback and a failure (the
figures it gives are worked out in test_dora_figures.py); the audit page's browser test shows it too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from attest.summaries import Component, deployment_statement, release_statement
from tests import factory as f
from tests.conftest import KeyPair

HOUR = 3600.0
NOW = datetime.now(UTC).replace(microsecond=0)
T0 = NOW - timedelta(days=10)


def write_policy(tmp_path: Path, keys: dict[str, KeyPair]) -> None:
    (tmp_path / "policy.yaml").write_text(f"""version: 1
identities:
  dev-build: {{keys: ["{keys['dev'].public}"]}}
  release-manager: {{keys: ["{keys['release'].public}"]}}
  stg-deployer: {{keys: ["{keys['stg'].public}"]}}
  prd-deployer: {{keys: ["{keys['prd'].public}"]}}
provenance:
  signed-by: [dev-build]
releases: {{signed-by: [release-manager]}}
stages:
  stg: {{deployed-by: [stg-deployer]}}
  prd: {{deployed-by: [prd-deployer]}}
""")


def _version(store: Path, keys: dict[str, KeyPair], n: int, built: datetime) -> dict[str, Any]:
    """v``n`` built at ``built`` (its commit an hour before, as the factory records it), and its release."""
    data = f"app v{n}".encode()
    provenance = f.provenance(keys["dev"].private, subjects={"app.zip": data}, commit=f"{n:040x}", finished=built)
    f.publish(store, provenance)
    component = Component(name="app", subjects=[("app.zip", f.digests(data))],
                          provenance_sha256=f.line_sha256(provenance),
                          source=f.REPO, commit=f"{n:040x}")
    release = f.sign(keys["release"].private, release_statement(name=f"r{n}", components=[component],
                                                              created_at=built + timedelta(minutes=1)))
    f.publish(store, release, kind="release")
    return {"name": f"r{n}", "line": f.line_sha256(release),
            "artifacts": [("app.zip", f.digests(data))], "commit": built - timedelta(hours=1),
            "provenance": [("provenance", component.provenance_sha256)]}  # (what a VSA that verified it names)


def _record(store: Path, key: Path, release: dict[str, Any], *, env: str, at: datetime, status: str = "succeeded",
            kind: str = "deploy") -> None:
    statement = deployment_statement(environment=env, release_name=release["name"], release_sha256=release["line"],
                                     component="app", artifacts=release["artifacts"], status=status, kind=kind,
                                     deployed_at=at)
    f.publish(store, f.sign(key, statement), kind="deployment")


def history_with_dora(tmp_path: Path, keys: dict[str, KeyPair]) -> Path:
    store = tmp_path / "store"
    v1 = _version(store, keys, 1, T0)
    v2 = _version(store, keys, 2, T0 + timedelta(days=2))
    v3 = _version(store, keys, 3, T0 + timedelta(days=4))
    prd = keys["prd"].private
    _record(store, prd, v1, env="prd", at=v1["commit"] + timedelta(hours=5))
    _record(store, prd, v2, env="prd", at=v2["commit"] + timedelta(hours=3))
    _record(store, prd, v1, env="prd", at=v2["commit"] + timedelta(hours=5), kind="rollback")
    _record(store, prd, v3, env="prd", at=v3["commit"] + timedelta(hours=1), status="failed")
    _record(store, prd, v3, env="prd", at=v3["commit"] + timedelta(hours=4))
    _record(store, keys["mallory"].private, v2, env="prd", at=v3["commit"] + timedelta(hours=6))  # not trusted
    _record(store, keys["stg"].private, v1, env="stg", at=v1["commit"] + timedelta(hours=2))  # before any prd
    return store


