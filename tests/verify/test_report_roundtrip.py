"""verify.audit.report: an artefact's history reads back from its JSON form, exactly, or not at all.

A cache keeps each history as the JSON text of ``to_dict`` and rebuilds it when a renderer needs it; the text
may come from a cache others wrote, so whatever ``to_dict`` would not have written is a ValueError. The
histories are real: a real audit of a small store with every kind of evidence and some anomalies.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from attest.summaries import Component, deployment_statement, release_statement
from tests import factory as f
from tests.conftest import CONFORMANCE, KeyPair, make_keypair
from verify.audit import AuditReport, StoredArtifact, audit
from verify.audit.report import ArtifactHistory, BuildRecord, Endorsement, StageHistory, StoredCopy
from verify.errors import MalformedEvidence
from verify.policy_file import load_policy

H = timedelta(hours=1)
APP = "dist/app.tar.gz"
#: A message signature of a.txt by a managed key (read without Sigstore's trusted root or network).
SIGNED_MESSAGE = (CONFORMANCE / "sigstore-conformance" / "test" / "assets" / "bundle-verify"
                  / "managed-key-happy-path")
A_TXT = "a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf"

POLICY = """\
version: 1
identities:
  dev-build: {{keys: [{dev}]}}
  stg-verifier: {{keys: [{stg}]}}
  prd-verifier: {{keys: [{prd}]}}
  alice: {{keys: [{alice}]}}
  bob: {{keys: [{bob}]}}
  release-manager: {{keys: [{release}]}}
  stg-deployer: {{keys: [{deployer}]}}
  message-signer: {{keys: [{message}]}}
provenance:
  signed-by: [dev-build]
  source: {{uri: github.com/acme/app, branches: [main]}}
  builders: ["{builder}"]
releases: {{signed-by: [release-manager]}}
stages:
  stg: {{verifier: stg-verifier, deployed-by: [stg-deployer]}}
  prd:
    verifier: prd-verifier
    require-vsa: [{{stage: stg, signed-by: stg-verifier}}]
    require-approvals: {{count: 2, signed-by: [alice, bob]}}
