"""What runs where, and how far each environment is behind the one before it on the path: by the releases' signed
creation times, not by which releases an environment ever ran (a rollback in prd leaves it behind; a rollback in stg
does not put prd behind it)."""

from __future__ import annotations

import hashlib
import html
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from attest.stores import attestation_key
from attest.stores.layout import deployment_key
from attest.summaries import deployment_statement
from tests import factory as f
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


def test_of_two_records_of_one_time_the_map_answers_as_attest_status(tmp_path: Path, keys: dict[str, KeyPair],
                                                                      attest: AttestRunner) -> None:
    write_policy(tmp_path, keys)
    store = tmp_path / "store"
    v1, v2 = (_version(store, keys, n, T0 + timedelta(days=2 * n - 2)) for n in (1, 2))
    at = v2["commit"] + timedelta(hours=5, microseconds=123)
    statements = [deployment_statement(environment="prd", release_name=v["name"], release_sha256=v["line"],
                                       component="app", artifacts=v["artifacts"], status="succeeded", kind="deploy",
                                       deployed_at=at) for v in (v1, v2)]
    digests = [hashlib.sha256(f.sign(keys["prd"].private, s).payload).hexdigest() for s in statements]  # as audit
    while True:  # signed until the envelope lines sort the other way from the statements: the answer then tells
        lines = [f.sign(keys["prd"].private, s).to_json_line() for s in statements]
        shas = [hashlib.sha256(line.rstrip(b"\n")).hexdigest() for line in lines]
        if (shas[0] > shas[1]) != (digests[0] > digests[1]):
            break
    for statement, line in zip(statements, lines, strict=True):
        sha = statement["subject"][0]["digest"]["sha256"]
        for key in (deployment_key("prd", "app", at, line), attestation_key(sha, "deployment", line)):
            (store / key).parent.mkdir(parents=True, exist_ok=True)
            (store / key).write_bytes(line)
    expected = "r1" if shas[0] > shas[1] else "r2"  # the higher line's, as the deployment index lists it first
    ran = attest("status", "--store", "store", "--policy", "policy.yaml", "--format", "json", cwd=tmp_path)
    assert ran.code == 0 and json.loads(ran.out)["environments"]["prd"]["app"]["release"] == expected, ran
    assert _running(attest, tmp_path, "--no-index")["prd"]["release"] == expected
    assert _running(attest, tmp_path, "--index", "ix.sqlite")["prd"]["release"] == expected


def test_one_release_signed_twice_is_one_release(tmp_path: Path, keys: dict[str, KeyPair],
                                                 attest: AttestRunner) -> None:
    """stg's record names one envelope of r1's manifest, prd's another of the same statement: prd is level."""
    from attest.summaries import Component, release_statement

    write_policy(tmp_path, keys)
    store = tmp_path / "store"
    data = b"app v1"
    built = T0
    provenance = f.provenance(keys["dev"].private, subjects={"app.zip": data}, commit="1" * 40, finished=built)
    f.publish(store, provenance)
    component = Component(name="app", subjects=[("app.zip", f.digests(data))],
                          provenance_sha256=f.line_sha256(provenance),
                          source=f.REPO, commit="1" * 40)
    statement = release_statement(name="r1", components=[component], created_at=built + timedelta(minutes=1))
    lines = []
    for _ in range(2):  # two envelopes of one statement (ECDSA signs anew each time)
        envelope = f.sign(keys["release"].private, statement)
        f.publish(store, envelope, kind="release")
        lines.append(f.line_sha256(envelope))
    assert lines[0] != lines[1]
    for env, line, hours in (("stg", max(lines), 2), ("prd", min(lines), 3)):  # (by line, stg's would be newer)
        _record(store, keys[env].private, {"name": "r1", "line": line, "artifacts": [("app.zip", f.digests(data))]},
                env=env, at=built + timedelta(hours=hours))
    running = _running(attest, tmp_path, "--no-index")
    assert (running["stg"]["release"], running["prd"]["release"]) == ("r1", "r1")
    assert (running["prd"]["behind"], running["prd"]["releasesBehind"]) == (None, None)
