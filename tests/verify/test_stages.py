"""verify.stages: VSAs from earlier stages and approvals, checked for this very artefact."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.verify import _factory as f
from verify.digests import DigestSet
from verify.errors import MalformedEvidence, PolicyViolation, SignatureInvalid
from verify.formats.evidence import Evidence, load_evidence
from verify.formats.statement import APPROVAL_V1, VSA_V1
from verify.gate import _statements
from verify.policy import ApprovalRequirement, Policy, ProvenanceRules, StageRule, VsaRequirement
from verify.sigstore.verifier import BundleVerifier
from verify.stages import Bound, check_stage
from verify.trust import Identity, SigstoreIdentity, load_public_key

KEYS = {name: f.private_key("p256", i) for i, name in enumerate(["dev", "stg", "prd", "alice", "bob", "eve"])}
DIGESTS = DigestSet(f.digest_set(f.ARTIFACT))
PROVENANCE_TIME = datetime(2024, 5, 1, 10, 5, 30, tzinfo=UTC)
#: The provenance the factory's VSAs name in their inputAttestations.
PROVENANCE = "ef" * 32


def _policy(*, approvals: int = 0, stg_resources: tuple[str, ...] = (), vsa: bool = True) -> Policy:
    identities = {
        name: Identity(name=name, keys=(load_public_key(f.public_pem(key), name=name),))
        for name, key in KEYS.items()
        if name != "eve"
    }
    stages = {
        "stg": StageRule(name="stg", verifier="stg", resource_uris=stg_resources),
        "prd": StageRule(
            name="prd",
            verifier="prd",
            require_vsa=(VsaRequirement(stage="stg", signed_by=("stg",)),) if vsa else (),
            require_approvals=ApprovalRequirement(count=approvals, signed_by=("alice", "bob"))
            if approvals
            else None,
        ),
    }
    return Policy(identities=identities, provenance=ProvenanceRules(signed_by=("dev",)), stages=stages)


def _signed(statement: dict[str, Any], signer: str, source: str) -> Evidence:
    [item] = load_evidence(
        f.json_line(f.envelope_dict(f.payload_of(statement), [KEYS[signer]])), source=source
    )
    assert isinstance(item, Evidence)
    return item


def _vsa(
    signer: str = "stg", *, source: str = "vsa:1", artefact: bytes = f.ARTIFACT, **predicate: Any
) -> Evidence:
    statement = f.statement(
        [("dist/app.tar.gz", f.digest_set(artefact))], predicate_type=f.VSA_V1, predicate=f.vsa(**predicate)
    )
    return _signed(statement, signer, source)


def _approval(
    signer: str, *, stage: str = "prd", when: str | None = "2024-05-03T09:00:00Z", source: str | None = None
) -> Evidence:
    predicate: dict[str, Any] = {"stage": stage}
    if when is not None:
        predicate["timeApproved"] = when
    statement = f.statement(predicate_type=APPROVAL_V1, predicate=predicate)
    return _signed(statement, signer, source or f"approval-{signer}:1")


def _check(
    evidence: Sequence[Evidence | MalformedEvidence],
    policy: Policy | None = None,
    *,
    time: datetime | None = PROVENANCE_TIME,
    provenance: str = PROVENANCE,
    bundle_verifier: BundleVerifier | None = None,
) -> list[Any]:
    policy = policy or _policy()
    return check_stage(
        policy.stages["prd"],
        policy=policy,
        vsas=_statements(evidence, VSA_V1),
        approvals=_statements(evidence, APPROVAL_V1),
        digests=DIGESTS,
        bound=Bound(sha256=provenance, time=time, source="prov:1"),
        run=policy.trust_run(bundles=bundle_verifier),
    )


def _violation(
    match: str, evidence: Sequence[Evidence | MalformedEvidence], policy: Policy | None = None, **kwargs: Any
) -> str:
    with pytest.raises(PolicyViolation) as info:
        _check(evidence, policy, **kwargs)
    assert match in str(info.value), str(info.value)
    return str(info.value)


def test_vsa_from_the_required_stage_passes() -> None:
    vsa = _vsa()
    [found] = _check([vsa])
    assert (found.kind, found.stage, found.signer, found.source, found.sha256) == (
        "vsa",
        "stg",
        "stg",
        "vsa:1",
        vsa.digest,
    )
    assert found.time == datetime(2024, 5, 2, 8, 0, tzinfo=UTC)
    assert json.loads(json.dumps(found.to_dict()))["time"] == "2024-05-02T08:00:00Z"


def test_no_vsa() -> None:
    [bad] = load_evidence(b"{", source="junk:1")
    message = _violation("no VSA from stage 'stg' was found for sha256:", [bad, _approval("alice")])
    assert message.startswith("stage 'prd' requires stage 'stg' to have verified this artefact, but ")


def test_vsa_for_another_artefact() -> None:
    _violation("the 1 VSA(s) found are for another artefact, none for", [_vsa(artefact=b"other")])


@pytest.mark.parametrize(("signer", "who"), [("dev", "'dev'"), ("prd", "'prd'"), ("eve", "an untrusted key")])
def test_vsa_signed_by_someone_else(signer: str, who: str) -> None:
    _violation(f"the VSA in vsa:1 is signed by {who}, not by stg", [_vsa(signer)])


def test_vsa_unreadable() -> None:
    _violation(
        "the VSA in vsa:1 is unreadable (verification summary timeVerified '' is not an RFC 3339 time",
        [_vsa(timeVerified="")]
    )


def test_vsa_for_another_stage() -> None:
    _violation(
        "the VSA in vsa:1 is for 'attest:stage:prd', not stage 'stg'", [_vsa(resourceUri="attest:stage:prd")]
    )


def test_vsa_resource_uri_named_by_the_policy() -> None:
    arn = "arn:aws:codepipeline:eu-west-1:333333333333:app-stg"
    _violation(f"is for {arn!r}, not stage 'stg'", [_vsa(resourceUri=arn)])
    assert _check([_vsa(resourceUri=arn)], _policy(stg_resources=(arn,)))[0].stage == "stg"


def test_vsa_that_failed() -> None:
    _violation("the VSA in vsa:1 says FAILED", [_vsa(verificationResult="FAILED")])


def test_vsa_older_than_the_provenance() -> None:
    _violation(
        "the VSA in vsa:1 (2024-05-02T08:00:00Z) is older than the provenance it should vouch for "
        "(2024-05-03T00:00:00Z)",
        [_vsa()],
        time=datetime(2024, 5, 3, tzinfo=UTC),
    )


def test_a_vsa_dated_after_the_verification_does_not_count() -> None:
    """A signer's clock ahead, or a forged time: not believed (a VSA is never from the future)."""
    _violation("the VSA in vsa:1 is dated 2999-01-01T00:00:00Z, after the time of this verification",
               [_vsa(timeVerified="2999-01-01T00:00:00Z")])


