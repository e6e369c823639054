"""Issue 21, part 1: attest audit keeps what it verified in an index and, on the next run, checks only what is new.

The index is a cache, never a source of trust: an entry is reused only for the same bytes at the same place
under the same trust; --reverify checks everything again and reports an entry that disagrees; a broken index
is moved aside and rebuilt; one of a newer format, or that others may write, is refused.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests import factory as f
from tests.audit_index.conftest import APP, USED, publish_builds, write_builds_policy
from tests.conftest import AttestRunner, KeyPair, Result, _clean_env


def _audit(attest: AttestRunner, tmp_path: Path, *more: str) -> tuple[Result, dict[str, Any]]:
    """The audit's JSON report, with what -v said of the index under "index" (reused, checked)."""
    ran = attest("audit", "store", "--policy", "policy.yaml", "--index", "index.sqlite", "--format", "json", "-v",
                 *more, cwd=tmp_path)
    assert ran.code in (0, 1) and "Traceback" not in ran.err, ran
    used = USED.search(ran.err)
    assert used is not None, ran
    report: dict[str, Any] = json.loads(ran.out)
    return ran, {**report, "index": {"reused": int(used.group(2)), "checked": int(used.group(3)),
                                     "reverified": "--reverify" in ran.err}}


def _shas(report: dict[str, Any]) -> set[str]:
    return {a["sha256"] for a in report["artifacts"]}


