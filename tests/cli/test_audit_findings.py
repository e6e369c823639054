"""``attest audit`` findings from the issue, each proved through the real CLI.

1. a stored artefact whose bytes are not what its address ``sha256/<hex>/artifact/NAME`` says is an
   anomaly (``tampered-artifact``), as is one swapped for a FIFO or a symbolic link;
2. the policy's ``provenance.lockfiles`` rule applies (``missing-lockfile``);
3. release manifests signed by a release signer are listed, and anyone else's are untrusted;
4. a signed time outside years 1 to 9999 in UTC is ``malformed`` evidence, never an internal error;
5. a provenance whose source is not a URL at all (``https://[x``) is a ``disallowed-source``;
6. a FIFO or a link to ``/dev/zero`` named ``*.intoto.jsonl`` is ``malformed``, never a hang;
7. a folder or a file the audit may not read is an anomaly, counted as ``unread``, never passed over;

and a store's ``.sigstore.json`` bundles, beside its ``.intoto.jsonl`` files, are read.
Every attestation is signed for real (tests.factory).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import blake3
import pytest

from attest.bundle import key_bundle
from attest.stores.local import LocalStore
from attest.summaries import Component, release_statement
from tests import factory as f
from tests._modes import bound_by_file_modes
from tests.conftest import ROOT, AttestRunner, KeyPair, Result, _clean_env, make_keypair

H = timedelta(hours=1)
APP = "dist/app.tar.gz"
INFRA = "infra/stack.zip"
#: Long enough to tell a refusal from a hang, short enough that a hang fails the test.
HANG = 30


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    directory = tmp_path_factory.mktemp("keys")
    return {name: make_keypair(directory, name) for name in ("dev", "stg", "prd", "alice", "release", "other")}


def write_policy(directory: Path, keys: dict[str, KeyPair], *, provenance: str = "",
                 releases: str = "releases: {signed-by: [release-manager]}\n") -> Path:
    path = directory / "policy.yaml"
    path.write_text(f"""version: 1
identities:
  dev-build: {{keys: [{keys['dev'].public}]}}
  stg-verifier: {{keys: [{keys['stg'].public}]}}
  prd-verifier: {{keys: [{keys['prd'].public}]}}
  alice: {{keys: [{keys['alice'].public}]}}
  release-manager: {{keys: [{keys['release'].public}]}}
provenance:
  signed-by: [dev-build]
  source: {{uri: github.com/acme/app, branches: [main]}}
{provenance}stages:
  stg: {{verifier: stg-verifier}}
  prd:
    verifier: prd-verifier
    require-vsa: [{{stage: stg, signed-by: stg-verifier}}]
    require-approvals: {{count: 1, signed-by: [alice]}}
{releases}""")
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def audit_json(attest: AttestRunner, cwd: Path, *sources: str | Path) -> tuple[Result, dict[str, Any]]:
    result = attest("audit", *sources, "--policy", "policy.yaml", "--format", "json", cwd=cwd)
    assert result.code in (0, 1), result  # never 70: every finding is evidence's fault, reported
    return result, json.loads(result.out)


def kinds(report: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(a["kind"], a["sha256"]) for a in report["anomalies"]]


def resigned(key: Path, envelope: Any, change: Any) -> bytes:
    """``envelope``'s statement, changed by ``change(statement)``, signed again by ``key``: one line."""
    statement = json.loads(envelope.payload)
    change(statement)
    line: bytes = f.sign(key, statement).to_json_line()
    return line


def audit_within(cwd: Path, *args: str | Path, script: str | None = None, command: str = "audit") -> Result:
    """``attest audit ARGS`` in a subprocess that must finish within :data:`HANG` seconds (a hang fails),
    bound by file modes even as root (:func:`tests._modes.bound_by_file_modes`)."""
    argv = [sys.executable, "-c", script, *map(str, args)] if script else \
        [sys.executable, "-m", "attest", command, *map(str, args)]
    env = _clean_env({"PYTHONPATH": str(ROOT)})
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=HANG,
                          preexec_fn=bound_by_file_modes())
    return Result(done.returncode, done.stdout, done.stderr)