def test_a_provenance_without_a_build_time_cannot_be_ordered_so_no_vsa_counts() -> None:
    """Finding 8: a provenance with no time and a VSA dated 1970 must not pass (the check was skipped)."""
    _violation("the provenance prov:1 records no build time", [_vsa(timeVerified="1970-01-01T00:00:00Z")],
               time=None)
    _violation("the provenance prov:1 records no build time", [_vsa()], time=None)


def test_a_vsa_for_another_provenance_of_the_same_bytes_does_not_count() -> None:
    """Finding 8: inputAttestations bind the VSA to the provenance stg verified."""
    message = _violation("does not name the provenance prov:1", [_vsa()], provenance="12" * 32)
    assert "among its inputAttestations" in message
    _violation("does not name the provenance", [_vsa(inputAttestations=[])])


def test_a_vsa_that_names_no_policy_does_not_count() -> None:
    _violation("does not name the policy it was verified under", [_vsa(policy={"uri": "file:///p"})])
    _violation("does not name the policy it was verified under",
               [_vsa(policy={"uri": "file:///p", "digest": {"sha256": "not hex"}})])


def test_the_problem_of_the_vsa_that_got_furthest_is_reported_and_a_good_vsa_among_bad_ones_passes() -> None:
    bad = [_vsa("dev", source="a:1"), _vsa(verificationResult="FAILED", source="b:1")]
    _violation("the VSA in b:1 says FAILED", bad)
    _violation("the VSA in a:1 is signed by 'dev'", bad[:1])
    assert _check([*bad, _vsa(source="c:1")])[0].source == "c:1"


def test_non_vsa_and_unreadable_statements_are_ignored() -> None:
    not_intoto = load_evidence(
        f.json_line(f.envelope_dict(b"{}", [KEYS["stg"]], payload_type="text/plain")), source="t:1"
    )
    broken = load_evidence(f.json_line(f.envelope_dict(b"[]", [KEYS["stg"]])), source="b:1")
    _violation("no VSA from stage 'stg'", [*not_intoto, *broken, _signed(f.statement(), "stg", "prov:1")])


