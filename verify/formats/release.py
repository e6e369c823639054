"""Release manifests (``https://attest.dev/release/v1``, docs/predicates.md): the components a release binds,
and the order they are deployed in.

A component may name the components it needs deployed first (``needs``). The needs form a directed
acyclic graph; :func:`deployment_order` is the one place that checks it and orders it, for the writer
(``attest release create``, before it signs) and for the reader (:func:`read_release`).
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from verify.errors import MalformedEvidence, UnknownEvidence
from verify.formats.statement import RELEASE_V1, Statement, Subject, _bounded, _text, _time
from verify.limits import MAX_DEPENDENCIES

__all__ = ["RELEASE_V1", "Release", "ReleasePart", "deployment_order", "read_release"]

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ReleasePart:
    """One component of a release manifest: the provenance it binds, its artefacts, what it needs first."""

    name: str
    provenance_sha256: str
    """sha256 of the provenance attestation the manifest binds (as a VSA's inputAttestations names it)."""
    artifacts: tuple[Subject, ...]
    source: str | None
    commit: str | None
    needs: tuple[str, ...] = ()
    """The components deployed before this one, sorted by name (none: it may go first)."""


@dataclass(frozen=True)
class Release:
    """A release manifest (``https://attest.dev/release/v1``, docs/predicates.md)."""

    name: str
    created: datetime
    components: tuple[ReleasePart, ...]

    @property
    def order(self) -> tuple[ReleasePart, ...]:
        """The components in deployment order: each after every one it needs, ties broken by name."""
        by_name = {part.name: part for part in self.components}
        return tuple(by_name[name] for name in deployment_order({p.name: p.needs for p in self.components}))


def deployment_order(needs: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    """The components (the keys of ``needs``) in an order where each comes after every one it needs.

    Of the components ready at each step, the first by name goes first, so the order is the same for
    the same needs. :class:`ValueError`, in one sentence, if a component needs one that is not a key,
    needs itself, names a need twice, or if the needs form a cycle.
    """
    _check_needs(needs)
    waiting = {name: len(wanted) for name, wanted in needs.items()}
    needed_by: dict[str, list[str]] = {name: [] for name in needs}
    for name, wanted in needs.items():
        for need in wanted:
            needed_by[need].append(name)
    ready = [name for name, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = heapq.heappop(ready)
        order.append(name)
        for later in needed_by[name]:
            waiting[later] -= 1
            if waiting[later] == 0:
                heapq.heappush(ready, later)
    if len(order) < len(needs):
        left = {name for name, count in waiting.items() if count > 0}
        raise ValueError(f"the components' needs form a cycle: {' -> '.join(_cycle(needs, left))}")
    return tuple(order)


def _check_needs(needs: Mapping[str, Sequence[str]]) -> None:
    """:class:`ValueError` for the first component (by name) that needs an unknown component, itself, or a
    component twice."""
    for name in sorted(needs):
        seen: set[str] = set()
        for need in needs[name]:
            if need == name:
                raise ValueError(f"component {name!r} needs itself")
            if need not in needs:
                raise ValueError(f"component {name!r} needs {need!r}, which is not one of the components")
            if need in seen:
                raise ValueError(f"component {name!r} needs {need!r} twice")
            seen.add(need)


def _cycle(needs: Mapping[str, Sequence[str]], left: set[str]) -> list[str]:
    """One cycle among ``left`` (the components that could not be ordered, each needing another of them),
    from its first name by name back to it: found by following the first need (by name) still left."""
    path: list[str] = []
    at = min(left)
    while at not in path:
        path.append(at)
        at = min(need for need in needs[at] if need in left)
    cycle = path[path.index(at):]
    start = cycle.index(min(cycle))
    cycle = cycle[start:] + cycle[:start]
    return [*cycle, cycle[0]]


def read_release(statement: Statement) -> Release:
    """The release view of ``statement``: a name, a time, and components that each name their provenance
    (a sha256) and their artefacts (a name and digests with a sha256), every artefact a subject the
    manifest signs, and needs that order the components; :class:`MalformedEvidence` naming what is
    missing or wrong otherwise."""
    if statement.predicate_type != RELEASE_V1:
        raise UnknownEvidence(f"predicate type {statement.predicate_type!r} is not a release ({RELEASE_V1})")
    what = "the release manifest"
    pred = statement.predicate
    name = _text(pred.get("name"))
    if name is None:
        raise MalformedEvidence(f"{what} has no name")
    where = f"{what} {name!r}"
    created = _time(pred.get("timeCreated"), f"{where} timeCreated")
    if created is None:
        raise MalformedEvidence(f"{where} has no timeCreated")
    raw = pred.get("components")
    if not isinstance(raw, list) or not raw:
        raise MalformedEvidence(f"{where} names no components")
    signed = {s.digest.get("sha256") for s in statement.subjects}
    components = tuple(_release_component(i, component, where, signed)
                       for i, component in enumerate(_bounded(raw, MAX_DEPENDENCIES, where, "components")))
    _check_order(components, where)
    return Release(name=name, created=created, components=components)


def _check_order(components: tuple[ReleasePart, ...], where: str) -> None:
    """Each component named once, and their needs a graph :func:`deployment_order` can order."""
    names: set[str] = set()
    for part in components:
        if part.name in names:
            raise MalformedEvidence(f"{where} names component {part.name!r} twice")
        names.add(part.name)
    try:
        deployment_order({part.name: part.needs for part in components})
    except ValueError as e:
        raise MalformedEvidence(f"{where}: {e}") from e


def _release_component(i: int, component: Any, where: str, signed: set[str | None]) -> ReleasePart:
    """Component ``i`` of the manifest ``where``: a name, its provenance's sha256, its signed artefacts, and
    the names of the components it needs (checked against the others by :func:`_check_order`)."""
    label = _text(component.get("name")) if isinstance(component, dict) else None
    if label is None:
        raise MalformedEvidence(f"{where}: component {i} has no name")
    here = f"{where}: component {label!r}"
    bound = _provenance_sha256(component.get("provenance"))
    if bound is None:
        raise MalformedEvidence(f"{here} names no provenance sha256")
    artifacts = component.get("artifacts")
    if not isinstance(artifacts, list) or not artifacts:
        raise MalformedEvidence(f"{here} names no artefacts")
    parts = tuple(_release_artifact(artifact, here, signed)
                  for artifact in _bounded(artifacts, MAX_DEPENDENCIES, here, "artefacts"))
    return ReleasePart(name=label, provenance_sha256=bound, artifacts=parts,
                       source=_text(component.get("source")), commit=_text(component.get("commit")),
                       needs=_needs(component.get("needs", []), here))


def _needs(needs: Any, here: str) -> tuple[str, ...]:
    """A component's ``needs``: a list of names, sorted. Bounded by MAX_DEPENDENCIES, the bound on the
    components themselves: a component that needs more names than a manifest may have components names
    one twice or one that is not there, so no readable manifest is refused by this count."""
    if not isinstance(needs, list) or \
            not all(isinstance(need, str) for need in _bounded(needs, MAX_DEPENDENCIES, here, "needs")):
        raise MalformedEvidence(f"{here} has needs that are not a list of component names")
    return tuple(sorted(needs))


def _provenance_sha256(provenance: Any) -> str | None:
    """The ``digest.sha256`` of a component's ``provenance``, if it is 64 lower-case hex digits."""
    digest = provenance.get("digest") if isinstance(provenance, dict) else None
    bound = digest.get("sha256") if isinstance(digest, dict) else None
    return bound if isinstance(bound, str) and _SHA256.fullmatch(bound) else None


def _release_artifact(artifact: Any, here: str, signed: set[str | None]) -> Subject:
    """One artefact of the component ``here``: a name and string digests with a sha256 the manifest signs."""
    part = artifact.get("name") if isinstance(artifact, dict) else None
    digests: dict[str, Any] = artifact.get("digest", {}) if isinstance(artifact, dict) else {}
    digests = digests if isinstance(digests, dict) else {}
    sha = digests.get("sha256")
    if not isinstance(part, str) or not isinstance(sha, str) or not _SHA256.fullmatch(sha) or \
            not all(isinstance(v, str) for v in digests.values()):
        raise MalformedEvidence(f"{here} has an artefact without a name and a sha256 of 64 hex digits")
    if sha not in signed:
        raise MalformedEvidence(f"{here} names sha256:{sha[:12]}, which is not a subject of the manifest")
    return Subject(name=part, digest=dict(digests))
