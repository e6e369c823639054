"""Issue 21, parts 1 and 2: with an index, an audit judges again only the artefacts whose evidence changed (or the
release manifests their judgement rests on), and its report is the report of an audit without one, whatever
changed in between: new builds, builds that break reproducibility, envelopes edited in place or removed, release
manifests and deployment records added and removed, stored artefacts replaced, a new policy.

Each step audits the same store twice in this process, with the index and without, and holds the two reports equal
in every form a person or a machine reads (JSON, the text table, the page).
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from attest.cli.audit import _audit, _policy, _text
from tests import factory as f
from tests.conftest import KeyPair
from tests.dora.history import NOW, history_with_dora, write_policy
from verify.audit import AuditReport
from verify.audit.html import render_html
from verify.audit.index import INDEX_FORMAT
from verify.errors import ConfigError

WINDOW = (NOW - timedelta(days=90), NOW)


def _forms(report: AuditReport) -> tuple[str, str, str]:
    return ("".join(report.json_chunks()), _text(report, color=False),
            render_html(report, generated_at=datetime(2026, 1, 1, tzinfo=UTC)))


class _Auditing:
    """The store audited with the index, and without, the reports compared."""

    def __init__(self, tmp_path: Path) -> None:
        self.store = tmp_path / "store"
        self.policy_file = tmp_path / "policy.yaml"
        self.index = tmp_path / "index.sqlite"

    def both(self) -> tuple[AuditReport, dict[str, Any]]:
        policy = _policy(self.policy_file, ())
        indexed, used = _audit([str(self.store)], policy, None, self.index, reverify=False, dora=WINDOW)
        fresh, _ = _audit([str(self.store)], policy, None, None, reverify=False, dora=WINDOW)
        assert _forms(indexed) == _forms(fresh)
        assert used is not None
        return indexed, used

    def reverify(self) -> AuditReport:
        report, _ = _audit([str(self.store)], _policy(self.policy_file, ()), None, self.index, reverify=True,
                           dora=WINDOW)
        return report


@pytest.fixture(params=["in one process", "in two halves"])
def auditing(request: pytest.FixtureRequest, tmp_path: Path, keys: dict[str, KeyPair]) -> Iterator[_Auditing]:
    """The hand-made history of tests/dora under its policy, to audit; the artefacts judged in this process, or
    (as an audit of thousands of them does) half of them in a forked copy of it (verify.audit._halves), which
    must make the same reports and the same index entries."""
    write_policy(tmp_path, keys)
    history_with_dora(tmp_path, keys)
    if request.param == "in one process":
        yield _Auditing(tmp_path)
        return
    forks = request.getfixturevalue("forked_halves")
    yield _Auditing(tmp_path)
    assert forks  # (each audit judging two artefacts or more forked once)


def _kinds(report: AuditReport, sha: str) -> set[str]:
    return {a.kind for a in report.anomalies if a.sha256 == sha}


def test_an_incremental_audit_reports_what_a_full_one_does_through_every_kind_of_change(
        tmp_path: Path, keys: dict[str, KeyPair], auditing: _Auditing) -> None:
    store = auditing.store

    cold, used = auditing.both()
    assert used["judged"] == len(cold.artifacts) == 3 and cold.dora is not None and cold.running
    _, used = auditing.both()
    assert used["checked"] == 0 and used["judged"] == 0  # unchanged: nothing checked, nothing judged again

    # a new build: only its artefact is judged
    f.publish(store, f.provenance(keys["dev"].private, subjects={"app.zip": b"app v4"}, commit=f"{4:040x}"))
    report, used = auditing.both()
    assert used["checked"] == 1 and used["judged"] == 1 and len(report.artifacts) == 4

    # the same commit and lockfiles built again into other bytes: both artefacts are non-reproducible, though
    # only the new one is judged again (reproducibility is judged over the whole history)
    v4 = hashlib.sha256(b"app v4").hexdigest()
    again = f.publish(store, f.provenance(keys["dev"].private, subjects={"app.zip": b"app v4 again"},
                                          commit=f"{4:040x}", invocation="build/2"))
    report, used = auditing.both()
    assert used["judged"] == 1 and "non-reproducible" in _kinds(report, v4)
    again.unlink()  # and gone again: v4 is reproducible again, and the other artefact is gone
    report, _ = auditing.both()
    assert not _kinds(report, v4) and len(report.artifacts) == 4

    # an envelope edited in place, a release manifest removed (its deployment records can no longer be placed, and
    # the provenance it bound falls back to the policy's rules), a deployment record removed
    v2 = hashlib.sha256(b"app v2").hexdigest()
    provenance_v2 = next((store / "sha256" / v2).glob("provenance-*"))
    provenance_v2.write_bytes(provenance_v2.read_bytes().replace(b'"sig":"', b'"sig":"AAAA'))
    report, used = auditing.both()
    assert used["judged"] == 1 and "bad-signature" in _kinds(report, v2)
    release_v3 = next(p for p in store.rglob("release-*") if b"app v3" not in p.read_bytes())
    release_v3.unlink()
    auditing.both()
    next(store.rglob("deployment-*")).unlink()
    auditing.both()

    # stored artefacts: one as published, then replaced; an unreadable attestation file
    v1 = hashlib.sha256(b"app v1").hexdigest()
    stored = store / "sha256" / v1 / "artifact" / "app.zip"
    stored.parent.mkdir()
    stored.write_bytes(b"app v1")
    report, used = auditing.both()
    assert used["judged"] == 1 and report.stored == 1 and not _kinds(report, v1) - {"unknown-deployment"}
    stored.write_bytes(b"app v1, replaced")
    report, used = auditing.both()
    assert used["judged"] == 1 and "tampered-artifact" in _kinds(report, v1)
    (store / "sha256" / v1 / "junk.intoto.jsonl").write_bytes(b"{not json")
    report, _ = auditing.both()
    assert any(a.kind == "malformed" for a in report.anomalies)

    # another policy (the stg deployer no longer trusted): another setup, every artefact judged again
    write_policy(tmp_path, {**keys, "stg": keys["mallory"]})
    report, used = auditing.both()
    assert used["judged"] == len(report.artifacts)
    _, used = auditing.both()
    assert used["judged"] == 0


def test_reverify_reports_an_edited_judgement_which_a_plain_audit_believes(
        auditing: _Auditing) -> None:
    honest, _ = auditing.both()
    assert auditing.reverify().anomalies == honest.anomalies  # an untrusted deployment record, and no mismatch
    with sqlite3.connect(auditing.index) as db:  # someone who may write the index hides v1's first build
        (history,) = db.execute("SELECT history FROM judged WHERE sha256 = ?",
                                (hashlib.sha256(b"app v1").hexdigest(),)).fetchone()
        db.execute("UPDATE judged SET history = ? WHERE sha256 = ?",
                   (history.replace('"builds":[{', '"builds":[{"x":0,', 1),
                    hashlib.sha256(b"app v1").hexdigest()))
    with pytest.raises(ConfigError, match="does not read back"):  # believed as it is, until read back
        _forms(_audit([str(auditing.store)], _policy(auditing.policy_file, ()), None, auditing.index,
                      reverify=False, dora=WINDOW)[0])
    caught = auditing.reverify()
    (mismatch,) = set(caught.anomalies) - set(honest.anomalies)
    assert mismatch.kind == "index-mismatch" and "judgement of sha256:" in mismatch.message
    assert _forms(auditing.both()[0]) == _forms(honest)  # the entry was replaced


def test_two_stores_audited_in_turn_with_one_index_keep_their_own_judgements(tmp_path: Path,
                                                                             auditing: _Auditing) -> None:
    """A mirror of the store (the same artefacts, at other places) audited in turn with the store, one index for
    both: each is judged once, then answered from the index. A history names where each attestation was read, so
    each set of sources keeps its own judgements (one set would be judged again on every other audit)."""
    mirror = tmp_path / "mirror"
    shutil.copytree(auditing.store, mirror)
    policy = _policy(auditing.policy_file, ())

    def judged(source: Path) -> int:
        report, used = _audit([str(source)], policy, None, auditing.index, reverify=False, dora=WINDOW)
        fresh, _ = _audit([str(source)], policy, None, None, reverify=False, dora=WINDOW)
        assert used is not None and _forms(report) == _forms(fresh)
        return int(used["judged"])

    assert [judged(auditing.store), judged(mirror), judged(auditing.store), judged(mirror)] == [3, 3, 0, 0]


def test_an_index_of_the_previous_format_is_emptied_and_filled_again(tmp_path: Path,
                                                                    keys: dict[str, KeyPair]) -> None:
    write_policy(tmp_path, keys)
    history_with_dora(tmp_path, keys)
    with sqlite3.connect(tmp_path / "index.sqlite") as db:  # as an older attest wrote it (format 2)
        db.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                         "INSERT INTO meta VALUES ('format', '2');"
                         "CREATE TABLE facts (setup TEXT NOT NULL, uri TEXT NOT NULL, digest TEXT NOT NULL, "
                         "facts TEXT NOT NULL, touch TEXT NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (setup, uri));"
                         "CREATE TABLE scans (uri TEXT PRIMARY KEY, stamp TEXT NOT NULL, digest TEXT NOT NULL);"
                         "INSERT INTO scans VALUES ('x', '1:2:3:4', 'ab');")
    (tmp_path / "index.sqlite").chmod(0o600)
    report, used = _Auditing(tmp_path).both()
    assert used["judged"] == len(report.artifacts) == 3
    with sqlite3.connect(tmp_path / "index.sqlite") as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone() == (str(INDEX_FORMAT),)
        assert {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")} == {
            "meta", "facts", "judged", "stored", "used"}


def test_a_policy_with_a_stage_named_build_reuses_facts_not_judgements(tmp_path: Path,
                                                                      keys: dict[str, KeyPair]) -> None:
    """Reproducibility across artefacts is a finding of the build step, which a stage named ``build`` would show:
    no judgement is reused then, but the files are still not checked again."""
    write_policy(tmp_path, keys)
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy.read_text().replace("  stg: {", "  build: {verifier: dev-build}\n  stg: {"))
    history_with_dora(tmp_path, keys)
    f.publish(tmp_path / "store", f.provenance(keys["dev"].private, subjects={"app.zip": b"app v1 again"},
                                               commit=f"{1:040x}", invocation="build/2"))
    auditing = _Auditing(tmp_path)
    cold, _ = auditing.both()
    assert any(a.kind == "non-reproducible" for a in cold.anomalies)
    warm, used = auditing.both()
    assert used["checked"] == 0 and used["judged"] == 0 and warm.anomalies == cold.anomalies


def test_judgements_that_do_not_read_back_are_made_again_and_are_no_anomaly(
        auditing: _Auditing) -> None:
    honest, _ = auditing.both()
    with sqlite3.connect(auditing.index) as db:  # as an older or faulty attest might have left them
        db.execute("UPDATE judged SET judged = '[1]'")
    again, used = auditing.both()
    assert used["judged"] == len(honest.artifacts) and again.anomalies == honest.anomalies


def test_sources_given_as_bytes_are_judged_again_from_those_bytes(tmp_path: Path, keys: dict[str, KeyPair]) -> None:
    """The API with an index and sources given as (uri, bytes), not listed: an artefact judged again (a VSA added)
    is judged from the bytes given, never reported unreadable."""
    from attest.audit_index import SqliteIndex
    from verify.audit import audit, audit_setup
    from verify.audit.index import setup_digest
    from verify.policy_file import load_policy

    write_policy(tmp_path, keys)
    store = history_with_dora(tmp_path, keys)
    policy = load_policy(tmp_path / "policy.yaml")

    def run(index: SqliteIndex | None) -> AuditReport:
        sources = [(str(p), p.read_bytes()) for p in sorted(store.rglob("*.intoto.jsonl"))]
        try:
            return audit(sources, policy=policy, index=index, workers=1, setup=setup)
        finally:
            if index is not None:
                index.flush()
                index.close()

    setup = audit_setup(policy, None)
    digest = setup_digest(setup, policy_digest=policy.digest, version="test")
    run(SqliteIndex(tmp_path / "index.sqlite", digest))
    f.publish(store, f.vsa(keys["stg"].private, name="app.zip", artifact=b"app v1", stage="stg",
                           at=NOW - timedelta(days=9)))
    again = run(SqliteIndex(tmp_path / "index.sqlite", digest))
    assert _forms(again) == _forms(run(None)) and not any(a.kind == "malformed" for a in again.anomalies)


def test_a_judgement_against_the_clock_is_not_kept(auditing: _Auditing, tmp_path: Path,
                                                   keys: dict[str, KeyPair]) -> None:
    """A deployment record dated after the audit is out of order now, and no longer once that time has come: the
    judgement of what it names is made again by every audit, never read back from the index."""
    from tests.dora.history import _record, _version

    v9 = _version(auditing.store, keys, 9, NOW - timedelta(hours=2))
    sha = v9["artifacts"][0][1]["sha256"]
    _record(auditing.store, keys["prd"].private, v9, env="prd", at=datetime.now(UTC) + timedelta(days=30))
    for _ in range(2):
        report, _ = auditing.both()
        assert "out-of-order" in _kinds(report, sha)
        with sqlite3.connect(auditing.index) as db:
            kept = {row[0] for row in db.execute("SELECT sha256 FROM judged")}
        assert sha not in kept and len(kept) == len(report.artifacts) - 1, kept


def test_a_store_named_from_another_folder_is_reported_as_named(auditing: _Auditing, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The index keeps a file's facts by its full path; what it kept says where the file was as the first audit
    named it (store/...), and the report of a second audit, from another folder (../store/...), names it so."""
    next((auditing.store / "sha256").iterdir()).joinpath("junk.intoto.jsonl").write_bytes(b"{not json")
    policy = _policy(auditing.policy_file, ())
    monkeypatch.chdir(tmp_path)
    _audit(["store"], policy, None, auditing.index, reverify=False, dora=WINDOW)
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    indexed, used = _audit(["../store"], policy, None, auditing.index, reverify=False, dora=WINDOW)
    fresh, _ = _audit(["../store"], policy, None, None, reverify=False, dora=WINDOW)
    assert used is not None and used["reused"] > 0
    assert _forms(indexed) == _forms(fresh)
    assert any(a.source.startswith("../store/") and "../store/" in a.message for a in indexed.anomalies
               if a.kind == "malformed")


