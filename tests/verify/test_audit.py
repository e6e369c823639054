"""verify.audit: a store's whole history -> each artefact's path, and exactly the anomalies in it.

Every attestation is signed for real (tests.factory: attest's own statement builders and key
signer); the audit verifies every signature with the policy's pinned keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from attest.bundle import key_bundle
from attest.signers import sign_envelope
from tests import factory as f
from tests.conftest import CONFORMANCE, KeyPair, make_keypair
from verify.audit import ANOMALY_KINDS, AuditReport, StoredArtifact, audit, audit_setup
from verify.audit._check import _Setup
from verify.audit._workers import _facts
from verify.errors import ConfigError, MalformedEvidence, PolicyError, TrustConfigError
from verify.formats.encoding import printable
from verify.formats.envelope import Envelope
from verify.policy import Policy, ProvenanceRules
from verify.policy_file import load_policy
from verify.trust import Identity, SigstoreIdentity

H = timedelta(hours=1)
APP = "dist/app.tar.gz"

POLICY = """\
version: 1
identities:
  dev-build: {{keys: [{dev}]}}
  stg-verifier: {{keys: [{stg}]}}
  prd-verifier: {{keys: [{prd}]}}
  alice: {{keys: [{alice}]}}
  bob: {{keys: [{bob}]}}
provenance:
  signed-by: [dev-build]
  source: {{uri: github.com/acme/app, branches: [main]}}
  builders: ["{builder}"]
