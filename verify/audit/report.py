"""What an audit reports: each artefact's history, the releases, and the anomalies, as frozen records.

:class:`AuditReport` is the result of :func:`verify.audit.audit`; ``to_dict`` is its JSON form (the
``--format json`` a machine reads), which :mod:`verify.audit.html` and attest's text table render.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from verify.errors import EvidenceRejected

__all__ = [
    "ANOMALY_KINDS",
    "Anomaly",
    "ArtifactHistory",
    "AuditReport",
    "BuildRecord",
    "Endorsement",
    "Progress",
    "ReleaseComponent",
    "ReleaseRecord",
    "Source",
    "StageHistory",
    "StageStatus",
    "StoredArtifact",
    "StoredCopy",
    "iso_time",
    "short_sha",
    "when_of",
]

#: Every kind of anomaly, with what it means (shown as a legend in reports).
ANOMALY_KINDS: Mapping[str, str] = {
    "untrusted-signer": "signed by no key or Sigstore identity the policy pins, or by an identity not allowed "
                        "to sign this",
    "bad-signature": "names a pinned key or Sigstore identity but does not verify: altered after signing, "
                     "forged, or not vouched for by the trusted root",
    "malformed": "an attestation that cannot be read",
    "unverifiable": "a message signature that names no sha256 of an artefact (no messageDigest and no hashedrekord "
                    "entry, or a SHA-384 or SHA-512 digest, as a P-384 key signs): audit cannot place it",
    "skipped-stage": "a stage verified the artefact without the build or earlier stage the policy requires",
    "out-of-order": "a VSA dated before the build, or before the earlier stage's VSA it depends on",
    "missing-approval": "a stage verified the artefact with fewer approvals than the policy requires",
    "unknown-stage": "a VSA for a resourceUri that no stage of the policy accepts",
    "disallowed-source": "built from a repository or branch the policy does not allow",
    "disallowed-builder": "built by a builder the policy does not allow",
    "disallowed-commit": "built from a commit other than the one the policy requires",
    "insufficient-level": "built by a builder the policy trusts for a lower SLSA build level than it requires",
    "unexpected-parameters": "a provenance whose build type or external parameters the policy does not "
                             "recognise or expect (an input nobody checked)",
    "dirty-build": "built from a work tree with uncommitted changes",
    "missing-lockfile": "a provenance that does not bind a lockfile the policy requires",
    "non-reproducible": "one commit and lockfiles gave different digests, or a rebuild did not match",
    "tampered-artifact": "a stored artefact whose bytes do not hash to the sha256 its address names, or that "
                         "cannot be read to check (not a regular file, unreadable)",
    "unknown-deployment": "a trusted deployment record for a component its release does not have, or for other "
                          "artefacts than the release gives that component",
    "index-mismatch": "the audit index held other facts for an attestation than a fresh check gives (--reverify): "
                      "the index was edited or written by a faulty version",
}

StageStatus = Literal["passed", "failed", "absent", "anomalous"]
Source = tuple[str, "bytes | EvidenceRejected"]
"""One attestation file: (its URI, its bytes, or why they were not read)."""
StoredArtifact = tuple[str, str, "str | EvidenceRejected"]
"""One stored artefact: (its URI, the sha256 its address ``sha256/<hex>/artifact/NAME`` claims, the sha256
of its bytes as read, or why they could not be read)."""
Progress = Callable[[int], None]

def iso_time(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def short_sha(sha256: str | None) -> str:
    return f"sha256:{sha256[:12]}" if sha256 else "(no artefact)"


# --- results ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Anomaly:
    """Something in the history a person should look at."""

    kind: str
    sha256: str | None
    """The artefact it concerns; None when the attestation names none that could be read."""
    message: str
    source: str = ""
    """The attestation (file or file:line) it was found in, if one."""
    step: str = ""
    """Where on the artefact's path it belongs: ``source``, ``build``, a stage name, or empty."""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "sha256": self.sha256, "message": self.message, "source": self.source,
                "step": self.step or None}


@dataclass(frozen=True)
class BuildRecord:
    """A trusted provenance for an artefact."""

    name: str
    commit: str | None
    source: str | None
    ref: str | None
    builder: str
    started_on: datetime | None
    finished_on: datetime | None
    dirty: bool
    invocation_id: str
    lockfiles: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]
    signers: tuple[str, ...]
    attestation: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "commit": self.commit, "source": self.source, "ref": self.ref,
                "builder": self.builder, "startedOn": iso_time(self.started_on),
                "finishedOn": iso_time(self.finished_on), "dirty": self.dirty, "invocationId": self.invocation_id,
                "lockfiles": {name: dict(digests) for name, digests in self.lockfiles},
                "signers": list(self.signers), "attestation": self.attestation}


