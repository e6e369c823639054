"""Issue 19, part 4: stacks go in order, and every change goes through every environment.

``attest verify --release M --component app --stage ENV`` (the gate in front of deploying one stack, also
run by ``attest deploy record``) passes only when every component app needs runs in ENV at the release's
artefacts: the newest succeeded deployment record of it there, signed by ENV's deployer, names them (for
this release, or an earlier one in which that stack did not change). ``stages.prd.require-deployed: [stg]``
makes prd refuse a release until stg recorded running each component's very artefacts.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Result, _clean_env, run_attest
from tests.conftest_aws import MotoEnv
from tests.path_world import PathWorld, make_world, policy_text
from verify.formats.envelope import Envelope


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> PathWorld:
    return make_world(tmp_path_factory.mktemp("path"))


def _said(result: object) -> str:
    err: str = result.err
    return err.strip().splitlines()[-1] if err.strip() else ""


def test_app_is_refused_until_infra_runs_in_the_environment_then_passes(world: PathWorld, tmp_path: Path) -> None:
    store = world.copy(tmp_path)
    early = world.gate(store, "stg", "r1", "--component", "app")
    assert early.code == 1, early
    assert ("app needs infra, and no succeeded deployment record of infra in stg is trusted: deploy infra of "
            "release r1 to stg first") in _said(early)
    # deploy record runs the same gate: no one can record app's deployment before infra's
    refused = world.deploy(store, "stg", "r1", "app", tmp=tmp_path)
    assert refused.code == 1 and "app needs infra" in _said(refused), refused
    assert not list((store / "deployments").rglob("*.intoto.jsonl")) if (store / "deployments").exists() else True
    # infra first (it needs nothing), then app passes, naming the record it relied on
    assert world.deploy(store, "stg", "r1", "infra", tmp=tmp_path).code == 0
    passed = world.gate(store, "stg", "r1", "--component", "app", "--format", "json")
    assert passed.code == 0, passed
    shown = json.loads(passed.out)
    assert [c["component"] for c in shown["components"]] == ["app"]  # the gate of the one stack deployed
    order = next(c for c in shown["checks"] if c["check"] == "order")
    assert order["expected"] == {"component": "app", "needs": ["infra"]}
    assert order["found"][0]["component"] == "infra" and order["found"][0]["release"] == "r1"
    assert world.deploy(store, "stg", "r1", "app", tmp=tmp_path).code == 0


def test_what_runs_is_the_newest_succeeded_record_and_an_unchanged_stack_counts(world: PathWorld,
                                                                                tmp_path: Path) -> None:
    store = world.copy(tmp_path)
    assert world.deploy(store, "stg", "r1", "infra", tmp=tmp_path).code == 0
    # r2 did not change infra: r1's record of the same artefacts lets r2's app go
    assert world.deploy(store, "stg", "r2", "app", tmp=tmp_path).code == 0
    # r3 changed infra; until it is deployed, r3's app is refused, naming what runs
    refused = world.gate(store, "stg", "r3", "--component", "app")
    assert refused.code == 1
    assert "stg runs infra of release r1" in _said(refused) and "deploy infra of r3 to stg first" in _said(refused)
    # a failed deployment of r3's infra changes nothing: r1's infra still runs
    assert world.deploy(store, "stg", "r3", "infra", status="failed", tmp=tmp_path).code == 0
    assert world.gate(store, "stg", "r3", "--component", "app").code == 1
    assert world.deploy(store, "stg", "r3", "infra", tmp=tmp_path).code == 0
    assert world.gate(store, "stg", "r3", "--component", "app").code == 0
    # and now r1's app may not go back without its infra (the newest record runs r3's)
    again = world.gate(store, "stg", "r1", "--component", "app")
    assert again.code == 1 and "stg runs infra of release r3" in _said(again)


def test_a_record_of_another_environment_does_not_count(world: PathWorld, tmp_path: Path) -> None:
    store = world.copy(tmp_path)
    assert world.deploy(store, "dev", "r1", "infra", tmp=tmp_path).code == 0
    refused = world.gate(store, "stg", "r1", "--component", "app")
    assert refused.code == 1 and "no succeeded deployment record of infra in stg" in _said(refused)


def test_an_untrusted_or_misfiled_record_in_the_index_never_counts_and_hides_nothing(world: PathWorld,
                                                                                    tmp_path: Path) -> None:
    """A record newer than what runs that does not count (misfiled, signed by no deployer of the environment,
    corrupted) never counts, and is never passed over to an older one: it may be the newest true record, spoilt
    to roll what runs back, so the order rule refuses until it is removed or the deployment recorded again."""
    store = world.copy(tmp_path)
    assert world.deploy(store, "stg", "r1", "infra", tmp=tmp_path).code == 0
    assert world.deploy(store, "stg", "r3", "infra", tmp=tmp_path).code == 0
    folder = store / "deployments" / "stg" / "infra"
    old, new = sorted(folder.iterdir())
    assert world.gate(store, "stg", "r3", "--component", "app").code == 0
    # r1's genuine record copied under a newer name: it would make r1's infra look current
    misfiled = folder / ("99991231T235959000000Z-" + old.name.split("-", 1)[1])
    shutil.copy(old, misfiled)
    for release in ("r3", "r1"):
        refused = world.gate(store, "stg", release, "--component", "app")
        assert refused.code == 1 and "newer than the one it runs did not count" in _said(refused), refused
        assert "is filed under another time or digest than it was signed with" in _said(refused), refused
    misfiled.unlink()
    # the newest true record spoilt (its signature): stg is not taken to run r1 again
    new.write_bytes(new.read_bytes().replace(b'"sig":"', b'"sig":"AAAA', 1))
    refused = world.gate(store, "stg", "r1", "--component", "app")
    assert refused.code == 1 and "newer than the one it runs did not count" in _said(refused), refused
    new.unlink()
    assert world.gate(store, "stg", "r1", "--component", "app").code == 0  # removed: r1's record is the newest
    # a record of r1's infra signed by prd's deployer, for stg, under the newest name: it does not count either
    forged = world.deploy(tmp_path / "other", "prd", "r1", "infra", tmp=tmp_path)
    assert forged.code != 0  # prd's gate refuses it (stg never ran r1 there): sign it as a failed one instead
    made = world.deploy(tmp_path / "other", "prd", "r1", "infra", status="failed", tmp=tmp_path)
    assert made.code == 0, made
    line = next((tmp_path / "other" / "deployments").rglob("*.intoto.jsonl")).read_bytes()
    (folder / ("99991231T235959999999Z-" + "0" * 64 + ".intoto.jsonl")).write_bytes(line)
    assert world.gate(store, "stg", "r1", "--component", "app").code == 1
    # with only bad records left, nothing runs: refused, and the sentence says some records did not count
    old.unlink()
    none = world.gate(store, "stg", "r3", "--component", "app")
    assert none.code == 1 and "record(s) read did not count" in _said(none), none


def test_the_first_stack_and_the_whole_release_need_no_deployment(world: PathWorld, tmp_path: Path) -> None:
    store = world.copy(tmp_path)
    assert world.gate(store, "stg", "r1", "--component", "infra").code == 0
    assert world.gate(store, "stg", "r1").code == 0


@pytest.mark.parametrize(("args", "code", "words"), [
    pytest.param(("--component", "db"), 2, "--component 'db' is not a component of release 'r1' (its components: "
                                           "infra, app)", id="unknown-component"),
    pytest.param(("--component", "app", "--emit-vsa", "vsa.json", "--signer", "x"), 2,
                 "--emit-vsa signs for a whole release; leave out --component", id="component-and-emit-vsa"),
])
def test_bad_component_requests_are_usage_errors(world: PathWorld, tmp_path: Path, args: tuple[str, ...], code: int,
                                                 words: str) -> None:
    store = world.copy(tmp_path)
    result = world.gate(store, "stg", "r1", *args)
    assert result.code == code and words in _said(result), result


def test_component_without_release_is_a_usage_error(world: PathWorld, tmp_path: Path) -> None:
    result = run_attest("verify", "x.zip", "--store", tmp_path, "--component", "app", "--policy", world.policy)
    assert result.code == 2 and "--component goes with --release" in _said(result), result


def test_the_order_needs_an_environment_that_signs_its_deployments(world: PathWorld, tmp_path: Path) -> None:
    store = world.copy(tmp_path)
    policy = tmp_path / "policy.yaml"
    policy.write_text(world.policy.read_text().replace("stg: {verifier: stg-verify, deployed-by: [stg-deploy]}",
                                                       "stg: {verifier: stg-verify}")
                      .replace("require-deployed: [stg]", ""))
    result = world.gate(store, "stg", "r1", "--component", "app", policy=policy)
    assert result.code == 3, result
    assert "stage 'stg' names no identity that signs its deployment records (stages.stg.deployed-by)" in _said(result)


# --- require-deployed -------------------------------------------------------------------------------------

def test_prd_refuses_a_release_stg_did_not_run_and_passes_once_it_did(world: PathWorld, tmp_path: Path) -> None:
    store = world.copy(tmp_path)
    refused = world.gate(store, "prd", "r1")
    assert refused.code == 1
    assert ("component infra: no succeeded deployment record of these artefacts in stg, signed by a stg deployer, "
            "is found") in _said(refused)
    assert world.deploy(store, "stg", "r1", "infra", tmp=tmp_path).code == 0
    # one component is not the release: app has not run in stg
    half = world.gate(store, "prd", "r1")
    assert half.code == 1 and "component app:" in _said(half)
    # but infra alone may go to prd (its own gate in front of deploying it)
    assert world.gate(store, "prd", "r1", "--component", "infra").code == 0
    assert world.deploy(store, "stg", "r1", "app", tmp=tmp_path).code == 0
    passed = world.gate(store, "prd", "r1", "--format", "json")
    assert passed.code == 0, passed
    deployed = next(c for c in json.loads(passed.out)["checks"] if c["check"] == "deployed")
    assert {(d["component"], d["environment"], d["signer"]) for d in deployed["found"]} == {
        ("infra", "stg", "stg-deploy"), ("app", "stg", "stg-deploy")}
    assert json.loads(passed.out)["buildLevel"] == 1  # (the level the release VSA states, as docs/policy.md says)
    # prd's VSA names every attestation its pass rested on: stg's deployment records too
    signed = world.gate(store, "prd", "r1", "--emit-vsa", tmp_path / "prd.vsa.intoto.jsonl", "--signer",
                        world.keys["prd-verify"].private)
    assert signed.code == 0, signed
    inputs = {i["uri"]: i["digest"]["sha256"] for i in json.loads(Envelope.from_json(
        (tmp_path / "prd.vsa.intoto.jsonl").read_bytes()).payload)["predicate"]["inputAttestations"]}
    records = {d["record"] for d in deployed["found"]}
    assert records <= set(inputs) and len(records) == 2
    for record in records:
        assert inputs[record] == hashlib.sha256(Path(record).read_bytes().rstrip(b"\n")).hexdigest()


def test_one_artefact_cannot_pass_a_stage_that_requires_what_runs_before_it(world: PathWorld, tmp_path: Path) -> None:
    """require-deployed is said of a release's components: verified as one artefact (no --release), prd's gate
    checked its VSAs and approvals only, and passed bytes stg never ran (and --emit-vsa signed prd's VSA)."""
    store = world.copy(tmp_path)
    app = next(store.glob("sha256/*/artifact/dist/app.zip"))
    result = run_attest("verify", app, "--store", store, "--policy", world.policy, "--stage", "prd", cwd=world.root)
    assert result.code == 2, result
    assert ("stage 'prd' requires what runs in stg (require-deployed), which a deployment record says of a release's "
            "component, not of one artefact; verify it with --release MANIFEST --component NAME") in _said(result)
    # a stage without the rule still verifies one artefact
    assert run_attest("verify", app, "--store", store, "--policy", world.policy, "--stage", "stg",
                      cwd=world.root).code == 0


def test_a_failed_or_other_environment_or_other_artefacts_record_does_not_satisfy_prd(world: PathWorld,
                                                                                       tmp_path: Path) -> None:
    store = world.copy(tmp_path)
    # a failed stg record, a dev record, and a stg record of r3's infra (other artefacts) for r1's infra
    assert world.deploy(store, "stg", "r1", "infra", status="failed", tmp=tmp_path).code == 0
    assert world.deploy(store, "dev", "r1", "infra", tmp=tmp_path).code == 0
    assert world.deploy(store, "stg", "r3", "infra", tmp=tmp_path).code == 0
    refused = world.gate(store, "prd", "r1", "--component", "infra")
    assert refused.code == 1 and "component infra: no succeeded deployment record" in _said(refused), refused
    # r2 has r1's infra: a stg record of r1's infra satisfies r2's
    assert world.deploy(store, "stg", "r1", "infra", tmp=tmp_path).code == 0
    assert world.gate(store, "prd", "r2", "--component", "infra").code == 0


@pytest.mark.parametrize(("prd", "words"), [
    pytest.param("require-deployed: [qa]", "stages.prd.require-deployed: names stage 'qa', which 'stages' does not "
                                           "define", id="unknown-stage"),
    pytest.param("require-deployed: [prd]", "names 'prd', the stage itself", id="itself"),
    pytest.param("require-deployed: []", "must not be empty", id="empty"),
])
def test_a_bad_require_deployed_is_a_policy_error(world: PathWorld, tmp_path: Path, prd: str, words: str) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text(world.keys, prd=prd))
    result = world.gate(world.root / "store", "prd", "r1", policy=policy)
    assert result.code == 3 and words in _said(result), result


