"""What an audit judges over the whole history rather than an artefact at a time (:mod:`verify.audit`, step (6)):
reproducibility across artefacts, what runs where, and the DORA figures; each from the small parts of every
artefact's judgement that the index keeps (:class:`verify.audit.index.Judged`), so that a warm audit needs no
artefact's records."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from verify.audit._check import _Deployment
from verify.audit.dora import Deployed, dora_figures
from verify.audit.report import Anomaly, ArtifactHistory, iso_time, short_sha


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


def running(placed: Mapping[str, _Deployment], order: Sequence[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """What runs where, since when: per component and environment, the newest succeeded trusted record placed
    in its release (ties by statement digest, as attest status breaks them), and ``behind``: the environment
    before it in the policy's order, when that one runs a release this one never ran."""
    newest: dict[tuple[str, str], tuple[datetime, str, _Deployment]] = {}
    ran: dict[tuple[str, str], set[str]] = {}
    for digest, record in placed.items():
        if record.status != "succeeded":
            continue
        key = (record.component, record.environment)
        ran.setdefault(key, set()).add(record.release)
        if key not in newest or (record.time, digest) > newest[key][:2]:
            newest[key] = (record.time, digest, record)
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for (component, environment), (time, _, record) in sorted(newest.items()):
        found.setdefault(component, {})[environment] = {
            "release": record.release, "since": iso_time(time), "kind": record.kind,
            "artifacts": sorted(record.artifacts), "behind": None}
    for component, runs in found.items():  # behind: the environment before runs a release never run here
        earlier = [env for env in order if env in runs]
        for before, env in itertools.pairwise(earlier):
            if runs[before]["release"] not in ran.get((component, env), set()):
                runs[env]["behind"] = before
    return found


def dora(placed: Mapping[str, _Deployment], committed: Mapping[str, datetime], since: datetime,
         until: datetime) -> dict[str, Any]:
    """The DORA figures from the trusted deployment records each placed in its release (once each, however many
    files hold it) and the commit times of the trusted provenances (:mod:`verify.audit.dora`)."""
    records = [Deployed(component=d.component, environment=d.environment, status=d.status, kind=d.kind,
                        time=d.time, artifacts=d.artifacts) for _, d in sorted(placed.items())]
    return dora_figures(records, committed, since=since, until=until)