stages:
  stg: {{verifier: stg-verifier}}
  prd:
    verifier: prd-verifier
    require-vsa: [{{stage: stg, signed-by: stg-verifier}}]
{approvals}"""


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    directory = tmp_path_factory.mktemp("keys")
    return {name: make_keypair(directory, name) for name in ("dev", "stg", "prd", "alice", "bob", "other")}


def write_policy(directory: Path, keys: dict[str, KeyPair], *, approvals: str = "") -> Policy:
    path = directory / "policy.yaml"
    path.write_text(POLICY.format(builder=f.BUILDER, approvals=approvals,
                                  **{name: pair.public for name, pair in keys.items()}))
    return load_policy(path)


@pytest.fixture(scope="module")
def policy(keys: dict[str, KeyPair], tmp_path_factory: pytest.TempPathFactory) -> Policy:
    return write_policy(tmp_path_factory.mktemp("policy"), keys)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


def files(store: Path) -> Iterator[tuple[str, bytes]]:
    for path in sorted(store.rglob("*")):
        if path.is_file() and path.name.endswith((".intoto.jsonl", ".sigstore.json")):
            yield str(path), path.read_bytes()


def run(store: Path, policy: Policy, **options: Any) -> AuditReport:
    return audit(files(store), policy=policy, workers=1, **options)


def found(report: AuditReport) -> set[tuple[str, str | None]]:
    return {(a.kind, a.sha256) for a in report.anomalies}


def sha(data: bytes) -> str:
    return f.digests(data)["sha256"]


def published(store: Path, provenance: Envelope) -> list[tuple[str, str]]:
    """Publish ``provenance``; the inputAttestations of a VSA that verified it (as the gate names it)."""
    f.publish(store, provenance)
    return [("provenance", f.line_sha256(provenance))]


def full_path(store: Path, keys: dict[str, KeyPair], data: bytes, *, name: str = APP, commit: str = f.COMMIT,
              built: datetime = f.T0, stages: tuple[str, ...] = ("stg", "prd")) -> str:
    """An artefact built, then verified by each of ``stages`` an hour apart (each VSA naming the provenance, as
    ``attest verify --emit-vsa`` signs one); its sha256."""
    made = published(store, f.provenance(keys["dev"].private, subjects={name: data}, commit=commit, finished=built))
    for i, stage in enumerate(stages, start=1):
        f.publish(store, f.vsa(keys[stage].private, name=name, artifact=data, stage=stage, at=built + i * H,
                               inputs=made))
    return sha(data)


# --- a clean history ----------------------------------------------------------------------------------

def test_clean_history_has_no_anomalies(store: Path, keys: dict[str, KeyPair], policy: Policy) -> None:
    released = full_path(store, keys, b"v1", commit="a" * 40)
    staged = full_path(store, keys, b"v2", commit="b" * 40, built=f.T0 + 24 * H, stages=("stg",))
    built_only = full_path(store, keys, b"v3", name="dist/tool.zip", commit="c" * 40, stages=())

    report = run(store, policy)

    assert report.clean and report.anomalies == ()
    assert report.attestations == 6 and report.stages == ("stg", "prd")
    by_sha = {a["sha256"]: a for a in report.to_dict()["artifacts"]}
    assert set(by_sha) == {released, staged, built_only}
    first = by_sha[released]
    assert first["names"] == [APP] and first["commit"] == "a" * 40 and first["ref"] == "refs/heads/main"
    assert first["builder"] == f.BUILDER and first["builtOn"] == "2024-05-01T10:00:00Z" and first["dirty"] is False
    assert [(s["stage"], s["status"]) for s in first["stages"]] == [("stg", "passed"), ("prd", "passed")]
    assert first["stages"][1]["vsas"][0]["signers"] == ["prd-verifier"]
    assert first["stages"][1]["vsas"][0]["time"] == "2024-05-01T12:00:00Z"
    assert [s["status"] for s in by_sha[staged]["stages"]] == ["passed", "absent"]
    assert [s["status"] for s in by_sha[built_only]["stages"]] == ["absent", "absent"]


def test_report_does_not_depend_on_reading_order(store: Path, keys: dict[str, KeyPair], policy: Policy) -> None:
    for i in range(3):
        full_path(store, keys, b"artefact %d" % i, commit=f"{i:040x}")
    in_order = list(files(store))
    shuffled = in_order[:]
    random.Random(7).shuffle(shuffled)
    first = audit(in_order, policy=policy, workers=1).to_dict()
    assert audit(shuffled, policy=policy, workers=1).to_dict() == first
    assert [a["sha256"] for a in first["artifacts"]] == sorted(a["sha256"] for a in first["artifacts"])  # same name


# --- exactly the anomalies there are ------------------------------------------------------------------

def test_skipped_stage_untrusted_signer_and_non_reproducible(store: Path, keys: dict[str, KeyPair],
                                                              policy: Policy) -> None:
    clean = full_path(store, keys, b"clean", commit="a" * 40)
    # prd verified it, stg never did
    skipped = full_path(store, keys, b"skipped", commit="b" * 40, stages=("prd",))
    # built by a key the policy does not pin
    f.publish(store, f.provenance(keys["other"].private, subjects={"dist/evil": b"evil"}))
    untrusted = sha(b"evil")
    # one commit and lockfiles, two different artefacts
    first = full_path(store, keys, b"build one", commit="c" * 40, stages=())
    second = full_path(store, keys, b"build two", commit="c" * 40, built=f.T0 + H, stages=())

    report = run(store, policy)

    assert found(report) == {("skipped-stage", skipped), ("untrusted-signer", untrusted),
                             ("non-reproducible", first), ("non-reproducible", second)}
    messages = {a.kind: a.message for a in report.anomalies}
    assert "without the VSA from stage 'stg' that it requires" in messages["skipped-stage"]
    assert "'dist/evil' is signed by no key the policy pins" in messages["untrusted-signer"]
    assert f"from commit {'c' * 12} with the same lockfiles" in messages["non-reproducible"]
    histories = {a.sha256: a for a in report.artifacts}
    assert histories[clean].anomalies == ()
    assert [s.status for s in histories[skipped].stages] == ["absent", "anomalous"]
    assert histories[untrusted].builds == () and histories[untrusted].names == ()  # nothing untrusted is believed


def test_different_lockfiles_or_commits_are_not_a_reproducibility_problem(
        store: Path, keys: dict[str, KeyPair], policy: Policy) -> None:
    full_path(store, keys, b"one", commit="d" * 40, stages=())
    full_path(store, keys, b"two", commit="e" * 40, stages=())
    f.publish(store, f.provenance(keys["dev"].private, subjects={APP: b"three"}, commit="d" * 40,
                                  lockfiles={"requirements.txt": b"requests==2.32.4\n"}))
    f.publish(store, f.provenance(keys["dev"].private, subjects={APP: b"four"}, commit="d" * 40, dirty=True,
                                  finished=f.T0 + H))
    assert found(run(store, policy)) == {("dirty-build", sha(b"four"))}


def test_out_of_order(store: Path, keys: dict[str, KeyPair], policy: Policy) -> None:
    # stg verified it before it was built
    early = b"verified before built"
    f.publish(store, f.provenance(keys["dev"].private, subjects={APP: early}, commit="a" * 40))
    f.publish(store, f.vsa(keys["stg"].private, name=APP, artifact=early, stage="stg", at=f.T0 - H))
    # prd verified it before stg did
    rushed = b"prd before stg"
    made = published(store, f.provenance(keys["dev"].private, subjects={APP: rushed}, commit="b" * 40))
    f.publish(store, f.vsa(keys["stg"].private, name=APP, artifact=rushed, stage="stg", at=f.T0 + 3 * H, inputs=made))
    f.publish(store, f.vsa(keys["prd"].private, name=APP, artifact=rushed, stage="prd", at=f.T0 + 2 * H))

    report = run(store, policy)

    assert found(report) == {("out-of-order", sha(early)), ("out-of-order", sha(rushed))}
    by_sha = {a.sha256: a for a in report.anomalies}
    assert by_sha[sha(early)].step == "stg"
    assert "before it was built (2024-05-01T10:00:00Z)" in by_sha[sha(early)].message
    assert by_sha[sha(rushed)].step == "prd"
    assert "before stage 'stg' did (2024-05-01T13:00:00Z)" in by_sha[sha(rushed)].message


def test_a_provenance_with_an_input_nobody_expected_is_an_anomaly(store: Path, keys: dict[str, KeyPair],
                                                                  policy: Policy) -> None:
    import json

    statement = json.loads(f.provenance(keys["dev"].private, subjects={APP: b"skipped"}).payload)
    statement["predicate"]["buildDefinition"]["externalParameters"]["skipTests"] = True
    f.publish(store, f.sign(keys["dev"].private, statement))
    f.publish(store, f.provenance(keys["dev"].private, subjects={APP: b"ok"}, commit="d" * 40))

    report = run(store, policy)

    assert found(report) == {("unexpected-parameters", sha(b"skipped"))}
    assert "external parameter 'skipTests'" in report.anomalies[0].message


def test_a_stage_with_min_level_passed_without_the_level_is_an_anomaly(store: Path, keys: dict[str, KeyPair],
                                                                        tmp_path: Path) -> None:
    base = write_policy(tmp_path, keys, approvals="    min-level: 3\n")
    assert base.stages["prd"].min_level == 3
    text = (tmp_path / "policy.yaml").read_text().replace(f'builders: ["{f.BUILDER}"]',
                                                           f'builders: [{{id: "{f.BUILDER}", level: 3}}]')
    (tmp_path / "policy.yaml").write_text(text)
    trusted_for_3 = load_policy(tmp_path / "policy.yaml")
    # stg vouched for level 3 for one artefact, level 2 for the other (the factory's default)
    made = published(store, f.provenance(keys["dev"].private, subjects={APP: b"l3"}, commit="a" * 40))
    f.publish(store, f.vsa(keys["stg"].private, name=APP, artifact=b"l3", stage="stg", at=f.T0 + H,
                           levels=["SLSA_BUILD_LEVEL_3"], inputs=made))
    f.publish(store, f.vsa(keys["prd"].private, name=APP, artifact=b"l3", stage="prd", at=f.T0 + 2 * H))
    low = full_path(store, keys, b"l2", commit="b" * 40)

    assert found(run(store, trusted_for_3)) == {("insufficient-level", low)}
    report = run(store, base)  # the builder trusted for level 1 only: both fall short
    assert found(report) == {("insufficient-level", sha(b"l3")), ("insufficient-level", low)}
    messages = sorted(a.message for a in report.anomalies)
    assert any("which no builder trusted for SLSA build level 3 built" in m for m in messages)
    assert any("stage 'stg' vouched for SLSA build level 2 at most, not the 3 it requires" in m for m in messages)
    stg = next(a for a in report.to_dict()["artifacts"] if a["sha256"] == low)["stages"][0]
    assert stg["vsas"][0]["buildLevel"] == 2


def test_disallowed_source_and_builder(store: Path, keys: dict[str, KeyPair], policy: Policy) -> None:
    f.publish(store, f.provenance(keys["dev"].private, subjects={APP: b"fork"}, repo="https://github.com/evil/app"))
    f.publish(store, f.provenance(keys["dev"].private, subjects={APP: b"branch"}, ref="refs/heads/feature",
                                  commit="b" * 40))
    f.publish(store, f.provenance(keys["dev"].private, subjects={APP: b"laptop"}, builder="attest:builder:local",
                                  commit="c" * 40))
    # the same repository, spelled another way, is allowed
    f.publish(store, f.provenance(keys["dev"].private, subjects={APP: b"ok"}, repo="git@github.com:acme/app.git",
                                  commit="d" * 40))

    report = run(store, policy)

    assert found(report) == {("disallowed-source", sha(b"fork")), ("disallowed-source", sha(b"branch")),
                             ("disallowed-builder", sha(b"laptop"))}
    messages = {a.sha256: a.message for a in report.anomalies}
    assert "source repository is 'https://github.com/evil/app'" in messages[sha(b"fork")]
    assert "ref 'refs/heads/feature'" in messages[sha(b"branch")]
    assert {a.step for a in report.anomalies if a.kind == "disallowed-source"} == {"source"}


def test_dirty_build(store: Path, keys: dict[str, KeyPair], policy: Policy) -> None:
    f.publish(store, f.provenance(keys["dev"].private, subjects={APP: b"dirty"}, dirty=True))
    report = run(store, policy)
    assert found(report) == {("dirty-build", sha(b"dirty"))}
    assert report.artifacts[0].to_dict()["dirty"] is True


def test_malformed(store: Path, keys: dict[str, KeyPair], policy: Policy, tmp_path: Path) -> None:
    (store / "junk").mkdir(parents=True)
    (store / "junk" / "not-json.intoto.jsonl").write_bytes(b"this is not json\n")
    (store / "junk" / "empty.intoto.jsonl").write_bytes(b"")
    no_subjects = f.sign(keys["dev"].private, {"_type": "https://in-toto.io/Statement/v1", "subject": [],
                                               "predicateType": "https://slsa.dev/provenance/v1", "predicate": {}})
    (store / "junk" / "no-subjects.intoto.jsonl").write_bytes(no_subjects.to_json_line())
    bad_vsa = json.loads(f.vsa(keys["stg"].private, name=APP, artifact=b"x", stage="stg", at=f.T0).payload)
    del bad_vsa["predicate"]["timeVerified"]
    (store / "junk" / "vsa.intoto.jsonl").write_bytes(f.sign(keys["stg"].private, bad_vsa).to_json_line())
    approval = json.loads(f.approval(keys["alice"].private, name=APP, artifact=b"y", stage="prd", approver="a",
                                     at=f.T0).payload)
    approval["predicate"]["stage"] = ""
    (store / "junk" / "approval.intoto.jsonl").write_bytes(f.sign(keys["alice"].private, approval).to_json_line())
    blake3_only = json.loads(f.provenance(keys["dev"].private, subjects={APP: b"z"}).payload)
    del blake3_only["subject"][0]["digest"]["sha256"]
    (store / "junk" / "blake3.intoto.jsonl").write_bytes(f.sign(keys["dev"].private, blake3_only).to_json_line())
    text = sign_envelope(f.signer(keys["dev"].private), payload_type="text/plain", payload=b"hello")
    (store / "junk" / "text.intoto.jsonl").write_bytes(text.to_json_line())

    report = run(store, policy)

    assert sorted((a.kind, a.sha256 or "") for a in report.anomalies) == [
        ("malformed", ""), ("malformed", ""), ("malformed", ""), ("malformed", ""), ("malformed", ""),
        ("malformed", sha(b"x")), ("malformed", sha(b"y"))]
    messages = " | ".join(a.message for a in report.anomalies)
    for words in ("is not valid JSON", "is empty", "has no subjects", "has no timeVerified",
                  "the approval names no stage", "subject 'dist/app.tar.gz' has no sha256 digest",
                  "payloadType is 'text/plain'"):
        assert words in messages


# --- who signed it, and may they --------------------------------------------------------------------

def _tampered(envelope: Envelope, *, keyid: str | None = None) -> bytes:
    obj = envelope.to_dict()
    statement = json.loads(envelope.payload)
    statement["subject"][0]["name"] = "dist/swapped.tar.gz"
    obj["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    if keyid is not None:
        obj["signatures"][0]["keyid"] = keyid
    return json.dumps(obj).encode() + b"\n"


def test_bad_signature_is_a_pinned_keyid_that_does_not_verify(store: Path, keys: dict[str, KeyPair],
                                                                policy: Policy) -> None:
    envelope = f.provenance(keys["dev"].private, subjects={APP: b"tampered"})
    (store / "a").mkdir(parents=True)
    (store / "a" / "named.intoto.jsonl").write_bytes(_tampered(envelope))  # keyid: the dev key's fingerprint
    (store / "a" / "anonymous.intoto.jsonl").write_bytes(_tampered(envelope, keyid=""))

    report = run(store, policy)

    assert sorted(a.kind for a in report.anomalies) == ["bad-signature", "untrusted-signer"]
    bad = next(a for a in report.anomalies if a.kind == "bad-signature")
    assert bad.sha256 == sha(b"tampered") and bad.source.endswith("named.intoto.jsonl")
    assert "names the pinned key of dev-build but its signature does not verify" in bad.message


def test_trusted_identities_may_only_sign_what_the_policy_lets_them(store: Path, keys: dict[str, KeyPair],
                                                                    policy: Policy) -> None:
    f.publish(store, f.provenance(keys["stg"].private, subjects={APP: b"stg built it"}))
    clean = full_path(store, keys, b"clean", commit="a" * 40, stages=())
    f.publish(store, f.vsa(keys["prd"].private, name=APP, artifact=b"clean", stage="stg", at=f.T0 + H))
    f.publish(store, f.approval(keys["dev"].private, name=APP, artifact=b"clean", stage="prd", approver="dev",
                                at=f.T0 + H))

    report = run(store, policy)

    assert found(report) == {("untrusted-signer", sha(b"stg built it")), ("untrusted-signer", clean)}
    messages = sorted(a.message for a in report.anomalies)
    assert any("the provenance is signed by stg-verifier, but provenance.signed-by allows dev-build" in m
               for m in messages)
    assert any("a VSA for stage 'stg' is signed by prd-verifier, but stages.stg.verifier allows stg-verifier" in m
               for m in messages)
    assert any("an approval for stage 'prd' is signed by dev-build" in m and "allows no identity" in m
               for m in messages)
    assert [s.status for s in next(a for a in report.artifacts if a.sha256 == clean).stages] == \
        ["anomalous", "anomalous"]


def test_vsa_for_a_stage_the_policy_does_not_know(store: Path, keys: dict[str, KeyPair], policy: Policy) -> None:
    artefact = full_path(store, keys, b"qa", stages=())
    f.publish(store, f.vsa(keys["stg"].private, name=APP, artifact=b"qa", stage="qa", at=f.T0 + H))
    report = run(store, policy)
    assert found(report) == {("unknown-stage", artefact)}
    assert "'attest:stage:qa', which no stage of the policy accepts" in report.anomalies[0].message


def test_vsa_without_any_provenance(store: Path, keys: dict[str, KeyPair], policy: Policy) -> None:
    f.publish(store, f.vsa(keys["stg"].private, name=APP, artifact=b"orphan", stage="stg", at=f.T0))
    report = run(store, policy)
    assert found(report) == {("skipped-stage", sha(b"orphan"))}
    assert "no trusted provenance for it was found" in report.anomalies[0].message


def test_the_same_attestation_twice_counts_once(store: Path, keys: dict[str, KeyPair], policy: Policy) -> None:
    """A .intoto.jsonl line and the key bundle holding the same envelope are one piece of evidence."""
    (store / "c").mkdir(parents=True)
    envelope = f.vsa(keys["stg"].private, name=APP, artifact=b"twice", stage="stg", at=f.T0 + H)
    f.publish(store, f.provenance(keys["dev"].private, subjects={APP: b"twice"}))
    (store / "c" / "stg.intoto.jsonl").write_bytes(envelope.to_json_line())
    (store / "c" / "stg.sigstore.json").write_bytes(key_bundle(envelope, hint=envelope.signatures[0].keyid))
    untrusted = f.provenance(keys["other"].private, subjects={APP: b"evil"})
    (store / "c" / "evil.intoto.jsonl").write_bytes(untrusted.to_json_line())
    (store / "c" / "evil-copy.intoto.jsonl").write_bytes(untrusted.to_json_line())

    report = run(store, policy)

    assert report.attestations == 5
    assert found(report) == {("untrusted-signer", sha(b"evil"))} and len(report.anomalies) == 1
    twice = next(a for a in report.artifacts if a.sha256 == sha(b"twice"))
    assert len(twice.stages[0].vsas) == 1 and twice.stages[0].status == "passed"


# --- Sigstore bundles: keyless evidence counts like keyed evidence, once verified -------------------------
#
# Real bundles signed by the public-good Sigstore (tests/assets/sigstore and the conformance suite),
# verified offline against the production root embedded in sigstore-python, the default.

GITHUB = "https://token.actions.githubusercontent.com"
SUITE = CONFORMANCE / "sigstore-conformance" / "test" / "assets" / "bundle-verify"
#: A GitHub artifact attestation: SLSA provenance for a wheel, built from malancas/attest-demo@main.
REUSABLE = Path(__file__).resolve().parents[1] / "assets" / "sigstore" / "gh-reusable-workflow.sigstore.json"
WHEEL = "49a3aa6075e0f49f82843e74b5baa614ad2a588e6675612bf108a0a008c5ac25"
#: A message signature of a.txt by the conformance suite's GitHub workflow.
BEACON_MESSAGE = SUITE / "happy-path-v0.3" / "bundle.sigstore.json"
#: A message signature of a.txt by a managed (pinned) key.
KEY_MESSAGE = SUITE / "managed-key-happy-path" / "bundle.sigstore.json"
A_TXT = "a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf"

KEYLESS_POLICY = """\
version: 1
identities:
  gha: {{sigstore: {{issuer: "{github}", identity-regexp: "https://github.com/github/artifact-attestations-workflows/.+",
                   github-repo: "{repo}"}}}}
  beacon: {{sigstore: {{issuer: "{github}", identity-regexp: "https://github.com/sigstore-conformance/.+"}}}}
  dev-build: {{keys: [{dev}]}}
  release: {{keys: [{release}]}}
