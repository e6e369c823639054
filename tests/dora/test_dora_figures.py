"""Issue 21, part 3: the DORA figures from signed evidence alone, on a small hand-made history whose figures are
worked out here by hand.

One component, app, goes to prd three times (v1, v2, v3), each built an hour after its commit:

  v1  deploy  succeeded  commit + 5 h                      lead 5 h
  v2  deploy  succeeded  commit + 3 h                      lead 3 h   (then rolled back: a failed change)
  v1  rollback succeeded  2 h after v2 went out            restore 2 h
  v3  deploy  failed     commit + 1 h
  v3  deploy  succeeded  commit + 4 h                      lead 4 h,  restore 3 h after the failure

So: 4 succeeded deployments; lead time median 4 h, p90 5 h over 3 changes; change failure rate 1 of 3 ordinary
deployments; time to restore median 2.5 h over 2 incidents. A record signed by a key prd does not trust changes
no figure. stg deployed v1 2 h after its commit; in a window after that, its figures say there is no data, never 0.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AttestRunner, KeyPair, make_keypair
from tests.dora.history import HOUR, T0, history_with_dora, write_policy


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, KeyPair]:
    (tmp_path / "keys").mkdir()
    return {n: make_keypair(tmp_path / "keys", n) for n in ("dev", "release", "stg", "prd", "mallory")}


def test_the_four_figures_of_a_hand_made_history(tmp_path: Path, keys: dict[str, KeyPair],
                                                 attest: AttestRunner) -> None:
    write_policy(tmp_path, keys)
    history_with_dora(tmp_path, keys)
    ran = attest("audit", "store", "--policy", "policy.yaml", "--dora", "--format", "json", "--no-index",
                 cwd=tmp_path)
    assert ran.code == 1, ran  # mallory's record is an untrusted-signer anomaly; it counts in no figure
    dora = json.loads(ran.out)["dora"]
    assert dora["window"]["days"] == 90 and dora["from"] == "signed deployment records"
    prd = dora["components"]["app"]["prd"]
    assert prd["records"] == 5
    assert prd["deploymentFrequency"]["deployments"] == 4
    assert sum(prd["deploymentFrequency"]["weekly"]) == 4 and len(prd["deploymentFrequency"]["weekly"]) == 13
    assert prd["deploymentFrequency"]["perWeek"] == round(4 / (90 / 7), 2)
    assert prd["leadTime"] == {"changes": 3, "medianSeconds": 4 * HOUR, "p90Seconds": 5 * HOUR}
    assert prd["changeFailureRate"] == {"deployments": 3, "failures": 1, "rate": 0.3333}
    assert prd["timeToRestore"] == {"incidents": 2, "medianSeconds": 2.5 * HOUR}
    stg = dora["components"]["app"]["stg"]  # v1, 2 h after its commit, and nothing after
    assert stg["leadTime"] == {"changes": 1, "medianSeconds": 2 * HOUR, "p90Seconds": 2 * HOUR}
    assert stg["changeFailureRate"] == {"deployments": 1, "failures": 0, "rate": 0.0}
    assert stg["timeToRestore"]["medianSeconds"] is None and "note" in stg["timeToRestore"]
    text = attest("audit", "store", "--policy", "policy.yaml", "--dora", "--no-index", cwd=tmp_path)
    assert "lead time 4.0 h median, 5.0 h p90 (3 change(s)); failure rate 33% (1/3); restore 2.5 h" in text.out


def test_the_window_and_its_usage(tmp_path: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    write_policy(tmp_path, keys)
    history_with_dora(tmp_path, keys)
    # only v3's records: the first midnight after v2's last record (T0 + 2 d 5 h), whatever the time of day
    since = ((T0 + timedelta(days=2, hours=5)).date() + timedelta(days=1)).isoformat()
    ran = attest("audit", "store", "--policy", "policy.yaml", "--dora", "--since", since, "--format", "json",
                 "--no-index", cwd=tmp_path)
    prd = json.loads(ran.out)["dora"]["components"]["app"]["prd"]
    assert prd["deploymentFrequency"]["deployments"] == 1 and prd["leadTime"]["changes"] == 1
    assert prd["timeToRestore"] == {"incidents": 1, "medianSeconds": 3 * HOUR}
    stg = json.loads(ran.out)["dora"]["components"]["app"]["stg"]  # records, but none in the window: each says so
    assert stg["deploymentFrequency"]["deployments"] == 0 and "no succeeded" in stg["deploymentFrequency"]["note"]
    assert stg["leadTime"]["medianSeconds"] is None and "note" in stg["leadTime"]
    assert stg["changeFailureRate"]["rate"] is None and stg["timeToRestore"]["medianSeconds"] is None
    text = attest("audit", "store", "--policy", "policy.yaml", "--dora", "--since", since, "--no-index", cwd=tmp_path)
    assert "stg    0 deployment(s)" in text.out and "no data" in text.out
    for bad, said in (("--since", "next week"), ("--since", "2999-01-01")):
        usage = attest("audit", "store", "--policy", "policy.yaml", "--dora", bad, said, cwd=tmp_path)
        assert usage.code == 2, usage
    alone = attest("audit", "store", "--policy", "policy.yaml", "--since", "30", cwd=tmp_path)
    assert alone.code == 2 and "--dora" in alone.err
    plain = attest("audit", "store", "--policy", "policy.yaml", "--format", "json", "--no-index", cwd=tmp_path)
    assert "dora" not in json.loads(plain.out)


def test_a_record_of_a_release_no_manifest_shows_counts_in_no_figure(tmp_path: Path, keys: dict[str, KeyPair],
                                                                    attest: AttestRunner) -> None:
    """prd's deployer signed a record of release 'ghost', for bytes nobody built, whose manifest no source holds: it
    was counted (a deployment, and what runs in prd), though only records placed in their release count."""
    from tests import factory as f
    from tests.dora.history import NOW, _record

    write_policy(tmp_path, keys)
    history_with_dora(tmp_path, keys)
    before = json.loads(attest("audit", "store", "--policy", "policy.yaml", "--dora", "--format", "json",
                               "--no-index", cwd=tmp_path).out)
    ghost = {"name": "ghost", "line": "00" * 32, "artifacts": [("app.zip", f.digests(b"never built"))]}
    _record(tmp_path / "store", keys["prd"].private, ghost, env="prd", at=NOW - timedelta(hours=1))
    ran = attest("audit", "store", "--policy", "policy.yaml", "--dora", "--format", "json", "--no-index",
                 cwd=tmp_path)
    report = json.loads(ran.out)
    # (the window ends at each audit's own time: the figures are compared, not the window)
    assert report["dora"]["components"] == before["dora"]["components"] and report["running"] == before["running"]
    unknown = [a for a in report["anomalies"] if a["kind"] == "unknown-deployment"]
    assert len(unknown) == 1 and "names release 'ghost'" in unknown[0]["message"], report["anomalies"]
    assert "which no trusted manifest among the sources shows" in unknown[0]["message"]


def test_a_record_dated_after_the_audit_counts_in_no_figure(tmp_path: Path, keys: dict[str, KeyPair],
                                                            attest: AttestRunner) -> None:
    """A deployer whose clock is a month ahead: its record was the newest, what runs in prd until that time came."""
    from tests.dora.history import NOW, _record, _version

    write_policy(tmp_path, keys)
    history_with_dora(tmp_path, keys)
    before = json.loads(attest("audit", "store", "--policy", "policy.yaml", "--dora", "--format", "json",
                               "--no-index", cwd=tmp_path).out)
    v9 = _version(tmp_path / "store", keys, 9, NOW - timedelta(hours=2))
    _record(tmp_path / "store", keys["prd"].private, v9, env="prd", at=NOW + timedelta(days=30))
    report = json.loads(attest("audit", "store", "--policy", "policy.yaml", "--dora", "--format", "json",
                               "--no-index", cwd=tmp_path).out)
    assert report["running"] == before["running"]
    assert report["dora"]["components"]["app"]["prd"] == before["dora"]["components"]["app"]["prd"]
    late = [a for a in report["anomalies"] if a["kind"] == "out-of-order"]
    assert len(late) == 1 and "after the time of this audit" in late[0]["message"], report["anomalies"]


def test_a_record_dated_before_what_it_deployed_was_built_counts_in_no_figure(
        tmp_path: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    """A deployer's clock behind, or a backdated record: its lead time would be negative and its "since" before its
    release existed; it is out of order, and counts nowhere."""
    from tests.dora.history import NOW, _record, _version

    write_policy(tmp_path, keys)
    history_with_dora(tmp_path, keys)
    before = json.loads(attest("audit", "store", "--policy", "policy.yaml", "--dora", "--format", "json",
                               "--no-index", cwd=tmp_path).out)
    built = NOW - timedelta(hours=2)
    v9 = _version(tmp_path / "store", keys, 9, built)
    _record(tmp_path / "store", keys["prd"].private, v9, env="prd", at=built - timedelta(days=2))
    ran = attest("audit", "store", "--policy", "policy.yaml", "--dora", "--format", "json", "--no-index", cwd=tmp_path)
    report = json.loads(ran.out)
    assert ran.code == 1 and report["running"] == before["running"], ran
    assert report["dora"]["components"]["app"]["prd"] == before["dora"]["components"]["app"]["prd"]
    early = [a for a in report["anomalies"] if a["kind"] == "out-of-order"]
    assert len(early) == 1 and "before what it deployed was built" in early[0]["message"], report["anomalies"]


def test_a_provenance_the_policy_refuses_starts_no_lead_time(tmp_path: Path, keys: dict[str, KeyPair],
                                                             attest: AttestRunner) -> None:
    """A second provenance of v1's bytes, signed by the builder but from a branch the policy refuses, says its commit
    was made 300 days ago: the lead time still starts at the commit the allowed build names."""
    from tests import factory as f
    from tests.dora.history import NOW

    write_policy(tmp_path, keys)
    (tmp_path / "policy.yaml").write_text((tmp_path / "policy.yaml").read_text().replace(
        "  signed-by: [dev-build]\n", "  signed-by: [dev-build]\n  source:\n    branches: [main]\n"))
    history_with_dora(tmp_path, keys)
    before = json.loads(attest("audit", "store", "--policy", "policy.yaml", "--dora", "--format", "json",
                               "--no-index", cwd=tmp_path).out)
    f.publish(tmp_path / "store", f.provenance(keys["dev"].private, subjects={"app.zip": b"app v1"}, commit="e" * 40,
                                               finished=NOW - timedelta(days=300), ref="refs/heads/evil"))
    report = json.loads(attest("audit", "store", "--policy", "policy.yaml", "--dora", "--format", "json",
                               "--no-index", cwd=tmp_path).out)
    assert "disallowed-source" in {a["kind"] for a in report["anomalies"]}
    lead = report["dora"]["components"]["app"]["prd"]["leadTime"]
    assert lead == before["dora"]["components"]["app"]["prd"]["leadTime"] and lead["medianSeconds"] == 4 * HOUR


def test_failures_in_a_row_are_one_incident_and_a_change_is_a_commit() -> None:
    from datetime import UTC, datetime

    from verify.audit.dora import Deployed, dora_figures

    t = datetime(2026, 11, 1, tzinfo=UTC)

    def at(hours: float, status: str = "succeeded", artefact: str = "a") -> Deployed:
        return Deployed(component="app", environment="prd", status=status, kind="deploy",
                        time=t + timedelta(hours=hours), artifacts=frozenset({artefact}))

    records = [at(0), at(10, "failed"), at(19, "failed"), at(20, "succeeded", "b"), at(30, "succeeded", "c"),
               at(40, "succeeded", "d"), at(41, "succeeded", "e")]
    committed = {"a": ("1" * 40, t - timedelta(hours=1)), "b": ("2" * 40, t + timedelta(hours=21)),
                 "c": ("3" * 40, t + timedelta(hours=28)),
                 "d": ("4" * 40, t + timedelta(hours=37)), "e": ("4" * 40, t + timedelta(hours=37))}
    figures = dora_figures(records, committed, since=t - timedelta(days=1), until=t + timedelta(days=2))
    prd = figures["components"]["app"]["prd"]
    assert prd["timeToRestore"] == {"incidents": 1, "medianSeconds": 10 * HOUR}  # from the first failure
    # a 1 h, c 2 h, d and e one change of 3 h (its first artefact out), b committed after it went out
    assert prd["leadTime"] == {"changes": 3, "committedAfterDeployment": 1, "medianSeconds": 2 * HOUR,
                               "p90Seconds": 3 * HOUR}


def test_a_window_given_with_an_offset_is_stated_in_utc(tmp_path: Path, keys: dict[str, KeyPair],
                                                        attest: AttestRunner) -> None:
    write_policy(tmp_path, keys)
    history_with_dora(tmp_path, keys)
    ran = attest("audit", "store", "--policy", "policy.yaml", "--dora", "--format", "json", "--no-index",
                 "--since", "2026-11-27T18:14:18+12:00", cwd=tmp_path)
    assert json.loads(ran.out)["dora"]["window"]["since"] == "2026-11-27T06:14:18Z", ran
    for since in ("0001-01-01T00:00:00+12:00", "9999-12-31T23:59:59-01:00"):
        ran = attest("audit", "store", "--policy", "policy.yaml", "--dora", "--since", since, cwd=tmp_path)
        assert ran.code == 2 and "outside the years 1 to 9999 in UTC" in ran.err and "Traceback" not in ran.err, ran


def _prd(*records: tuple[float, str, str, str], line: str = "") -> list[Any]:
    """prd records of app at (hours, status, kind, artefact) from 2026-11-01."""
    from datetime import UTC, datetime

    from verify.audit.dora import Deployed

    t = datetime(2026, 11, 1, tzinfo=UTC)
    return [Deployed(component="app", environment="prd", status=status, kind=kind, time=t + timedelta(hours=hours),
                     artifacts=frozenset({artefact}), line=line or f"{n:064x}")
            for n, (hours, status, kind, artefact) in enumerate(records)]


def _figures(records: list[Any], committed: dict[str, Any] | None = None, *, days: tuple[int, int] = (1, 2)
             ) -> dict[str, Any]:
    from verify.audit.dora import dora_figures

    t = records[0].time - timedelta(hours=records[0].time.hour)
    since, until = t - timedelta(days=days[0]), t + timedelta(days=days[1])
    figures = dora_figures(records, committed or {}, since=since, until=until)
    return dict(figures["components"]["app"]["prd"])


def test_a_retry_that_is_then_rolled_back_is_a_second_incident() -> None:
    """v1 runs; v2 fails; v2's retry succeeds 1 h later; 4 h after that v2 is rolled back to v1: two failed
    changes, and two incidents restored (1 h and 4 h), the rollback counted though a failure came before it."""
    prd = _figures(_prd((0, "succeeded", "deploy", "v1"), (10, "failed", "deploy", "v2"),
                        (11, "succeeded", "deploy", "v2"), (15, "succeeded", "rollback", "v1")))
    assert prd["changeFailureRate"]["failures"] == 2
    assert prd["timeToRestore"] == {"incidents": 2, "medianSeconds": 2.5 * HOUR}


def test_a_failed_attempt_at_a_rollback_is_part_of_restoring_what_it_undoes() -> None:
    """r2 at 10:00, a rollback that failed at 13:00, the rollback that worked at 14:00: one incident of 4 h, from
    the deployment that was rolled back, as docs/usage.md says; a fix forward after a failed rollback is the
    ordinary rule (from the failure to the next success)."""
    prd = _figures(_prd((10, "succeeded", "deploy", "r2"), (13, "failed", "rollback", "r1"),
                        (14, "succeeded", "rollback", "r1")))
    assert prd["timeToRestore"] == {"incidents": 1, "medianSeconds": 4 * HOUR}
    fixed = _figures(_prd((10, "succeeded", "deploy", "r2"), (13, "failed", "rollback", "r1"),
                          (15, "succeeded", "deploy", "r3")))
    assert fixed["timeToRestore"] == {"incidents": 1, "medianSeconds": 2 * HOUR}


def test_two_records_of_one_time_are_ordered_as_what_runs_is_told() -> None:
    """A deploy of r2 and a rollback to r1 signed with one time: the one of the higher line sha256 is the later,
    as running and attest status take it; the figures no longer take the other order."""
    deploy, rollback = _prd((5, "succeeded", "deploy", "r2"), (5, "succeeded", "rollback", "r1"))
    rolled_back = _figures([replace(deploy, line="1" * 64), replace(rollback, line="2" * 64)])
    assert rolled_back["changeFailureRate"]["failures"] == 1 and rolled_back["timeToRestore"]["incidents"] == 1
    runs_r2 = _figures([replace(rollback, line="1" * 64), replace(deploy, line="2" * 64)])  # (given either way)
    assert runs_r2["changeFailureRate"]["failures"] == 0 and runs_r2["timeToRestore"]["incidents"] == 0
    assert _figures([replace(deploy, line="2" * 64), replace(rollback, line="1" * 64)]) == runs_r2


def test_no_data_is_null_with_why_never_zero() -> None:
    """Deployment frequency with no record in the window is null (not 0.0), and a lead time a rebuild of an old
    commit cannot give says so, not that commit times are missing."""
    from datetime import UTC, datetime

    old = _prd((0, "succeeded", "deploy", "a"))
    frequency = _figures(old, days=(-5, 10))["deploymentFrequency"]  # the window starts 5 days after
    assert frequency["perWeek"] is None and frequency["deployments"] == 0 and "note" in frequency
    commit = ("1" * 40, datetime(2026, 10, 31, tzinfo=UTC))
    rebuilt = _prd((0, "succeeded", "deploy", "a"), (24 * 40, "succeeded", "deploy", "b"))
    lead = _figures(rebuilt, {"a": commit, "b": commit}, days=(-39, 42))["leadTime"]
    assert lead["medianSeconds"] is None and "holds no new change" in lead["note"], lead