"""


def sha(data: bytes) -> str:
    return f.digests(data)["sha256"]


def compact(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> AuditReport:
    """One audit with every kind of evidence: builds (one artefact built twice, with two lockfiles), VSAs of two
    stages (one FAILED), approvals, reproductions, a message signature, a release and a deployment, stored copies
    verified, tampered and unreadable; and anomalies (dirty-build, skipped-stage, missing-approval,
    non-reproducible, tampered-artifact, untrusted-signer)."""
    root = tmp_path_factory.mktemp("roundtrip")
    keys: dict[str, KeyPair] = {name: make_keypair(root, name) for name in
                                ("dev", "stg", "prd", "alice", "bob", "release", "deployer", "other")}
    (root / "policy.yaml").write_text(POLICY.format(
        builder=f.BUILDER, message=SIGNED_MESSAGE / "key.pub", **{n: pair.public for n, pair in keys.items()}))
    policy = load_policy(root / "policy.yaml")
    store = root / "store"
    locks = {"requirements.txt": f.LOCKFILE, "package-lock.json": b"{}"}

    # v1: built twice, through stg (a FAILED VSA, then a PASSED one) and prd with both approvals, reproduced,
    # released and deployed to stg
    v1 = b"v1"
    built = f.provenance(keys["dev"].private, subjects={APP: v1}, commit="a" * 40, lockfiles=locks)
    f.publish(store, built)
    f.publish(store, f.provenance(keys["dev"].private, subjects={APP: v1}, commit="a" * 40, lockfiles=locks,
                                  finished=f.T0 + H, invocation="build/2"))
    f.publish(store, f.vsa(keys["stg"].private, name=APP, artifact=v1, stage="stg", at=f.T0 + H, result="FAILED"))
    made = [("provenance", f.line_sha256(built))]  # as the gate names it
    f.publish(store, f.vsa(keys["stg"].private, name=APP, artifact=v1, stage="stg", at=f.T0 + 2 * H, inputs=made))
    f.publish(store, f.vsa(keys["prd"].private, name=APP, artifact=v1, stage="prd", at=f.T0 + 3 * H))
    for who in ("alice", "bob"):
        f.publish(store, f.approval(keys[who].private, name=APP, artifact=v1, stage="prd", approver=f"{who}@acme",
                                    at=f.T0 + 2 * H))
    f.publish(store, f.reproduction(keys["alice"].private, results={APP: (v1, "match")}, at=f.T0 + H,
                                    commit="a" * 40))
    component = Component(name="app", subjects=[(APP, f.digests(v1))], source=f.REPO, commit="a" * 40,
                          provenance_sha256=f.line_sha256(built))
    release = f.sign(keys["release"].private, release_statement(name="2024.05.02-1", components=[component],
                                                                created_at=f.T0 + 4 * H))
    f.publish(store, release, kind="release")
    f.publish(store, f.sign(keys["deployer"].private, deployment_statement(
        environment="stg", release_name="2024.05.02-1", component="app", artifacts=[(APP, f.digests(v1))],
        release_sha256=f.line_sha256(release), status="succeeded",
        kind="deploy", deployed_at=f.T0 + 5 * H)), kind="deployment")

    # v2: built dirty, verified by prd only, approved once, rebuilt differently, and its stored bytes replaced
    v2 = b"v2"
    f.publish(store, f.provenance(keys["dev"].private, subjects={APP: v2}, commit="b" * 40, dirty=True))
    f.publish(store, f.vsa(keys["prd"].private, name=APP, artifact=v2, stage="prd", at=f.T0 + H, levels=()))
    f.publish(store, f.approval(keys["alice"].private, name=APP, artifact=v2, stage="prd", approver="alice@acme",
                                at=f.T0 + H))
    f.publish(store, f.reproduction(keys["bob"].private, results={APP: (v2, "differs")}, at=f.T0 + 2 * H,
                                    commit="b" * 40))
    # an artefact built by a key the policy does not pin
    f.publish(store, f.provenance(keys["other"].private, subjects={"dist/evil": b"evil"}))
    (store / "x").mkdir()
    (store / "x" / "message.sigstore.json").write_bytes((SIGNED_MESSAGE / "bundle.sigstore.json").read_bytes())

    sources = [(str(p), p.read_bytes()) for p in sorted(store.rglob("*"))
               if p.is_file() and p.name.endswith((".intoto.jsonl", ".sigstore.json"))]
    stored: list[StoredArtifact] = [
        (f"store/sha256/{sha(v1)}/artifact/{APP}", sha(v1), sha(v1)),
        (f"store/sha256/{sha(v2)}/artifact/{APP}", sha(v2), sha(b"swapped")),
        (f"store/sha256/{sha(b'gone')}/artifact/{APP}", sha(b"gone"), MalformedEvidence("not a regular file"))]
    return audit(sources, policy=policy, workers=1, artifacts=stored)


def endorsements(history: ArtifactHistory) -> Iterator[Endorsement]:
    yield from (e for s in history.stages for e in (*s.vsas, *s.approvals, *s.deployments))
    yield from (*history.reproductions, *history.signatures, *history.releases)


def test_the_audit_holds_every_kind_of_record(report: AuditReport) -> None:
    """The round trips below are only as good as what they run over: every kind is there."""
    histories = {a.sha256: a for a in report.artifacts}
    assert set(histories) == {sha(b"v1"), sha(b"v2"), sha(b"evil"), sha(b"gone"), A_TXT}
    assert {e.kind for a in report.artifacts for e in endorsements(a)} == {
        "vsa", "approval", "reproduction", "signature", "release", "deployment"}
    assert {c.status for a in report.artifacts for c in a.stored} == {"verified", "tampered", "unreadable"}
    assert {a.kind for a in report.anomalies} == {"dirty-build", "skipped-stage", "missing-approval",
                                                 "non-reproducible", "tampered-artifact", "untrusted-signer"}
    v1 = histories[sha(b"v1")]
    assert len(v1.builds) == 2 and v1.anomalies == ()
    assert [name for name, _ in v1.builds[0].lockfiles] == ["package-lock.json", "requirements.txt"]
    assert [s.status for s in v1.stages] == ["passed", "passed"]
    assert [v.result for v in v1.stages[0].vsas] == ["FAILED", "PASSED"]
    assert v1.stages[0].deployments[0].about == (("release", "2024.05.02-1"), ("component", "app"),
                                                 ("kind", "deploy"))
    assert {v.level for a in report.artifacts for s in a.stages for v in s.vsas} == {2, None}
    assert histories[sha(b"v2")].builds[0].dirty and len(histories[sha(b"v2")].anomalies) >= 4


def test_every_history_reads_back_from_its_json_text(report: AuditReport) -> None:
    for history in report.artifacts:
        text = compact(history.to_dict())
        back = ArtifactHistory.from_dict(json.loads(text), history.anomalies)
        assert back == history
        assert compact(back.to_dict()) == text
        assert ArtifactHistory.from_dict(history.to_dict(), list(history.anomalies)) == history


def test_every_part_reads_back_from_its_dict(report: AuditReport) -> None:
    for history in report.artifacts:
        for build in history.builds:
            assert BuildRecord.from_dict(json.loads(compact(build.to_dict()))) == build
        for stage in history.stages:
            assert StageHistory.from_dict(json.loads(compact(stage.to_dict()))) == stage
        for endorsement in endorsements(history):
            assert Endorsement.from_dict(json.loads(compact(endorsement.to_dict()))) == endorsement
        for stored in history.stored:
            assert StoredCopy.from_dict(stored.to_dict()) == stored


def test_a_time_in_another_zone_reads_back_as_the_same_instant() -> None:
    paris = timezone(timedelta(hours=2))
    vsa = Endorsement(kind="vsa", stage="stg", result="PASSED", time=datetime(2024, 5, 1, 12, tzinfo=paris),
                      signers=("stg-verifier",), attestation="a.intoto.jsonl", level=3)
    back = Endorsement.from_dict(vsa.to_dict())
    assert back == vsa and back.time is not None and back.time.tzinfo is UTC and back.time.hour == 10


def test_times_are_written_to_the_second_in_utc_and_a_short_year_reads_back() -> None:
    early = datetime(999, 1, 2, 3, 4, 5, 999_999, tzinfo=UTC)  # RFC 3339 pads the year to four digits
    vsa = Endorsement(kind="vsa", stage="stg", result="PASSED", time=early, signers=("stg-verifier",),
                      attestation="a.intoto.jsonl", level=3)
    assert vsa.to_dict()["time"] == "0999-01-02T03:04:05Z"
    assert Endorsement.from_dict(vsa.to_dict()) == replace(vsa, time=early.replace(microsecond=0))


def paths(node: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path to every value in a JSON document, the document itself first."""
    yield at
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*at, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from paths(value, (*at, i))


