"""What each environment deployed, judged against its gate: prd ran an artefact with stg's VSA signed before and
after stg ran it (require-vsa, require-deployed), or the audit says which requirement it skipped. A pipeline that
deployed without its gate still signs a true deployment record; the audit is where that shows."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from attest.summaries import approval_statement
from tests import factory as f
from tests.conftest import AttestRunner, KeyPair, make_keypair
from tests.dora.history import NOW, _record, _version, write_policy


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, KeyPair]:
    (tmp_path / "keys").mkdir()
    return {n: make_keypair(tmp_path / "keys", n) for n in ("dev", "release", "stg", "prd", "stgv", "mallory")}


def _gated(tmp_path: Path, keys: dict[str, KeyPair], hotfix: bool = False, prd: str = "",
           level: bool = False) -> None:
    """The policy: prd requires stg's VSA and stg to have run it first (``prd``: more of prd's rules, ``level``: its
    min-level 3, where the builder is trusted for level 2)."""
    write_policy(tmp_path, keys)
    text = (tmp_path / "policy.yaml").read_text().replace(
        "provenance:", f'  stg-verifier: {{keys: ["{keys["stgv"].public}"]}}\nprovenance:').replace(
        "  prd: {deployed-by: [prd-deployer]}",
        "  prd: {require-vsa: [stg], require-deployed: [stg], deployed-by: [prd-deployer]" + prd
        + (", min-level: 3" if level else "")
        + (", hotfix: {require-approvals: {count: 1, signed-by: [release-manager]}}" if hotfix else "") + "}").replace(
        "  stg: {deployed-by: [stg-deployer]}", "  stg: {verifier: stg-verifier, deployed-by: [stg-deployer]}")
    if level:
        text = text.replace("provenance:\n  signed-by: [dev-build]",
                            f'provenance:\n  signed-by: [dev-build]\n  builders: [{{id: "{f.BUILDER}", level: 2}}]')
    (tmp_path / "policy.yaml").write_text(text)


def _through_stg(store: Path, keys: dict[str, KeyPair], version: dict[str, Any], at: datetime, *,
                 inputs: Any = None) -> None:
    """stg verified ``version`` an hour after ``at`` (its VSA naming the provenance, as attest verify --emit-vsa
    signs it, unless ``inputs`` say otherwise) and ran it an hour later."""
    f.publish(store, f.vsa(keys["stgv"].private, name="app.zip", artifact=version["artifacts"][0][1], stage="stg",
                           at=at + timedelta(hours=1), inputs=version["provenance"] if inputs is None else inputs))
    _record(store, keys["stg"].private, version, env="stg", at=at + timedelta(hours=2))


def _anomalies(attest: AttestRunner, tmp_path: Path) -> list[tuple[str, str]]:
    ran = attest("audit", "store", "--policy", "policy.yaml", "--format", "json", "--no-index", cwd=tmp_path)
    assert ran.code in (0, 1) and "Traceback" not in ran.err, ran
    found = json.loads(ran.out)["anomalies"]
    return sorted((a["kind"], a["message"].split(" at ")[-1].split(" ", 1)[1]) for a in found)  # (after the time)


def test_prd_ran_what_stg_verified_and_ran_first(tmp_path: Path, keys: dict[str, KeyPair],
                                                 attest: AttestRunner) -> None:
    _gated(tmp_path, keys)
    store = tmp_path / "store"
    built = NOW - timedelta(days=8)
    v1 = _version(store, keys, 1, built)
    _through_stg(store, keys, v1, built)
    _record(store, keys["prd"].private, v1, env="prd", at=built + timedelta(hours=3))
    assert _anomalies(attest, tmp_path) == []


def test_prd_ran_what_no_stg_verified_or_ran(tmp_path: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    _gated(tmp_path, keys)
    store = tmp_path / "store"
    built = NOW - timedelta(days=8)
    v1 = _version(store, keys, 1, built)
    _record(store, keys["prd"].private, v1, env="prd", at=built + timedelta(hours=3))
    assert _anomalies(attest, tmp_path) == [
        ("skipped-stage", "without its having run in 'stg' first, as it requires"),
        ("skipped-stage", "without the VSA from stage 'stg' that it requires (naming a provenance of it and a policy)")]
    # stg verified and ran it, but after prd had
    _through_stg(store, keys, v1, built + timedelta(hours=3))
    found = _anomalies(attest, tmp_path)
    assert [kind for kind, _ in found] == ["out-of-order", "out-of-order"], found
    assert any(why.startswith("before stage 'stg' verified it") for _, why in found)
    assert any(why.startswith("before it ran in 'stg'") for _, why in found)


@pytest.mark.parametrize("allowed", [True, False])
def test_a_hotfix_skips_stg_only_where_prd_allows_hotfixes(tmp_path: Path, keys: dict[str, KeyPair],
                                                           attest: AttestRunner, allowed: bool) -> None:
    _gated(tmp_path, keys, hotfix=allowed)
    store = tmp_path / "store"
    built = NOW - timedelta(days=8)
    v1 = _version(store, keys, 1, built)
    if allowed:  # (where no hotfix may, an approval of one is signed by no approver of hotfixes)
        _hotfix_approval(store, keys["release"], v1, at=built + timedelta(hours=2))
    _record(store, keys["prd"].private, v1, env="prd", at=built + timedelta(hours=3), kind="hotfix")
    assert _anomalies(attest, tmp_path) == ([] if allowed else [
        ("skipped-stage", "as a hotfix, which stages.prd does not allow")])


@pytest.mark.parametrize("approved", ["never", "after", "by a stranger", "before its release was made"])
def test_a_hotfix_without_its_approvals_before_it_is_found(tmp_path: Path, keys: dict[str, KeyPair],
                                                           attest: AttestRunner, approved: str) -> None:
    """The gate lets a hotfix through only with its release's hotfix approvals, signed after the manifest was made:
    one deployed without them (the gate skipped, an approval signed afterwards, or backdated to before its
    release) is a missing approval, with the index and without."""
    _gated(tmp_path, keys, hotfix=True)
    store = tmp_path / "store"
    built = NOW - timedelta(days=8)
    v1 = _version(store, keys, 1, built)
    _record(store, keys["prd"].private, v1, env="prd", at=built + timedelta(hours=3), kind="hotfix")
    ran = attest("audit", "store", "--policy", "policy.yaml", "--format", "json", cwd=tmp_path)  # fills the index
    assert ran.code == 1, ran
    if approved != "never":
        hours = {"after": 4, "by a stranger": 2, "before its release was made": -1}[approved]
        _hotfix_approval(store, keys["mallory" if approved == "by a stranger" else "release"], v1,
                         at=built + timedelta(hours=hours))  # (the release is made a minute after the build)
    found = _anomalies(attest, tmp_path)
    assert ("missing-approval", "as a hotfix with 0 of the 1 hotfix approval(s) of its release that "
            "stages.prd.hotfix requires, signed before it") in found, found
    indexed = attest("audit", "store", "--policy", "policy.yaml", "--format", "json", cwd=tmp_path)
    assert json.loads(indexed.out)["anomalies"] == json.loads(attest(
        "audit", "store", "--policy", "policy.yaml", "--format", "json", "--no-index", cwd=tmp_path).out)["anomalies"]
    if approved == "after":  # approved in time, and the index judges the hotfix again
        _hotfix_approval(store, keys["release"], v1, at=built + timedelta(hours=2, minutes=30))
        again = attest("audit", "store", "--policy", "policy.yaml", "--format", "json", cwd=tmp_path)
        assert again.code == 0 and json.loads(again.out)["anomalies"] == [], again


def _hotfix_approval(store: Path, signer: KeyPair, release: dict[str, object], *, at: datetime) -> None:
    f.publish(store, f.sign(signer.private, approval_statement(
        subject_name=f"release {release['name']}", digests={"sha256": str(release["line"])}, stage="prd",
        approver="rm", reason="the outage", approved_at=at, hotfix=True)))


def test_a_rollback_goes_back_to_what_ran_there_whatever_the_stage_requires(tmp_path: Path, keys: dict[str, KeyPair],
                                                                           attest: AttestRunner) -> None:
    """As the gate's --rollback: a release that ran in prd may run there again without stg (a hotfix took it there
    first), and one that never ran in prd is no rollback, whatever stg did."""
    _gated(tmp_path, keys, hotfix=True)
    store = tmp_path / "store"
    built = NOW - timedelta(days=8)
    v1, v2 = _version(store, keys, 1, built), _version(store, keys, 2, built + timedelta(days=1))
    _hotfix_approval(store, keys["release"], v1, at=built + timedelta(hours=2))
    _record(store, keys["prd"].private, v1, env="prd", at=built + timedelta(hours=3), kind="hotfix")
    at = built + timedelta(days=1)
    _through_stg(store, keys, v2, at)
    _record(store, keys["prd"].private, v2, env="prd", at=at + timedelta(hours=3))
    _record(store, keys["prd"].private, v1, env="prd", at=at + timedelta(hours=4), kind="rollback")
    assert _anomalies(attest, tmp_path) == []
    # v3 went through stg, never through prd: a "rollback" to it is none
    v3 = _version(store, keys, 3, built + timedelta(days=2))
    at = built + timedelta(days=2)
    _through_stg(store, keys, v3, at)
    _record(store, keys["prd"].private, v3, env="prd", at=at + timedelta(hours=3), kind="rollback")
    assert _anomalies(attest, tmp_path) == [("skipped-stage", "as a rollback, though it never ran there before")]


@pytest.mark.parametrize("rule", ["require-approvals", "min-level"])
def test_prd_ran_what_its_approvals_or_its_level_did_not_allow(tmp_path: Path, keys: dict[str, KeyPair],
                                                              attest: AttestRunner, rule: str) -> None:
    """prd verifies nothing of its own (no prd VSA), so its gate's approvals and level are asked of the deployment
    record: one deployed without them passed the audit."""
    _gated(tmp_path, keys, prd=", require-approvals: {count: 1, signed-by: [release-manager]}"
           if rule == "require-approvals" else "", level=rule == "min-level")
    store = tmp_path / "store"
    built = NOW - timedelta(days=8)
    v1 = _version(store, keys, 1, built)
    _through_stg(store, keys, v1, built)
    _record(store, keys["prd"].private, v1, env="prd", at=built + timedelta(hours=3))
    if rule == "min-level":
        assert _anomalies(attest, tmp_path) == [
            ("insufficient-level", "though no builder trusted for the SLSA build level 3 it requires built it")]
        return
    missing = [("missing-approval", "with 0 of the 1 approval(s) it requires from release-manager, signed between "
                                    "its build and then")]
    assert _anomalies(attest, tmp_path) == missing
    for hours in (-2, 4):  # before the build, after the deployment: neither counts
        f.publish(store, f.approval(keys["release"].private, name="app.zip", artifact=b"app v1", stage="prd",
                                    approver="rm", at=built + timedelta(hours=hours)))
        assert _anomalies(attest, tmp_path) == missing
    f.publish(store, f.approval(keys["release"].private, name="app.zip", artifact=b"app v1", stage="prd",
                                approver="rm", at=built + timedelta(hours=2, minutes=30)))
    assert _anomalies(attest, tmp_path) == []


@pytest.mark.parametrize("names", ["no provenance", "another provenance"])
def test_a_stg_vsa_that_names_another_provenance_is_no_stg_vsa(tmp_path: Path, keys: dict[str, KeyPair],
                                                                attest: AttestRunner, names: str) -> None:
    """As the gate counts it: stg's VSA must name, among its inputAttestations, the provenance prd relies on (a
    trusted one of these bytes that the rules pass); one that names none, or another build's, vouched for neither."""
    _gated(tmp_path, keys)
    store = tmp_path / "store"
    built = NOW - timedelta(days=8)
    v1, v2 = _version(store, keys, 1, built), _version(store, keys, 2, built + timedelta(days=1))
    _through_stg(store, keys, v1, built, inputs=() if names == "no provenance" else v2["provenance"])
    _record(store, keys["prd"].private, v1, env="prd", at=built + timedelta(hours=3))
    assert _anomalies(attest, tmp_path) == [("skipped-stage", "without the VSA from stage 'stg' that it requires "
                                                              "(naming a provenance of it and a policy)")]