provenance:
  signed-by: [{signers}]
  source: {{uri: github.com/malancas/attest-demo, branches: [main]}}
"""


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Audit never opens a connection (no TUF refresh, no log lookup): any attempt fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args[1:]!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def keyless_policy(directory: Path, keys: dict[str, KeyPair], *, signers: str = "gha",
                   repo: str = "malancas/attest-demo") -> Policy:
    path = directory / "keyless.yaml"
    path.write_text(KEYLESS_POLICY.format(github=GITHUB, repo=repo, signers=signers, dev=keys["dev"].public,
                                          release=SUITE / "managed-key-happy-path" / "key.pub"))
    return load_policy(path)


def put(store: Path, name: str, document: bytes | dict[str, Any]) -> None:
    (store / "x").mkdir(parents=True, exist_ok=True)
    data = document if isinstance(document, bytes) else json.dumps(document).encode()
    (store / "x" / name).write_bytes(data)


def test_a_keyless_provenance_counts_like_a_key_signed_one(store: Path, keys: dict[str, KeyPair],
                                                           tmp_path: Path, offline: None) -> None:
    put(store, "provenance.sigstore.json", REUSABLE.read_bytes())

    report = run(store, keyless_policy(tmp_path, keys))

    assert report.clean, report.anomalies
    (artifact,) = report.artifacts
    assert artifact.sha256 == WHEEL and artifact.names == ("github_provenance_demo-0.0.0-py3-none-any.whl",)
    assert artifact.build is not None and artifact.build.signers == ("gha",)
    assert artifact.build.commit == "95baf27389e83e6a5c48f42e190d48d7abcea19e"
    # pinned, but not allowed to sign provenance: judged exactly as a key would be
    report = run(store, keyless_policy(tmp_path, keys, signers="dev-build"))
    assert found(report) == {("untrusted-signer", WHEEL)} and report.artifacts[0].builds == ()
    assert report.anomalies[0].message == ("the provenance is signed by gha, but provenance.signed-by allows "
                                           "dev-build")


def test_a_keyless_bundle_by_an_identity_the_policy_does_not_pin_is_an_untrusted_signer(
        store: Path, keys: dict[str, KeyPair], tmp_path: Path, offline: None) -> None:
    put(store, "provenance.sigstore.json", REUSABLE.read_bytes())

    report = run(store, keyless_policy(tmp_path, keys, repo="acme/app"))

    assert found(report) == {("untrusted-signer", WHEEL)}
    (anomaly,) = report.anomalies
    assert anomaly.step == "build" and anomaly.source.endswith("provenance.sigstore.json")
    assert anomaly.message.startswith("a provenance for 'github_provenance_demo-0.0.0-py3-none-any.whl' is "
                                      "signed keylessly by 'https://github.com/github/artifact-attestations-"
                                      "workflows/.github/workflows/attest.yml@09b495c3")
    assert anomaly.message.endswith(f"(issuer '{GITHUB}'), and the policy pins no Sigstore identity it satisfies")
    # a policy of keys only trusts no certificate at all
    report = run(store, policy_of_keys(keys))
    assert found(report) == {("untrusted-signer", WHEEL)}
    assert report.anomalies[0].message.endswith("and the policy pins no Sigstore identity")


def policy_of_keys(keys: dict[str, KeyPair]) -> Policy:
    from verify.trust import load_public_key_file

    identity = Identity(name="dev-build", keys=(load_public_key_file(keys["dev"].public),))
    return Policy(identities={"dev-build": identity}, provenance=ProvenanceRules(signed_by=("dev-build",)))


def test_a_keyless_bundle_that_does_not_verify_is_a_bad_signature(store: Path, keys: dict[str, KeyPair],
                                                                  tmp_path: Path, offline: None) -> None:
    bundle = json.loads(REUSABLE.read_bytes())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["subject"][0]["name"] = "backdoored.whl"  # the same digest, another name: altered after signing
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    put(store, "altered.sigstore.json", bundle)
    policy = keyless_policy(tmp_path, keys)

    report = run(store, policy)

    assert found(report) == {("bad-signature", WHEEL)} and report.artifacts[0].builds == ()
    message = report.anomalies[0].message
    assert message.startswith("a provenance for 'backdoored.whl' is signed keylessly in the name of gha ("), message
    assert "does not verify against the trusted root (its log entry does not record this bundle" in message
    # the genuine bundle, checked against another Sigstore instance's root: its certificate is not vouched for
    put(store, "altered.sigstore.json", REUSABLE.read_bytes())
    other_root = SUITE / "intoto-with-custom-trust-root" / "trusted_root.json"
    report = run(store, policy, trusted_root=other_root)
    assert found(report) == {("bad-signature", WHEEL)}
    assert "does not chain to a certificate authority of the trusted root" in report.anomalies[0].message


def test_message_signatures_are_listed_and_are_not_provenance(store: Path, keys: dict[str, KeyPair],
                                                              tmp_path: Path, offline: None) -> None:
    put(store, "keyless.sigstore.json", BEACON_MESSAGE.read_bytes())
    put(store, "key.sigstore.json", KEY_MESSAGE.read_bytes())
    without_digest = json.loads(BEACON_MESSAGE.read_bytes())
    del without_digest["messageSignature"]["messageDigest"]  # then the log entry names what it signs
    put(store, "logged.sigstore.json", without_digest)
    policy = keyless_policy(tmp_path, keys)

    report = run(store, policy)

    assert report.clean, report.anomalies
    (artifact,) = report.artifacts
    assert artifact.sha256 == A_TXT and artifact.builds == () and artifact.names == ()
    assert [(s.signers, Path(s.attestation).name) for s in artifact.signatures] == [
        (("release",), "key.sigstore.json"), (("beacon",), "keyless.sigstore.json"),
        (("beacon",), "logged.sigstore.json")]
    assert artifact.to_dict()["signatures"][0] == {"digest": f"sha256:{A_TXT}", "signers": ["release"],
                                                   "attestation": artifact.signatures[0].attestation}


def test_message_signatures_that_do_not_verify_or_name_nothing(store: Path, keys: dict[str, KeyPair],
                                                               tmp_path: Path, offline: None) -> None:
    other = "ab" * 32
    forged = json.loads(BEACON_MESSAGE.read_bytes())  # claims to sign another artefact
    forged["messageSignature"]["messageDigest"]["digest"] = base64.b64encode(bytes.fromhex(other)).decode()
    put(store, "forged.sigstore.json", forged)
    by_another_key = json.loads(KEY_MESSAGE.read_bytes())
    by_another_key["verificationMaterial"]["publicKey"]["hint"] = "unknown"
    by_another_key["messageSignature"]["signature"] = base64.b64encode(b"\x30\x06\x02\x01\x01\x02\x01\x01").decode()
    put(store, "other-key.sigstore.json", by_another_key)
    nothing_named = json.loads(KEY_MESSAGE.read_bytes())
    del nothing_named["messageSignature"]["messageDigest"]
    nothing_named["verificationMaterial"]["tlogEntries"] = []
    put(store, "unnamed.sigstore.json", nothing_named)

    report = run(store, keyless_policy(tmp_path, keys))

    assert sorted((a.kind, a.sha256 or "", Path(a.source).name) for a in report.anomalies) == [
        ("bad-signature", other, "forged.sigstore.json"),
        ("untrusted-signer", A_TXT, "other-key.sigstore.json"),
        ("unverifiable", "", "unnamed.sigstore.json")]
    bad = next(a for a in report.anomalies if a.kind == "bad-signature")
    assert bad.message.startswith(f"a message signature of sha256:{other[:12]} is signed keylessly in the name "
                                  "of beacon (")
    untrusted = next(a for a in report.anomalies if a.kind == "untrusted-signer")
    assert untrusted.message == f"a message signature of sha256:{A_TXT[:12]} is signed by no key the policy pins"


def test_a_key_signed_message_naming_a_pinned_key_that_does_not_verify_is_a_bad_signature(
        store: Path, keys: dict[str, KeyPair], tmp_path: Path) -> None:
    policy = keyless_policy(tmp_path, keys)
    release_key = policy.identities["release"].keys[0]
    altered = json.loads(KEY_MESSAGE.read_bytes())
    altered["verificationMaterial"]["publicKey"]["hint"] = release_key.fingerprint
    altered["messageSignature"]["messageDigest"]["digest"] = base64.b64encode(b"\x01" * 32).decode()
    put(store, "altered.sigstore.json", altered)

    report = run(store, policy)

    assert found(report) == {("bad-signature", "01" * 32)}
    assert report.anomalies[0].message == ("a message signature of sha256:010101010101 names the pinned key of "
                                           "release but its signature does not verify; it was altered after "
                                           "signing or forged")


@pytest.mark.parametrize(("change", "words"), [
    (lambda b: b["verificationMaterial"].update(certificate={"rawBytes": "AAAA"}),
     "is signed keylessly, but its signing certificate cannot be read"),
    (lambda b: b["verificationMaterial"].update(certificate={}), "its signing certificate has no rawBytes"),
    (lambda b: b["messageSignature"].update(messageDigest={"algorithm": "MD5", "digest": "AA=="}),
     "messageDigest algorithm is 'MD5', not 'SHA2_256'"),
    (lambda b: b["messageSignature"]["messageDigest"].update(digest="AAAA"),
     "messageDigest is not a base64 sha256 digest"),
], ids=["certificate-not-der", "certificate-missing", "md5-digest", "short-digest"])
def test_malformed_bundles(change: Any, words: str, store: Path, keys: dict[str, KeyPair], tmp_path: Path,
                           offline: None) -> None:
    bundle = json.loads(BEACON_MESSAGE.read_bytes())
    change(bundle)
    put(store, "malformed.sigstore.json", bundle)

    report = run(store, keyless_policy(tmp_path, keys))

    assert [a.kind for a in report.anomalies] == ["malformed"]
    assert words in report.anomalies[0].message, report.anomalies[0].message


@pytest.mark.parametrize("algorithm", ["SHA2_384", "SHA2_512"])
def test_a_message_signature_over_a_sha384_or_sha512_digest_is_unverifiable_not_malformed(
        algorithm: str, store: Path, keys: dict[str, KeyPair], tmp_path: Path, offline: None) -> None:
    # a P-384 key signs the artefact's SHA-384 (Sigstore's algorithm registry): well-formed evidence that
    # audit, which places artefacts by sha256, cannot place; it says so instead of calling it malformed
    bundle = json.loads(BEACON_MESSAGE.read_bytes())
    bundle["messageSignature"]["messageDigest"] = {"algorithm": algorithm, "digest": "AA=="}
    put(store, "p384.sigstore.json", bundle)

    report = run(store, keyless_policy(tmp_path, keys))

    assert [a.kind for a in report.anomalies] == ["unverifiable"]
    assert f"over the artefact's {algorithm} digest names no sha256" in report.anomalies[0].message


def test_a_policy_must_pin_some_identity(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="pins no public key and no Sigstore identity"):
        audit([], policy=Policy(identities={}, provenance=ProvenanceRules()))
    sigstore_only = Policy(identities={"gha": Identity(name="gha", sigstore=(SigstoreIdentity(issuer="x"),))},
                           provenance=ProvenanceRules(signed_by=("gha",)))
    assert audit([], policy=sigstore_only).clean
    with pytest.raises(TrustConfigError, match=r"cannot read trusted root .*missing\.json: No such file"):
        audit([], policy=sigstore_only, trusted_root=tmp_path / "missing.json")


def test_an_unusable_trusted_root_stops_the_audit_in_every_process(store: Path, keys: dict[str, KeyPair],
                                                                    tmp_path: Path) -> None:
    for i in range(3):
        put(store, f"provenance-{i}.sigstore.json", REUSABLE.read_bytes())
    (tmp_path / "root.json").write_text('{"mediaType": "nonsense"}')
    policy = keyless_policy(tmp_path, keys)
    for workers in (1, 2):
        with pytest.raises(TrustConfigError, match=r"root\.json is not a Sigstore trusted root"):
            audit(files(store), policy=policy, trusted_root=tmp_path / "root.json", workers=workers, batch_size=1)


def test_worker_processes_verify_bundles_alike(store: Path, keys: dict[str, KeyPair], tmp_path: Path) -> None:
    put(store, "provenance.sigstore.json", REUSABLE.read_bytes())
    put(store, "message.sigstore.json", BEACON_MESSAGE.read_bytes())
    put(store, "key.sigstore.json", KEY_MESSAGE.read_bytes())
    full_path(store, keys, b"keyed", stages=())
    policy = keyless_policy(tmp_path, keys, signers="gha, dev-build")

    inline = run(store, policy)
    pooled = audit(files(store), policy=policy, workers=2, batch_size=1)

    assert len(inline.artifacts) == 3 and found(inline) == {("disallowed-source", sha(b"keyed"))}
    assert pooled.to_dict() == inline.to_dict()


AUDIT_IN_A_FRESH_PROCESS = """
import json, sys
from pathlib import Path
from verify.audit import audit
from verify.policy_file import load_policy

