"""Step (5) of an audit (:mod:`verify.audit`) for what each environment deployed: had its gate let it through?

``attest verify`` is the gate a pipeline runs before it deploys; a deployment record is the environment's word,
signed, that it deployed. A pipeline that deployed without its gate (edited, or run by hand) still signs a true
record. So the audit asks of every trusted deployment record placed in its release what the gate would have asked
then: each VSA the stage requires (``require-vsa``), signed before the deployment, and each stage the release must
have run in first (``require-deployed``), a succeeded record there of the same artefacts, dated before. A hotfix
needs neither where the stage allows hotfixes at all. Not yet checked here: that the release had the hotfix
approvals the stage requires before it was deployed (the audit checks who signed each hotfix approval, and lists
every hotfix among the exceptional records, for a person to check their approvals).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime

from verify.audit._check import _Deployment, _Fact
from verify.audit.report import Endorsement, iso_time, short_sha
from verify.policy import Policy, StageRule

__all__ = ["judge_gates"]

Flag = Callable[..., None]
"""``flag(kind, sha256, message, source=..., step=..., key=...)``: an anomaly (:meth:`_Auditor._flag`)."""


def judge_gates(policy: Policy, placed: Iterable[tuple[_Fact, _Deployment]],
                vsas_of: Callable[[str, str], Sequence[Endorsement]], flag: Flag) -> None:
    """Flag each succeeded record in ``placed`` whose stage's gate would have refused what it deployed, then
    (``vsas_of(sha256, stage)``: the trusted VSAs of an artefact for a stage)."""
    records = [(fact, d) for fact, d in placed if d.status == "succeeded"]
    ran = _first_runs(records)
    for fact, deployment in records:
        rule = policy.stages.get(deployment.environment)
        if rule is None:
            continue
        said = f"{deployment.environment!r} deployed {{sha}} at {iso_time(deployment.time)}"
        where = {"source": fact.source, "step": deployment.environment}
        for _, sha in fact.subjects:
            if deployment.kind == "hotfix":
                found = [] if rule.hotfix else [("skipped-stage", f"as a hotfix, which stages.{rule.name} does "
                                                                  "not allow")]
            else:
                found = _refusals(rule, sha, deployment.time, vsas_of, ran)
            for kind, why in found:  # (one anomaly a requirement: the key tells them apart)
                flag(kind, sha, f"{said.format(sha=short_sha(sha))} {why}", key=f"{fact.statement_digest} {why}",
                     **where)


def _first_runs(records: Sequence[tuple[_Fact, _Deployment]]) -> dict[tuple[str, str], datetime]:
    """When each artefact first ran in each environment (a succeeded record), by (environment, sha256)."""
    first: dict[tuple[str, str], datetime] = {}
    for fact, deployment in records:
        for _, sha in fact.subjects:
            key = (deployment.environment, sha)
            if key not in first or deployment.time < first[key]:
                first[key] = deployment.time
    return first


def _refusals(rule: StageRule, sha: str, at: datetime, vsas_of: Callable[[str, str], Sequence[Endorsement]],
              ran: Mapping[tuple[str, str], datetime]) -> list[tuple[str, str]]:
    """(anomaly kind, why) for each requirement of ``rule`` that the artefact ``sha`` deployed at ``at`` lacked."""
    found: list[tuple[str, str]] = []
    for requirement in rule.require_vsa:
        vsas = [v.time for v in vsas_of(sha, requirement.stage) if v.result == "PASSED" and v.time is not None
                and set(v.signers) & set(requirement.signed_by)]
        if not vsas:
            found.append(("skipped-stage", f"without the VSA from stage {requirement.stage!r} that it requires"))
        elif min(vsas) > at:
            found.append(("out-of-order", f"before stage {requirement.stage!r} verified it ({iso_time(min(vsas))})"))
    for stage in rule.require_deployed:
        first = ran.get((stage, sha))
        if first is None:
            found.append(("skipped-stage", f"without its having run in {stage!r} first, as it requires"))
        elif first > at:
            found.append(("out-of-order", f"before it ran in {stage!r} ({iso_time(first)})"))
    return found