@pytest.mark.parametrize("kind", ["hotfix", "rollback"])
def test_a_hotfix_or_a_rollback_still_needs_a_builder_of_the_stages_level(tmp_path: Path, keys: dict[str, KeyPair],
                                                                         attest: AttestRunner, kind: str) -> None:
    """The gate's --hotfix and --rollback give way on VSAs, approvals and earlier stages, never on min-level."""
    _gated(tmp_path, keys, hotfix=True, level=True)
    store = tmp_path / "store"
    built = NOW - timedelta(days=8)
    v1 = _version(store, keys, 1, built)
    if kind == "hotfix":
        _hotfix_approval(store, keys["release"], v1, at=built + timedelta(hours=2))
    else:  # it ran in prd (as a hotfix: the ordinary record would be flagged for the level too), then came back
        _hotfix_approval(store, keys["release"], v1, at=built + timedelta(hours=1))
        _record(store, keys["prd"].private, v1, env="prd", at=built + timedelta(hours=2), kind="hotfix")
    _record(store, keys["prd"].private, v1, env="prd", at=built + timedelta(hours=3), kind=kind)
    level = ("insufficient-level", "though no builder trusted for the SLSA build level 3 it requires built it")
    assert _anomalies(attest, tmp_path) == [level] * (1 if kind == "hotfix" else 2)