store, policy = Path(sys.argv[1]), load_policy(Path(sys.argv[2]))
sources = [(str(p), p.read_bytes()) for p in sorted(store.rglob("*"))
           if p.name.endswith((".intoto.jsonl", ".sigstore.json"))]
report = audit(sources, policy=policy, workers=1)
print(json.dumps({"anomalies": sorted(a.kind for a in report.anomalies),
                  "sigstore": sorted(m for m in sys.modules if m == "sigstore" or m.startswith("sigstore."))}))
"""


def test_audits_without_a_pinned_keyless_signer_never_import_sigstore(store: Path, keys: dict[str, KeyPair],
                                                                      tmp_path: Path) -> None:
    """sigstore-python takes a second to import: only a certificate naming a pinned identity needs it."""
    full_path(store, keys, b"keyed", commit="a" * 40)
    put(store, "key.sigstore.json", KEY_MESSAGE.read_bytes())  # a key-signed message signature
    put(store, "provenance.sigstore.json", REUSABLE.read_bytes())  # keyless, by an identity not pinned
    keyless_policy(tmp_path, keys, signers="gha, dev-build", repo="acme/app")
    (tmp_path / "both.yaml").write_text((tmp_path / "keyless.yaml").read_text().replace(
        "identities:\n", f"identities:\n  stg-verifier: {{keys: [{keys['stg'].public}]}}\n"
                         f"  prd-verifier: {{keys: [{keys['prd'].public}]}}\n")
        + "stages:\n  stg: {verifier: stg-verifier}\n  prd: {verifier: prd-verifier}\n")

    done = subprocess.run([sys.executable, "-c", AUDIT_IN_A_FRESH_PROCESS, str(store), str(tmp_path / "both.yaml")],
                          capture_output=True, text=True, check=True)

    result = json.loads(done.stdout)
    assert result["sigstore"] == []
    assert result["anomalies"] == ["disallowed-source", "untrusted-signer"]  # keyed: from acme/app, not attest-demo


# --- approvals and reproductions ------------------------------------------------------------------------

def test_missing_approval(keys: dict[str, KeyPair], tmp_path: Path, store: Path) -> None:
    policy = write_policy(tmp_path, keys, approvals="    require-approvals: {count: 2, signed-by: [alice, bob]}\n")
    once = full_path(store, keys, b"approved once", commit="a" * 40)
    f.publish(store, f.approval(keys["alice"].private, name=APP, artifact=b"approved once", stage="prd",
                                approver="alice@acme", at=f.T0 + H))
    twice = full_path(store, keys, b"approved twice", commit="b" * 40)
    for who in ("alice", "bob"):
        f.publish(store, f.approval(keys[who].private, name=APP, artifact=b"approved twice", stage="prd",
                                    approver=f"{who}@acme", at=f.T0 + H))

    report = run(store, policy)

    assert found(report) == {("missing-approval", once)}
    assert "with 1 of the 2 approval(s) it requires from alice, bob" in report.anomalies[0].message
    prd = next(a for a in report.artifacts if a.sha256 == twice).to_dict()["stages"][1]
    assert sorted(a["approver"] for a in prd["approvals"]) == ["alice@acme", "bob@acme"]


def test_an_approval_signed_after_the_stage_verified_does_not_count(keys: dict[str, KeyPair], tmp_path: Path,
                                                                   store: Path) -> None:
    """prd verified it at T0+2h with no approval; approvals signed a month later covered the bypass."""
    policy = write_policy(tmp_path, keys, approvals="    require-approvals: {count: 2, signed-by: [alice, bob]}\n")
    late = full_path(store, keys, b"approved late", commit="a" * 40)
    f.publish(store, f.approval(keys["alice"].private, name=APP, artifact=b"approved late", stage="prd",
                                approver="alice@acme", at=f.T0 + H))
    f.publish(store, f.approval(keys["bob"].private, name=APP, artifact=b"approved late", stage="prd",
                                approver="bob@acme", at=f.T0 + 30 * 24 * H))

    report = run(store, policy)

    assert found(report) == {("missing-approval", late)}
    assert ("with 1 of the 2 approval(s) it requires from alice, bob (1 more signed after it verified, at "
            "2024-05-01T12:00:00Z, before it was built, or undated)") in report.anomalies[0].message


def test_an_approval_signed_before_the_build_does_not_count(keys: dict[str, KeyPair], tmp_path: Path,
                                                            store: Path) -> None:
    """As the gate counts them: an approval dated before the bytes were built approved something else (or its time
    is wrong), so it never lets a stage pass them."""
    policy = write_policy(tmp_path, keys, approvals="    require-approvals: {count: 1, signed-by: [alice]}\n")
    early = full_path(store, keys, b"approved early", commit="a" * 40)
    f.publish(store, f.approval(keys["alice"].private, name=APP, artifact=b"approved early", stage="prd",
                                approver="alice@acme", at=f.T0 - H))
    timely = full_path(store, keys, b"approved in time", commit="b" * 40)
    f.publish(store, f.approval(keys["alice"].private, name=APP, artifact=b"approved in time", stage="prd",
                                approver="alice@acme", at=f.T0 + H))

    report = run(store, policy)

    assert found(report) == {("missing-approval", early)}
    assert "with 0 of the 1 approval(s) it requires from alice (1 more signed after it verified" in \
        report.anomalies[0].message
    assert timely not in {a.sha256 for a in report.anomalies}


def test_a_vsa_dated_after_the_audit_is_out_of_order(store: Path, keys: dict[str, KeyPair], policy: Policy) -> None:
    future = datetime(2999, 1, 1, tzinfo=UTC)
    later = full_path(store, keys, b"verified in 2999", commit="a" * 40, stages=("stg",))
    f.publish(store, f.vsa(keys["prd"].private, name=APP, artifact=b"verified in 2999", stage="prd", at=future))

    report = run(store, policy)

    assert found(report) == {("out-of-order", later)}
    assert "verified sha256:" in report.anomalies[0].message
    assert "at 2999-01-01T00:00:00Z, after the time of this audit" in report.anomalies[0].message


def test_a_rebuild_that_does_not_match_is_non_reproducible(store: Path, keys: dict[str, KeyPair],
                                                           policy: Policy) -> None:
    good = full_path(store, keys, b"reproducible", commit="a" * 40, stages=())
    bad = full_path(store, keys, b"not reproducible", commit="b" * 40, stages=())
    f.publish(store, f.reproduction(keys["alice"].private, results={APP: (b"reproducible", "match")},
                                    at=f.T0 + H))
    f.publish(store, f.reproduction(keys["alice"].private, results={APP: (b"not reproducible", "differs")},
                                    at=f.T0 + H, commit="b" * 40))

    report = run(store, policy)

    assert found(report) == {("non-reproducible", bad)}
    assert "alice rebuilt 'dist/app.tar.gz' and got different bytes" in report.anomalies[0].message
    verdicts = {a.sha256: [r.result for r in a.reproductions] for a in report.artifacts}
    assert verdicts == {good: ["REPRODUCIBLE"], bad: ["NOT_REPRODUCIBLE"]}


def test_a_reproduction_is_judged_per_subject(store: Path, keys: dict[str, KeyPair], policy: Policy) -> None:
    """One rebuild of two artefacts, one of which differs: only that one is non-reproducible."""
    f.publish(store, f.provenance(keys["dev"].private, subjects={APP: b"same", "dist/lib.so": b"differs"}))
    f.publish(store, f.reproduction(keys["alice"].private, at=f.T0 + H, results={
        APP: (b"same", "match"), "dist/lib.so": (b"differs", "differs")}))
    assert found(run(store, policy)) == {("non-reproducible", sha(b"differs"))}


@pytest.mark.parametrize("verdict", ["NOT_REPRODUCIBLE", "not-reproducible", {"result": "NOT_REPRODUCIBLE"}])
def test_a_verdict_without_results_is_read_leniently(verdict: Any, store: Path, keys: dict[str, KeyPair],
                                                    policy: Policy) -> None:
    artefact = full_path(store, keys, b"rebuilt", stages=())
    statement = json.loads(f.reproduction(keys["alice"].private, results={APP: (b"rebuilt", "differs")},
                                          at=f.T0 + H).payload)
    del statement["predicate"]["results"]
    statement["predicate"]["verdict"] = verdict
    f.publish(store, f.sign(keys["alice"].private, statement), kind="reproduction")
    assert found(run(store, policy)) == {("non-reproducible", artefact)}


# --- scale and edges --------------------------------------------------------------------------------------

def test_worker_processes_give_the_same_report(store: Path, keys: dict[str, KeyPair], policy: Policy) -> None:
    for i in range(4):
        full_path(store, keys, b"artefact %d" % i, commit=f"{i:040x}")
    full_path(store, keys, b"skipper", commit="f" * 40, stages=("prd",))
    f.publish(store, f.provenance(keys["other"].private, subjects={"dist/evil": b"evil"}))
    inline = run(store, policy)
    reads = _Reads(store)
    pooled = audit(reads, policy=policy, workers=2, batch_size=2, progress=reads.done)
    assert pooled.to_dict() == inline.to_dict()
    assert sum(reads.counts) == inline.attestations == 15 and len(reads.counts) == 8
    assert reads.when_done[0] <= 12 < len(reads.read)  # streamed: at most five batches in flight, then one at a time


def test_a_fact_from_a_worker_shares_its_place_and_sha256s_with_the_audits_process(
        store: Path, keys: dict[str, KeyPair], policy: Policy) -> None:
    import pickle
    import sys

    from verify.audit import audit_setup

    full_path(store, keys, b"artefact", stages=("stg",))
    checker = audit_setup(policy, None).checker()
    for uri, data in files(store):
        place = "".join([uri[:5], uri[5:]])  # (a string of its own, as the listing's would be)
        for fact in checker.check_file(place, data):
            received = pickle.loads(pickle.dumps(fact))  # as a worker's result crosses to the audit
            assert received == fact and received.source is sys.intern(place)
            assert all(sha is sys.intern(sha) for _, sha in received.subjects) and received.subjects


def test_an_audit_choosing_its_workers_checks_the_first_new_files_itself_then_starts_them(
        store: Path, keys: dict[str, KeyPair], policy: Policy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With an index that judged the history before, the few files new since are checked in this process, sooner
    than processes start; past INLINE_FILES of them, workers. Without an index every file is checked: the workers
    start at once (once two batches are read)."""
    import os

    import verify.audit
    import verify.audit._workers
    from attest.audit_index import SqliteIndex
    from verify.audit.index import setup_digest

    setup = audit_setup(policy, None)
    digest = setup_digest(setup, policy_digest=policy.digest, version="test")

    def audited(reads: Iterator[tuple[str, bytes]], index: SqliteIndex | None, **options: Any) -> AuditReport:
        try:
            return audit(reads, policy=policy, setup=setup, index=index, batch_size=1, **options)
        finally:
            if index is not None:
                index.flush()
                index.close()

    full_path(store, keys, b"judged before", commit=f"{9:040x}")
    audited(files(store), SqliteIndex(tmp_path / "index.sqlite", digest), workers=1)
    known = len(list(files(store)))
    for i in range(4):
        full_path(store, keys, b"artefact %d" % i, commit=f"{i:040x}")
    reference = run(store, policy)
    monkeypatch.setattr(verify.audit, "INLINE_FILES", 4)
    started: list[int] = []
    pool = verify.audit._workers._pool
    reads = _Reads(store)
    monkeypatch.setattr(verify.audit._workers, "_pool", lambda *a: started.append(len(reads.read)) or pool(*a))

    report = audited(reads, SqliteIndex(tmp_path / "index.sqlite", digest), progress=reads.done)
    assert report.to_dict() == reference.to_dict() and len(reads.read) == known + 12
    if (os.cpu_count() or 1) >= 2:
        assert started and started[0] >= 4 + 2  # four new files checked here, then workers, two batches read

    started.clear()
    reads = _Reads(store)
    assert audited(reads, None).to_dict() == reference.to_dict()
    if (os.cpu_count() or 1) >= 2:
        assert started == [2]