@dataclass(frozen=True)
class Endorsement:
    """A trusted VSA, approval, reproduction, message signature, release manifest or deployment record for an
    artefact."""

    kind: Literal["vsa", "approval", "reproduction", "signature", "release", "deployment"]
    stage: str
    """The stage (VSA, approval), or the environment (deployment); empty for a reproduction, a signature or a
    release."""
    result: str
    """verificationResult (VSA), the approver (approval), the verdict (reproduction), the digest
    signed, ``sha256:<hex>`` (signature), the release's name (release), or the status (deployment)."""
    time: datetime | None
    signers: tuple[str, ...]
    attestation: str
    level: int | None = None
    """The SLSA build level a VSA states (None: none, or not a VSA)."""
    about: tuple[tuple[str, str], ...] = ()
    """More of what it says, as (JSON key, value): a deployment record's release, component and kind."""

    def to_dict(self) -> dict[str, Any]:
        key = {"vsa": "result", "approval": "approver", "reproduction": "verdict", "signature": "digest",
               "release": "release", "deployment": "status"}[self.kind]
        out: dict[str, Any] = {key: self.result, "signers": list(self.signers), "attestation": self.attestation}
        if self.kind != "signature":  # a message signature carries no time audit could trust
            out["time"] = iso_time(self.time)
        if self.kind in ("vsa", "approval"):
            out["stage"] = self.stage
        if self.kind == "deployment":
            out["environment"] = self.stage
        if self.kind == "vsa":
            out["buildLevel"] = self.level
        out.update(self.about)
        return out


@dataclass(frozen=True)
class StoredCopy:
    """An artefact's bytes as found in a store, hashed and compared with the sha256 of their address."""

    uri: str
    sha256: str | None
    """The sha256 of the bytes read; None when they could not be read."""
    status: Literal["verified", "tampered", "unreadable"]

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "sha256": self.sha256, "status": self.status}


@dataclass(frozen=True)
class ReleaseComponent:
    """One stack of a release manifest: its artefacts, and the provenance and commit it names."""

    name: str
    source: str | None
    commit: str | None
    provenance: str
    """The sha256 of the provenance envelope the manifest binds."""
    artifacts: tuple[tuple[str, str], ...]
    """(name, sha256) of each artefact."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "commit": self.commit,
                "provenance": {"sha256": self.provenance},
                "artifacts": [{"name": name, "sha256": sha} for name, sha in self.artifacts]}


@dataclass(frozen=True)
class ReleaseRecord:
    """A release manifest (``https://attest.dev/release/v1``) signed by an identity of ``releases.signed-by``."""

    name: str
    created: datetime
    signers: tuple[str, ...]
    attestation: str
    components: tuple[ReleaseComponent, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "timeCreated": iso_time(self.created), "signers": list(self.signers),
                "attestation": self.attestation, "components": [c.to_dict() for c in self.components]}


@dataclass(frozen=True)
class StageHistory:
    stage: str
    status: StageStatus
    vsas: tuple[Endorsement, ...]
    approvals: tuple[Endorsement, ...]
    deployments: tuple[Endorsement, ...] = ()
    """Deployment records for the artefact in this stage as an environment, signed by its ``deployed-by``."""

    @property
    def first_passed(self) -> Endorsement | None:
        passed = [v for v in self.vsas if v.result == "PASSED"]
        return min(passed, key=when_of) if passed else None

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "status": self.status, "vsas": [v.to_dict() for v in self.vsas],
                "approvals": [a.to_dict() for a in self.approvals],
                "deployments": [d.to_dict() for d in self.deployments]}


