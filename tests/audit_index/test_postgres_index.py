"""Issue 21, part 1: the audit index in a PostgreSQL database a team shares (a real PostgreSQL 15 server).

The same audit gives the same report with SQLite and with PostgreSQL; the index is incremental there too, an
edited entry is caught by --reverify, and a server that is not there or goes away mid-run is one sentence and
exit 4, never a report built on part of an index.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import factory as f
from tests.audit_index.conftest import APP, USED, publish_builds, write_builds_policy
from tests.conftest import AttestRunner, KeyPair, _clean_env
from tests.postgres_infra import fresh_database
from verify.audit.index import INDEX_FORMAT


@pytest.fixture
def database(postgres_dsn: str, request: pytest.FixtureRequest) -> str:
    return fresh_database(postgres_dsn, re.sub("[^a-z0-9]+", "_", request.node.name.lower())[:50])


def _world(tmp_path: Path, keys: dict[str, KeyPair], builds: int = 4) -> None:
    write_builds_policy(tmp_path, keys)
    publish_builds(tmp_path / "store", keys, builds)
    f.publish(tmp_path / "store", f.provenance(keys["other"].private, subjects={APP: b"forged"}))


def _audit(attest: AttestRunner, tmp_path: Path, index: str, *more: str) -> tuple[Any, dict[str, Any], tuple[int, int]]:
    ran = attest("audit", "store", "--policy", "policy.yaml", "--index", index, "--format", "json", "-v", *more,
                 cwd=tmp_path)
    assert ran.code in (0, 1) and "Traceback" not in ran.err, ran
    used = USED.search(ran.err)
    assert used is not None, ran
    return ran, json.loads(ran.out), (int(used.group(2)), int(used.group(3)))


def test_sqlite_and_postgresql_give_the_same_report_and_both_are_incremental(
        tmp_path: Path, keys: dict[str, KeyPair], attest: AttestRunner, database: str) -> None:
    _world(tmp_path, keys)
    _, on_sqlite, _ = _audit(attest, tmp_path, "index.sqlite")
    ran, on_postgres, (reused, checked) = _audit(attest, tmp_path, database)
    assert on_postgres == on_sqlite and (reused, checked) == (0, 5)
    assert [a["kind"] for a in on_postgres["anomalies"]] == ["untrusted-signer"] and ran.code == 1
    assert "postgresql://127.0.0.1:" in ran.err  # the server named, never a password
    _, again, (reused, checked) = _audit(attest, tmp_path, database)
    assert again == on_sqlite and (reused, checked) == (5, 0)
    f.publish(tmp_path / "store", f.provenance(keys["dev"].private, subjects={APP: b"v9"}, commit="9" * 40))
    _, more, (reused, checked) = _audit(attest, tmp_path, database)
    assert (reused, checked) == (5, 1) and len(more["artifacts"]) == len(on_sqlite["artifacts"]) + 1
    gone = sorted((tmp_path / "store" / "sha256").iterdir())[0]  # an artefact removed, its files and judgement
    for file in gone.iterdir():
        file.unlink()
    _, fewer, _ = _audit(attest, tmp_path, database)
    _, fewer_sqlite, _ = _audit(attest, tmp_path, "index.sqlite")
    assert fewer == fewer_sqlite and gone.name not in {a["sha256"] for a in fewer["artifacts"]}
    import psycopg

    with psycopg.connect(database, autocommit=True) as db:
        judged = {sha for (sha,) in db.execute("SELECT sha256 FROM attest_audit_judged").fetchall()}
    assert judged == {a["sha256"] for a in fewer["artifacts"]}


def test_reverify_catches_an_entry_edited_in_the_shared_database(
        tmp_path: Path, keys: dict[str, KeyPair], attest: AttestRunner, database: str) -> None:
    import psycopg

    _world(tmp_path, keys, builds=1)
    _audit(attest, tmp_path, database)
    with psycopg.connect(database, autocommit=True) as db:
        for sha, judged in db.execute("SELECT sha256, judged FROM attest_audit_judged").fetchall():
            edited = json.loads(judged)
            if edited and edited[6]:
                edited[6] = []  # its anomalies: none
                db.execute("UPDATE attest_audit_judged SET judged = %s WHERE sha256 = %s", (json.dumps(edited), sha))
    ran, report, _ = _audit(attest, tmp_path, database)
    assert ran.code == 0 and report["anomalies"] == []  # the shared index is trusted by a run that uses it ...
    ran, report, _ = _audit(attest, tmp_path, database, "--reverify")  # ... and --reverify says it was edited
    assert ran.code == 1 and sorted(a["kind"] for a in report["anomalies"]) == ["index-mismatch", "untrusted-signer"]


def test_a_newer_format_is_refused(tmp_path: Path, keys: dict[str, KeyPair], attest: AttestRunner,
                                   database: str) -> None:
    import psycopg

    _world(tmp_path, keys, builds=1)
    _audit(attest, tmp_path, database)
    with psycopg.connect(database, autocommit=True) as db:
        db.execute("UPDATE attest_audit_meta SET value = '99' WHERE key = 'format'")
    ran = attest("audit", "store", "--policy", "policy.yaml", "--index", database, cwd=tmp_path)
    assert ran.code == 3 and "a newer attest wrote it" in ran.err and len(ran.err.splitlines()) == 1, ran


def test_an_older_format_is_emptied_and_filled_again(tmp_path: Path, keys: dict[str, KeyPair],
                                                     attest: AttestRunner, database: str) -> None:
    """Tables as an older attest made them (format 2: a scans table, no stamps, judgements of no scope) are
    dropped and made again, and the audit is the one a new index gives."""
    import psycopg

    _world(tmp_path, keys, builds=2)
    with psycopg.connect(database, autocommit=True) as db:
        db.execute("CREATE TABLE attest_audit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO attest_audit_meta VALUES ('format', '2')")
        db.execute("CREATE TABLE attest_audit_facts (setup TEXT NOT NULL, uri TEXT NOT NULL, digest TEXT NOT NULL, "
                   "facts TEXT NOT NULL, touch TEXT NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (setup, uri))")
        db.execute("CREATE TABLE attest_audit_judged (setup TEXT NOT NULL, sha256 TEXT NOT NULL, inputs TEXT NOT NULL, "
                   "judged TEXT NOT NULL, history TEXT NOT NULL, PRIMARY KEY (setup, sha256))")
        db.execute("CREATE TABLE attest_audit_scans (uri TEXT PRIMARY KEY, stamp TEXT NOT NULL, digest TEXT NOT NULL)")
    _, first, (reused, checked) = _audit(attest, tmp_path, database)
    _, on_sqlite, _ = _audit(attest, tmp_path, "index.sqlite")
    assert first == on_sqlite and (reused, checked) == (0, 3)
    _, again, (reused, checked) = _audit(attest, tmp_path, database)
    assert again == on_sqlite and (reused, checked) == (3, 0)
    with psycopg.connect(database, autocommit=True) as db:
        tables = {name for (name,) in db.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'attest_%'")}
        assert tables == {"attest_audit_meta", "attest_audit_facts", "attest_audit_judged", "attest_audit_stored",
                          "attest_audit_used"}
        assert db.execute("SELECT value FROM attest_audit_meta WHERE key = 'format'").fetchall() == [
            (str(INDEX_FORMAT),)]


def test_what_no_audit_used_for_a_month_is_dropped(tmp_path: Path, keys: dict[str, KeyPair], attest: AttestRunner,
                                                   database: str) -> None:
    """As with SQLite: an older policy's rows, unused for KEPT_UNUSED_DAYS, go at the end of the next audit."""
    from datetime import UTC, datetime, timedelta

    import psycopg

    from attest.audit_index import KEPT_UNUSED_DAYS

    _world(tmp_path, keys, builds=2)
    _audit(attest, tmp_path, database)
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy.read_text() + "# edited: another setup\n")
    _audit(attest, tmp_path, database)
    long_ago = (datetime.now(UTC) - timedelta(days=KEPT_UNUSED_DAYS + 1)).isoformat(timespec="seconds")
    with psycopg.connect(database, autocommit=True) as db:
        assert db.execute("SELECT count(DISTINCT setup) FROM attest_audit_facts").fetchone() == (2,)
        db.execute("UPDATE attest_audit_used SET at = %s", (long_ago,))
    _, _, (reused, checked) = _audit(attest, tmp_path, database)
    assert (reused, checked) == (3, 0)
    with psycopg.connect(database, autocommit=True) as db:
        for table in ("facts", "judged", "used"):
            assert db.execute(f"SELECT count(DISTINCT setup) FROM attest_audit_{table}").fetchone() == (1,), table