def test_sources_are_read_as_they_are_checked(store: Path, keys: dict[str, KeyPair], policy: Policy) -> None:
    for i in range(5):
        full_path(store, keys, b"artefact %d" % i, commit=f"{i:040x}", stages=())
    reads = _Reads(store)
    audit(reads, policy=policy, workers=1, batch_size=1, progress=reads.done)
    assert reads.when_done == [2, 2, 3, 4, 5]  # the first batch is checked once a second is known to exist


class _Reads:
    """A store's files as an audit reads them, and how many had been read each time a batch was done."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.read: list[str] = []
        self.when_done: list[int] = []
        self.counts: list[int] = []

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        for uri, data in files(self.store):
            self.read.append(uri)
            yield uri, data

    def done(self, n: int) -> None:
        self.when_done.append(len(self.read))
        self.counts.append(n)


def test_the_garbage_collector_runs_rarely_during_an_audit_and_as_before_after_it(
        store: Path, keys: dict[str, KeyPair], policy: Policy) -> None:
    import gc

    from verify.audit import AUDIT_GC_THRESHOLDS

    full_path(store, keys, b"artefact", stages=())
    before = gc.get_threshold()
    assert before != AUDIT_GC_THRESHOLDS
    during: list[tuple[int, ...]] = []

    def sources(fail: bool) -> Iterator[tuple[str, bytes]]:
        for uri, data in files(store):
            during.append(gc.get_threshold())
            yield uri, data
        if fail:
            raise OSError("the store went away")

    audit(sources(False), policy=policy, workers=1)
    assert during and set(during) == {AUDIT_GC_THRESHOLDS}
    assert gc.get_threshold() == before
    with pytest.raises(OSError, match="went away"):
        audit(sources(True), policy=policy, workers=1)
    assert gc.get_threshold() == before  # restored when the audit stops on an error too


def test_no_cyclic_collection_runs_while_the_report_is_made_and_it_leaves_no_cycle(
        store: Path, keys: dict[str, KeyPair], policy: Policy) -> None:
    """The report's steps make no reference cycles, so collecting during them only cost time: the collector is
    off while they run, on again after, and finds nothing they left."""
    import gc

    full_path(store, keys, b"artefact", stages=())
    enabled: list[bool] = []

    class Mismatched(list[str]):  # read by the report's steps
        def __iter__(self) -> Iterator[str]:
            enabled.append(gc.isenabled())
            gc.collect()  # (what reading the files left: the report's own is what is looked for below)
            return super().__iter__()

    gc.collect()
    report = audit(files(store), policy=policy, workers=1, mismatched=Mismatched())
    assert enabled == [False] and gc.isenabled()
    assert report.artifacts and gc.collect() == 0
    gc.disable()
    try:
        audit(files(store), policy=policy, workers=1)
        assert not gc.isenabled()  # as it was: a caller that turned it off keeps it off
    finally:
        gc.enable()


def test_while_workers_check_this_process_collects_no_garbage_and_after_it_does_again(
        store: Path, keys: dict[str, KeyPair], policy: Policy) -> None:
    """What this process makes while the workers check (facts, records) lives until the report: the collector is
    off for that part, on again after; a check made in this process (before the workers) runs with it on."""
    import gc

    for n in range(6):
        full_path(store, keys, f"artefact {n}".encode(), commit=f"{n:040x}", stages=())
    enabled: list[bool] = []

    def sources() -> Iterator[tuple[str, bytes]]:
        for uri, data in files(store):
            enabled.append(gc.isenabled())
            yield uri, data

    report = audit(sources(), policy=policy, workers=2, batch_size=1)
    assert report.clean and len(report.artifacts) == 6
    # the first two batches are read before the workers start, then each one as a worker takes one
    assert enabled[:2] == [True, True] and len(enabled) == 6 and not any(enabled[2:]) and gc.isenabled()


_SERVER_AT_FIRST_READ = """
import os, sys
from pathlib import Path
from verify.audit import audit
from verify.policy_file import load_policy

