"""Issue 19, part 6: rollbacks and hotfixes, the two ways a release reaches prd besides the ordinary gate.

``--rollback`` passes a release that ran in the environment before (a succeeded record of each component's
very artefacts there), however the stage's other requirements stand now; ``--hotfix`` passes a release
with the approvals ``stages.prd.hotfix.require-approvals`` asks of its manifest, without stg. Both keep the
provenance rules and the order of the components, and ``attest audit`` lists every hotfix and rollback.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.conftest import run_attest
from tests.conftest_aws import MotoEnv
from tests.path_world import PathWorld, make_world, policy_text
from tests.sigstore_infra.fixture import SigstoreLocal

HOTFIX = "require-deployed: [stg]\n    hotfix: {require-approvals: {count: 2, signed-by: [alice, bob]}}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> PathWorld:
    made = make_world(tmp_path_factory.mktemp("kinds"))
    made.policy.write_text(policy_text(made.keys, prd=HOTFIX))
    return made


def _said(result: object) -> str:
    err: str = result.err
    return err.strip().splitlines()[-1] if err.strip() else ""


def _ship(world: PathWorld, store: Path, release: str, tmp: Path, envs: tuple[str, ...] = ("stg", "prd")) -> None:
    for env in envs:
        for component in ("infra", "app"):
            ran = world.deploy(store, env, release, component, tmp=tmp)
            assert ran.code == 0, ran


# --- rollback ----------------------------------------------------------------------------------------------

def test_a_release_that_ran_in_prd_may_go_back_there_whatever_prd_requires_now(world: PathWorld,
                                                                               tmp_path: Path) -> None:
    store = world.copy(tmp_path)
    _ship(world, store, "r1", tmp_path)
    _ship(world, store, "r3", tmp_path)
    # since then, prd requires an approval r1 never had: the ordinary gate refuses r1
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text(world.keys, prd="require-deployed: [stg]\n    require-approvals: "
                                                  "{count: 1, signed-by: [carol]}"))
    assert world.gate(store, "prd", "r1", policy=policy).code == 1
    passed = world.gate(store, "prd", "r1", "--rollback", "--format", "json", policy=policy)
    assert passed.code == 0, passed
    check = next(c for c in json.loads(passed.out)["checks"] if c["check"] == "rollback")
    assert check["expected"] == {"ran-in": "prd"}
    assert {(f["component"], f["release"], f["signer"]) for f in check["found"]} == {
        ("infra", "r1", "prd-deploy"), ("app", "r1", "prd-deploy")}
    # the rollback is recorded (infra first: the order holds for a rollback too), and prd runs r1 again
    app_first = world.deploy(store, "prd", "r1", "app", more=("--kind", "rollback"), tmp=tmp_path)
    assert app_first.code == 1 and "app needs infra" in _said(app_first), app_first
    for component in ("infra", "app"):
        ran = world.deploy(store, "prd", "r1", component, more=("--kind", "rollback"), tmp=tmp_path)
        assert ran.code == 0, ran
    shown = json.loads(world.status(store, "--env", "prd", "--format", "json").out)
    assert {c: (e["release"], e["kind"]) for c, e in shown["environments"]["prd"].items()} == {
        "infra": ("r1", "rollback"), "app": ("r1", "rollback")}


def test_a_release_that_never_ran_in_prd_is_no_rollback(world: PathWorld, tmp_path: Path) -> None:
    store = world.copy(tmp_path)
    _ship(world, store, "r1", tmp_path)
    assert world.deploy(store, "stg", "r2", "app", tmp=tmp_path).code == 0
    refused = world.gate(store, "prd", "r2", "--rollback")
    assert refused.code == 1
    assert "release r2 never ran in prd: no succeeded deployment record of its app artefacts there" in _said(refused)
    assert "require-deployed" not in _said(refused)  # a rollback is no ordinary deployment: prd's rule is not why
    # r2's infra is r1's, which ran in prd: that stack alone may go back
    assert world.gate(store, "prd", "r2", "--rollback", "--component", "infra").code == 0
    # a failed prd record is not "ran there"
    assert world.deploy(store, "prd", "r3", "infra", status="failed", tmp=tmp_path).code == 0
    assert world.gate(store, "prd", "r3", "--rollback", "--component", "infra").code == 1


@pytest.mark.parametrize(("args", "words"), [
    pytest.param(("--emit-vsa", "vsa.json", "--signer", "k"), "a rollback passes without them, so it signs no VSA",
                 id="emit-vsa"),
])
def test_rollback_usage(world: PathWorld, tmp_path: Path, args: tuple[str, ...], words: str) -> None:
    result = world.gate(world.copy(tmp_path), "prd", "r1", "--rollback", *args)
    assert result.code == 2 and words in _said(result), result


def test_rollback_needs_a_release_and_a_stage(world: PathWorld, tmp_path: Path) -> None:
    store = world.copy(tmp_path)
    no_stage = run_attest("verify", "--release", world.release("r1"), "--store", store, "--policy", world.policy,
                          "--rollback")
    assert no_stage.code == 2 and "--rollback goes with --release MANIFEST and --stage ENV" in _said(no_stage)


# --- hotfix ------------------------------------------------------------------------------------------------

def test_a_hotfix_reaches_prd_without_stg_with_two_approvals_of_its_manifest(world: PathWorld,
                                                                            tmp_path: Path) -> None:
    store = world.copy(tmp_path)
    assert world.gate(store, "prd", "r3").code == 1  # stg never ran it
    none = world.gate(store, "prd", "r3", "--hotfix")
    assert none.code == 1
    assert ("a hotfix of release r3 to prd requires 2 hotfix approval(s) of this manifest from alice, bob, but found "
            "0 (none)") in _said(none)
    assert world.approve(store, "r3", "alice", tmp=tmp_path).code == 0
    again = world.approve(store, "r3", "alice", "--reason", "again", tmp=tmp_path)
    assert again.code == 0  # a second approval by alice is still alice
    one = world.gate(store, "prd", "r3", "--hotfix")
    assert one.code == 1 and "but found 1 (alice)" in _said(one)
    # carol may not approve hotfixes: nothing is signed
    carol = world.approve(store, "r3", "carol", tmp=tmp_path)
    assert carol.code == 2 and "not a key of an approver of hotfixes to 'prd' (alice, bob)" in _said(carol)
    assert world.approve(store, "r3", "bob", tmp=tmp_path).code == 0
    passed = world.gate(store, "prd", "r3", "--hotfix", "--format", "json")
    assert passed.code == 0, passed
    check = next(c for c in json.loads(passed.out)["checks"] if c["check"] == "hotfix")
    assert [a["signer"] for a in check["found"]] == ["alice", "bob"]
    assert check["expected"]["approvals"] == {"count": 2, "signed-by": ["alice", "bob"]}
    # recorded as hotfixes, in order; status and the audit show them
    for component in ("infra", "app"):
        ran = world.deploy(store, "prd", "r3", component, more=("--kind", "hotfix"), tmp=tmp_path)
        assert ran.code == 0, ran
    shown = json.loads(world.status(store, "--env", "prd", "--format", "json").out)
    assert {e["kind"] for e in shown["environments"]["prd"].values()} == {"hotfix"}
    audit = run_attest("audit", store, "--policy", world.policy, "--format", "json")
    report = json.loads(audit.out)
    assert [(h["environment"], h["component"], h["release"]) for h in report["hotfixes"]] == [
        ("prd", "infra", "r3"), ("prd", "app", "r3")]
    assert report["rollbacks"] == []
    text = run_attest("audit", store, "--policy", world.policy)
    assert "2 hotfix(s):" in text.out and "infra of release r3" in text.out


def test_approvals_that_are_not_this_manifests_hotfix_approvals_do_not_count(world: PathWorld,
                                                                             tmp_path: Path) -> None:
    store = world.copy(tmp_path)
    # alice and bob approve r2 as a hotfix: r2 is not r3
    for who in ("alice", "bob"):
        assert world.approve(store, "r2", who, tmp=tmp_path).code == 0
    assert world.gate(store, "prd", "r3", "--hotfix").code == 1
    # an ordinary approval of r3's artefact for prd by alice is no hotfix approval
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text(world.keys, prd=HOTFIX + "\n    require-approvals: {count: 1, signed-by: [alice]}"))
    artefact = f"sha256:{world.artifacts('r3', 'app')[0]['digest']['sha256']}"
    ordinary = run_attest("approve", artefact, "--stage", "prd", "--signer", world.keys["alice"].private, "--policy",
                          policy, "--store", store, "-o", tmp_path / "ordinary.intoto.jsonl", cwd=world.root)
    assert ordinary.code == 0, ordinary
    assert world.approve(store, "r3", "bob", policy=policy, tmp=tmp_path).code == 0
    refused = world.gate(store, "prd", "r3", "--hotfix", policy=policy)
    assert refused.code == 1 and "but found 1 (bob)" in _said(refused)


def test_a_stage_without_a_hotfix_rule_takes_no_hotfix(world: PathWorld, tmp_path: Path) -> None:
    store = world.copy(tmp_path)
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text(world.keys))
    refused = world.gate(store, "prd", "r3", "--hotfix", policy=policy)
    assert refused.code == 2 and "stage 'prd' of the policy allows no hotfix (stages.prd.hotfix" in _said(refused)
    approval = world.approve(store, "r3", "alice", policy=policy, tmp=tmp_path)
    assert approval.code == 2 and "allows no hotfix" in _said(approval)


@pytest.mark.parametrize(("args", "words"), [
    pytest.param(("--hotfix",), "approve ARTIFACT for a stage, or --release MANIFEST --hotfix", id="hotfix-alone"),
    pytest.param(("--release", "RELEASE"), "approve ARTIFACT for a stage, or --release MANIFEST --hotfix",
                 id="release-without-hotfix"),
    pytest.param(("--release", "RELEASE", "--hotfix"), "--hotfix needs --store STORE", id="no-store"),
])
def test_approve_hotfix_usage(world: PathWorld, tmp_path: Path, args: tuple[str, ...], words: str) -> None:
    argv = [str(world.release("r3")) if a == "RELEASE" else a for a in args]
    result = run_attest("approve", *argv, "--stage", "prd", "--signer", world.keys["alice"].private, "--policy",
                        world.policy, "-o", tmp_path / "a.intoto.jsonl", cwd=world.root)
    assert result.code == 2 and words in _said(result), result
    assert not (tmp_path / "a.intoto.jsonl").exists()


@pytest.mark.parametrize(("hotfix", "words"), [
    pytest.param("hotfix: {}", "stages.prd.hotfix: needs require-approvals", id="empty"),
    pytest.param("hotfix: {require-approvals: {count: 2, signed-by: [dave]}}", "names identity 'dave'",
                 id="unknown-approver"),
    pytest.param("hotfix: {require-approvals: {count: 1, signed-by: [alice]}, when: always}", "unknown key",
                 id="unknown-key"),
])
def test_a_bad_hotfix_rule_is_a_policy_error(world: PathWorld, tmp_path: Path, hotfix: str, words: str) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text(world.keys, prd=hotfix))
    result = world.gate(world.root / "store", "prd", "r3", "--hotfix", policy=policy)
    assert result.code == 3 and words in _said(result), result


def test_the_audit_judges_who_signed_a_hotfix_approval(world: PathWorld, tmp_path: Path) -> None:
    store = world.copy(tmp_path)
    # carol may approve hotfixes under another policy; under the world's, her approval is untrusted
    lax = tmp_path / "lax.yaml"
    lax.write_text(policy_text(world.keys, prd="hotfix: {require-approvals: {count: 1, signed-by: [carol]}}"))
    assert world.approve(store, "r3", "carol", policy=lax, tmp=tmp_path).code == 0
    assert world.approve(store, "r3", "alice", tmp=tmp_path).code == 0
    report = json.loads(run_attest("audit", store, "--policy", world.policy, "--format", "json").out)
    found = [(a["kind"], a["message"]) for a in report["anomalies"]]
    assert found == [("untrusted-signer", "a hotfix approval for stage 'prd' is signed by carol, but "
                                          "stages.prd.hotfix.require-approvals allows alice, bob")], found
    # an approval of the release is about no artefact: no history is made up for the manifest's digest
    assert all(not name.startswith("release:") for a in report["artifacts"] for name in a["names"])


@pytest.mark.parametrize(("component", "artifacts_of", "words"), [
    pytest.param("db", "infra", "names component 'db', which release 'r1' does not have", id="unknown-component"),
    pytest.param("infra", "app", "names other artefacts for 'infra' than release 'r1' gives that component",
                 id="other-artefacts"),
])
def test_the_audit_places_each_deployment_record_in_its_release(world: PathWorld, tmp_path: Path, component: str,
                                                                artifacts_of: str, words: str) -> None:
    import hashlib
    from datetime import UTC, datetime

    from attest.signers import from_uri
    from attest.signing import sign_with
    from attest.summaries import deployment_statement

    store = world.copy(tmp_path)
    manifest = hashlib.sha256(world.release("r1").read_bytes().strip()).hexdigest()
    artifacts = [(a["name"], a["digest"]) for a in world.artifacts("r1", artifacts_of)]
    # signed by stg's own deployer key: trusted, yet it names what the release does not
    line = sign_with(deployment_statement(
        environment="stg", release_name="r1", release_sha256=manifest, component=component,
        artifacts=artifacts, status="succeeded", kind="deploy", deployed_at=datetime.now(UTC)),
        from_uri(str(world.keys["stg-deploy"].private)))
    sha = artifacts[0][1]["sha256"]
    # the manifest is among what the audit reads (release create --store puts it there)
    (store / "sha256" / sha / "release-0.intoto.jsonl").write_bytes(world.release("r1").read_bytes())
    clean = json.loads(run_attest("audit", store, "--policy", world.policy, "--format", "json").out)
    assert clean["anomalies"] == [] and clean["summary"]["releases"] == 1
    (store / "sha256" / sha / f"deployment-{hashlib.sha256(line).hexdigest()}.intoto.jsonl").write_bytes(line)
    report = json.loads(run_attest("audit", store, "--policy", world.policy, "--format", "json").out)
    found = [(a["kind"], a["sha256"]) for a in report["anomalies"]]
    assert found == [("unknown-deployment", sha)], report["anomalies"]
    assert words in report["anomalies"][0]["message"]


def test_rollback_and_hotfix_on_the_local_aws_endpoint(world: PathWorld, tmp_path: Path, aws_env: MotoEnv) -> None:
    local = world.copy(tmp_path)
    _ship(world, local, "r1", tmp_path)
    s3 = aws_env.client("s3")
    s3.create_bucket(Bucket="store", CreateBucketConfiguration={"LocationConstraint": aws_env.region})
    for path in sorted(local.rglob("*")):
        if path.is_file():
            s3.put_object(Bucket="store", Key=f"k/{path.relative_to(local).as_posix()}", Body=path.read_bytes())
    store = "s3://store/k"
    assert world.gate(store, "prd", "r1", "--rollback").code == 0
    refused = world.gate(store, "prd", "r3", "--rollback")
    assert refused.code == 1 and "release r3 never ran in prd" in _said(refused)
    for who in ("alice", "bob"):
        assert world.approve(store, "r3", who, tmp=tmp_path).code == 0
    assert world.gate(store, "prd", "r3", "--hotfix", "--component", "infra").code == 0


def _hotfix_approval(world: PathWorld, store: Path, release: str, line: bytes) -> None:
    """``line`` (an approval of ``release``'s manifest) filed under each of its artefacts, as attest approve does."""
    from attest.stores.local import LocalStore

    for component in ("infra", "app"):
        for artefact in world.artifacts(release, component):
            LocalStore(store).put_attestation(artefact["digest"]["sha256"], "approval", line)


def _manifest_subject(world: PathWorld, release: str) -> tuple[str, dict[str, str]]:
    from attest.summaries import release_subject
    from verify.formats.evidence import load_evidence, read_evidence_file

    [manifest] = load_evidence(read_evidence_file(world.release(release)), source=release)
    return release_subject(release, manifest.digest)


def test_hotfix_approvals_dated_after_now_do_not_count(world: PathWorld, tmp_path: Path) -> None:
    """As an ordinary approval: a time ahead of the gate is a clock ahead, or a forged time (the audit, later,
    would find the hotfix without its approvals)."""
    from datetime import UTC, datetime, timedelta

    from attest.summaries import approval_statement
    from tests import factory as f

    store = world.copy(tmp_path)
    name, digests = _manifest_subject(world, "r3")
    ahead = datetime.now(UTC) + timedelta(days=30)
    for who in ("alice", "bob"):
        statement = approval_statement(subject_name=name, digests=digests, stage="prd", approver=who,
                                       reason="INC-42", approved_at=ahead, hotfix=True)
        _hotfix_approval(world, store, "r3", f.sign(world.keys[who].private, statement).to_json_line())
    refused = world.gate(store, "prd", "r3", "--hotfix")
    assert refused.code == 1 and "but found 0 (none)" in _said(refused), refused
    for who in ("alice", "bob"):  # approved now, they count
        assert world.approve(store, "r3", who, tmp=tmp_path).code == 0
    assert world.gate(store, "prd", "r3", "--hotfix").code == 0


def test_one_persons_keyless_hotfix_approval_counts_once(world: PathWorld, tmp_path: Path,
                                                         sigstore_local: SigstoreLocal) -> None:
    """Two hotfix approvers one certificate satisfies (alice by name, anyone of the domain): alice's one keyless
    approval is one approver, as at an ordinary stage (verify.signers.one_person)."""
    from datetime import UTC, datetime

    from attest.signers.sigstore import KeylessSigner
    from attest.summaries import approval_statement, deployment_statement

    issuer, alice = "https://accounts.example.com", "alice@example.com"
    store = world.copy(tmp_path)
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text(world.keys, prd="require-deployed: [stg]\n    hotfix: {require-approvals: "
                                                  "{count: 2, signed-by: [lead, oncall]}}").replace(
        "provenance:", f'  lead: {{sigstore: {{issuer: "{issuer}", identity: "{alice}"}}}}\n'
                       f'  oncall: {{sigstore: {{issuer: "{issuer}", identity-regexp: ".*@example[.]com"}}}}\n'
                       "provenance:"))
    name, digests = _manifest_subject(world, "r3")
    statement = approval_statement(subject_name=name, digests=digests, stage="prd", approver=alice, reason="INC-42",
                                   approved_at=datetime.now(UTC), hotfix=True)
    signer = KeylessSigner(identity_token=sigstore_local.mint_token(alice, issuer),
                           trust_config=sigstore_local.trust_config_path)
    _hotfix_approval(world, store, "r3", signer.sign_statement(json.dumps(statement, sort_keys=True).encode()).bundle)
    refused = world.gate(store, "prd", "r3", "--hotfix", "--trusted-root", str(sigstore_local.trusted_root_path),
                         policy=policy)
    assert refused.code == 1 and "but found 1 (lead)" in _said(refused), refused
    # a pipeline that recorded the hotfix without its gate: the audit counts alice once too
    from tests import factory as f

    manifest_line = hashlib.sha256(world.release("r3").read_bytes().strip()).hexdigest()
    artefacts = [(a["name"], a["digest"]) for a in world.artifacts("r3", "app")]
    record = deployment_statement(environment="prd", release_name="r3", release_sha256=manifest_line,
                                  component="app", artifacts=artefacts, status="succeeded", kind="hotfix",
                                  deployed_at=datetime.now(UTC))
    f.publish(store, f.sign(world.keys["prd-deploy"].private, record), kind="deployment")
    audit = run_attest("audit", store, world.release("r3"), "--policy", policy, "--no-index", "--format", "json",
                       "--trusted-root", str(sigstore_local.trusted_root_path), cwd=world.root)
    missing = [a for a in json.loads(audit.out)["anomalies"] if a["kind"] == "missing-approval"]
    assert audit.code == 1 and missing and "as a hotfix with 1 of the 2 hotfix approval(s)" in missing[0]["message"]


