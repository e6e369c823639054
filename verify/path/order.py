"""The rules of the path, on top of a release's gate: stacks go in order, and every change goes through
every environment the policy names.

  :func:`check_order`    a component may be deployed to an environment only when every component it needs
                         (directly or through another) runs there at the artefacts this release names: the
                         newest succeeded deployment record of it there (:func:`verify.path.running.running`)
                         names those artefacts, recorded for this release or an earlier one in which that
                         stack did not change
  :func:`check_deployed` ``stages.<stage>.require-deployed: [stg]``: each component has a succeeded
                         deployment record of these very artefacts in stg, signed by a stg deployer (a VSA
                         says stg verified the bytes; the record says stg ran them)
  :func:`ran_in`         one component's succeeded record of its very artefacts in one environment, filed in the
                         store's deployment index under its own time and digest (a record whose publish failed
                         half-way, under its artefacts only, never counts: ``attest status`` would not show it)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from verify.errors import EvidenceRejected, PolicyViolation
from verify.formats.release import Release, ReleasePart
from verify.formats.statement import DEPLOYMENT_V1
from verify.gate import Found
from verify.matching import intoto_statements
from verify.path.running import Deployed, Running, trusted_deployment
from verify.policy import Policy
from verify.signers import TrustRun

__all__ = ["Indexed", "check_deployed", "check_order", "needed", "needs_of", "ran_in"]

Indexed = Callable[[Deployed], bool]
"""Whether the store's deployment index files a record under its own signed time and digest (an entry of that name
holding that very record)."""


def needed(release: Release, component: str) -> list[ReleasePart]:
    """Every component ``component`` needs, directly or through another, in deployment order."""
    wanted = needs_of({part.name: part.needs for part in release.components}, component)
    return [part for part in release.order if part.name in wanted]


def needs_of(needs: Mapping[str, Sequence[str]], component: str) -> set[str]:
    """Every component ``component`` needs, directly or through another, by name (``needs``: what each component of
    a release needs itself; a name it does not have is not followed)."""
    wanted: set[str] = set()
    todo = list(needs.get(component, ()))
    while todo:
        name = todo.pop()
        if name not in wanted and name in needs:
            wanted.add(name)
            todo.extend(needs[name])
    return wanted


def _digests(part: ReleasePart) -> frozenset[str]:
    return frozenset(a.digest["sha256"] for a in part.artifacts)


def check_order(release: Release, component: str, *, environment: str,
                running_of: Callable[[str], Running]) -> list[Running]:
    """What runs in ``environment`` of each component ``component`` needs, each at this release's artefacts;
    else :class:`PolicyViolation` naming the first that does not (deploy it first), or whose newest record did
    not count (corrupted, misfiled or signed by no deployer: it may hide what runs)."""
    found: list[Running] = []
    for part in needed(release, component):
        now = running_of(part.name)  # running() refuses a stage that signs no records: it cannot say what runs
        current = now.current
        if current is None:
            ignored = f" ({len(now.ignored)} record(s) read did not count: {now.ignored[0]})" if now.ignored else ""
            raise PolicyViolation(f"{component} needs {part.name}, and no succeeded deployment record of "
                                  f"{part.name} in {environment} is trusted{ignored}: deploy {part.name} of release "
                                  f"{release.name} to {environment} first")
        if now.ignored:  # newer than what runs, and not trusted: what runs there cannot be told
            raise PolicyViolation(f"{component} needs {part.name}, and a record of {part.name} in {environment} newer "
                                  f"than the one it runs did not count ({now.ignored[0]}), so what runs there cannot "
                                  "be told; remove that entry of the store's deployment index, or record the "
                                  f"deployment of {part.name} to {environment} again")
        if current.artifact_digests != _digests(part):
            raise PolicyViolation(f"{component} needs {part.name}, and {environment} runs {part.name} of release "
                                  f"{current.record.release} (since {current.record.time.isoformat()}), whose "
                                  f"artefacts are not those of release {release.name}: deploy {part.name} of "
                                  f"{release.name} to {environment} first")
        found.append(now)
    return found


def check_deployed(parts: Sequence[ReleasePart], *, stages: Sequence[str], policy: Policy, run: TrustRun,
                   lookup: Callable[[str], Found], indexed: Indexed) -> list[Deployed]:
    """For each component in ``parts`` and each stage of ``stages``, a succeeded record of its very
    artefacts there, signed by a deployer of that stage; else :class:`PolicyViolation`."""
    found: list[Deployed] = []
    for part in parts:
        for stage in stages:
            try:
                found.append(ran_in(part, stage, policy=policy, run=run, lookup=lookup, indexed=indexed))
            except PolicyViolation as e:
                raise PolicyViolation(f"{e}; the policy requires that {stage} ran them first (require-deployed): "
                                      f"deploy the release to {stage}, and record it") from e
    return found


def ran_in(part: ReleasePart, stage: str, *, policy: Policy, run: TrustRun, lookup: Callable[[str], Found],
           indexed: Indexed) -> Deployed:
    """A succeeded record of ``part``'s artefacts in ``stage`` among those filed under its first artefact, that the
    deployment index files too (``indexed``)."""
    wanted = _digests(part)
    evidence = lookup(part.artifacts[0].digest["sha256"])
    records = sorted(((item, s) for item, s in intoto_statements(evidence) if s.predicate_type == DEPLOYMENT_V1),
                     key=lambda pair: (pair[0].digest, pair[0].source))
    other: str | None = None
    unfiled: str | None = None
    for item, _ in records:
        try:
            found = trusted_deployment(item, policy, run, environment=stage, component=part.name)
        except EvidenceRejected as e:
            other = other or str(e)
            continue
        if found.record.status == "succeeded" and found.artifact_digests == wanted:
            if indexed(found):
                return found
            unfiled = unfiled or (f"{found.source} is not in the store's deployment index under its own time and "
                                  "digest, as a record whose publish failed is not; record the deployment again")
    other = unfiled or other  # (the one that nearly counted says more than another stage's records)
    why = f" (of {len(records)} deployment record(s) found, none counts: {other})" if other else ""
    raise PolicyViolation(f"component {part.name}: no succeeded deployment record of these artefacts in {stage}, "
                          f"signed by a {stage} deployer, is found{why}")
