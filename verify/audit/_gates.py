"""Step (5) of an audit (:mod:`verify.audit`) for what each environment deployed: had its gate let it through?

``attest verify`` is the gate a pipeline runs before it deploys; a deployment record is the environment's word,
signed, that it deployed. A pipeline that deployed without its gate (edited, or run by hand) still signs a true
record. So the audit asks of every trusted deployment record placed in its release what the gate would have asked
then: each VSA the stage requires (``require-vsa``), signed before the deployment; each stage the release must
have run in first (``require-deployed``), a succeeded record there of the same artefacts, dated before; the
approvals it requires (``require-approvals``), signed between the build and the deployment; a builder trusted for
its ``min-level``. A rollback needs none of those, but the artefact must have run there before. A hotfix
needs neither, but the stage must allow hotfixes, and as many of its hotfix approvers as it requires must have
approved that very release manifest for it after it was made and before the deployment
(``hotfix.require-approvals``), as the gate counts them (:func:`verify.path.kinds.check_hotfix`).

A stage's approvals of an artefact are judged here too (:func:`judge_approvals`), as of the stage's first VSA.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import NamedTuple, Protocol

from verify.audit._check import _Deployment, _Fact
from verify.audit._whole import Recorded, approvers_of
from verify.audit.report import Endorsement, iso_time, short_sha
from verify.policy import Policy, StageRule, VsaRequirement

__all__ = ["judge_gates"]

Flag = Callable[..., None]
"""``flag(kind, sha256, message, source=..., step=..., key=...)``: an anomaly (:meth:`_Auditor._flag`)."""


class Evidence(Recorded, Protocol):
    """What the gate asked of an artefact, beyond its history (:class:`verify.audit._judge._Record`)."""

    built: list[datetime]
    people: dict[str, str]
    bound: dict[str, tuple[tuple[str, ...], bool]]


class Known(NamedTuple):
    """What the gate checks were asked against, over the whole history."""

    evidence_of: Callable[[str], Evidence | None]
    """The trusted evidence of an artefact, by its sha256."""
    levels: Mapping[str, Sequence[int]]
    """The build levels each artefact's provenances' builders are trusted for."""
    passed: Collection[tuple[str, str]]
    """(sha256, provenance line sha256) of each trusted provenance its rules pass."""


def required_vsas(evidence: Evidence, requirement: VsaRequirement, passed: Collection[tuple[str, str]]
                  ) -> list[Endorsement]:
    """The VSAs of the stage ``requirement`` names that count where it is required, as the gate counts them: PASSED,
    signed by an identity it names, and naming among their inputAttestations a trusted provenance of the artefact
    that its rules pass, and the policy they were verified under (a VSA of other bytes' provenance, or of none,
    vouched for nothing a stage relies on)."""
    def vouches(vsa: Endorsement) -> bool:
        inputs, policy_named = evidence.bound.get(vsa.attestation, ((), False))
        return policy_named and any((evidence.sha256, line) in passed for line in inputs)

    return [v for v in evidence.vsas.get(requirement.stage, [])
            if v.result == "PASSED" and set(v.signers) & set(requirement.signed_by) and vouches(v)]


HotfixApproval = tuple[tuple[str, ...], "datetime | None", str]
"""A trusted hotfix approval: (the hotfix approvers who signed it, its time, who signed it keylessly: empty for
a key's signature)."""


def judge_gates(policy: Policy, placed: Iterable[tuple[_Fact, _Deployment]], known: Known,
                hotfixes: Mapping[str, Sequence[HotfixApproval]], created: Mapping[str, datetime],
                flag: Flag) -> None:
    """Flag each succeeded record in ``placed`` whose stage's gate would have refused what it deployed, then
    (``known``: the artefacts' trusted evidence and levels; ``hotfixes``: the trusted hotfix approvals of each
    ``MANIFEST-LINE:STAGE``; ``created``: when each manifest, by its line, says it was made)."""
    records = [(fact, d) for fact, d in placed if d.status == "succeeded"]
    ran = _first_runs(records)
    for fact, deployment in records:
        rule = policy.stages.get(deployment.environment)
        if rule is None:
            continue
        said = f"{deployment.environment!r} deployed {{sha}} at {iso_time(deployment.time)}"
        where = {"source": fact.source, "step": deployment.environment}
        for _, sha in fact.subjects:
            if deployment.kind == "hotfix":  # the stage's min-level holds for a hotfix and a rollback too
                found = _hotfix(rule, deployment, hotfixes.get(f"{deployment.release_sha256}:{rule.name}", ()),
                                created.get(deployment.release_sha256)) + _level(rule, sha, known)
            elif deployment.kind == "rollback":  # back to what ran there: the stage's other requirements give way
                first = ran.get((rule.name, sha))
                found = _level(rule, sha, known) + ([] if first is not None and first < deployment.time else [
                    ("skipped-stage", "as a rollback, though it never ran there before")])
            else:
                found = _refusals(rule, sha, deployment.time, known, ran)
            for kind, why in found:  # (one anomaly a requirement: the key tells them apart)
                flag(kind, sha, f"{said.format(sha=short_sha(sha))} {why}", key=f"{fact.statement_digest} {why}",
                     **where)


def _hotfix(rule: StageRule, deployment: _Deployment, approvals: Sequence[HotfixApproval],
            made: datetime | None) -> list[tuple[str, str]]:
    """What a hotfix to ``rule``'s stage lacked: the stage's leave, or enough hotfix approvals between the time its
    release was made (``made``; an approval of a manifest not yet made is backdated) and the deployment, one person
    one approver (as the gate counts them: :func:`verify.signers.one_person`)."""
    if rule.hotfix is None:
        return [("skipped-stage", f"as a hotfix, which stages.{rule.name} does not allow")]
    approvers: set[str] = set()
    people: set[str] = set()
    for names, time, person in sorted(approvals, key=repr):  # (one order whatever the reading order)
        if time is None or (made is not None and time < made) or time > deployment.time or person in people:
            continue
        if person:
            people.add(person)
            names = tuple(n for n in names if n not in approvers)[:1]
        approvers.update(names)
    if len(approvers) >= rule.hotfix.count:
        return []
    return [("missing-approval", f"as a hotfix with {len(approvers)} of the {rule.hotfix.count} hotfix approval(s) "
             f"of its release that stages.{rule.name}.hotfix requires, signed before it")]


def judge_approvals(sha: str, given: Sequence[Endorsement], people: Mapping[str, str], rule: StageRule,
                    between: tuple[datetime | None, Endorsement], flag: Flag) -> None:
    """A stage that passed the artefact and requires approvals had enough approvers who approved it by then:
    ``between`` its first trusted build's time (None: no build states one, so no approval can be ordered after it,
    as the gate says) and its ``first`` VSA that passed it. An approval signed afterwards did not let it pass, and
    one signed before the build approved something else."""
    needed = rule.require_approvals
    if needed is None:
        return
    built_on, first = between
    approvers = _approvers_between(given, people, built_on, first.time)
    if len(approvers) < needed.count:
        other = len({s for a in given for s in a.signers} - approvers)
        flag("missing-approval", sha, f"stage {rule.name!r} verified {short_sha(sha)} with {len(approvers)} of the "
             f"{needed.count} approval(s) it requires from {', '.join(needed.signed_by)}"
             + (f" ({other} more signed after it verified, at {iso_time(first.time)}, before it was built, or "
                "undated)" if other else ""), step=rule.name)


def _approvers_between(given: Sequence[Endorsement], people: Mapping[str, str], built_on: datetime | None,
                       until: datetime | None) -> set[str]:
    """The approvers of ``given`` who approved between the build (None: no build states its time, so no approval can
    be ordered after it, as the gate says) and ``until`` (None: any time after), as the gate counts them."""
    return approvers_of([a for a in given if a.time is not None and built_on is not None and built_on <= a.time
                         and (until is None or a.time <= until)], people)


def _approvals(rule: StageRule, at: datetime, evidence: Evidence) -> list[tuple[str, str]]:
    """The stage's approvals of the artefact, signed between its build (as the gate times it) and ``at``, as
    :func:`judge_approvals` counts them."""
    needed = rule.require_approvals
    if needed is None:
        return []
    count = len(_approvers_between(evidence.approvals.get(rule.name, []), evidence.people,
                                   min(evidence.built, default=None), at))
    if count >= needed.count:
        return []
    return [("missing-approval", f"with {count} of the {needed.count} approval(s) it requires from "
                                 f"{', '.join(needed.signed_by)}, signed between its build and then")]


def _level(rule: StageRule, sha: str, known: Known) -> list[tuple[str, str]]:
    """A builder trusted for the stage's ``min-level`` built the artefact (the gate asks it of every kind)."""
    evidence = known.evidence_of(sha)
    if not rule.min_level or evidence is None or not evidence.builds or \
            max(known.levels.get(sha, ()), default=0) >= rule.min_level:
        return []
    return [("insufficient-level", f"though no builder trusted for the SLSA build level {rule.min_level} it requires "
                                   "built it")]


def _first_runs(records: Sequence[tuple[_Fact, _Deployment]]) -> dict[tuple[str, str], datetime]:
    """When each artefact first ran in each environment (a succeeded record), by (environment, sha256)."""
    first: dict[tuple[str, str], datetime] = {}
    for fact, deployment in records:
        for _, sha in fact.subjects:
            key = (deployment.environment, sha)
            if key not in first or deployment.time < first[key]:
                first[key] = deployment.time
    return first


def _refusals(rule: StageRule, sha: str, at: datetime, known: Known,
              ran: Mapping[tuple[str, str], datetime]) -> list[tuple[str, str]]:
    """(anomaly kind, why) for each requirement of ``rule`` that the artefact ``sha`` deployed at ``at`` lacked."""
    evidence = known.evidence_of(sha)
    found = [*_approvals(rule, at, evidence), *_level(rule, sha, known)] if evidence is not None else []
    for requirement in rule.require_vsa:
        vsas = [v.time for v in (required_vsas(evidence, requirement, known.passed) if evidence is not None else [])
                if v.time is not None]
        if not vsas:
            found.append(("skipped-stage", f"without the VSA from stage {requirement.stage!r} that it requires "
                                           "(naming a provenance of it and a policy)"))
        elif min(vsas) > at:
            found.append(("out-of-order", f"before stage {requirement.stage!r} verified it ({iso_time(min(vsas))})"))
    for stage in rule.require_deployed:
        first = ran.get((stage, sha))
        if first is None:
            found.append(("skipped-stage", f"without its having run in {stage!r} first, as it requires"))
        elif first > at:
            found.append(("out-of-order", f"before it ran in {stage!r} ({iso_time(first)})"))
    return found