from multiprocessing import forkserver

seen = []
def sources():
    for path in sorted(Path(sys.argv[1]).rglob("*.intoto.jsonl")):
        seen.append(forkserver._forkserver._forkserver_pid is not None)  # (started, if not yet running its own program)
        yield str(path), path.read_bytes()

index = None
if sys.argv[3] == "warm":
    class Warm:  # an index that has judged something: few files are expected to be checked
        def judgements(self):
            return {"0" * 64: ("", "[]", "")}
        def __getattr__(self, name):
            raise AssertionError(name)
    index = Warm()
try:
    audit(sources(), policy=load_policy(Path(sys.argv[2])), workers=2, batch_size=1, index=index)
except AssertionError:
    pass
print(seen[0])
"""


@pytest.mark.skipif(sys.platform != "linux", reason="forkserver, the start method on Linux")
def test_an_audit_that_checks_every_file_starts_the_workers_server_before_it_reads_one(
        store: Path, keys: dict[str, KeyPair], tmp_path: Path) -> None:
    """Its imports then run on another core while the first files are read; an audit an index answers does not."""
    for n in range(3):
        full_path(store, keys, f"artefact {n}".encode(), commit=f"{n:040x}", stages=())
    write_policy(tmp_path, keys)
    said = {}
    for run_as in ("cold", "warm"):
        done = subprocess.run([sys.executable, "-c", _SERVER_AT_FIRST_READ, str(store), str(tmp_path / "policy.yaml"),
                               run_as], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2])
        said[run_as] = done.stdout.strip().splitlines()[-1]
    assert said == {"cold": "True", "warm": "False"}


_SERVER_TOLD_OF_A_CTRL_C = """
import os, signal, sys, time
from pathlib import Path
from verify.audit._workers import start_server

