"""The four DORA figures, from signed evidence only: what each environment signed it deployed, and when the commits
it shipped were made (their provenances say).

Per component and environment, over a window (``since`` to ``until``):

* **deployment frequency**: the succeeded deployment records (of any kind) in the window, a week's worth on
  average, and week by week (the trend);
* **lead time for changes**: for each change (a commit), from its time (``commitTime``, as a trusted provenance
  the policy accepts says) to the first succeeded record in that environment of a release holding an artefact
  built from it, when that record is in the window (a change that made three files counts once): the median and
  the 90th percentile (nearest rank). A commit time after that record (git's dates are its author's to set)
  starts no lead time, and is counted apart;
* **change failure rate**: of the succeeded ordinary deployments in the window, the share whose next record in
  that environment is a failure, a rollback or a hotfix;
* **time to restore**: from a failed record (the first of several in a row: one incident) to the next succeeded
  one, and from a deployment that was rolled back to its rollback (failed attempts at that rollback are part of
  it): the median. The succeeded record that ends one incident may begin another (a retry then rolled back).

Of two records of one time, the later is the one of the higher envelope-line sha256, as what runs is told.

Only trusted records count (a deployer of the environment signed them, and they name a component of their
release with its artefacts), and each figure says how many records or changes it rests on. A figure with
nothing to rest on is ``None`` with a note that says so, never 0.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["Deployed", "dora_figures"]

_WEEK = timedelta(days=7)


@dataclass(frozen=True)
class Deployed:
    """One trusted deployment record, as the figures count it."""

    component: str
    environment: str
    status: str
    kind: str
    time: datetime
    artifacts: frozenset[str]
    line: str = ""
    """sha256 of the record's envelope line: of two records of one time, the later is the one of the higher (as
    what runs is told, by :func:`verify.audit._whole.running` and ``attest status``)."""


def _iso(t: datetime) -> str:
    return (t.astimezone(UTC) if t.tzinfo is not None else t).strftime("%Y-%m-%dT%H:%M:%SZ")


def _p90(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[max(math.ceil(0.9 * len(ordered)) - 1, 0)]


def _frequency(records: Sequence[Deployed], since: datetime, until: datetime) -> dict[str, Any]:
    done = [r for r in records if r.status == "succeeded" and since <= r.time <= until]
    weeks = max(math.ceil((until - since) / _WEEK), 1)
    weekly = [0] * weeks
    for record in done:
        weekly[min(int((record.time - since) / _WEEK), weeks - 1)] += 1
    figure: dict[str, Any] = {"deployments": len(done), "weekly": weekly,
                              "perWeek": round(len(done) / ((until - since) / _WEEK), 2) if until > since and done
                              else None}
    if not done:
        figure["note"] = "no succeeded deployment record in the window"
    return figure


def _first_deployed(records: Sequence[Deployed]) -> dict[str, datetime]:
    """When each artefact was first deployed (a succeeded record), by sha256."""
    first: dict[str, datetime] = {}
    for record in records:
        if record.status == "succeeded":
            for sha in record.artifacts:
                if sha not in first or record.time < first[sha]:
                    first[sha] = record.time
    return first


def _changes_deployed(first: Mapping[str, datetime], committed: Mapping[str, tuple[str, datetime]]
                      ) -> dict[tuple[str, datetime], datetime]:
    """When each change (commit) was first deployed: once, however many artefacts it made."""
    changes: dict[tuple[str, datetime], datetime] = {}
    for sha, t in first.items():
        change = committed.get(sha)
        if change is not None and (change not in changes or t < changes[change]):
            changes[change] = t
    return changes


def _lead_times(records: Sequence[Deployed], committed: Mapping[str, tuple[str, datetime]], since: datetime,
                until: datetime) -> dict[str, Any]:
    first = _first_deployed(records)
    changes = _changes_deployed(first, committed)
    shipped = {sha: t for sha, t in first.items() if since <= t <= until}
    spans = [(t - made).total_seconds() for (_, made), t in changes.items() if since <= t <= until]
    leads = [span for span in spans if span >= 0]
    figure: dict[str, Any] = {"changes": len(leads)}
    unknown = sum(1 for sha in shipped if sha not in committed)
    if unknown:
        figure["withoutCommitTime"] = unknown
    if len(spans) > len(leads):  # a commit time (git's, which its author sets) after the deployment
        figure["committedAfterDeployment"] = len(spans) - len(leads)
    if leads:
        figure.update(medianSeconds=statistics.median(leads), p90Seconds=_p90(leads))
    else:
        figure.update(medianSeconds=None, p90Seconds=None, note=_no_lead_time(shipped, committed, spans))
    return figure


def _no_lead_time(shipped: Mapping[str, datetime], committed: Mapping[str, tuple[str, datetime]],
                  spans: Sequence[float]) -> str:
    """Why no lead time is known: nothing shipped in the window, or what shipped carries no commit time, or its
    changes first shipped before the window (an old commit rebuilt), or were committed after they shipped."""
    if not shipped:
        return "no change reached this environment in the window"
    if not any(sha in committed for sha in shipped):
        return "no provenance of what shipped says when its commit was made (commitTime)"
    if spans:
        return "every change that shipped in the window was committed after its deployment, by its commit's date"
    return "what shipped in the window holds no new change: each of its commits first shipped before the window"


def _failure_rate(records: Sequence[Deployed], since: datetime, until: datetime) -> dict[str, Any]:
    deployments = failures = 0
    for n, record in enumerate(records):
        if record.status != "succeeded" or record.kind != "deploy" or not since <= record.time <= until:
            continue
        deployments += 1
        after = records[n + 1] if n + 1 < len(records) else None
        if after is not None and (after.status == "failed" or after.kind in ("rollback", "hotfix")):
            failures += 1
    figure: dict[str, Any] = {"deployments": deployments, "failures": failures,
                              "rate": round(failures / deployments, 4) if deployments else None}
    if not deployments:
        figure["note"] = "no ordinary deployment in the window"
    return figure


def _restore(records: Sequence[Deployed], since: datetime, until: datetime) -> dict[str, Any]:
    """Each incident that began in the window, restored: failed records in a row, to the next succeeded one; a
    succeeded deployment, to the rollback that undid it (failed attempts at that rollback are part of it). The
    succeeded record that ends one incident may begin the next (a retry that was then rolled back)."""
    spans: list[float] = []
    n = 0
    while n < len(records):
        record = records[n]
        end, restored = _incident(records, n)
        if restored is not None and since <= record.time <= until:
            spans.append((restored.time - record.time).total_seconds())
        n = end if restored is not None or record.status == "failed" else n + 1
    figure: dict[str, Any] = {"incidents": len(spans), "medianSeconds": statistics.median(spans) if spans else None}
    if not spans:
        figure["note"] = "nothing failed or was rolled back (and restored) in the window"
    return figure


def _incident(records: Sequence[Deployed], n: int) -> tuple[int, Deployed | None]:
    """(the place of the first record after the incident ``records[n]`` may begin, the succeeded record that ended
    it; None: no incident, or one never restored). An incident is failed records in a row, or a succeeded record
    that the next (failed attempts at it aside) rolls back."""
    record, end = records[n], n + 1
    while end < len(records) and records[end].status == "failed" and (
            record.status == "failed" or records[end].kind == "rollback"):
        end += 1  # (failures in a row; or, after a success, failed attempts to roll it back)
    after = records[end] if end < len(records) else None
    if after is None or after.status != "succeeded":
        return end, None
    if record.status == "failed" or (record.status == "succeeded" and after.kind == "rollback"):
        return end, after
    return end, None


def dora_figures(records: Iterable[Deployed], committed: Mapping[str, tuple[str, datetime]], *, since: datetime,
                 until: datetime) -> dict[str, Any]:
    """The four figures per component and environment (see the module docstring), JSON-ready."""
    by_place: dict[tuple[str, str], list[Deployed]] = {}
    for record in records:
        by_place.setdefault((record.component, record.environment), []).append(record)
    components: dict[str, dict[str, Any]] = {}
    for (component, environment), found in sorted(by_place.items()):
        found.sort(key=lambda r: (r.time, r.line))  # (two of one time: as what runs is told)
        components.setdefault(component, {})[environment] = {
            "deploymentFrequency": _frequency(found, since, until),
            "leadTime": _lead_times(found, committed, since, until),
            "changeFailureRate": _failure_rate(found, since, until),
            "timeToRestore": _restore(found, since, until),
            "records": len(found),
        }
    return {"window": {"since": _iso(since), "until": _iso(until), "days": round((until - since) / timedelta(days=1))},
            "from": "signed deployment records", "components": components}