def test_the_second_audit_checks_only_what_is_new_and_drops_what_is_gone(
        tmp_path: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    write_builds_policy(tmp_path, keys)
    publish_builds(tmp_path / "store", keys, 5)
    first, cold = _audit(attest, tmp_path)
    assert first.code == 0 and cold["index"]["checked"] == 5 and cold["index"]["reused"] == 0
    _, warm = _audit(attest, tmp_path)
    assert warm["index"] == {**cold["index"], "checked": 0, "reused": 5}
    assert {k: v for k, v in warm.items() if k != "index"} == {k: v for k, v in cold.items() if k != "index"}
    publish_builds(tmp_path / "store", keys, 2, start=5)  # two new builds
    _, more = _audit(attest, tmp_path)
    assert (more["index"]["checked"], more["index"]["reused"]) == (2, 5) and len(more["artifacts"]) == 7
    gone = next((tmp_path / "store" / "sha256").iterdir())
    for file in gone.iterdir():
        file.unlink()
    gone.rmdir()
    _, fewer = _audit(attest, tmp_path)
    assert gone.name not in _shas(fewer) and len(fewer["artifacts"]) == 6  # not counted, not reported
    with sqlite3.connect(tmp_path / "index.sqlite") as db:
        uris = [uri for (uri,) in db.execute("SELECT uri FROM facts")]
        judged = {sha for (sha,) in db.execute("SELECT sha256 FROM judged")}
    assert len(uris) == 6 and not any(gone.name in uri for uri in uris)
    assert judged == _shas(fewer)  # nor is its judgement kept, to be loaded on every run


def test_a_judgement_is_dropped_once_no_store_audited_under_its_policy_holds_the_artefact(
        tmp_path: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    import shutil

    write_builds_policy(tmp_path, keys)
    publish_builds(tmp_path / "store", keys, 2)
    shutil.copytree(tmp_path / "store", tmp_path / "mirror")  # the same two builds in another store

    def audit(source: str) -> set[str]:
        ran = attest("audit", source, "--policy", "policy.yaml", "--index", "index.sqlite", cwd=tmp_path)
        assert ran.code == 0, ran
        with sqlite3.connect(tmp_path / "index.sqlite") as db:
            return {sha for (sha,) in db.execute("SELECT sha256 FROM judged")}

    both = audit("store") | audit("mirror")
    assert len(both) == 2
    gone = sorted((tmp_path / "store" / "sha256").iterdir())[0]
    shutil.rmtree(gone)
    assert audit("store") == both  # the mirror still holds it
    shutil.rmtree(tmp_path / "mirror" / "sha256" / gone.name)
    assert audit("mirror") == both - {gone.name}


def test_a_changed_file_or_policy_is_checked_again(tmp_path: Path, keys: dict[str, KeyPair],
                                                   attest: AttestRunner) -> None:
    write_builds_policy(tmp_path, keys)
    (tmp_path / "store").mkdir()
    evidence = tmp_path / "store" / "app.intoto.jsonl"  # a plain folder, whose files may change in place
    evidence.write_bytes(f.provenance(keys["dev"].private, subjects={APP: b"v1"}).to_json_line())
    ran, report = _audit(attest, tmp_path)
    assert ran.code == 0 and report["index"]["checked"] == 1
    evidence.write_bytes(f.provenance(keys["other"].private, subjects={APP: b"v1"}).to_json_line())
    ran, report = _audit(attest, tmp_path)
    assert ran.code == 1 and report["index"]["checked"] == 1  # the new bytes were checked: an untrusted signer
    assert [a["kind"] for a in report["anomalies"]] == ["untrusted-signer"]
    evidence.write_bytes(f.provenance(keys["dev"].private, subjects={APP: b"v1"}, ref="refs/heads/dev")
                         .to_json_line())
    ran, report = _audit(attest, tmp_path)
    assert ran.code == 1 and [a["kind"] for a in report["anomalies"]] == ["disallowed-source"]
    write_builds_policy(tmp_path, keys, branches="[main, dev]")  # the policy changed: what it judges is checked again
    ran, report = _audit(attest, tmp_path)
    assert ran.code == 0 and report["index"]["checked"] == 1 and report["index"]["reused"] == 0


def test_reverify_reports_an_entry_someone_edited(tmp_path: Path, keys: dict[str, KeyPair],
                                                  attest: AttestRunner) -> None:
    write_builds_policy(tmp_path, keys)
    f.publish(tmp_path / "store", f.provenance(keys["other"].private, subjects={APP: b"forged"}))
    ran, report = _audit(attest, tmp_path)
    assert ran.code == 1 and [a["kind"] for a in report["anomalies"]] == ["untrusted-signer"]
    with sqlite3.connect(tmp_path / "index.sqlite") as db:  # whoever can write the index ...
        (sha, judged) = db.execute("SELECT sha256, judged FROM judged WHERE judged != '[]'").fetchone()
        edited = json.loads(judged)  # [name, built, groups, deps, committed, placed, anomalies, exceptional]
        edited[6] = []  # nothing wrong
        db.execute("UPDATE judged SET judged = ? WHERE sha256 = ?", (json.dumps(edited), sha))
    ran, report = _audit(attest, tmp_path)
    assert ran.code == 0 and report["anomalies"] == []  # ... can make an audit believe it: the threat model says so
    ran, report = _audit(attest, tmp_path, "--reverify")
    assert ran.code == 1 and sorted(a["kind"] for a in report["anomalies"]) == ["index-mismatch", "untrusted-signer"]
    assert report["index"]["reverified"] is True
    ran, report = _audit(attest, tmp_path)  # the entry was replaced by the fresh check
    assert [a["kind"] for a in report["anomalies"]] == ["untrusted-signer"]


def test_reverify_reports_a_facts_row_edited_to_concern_nothing(tmp_path: Path, keys: dict[str, KeyPair],
                                                                 attest: AttestRunner) -> None:
    """A file's row edited to concern no artefact hides its anomaly from a plain audit (as the threat model says);
    --reverify judged right but did not say the index was edited."""
    write_builds_policy(tmp_path, keys)
    f.publish(tmp_path / "store", f.provenance(keys["other"].private, subjects={APP: b"forged"}))
    ran, report = _audit(attest, tmp_path)
    assert ran.code == 1 and [a["kind"] for a in report["anomalies"]] == ["untrusted-signer"]
    with sqlite3.connect(tmp_path / "index.sqlite") as db:
        db.execute("UPDATE facts SET touch = '', count = 0")
    ran, report = _audit(attest, tmp_path)
    assert ran.code == 0 and report["anomalies"] == []
    ran, report = _audit(attest, tmp_path, "--reverify")
    assert ran.code == 1 and sorted(a["kind"] for a in report["anomalies"]) == ["index-mismatch", "untrusted-signer"]
    assert "the audit index held other facts for" in next(a["message"] for a in report["anomalies"]
                                                          if a["kind"] == "index-mismatch")


def test_an_entry_that_does_not_read_back_is_checked_again(tmp_path: Path, keys: dict[str, KeyPair],
                                                           attest: AttestRunner) -> None:
    write_builds_policy(tmp_path, keys)
    publish_builds(tmp_path / "store", keys, 2)
    _audit(attest, tmp_path)
    with sqlite3.connect(tmp_path / "index.sqlite") as db:
        db.execute("""UPDATE facts SET facts = '[{"@":"_Fact","source":1}]'""")
        db.execute("DELETE FROM judged")  # the artefacts judged again, from facts that do not read back
    ran, report = _audit(attest, tmp_path)
    assert ran.code == 0 and report["index"]["checked"] == 2 and len(report["artifacts"]) == 2


@pytest.mark.parametrize("history", ['{"names": ["x"', '{"a": 1} trailing', '["not", "an", "object"]', ""])
def test_a_kept_history_that_does_not_read_back_is_judged_again(tmp_path: Path, keys: dict[str, KeyPair],
                                                                attest: AttestRunner, history: str) -> None:
    """A torn or edited history text was pasted into the JSON report, which was then no JSON, with exit 0."""
    write_builds_policy(tmp_path, keys)
    publish_builds(tmp_path / "store", keys, 2)
    _, good = _audit(attest, tmp_path)
    with sqlite3.connect(tmp_path / "index.sqlite") as db:
        db.execute("UPDATE judged SET history = ? WHERE rowid = (SELECT min(rowid) FROM judged)", (history,))
    ran, report = _audit(attest, tmp_path)  # (_audit parses the report: it fails if the report is not JSON)
    assert ran.code == 0, ran
    assert {k: v for k, v in report.items() if k != "index"} == {k: v for k, v in good.items() if k != "index"}
    assert "checked, 1 artefact(s) judged" in ran.err, ran.err


@pytest.mark.parametrize("damage", ["truncated", "scrambled"])
def test_a_broken_index_is_moved_aside_and_rebuilt(damage: str, tmp_path: Path, keys: dict[str, KeyPair],
                                                   attest: AttestRunner) -> None:
    write_builds_policy(tmp_path, keys)
    publish_builds(tmp_path / "store", keys, 3)
    _, good = _audit(attest, tmp_path)
    index = tmp_path / "index.sqlite"
    with sqlite3.connect(index) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = index.read_bytes()
    index.write_bytes(data[:len(data) // 2 + 7] if damage == "truncated" else data[:100] + bytes(
        (b * 7 + 3) % 256 for b in data[100:]))
    ran, report = _audit(attest, tmp_path)
    assert "moved it to" in ran.err and "auditing again with a new index" in ran.err, ran
    assert {k: v for k, v in report.items() if k != "index"} == {k: v for k, v in good.items() if k != "index"}
    assert report["index"]["checked"] == 3
    assert list(tmp_path.glob("index.sqlite.broken-*"))


def test_a_file_that_is_not_an_index_is_neither_used_nor_moved(tmp_path: Path, keys: dict[str, KeyPair],
                                                              attest: AttestRunner) -> None:
    write_builds_policy(tmp_path, keys)
    publish_builds(tmp_path / "store", keys, 1)
    (tmp_path / "notes.txt").write_text("my notes\n")
    ran = attest("audit", "store", "--policy", "policy.yaml", "--index", "notes.txt", cwd=tmp_path)
    assert ran.code == 3 and "is not an audit index" in ran.err, ran
    assert (tmp_path / "notes.txt").read_text() == "my notes\n" and not list(tmp_path.glob("notes.txt.*"))
    (tmp_path / "elsewhere").write_bytes(b"")
    (tmp_path / "link.sqlite").symlink_to(tmp_path / "elsewhere")
    ran = attest("audit", "store", "--policy", "policy.yaml", "--index", "link.sqlite", cwd=tmp_path)
    assert ran.code == 3 and "not a regular file" in ran.err and (tmp_path / "elsewhere").read_bytes() == b"", ran


def test_an_index_of_a_newer_format_or_that_others_may_write_is_refused(
        tmp_path: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    write_builds_policy(tmp_path, keys)
    publish_builds(tmp_path / "store", keys, 1)
    _audit(attest, tmp_path)
    index = tmp_path / "index.sqlite"
    with sqlite3.connect(index) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'format'")
    ran = attest("audit", "store", "--policy", "policy.yaml", "--index", "index.sqlite", cwd=tmp_path)
    assert ran.code == 3 and "a newer attest wrote it" in ran.err and len(ran.err.splitlines()) == 1, ran
    with sqlite3.connect(index) as db:
        db.execute("UPDATE meta SET value = '1' WHERE key = 'format'")
    index.chmod(0o666)
    ran = attest("audit", "store", "--policy", "policy.yaml", "--index", "index.sqlite", cwd=tmp_path)
    assert ran.code == 3 and "may be written by other users" in ran.err, ran


@pytest.mark.parametrize("stated", ["'\u00b2'", "NULL", "9", "'8 '", "X'38'", "'" + "1" * 5000 + "'"])
def test_an_index_format_that_is_no_format_is_a_sentence(tmp_path: Path, keys: dict[str, KeyPair],
                                                          attest: AttestRunner, stated: str) -> None:
    """A superscript digit (str.isdigit takes it, int() does not), NULL, a number, a blob: refused, never exit 70."""
    write_builds_policy(tmp_path, keys)
    publish_builds(tmp_path / "store", keys, 1)
    with sqlite3.connect(tmp_path / "index.sqlite") as db:
        db.execute("CREATE TABLE meta (key TEXT, value)")
        db.execute(f"INSERT INTO meta VALUES ('format', {stated})")
    (tmp_path / "index.sqlite").chmod(0o600)
    ran = attest("audit", "store", "--policy", "policy.yaml", "--index", "index.sqlite", cwd=tmp_path)
    assert ran.code == 3 and "cannot read: a newer attest wrote it, or someone else" in ran.err, ran
    assert len(ran.err.splitlines()) == 1 and not ran.out, ran


def test_an_index_or_journal_another_user_may_write_is_refused(tmp_path: Path, keys: dict[str, KeyPair],
                                                                attest: AttestRunner) -> None:
    """SQLite reads `INDEX-wal` as part of the index: a journal planted beside it (in a folder others may write,
    such as /tmp) would be replayed into an honest index. The index, its journals and its folder must be the
    auditor's own, and only theirs to write."""
    write_builds_policy(tmp_path, keys)
    publish_builds(tmp_path / "store", keys, 1)
    _audit(attest, tmp_path)
    index = tmp_path / "index.sqlite"
    for name, mode in (("index.sqlite-wal", 0o666), ("index.sqlite-shm", 0o622), ("index.sqlite-journal", 0o646)):
        planted = tmp_path / name
        planted.write_bytes(b"")
        planted.chmod(mode)
        ran = attest("audit", "store", "--policy", "policy.yaml", "--index", "index.sqlite", cwd=tmp_path)
        assert ran.code == 3 and f"{name}, a journal SQLite would read as part of the audit index" in ran.err, ran
        planted.unlink()
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # as /tmp is
    index.rename(shared / "index.sqlite")
    ran = attest("audit", "store", "--policy", "policy.yaml", "--index", shared / "index.sqlite", cwd=tmp_path)
    assert ran.code == 3 and "may be written by other users, who could put a journal beside the index" in ran.err
    if os.geteuid() == 0:  # only root can give a file away
        shared.chmod(0o700)
        os.chown(shared / "index.sqlite", 65534, 65534)
        ran = attest("audit", "store", "--policy", "policy.yaml", "--index", shared / "index.sqlite", cwd=tmp_path)
        assert ran.code == 3 and "belongs to another user (uid 65534)" in ran.err, ran
        os.chown(shared / "index.sqlite", os.getuid(), os.getgid())
        planted = shared / "index.sqlite-wal"
        planted.write_bytes(b"")
        planted.chmod(0o600)
        os.chown(planted, 65534, 65534)
        ran = attest("audit", "store", "--policy", "policy.yaml", "--index", shared / "index.sqlite", cwd=tmp_path)
        assert ran.code == 3 and "is not a file of your own" in ran.err, ran


def test_no_index_keeps_nothing_and_the_default_is_the_users_cache(tmp_path: Path, keys: dict[str, KeyPair],
                                                                     attest: AttestRunner) -> None:
    write_builds_policy(tmp_path, keys)
    publish_builds(tmp_path / "store", keys, 1)
    cache = tmp_path / "cache"
    ran = attest("audit", "store", "--policy", "policy.yaml", "--no-index", cwd=tmp_path,
                 env={"XDG_CACHE_HOME": str(cache)})
    assert ran.code == 0 and not cache.exists(), ran
    ran = attest("audit", "store", "--policy", "policy.yaml", cwd=tmp_path, env={"XDG_CACHE_HOME": str(cache)})
    assert ran.code == 0 and (cache / "attest" / "audit-index.sqlite").is_file()
    assert oct((cache / "attest" / "audit-index.sqlite").stat().st_mode & 0o777) == "0o600"
    usage = attest("audit", "store", "--policy", "policy.yaml", "--no-index", "--reverify", cwd=tmp_path)
    assert usage.code == 2, usage


def test_a_default_index_that_cannot_be_made_is_done_without_and_a_named_one_is_refused(
        tmp_path: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    """The default index under a cache folder that cannot be made (a read-only home, a file where the folder
    should be): the audit checks every file without an index, saying so, which weakens nothing. An index the user
    named that cannot be used is an error."""
    write_builds_policy(tmp_path, keys)
    publish_builds(tmp_path / "store", keys, 1)
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    ran = attest("audit", "store", "--policy", "policy.yaml", "--format", "json", cwd=tmp_path,
                 env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert ran.code == 0 and len(json.loads(ran.out)["artifacts"]) == 1, ran
    assert "warning: cannot create the folder of the audit index" in ran.err, ran
    assert "this audit checks every file, without an index" in ran.err and "Traceback" not in ran.err
    (tmp_path / "index.sqlite").touch(mode=0o666)
    (tmp_path / "index.sqlite").chmod(0o666)
    ran = attest("audit", "store", "--policy", "policy.yaml", "--index", "index.sqlite", cwd=tmp_path)
    assert ran.code == 3 and "may be written by other users" in ran.err and not ran.out, ran


def test_what_no_audit_used_for_a_month_is_dropped(tmp_path: Path, keys: dict[str, KeyPair],
                                                   attest: AttestRunner) -> None:
    """Every policy edit (or attest upgrade) is a new setup, checked from scratch: the old one's rows stay while an
    audit used them within KEPT_UNUSED_DAYS, and go with the first audit after that, so that a year of policy edits
    does not keep a year of whole histories."""
    from datetime import UTC, datetime, timedelta

    from attest.audit_index import KEPT_UNUSED_DAYS

    write_builds_policy(tmp_path, keys)
    publish_builds(tmp_path / "store", keys, 2)
    _audit(attest, tmp_path)
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy.read_text() + "# edited: another policy digest, another setup\n")
    _, report = _audit(attest, tmp_path)
    assert report["index"]["checked"] == 2  # (a new setup is checked from scratch)
    index = tmp_path / "index.sqlite"
    with sqlite3.connect(index) as db:
        assert db.execute("SELECT count(DISTINCT setup) FROM facts").fetchone() == (2,)  # both used lately
        long_ago = (datetime.now(UTC) - timedelta(days=KEPT_UNUSED_DAYS + 1)).isoformat(timespec="seconds")
        db.execute("UPDATE used SET at = ?", (long_ago,))
    _, report = _audit(attest, tmp_path)  # the edited policy's setup is used again; the other one is dropped
    assert report["index"]["reused"] == 2
    with sqlite3.connect(index) as db:
        for table in ("facts", "judged", "used"):
            assert db.execute(f"SELECT count(DISTINCT setup) FROM {table}").fetchone() == (1,), table
        assert db.execute("SELECT count(*) FROM facts").fetchone() == (2,)
    _, report = _audit(attest, tmp_path)
    assert report["index"]["reused"] == 2


def test_the_checks_of_a_place_no_audit_named_for_a_month_are_dropped(tmp_path: Path, keys: dict[str, KeyPair],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A store audited at another place (moved, or synced to a new folder on every CI run, as CodeBuild's source
    folder is) is checked there from scratch; the rows of the old place, files and stored artefacts, stay while an
    audit named it within KEPT_UNUSED_DAYS and go with the first audit after that, though the policy is the same:
    a year of nightly runs does not keep a year of places."""
    from datetime import UTC, datetime, timedelta

    import attest.cli.audit as audit_cli
    from attest.audit_index import KEPT_UNUSED_DAYS
    from attest.cli import main
    from attest.stores.local import LocalStore

    monkeypatch.setattr(audit_cli, "_RACY_NS", 0)  # a stamp taken before the audit began stands for its bytes
    monkeypatch.chdir(tmp_path)
    write_builds_policy(tmp_path, keys)
    publish_builds(tmp_path / "store", keys, 2)
    (tmp_path / "app").write_bytes(b"v0")
    LocalStore(tmp_path / "store").put_artifact(f.digests(b"v0")["sha256"], APP, tmp_path / "app")
    (tmp_path / "single").mkdir()
    single = tmp_path / "single" / "one.intoto.jsonl"
    single.write_bytes(next((tmp_path / "store" / "sha256").rglob("*.intoto.jsonl")).read_bytes())

    def audited(*sources: str) -> None:
        with pytest.raises(SystemExit) as ran:
            main(["audit", *sources, "--policy", "policy.yaml", "--index", "index.sqlite"])
        assert ran.value.code == 0

    def places() -> dict[str, list[str]]:
        with sqlite3.connect(tmp_path / "index.sqlite") as db:
            return {table: sorted({Path(uri).relative_to(tmp_path).parts[0] for (uri,) in
                                   db.execute(f"SELECT uri FROM {table}")}) for table in ("facts", "stored")}

    audited("store", str(single))
    (tmp_path / "store").rename(tmp_path / "moved")  # the same store, at another place
    audited("moved")
    assert places() == {"facts": ["moved", "single", "store"], "stored": ["moved", "store"]}  # all named lately
    with sqlite3.connect(tmp_path / "index.sqlite") as db:
        long_ago = (datetime.now(UTC) - timedelta(days=KEPT_UNUSED_DAYS + 1)).isoformat(timespec="seconds")
        db.execute("UPDATE used SET at = ?", (long_ago,))
    audited("moved")  # named again now: the places no audit named for a month go, whatever the policy
    assert places() == {"facts": ["moved"], "stored": ["moved"]}
    audited(str(single))  # a file named by itself is a place of its own
    assert places() == {"facts": ["moved", "single"], "stored": ["moved"]}


def test_an_audit_that_did_not_say_where_it_looked_keeps_every_place(tmp_path: Path, keys: dict[str, KeyPair],
                                                                      attest: AttestRunner) -> None:
    """A use of the index that names no place (a library caller's, or an unreadable entry) may have looked anywhere:
    while it is recent, no file's checks are dropped by place."""
    from datetime import UTC, datetime, timedelta

    from attest.audit_index import KEPT_UNUSED_DAYS

    write_builds_policy(tmp_path, keys)
    publish_builds(tmp_path / "store", keys, 2)
    _audit(attest, tmp_path)
    (tmp_path / "store").rename(tmp_path / "moved")
    index = tmp_path / "index.sqlite"
    for places in ("", "not a list"):
        with sqlite3.connect(index) as db:
            long_ago = (datetime.now(UTC) - timedelta(days=KEPT_UNUSED_DAYS + 1)).isoformat(timespec="seconds")
            db.execute("UPDATE used SET at = ?", (long_ago,))
            (setup,) = db.execute("SELECT setup FROM used").fetchone()
            db.execute("INSERT OR REPLACE INTO used VALUES (?, ?, ?, ?)",
                       (setup, "0" * 64, datetime.now(UTC).isoformat(timespec="seconds"), places))
        ran = attest("audit", "moved", "--policy", "policy.yaml", "--index", "index.sqlite", cwd=tmp_path)
        assert ran.code == 0, ran
        with sqlite3.connect(index) as db:
            kept = {Path(uri).relative_to(tmp_path).parts[0] for (uri,) in db.execute("SELECT uri FROM facts")}
        assert kept == {"store", "moved"}, places


def test_a_store_in_the_codebuild_builds_own_folder_is_warned_of(tmp_path: Path, keys: dict[str, KeyPair],
                                                                  attest: AttestRunner) -> None:
    """CodeBuild names each build's folder anew (/codebuild/output/srcNNN/src): a store synced there is checked from
    scratch by every build, which the audit says (an audit with an index only; the report is the same)."""
    build = tmp_path / "codebuild" / "output" / "src0123456789"
    (build / "src").mkdir(parents=True)
    write_builds_policy(tmp_path, keys)
    publish_builds(build / "store", keys, 1)
    publish_builds(tmp_path / "fixed", keys, 1)
    env = {"CODEBUILD_SRC_DIR": str(build / "src")}
    for source, more, warned in ((str(build / "store"), ["--index", "index.sqlite"], True),
                                 ("codebuild/output/src0123456789/src/../store", ["--index", "index.sqlite"], True),
                                 (str(build / "store"), ["--no-index"], False),
                                 ("fixed", ["--index", "index.sqlite"], False)):
        ran = attest("audit", source, "--policy", "policy.yaml", *more, cwd=tmp_path, env=env)
        assert ran.code == 0 and ("changes with every build" in ran.err) == warned, (source, more, ran)
    ran = attest("audit", str(build / "store"), "--policy", "policy.yaml", "--index", "index.sqlite", cwd=tmp_path)
    assert ran.code == 0 and "changes with every build" not in ran.err, ran  # (not in CodeBuild)


def test_two_audits_of_one_index_at_once_both_report_correctly(tmp_path: Path, keys: dict[str, KeyPair]) -> None:
    write_builds_policy(tmp_path, keys)
    publish_builds(tmp_path / "store", keys, 60)
    argv = [sys.executable, "-m", "attest", "audit", "store", "--policy", "policy.yaml", "--index", "index.sqlite",
            "--format", "json"]
    runs = [subprocess.Popen(argv, cwd=tmp_path, env=_clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)]
    outs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outs
    reports = [json.loads(out) for out, _ in outs]
    assert [len(r["artifacts"]) for r in reports] == [60, 60]
    _, after = _audit(_runner, tmp_path)
    assert after["index"]["reused"] == 60


def _runner(*args: Any, cwd: Path, **kwargs: Any) -> Result:
    done = subprocess.run([sys.executable, "-m", "attest", *map(str, args)], cwd=cwd, env=_clean_env(),
                          capture_output=True, text=True, timeout=120, check=False)
    return Result(done.returncode, done.stdout, done.stderr)


def test_an_index_another_audit_holds_too_long_refuses_at_the_start_and_costs_no_report_later(
        tmp_path: Path, keys: dict[str, KeyPair], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Another audit holding the index's write lock past the wait: before anything is done, the audit is refused
    with a sentence (wait, or another path); once the work is done, it is not thrown away: the report is written
    whole, and a warning says that this run's checks were not kept."""
    import attest.audit_index as audit_index
    from attest.cli import main

    write_builds_policy(tmp_path, keys)
    publish_builds(tmp_path / "store", keys, 3)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(audit_index, "BUSY_SECONDS", 0.2)
    argv = ["audit", "store", "--policy", "policy.yaml", "--index", "index.sqlite", "--format", "json", "-o",
            "report.json"]

    def audit() -> tuple[int | str | None, str]:
        with pytest.raises(SystemExit) as ran:
            main(argv)
        return ran.value.code, capsys.readouterr().err

    audit()  # the index, made
    holder = sqlite3.connect("index.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        code, err = audit()
    finally:
        holder.execute("ROLLBACK")
    assert code == 3 and "stayed locked by another audit for 0.2 s; wait for it" in err and "Traceback" not in err
    Path("report.json").unlink()

    opened = audit_index.SqliteIndex.__init__

    def taken_once_open(index: audit_index.SqliteIndex, *args: Any, **kwargs: Any) -> None:
        opened(index, *args, **kwargs)
        holder.execute("BEGIN IMMEDIATE")  # another audit's write, from now until the end of this one

    monkeypatch.setattr(audit_index.SqliteIndex, "__init__", taken_once_open)
    publish_builds(tmp_path / "store", keys, 1, start=3)
    try:
        code, err = audit()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert code == 0 and "warning: the audit index" in err and "this run's checks were not kept" in err, err
    assert len(json.loads(Path("report.json").read_text())["artifacts"]) == 4  # whole
    with sqlite3.connect("index.sqlite") as db:  # and nothing of it kept
        assert db.execute("SELECT count(*) FROM facts").fetchone() == (3,)

    # the lock taken after the checks were kept, while the files gone are forgotten: the report is whole too
    monkeypatch.setattr(audit_index.SqliteIndex, "__init__", opened)
    audit()  # (the fourth build kept)
    forgetting = audit_index.SqliteIndex.forget

    def taken_to_forget(index: audit_index.SqliteIndex, *args: Any, **kwargs: Any) -> None:
        again.execute("BEGIN IMMEDIATE")
        forgetting(index, *args, **kwargs)

    monkeypatch.setattr(audit_index.SqliteIndex, "forget", taken_to_forget)
    for file in sorted((tmp_path / "store" / "sha256").rglob("*.intoto.jsonl"))[:1]:
        file.unlink()
    again = sqlite3.connect("index.sqlite", isolation_level=None)
    try:
        code, err = audit()
    finally:
        again.execute("ROLLBACK")
        again.close()
    assert code == 0 and "this run's checks were not kept" in err, err
    assert len(json.loads(Path("report.json").read_text())["artifacts"]) == 3


def test_a_full_disk_keeps_the_index_as_it_was_and_costs_no_report(tmp_path: Path, keys: dict[str, KeyPair],
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """An index that cannot grow (the disk is full) is not a broken one: it is neither moved aside nor rebuilt (the
    audit is not run twice), the report is written whole, and a warning says that this run's checks were not
    kept."""
    import attest.audit_index as audit_index
    from attest.cli import main

    write_builds_policy(tmp_path, keys)
    publish_builds(tmp_path / "store", keys, 3)
    monkeypatch.chdir(tmp_path)
    opened = audit_index.SqliteIndex._open

    def full(index: audit_index.SqliteIndex) -> sqlite3.Connection:
        db = opened(index)
        (pages,) = db.execute("PRAGMA page_count").fetchone()
        db.execute(f"PRAGMA max_page_count = {pages}")  # as a full disk answers: SQLITE_FULL on the next page
        return db

    monkeypatch.setattr(audit_index.SqliteIndex, "_open", full)
    with pytest.raises(SystemExit) as ran:
        main(["audit", "store", "--policy", "policy.yaml", "--index", "index.sqlite", "--format", "json", "-o",
              "report.json"])
    err = capsys.readouterr().err
    assert ran.value.code == 0 and "cannot be written (database or disk is full); this run's checks were not kept" \
        in err and "moved it" not in err, err
    assert len(json.loads(Path("report.json").read_text())["artifacts"]) == 3
    assert not list(tmp_path.glob("index.sqlite.broken-*"))


def test_an_index_broken_again_once_rebuilt_is_a_sentence(tmp_path: Path, keys: dict[str, KeyPair],
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A broken index is moved aside and the audit run again with a new one; a new one that breaks too (a failing
    disk) is exit 3 with one sentence, not a second retry nor an internal error."""
    import attest.audit_index as audit_index
    from attest.cli import main

    write_builds_policy(tmp_path, keys)
    publish_builds(tmp_path / "store", keys, 1)
    monkeypatch.chdir(tmp_path)

    def unreadable(index: audit_index.SqliteIndex, *args: Any) -> list[tuple[object, ...]]:
        raise audit_index.IndexBroken(f"the audit index {index.file} cannot be read (disk I/O error)")

    monkeypatch.setattr(audit_index.SqliteIndex, "_raw", unreadable)
    with pytest.raises(SystemExit) as ran:
        main(["audit", "store", "--policy", "policy.yaml", "--index", "index.sqlite"])
    err = capsys.readouterr().err.strip().splitlines()
    assert ran.value.code == 3 and len(err) == 2 and "moved it to" in err[0], err
    assert err[1].endswith("again with a new index; give --index a path on a sound disk, or --no-index."), err
    assert len(list(tmp_path.glob("index.sqlite.broken-*"))) == 1


def test_the_default_index_broken_again_once_rebuilt_is_done_without(tmp_path: Path, keys: dict[str, KeyPair],
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The default index (no --index given) that breaks again once made anew is done without, as one that cannot
    be opened is: two warnings, then the whole report, every file checked (nothing is weakened without an index)."""
    import attest.audit_index as audit_index
    from attest.cli import main

    write_builds_policy(tmp_path, keys)
    publish_builds(tmp_path / "store", keys, 2)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def unreadable(index: audit_index.SqliteIndex, *args: Any) -> list[tuple[object, ...]]:
        raise audit_index.IndexBroken(f"the audit index {index.file} cannot be read (disk I/O error)")

    monkeypatch.setattr(audit_index.SqliteIndex, "_raw", unreadable)
    with pytest.raises(SystemExit) as ran:
        main(["audit", "store", "--policy", "policy.yaml", "--format", "json", "-o", "report.json"])
    err = capsys.readouterr().err.strip().splitlines()
    assert ran.value.code == 0 and len(err) == 2 and "moved it to" in err[0], err
    assert err[1].endswith("again with a new index; this audit checks every file, without an index"), err
    report = json.loads(Path("report.json").read_text())
    assert report["summary"]["attestations"] == 2 and len(report["artifacts"]) == 2, report["summary"]
    assert len(list((tmp_path / "cache" / "attest").glob("audit-index.sqlite.broken-*"))) == 1


def test_a_stored_artefact_replaced_after_it_was_indexed_is_found(tmp_path: Path, keys: dict[str, KeyPair],
                                                                  attest: AttestRunner) -> None:
    from attest.stores.local import LocalStore

    write_builds_policy(tmp_path, keys)
    f.publish(tmp_path / "store", f.provenance(keys["dev"].private, subjects={APP: b"v1"}))
    (tmp_path / "app").write_bytes(b"v1")
    stored = Path(LocalStore(tmp_path / "store").put_artifact(f.digests(b"v1")["sha256"], APP, tmp_path / "app"))
    ran, _ = _audit(attest, tmp_path)
    assert ran.code == 0, ran
    os.chmod(stored, 0o644)
    stored.write_bytes(b"v2")  # same size, other bytes
    ran, report = _audit(attest, tmp_path)
    assert ran.code == 1 and [a["kind"] for a in report["anomalies"]] == ["tampered-artifact"], ran


def test_reverify_hashes_every_stored_artefact_again(tmp_path: Path, keys: dict[str, KeyPair],
                                                     attest: AttestRunner) -> None:
    """A stored row edited to the sha256 the address claims hid a tampered artefact even from --reverify, the run
    the guide gives to whoever does not control the index: it took the kept hash."""
    from attest.stores.local import LocalStore

    write_builds_policy(tmp_path, keys)
    f.publish(tmp_path / "store", f.provenance(keys["dev"].private, subjects={APP: b"v1"}))
    (tmp_path / "app").write_bytes(b"v1")
    stored = Path(LocalStore(tmp_path / "store").put_artifact(f.digests(b"v1")["sha256"], APP, tmp_path / "app"))
    os.chmod(stored, 0o644)
    stored.write_bytes(b"v2")  # bytes other than the address claims
    time.sleep(2.1)  # older than a clock tick: its stamp may stand for its bytes, and the index keeps its hash
    ran, report = _audit(attest, tmp_path)
    assert ran.code == 1 and [a["kind"] for a in report["anomalies"]] == ["tampered-artifact"], ran
    with sqlite3.connect(tmp_path / "index.sqlite") as db:
        db.execute("UPDATE stored SET sha256 = ?", (f.digests(b"v1")["sha256"],))
    ran, report = _audit(attest, tmp_path)
    assert ran.code == 0 and report["anomalies"] == []  # whoever writes the index can make a plain audit believe it
    ran, report = _audit(attest, tmp_path, "--reverify")
    assert ran.code == 1, ran
    assert sorted(a["kind"] for a in report["anomalies"]) == ["index-mismatch", "tampered-artifact"]
    assert "another sha256 for the stored artefact" in next(a["message"] for a in report["anomalies"]
                                                           if a["kind"] == "index-mismatch")
    ran, report = _audit(attest, tmp_path)  # the entry was replaced by the fresh hash
    assert [a["kind"] for a in report["anomalies"]] == ["tampered-artifact"]


def test_the_hash_of_a_stored_artefact_gone_from_its_store_is_dropped(tmp_path: Path, keys: dict[str, KeyPair],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A store's retention removing an artefact removes its hash from the index too (one of another store stays)."""
    import attest.cli.audit as audit_cli
    from attest.cli import main
    from attest.stores.local import LocalStore

    monkeypatch.setattr(audit_cli, "_RACY_NS", 0)  # a stamp taken before the audit began stands for its bytes
    monkeypatch.chdir(tmp_path)
    write_builds_policy(tmp_path, keys)
    for store in ("store", "other"):
        for n, version in enumerate((b"v1", b"v2")):
            f.publish(tmp_path / store, f.provenance(keys["dev"].private, subjects={APP: version}, commit=f"{n:040x}"))
            (tmp_path / "app").write_bytes(version)
            LocalStore(tmp_path / store).put_artifact(f.digests(version)["sha256"], APP, tmp_path / "app")

    def audited(store: str) -> list[str]:
        with pytest.raises(SystemExit) as ran:
            main(["audit", store, "--policy", "policy.yaml", "--index", "index.sqlite"])
        assert ran.value.code == 0
        with sqlite3.connect(tmp_path / "index.sqlite") as db:
            places = [Path(uri).relative_to(tmp_path).parts for (uri,) in db.execute("SELECT uri FROM stored")]
        return sorted(f"{store}:{sha[:4]}" for store, _, sha, *_ in places)  # (store/sha256/<hex>/artifact/...)

    v1, v2 = (f.digests(v)["sha256"][:4] for v in (b"v1", b"v2"))
    audited("other")
    assert audited("store") == sorted([f"other:{v1}", f"other:{v2}", f"store:{v1}", f"store:{v2}"])
    for file in (tmp_path / "store" / "sha256" / f.digests(b"v1")["sha256"]).rglob("*"):
        if file.is_file():
            file.unlink()
    assert audited("store") == sorted([f"other:{v1}", f"other:{v2}", f"store:{v2}"])


def test_an_unchanged_history_costs_a_listing_not_a_read(tmp_path: Path, keys: dict[str, KeyPair],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Once its files are older than a clock tick (2 s), a second audit reads none of them: the index answers by
    their stamps. A file written since is read."""
    import time

    import attest.stores.local as local
    from attest.cli import main

    write_builds_policy(tmp_path, keys)
    publish_builds(tmp_path / "store", keys, 4)
    monkeypatch.chdir(tmp_path)
    argv = ["audit", "store", "--policy", "policy.yaml", "--index", "index.sqlite", "--format", "json"]
    time.sleep(2.1)  # older than the racy window: their stamps may stand for their bytes
    with pytest.raises(SystemExit) as first:
        main(argv)
    assert first.value.code == 0
    real, reads = local._read, []

    def counting(path: Path | str) -> Any:
        reads.append(os.path.basename(path))
        return real(path)

    monkeypatch.setattr(local, "_read", counting)
    with pytest.raises(SystemExit) as second:
        main(argv)
    assert second.value.code == 0 and reads == []
    publish_builds(tmp_path / "store", keys, 1, start=4)
    with pytest.raises(SystemExit):
        main(argv)
    assert len(reads) == 1  # only the new one


def test_a_file_with_a_new_stamp_and_the_same_bytes_is_read_once(tmp_path: Path, keys: dict[str, KeyPair],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A file touched since the last audit (a new stamp, the same bytes) is read by the next one, which keeps its
    new stamp with its facts: the audit after that reads nothing."""
    import attest.cli.audit as audit_cli
    import attest.stores.local as local
    from attest.cli import main

    monkeypatch.setattr(audit_cli, "_RACY_NS", 0)  # a stamp taken before the audit began stands for its bytes
    write_builds_policy(tmp_path, keys)
    publish_builds(tmp_path / "store", keys, 2)
    monkeypatch.chdir(tmp_path)
    argv = ["audit", "store", "--policy", "policy.yaml", "--index", "index.sqlite", "--format", "json"]
    real, reads = local._read, []

    def counting(path: Path | str) -> Any:
        reads.append(os.path.basename(path))
        return real(path)

    monkeypatch.setattr(local, "_read", counting)
    for expected in (2, 0):  # two builds, a provenance each, then none
        reads.clear()
        with pytest.raises(SystemExit) as ran:
            main(argv)
        assert ran.value.code == 0 and len(reads) == expected
    touched = sorted((tmp_path / "store" / "sha256").rglob("*.intoto.jsonl"))[0]
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns - 10**9))
    for expected_reads in ([touched.name], []):
        reads.clear()
        with pytest.raises(SystemExit) as ran:
            main(argv)
        assert ran.value.code == 0 and reads == expected_reads


def test_the_json_report_streams_the_same_text_it_would_dump_whole(tmp_path: Path, keys: dict[str, KeyPair]) -> None:
    """Issue 21: the JSON report is written an artefact at a time, and is byte for byte the whole dump."""
    from datetime import UTC, datetime, timedelta

    from attest.stores.local import LocalStore
    from verify.audit import audit
    from verify.policy_file import load_policy

    write_builds_policy(tmp_path, keys)
    publish_builds(tmp_path / "store", keys, 3)
    f.publish(tmp_path / "store", f.provenance(keys["other"].private, subjects={APP: b"forged"}))  # an anomaly
    now = datetime.now(UTC)
    report = audit(LocalStore(tmp_path / "store").all_attestations(), policy=load_policy(tmp_path / "policy.yaml"),
                   workers=1, dora=(now - timedelta(days=90), now))
    chunks = list(report.json_chunks())
    assert len(chunks) > 10  # in pieces: an artefact at a time
    assert "".join(chunks) == json.dumps(report.to_dict(), sort_keys=True, separators=(",", ":"))


@pytest.mark.parametrize("index", [("--index", "index.sqlite"), ("--no-index",)], ids=["index", "no-index"])
def test_a_file_named_on_the_command_line_that_cannot_be_read_is_the_invocations_error(
        index: tuple[str, ...], tmp_path: Path, keys: dict[str, KeyPair]) -> None:
    """With or without an index, an attestation file named as a SOURCE that cannot be read is exit 3 (fix the
    invocation), as a folder's unreadable file is an anomaly: the index changes when files are read, not how."""
    from tests.cli.test_audit_findings import audit_within

    write_builds_policy(tmp_path, keys)
    named = tmp_path / "app.intoto.jsonl"
    named.write_bytes(f.provenance(keys["dev"].private, subjects={APP: b"v1"}).to_json_line())
    named.chmod(0)
    try:
        ran = audit_within(tmp_path, "app.intoto.jsonl", "--policy", "policy.yaml", *index)
    finally:
        named.chmod(0o644)
    assert ran.code == 3 and "cannot read" in ran.err and len(ran.err.strip().splitlines()) == 1, ran


def test_a_store_whose_name_begins_another_s_keeps_the_other_s_entries(tmp_path: Path, keys: dict[str, KeyPair],
                                                                       attest: AttestRunner) -> None:
    """Forgetting the files gone from ``store`` leaves those of ``store2`` alone: one index, two stores."""
    write_builds_policy(tmp_path, keys)
    publish_builds(tmp_path / "store", keys, 1)
    publish_builds(tmp_path / "store2", keys, 2, start=1)

    def checked(source: str) -> int:
        ran = attest("audit", source, "--policy", "policy.yaml", "--index", "index.sqlite", "-v", cwd=tmp_path)
        used = USED.search(ran.err)
        assert ran.code == 0 and used is not None, ran
        return int(used.group(3))

    assert (checked("store2"), checked("store"), checked("store2")) == (2, 1, 0)


def test_the_index_is_keyed_by_the_sigstore_release_whose_root_checked_keyless_bundles(
        tmp_path: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    """Without --trusted-root, keyless bundles are checked against the root sigstore-python ships: a release of it
    that drops a key must not leave facts that key vouched for in use."""
    from importlib.metadata import version

    from attest import DISTRIBUTION
    from verify.audit import audit_setup
    from verify.audit.index import setup_digest
    from verify.policy_file import load_policy

    write_builds_policy(tmp_path, keys)
    publish_builds(tmp_path / "store", keys, 1)
    _audit(attest, tmp_path)
    policy = load_policy(tmp_path / "policy.yaml")
    setup = audit_setup(policy, None)
    with sqlite3.connect(tmp_path / "index.sqlite") as db:
        used = {setup for (setup,) in db.execute("SELECT setup FROM used")}
    both = f"{version(DISTRIBUTION)} sigstore {version('sigstore')}"
    assert used == {setup_digest(setup, policy_digest=policy.digest, version=both)}
    assert setup_digest(setup, policy_digest=policy.digest, version=version(DISTRIBUTION)) not in used


@pytest.mark.parametrize("index", ["postgresql://db.internal:99999/attest", "postgresql://db.internal:54x2/attest",
                                   "postgresql://[::1/attest"], ids=["port-out-of-range", "port-no-number", "bracket"])
def test_an_index_address_that_names_no_server_is_a_sentence(tmp_path: Path, keys: dict[str, KeyPair],
                                                            attest: AttestRunner, index: str) -> None:
    """A PostgreSQL address whose port or host cannot be read was an internal error (exit 70): exit 3, a sentence."""
    write_builds_policy(tmp_path, keys)
    publish_builds(tmp_path / "store", keys, 1)
    result = attest("audit", "store", "--policy", "policy.yaml", "--index", index, cwd=tmp_path)
    assert result.code == 3 and "names no PostgreSQL server" in result.err, result


def test_reverify_reports_a_stamp_the_index_holds_for_other_bytes(tmp_path: Path, keys: dict[str, KeyPair],
                                                                  attest: AttestRunner) -> None:
    """A file changed, and its row's stamp edited to the file's new stamp (its digest and facts left): a warm audit
    trusts the row (the index is a cache, docs/threat-model.md); --reverify reads the file and reports the row it
    contradicts as an index-mismatch, as it does a stored artefact's hash."""
    from attest.stores.local import file_stamp

    write_builds_policy(tmp_path, keys)
    publish_builds(tmp_path / "store", keys, 2)
    time.sleep(2.1)  # (older than the racy window: the stamps are kept)
    _audit(attest, tmp_path)
    changed = next((tmp_path / "store" / "sha256").rglob("provenance-*.intoto.jsonl"))
    changed.write_bytes(b"{not json\n")
    with sqlite3.connect(tmp_path / "index.sqlite") as db:
        db.execute("UPDATE facts SET stamp = ? WHERE uri = ?", (file_stamp(changed), str(changed.resolve())))
    time.sleep(2.1)
    _, trusting = _audit(attest, tmp_path)
    assert "malformed" not in {a["kind"] for a in trusting["anomalies"]}  # (the documented cache)
    _, fresh = _audit(attest, tmp_path, "--reverify")
    kinds = {a["kind"]: a for a in fresh["anomalies"]}
    assert "malformed" in kinds and "index-mismatch" in kinds, fresh["anomalies"]
    assert kinds["index-mismatch"]["source"] == str(changed.relative_to(tmp_path))
