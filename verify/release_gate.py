"""The gate for a release: :func:`verify.gate.decide` for every artefact of every component of a release
manifest signed by a release signer (or of one component), with the very provenance the manifest names,
all or nothing.

The rules of the path that read deployment records (the order of the components, the stages a release
must have run in) are :mod:`verify.path`'s, on top of this verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from verify.digests import WEAK, DigestSet
from verify.errors import EvidenceRejected, MalformedEvidence, PolicyError, PolicyViolation, RequestError
from verify.formats.evidence import Evidence
from verify.formats.release import Release, ReleasePart, read_release
from verify.formats.statement import RELEASE_V1, Subject
from verify.gate import Found, Gate, _statements, decide
from verify.policy import Policy
from verify.signers import TrustRun, find_signers
from verify.stages import StageEvidence
from verify.verifier import Check

__all__ = ["ComponentVerdict", "ReleaseVerdict", "decide_release"]


@dataclass(frozen=True)
class ComponentVerdict:
    component: str
    artifact: str
    commit: str | None
    provenance: str
    stages: tuple[StageEvidence, ...] = ()
    commits: tuple[str, ...] = ()
    """Every commit the provenance's git dependencies name (one, for a build of one repository)."""
    digests: Mapping[str, str] = field(default_factory=dict)
    """The artefact's digests, as the signed manifest gives them (strong algorithms only)."""
    provenance_sha256: str = ""
    level: int = 0
    """The SLSA build level the policy trusts this artefact's builder for."""

    def to_dict(self) -> dict[str, Any]:
        return {"component": self.component, "artifact": self.artifact, "commit": self.commit,
                "provenance": self.provenance, "stages": [s.to_dict() for s in self.stages]}


@dataclass(frozen=True)
class ReleaseVerdict:
    name: str
    signer: str
    manifest: str
    components: tuple[ComponentVerdict, ...] = field(default=())
    manifest_sha256: str = ""
    """sha256 of the manifest's envelope line: how a VSA or a deployment record names the release."""
    release: Release | None = None
    """The manifest as read (its components, their needs), once its signature verified."""
    checks: tuple[Check, ...] = ()
    """The rules of the path checked on top of the gate (:mod:`verify.path`): order, stages run in."""
    relied: tuple[tuple[str, str], ...] = ()
    """(source, sha256) of each attestation those rules rest on: deployment records, hotfix approvals."""

    @property
    def level(self) -> int:
        """The build level every component is trusted for: the one a VSA of the whole release may state."""
        return min((c.level for c in self.components), default=0)

    def accepted(self) -> list[tuple[str, str]]:
        """(source, sha256) of every attestation the release's pass rests on, each once (by sha256, where it
        was first read): the manifest, each component's provenance, the stage evidence relied on, and what the
        path's rules rested on (what a release VSA names)."""
        found = [(self.manifest, self.manifest_sha256)]
        found += [(c.provenance, c.provenance_sha256) for c in self.components]
        found += [(s.source, s.sha256) for c in self.components for s in c.stages]
        found += list(self.relied)
        return list({sha256: (source, sha256) for source, sha256 in reversed(found)}.values())[::-1]

    def to_dict(self) -> dict[str, Any]:
        return {"verified": True, "release": self.name, "signer": self.signer, "manifest": self.manifest,
                "components": [c.to_dict() for c in self.components], "checks": [c.to_dict() for c in self.checks],
                "buildLevel": self.level}


def decide_release(gate: Gate, manifest: Found, *, lookup: Callable[[str], Found], run: TrustRun,
                   same_commit: bool = False, only: str | None = None) -> ReleaseVerdict:
    """The gate for every artefact of every component (or of the component ``only``) of a release manifest
    signed by a release signer.

    For each artefact (by the digests the signed manifest gives), the very provenance the manifest
    names must be among ``lookup(sha256)`` and pass the rules, and the stage's requirements must hold
    for it: all or nothing.
    """
    policy = gate.policy
    if policy.releases is None:
        raise PolicyError(f"policy {policy.uri} names no release signers (releases: {{signed-by: [...]}})")
    item, release, signer = _release_manifest(manifest, policy, run)
    parts = release.components if only is None else tuple(p for p in release.components if p.name == only)
    if not parts:
        raise RequestError(f"--component {only!r} is not a component of release {release.name!r} (its components: "
                           f"{', '.join(p.name for p in release.components)})")
    results = [_component(gate, component, artifact, lookup=lookup, run=run)
               for component in parts for artifact in component.artifacts]
    if same_commit:
        _one_commit(item, results, parts, [p for p in release.components if p not in parts])
    return ReleaseVerdict(name=release.name, signer=signer, manifest=item.source, components=tuple(results),
                          manifest_sha256=item.digest, release=release)


