"""Only signed times are times (issue 23, class 2).

A Rekor v2 bundle carries no inclusion promise: its log entry's ``integratedTime`` is signed by nothing,
and the time it was signed at comes from an RFC 3161 timestamp. Whatever integrated time is added to such
a bundle, the verdict's time is the timestamp's, the log key's validity is judged at that time, and a stage
requirement ordered against the provenance's time counts the approvals the signed time allows, no more.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import CONFORMANCE
from tests.verify import _factory as f
from verify.digests import DigestSet
from verify.errors import PolicyViolation
from verify.formats.encoding import format_time
from verify.formats.evidence import Evidence, load_evidence
from verify.formats.statement import APPROVAL_V1
from verify.gate import Gate, decide
from verify.policy import ApprovalRequirement, Policy, ProvenanceRules, StageRule
from verify.sigstore.verifier import make_bundle_verifier
from verify.trust import Identity, SigstoreIdentity, load_public_key

SUITE = CONFORMANCE / "sigstore-conformance" / "test" / "assets" / "bundle-verify"
CASE = SUITE / "rekor2-dsse-happy-path"
BEACON = ("https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/"
          "extremely-dangerous-oidc-beacon.yml@refs/heads/main")
ISSUER = "https://token.actions.githubusercontent.com"
ALICE = f.private_key("p256", 3)


def _bundle(integrated: int | None) -> Evidence:
    bundle = json.loads((CASE / "bundle.sigstore.json").read_bytes())
    entry = bundle["verificationMaterial"]["tlogEntries"][0]
    assert "inclusionPromise" not in entry and "integratedTime" not in entry  # what makes this case
    if integrated is not None:
        entry["integratedTime"] = str(integrated)
    [item] = load_evidence(json.dumps(bundle).encode(), source="provenance.sigstore.json")
    assert isinstance(item, Evidence)
    return item


def _subject() -> dict[str, str]:
    statement = _bundle(None).statement()
    return dict(statement.subjects[0].digest)


def _policy() -> Policy:
    beacon = Identity(name="beacon", sigstore=(SigstoreIdentity(issuer=ISSUER, identity=BEACON),))
    alice = Identity(name="alice", keys=(load_public_key(f.public_pem(ALICE), name="alice.pem"),))
    return Policy(identities={"beacon": beacon, "alice": alice},
                  provenance=ProvenanceRules(signed_by=("beacon",), check_parameters=False),
                  stages={"prd": STAGE})


STAGE = StageRule(name="prd", require_approvals=ApprovalRequirement(count=1, signed_by=("alice",)))
VERIFIER = make_bundle_verifier(trusted_root=CASE / "trusted_root.json")


def _approval(at: datetime) -> Evidence:
    statement = f.statement([("a", _subject())], predicate_type=APPROVAL_V1, predicate={
        "stage": "prd", "approver": "alice", "reason": "r", "timeApproved": format_time(at)})
    [item] = load_evidence(f.json_line(f.envelope_dict(f.payload_of(statement), [ALICE])), source="approval.jsonl")
    assert isinstance(item, Evidence)
    return item


def _decide(evidence: list[Evidence], stage: StageRule | None = None) -> Any:
    policy = _policy()
    gate = Gate(policy=policy, stage=stage)
    return decide(gate, evidence, artifact="a", digests=DigestSet(_subject()),
                  run=policy.trust_run(bundles=VERIFIER))


def _signed_time() -> datetime:
    passed = _decide([_bundle(None)])
    [check] = [c for c in passed.verdict.checks if c.name == "signedTime"]
    assert check.expected == "an RFC 3161 timestamp"
    return datetime.fromisoformat(check.found.replace("Z", "+00:00"))


def test_a_timestamped_bundle_is_dated_by_its_timestamp() -> None:
    signed = _signed_time()
    assert datetime(2025, 1, 1, tzinfo=UTC) < signed < datetime.now(UTC)


@settings(max_examples=25, deadline=None)
@given(shift=st.integers(min_value=-20 * 365 * 86400, max_value=20 * 365 * 86400))
def test_an_integrated_time_nothing_signs_changes_nothing(shift: int) -> None:
    signed = _signed_time()
    injected = max(1, int(signed.timestamp()) + shift)
    passed = _decide([_bundle(injected)])
    [check] = [c for c in passed.verdict.checks if c.name == "signedTime"]
    assert (check.expected, check.found) == ("an RFC 3161 timestamp", format_time(signed))
    assert passed.candidate.time == signed


@pytest.mark.parametrize("hours", [-48, -1, 1])
def test_approvals_are_ordered_against_the_signed_time_not_an_added_one(hours: int) -> None:
    signed = _signed_time()
    approval = _approval(signed + timedelta(hours=hours))
    for injected in (None, int((signed - timedelta(days=7)).timestamp())):
        if hours > 0:
            assert [s.kind for s in _decide([_bundle(injected), approval], STAGE).stages] == ["approval"]
        else:  # an approval dated before the build counts for nothing, whatever time the bundle is given
            with pytest.raises(PolicyViolation, match="requires 1 approval"):
                _decide([_bundle(injected), approval], STAGE)


