"""What runs where, and how far each environment is behind the one before it on the path: by the releases' signed
creation times, not by which releases an environment ever ran (a rollback in prd leaves it behind; a rollback in stg
does not put prd behind it)."""

from __future__ import annotations

import html
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AttestRunner, KeyPair, make_keypair
from tests.dora.history import T0, _record, _version, write_policy
from verify.audit.dashboard import running_map
from verify.audit.report import AuditReport


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, KeyPair]:
    (tmp_path / "keys").mkdir()
    return {n: make_keypair(tmp_path / "keys", n) for n in ("dev", "release", "stg", "prd", "mallory")}


def _running(attest: AttestRunner, tmp_path: Path, *more: str) -> dict[str, Any]:
    ran = attest("audit", "store", "--policy", "policy.yaml", "--format", "json", *more, cwd=tmp_path)
    assert ran.code in (0, 1) and "Traceback" not in ran.err, ran
    return json.loads(ran.out)["running"]["app"]


def test_prd_rolled_back_is_behind_stg_by_the_releases_since(tmp_path: Path, keys: dict[str, KeyPair],
                                                              attest: AttestRunner) -> None:
    write_policy(tmp_path, keys)
    store = tmp_path / "store"
    v1, _, v3 = (_version(store, keys, n, T0 + timedelta(days=2 * n - 2)) for n in (1, 2, 3))
    _record(store, keys["prd"].private, v1, env="prd", at=v1["commit"] + timedelta(hours=5))
    _record(store, keys["stg"].private, v3, env="stg", at=v3["commit"] + timedelta(hours=2))
    _record(store, keys["prd"].private, v3, env="prd", at=v3["commit"] + timedelta(hours=5))
    _record(store, keys["prd"].private, v1, env="prd", at=v3["commit"] + timedelta(hours=8), kind="rollback")
    running = _running(attest, tmp_path, "--no-index")
    assert (running["stg"]["release"], running["prd"]["release"], running["prd"]["kind"]) == ("r3", "r1", "rollback")
    # prd once ran r3, but runs r1 now: behind stg by r2 and r3
    assert (running["prd"]["behind"], running["prd"]["releasesBehind"]) == ("stg", 2)
    assert (running["stg"]["behind"], running["stg"]["releasesBehind"]) == (None, None)
    assert _running(attest, tmp_path, "--index", "ix.sqlite") == running  # the index answers alike, cold
    assert _running(attest, tmp_path, "--index", "ix.sqlite") == running  # and warm


def test_stg_on_an_older_release_than_prd_leaves_prd_level(tmp_path: Path, keys: dict[str, KeyPair],
                                                            attest: AttestRunner) -> None:
    write_policy(tmp_path, keys)
    store = tmp_path / "store"
    v1, v2, v3 = (_version(store, keys, n, T0 + timedelta(days=2 * n - 2)) for n in (1, 2, 3))
    _record(store, keys["prd"].private, v1, env="prd", at=v1["commit"] + timedelta(hours=5))
    _record(store, keys["prd"].private, v3, env="prd", at=v3["commit"] + timedelta(hours=5))
    _record(store, keys["stg"].private, v2, env="stg", at=v3["commit"] + timedelta(hours=6))  # r2, which prd skipped
    running = _running(attest, tmp_path, "--no-index")
    assert (running["stg"]["release"], running["prd"]["release"]) == ("r2", "r3")
    assert (running["prd"]["behind"], running["prd"]["releasesBehind"]) == (None, None)
    # and level when both run one release
    _record(store, keys["stg"].private, v3, env="stg", at=v3["commit"] + timedelta(hours=7))
    running = _running(attest, tmp_path, "--no-index")
    assert (running["stg"]["release"], running["prd"]["behind"]) == ("r3", None)
    # one release of prd behind after stg moves on
    v4 = _version(store, keys, 4, T0 + timedelta(days=7))
    _record(store, keys["stg"].private, v4, env="stg", at=v4["commit"] + timedelta(hours=2))
    running = _running(attest, tmp_path, "--no-index")
    assert (running["stg"]["release"], running["prd"]["behind"], running["prd"]["releasesBehind"]) == ("r4", "stg", 1)


def _report(running: dict[str, Any]) -> AuditReport:
    return AuditReport(artifacts=(), anomalies=(), stages=("stg", "prd"), files=0, attestations=0,
                       policy_uri="policy.yaml", policy_digest="ab" * 32, running=running)


def test_the_map_says_how_far_and_marks_a_stack_never_deployed_after_the_one_before() -> None:
    def at(release: str, behind: str | None = None, far: int | None = None) -> dict[str, Any]:
        return {"release": release, "since": "2026-12-01T10:00:00Z", "kind": "deploy", "artifacts": [],
                "behind": behind, "releasesBehind": far}

    page = running_map(_report({"app": {"stg": at("r3"), "prd": at("r1", "stg", 2)},
                                "api": {"stg": at("r2"), "prd": at("r1", "stg")},  # a manifest not among the sources
                                "web": {"stg": at("w1")},  # never in prd
                                "db": {"prd": at("d1")}}), html.escape)
    rows = {row.split('"', 1)[0]: row for row in page.split('<tr data-component="')[1:]}
    assert '<span class="cell behind"' in rows["app"] and "2 releases behind stg" in rows["app"]
    assert "title=\"2 releases behind stg: stg runs r3, prd still r1\"" in rows["app"]
    assert "· behind stg" in rows["api"] and "releases behind" not in rows["api"]
    assert '<span class="cell none behind"' in rows["web"] and "not deployed · behind stg" in rows["web"]
    assert '<span class="cell none"' in rows["db"] and "behind" not in rows["db"]  # stg runs nothing of db
    assert page.count("behind") == rows["app"].count("behind") + rows["api"].count("behind") + \
        rows["web"].count("behind")