def changed(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    out = copy.deepcopy(document)
    node = out
    for part in path[:-1]:
        node = node[part]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


def test_any_change_reads_back_as_written_or_raises_value_error(report: AuditReport) -> None:
    """Every value replaced by one of each JSON type, and every key removed: either what ``to_dict`` would write
    for the result, or ValueError; never another exception, never a history that writes other text."""
    for history in report.artifacts:
        document = history.to_dict()
        for path in list(paths(document))[1:]:
            for value in (None, True, 0, 2, "", "x", "2024-05-01T10:00:00Z", [], ["x"], {}, {"x": "y"}, KeyError):
                if value is KeyError and isinstance(path[-1], int):
                    continue
                mutated = changed(document, path, value)
                try:
                    back = ArtifactHistory.from_dict(mutated, history.anomalies)
                except ValueError:
                    continue
                assert back.to_dict() == mutated, path


def v1_json(report: AuditReport) -> dict[str, Any]:
    history = next(a for a in report.artifacts if a.sha256 == sha(b"v1"))
    document: dict[str, Any] = json.loads(compact(history.to_dict()))
    return document


def _drop(*path: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        node = document
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]
    return change


def _put(value: Any, *path: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        node = document
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
    return change


def _file_approval_as_vsa(document: dict[str, Any]) -> None:
    document["stages"][1]["vsas"].append(document["stages"][1]["approvals"][0])


@pytest.mark.parametrize(("change", "words"), [
    (_drop("builds"), "an artefact's history has no builds"),
    (_drop("builds", 0, "dirty"), "a build has no dirty"),
    (_drop("stages", 0, "vsas", 0, "buildLevel"), "is none of vsa, approval, reproduction"),
    (_drop("stages", 0, "deployments", 0, "component"), "a key is missing or unknown"),
    (_put(1, "extra"), "an artefact's history has the unknown key(s) 'extra'"),
    (_put(1, "builds", 0, "extra"), "a build has the unknown key(s) 'extra'"),
    (_put("x", "stages", 0, "vsas", 0, "extra"), "a key is missing or unknown"),
    (_put(1, "stored", 0, "extra"), "a stored copy has the unknown key(s) 'extra'"),
    (_put("no", "builds", 0, "dirty"), "a build: dirty is a string, not a boolean"),
    (_put(0, "builds", 0, "dirty"), "a build: dirty is an integer, not a boolean"),
    (_put(None, "builds", 0, "name"), "a build: name is null, not a string"),
    (_put("dist/app.tar.gz", "names"), "names is a string, not a list"),
    (_put([1], "builds", 0, "signers"), "an item of signers is an integer, not a string"),
    (_put(True, "stages", 0, "vsas", 0, "buildLevel"), "buildLevel is a boolean, not an integer or null"),
    (_put("2", "stages", 0, "vsas", 0, "buildLevel"), "buildLevel is a string, not an integer or null"),
    (_put(2.0, "stages", 0, "vsas", 0, "buildLevel"), "buildLevel is float, not an integer or null"),
    (_put([], "builds", 0, "lockfiles"), "a build: lockfiles is a list, not an object"),
    (_put({"requirements.txt": {"sha256": 5}}, "builds", 0, "lockfiles"),
     "lockfile 'requirements.txt' is an integer, not a string"),
    (_put({"requirements.txt": "ab"}, "builds", 0, "lockfiles"), "lockfile 'requirements.txt' is a string, not an"),
    (_put(None, "builds", 0), "a build is null, not an object"),
    (_put({}, "stages"), "stages is an object, not a list"),
    (_put("done", "stages", 0, "status"), "stage 'stg': status is 'done', not one of passed, failed"),
    (_put("lost", "stored", 0, "status"), "a stored copy: status is 'lost', not one of verified, tampered"),
    (_put("2024-05-01 10:00:00", "builds", 0, "finishedOn"), "finishedOn '2024-05-01 10:00:00' is not a UTC time"),
    (_put("2024-05-01T10:00:00+00:00", "stages", 0, "vsas", 0, "time"), "is not a UTC time like"),
    (_put("2024-05-01T10:00:00.5Z", "releases", 0, "time"), "is not a UTC time like"),
    (_put("2024-13-01T10:00:00Z", "reproductions", 0, "time"), "is not a UTC time like"),
    (_put("2024-5-1T10:00:00Z", "builds", 0, "startedOn"), "is not a UTC time like"),
    (_put("2024-02-30T10:00:00Z", "builds", 0, "startedOn"), "is not a UTC time like"),  # the spelling, no day
    (_put("2024-05-01T10:00:00z", "builds", 0, "startedOn"), "is not a UTC time like"),
    (_put("2024-05-01T10:00:00Z\n", "builds", 0, "startedOn"), "is not a UTC time like"),
    (_put("2024-05-01T24:00:00Z", "builds", 0, "startedOn"), "is not a UTC time like"),
    (_put(1714557600, "builds", 0, "startedOn"), "startedOn is an integer, not a string or null"),
    (_put("f" * 40, "commit"), f"has commit {'f' * 40!r}, but its first build says {'a' * 40!r}"),
    (_put(None, "builtOn"), "has builtOn None, but its first build says '2024-05-01T10:00:00Z'"),
    (_put(0, "dirty"), "dirty is an integer, not a boolean or null"),
    (_file_approval_as_vsa, "stage 'prd': vsas holds a approval endorsement, not only vsa ones"),
    (_put(["dirty-build"], "anomalies"), "names the anomalies ['dirty-build'], but the ones given are []"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_a_malformed_history_is_a_value_error(report: AuditReport, change: Callable[[dict[str, Any]], None],
                                              words: str) -> None:
    document = v1_json(report)
    change(document)
    with pytest.raises(ValueError) as raised:
        ArtifactHistory.from_dict(document, ())
    assert words in str(raised.value)


def test_the_anomalies_given_must_be_the_ones_the_text_names(report: AuditReport) -> None:
    history = next(a for a in report.artifacts if a.sha256 == sha(b"v2"))
    document = history.to_dict()
    without_one_kind = [a for a in history.anomalies if a.kind != "dirty-build"]
    with pytest.raises(ValueError, match="names the anomalies"):
        ArtifactHistory.from_dict(document, without_one_kind)
    with pytest.raises(ValueError, match="names the anomalies"):
        ArtifactHistory.from_dict(document, ())
    with pytest.raises(ValueError, match="cannot be read: AttributeError"):
        ArtifactHistory.from_dict(document, [object()])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="is a list, not an object"):
        ArtifactHistory.from_dict([], history.anomalies)
    with pytest.raises(ValueError, match="an endorsement is a string, not an object"):
        Endorsement.from_dict("PASSED")