def _unindex(store: Path, env: str, component: str) -> list[Path]:
    """Take a component's records in ``env`` out of the store's deployment index, as a publish that failed before
    its last write leaves them: filed under their artefacts only."""
    entries = sorted(p for p in (store / "deployments" / env / component).rglob("*") if p.is_file())
    assert entries
    for entry in entries:
        entry.unlink()
    return entries


def test_a_record_the_deployment_index_does_not_file_never_counts_as_having_run(world: PathWorld,
                                                                                tmp_path: Path) -> None:
    store = world.copy(tmp_path)
    _ship(world, store, "r1", tmp_path)
    assert world.gate(store, "prd", "r1", "--rollback").code == 0
    assert world.gate(store, "prd", "r1", "--component", "app").code == 0  # require-deployed: [stg]
    entries = _unindex(store, "prd", "app") + _unindex(store, "stg", "app")
    # prd's gate and attest status agree: neither counts a record its index does not file
    refused = world.gate(store, "prd", "r1", "--rollback", "--component", "app")
    assert refused.code == 1 and "is not in the store's deployment index under its own time and digest" in \
        _said(refused), refused
    refused = world.gate(store, "prd", "r1", "--component", "app")
    assert refused.code == 1 and "is not in the store's deployment index" in _said(refused), refused
    assert "require-deployed" in _said(refused)
    # nor an entry under the record's name that holds other bytes
    for entry in entries:
        entry.parent.mkdir(parents=True, exist_ok=True)
        entry.write_bytes(b'{"payload": "", "payloadType": "x", "signatures": []}\n')
    assert world.gate(store, "prd", "r1", "--rollback", "--component", "app").code == 1
    assert world.gate(store, "prd", "r1", "--component", "app").code == 1


def test_a_path_rule_that_refuses_is_a_failed_check_in_the_json_verdict(world: PathWorld, tmp_path: Path) -> None:
    """docs/usage.md: --format json prints every check, also on failure. A refusal by require-deployed, the order
    rule or a rollback came with "checks": [], where a pipeline looks for the failed one."""
    store = world.copy(tmp_path)
    cases = [(("prd", "r1"), "deployed"), (("stg", "r1", "--component", "app"), "order"),
             (("prd", "r1", "--rollback"), "rollback")]
    for (env, release, *more), rule in cases:
        refused = world.gate(store, env, release, *more, "--format", "json")
        assert refused.code == 1, refused
        shown = json.loads(refused.out)
        assert shown["verified"] is False and shown["checks"], shown
        assert shown["checks"][-1]["check"] == rule and shown["checks"][-1]["passed"] is False, shown
        assert shown["checks"][-1]["found"] == shown["error"]