def test_a_record_dated_before_one_of_its_artefacts_was_built_counts_for_none(tmp_path: Path,
                                                                              keys: dict[str, KeyPair]) -> None:
    """A record of two artefacts, dated before the second was built, whose provenance arrives after a first audit:
    the audit that judges only the second again (the first's judgement is kept) counts the record nowhere, as
    one without the index does."""
    from attest.summaries import Component, deployment_statement, release_statement

    write_policy(tmp_path, keys)
    store, built = tmp_path / "store", NOW - timedelta(days=5)
    later = f.provenance(keys["dev"].private, subjects={"b.zip": b"artefact B"}, finished=built)
    files = [("a.zip", f.digests(b"artefact A")), ("b.zip", f.digests(b"artefact B"))]
    release = f.sign(keys["release"].private, release_statement(name="r1", created_at=built - timedelta(days=1),
                     components=[Component(name="app", subjects=files, provenance_sha256="00" * 32,
                                           source=f.REPO, commit="1" * 40)]))
    f.publish(store, release, kind="release")
    f.publish(store, f.sign(keys["prd"].private, deployment_statement(
        environment="prd", release_name="r1", component="app", artifacts=files, status="succeeded", kind="deploy",
        release_sha256=f.line_sha256(release),
        deployed_at=built - timedelta(hours=20))), kind="deployment")
    auditing = _Auditing(tmp_path)
    auditing.both()
    f.publish(store, later)
    report, used = auditing.both()  # the same report, with the index and without
    assert used["judged"] == 1 and not report.running, report.running
    assert {(a.kind, a.sha256) for a in report.anomalies} >= {("out-of-order", files[1][1]["sha256"])}