def test_the_checks_of_a_place_no_audit_named_for_a_month_are_dropped(tmp_path: Path, keys: dict[str, KeyPair],
                                                                      attest: AttestRunner, database: str) -> None:
    """As with SQLite: a moved store's old place, named by no audit for KEPT_UNUSED_DAYS, goes though the policy is
    the same."""
    from datetime import UTC, datetime, timedelta

    import psycopg

    from attest.audit_index import KEPT_UNUSED_DAYS

    _world(tmp_path, keys, builds=2)
    _audit(attest, tmp_path, database)
    (tmp_path / "store").rename(tmp_path / "moved")

    def audited() -> list[str]:
        ran = attest("audit", "moved", "--policy", "policy.yaml", "--index", database, cwd=tmp_path)
        assert ran.code == 1 and "Traceback" not in ran.err, ran  # (the forged build)
        with psycopg.connect(database, autocommit=True) as db:
            return sorted({Path(uri).relative_to(tmp_path).parts[0]
                           for (uri,) in db.execute("SELECT uri FROM attest_audit_facts")})

    assert audited() == ["moved", "store"]
    with psycopg.connect(database, autocommit=True) as db:
        db.execute("UPDATE attest_audit_used SET at = %s",
                   ((datetime.now(UTC) - timedelta(days=KEPT_UNUSED_DAYS + 1)).isoformat(timespec="seconds"),))
    assert audited() == ["moved"]