def test_require_deployed_names_a_stage_whose_records_someone_signs(world: PathWorld, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text(world.keys).replace("dev: {verifier: dev-verify, deployed-by: [dev-deploy]}",
                                                      "dev: {verifier: dev-verify}")
                      .replace("require-deployed: [stg]", "require-deployed: [dev]"))
    result = world.gate(world.root / "store", "prd", "r1", policy=policy)
    assert result.code == 3 and "names stage 'dev', which names no identity that signs its deployment records" in (
        _said(result)), result


# --- the same on S3 ------------------------------------------------------------------------------------------

def test_the_order_on_the_local_aws_endpoint(world: PathWorld, tmp_path: Path, aws_env: MotoEnv) -> None:
    s3 = aws_env.client("s3")
    s3.create_bucket(Bucket="store", CreateBucketConfiguration={"LocationConstraint": aws_env.region})
    for path in sorted((world.root / "store").rglob("*")):
        if path.is_file():
            s3.put_object(Bucket="store", Key=f"path/{path.relative_to(world.root / 'store').as_posix()}",
                          Body=path.read_bytes())
    store = "s3://store/path"
    refused = world.gate(store, "stg", "r1", "--component", "app")
    assert refused.code == 1 and "app needs infra" in _said(refused), refused
    assert world.deploy(store, "stg", "r1", "infra", tmp=tmp_path).code == 0
    listed = s3.list_objects_v2(Bucket="store", Prefix="path/deployments/")["Contents"]
    assert [item["Key"].split("/")[1:4] for item in listed] == [["deployments", "stg", "infra"]]
    assert world.gate(store, "stg", "r1", "--component", "app").code == 0
    assert world.deploy(store, "stg", "r1", "app", tmp=tmp_path).code == 0
    assert world.gate(store, "prd", "r1").code == 0