def test_of_two_records_of_one_time_a_warm_audit_runs_the_one_a_full_audit_does(tmp_path: Path,
                                                                                 keys: dict[str, KeyPair]) -> None:
    """Two prd records of app signed with one time: the one of the higher envelope-line sha256 runs (as attest status
    reads them). A warm audit that judges one artefact again reads the other's record from the index, and must tie
    them as the full audit does: an index that dropped the lines showed the other release running."""
    from attest.summaries import deployment_statement
    from tests.dora.history import T0, _version

    write_policy(tmp_path, keys)
    store = tmp_path / "store"
    versions = [_version(store, keys, n, T0 + timedelta(days=n)) for n in (1, 2)]
    lines = {}
    for version in versions:
        record = f.sign(keys["prd"].private, deployment_statement(
            environment="prd", release_name=version["name"], release_sha256=version["line"], component="app",
            artifacts=version["artifacts"], status="succeeded", kind="deploy", deployed_at=T0 + timedelta(days=4)))
        f.publish(store, record, kind="deployment")
        lines[version["name"]] = f.line_sha256(record)
    auditing = _Auditing(tmp_path)
    cold, _ = auditing.both()
    runs = max(lines, key=lines.__getitem__)
    assert cold.running["app"]["prd"]["release"] == runs
    # a change that judges only the other release's artefact again: its bytes stored beside it
    other = next(v for v in versions if v["name"] != runs)
    digest = other["artifacts"][0][1]["sha256"]
    folder = store / "sha256" / digest / "artifact"
    folder.mkdir()
    (folder / "app.zip").write_bytes(f"app v{other['name'][1:]}".encode())
    warm, used = auditing.both()  # the same report with the index and without
    assert used["judged"] == 1 and warm.running["app"]["prd"]["release"] == runs