from multiprocessing import forkserver

start_server()
server = forkserver._forkserver._forkserver_pid
for _ in range(1000):  # its own program once it runs (not this one's, forked, before its exec)
    if b"multiprocessing.forkserver" in Path(f"/proc/{server}/cmdline").read_bytes():
        break
    time.sleep(0.001)
os.kill(server, signal.SIGINT)  # at once: while it imports the checking code
time.sleep(1)
print(os.waitpid(server, os.WNOHANG) == (0, 0))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc (Linux)")
def test_the_workers_server_is_deaf_to_ctrl_c_from_its_start(tmp_path: Path) -> None:
    """A ^C reaches every process of the terminal's group: the audit says one sentence and stops its workers; the
    server they are forked from, told while it imports the checking code, would die printing a traceback."""
    done = subprocess.run([sys.executable, "-c", _SERVER_TOLD_OF_A_CTRL_C], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).parents[2], timeout=60)
    assert done.stdout.split() == ["True"] and "Traceback" not in done.stderr, done.stderr


def test_a_workers_server_that_cannot_start_early_fails_no_audit_that_needs_no_worker(
        store: Path, keys: dict[str, KeyPair], policy: Policy, monkeypatch: pytest.MonkeyPatch) -> None:
    from multiprocessing import forkserver

    def refused() -> None:
        raise PermissionError("no socket may be made here")

    full_path(store, keys, b"small", stages=())
    monkeypatch.setattr(forkserver, "ensure_running", refused)
    report = audit(files(store), policy=policy, workers=2)  # (one batch: checked in this process)
    assert report.clean and len(report.artifacts) == 1


def test_what_is_made_while_the_collector_is_off_is_old_when_it_is_on_again() -> None:
    """Not one young generation of everything made meanwhile, for the next collection to look through at once."""
    import gc

    from verify.audit import no_collections

    assert gc.isenabled()
    with no_collections():
        kept = [[n] for n in range(50_000)]
        assert gc.get_count()[0] > 50_000
    assert gc.isenabled() and gc.get_count()[0] < gc.get_threshold()[0]
    assert kept[-1] == [49_999]


def test_printable_spells_out_what_could_fool_a_terminal_or_a_reader() -> None:
    assert printable("dist/app.tar.gz") == "dist/app.tar.gz"
    assert printable("a\x1b[31mred\x07") == "a\\x1b[31mred\\x07"
    assert printable("evil\u202egpj.exe") == "evil\\u202egpj.exe"
    assert printable("line\nbreak") == "line\\x0abreak"


def test_every_anomaly_kind_is_explained() -> None:
    assert {"untrusted-signer", "bad-signature", "malformed", "skipped-stage", "out-of-order", "disallowed-source",
            "dirty-build", "non-reproducible", "missing-lockfile", "tampered-artifact"} <= set(ANOMALY_KINDS)
    # every kind the provenance rules can give (verify.rules) is explained too
    assert {"disallowed-source", "disallowed-commit", "disallowed-builder", "insufficient-level",
            "unexpected-parameters", "missing-lockfile", "dirty-build"} <= set(ANOMALY_KINDS)
    assert all(text and not text.endswith(".") for text in ANOMALY_KINDS.values())


# --- rotation and revocation: the same rule as verify -------------------------------------------------

def test_revoked_or_expired_signers_count_for_nothing(store: Path, keys: dict[str, KeyPair], policy: Policy) -> None:
    from dataclasses import replace

    built = full_path(store, keys, b"rotated", stages=())
    assert run(store, policy).clean
    dev = policy.identities["dev-build"]
    expired = replace(policy, identities={**policy.identities,
                                          "dev-build": replace(dev, not_after=datetime(2000, 1, 1).astimezone())})
    assert ("untrusted-signer", built) in found(run(store, expired))
    revoked = replace(policy, revoked=frozenset({dev.keys[0].fingerprint}))
    assert ("untrusted-signer", built) in found(run(store, revoked))


# --- stored artefacts: their bytes against their address ------------------------------------------------

def test_stored_bytes_that_are_not_their_address_are_a_tampered_artifact(store: Path, keys: dict[str, KeyPair],
                                                                         policy: Policy) -> None:
    built = full_path(store, keys, b"built", stages=())
    where = f"{store}/sha256/{built}/artifact/{APP}"
    stored: list[StoredArtifact] = [
        (where, built, sha(b"swapped")),
        (f"{store}/sha256/{sha(b'kept')}/artifact/{APP}", sha(b"kept"), sha(b"kept")),
        (f"{store}/sha256/{sha(b'fifo')}/artifact/{APP}", sha(b"fifo"),
         MalformedEvidence("artefact x is not a regular file; the store was tampered with")),
        (f"{store}/sha256/NOT-HEX/artifact/{APP}", "NOT-HEX", sha(b"junk"))]

    report = audit(files(store), policy=policy, workers=1, artifacts=stored)

    assert found(report) == {("tampered-artifact", built), ("tampered-artifact", sha(b"fifo")),
                             ("tampered-artifact", None)}
    by_sha = {a.sha256: a for a in report.anomalies}
    assert by_sha[built].source == where and by_sha[built].step == ""
    assert f"hash to sha256:{sha(b'swapped')[:12]}" in by_sha[built].message
    assert "cannot be read to check them against their address: artefact x is not a regular file" in \
        by_sha[sha(b"fifo")].message
    assert "an address that names no sha256 ('NOT-HEX'" in by_sha[None].message
    histories = {a.sha256: a for a in report.artifacts}
    assert [(c.status, c.sha256) for c in histories[built].stored] == [("tampered", sha(b"swapped"))]
    assert [a.kind for a in histories[built].anomalies] == ["tampered-artifact"]
    assert histories[built].names == (APP,)  # the attested history is still there, beside the anomaly
    # an artefact stored without any attestation is listed, and its bytes checked: nothing more
    assert [(c.status, c.sha256) for c in histories[sha(b"kept")].stored] == [("verified", sha(b"kept"))]
    assert histories[sha(b"kept")].anomalies == () and histories[sha(b"kept")].names == ()
    assert histories[sha(b"fifo")].to_dict()["stored"] == [{"uri": stored[2][0], "sha256": None,
                                                             "status": "unreadable"}]
    assert report.stored == 4 and report.to_dict()["summary"]["stored"] == 4


def test_stored_artefacts_are_read_after_the_attestations_and_one_at_a_time(store: Path, keys: dict[str, KeyPair],
                                                                            policy: Policy) -> None:
    full_path(store, keys, b"one", stages=())
    events: list[str] = []

    def sources() -> Iterator[tuple[str, bytes]]:
        for uri, data in files(store):
            events.append("attestation")
            yield uri, data

    def stored() -> Iterator[tuple[str, str, str]]:
        for i in range(3):
            events.append("artefact")
            yield f"store/sha256/{sha(b'one')}/artifact/{i}", sha(b"one"), sha(b"one")

    report = audit(sources(), policy=policy, workers=1, artifacts=stored())
    assert events == ["attestation", "artefact", "artefact", "artefact"] and report.clean and report.stored == 3


# --- release manifests ----------------------------------------------------------------------------------

def release_manifest(key: Path, *, change: Any = None, name: str = "2024.05.02-1") -> Envelope:
    from attest.summaries import Component, release_statement

    statement = release_statement(name=name, created_at=f.T0 + 24 * H, components=[
        Component(name="infra", subjects=[("infra/stack.zip", f.digests(b"infra"))], provenance_sha256="ab" * 32,
                  source=f.REPO, commit="1" * 40),
        Component(name="app", subjects=[(APP, f.digests(b"app"))], provenance_sha256="cd" * 32, source=None,
                  commit=None)])
    if change is not None:
        change(statement)
    return f.sign(key, statement)


