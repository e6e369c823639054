"""Rollbacks and hotfixes: the two ways a release may reach an environment other than the ordinary gate.

  :func:`check_rollback`  ``--rollback``: the release ran there before. Each component (of those deployed)
                          has a succeeded deployment record of its very artefacts in the environment, signed
                          by its deployer; the deployer signed it only after the environment's gate passed,
                          so however far the earlier stages have moved on since, the release may go back.
                          A release that never ran there is refused.
  :func:`check_hotfix`    ``--hotfix``: a policy choice. ``stages.<env>.hotfix.require-approvals`` names how
                          many of which identities must approve this very release manifest for ``env`` as a
                          hotfix (``attest approve --release M --stage ENV --hotfix``); with them, the release
                          reaches ``env`` without the stage's other requirements (earlier stages' VSAs,
                          approvals, ``require-deployed``). Without a ``hotfix`` rule, no hotfix may.
  :func:`hotfix_approver` who ``attest approve --hotfix`` signs as: an identity the hotfix rule lists.

For both, the provenance rules still hold (the artefacts are the ones built, from the right source, by a
trusted builder), and so does the order of the components (:mod:`verify.path.order`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from verify.errors import EvidenceRejected, PolicyViolation, RequestError
from verify.formats.evidence import Evidence
from verify.formats.release import Release, ReleasePart
from verify.formats.statement import APPROVAL_V1, read_approval
from verify.gate import Found
from verify.matching import intoto_statements
from verify.path.order import Indexed, ran_in
from verify.path.running import Deployed
from verify.policy import Policy, StageRule
from verify.signers import TrustRun, find_signers, one_person
from verify.stages import StageEvidence
from verify.trust import PublicKey

__all__ = ["check_hotfix", "check_rollback", "hotfix_approver"]



def check_rollback(release: Release, parts: Sequence[ReleasePart], *, environment: str, policy: Policy,
                   run: TrustRun, lookup: Callable[[str], Found], indexed: Indexed) -> list[Deployed]:
    """A succeeded record of each of ``parts`` in ``environment`` (it ran there); else :class:`PolicyViolation`."""
    found = []
    for part in parts:
        try:
            found.append(ran_in(part, environment, policy=policy, run=run, lookup=lookup, indexed=indexed))
        except PolicyViolation as e:
            raise PolicyViolation(f"release {release.name} never ran in {environment}: no succeeded deployment "
                                  f"record of its {part.name} artefacts there, signed by a {environment} deployer, "
                                  "is found; a rollback goes back to a release that ran there (an earlier one, "
                                  f"or deploy this one through the ordinary gate) [{e}]") from e
    return found


def hotfix_rule(stage: StageRule) -> tuple[int, tuple[str, ...]]:
    """The stage's hotfix rule (count, signed-by); :class:`RequestError` if it allows no hotfix."""
    if stage.hotfix is None:
        raise RequestError(f"stage {stage.name!r} of the policy allows no hotfix (stages.{stage.name}.hotfix: "
                           "{require-approvals: {count: N, signed-by: [...]}}); deploy through the ordinary gate")
    return stage.hotfix.count, stage.hotfix.signed_by


def hotfix_approver(policy: Policy, stage: str, key: PublicKey) -> str:
    """The identity ``key`` approves hotfixes of ``stage`` as: one the stage's hotfix rule lists, usable now."""
    rule = policy.stage_named(stage, flag="--stage", purpose="stage the hotfix goes to")
    _, signed_by = hotfix_rule(rule)
    name = policy.signer_as(signed_by, key, what="an approval")
    if name is None:
        raise RequestError(f"--signer's public key is not a key of an approver of hotfixes to {stage!r} "
                           f"({', '.join(signed_by)}); an approval it signed would not count")
    return name


def check_hotfix(release: Release, manifest_sha256: str, *, stage: StageRule, policy: Policy, run: TrustRun,
                 lookup: Callable[[str], Found]) -> list[StageEvidence]:
    """``count`` distinct identities of the hotfix rule approved this very manifest for ``stage`` as a hotfix,
    after it was made and not after now; else :class:`PolicyViolation` saying how many were found. One person's
    keyless approval counts once, however many approvers' identities their certificate fits."""
    count, signed_by = hotfix_rule(stage)
    allowed = [policy.identities[name] for name in signed_by]
    approvers: dict[str, StageEvidence] = {}
    people: set[str] = set()
    for item in _naming(release, manifest_sha256, lookup):
        try:
            approval = read_approval(item.statement())
            if not approval.hotfix or approval.stage != stage.name or approval.time < release.created or \
                    run.in_the_future(approval.time):  # (dated after now: a clock ahead, or a forged time)
                continue
            signers = one_person(item, find_signers(item, [i for i in allowed if i.name not in approvers], run),
                                 people)
        except EvidenceRejected:
            continue  # unreadable, or not signed by an approver still missing: it does not count
        for identity in signers:
            approvers[identity.name] = StageEvidence(kind="approval", stage=stage.name, signer=identity.name,
                                                     time=approval.time, source=item.source, sha256=item.digest)
    if len(approvers) < count:
        have = ", ".join(sorted(approvers)) or "none"
        raise PolicyViolation(f"a hotfix of release {release.name} to {stage.name} requires {count} hotfix "
                              f"approval(s) of this manifest from {', '.join(signed_by)}, but found {len(approvers)} "
                              f"({have}); each approver runs 'attest approve --release MANIFEST --stage "
                              f"{stage.name} --hotfix'")
    return [approvers[name] for name in signed_by if name in approvers]


def _naming(release: Release, manifest_sha256: str, lookup: Callable[[str], Found]) -> list[Evidence]:
    """Every approval filed under the release's artefacts whose subject is the manifest, each once, in the
    order of their digests (published under every artefact: any one copy counts once)."""
    seen: dict[str, Evidence] = {}
    for part in release.components:
        for artifact in part.artifacts:
            for item, statement in intoto_statements(lookup(artifact.digest["sha256"])):
                if statement.predicate_type == APPROVAL_V1 and any(
                        s.digest.get("sha256") == manifest_sha256 for s in statement.subjects):
                    seen.setdefault(item.digest, item)
    return [seen[digest] for digest in sorted(seen)]