# --- 1. stored artefacts are hashed and compared with their address --------------------------------------

def stored_build(store: Path, keys: dict[str, KeyPair], data: bytes, tmp_path: Path, *,
                 commit: str = f.COMMIT) -> Path:
    """An artefact built, published with its bytes (as ``attest build --publish`` does); its stored path."""
    source = tmp_path / "app.tar.gz"
    source.write_bytes(data)
    f.publish(store, f.provenance(keys["dev"].private, subjects={APP: data}, commit=commit))
    return Path(LocalStore(store).put_artifact(sha(data), APP, source))


def test_an_artefact_whose_bytes_are_not_its_address_is_a_tampered_artifact(
        tmp_path: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    write_policy(tmp_path, keys)
    store = tmp_path / "store"
    kept = stored_build(store, keys, b"the bytes that were built", tmp_path)
    swapped = stored_build(store, keys, b"v2 as built", tmp_path, commit="b" * 40)
    swapped.write_bytes(b"v2 with a backdoor")  # the address still says sha256(b"v2 as built")

    result, report = audit_json(attest, tmp_path, "store")

    assert result.code == 1, result
    assert kinds(report) == [("tampered-artifact", sha(b"v2 as built"))]
    (anomaly,) = report["anomalies"]
    assert anomaly["source"] == str(swapped.relative_to(tmp_path))
    assert f"hash to sha256:{sha(b'v2 with a backdoor')[:12]}" in anomaly["message"]
    artifacts = {a["sha256"]: a for a in report["artifacts"]}
    assert artifacts[sha(b"v2 as built")]["anomalies"] == ["tampered-artifact"]
    assert artifacts[sha(b"v2 as built")]["stored"] == [
        {"uri": str(swapped.relative_to(tmp_path)), "sha256": sha(b"v2 with a backdoor"), "status": "tampered"}]
    assert artifacts[sha(b"the bytes that were built")]["stored"] == [
        {"uri": str(kept.relative_to(tmp_path)), "sha256": sha(b"the bytes that were built"), "status": "verified"}]
    assert report["summary"]["stored"] == 2

    text = attest("audit", "store", "--policy", "policy.yaml", cwd=tmp_path)
    assert text.code == 1 and "tampered-artifact" in text.err, text
    assert f"tampered-artifact {sha(b'v2 as built')[:16]}" in text.out
    assert "2 stored artefact(s) hashed" in text.out and "tampered-artifact: a stored artefact whose bytes" in text.out

    html = attest("audit", "store", "--policy", "policy.yaml", "--format", "html", cwd=tmp_path)
    assert html.code == 1, html
    card = html.out.split(f'id="a-{sha(b"v2 as built")}"')[1].split("</article>")[0]
    assert 'data-kind="tampered-artifact"' in card and "bytes differ from the address" in card


def test_a_store_whose_artefacts_match_their_addresses_is_clean(
        tmp_path: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    write_policy(tmp_path, keys)
    stored_build(tmp_path / "store", keys, b"v1", tmp_path)
    result, report = audit_json(attest, tmp_path, "store")
    assert result.code == 0 and report["anomalies"] == [], result
    assert [c["status"] for c in report["artifacts"][0]["stored"]] == ["verified"]


SWAP_AND_AUDIT = """\
import os, sys
from pathlib import Path
import attest.stores
from attest.cli import main
from attest.stores.local import LocalStore

class Swapping(LocalStore):
    '''Replaces each artefact after it is listed and before it is opened (a race an attacker can win).'''
    def listed_artifacts(self):
        for uri, claimed, opener, stamp in super().listed_artifacts():
            os.unlink(uri)
            if sys.argv[1] == "fifo":
                os.mkfifo(uri)
            else:
                os.symlink("/dev/zero", uri)
            yield uri, claimed, opener, stamp

attest.stores.from_uri = lambda uri, **options: Swapping(Path(uri))
main(["audit", *sys.argv[2:]])
"""


@pytest.mark.parametrize("swap", ["fifo", "symlink"])
def test_an_artefact_swapped_for_a_fifo_or_a_symlink_is_an_anomaly_not_a_hang(
        swap: str, tmp_path: Path, keys: dict[str, KeyPair]) -> None:
    write_policy(tmp_path, keys)
    stored = stored_build(tmp_path / "store", keys, b"v1", tmp_path)

    result = audit_within(tmp_path, swap, "store", "--policy", "policy.yaml", "--format", "json",
                          script=SWAP_AND_AUDIT)

    assert result.code == 1, result
    report = json.loads(result.out)
    assert kinds(report) == [("tampered-artifact", sha(b"v1"))]
    (anomaly,) = report["anomalies"]
    assert anomaly["source"] == str(stored.relative_to(tmp_path))
    assert "cannot be read to check them against their address" in anomaly["message"]
    assert ("is not a regular file" if swap == "fifo" else "is a symbolic link") in anomaly["message"]
    assert report["artifacts"][0]["stored"][0]["status"] == "unreadable"


@pytest.mark.parametrize("kind", ["fifo", "symlink"])
def test_an_artefact_that_is_a_fifo_or_a_symlink_before_the_audit_is_reported(
        kind: str, tmp_path: Path, keys: dict[str, KeyPair]) -> None:
    """Not skipped while listing: what sits where an artefact should be is reported, never followed or waited on."""
    write_policy(tmp_path, keys)
    stored = stored_build(tmp_path / "store", keys, b"v1", tmp_path)
    stored.unlink()
    if kind == "fifo":
        os.mkfifo(stored)
    else:
        (tmp_path / "elsewhere").write_bytes(b"v1")
        stored.symlink_to(tmp_path / "elsewhere")
    result = audit_within(tmp_path, "store", "--policy", "policy.yaml", "--format", "json")
    assert result.code == 1, result
    report = json.loads(result.out)
    assert kinds(report) == [("tampered-artifact", sha(b"v1"))]
    assert ("is not a regular file" if kind == "fifo" else "is a symbolic link") in report["anomalies"][0]["message"]


class _Terminal(io.StringIO):
    """stderr as a terminal: where an audit shows its counts."""

    def isatty(self) -> bool:
        return True


def at_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> _Terminal:
    """stderr made a terminal, in the test itself (pytest sets its own stderr once fixtures are made)."""
    shown = _Terminal()
    monkeypatch.setattr(sys, "stderr", shown)
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.chdir(tmp_path)
    return shown


def audited_at(terminal: _Terminal, *more: str) -> str:
    """``attest audit store`` (the report to report.json), run in this process at ``terminal``: what it showed."""
    from attest.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["audit", "store", "--policy", "policy.yaml", "--format", "json", "-o", "report.json", *more])
    assert exit_.value.code == 0, terminal.getvalue()
    return terminal.getvalue()


def test_a_terminal_sees_the_count_of_stored_artefacts_hashed(
        tmp_path: Path, keys: dict[str, KeyPair], monkeypatch: pytest.MonkeyPatch) -> None:
    write_policy(tmp_path, keys)
    stored_build(tmp_path / "store", keys, b"v1", tmp_path)
    shown = audited_at(at_a_terminal(tmp_path, monkeypatch))
    assert "auditing: 1 attestations checked" in shown and "auditing: 1 stored artefacts hashed" in shown


def test_on_a_terminal_the_counts_stop_once_everything_is_read_and_the_report_may_fork(
        tmp_path: Path, keys: dict[str, KeyPair], monkeypatch: pytest.MonkeyPatch, forked_halves: list[int]) -> None:
    """The counts are redrawn by a thread of their own: a process running it never forks (a lock it holds would
    stay held in the copy), so it ends once the sources are read, before the report's per-artefact steps."""
    import threading

    import verify.audit

    write_policy(tmp_path, keys)
    stored_build(tmp_path / "store", keys, b"v1", tmp_path)
    stored_build(tmp_path / "store", keys, b"v2", tmp_path, commit=f"{2:040x}")
    threads: list[int] = []
    split = verify.audit.in_two_halves

    def counted(*args: Any, **options: Any) -> Any:
        threads.append(threading.active_count())
        return split(*args, **options)

    monkeypatch.setattr(verify.audit, "in_two_halves", counted)
    shown = audited_at(at_a_terminal(tmp_path, monkeypatch), "--index", str(tmp_path / "index.sqlite"))
    assert "auditing: 2 stored artefacts hashed" in shown
    assert threads == [1] and forked_halves  # (the fixture counts this test's own threads only)


# --- 2. the lockfiles rule ----------------------------------------------------------------------------

def test_a_provenance_without_a_lockfile_the_policy_requires_is_a_missing_lockfile(
        tmp_path: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    write_policy(tmp_path, keys, provenance="  lockfiles: [poetry.lock]\n")
    f.publish(tmp_path / "store", f.provenance(keys["dev"].private, subjects={APP: b"v1"},
                                               lockfiles={"requirements.txt": f.LOCKFILE}))
    result, report = audit_json(attest, tmp_path, "store")
    assert result.code == 1, result
    assert kinds(report) == [("missing-lockfile", sha(b"v1"))]
    assert "does not bind lockfile 'poetry.lock'" in report["anomalies"][0]["message"]
    assert report["anomalies"][0]["step"] == "build"


# --- 3. release manifests ------------------------------------------------------------------------------

def release(store: Path, keys: dict[str, KeyPair], signer: str, *, name: str = "2024.05.02-1",
            created: datetime = f.T0 + 24 * H) -> tuple[dict[str, str], dict[str, str]]:
    """Two components built and published, and a release manifest of both signed by ``signer``:
    (component -> its artefact's sha256, component -> the sha256 of its provenance)."""
    parts = []
    shas, provenances = {}, {}
    for label, subject, data, commit in (("infra", INFRA, b"infra v7", "1" * 40), ("app", APP, b"app v3", "2" * 40)):
        envelope = f.provenance(keys["dev"].private, subjects={subject: data}, commit=commit)
        f.publish(store, envelope)
        provenances[label] = sha(envelope.payload)
        parts.append(Component(name=label, subjects=[(subject, f.digests(data))],
                               provenance_sha256=provenances[label], source=f.REPO, commit=commit))
        shas[label] = sha(data)
    manifest = f.sign(keys[signer].private, release_statement(name=name, components=parts, created_at=created))
    f.publish(store, manifest, kind="release")  # under each component's artefact
    return shas, provenances


def test_a_release_signed_by_a_release_signer_is_listed_and_named_on_its_artefacts(
        tmp_path: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    write_policy(tmp_path, keys)
    shas, provenances = release(tmp_path / "store", keys, "release")

    result, report = audit_json(attest, tmp_path, "store")

    assert result.code == 0 and report["anomalies"] == [], result
    # one manifest, stored under each of its artefacts: listed once, from the first copy
    attestation = f"store/sha256/{min(shas.values())}/release-"
    assert report["releases"][0]["attestation"].startswith(attestation)
    attestation = report["releases"][0]["attestation"]
    assert report["releases"] == [{
        "name": "2024.05.02-1", "timeCreated": "2024-05-02T10:00:00Z", "signers": ["release-manager"],
        "attestation": attestation,
        "components": [
            {"name": "infra", "source": f.REPO, "commit": "1" * 40, "provenance": {"sha256": provenances["infra"]},
             "artifacts": [{"name": INFRA, "sha256": shas["infra"]}], "needs": []},
            {"name": "app", "source": f.REPO, "commit": "2" * 40, "provenance": {"sha256": provenances["app"]},
             "artifacts": [{"name": APP, "sha256": shas["app"]}], "needs": []},
        ]}]
    assert report["summary"]["releases"] == 1
    for artifact in report["artifacts"]:
        assert artifact["releases"] == [{"release": "2024.05.02-1", "time": "2024-05-02T10:00:00Z",
                                         "signers": ["release-manager"], "attestation": attestation}]

    text = attest("audit", "store", "--policy", "policy.yaml", cwd=tmp_path)
    assert text.code == 0, text
    assert f"1 release(s):\n  2024.05.02-1  created 2024-05-02 10:00  signed by release-manager  ({attestation})\n" \
           f"    infra  {INFRA}  {shas['infra'][:16]}  commit {'1' * 12}\n" \
           f"    app  {APP}  {shas['app'][:16]}  commit {'2' * 12}\n" in text.out, text.out

    html = attest("audit", "store", "--policy", "policy.yaml", "--format", "html", cwd=tmp_path)
    assert html.code == 0, html
    section = html.out.split('id="releases"')[1].split("</section>")[0]
    assert "2024.05.02-1" in section and f'href="#a-{shas["app"]}"' in section and "release-manager" in section
    card = html.out.split(f'id="a-{shas["infra"]}"')[1].split("</article>")[0]
    assert 'class="releases"' in card and "<b>2024.05.02-1</b>" in card


@pytest.mark.parametrize(("signer", "releases", "words"), [
    pytest.param("dev", "releases: {signed-by: [release-manager]}\n",
                 "is signed by dev-build, but releases.signed-by allows release-manager", id="another-identity"),
    pytest.param("other", "releases: {signed-by: [release-manager]}\n", "is signed by no key the policy pins",
                 id="an-unpinned-key"),
    pytest.param("release", "", "is signed by release-manager, but the policy, which names no release signers, "
                                "allows no identity", id="a-policy-without-releases"),
])
def test_a_release_signed_by_anyone_else_is_an_untrusted_signer(
        signer: str, releases: str, words: str, tmp_path: Path, keys: dict[str, KeyPair],
        attest: AttestRunner) -> None:
    write_policy(tmp_path, keys, releases=releases)
    shas, _ = release(tmp_path / "store", keys, signer)

    result, report = audit_json(attest, tmp_path, "store")

    assert result.code == 1, result
    assert sorted(kinds(report)) == sorted(("untrusted-signer", s) for s in shas.values())
    assert all(words in a["message"] for a in report["anomalies"]), report["anomalies"]
    assert report["releases"] == [] and all(a["releases"] == [] for a in report["artifacts"])


# --- 4. signed times out of range ------------------------------------------------------------------------

OUT_OF_RANGE = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]


def timed(kind: str, keys: dict[str, KeyPair], when: str) -> bytes:
    """A ``kind`` statement for APP signed by the key the policy trusts for it, its time set to ``when``."""
    if kind == "provenance":
        envelope = f.provenance(keys["dev"].private, subjects={APP: b"v1"})
        return resigned(keys["dev"].private, envelope,
                        lambda s: s["predicate"]["runDetails"]["metadata"].__setitem__("finishedOn", when))
    if kind == "vsa":
        envelope = f.vsa(keys["stg"].private, name=APP, artifact=b"v1", stage="stg", at=f.T0 + H)
        return resigned(keys["stg"].private, envelope, lambda s: s["predicate"].__setitem__("timeVerified", when))
    if kind == "approval":
        envelope = f.approval(keys["alice"].private, name=APP, artifact=b"v1", stage="prd", approver="alice",
                              at=f.T0 + H)
        return resigned(keys["alice"].private, envelope, lambda s: s["predicate"].__setitem__("timeApproved", when))
    manifest = f.sign(keys["release"].private, release_statement(name="r1", created_at=f.T0, components=[
        Component(name="app", subjects=[(APP, f.digests(b"v1"))], provenance_sha256="ab" * 32, source=f.REPO,
                  commit=f.COMMIT)]))
    return resigned(keys["release"].private, manifest, lambda s: s["predicate"].__setitem__("timeCreated", when))


@pytest.mark.parametrize("when", OUT_OF_RANGE)
@pytest.mark.parametrize(("kind", "field"), [("provenance", "finishedOn"), ("vsa", "timeVerified"),
                                             ("approval", "timeApproved"), ("release", "timeCreated")])
def test_a_signed_time_outside_years_1_to_9999_is_malformed(
        kind: str, field: str, when: str, tmp_path: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    write_policy(tmp_path, keys)
    (tmp_path / "evidence").mkdir()
    (tmp_path / "evidence" / f"{kind}.intoto.jsonl").write_bytes(timed(kind, keys, when))

    result, report = audit_json(attest, tmp_path, "evidence")

    assert result.code == 1, result
    assert kinds(report) == [("malformed", sha(b"v1"))]
    message = report["anomalies"][0]["message"]
    assert field in message and f"{when!r} is not a valid time between years 1 and 9999" in message, message


# --- 5. a source that is not a URL -----------------------------------------------------------------------

def test_a_provenance_whose_source_is_not_a_url_is_a_disallowed_source(
        tmp_path: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    write_policy(tmp_path, keys)
    f.publish(tmp_path / "store", f.provenance(keys["dev"].private, subjects={APP: b"v1"}, repo="https://[x"))
    result, report = audit_json(attest, tmp_path, "store")
    assert result.code == 1, result
    assert kinds(report) == [("disallowed-source", sha(b"v1"))]
    assert "https://[x" in report["anomalies"][0]["message"]


# --- 6. files that would block or never end ----------------------------------------------------------------

def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


@pytest.mark.parametrize("make", [_fifo, _zero], ids=["fifo", "link-to-dev-zero"])
@pytest.mark.parametrize("in_store", [False, True], ids=["directory", "store"])
def test_a_fifo_or_a_link_to_dev_zero_is_malformed_never_a_hang(
        make: Any, in_store: bool, tmp_path: Path, keys: dict[str, KeyPair]) -> None:
    write_policy(tmp_path, keys)
    if in_store:
        f.publish(tmp_path / "src", f.provenance(keys["dev"].private, subjects={APP: b"v1"}))
        where = tmp_path / "src" / "sha256" / sha(b"v1")
    else:
        where = tmp_path / "src" / "evidence"
        where.mkdir(parents=True)
        (where / "provenance.intoto.jsonl").write_bytes(
            f.provenance(keys["dev"].private, subjects={APP: b"v1"}).to_json_line())
    trap = where / "vsa-trap.intoto.jsonl"
    make(trap)

    result = audit_within(tmp_path, "src", "--policy", "policy.yaml", "--format", "json")

    assert result.code == 1, result
    report = json.loads(result.out)
    assert kinds(report) == [("malformed", None)]
    (anomaly,) = report["anomalies"]
    assert anomaly["source"] == str(trap.relative_to(tmp_path))
    assert f"{anomaly['source']} is not a regular file" in anomaly["message"]
    assert [a["sha256"] for a in report["artifacts"]] == [sha(b"v1")]  # the rest of the source was read


# --- 7. what the audit could not read ----------------------------------------------------------------------

@pytest.mark.parametrize("in_store", [False, True], ids=["directory", "store"])
@pytest.mark.parametrize("what", ["folder", "file"])
def test_what_cannot_be_read_is_an_anomaly_and_counted(
        in_store: bool, what: str, tmp_path: Path, keys: dict[str, KeyPair]) -> None:
    # the example of issue 23, class 7: the same history with a part no one may read reported
    # "no anomalies" (the part was passed over); it is read as the rest is, or it fails the audit
    write_policy(tmp_path, keys)
    v1 = f.provenance(keys["dev"].private, subjects={APP: b"v1"})
    v2 = f.provenance(keys["dev"].private, subjects={APP: b"v2"}, commit="b" * 40)
    if in_store:
        f.publish(tmp_path / "src", v1)
        f.publish(tmp_path / "src", v2)
        folder = tmp_path / "src" / "sha256" / sha(b"v2")
    else:
        folder = tmp_path / "src" / "v2"
        folder.mkdir(parents=True)
        (tmp_path / "src" / "v1.intoto.jsonl").write_bytes(v1.to_json_line())
        (folder / "provenance.intoto.jsonl").write_bytes(v2.to_json_line())
    (hidden,) = folder.glob("*.intoto.jsonl") if what == "file" else (folder,)
    clean = audit_within(tmp_path, "src", "--policy", "policy.yaml", "--format", "json")
    assert clean.code == 0 and json.loads(clean.out)["summary"]["unread"] == 0, clean
    hidden.chmod(0)
    try:
        result = audit_within(tmp_path, "src", "--policy", "policy.yaml", "--format", "json")
        text = audit_within(tmp_path, "src", "--policy", "policy.yaml")
    finally:
        hidden.chmod(0o755)

    assert result.code == 1, result
    report = json.loads(result.out)
    assert kinds(report) == [("malformed", None)]
    (anomaly,) = report["anomalies"]
    assert anomaly["source"] == str(hidden.relative_to(tmp_path)) and "Permission denied" in anomaly["message"]
    assert report["summary"]["unread"] == 1
    assert [a["sha256"] for a in report["artifacts"]] == [sha(b"v1")]  # the rest was read
    assert text.code == 1 and "1 part(s) of the sources not read" in text.out, text
    assert text.err.strip().endswith("1 part(s) of the sources could not be read."), text


def test_stored_bytes_in_a_folder_that_cannot_be_listed_are_a_tampered_artifact(
        tmp_path: Path, keys: dict[str, KeyPair]) -> None:
    write_policy(tmp_path, keys)
    stored = stored_build(tmp_path / "store", keys, b"v1", tmp_path)
    folder = stored.parent
    folder.chmod(0)
    try:
        result = audit_within(tmp_path, "store", "--policy", "policy.yaml", "--format", "json")
    finally:
        folder.chmod(0o755)

    assert result.code == 1, result
    report = json.loads(result.out)
    assert kinds(report) == [("tampered-artifact", sha(b"v1"))]
    assert report["summary"] == {**report["summary"], "stored": 1, "unread": 1}
    (artifact,) = report["artifacts"]
    assert artifact["stored"] == [{"uri": str(folder.relative_to(tmp_path)), "sha256": None,
                                   "status": "unreadable"}]


@pytest.mark.parametrize("part", ["root", "sha256", "artefact-folder", "blake3-index"])
def test_verify_from_a_store_it_may_not_read_is_exit_3_never_not_found(
        part: str, tmp_path: Path, keys: dict[str, KeyPair]) -> None:
    # a part of the store verify cannot look at is not an empty part: "no attestation found" (exit 1) would
    # be the wrong sentence, and an internal error (exit 70) was what it gave; only the blake3 index, a
    # shortcut, may be unreadable: verify then hashes the sha256 in full, as with no index
    stored = stored_build(tmp_path / "store", keys, b"v1", tmp_path)
    store = tmp_path / "store"
    LocalStore(store).put_index(blake3.blake3(b"v1").hexdigest(), sha(b"v1"))
    hidden = {"root": store, "sha256": store / "sha256", "artefact-folder": stored.parents[2],
              "blake3-index": store / "blake3"}[part]
    hidden.chmod(0)
    try:
        result = audit_within(tmp_path, "app.tar.gz", "--store", "store", "--key", keys["dev"].public,
                              command="verify")
    finally:
        hidden.chmod(0o755)

    if part == "blake3-index":
        assert result.code == 0, result
        return
    assert result.code == 3, result
    assert "Permission denied" in result.err and "Traceback" not in result.err, result
    assert len(result.err.strip().splitlines()) == 1, result


# --- a store's Sigstore bundles ------------------------------------------------------------------------------

def test_a_store_reads_the_sigstore_bundles_beside_its_attestations(
        tmp_path: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    write_policy(tmp_path, keys)
    store = tmp_path / "store"
    f.publish(store, f.provenance(keys["dev"].private, subjects={APP: b"v1"}))
    vsa = f.vsa(keys["stg"].private, name=APP, artifact=b"v1", stage="stg", at=f.T0 + H)
    bundle = store / "sha256" / sha(b"v1") / "vsa-stg.sigstore.json"
    bundle.write_bytes(key_bundle(vsa, hint=vsa.signatures[0].keyid))

    result, report = audit_json(attest, tmp_path, "store")

    assert result.code == 0, result
    (artifact,) = report["artifacts"]
    stg = artifact["stages"][0]
    assert stg["status"] == "passed" and stg["vsas"][0]["attestation"] == str(bundle.relative_to(tmp_path))
    assert report["summary"]["attestations"] == 2


