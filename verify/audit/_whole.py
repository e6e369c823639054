"""What an audit judges over the whole history rather than an artefact at a time (:mod:`verify.audit`, step (6)):
reproducibility across artefacts, what runs where, and the DORA figures; each from the small parts of every
artefact's judgement that the index keeps (:class:`verify.audit.index.Judged`), so that a warm audit needs no
artefact's records; and the two orders the judging takes from the policy (the stages) and a stage's approvals
(the approvers)."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from verify.audit._check import _Build, _Deployment
from verify.audit.dora import Deployed, dora_figures
from verify.audit.report import (
    Anomaly,
    ArtifactHistory,
    BuildRecord,
    Endorsement,
    ReleaseComponent,
    ReleaseRecord,
    StageHistory,
    StageStatus,
    StoredCopy,
    iso_time,
    short_sha,
    when_of,
)
from verify.path.order import needs_of
from verify.policy import Policy
from verify.rules import components_for_build


def anomaly_order(anomaly: Anomaly) -> tuple[str, str, str, str]:
    return (anomaly.sha256 or "", anomaly.kind, anomaly.source, anomaly.message)


Group = tuple[str, str, str]
"""(subject name, commit, lockfiles as text) of a clean build: builds in one group must give one digest."""


def groups_of(history: ArtifactHistory) -> tuple[Group, ...]:
    """The reproducibility groups an artefact's clean builds from a known commit fall in."""
    return tuple(sorted({(b.name, b.commit, repr(b.lockfiles)) for b in history.builds if b.commit and not b.dirty}))


def reproducibility(groups: Mapping[Group, Collection[str]]) -> dict[str, list[Anomaly]]:
    """Clean builds of one subject name from one commit and the same lockfiles must give one digest: a
    ``non-reproducible`` anomaly for each artefact of a group with more than one."""
    found: dict[str, list[Anomaly]] = {}
    for (name, commit, _), digests in groups.items():
        if len(digests) < 2:
            continue
        ordered = sorted(digests)
        for sha in ordered:
            others = ", ".join(short_sha(o) for o in ordered if o != sha)
            found.setdefault(sha, []).append(Anomaly(
                kind="non-reproducible", sha256=sha, message=f"{name!r} from commit {commit[:12]} with the same "
                f"lockfiles was built as {short_sha(sha)} and as {others}", step="build"))
    return found


def counted(placed: Iterable[tuple[str, Sequence[tuple[str, _Deployment]]]]) -> dict[str, _Deployment]:
    """The deployment records that count (what runs where, the figures), by statement digest, from the records
    each artefact's judgement placed (``(sha256, placed)``): a record counts only where it counts for every
    artefact it names (one dated before one of them was built counts for none)."""
    held: dict[str, set[str]] = {}
    found: dict[str, _Deployment] = {}
    for sha, records in placed:
        for digest, deployment in records:
            held.setdefault(digest, set()).add(sha)
            # one statement in two envelopes (signed twice): the same one whatever the order, the higher line
            if digest not in found or deployment.line_sha256 > found[digest].line_sha256:
                found[digest] = deployment
    return {digest: d for digest, d in found.items() if d.artifacts <= held[digest]}


def running(placed: Mapping[str, _Deployment], order: Sequence[str],
            releases: Mapping[str, ReleaseRecord]) -> dict[str, dict[str, dict[str, Any]]]:
    """What runs where, since when: per component and environment, the newest succeeded trusted record placed
    in its release (of two of one time, the one of the higher envelope line sha256, as attest status answers), and
    how far it is behind the environment before it on the path (:func:`_behind`). ``releases`` are the trusted
    release manifests, by the sha256 of their envelope line (how a record names its release)."""
    newest: dict[tuple[str, str], tuple[datetime, str, _Deployment]] = {}
    for record in placed.values():
        if record.status != "succeeded":
            continue
        key = (record.component, record.environment)
        if key not in newest or (record.time, record.line_sha256) > newest[key][:2]:
            newest[key] = (record.time, record.line_sha256, record)
    found: dict[str, dict[str, dict[str, Any]]] = {}
    current: dict[str, dict[str, _Deployment]] = {}
    for (component, environment), (time, _, record) in sorted(newest.items()):
        current.setdefault(component, {})[environment] = record
        found.setdefault(component, {})[environment] = {
            "release": record.release, "since": iso_time(time), "kind": record.kind,
            "artifacts": sorted(record.artifacts), "behind": None, "releasesBehind": None}
    path = [env for env in order if any(env in runs for runs in current.values())]
    for component, runs in current.items():
        for before, env in itertools.pairwise(path):
            if env in runs and before in runs:
                far = _behind(component, runs[before], runs[env], releases)
                if far != 0:
                    found[component][env].update(behind=before, releasesBehind=far)
    return found