def test_a_release_by_a_release_signer_is_listed_and_named_on_each_artefact(store: Path, keys: dict[str, KeyPair],
                                                                            policy: Policy) -> None:
    from dataclasses import replace

    from verify.policy import ReleaseRule

    releases = replace(policy, releases=ReleaseRule(signed_by=("alice",)))
    full_path(store, keys, b"app", stages=())
    f.publish(store, release_manifest(keys["alice"].private), kind="release")
    f.publish(store, release_manifest(keys["bob"].private, name="by bob"), kind="release")

    report = run(store, releases)

    assert found(report) == {("untrusted-signer", sha(b"infra")), ("untrusted-signer", sha(b"app"))}
    assert all("the release manifest 'by bob' is signed by bob, but releases.signed-by allows alice" in a.message
               for a in report.anomalies)
    (listed,) = report.releases
    assert (listed.name, listed.created, listed.signers) == ("2024.05.02-1", f.T0 + 24 * H, ("alice",))
    assert listed.to_dict()["components"] == [
        {"name": "infra", "source": f.REPO, "commit": "1" * 40, "provenance": {"sha256": "ab" * 32},
         "artifacts": [{"name": "infra/stack.zip", "sha256": sha(b"infra")}], "needs": []},
        {"name": "app", "source": None, "commit": None, "provenance": {"sha256": "cd" * 32},
         "artifacts": [{"name": APP, "sha256": sha(b"app")}], "needs": []}]
    histories = {a.sha256: a for a in report.artifacts}
    for artefact in (b"infra", b"app"):
        assert [(e.kind, e.result, e.signers) for e in histories[sha(artefact)].releases] == \
            [("release", "2024.05.02-1", ("alice",))]
    assert histories[sha(b"app")].to_dict()["releases"][0]["release"] == "2024.05.02-1"
    assert report.to_dict()["releases"][0]["name"] == "2024.05.02-1"
    # a policy without releases trusts no manifest
    assert found(run(store, policy)) == {("untrusted-signer", sha(b"infra")), ("untrusted-signer", sha(b"app"))}
    assert run(store, policy).releases == ()


def _set(path: str, value: Any) -> Any:
    def change(statement: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = statement["predicate"]
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        key: Any = int(last) if last.isdigit() else last
        if value is KeyError:
            del node[key]
        else:
            node[key] = value
    return change


@pytest.mark.parametrize(("change", "words"), [
    (_set("name", ""), "the release manifest has no name"),
    (_set("timeCreated", KeyError), "has no timeCreated"),
    (_set("timeCreated", "yesterday"), "timeCreated 'yesterday' is not an RFC 3339 time"),
    (_set("components", []), "names no components"),
    (_set("components.0", "infra"), "component 0 has no name"),
    (_set("components.0.provenance", {}), "component 'infra' names no provenance sha256"),
    (_set("components.0.artifacts", []), "component 'infra' names no artefacts"),
    (_set("components.0.artifacts.0.digest", {"sha256": "ABC"}), "has an artefact without a name and a sha256"),
    (_set("components.0.artifacts.0.digest", {"sha256": "0" * 64}), "names sha256:000000000000, which is not a "
                                                                    "subject of the manifest"),
], ids=["name", "no-time", "bad-time", "no-components", "component", "provenance", "artefacts", "sha256",
        "not-a-subject"])
def test_a_malformed_release_manifest(change: Any, words: str, store: Path, keys: dict[str, KeyPair],
                                      policy: Policy) -> None:
    from dataclasses import replace

    from verify.policy import ReleaseRule

    f.publish(store, release_manifest(keys["alice"].private, change=change), kind="release")
    report = run(store, replace(policy, releases=ReleaseRule(signed_by=("alice",))))
    assert {a.kind for a in report.anomalies} == {"malformed"} and report.releases == ()
    assert all(words in a.message for a in report.anomalies), report.anomalies


# --- a reproduction confirms the build it rebuilt, and no other --------------------------------------------

def _line_sha256(path: Path) -> str:

    return hashlib.sha256(path.read_bytes().rstrip(b"\n")).hexdigest()


def test_a_reproduction_of_the_build_s_commit_and_provenance_confirms_it(store: Path, keys: dict[str, KeyPair],
                                                                        policy: Policy) -> None:
    built = f.publish(store, f.provenance(keys["dev"].private, subjects={APP: b"v1"}, commit="a" * 40))
    f.publish(store, f.reproduction(keys["alice"].private, results={APP: (b"v1", "match")}, at=f.T0 + H,
                                    commit="a" * 40, provenance=_line_sha256(built)))
    report = run(store, policy)
    assert found(report) == set()
    assert [r.result for r in report.artifacts[0].reproductions] == ["REPRODUCIBLE"]


@pytest.mark.parametrize("other", ["commit", "provenance"])
def test_a_reproduction_of_another_build_confirms_nothing(store: Path, keys: dict[str, KeyPair], policy: Policy,
                                                          other: str) -> None:
    """A builder that claims the reviewed commit, while the rebuilder honestly confirmed bytes from another one: the
    rebuild says nothing of the build the provenance claims."""
    built = f.publish(store, f.provenance(keys["dev"].private, subjects={APP: b"v1"}, commit="a" * 40))
    bound = {"commit": "b" * 40} if other == "commit" else {"commit": "a" * 40, "provenance": "cd" * 32}
    f.publish(store, f.reproduction(keys["alice"].private, results={APP: (b"v1", "match")}, at=f.T0 + H, **bound))
    report = run(store, policy)
    assert found(report) == {("non-reproducible", sha(b"v1"))}
    words = "from commit bbbbbbbbbbbb" if other == "commit" else "from provenance sha256:cdcdcdcdcdcd"
    assert words in report.anomalies[0].message and "confirms no build of it" in report.anomalies[0].message
    assert built.exists()


def test_a_rebuild_s_result_is_read_by_name_and_digest(store: Path, keys: dict[str, KeyPair], policy: Policy) -> None:
    """Two subjects of one name (two platforms' builds of dist/app.tar.gz), one rebuilt alike, one not: each gets
    its own verdict (the first result of the name used to stand for both)."""
    f.publish(store, f.provenance(keys["dev"].private, subjects={APP: b"amd64"}, commit="a" * 40))
    f.publish(store, f.provenance(keys["dev"].private, subjects={APP: b"arm64"}, commit="a" * 40,
                                  invocation="build/2"))
    statement = json.loads(f.reproduction(keys["alice"].private, results={APP: (b"amd64", "match")},
                                          at=f.T0 + H).payload)
    differs = dict(statement["predicate"]["results"][0], status="differs",
                   expected=f.digests(b"arm64"), rebuilt={"sha256": "0" * 64})
    statement["predicate"]["results"].append(differs)
    statement["predicate"]["verdict"] = "NOT_REPRODUCIBLE"
    statement["subject"].append({"name": APP, "digest": f.digests(b"arm64")})
    f.publish(store, f.sign(keys["alice"].private, statement), kind="reproduction")
    verdicts = {a.sha256: [r.result for r in a.reproductions] for a in run(store, policy).artifacts}
    assert verdicts[sha(b"amd64")] == ["REPRODUCIBLE"] and verdicts[sha(b"arm64")] == ["NOT_REPRODUCIBLE"]


def test_a_provenance_without_finished_on_is_timed_by_started_on(keys: dict[str, KeyPair], tmp_path: Path,
                                                                  store: Path) -> None:
    """finishedOn and startedOn are both optional in SLSA v1: as the gate does, the audit times a build by
    finishedOn, else startedOn (else a keyless bundle's signed time), so an approval after it counts."""
    policy = write_policy(tmp_path, keys, approvals="    require-approvals: {count: 1, signed-by: [alice]}\n")
    statement = json.loads(f.provenance(keys["dev"].private, subjects={APP: b"started"}, commit="a" * 40).payload)
    del statement["predicate"]["runDetails"]["metadata"]["finishedOn"]  # started at T0 - 5 min
    made = published(store, f.sign(keys["dev"].private, statement))
    for i, stage in enumerate(("stg", "prd"), start=1):
        f.publish(store, f.vsa(keys[stage].private, name=APP, artifact=b"started", stage=stage, at=f.T0 + i * H,
                               inputs=made))
    f.publish(store, f.approval(keys["alice"].private, name=APP, artifact=b"started", stage="prd",
                                approver="alice@acme", at=f.T0 + H))

    assert found(run(store, policy)) == set()


class _DyingSetup(_Setup):
    """A setup whose worker processes die as they start (as the out-of-memory killer ends one)."""

    def checker(self) -> Any:
        import os

        os._exit(9)


def test_a_worker_killed_mid_audit_is_a_sentence_and_no_report(store: Path, keys: dict[str, KeyPair],
                                                              policy: Policy) -> None:
    """A worker process killed (SIGKILL from the out-of-memory killer) was BrokenProcessPool: exit 70, "a bug in
    attest". It is a ConfigError (exit 3) saying what to do, and nothing is reported from part of the files."""
    from dataclasses import fields

    setup = audit_setup(policy, None)
    dying = _DyingSetup(**{f.name: getattr(setup, f.name) for f in fields(setup)})
    sources = [(f"f{n}.intoto.jsonl", b"{}") for n in range(8)]
    with pytest.raises(ConfigError, match="ended abruptly"):
        list(_facts(iter(sources), dying, workers=2, batch_size=1, inline=0))