def _certificate_vsa() -> Evidence:
    """A keyless VSA bundle; its certificate is not read by anything here but the (test) bundle verifier."""
    envelope = f.envelope_dict(f.payload_of(f.statement(predicate_type=f.VSA_V1, predicate=f.vsa())), [])
    envelope["signatures"] = [{"sig": f.b64(b"signature checked by Sigstore")}]
    bundle = {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"certificate": {"rawBytes": "MIIB"}},
        "dsseEnvelope": envelope,
    }
    [item] = load_evidence(json.dumps(bundle).encode(), source="vsa.sigstore.json")
    assert isinstance(item, Evidence) and item.has_certificate
    return item


def test_certificate_vsa_needs_sigstore_support() -> None:
    _violation("the VSA in vsa.sigstore.json is signed by an untrusted key, not by stg", [_certificate_vsa()])
    policy = _policy()
    keyless = SigstoreIdentity(issuer="https://issuer.example", identity="stg@example.com")
    policy = Policy(identities={**policy.identities, "stg": Identity(name="stg", sigstore=(keyless,))},
                    provenance=policy.provenance, stages=policy.stages)
    _violation("the VSA in vsa.sigstore.json is signed by an untrusted key, not by stg", [_certificate_vsa()],
               policy)  # a keyless identity, but no Sigstore support given
    calls: list[list[str]] = []

    def bundle_verifier(item: Evidence, identities: Sequence[Identity], *,
                        message: DigestSet | None, budget: Any) -> Any:
        calls.append([i.name for i in identities])
        if [i.name for i in identities] != ["stg"]:
            raise SignatureInvalid(f"{item.source}: not signed by {identities[0].name}")
        return (identities[0],), None

    [found] = _check([_certificate_vsa()], policy, bundle_verifier=bundle_verifier)
    assert (found.signer, found.source) == ("stg", "vsa.sigstore.json")
    assert calls == [["stg"]]


# --- approvals ------------------------------------------------------------------------------------


def test_approvals_counted_per_distinct_identity() -> None:
    found = _check(
        [_vsa(), _approval("alice"), _approval("alice", source="again:1"), _approval("bob")],
        _policy(approvals=2),
    )
    assert [(e.kind, e.signer) for e in found] == [("vsa", "stg"), ("approval", "alice"), ("approval", "bob")]
    assert found[1].time == datetime(2024, 5, 3, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("approvals", "found"),
    [
        ([], "found 0 (none)"),
        ([("alice", {})], "found 1 (alice)"),
        ([("alice", {}), ("alice", {"source": "again:1"})], "found 1 (alice)"),
        ([("alice", {}), ("eve", {})], "found 1 (alice)"),
        ([("alice", {}), ("dev", {})], "found 1 (alice)"),
        ([("alice", {}), ("bob", {"stage": "stg"})], "found 1 (alice)"),
        ([("alice", {}), ("bob", {"when": "yesterday"})], "found 1 (alice)"),
        ([("alice", {}), ("bob", {"when": None})], "found 1 (alice)"),
        ([("alice", {}), ("bob", {"when": "2024-05-01T10:00:00Z"})], "found 1 (alice)"),  # before the build
        ([("alice", {}), ("bob", {"when": "0001-01-01T00:00:00+01:00"})], "found 1 (alice)"),
        ([("alice", {}), ("bob", {"when": "2999-01-01T00:00:00Z"})], "found 1 (alice)"),  # after now
    ],
)
def test_too_few_approvals(approvals: list[tuple[str, dict[str, Any]]], found: str) -> None:
    evidence = [_vsa(), *(_approval(signer, **options) for signer, options in approvals)]
    _violation(
        f"stage 'prd' requires 2 approval(s) from alice, bob, but {found}", evidence, _policy(approvals=2)
    )


def test_approval_for_another_artefact_does_not_count() -> None:
    other = f.statement(
        [("x", f.digest_set(b"x"))],
        predicate_type=APPROVAL_V1,
        predicate={"stage": "prd", "timeApproved": "2024-05-03T09:00:00Z"},
    )
    _violation("but found 0 (none)", [_vsa(), _signed(other, "alice", "x:1")], _policy(approvals=1))


def test_approvals_for_a_provenance_without_a_build_time_do_not_count() -> None:
    message = _violation("but found 0 (none)", [_approval("alice")], _policy(approvals=1, vsa=False), time=None)
    assert "records no build time" in message
