"""Stage requirements: did the earlier stage verify this very artefact and provenance, and did enough people approve?

A stage's requirements are checked against one *candidate*: a provenance that already passed the
signature, subject and rule checks (:mod:`verify.verifier`). For each VSA a stage requires, some VSA
in the evidence must pass every step:

  (1) subject   it names this artefact (:func:`verify.matching.subject_matches`, the run's one digest set)
  (2) signer    it is signed by an identity the requirement names (not merely by anyone the policy trusts)
  (3) read      it is a readable SLSA VSA v1
  (4) stage     its resourceUri names the required stage
  (5) result    its verificationResult is PASSED
  (6) bound     its inputAttestations name the candidate provenance (by the sha256 of its bytes): the
                earlier stage verified THIS provenance, not another one of the same bytes
  (7) policy    it names the policy it was verified under (a sha256 digest)
  (8) order     its timeVerified is not older than the provenance's build time; a provenance without
                a time cannot be ordered, and no VSA is accepted for it
  (9) level     when the stage has a ``min-level``: its verifiedLevels state a build level at least that
                (the earlier stage's verifier vouched for the level, not only for a pass)

Approvals: ``count`` distinct identities among those allowed signed an approval that names this
artefact and this stage, dated not before the provenance's build time.

Every signature check goes through :func:`verify.signers.find_signers` with the run's
:class:`~verify.signers.TrustRun` (one budget, one verification time).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from verify.digests import DigestSet
from verify.errors import EvidenceRejected, PolicyViolation
from verify.formats.encoding import format_time
from verify.formats.evidence import Evidence
from verify.formats.statement import Approval, Statement, VerificationSummary, read_approval, read_vsa
from verify.matching import subject_matches
from verify.policy import Policy, StageRule, VsaRequirement
from verify.signers import TrustRun, find_signers, one_person
from verify.trust import Identity

__all__ = ["Bound", "StageEvidence", "check_stage"]

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class StageEvidence:
    """A VSA or approval that satisfied a stage requirement."""

    kind: str
    stage: str
    signer: str
    time: datetime
    source: str
    sha256: str
    """sha256 of the attestation's bytes: what an emitted VSA's ``inputAttestations`` names."""

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "stage": self.stage, "signer": self.signer, "time": format_time(self.time),
                "source": self.source, "sha256": self.sha256}


@dataclass(frozen=True)
class Bound:
    """The candidate provenance the requirements are checked for."""

    sha256: str
    """sha256 of the provenance attestation's bytes (what a VSA's inputAttestations names)."""
    time: datetime | None
    """When it was built, as it says (or as its transparency log entry says); None if it does not say."""
    source: str


Statements = Sequence[tuple[Evidence, Statement]]


def check_stage(stage: StageRule, *, policy: Policy, vsas: Statements, approvals: Statements, digests: DigestSet,
                bound: Bound, run: TrustRun) -> list[StageEvidence]:
    """Every VSA and approval ``stage`` requires, for ``bound``; :class:`PolicyViolation` naming what is missing."""
    found: list[StageEvidence] = []
    for requirement in stage.require_vsa:
        found.append(_required_vsa(stage, requirement, policy=policy, vsas=vsas, digests=digests, bound=bound,
                                   run=run))
    if stage.require_approvals is not None:
        found.extend(_approvals(stage, policy=policy, approvals=approvals, digests=digests, bound=bound, run=run))
    return found


def _required_vsa(stage: StageRule, requirement: VsaRequirement, *, policy: Policy, vsas: Statements,
                  digests: DigestSet, bound: Bound, run: TrustRun) -> StageEvidence:
    required = policy.stages.get(requirement.stage, StageRule(name=requirement.stage))
    problems: list[tuple[int, str]] = []  # (how far it got, why it does not count)
    other_artifacts = 0
    for item, statement in vsas:
        try:
            return _one_vsa(item, statement, requirement, required, policy, digests, bound, run,
                            min_level=stage.min_level)
        except _NotThisArtifact:
            other_artifacts += 1
        except _Refused as e:
            problems.append((e.step, str(e)))
    if problems:
        detail = max(problems, key=lambda p: p[0])[1]
    elif other_artifacts:
        detail = f"the {other_artifacts} VSA(s) found are for another artefact, none for {digests.short()}"
    else:
        detail = f"no VSA from stage {requirement.stage!r} was found for {digests.short()}"
    raise PolicyViolation(f"stage {stage.name!r} requires stage {requirement.stage!r} to have verified this "
                          f"artefact, but {detail}")


class _NotThisArtifact(Exception):
    pass


class _Refused(Exception):
    def __init__(self, step: int, message: str) -> None:
        super().__init__(message)
        self.step = step


def _one_vsa(item: Evidence, statement: Statement, requirement: VsaRequirement, required: StageRule,
             policy: Policy, digests: DigestSet, bound: Bound, run: TrustRun, *, min_level: int) -> StageEvidence:
    """Steps (1) to (9) for one VSA; raises :class:`_Refused` with how far it got."""
    what = f"the VSA in {item.source}"
    # (1) for this artefact
    if not _names_artifact(statement, digests, policy):
        raise _NotThisArtifact
    # (2) by the identity the requirement names
    signer = _vsa_signer(item, requirement, policy, digests, run, what)
    # (3) readable
    summary = _read_vsa(statement, what)
    # (4) for the required stage
    if not required.accepts_resource(summary.resource_uri):
        raise _Refused(4, f"{what} is for {summary.resource_uri!r}, not stage {requirement.stage!r}")
    # (5) a pass
    if summary.result != "PASSED":
        raise _Refused(5, f"{what} says {summary.result}")
    # (6) bound to this provenance
    _check_bound(summary, bound, requirement, what)
    # (7) under a named policy
    _check_policy_named(summary, what)
    # (8) not older than the provenance
    _check_order(summary, bound, what, run)
    # (9) at the level this stage requires
    _check_level(summary, min_level, what)
    return StageEvidence(kind="vsa", stage=requirement.stage, signer=signer.name, time=summary.time_verified,
                         source=item.source, sha256=item.digest)


def _names_artifact(statement: Statement, digests: DigestSet, policy: Policy) -> bool:
    """Whether some subject of ``statement`` is this artefact."""
    return any(subject_matches(s.digest, digests, policy.provenance.digests) for s in statement.subjects)


def _vsa_signer(item: Evidence, requirement: VsaRequirement, policy: Policy, digests: DigestSet, run: TrustRun,
                what: str) -> Identity:
    """(2) The first identity the requirement names that signed the VSA."""
    try:
        return find_signers(item, [policy.identities[n] for n in requirement.signed_by], run, message=digests)[0]
    except EvidenceRejected:
        raise _Refused(2, f"{what} is signed by {_who_signed(item, policy, digests, run)}, not by "
                          f"{' or '.join(requirement.signed_by)}") from None


def _read_vsa(statement: Statement, what: str) -> VerificationSummary:
    """(3) The VSA, read."""
    try:
        return read_vsa(statement)
    except EvidenceRejected as e:
        raise _Refused(3, f"{what} is unreadable ({e})") from e


def _check_bound(summary: VerificationSummary, bound: Bound, requirement: VsaRequirement, what: str) -> None:
    """(6) Its inputAttestations name the candidate provenance."""
    named = {d.digest.get("sha256") for d in summary.input_attestations}
    if bound.sha256 not in named:
        raise _Refused(6, f"{what} does not name the provenance {bound.source} (sha256:{bound.sha256[:16]}...) "
                          f"among its inputAttestations: stage {requirement.stage!r} verified another provenance "
                          "of these bytes, or none")


def _check_policy_named(summary: VerificationSummary, what: str) -> None:
    """(7) It names the policy it was verified under, by a sha256 digest."""
    policy_digest = summary.policy_digest.get("sha256")
    if not isinstance(policy_digest, str) or not _SHA256.fullmatch(policy_digest):
        raise _Refused(7, f"{what} does not name the policy it was verified under (policy.digest.sha256)")


def _check_order(summary: VerificationSummary, bound: Bound, what: str, run: TrustRun) -> None:
    """(8) It was verified no earlier than the provenance was built (which must say when), and not after now."""
    if run.in_the_future(summary.time_verified):
        raise _Refused(8, f"{what} is dated {format_time(summary.time_verified)}, after the time of this verification "
                          f"({format_time(run.at)}): a signer's clock is ahead, or the time is forged")
    if bound.time is None:
        raise _Refused(8, f"the provenance {bound.source} records no build time (runDetails.metadata.finishedOn), "
                          f"so {what} cannot be ordered after it")
    if summary.time_verified < bound.time:
        raise _Refused(8, f"{what} ({format_time(summary.time_verified)}) is older than the provenance it should "
                          f"vouch for ({format_time(bound.time)})")


def _check_level(summary: VerificationSummary, min_level: int, what: str) -> None:
    """(9) With a ``min-level``, it states a build level at least that."""
    level = summary.build_level
    if min_level and (level is None or level < min_level):
        said = "states no build level" if level is None else f"states SLSA build level {level}"
        raise _Refused(9, f"{what} {said}, and this stage requires level {min_level} (min-level)")


def _who_signed(item: Evidence, policy: Policy, digests: DigestSet, run: TrustRun) -> str:
    """Which policy identity signed ``item`` (for a helpful message), or 'an untrusted key'."""
    try:
        found = find_signers(item, list(policy.identities.values()), run, message=digests)
    except EvidenceRejected:
        return "an untrusted key"
    return " and ".join(repr(i.name) for i in found)


def _approvals(stage: StageRule, *, policy: Policy, approvals: Statements, digests: DigestSet, bound: Bound,
               run: TrustRun) -> list[StageEvidence]:
    """``count`` distinct allowed identities that approved this artefact for ``stage`` after it was built."""
    rule = stage.require_approvals
    assert rule is not None
    allowed = [policy.identities[name] for name in rule.signed_by]
    approvers: dict[str, StageEvidence] = {}
    people: set[str] = set()
    """Who signed each keyless approval counted (:attr:`CertificateClaims.person`): one person is one approver,
    however many identities' patterns their certificate satisfies."""
    for item, statement in approvals:
        approval = _approval_for(statement, stage, policy, digests, bound, run)
        if approval is None:
            continue
        found = one_person(item, _approvers(item, [i for i in allowed if i.name not in approvers], run, digests),
                            people)
        for identity in found:
            approvers[identity.name] = StageEvidence(kind="approval", stage=stage.name, signer=identity.name,
                                                     time=approval.time, source=item.source, sha256=item.digest)
    order = {name: n for n, name in enumerate(rule.signed_by)}
    approvers = dict(sorted(approvers.items(), key=lambda pair: order[pair[0]]))
    if len(approvers) < rule.count:
        have = ", ".join(sorted(approvers)) or "none"
        why = "" if bound.time is not None else (f"; the provenance {bound.source} records no build time, so no "
                                                 "approval can be ordered after it")
        raise PolicyViolation(f"stage {stage.name!r} requires {rule.count} approval(s) from "
                              f"{', '.join(rule.signed_by)}, but found {len(approvers)} ({have}){why}")
    return list(approvers.values())


def _approval_for(statement: Statement, stage: StageRule, policy: Policy, digests: DigestSet,
                  bound: Bound, run: TrustRun) -> Approval | None:
    """The approval ``statement`` states, if it is of this artefact for ``stage`` after the build; else None."""
    if not _names_artifact(statement, digests, policy):
        return None
    try:
        approval = read_approval(statement)
    except EvidenceRejected:
        return None  # an approval without a stage or a readable time does not count
    if approval.hotfix or approval.stage != stage.name or bound.time is None or approval.time < bound.time:
        return None  # a hotfix's approval counts for a hotfix only (verify.path.kinds)
    if run.in_the_future(approval.time):
        return None  # dated after this verification: a clock ahead, or a forged time
    return approval


def _approvers(item: Evidence, identities: Sequence[Identity], run: TrustRun,
               digests: DigestSet) -> tuple[Identity, ...]:
    """The identities among ``identities`` that signed the approval ``item``; none if it is not verifiably signed."""
    try:
        return find_signers(item, identities, run, message=digests)
    except EvidenceRejected:
        return ()