def test_a_table_another_session_holds_too_long_costs_no_report(
        tmp_path: Path, keys: dict[str, KeyPair], database: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A transaction left open elsewhere holding the facts table: the audit's writes wait BUSY_SECONDS, not for
    ever, then keep nothing more of the run, whose report is written whole with a warning."""
    import psycopg

    import attest.audit_index as audit_index
    from attest.cli import main

    _world(tmp_path, keys, builds=2)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(audit_index, "BUSY_SECONDS", 1)
    argv = ["audit", "store", "--policy", "policy.yaml", "--index", database, "--format", "json", "-o", "report.json"]
    with pytest.raises(SystemExit):
        main(argv)  # the tables made, the history kept
    capsys.readouterr()
    f.publish(tmp_path / "store", f.provenance(keys["dev"].private, subjects={APP: b"v9"}, commit="9" * 40))
    holder = psycopg.connect(database)  # a transaction stays open until rolled back
    holder.execute("LOCK TABLE attest_audit_facts IN EXCLUSIVE MODE")  # (reads go on; writes wait)
    try:
        with pytest.raises(SystemExit) as ran:
            main(argv)
    finally:
        holder.rollback()
        holder.close()
    err = capsys.readouterr().err
    assert ran.value.code == 1 and "stayed locked by another session for 1 s" in err, err  # (1: the forged build)
    assert "this run's checks were not kept" in err and "Traceback" not in err
    assert len(json.loads(Path("report.json").read_text())["artifacts"]) == 4  # whole: v0, v1, forged, v9
    with psycopg.connect(database) as db:
        assert db.execute("SELECT count(*) FROM attest_audit_facts").fetchone() == (3,)  # v9's not kept


def test_a_server_that_is_not_there_or_goes_away_mid_run_is_exit_4_and_no_report(
        tmp_path: Path, keys: dict[str, KeyPair], attest: AttestRunner, database: str,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import psycopg

    from attest.audit_index import PostgresIndex
    from attest.cli import main
    from verify.audit.index import Kept

    _world(tmp_path, keys)
    nobody = attest("audit", "store", "--policy", "policy.yaml", "--index", "postgresql://postgres@127.0.0.1:9/x",
                    cwd=tmp_path)
    assert nobody.code == 4 and "cannot reach the audit index postgresql://127.0.0.1:9/x" in nobody.err, nobody
    assert nobody.out == "" and len(nobody.err.splitlines()) == 1
    _audit(attest, tmp_path, database)
    real, asked = PostgresIndex.kept, []

    def kept_then_the_server_drops_us(self: PostgresIndex, uri: str) -> Kept | None:
        asked.append(uri)
        if len(asked) == 3:  # the server ends this audit's session, as a restart or a failover would
            with psycopg.connect(database, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (self._db.info.backend_pid,))
        return real(self, uri)

    monkeypatch.setattr(PostgresIndex, "kept", kept_then_the_server_drops_us)
    f.publish(tmp_path / "store", f.provenance(keys["dev"].private, subjects={APP: b"new"}, commit="e" * 40))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as gone:
        main(["audit", "store", "--policy", "policy.yaml", "--index", database, "--format", "json"])
    out, err = capsys.readouterr()
    assert gone.value.code == 4 and out == "", err
    assert "went away or refused the audit" in err and "no report was made" in err and len(err.splitlines()) == 1


def test_two_audits_sharing_the_database_at_once_both_report_correctly(tmp_path: Path, keys: dict[str, KeyPair],
                                                                        database: str) -> None:
    _world(tmp_path, keys, builds=30)
    argv = [sys.executable, "-m", "attest", "audit", "store", "--policy", "policy.yaml", "--index", database,
            "--format", "json"]
    runs = [subprocess.Popen(argv, cwd=tmp_path, env=_clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)]
    outs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [1, 1], outs  # the forged one, in both
    assert [len(json.loads(out)["artifacts"]) for out, _ in outs] == [31, 31]


def test_two_audits_writing_the_same_rows_in_opposite_orders_both_keep_them(database: str) -> None:
    """Two audits of one pair of stores named in either order write the same rows in opposite orders: PostgreSQL
    undoes one transaction to break the deadlock, which was reported as a server that went away (exit 4, no report).
    The one undone is written again once the other's is done."""
    import threading

    from attest.audit_index import PostgresIndex

    setup, scope = "s" * 64, "c" * 64
    first = [f"/x/store-a/sha256/{i:064x}/p.intoto.jsonl" for i in range(2000)]
    second = [f"/x/store-b/sha256/{i:064x}/p.intoto.jsonl" for i in range(2000)]
    results: dict[str, str] = {}
    ready = threading.Barrier(2)

    def write(name: str, order: list[str]) -> None:
        index = PostgresIndex(database, setup, scope)
        rows = [(setup, uri, "0" * 64, "", "", 1, "") for uri in order]
        ready.wait()
        try:
            index._write([(index.SQL["put_facts"], rows)])
            results[name] = "ok"
        except Exception as e:  # (shown by the assertion)
            results[name] = f"{type(e).__name__}: {e}"
        finally:
            index.close()

    for _ in range(3):
        threads = [threading.Thread(target=write, args=("a b", first + second)),
                   threading.Thread(target=write, args=("b a", second + first))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == {"a b": "ok", "b a": "ok"}, results
