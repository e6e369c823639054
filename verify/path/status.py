"""What runs where, from verified deployment records only (``attest status``).

Per environment (the policy's stages that name deployers, in the policy's order) and component: what
:func:`verify.path.running.running` finds, its release, commit, artefacts, since when, signed by whom, and
a failed deployment newer than it. Then, between each environment and the next, the components whose
artefacts the later one does not run yet ("prd is behind stg"). Records that did not count are counted
and their reasons kept; an index entry for an environment the policy does not name is counted too.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from verify.path.running import Running
from verify.policy import Policy

__all__ = ["Behind", "Status", "environments", "status"]


def environments(policy: Policy) -> list[str]:
    """The stages whose deployment records someone signs, in the policy's order: the path."""
    return [name for name, rule in policy.stages.items() if rule.deployed_by]


@dataclass(frozen=True)
class Behind:
    """``component`` runs ``ahead_release`` in ``ahead`` and something else (or nothing) in ``behind``."""

    component: str
    ahead: str
    behind: str
    ahead_release: str
    behind_release: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"component": self.component, "from": self.ahead, "to": self.behind, "release": self.ahead_release,
                "runs": self.behind_release}


@dataclass(frozen=True)
class Status:
    environments: Mapping[str, Mapping[str, Running]]
    pending: tuple[Behind, ...] = ()
    ignored: tuple[str, ...] = ()
    """Why each record read did not count, and each index entry for an environment the policy does not name."""
    read: int = 0
    indexed: int = 0

    @property
    def empty(self) -> bool:
        return self.indexed == 0

    def to_dict(self) -> dict[str, Any]:
        return {"path": list(self.environments),
                "environments": {env: {name: _entry(r) for name, r in comps.items()}
                                 for env, comps in self.environments.items()},
                "pending": [b.to_dict() for b in self.pending],
                "ignored": {"count": len(self.ignored), "reasons": list(self.ignored[:20])},
                "records": {"indexed": self.indexed, "read": self.read}}


def _entry(now: Running) -> dict[str, Any]:
    """One environment's component, as ``attest status --format json`` gives it."""
    current = now.current
    failed = now.failed[0].to_dict() if now.failed else None
    if current is None:
        return {"release": None, "releaseDigest": None, "commit": None, "artifacts": [], "since": None, "kind": None,
                "signer": None, "record": None, "lastFailed": failed}
    record = current.record
    return {"release": record.release, "releaseDigest": {"sha256": record.release_sha256}, "commit": record.commit,
            "artifacts": [{"name": a.name, "digest": dict(a.digest)} for a in record.artifacts],
            "since": record.time.isoformat(), "kind": record.kind, "signer": current.signer, "record": current.source,
            "lastFailed": failed}


def status(policy: Policy, found: Mapping[str, Mapping[str, Running]], *, unknown: Mapping[str, int] | None = None,
           indexed: int = 0) -> Status:
    """The status from what runs of each component in each environment (``found``, by environment)."""
    order = [env for env in environments(policy) if env in found]
    ignored = [reason for comps in found.values() for now in comps.values() for reason in now.ignored]
    ignored += [f"{count} index entr{'y' if count == 1 else 'ies'} for environment {env!r}, which the policy does "
                "not name as a stage with deployers" for env, count in sorted((unknown or {}).items())]
    return Status(environments={env: dict(sorted(found[env].items())) for env in order},
                  pending=tuple(_behind(found, order)), ignored=tuple(ignored),
                  read=sum(now.read for comps in found.values() for now in comps.values()), indexed=indexed)


def _behind(found: Mapping[str, Mapping[str, Running]], order: Sequence[str]) -> list[Behind]:
    """Between each environment and the next on the path: the components the later does not run yet."""
    pending: list[Behind] = []
    for ahead, behind in itertools.pairwise(order):
        for component, now in sorted(found[ahead].items()):
            there = found[behind].get(component)
            if now.current is None:
                continue
            later = there.current if there is not None else None
            if later is None or later.artifact_digests != now.current.artifact_digests:
                pending.append(Behind(component=component, ahead=ahead, behind=behind,
                                      ahead_release=now.current.record.release,
                                      behind_release=later.record.release if later else None))
    return pending
