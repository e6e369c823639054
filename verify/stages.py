"""Stage gates: did the earlier stage verify this very artefact, and did enough people approve it?

For each VSA a stage requires, in order:

  (1) find    statements in the evidence that are VSAs for this artefact's digest
  (2) signer  signed by an identity the requirement names (not merely by anyone the policy trusts)
  (3) stage   its resourceUri names the required stage
  (4) result  verificationResult is PASSED
  (5) time    timeVerified is not older than the provenance it vouches for

Approvals: N distinct identities from the allowed list signed an approval for this artefact and stage.

Signers are used as the policy allows them at the verification time (revoked keys never, identities
only inside their validity window), and every signature verification of one call comes out of one
:class:`~verify.verifier.VerificationBudget`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from verify.envelope import INTOTO_PAYLOAD_TYPE
from verify.errors import EvidenceRejected, MalformedEvidence, PolicyViolation, SignatureInvalid
from verify.evidence import Evidence
from verify.policy import Policy, StageRule
from verify.statement import APPROVAL_V1, VSA_V1, Statement, parse_statement, read_vsa
from verify.trust import Identity
from verify.verifier import (
    KEYLESS_BUNDLE_COST,
    VerificationBudget,
    accepted_algorithms,
    verify_signature,
)

__all__ = ["StageEvidence", "check_stage"]

BundleVerifier = Callable[[Evidence, Sequence[Identity]], Identity]


@dataclass(frozen=True)
class StageEvidence:
    """A VSA or approval that satisfied a stage requirement."""

    kind: str
    stage: str
    signer: str
    time: datetime
    source: str
    sha256: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "stage": self.stage, "signer": self.signer, "time": self.time.isoformat(),
                "source": self.source, "sha256": self.sha256}


def _statements(evidence: Sequence[Evidence | MalformedEvidence],
                predicate_type: str) -> list[tuple[Evidence, Statement]]:
    found = []
    for item in evidence:
        if isinstance(item, MalformedEvidence) or item.envelope is None:
            continue
        if item.envelope.payload_type != INTOTO_PAYLOAD_TYPE:
            continue
        try:
            statement = parse_statement(item.envelope.payload, what=f"{item.source} statement")
        except EvidenceRejected:
            continue
        if statement.predicate_type == predicate_type:
            found.append((item, statement))
    return found


def _matches(statement: Statement, digests: Mapping[str, str], accepted: Sequence[str]) -> bool:
    return statement.subject_matching(digests, tuple(a for a in accepted if a in digests)) is not None


@dataclass(frozen=True)
class _Run:
    """What every signature check of one :func:`check_stage` call shares."""

    at: datetime
    budget: VerificationBudget
    bundle_verifier: BundleVerifier | None
    policy: Policy


def _signer(item: Evidence, identities: Sequence[Identity], run: _Run) -> Identity:
    usable = run.policy.usable(identities, run.at)
    if item.has_certificate:
        if run.bundle_verifier is None:
            raise SignatureInvalid(f"{item.source}: a Sigstore bundle needs Sigstore support to verify")
        run.budget.spend(KEYLESS_BUNDLE_COST, source=item.source)
        return run.bundle_verifier(item, usable)
    assert item.envelope is not None
    return verify_signature(item.envelope, usable, source=item.source, budget=run.budget, at=run.at)


def _who_signed(item: Evidence, policy: Policy, run: _Run) -> str:
    """Which policy identity signed ``item`` (for a helpful message), or 'an untrusted key'."""
    try:
        return repr(_signer(item, list(policy.identities.values()), run).name)
    except EvidenceRejected:
        return "an untrusted key"


def check_stage(stage: StageRule, *, policy: Policy, evidence: Sequence[Evidence | MalformedEvidence],
                digests: Mapping[str, str], not_before: datetime | None,
                bundle_verifier: BundleVerifier | None = None, at: datetime | None = None,
                budget: VerificationBudget | None = None) -> list[StageEvidence]:
    """Check every VSA and approval ``stage`` requires; raise :class:`PolicyViolation` naming what is missing.

    ``at`` is the verification time for the policy's key windows (default: now); ``budget``
    bounds the signature verifications of this call (default: a fresh one).
    """
    run = _Run(at=datetime.now(UTC) if at is None else at,
               budget=VerificationBudget() if budget is None else budget, bundle_verifier=bundle_verifier,
               policy=policy)
    short = ", ".join(f"{a}:{d[:16]}..." for a, d in digests.items())
    accepted = accepted_algorithms(policy)
    found: list[StageEvidence] = []
    vsas = _statements(evidence, VSA_V1)
    for requirement in stage.require_vsa:
        required = policy.stages.get(requirement.stage, StageRule(name=requirement.stage))
        signers = [policy.identities[name] for name in requirement.signed_by]
        problems: list[str] = []
        other_artifacts = 0
        for item, statement in vsas:
            # (1) for this artefact
            if not _matches(statement, digests, accepted):
                other_artifacts += 1
                continue
            # (2) by the identity the requirement names
            try:
                identity = _signer(item, signers, run)
            except EvidenceRejected:
                problems.append(f"the VSA in {item.source} is signed by {_who_signed(item, policy, run)}, "
                                f"not by {' or '.join(requirement.signed_by)}")
                continue
            try:
                summary = read_vsa(statement)
            except EvidenceRejected as e:
                problems.append(f"the VSA in {item.source} is unreadable ({e})")
                continue
            # (3) for the required stage
            if not required.accepts_resource(summary.resource_uri):
                problems.append(f"the VSA in {item.source} is for {summary.resource_uri!r}, not stage "
                                f"{requirement.stage!r}")
                continue
            # (4) a pass
            if summary.result != "PASSED":
                problems.append(f"the VSA in {item.source} says {summary.result}")
                continue
            # (5) not older than the provenance
            if not_before is not None and summary.time_verified < not_before:
                problems.append(f"the VSA in {item.source} ({summary.time_verified.isoformat()}) is older than the "
                                f"provenance it should vouch for ({not_before.isoformat()})")
                continue
            found.append(StageEvidence(kind="vsa", stage=requirement.stage, signer=identity.name,
                                       time=summary.time_verified, source=item.source, sha256=item.digest))
            break
        else:
            if problems:
                detail = problems[0]
            elif other_artifacts:
                detail = f"the {other_artifacts} VSA(s) found are for another artefact, none for {short}"
            else:
                detail = f"no VSA from stage {requirement.stage!r} was found for {short}"
            raise PolicyViolation(f"stage {stage.name!r} requires stage {requirement.stage!r} to have verified this "
                                  f"artefact, but {detail}")
    if stage.require_approvals is not None:
        found.extend(_check_approvals(stage, policy=policy, evidence=evidence, digests=digests, run=run))
    return found


def _check_approvals(stage: StageRule, *, policy: Policy, evidence: Sequence[Evidence | MalformedEvidence],
                     digests: Mapping[str, str], run: _Run) -> list[StageEvidence]:
    rule = stage.require_approvals
    assert rule is not None
    approvers: dict[str, StageEvidence] = {}
    for item, statement in _statements(evidence, APPROVAL_V1):
        if not _matches(statement, digests, accepted_algorithms(policy)):
            continue
        if statement.predicate.get("stage") != stage.name:
            continue
        for name in rule.signed_by:
            if name in approvers:
                continue
            try:
                _signer(item, [policy.identities[name]], run)
            except EvidenceRejected:
                continue
            try:
                when = datetime.fromisoformat(str(statement.predicate.get("timeApproved")).replace("Z", "+00:00"))
            except ValueError:
                continue  # an approval without a readable time does not count
            approvers[name] = StageEvidence(kind="approval", stage=stage.name, signer=name, time=when,
                                            source=item.source, sha256=item.digest)
            break
    if len(approvers) < rule.count:
        have = ", ".join(sorted(approvers)) or "none"
        raise PolicyViolation(f"stage {stage.name!r} requires {rule.count} approval(s) from "
                              f"{', '.join(rule.signed_by)}, but found {len(approvers)} ({have})")
    return list(approvers.values())