def _behind(component: str, ahead: _Deployment, here: _Deployment, releases: Mapping[str, ReleaseRecord]
            ) -> int | None:
    """How many releases of ``component`` the environment running ``here`` is behind the one running ``ahead``: the
    trusted releases made after its own, up to the one ahead runs, by the times their manifests were signed with
    (one release however many envelopes carry its statement); 0 when it runs that release or a newer one (the one
    before rolled back); None when one of the two releases is not known, so that neither can be said newer (counted
    as behind: never shown level when it may not be)."""
    mine, theirs = releases.get(here.release_sha256), releases.get(ahead.release_sha256)
    if ahead.release_sha256 == here.release_sha256 or (mine and theirs and _said(mine) == _said(theirs)):
        return 0
    if mine is None or theirs is None:
        return None
    low, high = _said(mine), _said(theirs)
    if high <= low:
        return 0
    return len({_said(r) for r in releases.values()
                if low < _said(r) <= high and any(part.name == component for part in r.components)})


def _said(release: ReleaseRecord) -> tuple[datetime, str, str]:
    """What a release manifest's statement says, in the order releases were made: two envelopes of one statement
    (signed twice, or by two identities) say the same."""
    return release.created, release.name, repr(release.components)


def out_of_order(placed: Mapping[str, _Deployment], releases: Mapping[str, ReleaseRecord]) -> dict[str, list[Anomaly]]:
    """The gate's order rule (:func:`verify.path.order.check_order`) asked of every succeeded record: each component
    its release needs (directly or through another) ran that release's very artefacts in the environment, by its
    newest succeeded record dated before it. An ``out-of-order`` anomaly on each artefact of a record that was not
    so. Judged over the whole history, as what runs where is: another component's records decide it."""
    listed: dict[tuple[str, str], list[tuple[datetime, str, _Deployment]]] = {}
    for record in placed.values():
        if record.status == "succeeded":
            listed.setdefault((record.environment, record.component), []).append((record.time, record.line_sha256,
                                                                                  record))
    runs = {key: _Runs(records) for key, records in listed.items()}
    found: dict[str, list[Anomaly]] = {}
    for (env, _), records in sorted(runs.items()):
        for record in records.records:
            release = releases.get(record.release_sha256)
            parts = {part.name: part for part in release.components} if release is not None else {}
            for message in _unmet(record, parts, runs):
                for sha in sorted(record.artifacts):
                    found.setdefault(sha, []).append(Anomaly(kind="out-of-order", sha256=sha, step=env,
                                                             message=message))
    return found


class _Runs:
    """The succeeded records of a component in an environment, oldest first (then by envelope line)."""

    def __init__(self, listed: list[tuple[datetime, str, _Deployment]]) -> None:
        listed.sort(key=lambda r: r[:2])
        self.times = [time for time, _, _ in listed]
        self.records = [record for _, _, record in listed]

    def last_before(self, time: datetime) -> _Deployment | None:
        """The newest record dated strictly before ``time`` (found by bisection: every record of a history asks this
        of the components its release needs, and a scan of every run was quadratic: 8,000 releases of two ordered
        stacks took 2.3 s, 25,000 most of a minute)."""
        n = bisect.bisect_left(self.times, time)
        return self.records[n - 1] if n else None


def _unmet(record: _Deployment, parts: Mapping[str, ReleaseComponent], runs: Mapping[tuple[str, str], _Runs]
           ) -> Iterator[str]:
    """Why ``record`` broke its release's order (``parts``: the release's components), one sentence a need."""
    env, component, time = record.environment, record.component, record.time
    for name in sorted(needs_of({part.name: part.needs for part in parts.values()}, component)):
        ran = runs[(env, name)].last_before(time) if (env, name) in runs else None
        if ran is not None and ran.artifacts == frozenset(sha for _, sha in parts[name].artifacts):
            continue
        said = f"it ran {name} of release {ran.release}" if ran is not None else f"{name} had not run there"
        yield (f"{env!r} deployed {component} of release {record.release} at {iso_time(time)}, when {said}: the "
               f"release needs its own {name} to run there first, as the gate's order rule asks")