#: ``attest deploy record`` with the manifest replaced by another file just before its gate reads it (the race
#: deploy record's check that the gate passed the release it records is for).
_SWAPPED = """
import shutil, sys
import attest.gate as gate
manifest, swap_to = sys.argv.pop(1), sys.argv.pop(1)
real = gate.run_gate
def swapped(request, *a, **k):
    shutil.copyfile(swap_to, manifest)
    return real(request, *a, **k)
gate.run_gate = swapped
from attest.cli import main
sys.argv[0] = "attest"
main()
"""


def test_deploy_record_signs_only_the_release_its_gate_passed(world: PathWorld, tmp_path: Path) -> None:
    """A release re-cut under the same name, with the same artefact names and other bytes, is another release: the
    check compared names only, and signed a record of app v2 that only app v1 had passed."""
    store = world.copy(tmp_path)
    recut = tmp_path / "r1-recut.intoto.jsonl"
    made = run_attest("release", "create", "--name", "r1", "--component", "infra=infra-v1.intoto.jsonl",
                      "--component", "app=app-v2.intoto.jsonl", "--needs", "app=infra", "--signer",
                      world.keys["release"].private, "-o", recut, cwd=world.root)
    assert made.code == 0, made
    assert world.deploy(store, "stg", "r1", "infra", tmp=tmp_path).code == 0
    manifest = tmp_path / "manifest.intoto.jsonl"
    shutil.copyfile(recut, manifest)
    script = tmp_path / "swapped.py"
    script.write_text(_SWAPPED)
    done = subprocess.run([sys.executable, script, manifest, world.release("r1"), "deploy", "record", "--env", "stg",
                           "--release", manifest, "--component", "app", "--status", "succeeded", "--signer",
                           world.keys["stg-deploy"].private, "--policy", world.policy, "--store", store, "-o",
                           tmp_path / "app.intoto.jsonl"], cwd=world.root, env=_clean_env(), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1, done
    assert "changed while it was read: the gate passed another release than the one to record" in done.stderr
    assert not (tmp_path / "app.intoto.jsonl").exists()
    assert not list((store / "deployments" / "stg").glob("app/*"))


# --- what a review of the path's commands found ------------------------------------------------------------

def test_no_output_of_the_path_s_commands_replaces_a_pinned_key_or_writes_into_the_store(world: PathWorld,
                                                                                        tmp_path: Path) -> None:
    store = world.copy(tmp_path)
    pinned = world.keys["stg-deploy"].public
    before = pinned.read_bytes()
    def deploy(output: Path) -> Result:
        return run_attest("deploy", "record", "--env", "stg", "--release", world.release("r1"), "--component",
                          "infra", "--status", "succeeded", "--signer", world.keys["stg-deploy"].private, "--policy",
                          world.policy, "--store", store, "-o", output, cwd=world.root)

    onto_key = deploy(pinned)
    assert onto_key.code == 2 and "is the key file" in onto_key.err, onto_key
    stored = sorted(store.glob("sha256/*/provenance-*.intoto.jsonl"))[0]
    kept = stored.read_bytes()
    into_store = deploy(stored)
    assert into_store.code == 2 and "is inside the store" in into_store.err, into_store
    approval = run_attest("approve", "--release", world.release("r1"), "--hotfix", "--stage", "prd", "--signer",
                          world.keys["bob"].private, "--policy", world.policy, "--store", store, "-o",
                          world.keys["bob"].public, "--approver", "bob", cwd=world.root)
    assert approval.code == 2 and "is the key file" in approval.err, approval
    cut = run_attest("release", "create", "--name", "r9", "--component", "infra=infra-v1.intoto.jsonl", "--signer",
                     world.keys["release"].private, "--store", store, "-o", stored, cwd=world.root)
    assert cut.code == 2 and "is inside the store" in cut.err, cut
    assert pinned.read_bytes() == before and stored.read_bytes() == kept and world.keys["bob"].public.read_bytes()


def test_a_component_name_too_long_for_the_store_is_one_sentence(world: PathWorld, tmp_path: Path) -> None:
    store = world.copy(tmp_path)
    long = "app." * 70
    made = run_attest("release", "create", "--name", "rlong", "--component", f"{long}=app-v1.intoto.jsonl",
                      "--signer", world.keys["release"].private, "-o", tmp_path / "rlong.intoto.jsonl", cwd=world.root)
    assert made.code == 0, made
    recorded = run_attest("deploy", "record", "--env", "stg", "--release", tmp_path / "rlong.intoto.jsonl",
                          "--component", long, "--status", "succeeded", "--signer", world.keys["stg-deploy"].private,
                          "--policy", world.policy, "--store", store, "-o", tmp_path / "d.intoto.jsonl",
                          cwd=world.root)
    assert recorded.code in (1, 3) and "internal error" not in recorded.err, recorded
    assert not (tmp_path / "d.intoto.jsonl").exists()


def test_release_create_signs_no_manifest_its_readers_refuse(world: PathWorld, tmp_path: Path) -> None:
    from tests import factory as f

    odd = f.provenance(world.keys["dev"].private, subjects={"app.zip": {"sha512": "ab" * 64}},
                       repo="https://github.com/acme/app")
    (tmp_path / "odd.intoto.jsonl").write_bytes(odd.to_json_line())
    cut = run_attest("release", "create", "--name", "rodd", "--component", f"app={tmp_path / 'odd.intoto.jsonl'}",
                     "--signer", world.keys["release"].private, "-o", tmp_path / "rodd.intoto.jsonl", cwd=world.root)
    assert cut.code == 1 and "would be refused by every gate that reads it" in cut.err, cut
    assert not (tmp_path / "rodd.intoto.jsonl").exists()


def test_an_approver_with_no_name_on_the_system_is_asked_for_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import getpass

    from attest.cli.approve import _user
    from verify.errors import RequestError

    def nameless() -> str:
        raise KeyError("getpwuid(): uid not found: 12345")

    monkeypatch.setattr(getpass, "getuser", nameless)
    with pytest.raises(RequestError, match="give it with --approver NAME"):
        _user()


def test_the_audit_finds_a_stack_deployed_before_what_its_release_needs(world: PathWorld, tmp_path: Path) -> None:
    """A pipeline that deployed app without its gate (infra of its release not running there yet) signs a true
    record: the audit holds it to the gate's order rule, with the index and without."""
    import json
    from datetime import UTC, datetime

    from attest.summaries import deployment_statement
    from tests import factory as f

    store = world.copy(tmp_path)
    for component in ("infra", "app"):
        assert world.deploy(store, "stg", "r1", component, tmp=tmp_path).code == 0
    line = hashlib.sha256(world.release("r1").read_bytes().strip()).hexdigest()
    app = [(a["name"], a["digest"]) for a in world.artifacts("r1", "app")]
    skipped = deployment_statement(environment="prd", release_name="r1", release_sha256=line, component="app",
                                   artifacts=app, status="succeeded", kind="deploy",
                                   deployed_at=datetime.now(UTC))
    f.publish(store, f.sign(world.keys["prd-deploy"].private, skipped), kind="deployment")
    assert world.deploy(store, "prd", "r1", "infra", tmp=tmp_path).code == 0  # infra, but after app

    def order(*more: str) -> list[str]:
        ran = run_attest("audit", store, world.release("r1"), "--policy", world.policy, "--format", "json", *more,
                         cwd=world.root)
        return [a["message"] for a in json.loads(ran.out)["anomalies"] if a["kind"] == "out-of-order"]

    found = order("--no-index")
    assert len(found) == 1 and "'prd' deployed app of release r1 at" in found[0], found
    assert "when infra had not run there: the release needs its own infra to run there first" in found[0]
    assert order("--index", str(tmp_path / "ix.sqlite")) == found  # cold
    assert order("--index", str(tmp_path / "ix.sqlite")) == found  # warm
