"""The four DORA figures, from signed evidence only: what each environment signed it deployed, and when the commits
it shipped were made (their provenances say).

Per component and environment, over a window (``since`` to ``until``):

* **deployment frequency**: the succeeded deployment records (of any kind) in the window, a week's worth on
  average, and week by week (the trend);
* **lead time for changes**: for each artefact, from the time of the commit it was built from (its trusted
  provenance's ``commitTime``) to the first succeeded record in that environment of a release holding it, when
  that record is in the window: the median and the 90th percentile (nearest rank);
* **change failure rate**: of the succeeded ordinary deployments in the window, the share whose next record in
  that environment is a failure, a rollback or a hotfix;
* **time to restore**: from a failed record to the next succeeded one, and from a deployment that was rolled
  back to its rollback: the median.

Only trusted records count (a deployer of the environment signed them, and they name a component of their
release with its artefacts), and each figure says how many records or changes it rests on. A figure with
nothing to rest on is ``None`` with a note that says so, never 0.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
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


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


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
                              "perWeek": round(len(done) / ((until - since) / _WEEK), 2) if until > since else None}
    if not done:
        figure["note"] = "no succeeded deployment record in the window"
    return figure


def _lead_times(records: Sequence[Deployed], committed: Mapping[str, datetime], since: datetime,
                until: datetime) -> dict[str, Any]:
    first: dict[str, datetime] = {}
    for record in records:
        if record.status == "succeeded":
            for sha in record.artifacts:
                if sha not in first or record.time < first[sha]:
                    first[sha] = record.time
    shipped = {sha: t for sha, t in first.items() if since <= t <= until}
    leads = [(t - committed[sha]).total_seconds() for sha, t in shipped.items() if sha in committed]
    figure: dict[str, Any] = {"changes": len(leads)}
    unknown = len(shipped) - len(leads)
    if unknown:
        figure["withoutCommitTime"] = unknown
    if leads:
        figure.update(medianSeconds=statistics.median(leads), p90Seconds=_p90(leads))
    else:
        figure.update(medianSeconds=None, p90Seconds=None,
                      note="no change reached this environment in the window" if not shipped else
                      "no provenance of what shipped says when its commit was made (commitTime)")
    return figure


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
    spans: list[float] = []
    for n, record in enumerate(records):
        if not since <= record.time <= until:
            continue
        later = records[n + 1:]
        if record.status == "failed":
            back = next((r for r in later if r.status == "succeeded"), None)
            if back is not None:
                spans.append((back.time - record.time).total_seconds())
        elif record.status == "succeeded" and later and later[0].kind == "rollback" and later[0].status == "succeeded":
            spans.append((later[0].time - record.time).total_seconds())
    figure: dict[str, Any] = {"incidents": len(spans), "medianSeconds": statistics.median(spans) if spans else None}
    if not spans:
        figure["note"] = "nothing failed or was rolled back (and restored) in the window"
    return figure


def dora_figures(records: Iterable[Deployed], committed: Mapping[str, datetime], *, since: datetime,
                 until: datetime) -> dict[str, Any]:
    """The four figures per component and environment (see the module docstring), JSON-ready."""
    by_place: dict[tuple[str, str], list[Deployed]] = {}
    for record in records:
        by_place.setdefault((record.component, record.environment), []).append(record)
    components: dict[str, dict[str, Any]] = {}
    for (component, environment), found in sorted(by_place.items()):
        found.sort(key=lambda r: r.time)
        components.setdefault(component, {})[environment] = {
            "deploymentFrequency": _frequency(found, since, until),
            "leadTime": _lead_times(found, committed, since, until),
            "changeFailureRate": _failure_rate(found, since, until),
            "timeToRestore": _restore(found, since, until),
            "records": len(found),
        }
    return {"window": {"since": _iso(since), "until": _iso(until), "days": round((until - since) / timedelta(days=1))},
            "from": "signed deployment records", "components": components}