def dora(placed: Mapping[str, _Deployment], committed: Mapping[str, tuple[str, datetime]], since: datetime,
         until: datetime) -> dict[str, Any]:
    """The DORA figures from the trusted deployment records each placed in its release (once each, however many
    files hold it) and the commit times of the trusted provenances (:mod:`verify.audit.dora`)."""
    records = [Deployed(component=d.component, environment=d.environment, status=d.status, kind=d.kind,
                        time=d.time, artifacts=d.artifacts, line=d.line_sha256) for _, d in sorted(placed.items())]
    return dora_figures(records, committed, since=since, until=until)


class Recorded(Protocol):
    """What an artefact's history is made from (:class:`verify.audit._judge._Record`)."""

    sha256: str
    names: set[str]
    builds: list[BuildRecord]
    vsas: dict[str, list[Endorsement]]
    approvals: dict[str, list[Endorsement]]
    deployments: dict[str, list[Endorsement]]
    reproductions: list[Endorsement]
    signatures: list[Endorsement]
    releases: list[Endorsement]
    stored: list[StoredCopy]


def history_of(record: Recorded, order: Sequence[str], anomalies: Sequence[Anomaly]) -> ArtifactHistory:
    """An artefact's history, from its record: each stage of ``order`` with its status, every list in time order."""
    steps = {a.step for a in anomalies}
    stages = []
    for name in order:
        vsas = tuple(sorted(record.vsas.get(name, []), key=lambda e: (when_of(e), e.attestation)))
        status: StageStatus
        if name in steps:
            status = "anomalous"
        elif any(v.result == "PASSED" for v in vsas):
            status = "passed"
        else:
            status = "failed" if vsas else "absent"
        stages.append(StageHistory(stage=name, status=status, vsas=vsas, approvals=tuple(
            sorted(record.approvals.get(name, []), key=lambda e: (when_of(e), e.attestation))),
            deployments=tuple(sorted(record.deployments.get(name, []), key=lambda e: (when_of(e), e.attestation)))))
    builds = sorted(record.builds, key=lambda b: (iso_time(b.finished_on) or "~", b.attestation))
    return ArtifactHistory(
        sha256=record.sha256, names=tuple(sorted(record.names)), builds=tuple(builds),
        stages=tuple(stages),
        reproductions=tuple(sorted(record.reproductions, key=lambda e: (when_of(e), e.attestation))),
        anomalies=tuple(anomalies),
        signatures=tuple(sorted(record.signatures, key=lambda e: e.attestation)),
        releases=tuple(sorted(record.releases, key=lambda e: (when_of(e), e.result, e.attestation))),
        stored=tuple(sorted(record.stored, key=lambda c: c.uri)))


def approvers_of(approvals: Iterable[Endorsement], people: Mapping[str, str]) -> set[str]:
    """The approvers ``approvals`` count for: each signer's identities, but one for a keyless approval, and a person
    (``people``: who signed each keyless approval) once, whatever identities their certificate fits."""
    approvers: set[str] = set()
    counted: set[str] = set()
    for approval in approvals:
        names = [s for s in approval.signers if s not in approvers]
        person = people.get(approval.attestation)
        if person is not None and names:
            if person in counted:
                continue
            counted.add(person)
            names = names[:1]
        approvers.update(names)
    return approvers


def judging_components(policy: Policy, build: _Build, own: Mapping[str, tuple[tuple[str, str, str], ...]],
                       bound: Mapping[str, set[str]]) -> tuple[str | None, ...]:
    """The components whose rules (``components.NAME``; None: ``provenance``'s, the build's own findings) judge a
    build: each a trusted release binds it to (all must pass it: one release binding it to a component whose rules
    it breaks is a breach, whatever another says); for a build none binds, as :func:`verify.rules.rules_for_build`
    picks, the first component of its repository under whose rules it passes, else the first such."""
    if build.line_sha256 in bound:  # the releases say which components it is
        return tuple(dict.fromkeys(n if n in own else None for n in sorted(bound[build.line_sha256])))
    names = components_for_build(policy, [build.source] if build.source else [])
    return (next((n for n in names if not own[n]), names[0]),) if names else (None,)


def stage_order(policy: Policy) -> tuple[str, ...]:
    """The policy's stages, every stage after those it requires VSAs from (file order otherwise)."""
    ordered: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in ordered or name in path or name not in policy.stages:
            return
        for requirement in policy.stages[name].require_vsa:
            visit(requirement.stage, (*path, name))
        ordered.append(name)

    for name in policy.stages:
        visit(name, ())
    return tuple(ordered)