def _component(gate: Gate, component: ReleasePart, artifact: Subject, *, lookup: Callable[[str], Found],
               run: TrustRun) -> ComponentVerdict:
    """The gate for one artefact of a component, with the very provenance the manifest names."""
    name, wanted = artifact.name, component.provenance_sha256
    digests = DigestSet({a: d for a, d in artifact.digest.items() if a not in WEAK})
    evidence = lookup(artifact.digest["sha256"])
    if not any(isinstance(e, Evidence) and e.digest == wanted for e in evidence):
        raise PolicyViolation(f"component {component.name}: the provenance the release names "
                              f"(sha256:{wanted[:16]}...) is not in the store for {name!r}")
    own = replace(gate, policy=gate.policy.for_component(component.name))  # its components.NAME rules
    try:
        passed = decide(own, evidence, artifact=name, digests=digests, run=run, provenance=wanted)
    except EvidenceRejected as e:
        raise type(e)(f"component {component.name}: {e}", checks=e.checks) from e
    prov = passed.candidate.provenance
    return ComponentVerdict(component=component.name, artifact=name, commit=prov.commit if prov else None,
                            provenance=passed.candidate.evidence.source, stages=passed.stages,
                            commits=prov.commits if prov else (), digests=digests.as_dict(),
                            provenance_sha256=wanted, level=passed.level)


def _one_commit(item: Evidence, results: Sequence[ComponentVerdict], parts: Sequence[ReleasePart],
                others: Sequence[ReleasePart]) -> None:
    """--same-commit: every component records one commit, the same one. Those not verified now (``others``: with
    --component, each stack's gate verifies its own) count as the signed manifest gives their commits, and a
    component verified now must record the commit the manifest gives it: so each stack's gate holds its own
    provenance to the manifest, and the manifest to one commit."""
    unknown = [r.component for r in results if r.commit is None or len(r.commits) > 1]
    unknown += [p.name for p in others if not p.commit]
    if unknown:
        raise PolicyViolation(f"release {item.source}: component {unknown[0]} records no single commit, and an "
                              "unknown commit equals nothing; --same-commit requires one commit for all")
    _as_manifest_gives(item, results, parts)
    commits = {(r.commit or "").lower() for r in results} | {(p.commit or "").lower() for p in others}
    if len(commits) != 1:
        raise PolicyViolation(f"release {item.source}: components come from {len(commits)} commits "
                              f"({', '.join(sorted(c or '?' for c in commits))}); --same-commit requires one")


def _as_manifest_gives(item: Evidence, results: Sequence[ComponentVerdict], parts: Sequence[ReleasePart]) -> None:
    """Each component verified records the commit the manifest gives it (where it gives one)."""
    said = {p.name: (p.commit or "").lower() for p in parts}
    for r in results:
        if said.get(r.component) and said[r.component] != (r.commit or "").lower():
            raise PolicyViolation(f"release {item.source}: component {r.component}'s provenance records commit "
                                  f"{r.commit}, and the manifest gives {said[r.component]}; --same-commit holds a "
                                  "component to the commit the manifest gives it")


def _release_manifest(manifest: Found, policy: Policy, run: TrustRun) -> tuple[Evidence, Release, str]:
    """The release in ``manifest`` signed by a release signer (the first, by content), read by read_release."""
    assert policy.releases is not None
    signers = [policy.identities[name] for name in policy.releases.signed_by]
    reasons: list[EvidenceRejected] = [e for e in manifest if isinstance(e, MalformedEvidence)]
    for item, statement in _statements(manifest, RELEASE_V1):
        try:
            found = find_signers(item, signers, run)
        except EvidenceRejected as e:
            reasons.append(e)
            continue
        return item, read_release(statement), found[0].name
    if reasons:
        raise reasons[-1]
    raise MalformedEvidence("the release manifest holds no release statement "
                            f"({RELEASE_V1}); write one with 'attest release create'")