@dataclass(frozen=True)
class ArtifactHistory:
    """Everything trusted that is known about one artefact, and its anomalies."""

    sha256: str
    names: tuple[str, ...]
    builds: tuple[BuildRecord, ...]
    stages: tuple[StageHistory, ...]
    reproductions: tuple[Endorsement, ...]
    anomalies: tuple[Anomaly, ...]
    signatures: tuple[Endorsement, ...] = ()
    """Verified message signatures of the artefact's sha256 by identities of the policy (not provenance)."""
    releases: tuple[Endorsement, ...] = ()
    """The trusted release manifests that include the artefact."""
    stored: tuple[StoredCopy, ...] = ()
    """Its copies in the stores audited, each hashed (``tampered-artifact`` when the bytes differ)."""

    @property
    def build(self) -> BuildRecord | None:
        """The first trusted build (the one the later stages vouch for)."""
        return self.builds[0] if self.builds else None

    def steps_with_anomalies(self) -> set[str]:
        return {a.step for a in self.anomalies}

    def to_dict(self) -> dict[str, Any]:
        build = self.build
        return {
            "sha256": self.sha256, "names": list(self.names),
            "commit": build.commit if build else None, "source": build.source if build else None,
            "ref": build.ref if build else None, "builder": build.builder if build else None,
            "builtOn": iso_time(build.finished_on) if build else None, "dirty": build.dirty if build else None,
            "builds": [b.to_dict() for b in self.builds],
            "stages": [s.to_dict() for s in self.stages],
            "reproductions": [r.to_dict() for r in self.reproductions],
            "signatures": [s.to_dict() for s in self.signatures],
            "releases": [r.to_dict() for r in self.releases],
            "stored": [c.to_dict() for c in self.stored],
            "anomalies": sorted({a.kind for a in self.anomalies}),
        }


@dataclass(frozen=True)
class AuditReport:
    artifacts: tuple[ArtifactHistory, ...]
    anomalies: tuple[Anomaly, ...]
    stages: tuple[str, ...]
    files: int
    attestations: int
    policy_uri: str
    policy_digest: str
    releases: tuple[ReleaseRecord, ...] = ()
    """Release manifests signed by a release signer of the policy, oldest first."""
    stored: int = 0
    """Stored artefacts whose bytes were checked against their address."""
    unread: int = 0
    """Parts of the sources not read (a file refused or unreadable, a folder that cannot be listed, stored
    bytes that cannot be hashed): each is also an anomaly, so that an audit never passes over what it skipped."""
    dora: Mapping[str, Any] | None = None
    """The DORA figures, when asked for (:mod:`verify.audit.dora`)."""
    running: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    """What runs where: component -> environment -> the newest succeeded trusted deployment record's release,
    time (``since``), kind and artefacts."""

    @property
    def clean(self) -> bool:
        return not self.anomalies

    def exceptions(self, kind: str) -> list[Endorsement]:
        """Every trusted deployment record of ``kind`` (``hotfix``, ``rollback``), each once (a record is filed
        under every artefact of its component), oldest first."""
        found = {e.attestation: e for a in self.artifacts for s in a.stages for e in s.deployments
                 if dict(e.about).get("kind") == kind}
        return sorted(found.values(), key=lambda e: (when_of(e), e.attestation))

    def json_chunks(self) -> Iterator[str]:
        """The compact JSON of :meth:`to_dict` (keys sorted), an artefact at a time: the same text as
        ``json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))``, never held whole."""
        rest = self.to_dict(artifacts=False)
        for n, key in enumerate(sorted([*rest, "artifacts"])):
            yield ("{" if n == 0 else ",") + json.dumps(key) + ":"
            if key != "artifacts":
                yield json.dumps(rest[key], sort_keys=True, separators=(",", ":"))
                continue
            yield "["
            for i, artifact in enumerate(self.artifacts):
                yield ("," if i else "") + json.dumps(artifact.to_dict(), sort_keys=True, separators=(",", ":"))
            yield "]"
        yield "}"

    def to_dict(self, *, artifacts: bool = True) -> dict[str, Any]:
        return {
            **({"artifacts": [a.to_dict() for a in self.artifacts]} if artifacts else {}),
            "releases": [r.to_dict() for r in self.releases],
            "hotfixes": [e.to_dict() for e in self.exceptions("hotfix")],
            "rollbacks": [e.to_dict() for e in self.exceptions("rollback")],
            "anomalies": [a.to_dict() for a in self.anomalies],
            "summary": {"files": self.files, "attestations": self.attestations,
                        "artifacts": len(self.artifacts), "anomalies": len(self.anomalies),
                        "stages": list(self.stages), "releases": len(self.releases), "stored": self.stored,
                        "unread": self.unread},
            "policy": {"uri": self.policy_uri, "sha256": self.policy_digest or None},
            **({"dora": dict(self.dora)} if self.dora is not None else {}),
            "running": {c: dict(envs) for c, envs in self.running.items()},
        }


def when_of(e: Endorsement) -> datetime:
    return e.time or datetime.max.replace(tzinfo=UTC)


