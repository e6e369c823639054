"""Deployment records (issue 19, part 3): the reader (verify.formats.deployment), the policy's ``deployed-by``, and
the two questions verify.path.deployments answers before ``attest deploy record`` signs."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.verify import _factory as f
from verify.errors import MalformedEvidence, PolicyError, RequestError, UnknownEvidence
from verify.formats.deployment import DEPLOYMENT_V1, Deployment, Invocation, read_deployment
from verify.formats.evidence import load_evidence
from verify.formats.release import RELEASE_V1
from verify.formats.statement import APPROVAL_V1, parse_statement
from verify.path.deployments import deployer, release_to_record
from verify.policy import Policy, ProvenanceRules, ReleaseRule, StageRule
from verify.policy_file import load_policy
from verify.trust import Identity, PublicKey, load_public_key

INFRA = [("infra/stack.zip", {"sha256": "1" * 64, "blake3": "2" * 64}), ("infra/params.json", {"sha256": "3" * 64})]
MANIFEST = "ab" * 32


def _predicate(**changes: Any) -> dict[str, Any]:
    """A well-formed predicate with ``changes`` (a value of None removes the field)."""
    predicate: dict[str, Any] = {
        "environment": "stg", "release": {"name": "r1", "digest": {"sha256": MANIFEST}}, "component": "infra",
        "status": "succeeded", "timeDeployed": "2026-11-28T10:00:00Z", "kind": "deploy",
        "invocation": {"platform": "codepipeline", "id": "3f1c-e1"}, "replaces": "cd" * 32}
    predicate.update(changes)
    return {k: v for k, v in predicate.items() if v is not None}


def _read(predicate: dict[str, Any], subjects: list[tuple[str, dict[str, str]]] | None = None,
          predicate_type: str = DEPLOYMENT_V1) -> Deployment:
    statement = f.statement(INFRA if subjects is None else subjects, predicate_type=predicate_type,
                            predicate=predicate)
    return read_deployment(parse_statement(f.payload_of(statement)))


# --- the reader ---------------------------------------------------------------------------------------------

def test_a_record_reads_with_every_field() -> None:
    record = _read(_predicate())
    assert (record.environment, record.release, record.release_sha256, record.component) == ("stg", "r1", MANIFEST,
                                                                                             "infra")
    assert (record.status, record.kind, record.replaces) == ("succeeded", "deploy", "cd" * 32)
    assert record.time == datetime(2026, 11, 28, 10, tzinfo=UTC)
    assert record.invocation == Invocation(platform="codepipeline", id="3f1c-e1")
    assert [(s.name, dict(s.digest)) for s in record.artifacts] == INFRA


def test_the_optional_fields_may_be_left_out_and_unknown_ones_are_ignored() -> None:
    record = _read(_predicate(invocation=None, replaces=None, note="ignored, as read_vsa ignores what it does not "
                                                                   "know", status="failed", kind="rollback"))
    assert (record.invocation, record.replaces, record.status, record.kind) == (None, None, "failed", "rollback")


def test_another_predicate_type_is_unknown_evidence() -> None:
    with pytest.raises(UnknownEvidence, match="is not a deployment record"):
        _read(_predicate(), predicate_type=APPROVAL_V1)


@pytest.mark.parametrize(("changes", "words"), [
    pytest.param({"environment": None}, "the deployment record names no environment", id="no-environment"),
    pytest.param({"environment": ""}, "names no environment", id="empty-environment"),
    pytest.param({"environment": ["stg"]}, "names no environment", id="environment-a-list"),
    pytest.param({"release": None}, "for 'stg' names no release", id="no-release"),
    pytest.param({"release": "r1"}, "names no release (an object with a name and a digest)", id="release-a-string"),
    pytest.param({"release": {"digest": {"sha256": MANIFEST}}}, "names no release name", id="release-without-name"),
    pytest.param({"release": {"name": "r1"}}, "names release 'r1' without a digest.sha256", id="release-no-digest"),
    pytest.param({"release": {"name": "r1", "digest": {"sha256": MANIFEST.upper()}}}, "without a digest.sha256 of 64",
                 id="release-upper-case-digest"),
    pytest.param({"release": {"name": "r1", "digest": {"sha256": MANIFEST[:63]}}}, "without a digest.sha256",
                 id="release-short-digest"),
    pytest.param({"release": {"name": "r1", "digest": MANIFEST}}, "without a digest.sha256", id="release-digest-text"),
    pytest.param({"component": None}, "names no component", id="no-component"),
    pytest.param({"component": 7}, "names no component", id="component-a-number"),
    pytest.param({"status": None}, "has status None; expected one of succeeded, failed", id="no-status"),
    pytest.param({"status": "SUCCEEDED"}, "has status 'SUCCEEDED'; expected one of succeeded, failed",
                 id="status-upper-case"),
    pytest.param({"status": "x" * 100}, "has status 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...; expected",
                 id="status-long-is-cut-short"),
    pytest.param({"timeDeployed": None}, "has no timeDeployed", id="no-time"),
    pytest.param({"timeDeployed": "2026-11-28T10:00:00"}, "timeDeployed '2026-11-28T10:00:00' is not an RFC 3339 time",
                 id="time-without-zone"),
    pytest.param({"timeDeployed": 1764324000}, "timeDeployed is not an RFC 3339 time string", id="time-a-number"),
    pytest.param({"kind": None}, "has kind None; expected one of deploy, rollback, hotfix", id="no-kind"),
    pytest.param({"kind": "canary"}, "has kind 'canary'", id="unknown-kind"),
    pytest.param({"invocation": "run 42"}, "has an invocation that is not an object", id="invocation-a-string"),
    pytest.param({"invocation": {"id": "42"}}, "names no invocation platform", id="invocation-without-platform"),
    pytest.param({"invocation": {"platform": "codebuild", "id": ""}}, "names no invocation id",
                 id="invocation-empty-id"),
    pytest.param({"replaces": "record 1"}, "has replaces 'record 1', which is not a sha256", id="replaces-text"),
    pytest.param({"replaces": ["cd" * 32]}, "which is not a sha256", id="replaces-a-list"),
])
def test_each_malformed_field_is_refused_in_one_sentence(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(MalformedEvidence) as refused:
        _read(_predicate(**changes))  # a change to None leaves the field out
    assert words in str(refused.value), str(refused.value)


@pytest.mark.parametrize("subjects", [
    pytest.param([("infra/stack.zip", {"blake3": "2" * 64})], id="no-sha256"),
    pytest.param([("infra/stack.zip", {"sha256": "1" * 63})], id="short-sha256"),
    pytest.param([("", {"sha256": "1" * 64})], id="no-name"),
])
def test_a_subject_without_a_name_and_a_sha256_is_refused(subjects: list[tuple[str, dict[str, str]]]) -> None:
    with pytest.raises(MalformedEvidence, match="has a subject without a name and a sha256 of 64 hex digits"):
        _read(_predicate(), subjects=subjects)


# --- the policy: stages.<env>.deployed-by ---------------------------------------------------------------------

def _policy_file(tmp_path: Path, stages: str) -> Path:
    key = f.write_pem(tmp_path, "k.pub.pem", f.private_key())
    path = tmp_path / "policy.yaml"
    path.write_text(f"version: 1\nidentities:\n  dev: {{keys: [{key}]}}\n  ops: {{keys: [{key}]}}\n"
                    f"provenance: {{signed-by: [dev]}}\nstages:\n{stages}")
    return path


def test_deployed_by_is_read_onto_the_stage(tmp_path: Path) -> None:
    policy = load_policy(_policy_file(tmp_path, "  stg: {deployed-by: [ops, dev]}\n  prd: {verifier: dev}\n"))
    assert policy.stages["stg"].deployed_by == ("ops", "dev")
    assert policy.stages["prd"].deployed_by == ()


@pytest.mark.parametrize(("stages", "words"), [
    ("  stg: {deployed-by: [nobody]}\n", "stages.stg.deployed-by: names identity 'nobody', which 'identities' does "
                                         "not define"),
    ("  stg: {deployed-by: []}\n", "stages.stg.deployed-by: must not be empty"),
    ("  stg: {deployed-by: [{name: ops}]}\n", "stages.stg.deployed-by: must be a list of non-empty strings"),
    ("  stg: {deployed_by: [ops]}\n", "deployed_by"),
])
def test_a_bad_deployed_by_is_a_policy_error(tmp_path: Path, stages: str, words: str) -> None:
    with pytest.raises(PolicyError) as refused:
        load_policy(_policy_file(tmp_path, stages))
    assert words in str(refused.value), str(refused.value)


# --- verify.path.deployments: who may sign, which release ------------------------------------------------------

def _key(index: int) -> PublicKey:
    return load_public_key(f.public_pem(f.private_key("p256", index)), name=f"key{index}")


def _policy(*, releases: bool = True, window: tuple[datetime, datetime] | None = None) -> Policy:
    ops = Identity(name="ops", keys=(_key(11),), not_before=window[0] if window else None,
                   not_after=window[1] if window else None)
    identities = {"dev": Identity(name="dev", keys=(_key(10),)), "ops": ops,
                  "rm": Identity(name="rm", keys=(_key(12),))}
    return Policy(identities=identities, provenance=ProvenanceRules(signed_by=("dev",)),
                  stages={"stg": StageRule(name="stg", deployed_by=("ops",)), "prd": StageRule(name="prd")},
                  releases=ReleaseRule(signed_by=("rm",)) if releases else None)


def test_the_deployer_is_the_identity_whose_key_signs() -> None:
    assert deployer(_policy(), "stg", _key(11)) == "ops"


@pytest.mark.parametrize(("environment", "key", "words"), [
    (" ", 11, "--env is empty (an unset pipeline variable?)"),
    ("qa", 11, "--env 'qa' is not a stage of the policy (its stages: stg, prd)"),
    ("prd", 11, "stage 'prd' of the policy names no identity that may sign its deployment records "
                "(stages.prd.deployed-by)"),
    ("stg", 10, "--signer's public key is not a key of an identity that may sign deployment records for 'stg' "
                "(stages.stg.deployed-by: ops)"),
])
def test_a_deployer_the_policy_does_not_allow_is_a_usage_error(environment: str, key: int, words: str) -> None:
    with pytest.raises(RequestError) as refused:
        deployer(_policy(), environment, _key(key))
    assert words in str(refused.value), str(refused.value)


def test_a_deployer_outside_its_window_is_refused() -> None:
    past = datetime.now(UTC) - timedelta(days=2)
    with pytest.raises(RequestError, match="--signer's key may not sign for 'ops' now"):
        deployer(_policy(window=(past, past + timedelta(days=1))), "stg", _key(11))


def _manifest(*, signer: int = 12, components: tuple[str, ...] = ("infra", "app"), name: str = "r1") -> bytes:
    parts = [{"name": c, "artifacts": [{"name": f"{c}.zip", "digest": {"sha256": hashlib.sha256(c.encode())
                                                                        .hexdigest()}}],
              "provenance": {"digest": {"sha256": "ab" * 32}}, "source": "https://github.com/acme/x",
              "commit": f.COMMIT} for c in components]
    statement = f.statement([(a["name"], a["digest"]) for p in parts for a in p["artifacts"]],
                            predicate_type=RELEASE_V1,
                            predicate={"name": name, "timeCreated": "2026-11-28T09:00:00Z", "components": parts})
    return f.json_line(f.envelope_dict(f.payload_of(statement), [f.private_key("p256", signer)]))


def test_the_release_to_record_is_the_signed_one_with_its_component() -> None:
    line = _manifest()
    policy = _policy()
    found = release_to_record(load_evidence(line, source="release.intoto.jsonl"), policy, policy.trust_run(),
                              component="app")
    assert (found.name, found.signer, found.component.name) == ("r1", "rm", "app")
    assert found.sha256 == hashlib.sha256(line.strip()).hexdigest()
    assert [a.name for a in found.component.artifacts] == ["app.zip"]


@pytest.mark.parametrize(("line", "component", "error", "words"), [
    pytest.param(_manifest(), "db", RequestError, "--component 'db' is not a component of release 'r1' (its "
                                                  "components: infra, app)", id="unknown-component"),
    pytest.param(_manifest(signer=10), "infra", RequestError, "the release manifest is not signed by a release signer "
                                                              "of the policy (releases.signed-by: rm)",
                 id="signed-by-another-identity"),
    pytest.param(f.json_line(f.envelope_dict(f.payload_of(f.statement()), [f.private_key("p256", 12)])), "infra",
                 MalformedEvidence, "holds no release statement", id="a-provenance-not-a-release"),
    pytest.param(b'{"payloadType": 1}\n', "infra", MalformedEvidence, "release.intoto.jsonl", id="not-an-envelope"),
    pytest.param(_manifest(name=""), "infra", MalformedEvidence, "the release manifest has no name",
                 id="signed-but-malformed"),
])
def test_a_release_that_may_not_be_recorded_is_refused(line: bytes, component: str, error: type[Exception],
                                                       words: str) -> None:
    policy = _policy()
    with pytest.raises(error) as refused:
        release_to_record(load_evidence(line, source="release.intoto.jsonl"), policy, policy.trust_run(),
                          component=component)
    assert words in str(refused.value), str(refused.value)


def test_a_policy_without_release_signers_records_no_release() -> None:
    policy = _policy(releases=False)
    with pytest.raises(PolicyError, match="names no release signers"):
        release_to_record(load_evidence(_manifest(), source="m"), policy, policy.trust_run(), component="infra")
