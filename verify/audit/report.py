"""What an audit reports: each artefact's history, the releases, and the anomalies, as frozen records.

:class:`AuditReport` is the result of :func:`verify.audit.audit`; ``to_dict`` is its JSON form (the
``--format json`` a machine reads), which :mod:`verify.audit.html` and attest's text table render. An artefact's
history also reads back from it (``from_dict``), so that a cache can keep it as JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast, get_args, overload

from verify.audit import _fields
from verify.errors import ConfigError, EvidenceRejected

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
    "out-of-order": "a VSA dated before the build, or before the earlier stage's VSA it depends on; a VSA or "
                    "deployment record dated after the time of the audit (not counted)",
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
    "non-reproducible": "one commit and lockfiles gave different digests, a rebuild did not match, or a rebuild "
                        "was of another commit or provenance than the artefact's build",
    "tampered-artifact": "a stored artefact whose bytes do not hash to the sha256 its address names, or that "
                         "cannot be read to check (not a regular file, unreadable)",
    "unknown-deployment": "a trusted deployment record for a component its release does not have, for other "
                          "artefacts than the release gives that component, or of a release no trusted manifest "
                          "among the sources shows (it counts in no figure)",
    "index-mismatch": "the audit index held other facts for an attestation than a fresh check gives (--reverify): "
                      "the index was edited or written by a faulty version",
}

StageStatus = Literal["passed", "failed", "absent", "anomalous"]
_Kind = Literal["vsa", "approval", "reproduction", "signature", "release", "deployment"]
_CopyStatus = Literal["verified", "tampered", "unreadable"]
Source = tuple[str, "bytes | EvidenceRejected"]
"""One attestation file: (its URI, its bytes, or why they were not read)."""
StoredArtifact = tuple[str, str, "str | EvidenceRejected"]
"""One stored artefact: (its URI, the sha256 its address ``sha256/<hex>/artifact/NAME`` claims, the sha256
of its bytes as read, or why they could not be read)."""
Progress = Callable[[int], None]

def iso_time(t: datetime | None) -> str | None:
    """``t`` in UTC to the second, as RFC 3339 (``2024-05-01T10:00:00Z``; a year below 1000 zero-padded)."""
    return None if t is None else t.astimezone(UTC).isoformat(timespec="seconds")[:19] + "Z"


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

    def __post_init__(self) -> None:
        # a message may quote a file name that is not UTF-8 (its bytes as lone surrogates, which no UTF-8 JSON
        # carries): spelled ``\udcNN``, as the report spells such a name where it is a source
        if not self.message.isascii():
            object.__setattr__(self, "message", _no_surrogates(self.message))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "sha256": self.sha256, "message": self.message, "source": self.source,
                "step": self.step or None}


def _no_surrogates(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join(f"\\u{ord(c):04x}" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
    return text


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

    @classmethod
    def from_dict(cls, data: object) -> BuildRecord:
        """The inverse of :meth:`to_dict`; ValueError for anything it would not have written."""
        what = "a build"
        with _fields.reading(what):
            d = _fields.an_object(data, _BUILD_KEYS, what)
            return cls(
                name=_fields.a_value(d, "name", what, str), commit=_fields.a_value(d, "commit", what, str, None),
                source=_fields.a_value(d, "source", what, str, None), ref=_fields.a_value(d, "ref", what, str, None),
                builder=_fields.a_value(d, "builder", what, str), started_on=_fields.a_time(d, "startedOn", what),
                finished_on=_fields.a_time(d, "finishedOn", what), dirty=_fields.a_value(d, "dirty", what, bool),
                invocation_id=_fields.a_value(d, "invocationId", what, str),
                lockfiles=_fields.lockfiles(d, what),
                signers=_fields.strings(d, "signers", what), attestation=_fields.a_value(d, "attestation", what, str))


@dataclass(frozen=True)
class Endorsement:
    """A trusted VSA, approval, reproduction, message signature, release manifest or deployment record for an
    artefact."""

    kind: _Kind
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
        out: dict[str, Any] = {_RESULT_KEY[self.kind]: self.result, "signers": list(self.signers),
                               "attestation": self.attestation}
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

    @classmethod
    def from_dict(cls, data: object) -> Endorsement:
        """The inverse of :meth:`to_dict`, whose form names no kind: the set of keys written says which it is."""
        with _fields.reading("an endorsement"):
            if not isinstance(data, dict):
                raise ValueError(f"an endorsement is {_fields.json_name(data)}, not an object")
            kind = next((k for k, keys in _ENDORSEMENT_KEYS.items() if data.keys() == keys), None)
            if kind is None:
                raise ValueError(f"an endorsement with the keys {sorted(map(str, data))} is none of "
                                 f"{', '.join(_ENDORSEMENT_KEYS)}: a key is missing or unknown")
            what = f"a {kind} endorsement"
            stage = {"vsa": "stage", "approval": "stage", "deployment": "environment"}.get(kind)
            return cls(
                kind=kind, stage=_fields.a_value(data, stage, what, str) if stage else "",
                result=_fields.a_value(data, _RESULT_KEY[kind], what, str),
                time=None if kind == "signature" else _fields.a_time(data, "time", what),
                signers=_fields.strings(data, "signers", what),
                attestation=_fields.a_value(data, "attestation", what, str),
                level=_fields.a_value(data, "buildLevel", what, int, None) if kind == "vsa" else None,
                about=tuple((key, _fields.a_value(data, key, what, str)) for key in _DEPLOYMENT_ABOUT)
                if kind == "deployment" else ())


@dataclass(frozen=True)
class StoredCopy:
    """An artefact's bytes as found in a store, hashed and compared with the sha256 of their address."""

    uri: str
    sha256: str | None
    """The sha256 of the bytes read; None when they could not be read."""
    status: _CopyStatus

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "sha256": self.sha256, "status": self.status}

    @classmethod
    def from_dict(cls, data: object) -> StoredCopy:
        """The inverse of :meth:`to_dict`; ValueError for anything it would not have written."""
        what = "a stored copy"
        with _fields.reading(what):
            d = _fields.an_object(data, _COPY_KEYS, what)
            return cls(uri=_fields.a_value(d, "uri", what, str), sha256=_fields.a_value(d, "sha256", what, str, None),
                       status=cast(_CopyStatus, _fields.choice(d, "status", what, get_args(_CopyStatus))))


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
    needs: tuple[str, ...] = ()
    """The components of the release that run in an environment before this one may be deployed there."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "commit": self.commit,
                "provenance": {"sha256": self.provenance},
                "artifacts": [{"name": name, "sha256": sha} for name, sha in self.artifacts],
                "needs": list(self.needs)}


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

    @classmethod
    def from_dict(cls, data: object) -> StageHistory:
        """The inverse of :meth:`to_dict`; ValueError for anything it would not have written."""
        with _fields.reading("a stage"):
            d = _fields.an_object(data, _STAGE_KEYS, "a stage")
            what = f"stage {_fields.a_value(d, 'stage', 'a stage', str)!r}"
            status = _fields.choice(d, "status", what, get_args(StageStatus))
            return cls(stage=d["stage"], status=cast(StageStatus, status),
                       vsas=_endorsements(d, "vsas", what, "vsa"),
                       approvals=_endorsements(d, "approvals", what, "approval"),
                       deployments=_endorsements(d, "deployments", what, "deployment"))


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

    def _first_build(self) -> dict[str, Any]:
        """What the first build says, repeated at the top of :meth:`to_dict` for readers that look no further."""
        build = self.build
        return {"commit": build.commit if build else None, "source": build.source if build else None,
                "ref": build.ref if build else None, "builder": build.builder if build else None,
                "builtOn": iso_time(build.finished_on) if build else None, "dirty": build.dirty if build else None}

    def to_dict(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256, "names": list(self.names),
            **self._first_build(),
            "builds": [b.to_dict() for b in self.builds],
            "stages": [s.to_dict() for s in self.stages],
            "reproductions": [r.to_dict() for r in self.reproductions],
            "signatures": [s.to_dict() for s in self.signatures],
            "releases": [r.to_dict() for r in self.releases],
            "stored": [c.to_dict() for c in self.stored],
            "anomalies": sorted({a.kind for a in self.anomalies}),
        }

    @classmethod
    def from_dict(cls, data: object, anomalies: Iterable[Anomaly]) -> ArtifactHistory:
        """The inverse of :meth:`to_dict`, given the artefact's anomalies, of which that form keeps only the kinds;
        ValueError for anything it would not have written (the text may come from a cache others wrote)."""
        with _fields.reading("an artefact's history"):
            d = _fields.an_object(data, _HISTORY_KEYS, "an artefact's history")
            what = f"the history of {short_sha(_fields.a_value(d, 'sha256', 'an artefact', str))}"
            found = tuple(anomalies)
            kinds, given = list(_fields.strings(d, "anomalies", what)), sorted({a.kind for a in found})
            if kinds != given:
                raise ValueError(f"{what} names the anomalies {kinds}, but the ones given are {given}")
            history = cls(
                sha256=d["sha256"], names=_fields.strings(d, "names", what),
                builds=tuple(BuildRecord.from_dict(b) for b in _fields.a_value(d, "builds", what, list)),
                stages=tuple(StageHistory.from_dict(s) for s in _fields.a_value(d, "stages", what, list)),
                reproductions=_endorsements(d, "reproductions", what, "reproduction"), anomalies=found,
                signatures=_endorsements(d, "signatures", what, "signature"),
                releases=_endorsements(d, "releases", what, "release"),
                stored=tuple(StoredCopy.from_dict(c) for c in _fields.a_value(d, "stored", what, list)))
            for key, expected in history._first_build().items():
                if _fields.a_value(d, key, what, bool if key == "dirty" else str, None) != expected:
                    raise ValueError(f"{what} has {key} {d[key]!r}, but its first build says {expected!r}")
            return history


@dataclass(frozen=True)
class AuditReport:
    artifacts: Sequence[ArtifactHistory]
    """In order: by name, then by first build (a :class:`Histories` reads each back from an audit index's text only
    when asked for)."""
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
    exceptional: tuple[Endorsement, ...] | None = None
    """Every trusted hotfix and rollback deployment record (None: read them from the artefacts' stages)."""

    @property
    def clean(self) -> bool:
        return not self.anomalies

    def exceptions(self, kind: str) -> list[Endorsement]:
        """Every trusted deployment record of ``kind`` (``hotfix``, ``rollback``), each once (a record is filed
        under every artefact of its component), oldest first."""
        if self.exceptional is not None:
            found = {e.attestation: e for e in self.exceptional if dict(e.about).get("kind") == kind}
        else:
            found = {e.attestation: e for a in self.artifacts for s in a.stages for e in s.deployments
                     if dict(e.about).get("kind") == kind}
        return sorted(found.values(), key=lambda e: (when_of(e), e.attestation))

    def with_anomalies(self) -> list[ArtifactHistory]:
        """The artefacts with anomalies, in order (from an index, only these are read back)."""
        if isinstance(self.artifacts, Histories):
            return self.artifacts.anomalous()
        return [a for a in self.artifacts if a.anomalies]

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
            for i, text in enumerate(_json_texts(self.artifacts)):
                yield ("," if i else "") + text
            yield "]"
        yield "}"

    def to_dict(self, *, artifacts: bool = True) -> dict[str, Any]:
        return {
            **({"artifacts": [json.loads(text) for text in _json_texts(self.artifacts)]} if artifacts else {}),
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




# --- reading the JSON form back -----------------------------------------------------------------------

_RESULT_KEY: Mapping[_Kind, str] = {"vsa": "result", "approval": "approver", "reproduction": "verdict",
                                    "signature": "digest", "release": "release", "deployment": "status"}
_DEPLOYMENT_ABOUT = ("release", "component", "kind")
"""The keys of a deployment record's ``about``, in the order the audit writes them."""
_SIGNED = ("signers", "attestation")
_ENDORSEMENT_KEYS: Mapping[_Kind, frozenset[str]] = {
    "vsa": frozenset({"result", "time", "stage", "buildLevel", *_SIGNED}),
    "approval": frozenset({"approver", "time", "stage", *_SIGNED}),
    "reproduction": frozenset({"verdict", "time", *_SIGNED}),
    "signature": frozenset({"digest", *_SIGNED}),
    "release": frozenset({"release", "time", *_SIGNED}),
    "deployment": frozenset({"status", "time", "environment", *_DEPLOYMENT_ABOUT, *_SIGNED}),
}
"""The keys :meth:`Endorsement.to_dict` writes for each kind: no two kinds write the same set."""
_BUILD_KEYS = frozenset({"name", "commit", "source", "ref", "builder", "startedOn", "finishedOn", "dirty",
                         "invocationId", "lockfiles", "signers", "attestation"})
_HISTORY_KEYS = frozenset({"sha256", "names", "commit", "source", "ref", "builder", "builtOn", "dirty", "builds",
                           "stages", "reproductions", "signatures", "releases", "stored", "anomalies"})
_STAGE_KEYS = frozenset({"stage", "status", "vsas", "approvals", "deployments"})
_COPY_KEYS = frozenset({"uri", "sha256", "status"})
"""The keys each ``to_dict`` writes (sets: an object read back is compared with one at once)."""


def _endorsements(data: dict[str, Any], key: str, what: str, kind: _Kind) -> tuple[Endorsement, ...]:
    """The endorsements under ``key``, each of ``kind``: one of another kind was filed in the wrong place."""
    found = tuple(Endorsement.from_dict(e) for e in _fields.a_value(data, key, what, list))
    if wrong := next((e for e in found if e.kind != kind), None):
        raise ValueError(f"{what}: {key} holds a {wrong.kind} endorsement, not only {kind} ones")
    return found


# --- histories, made now or read back from an audit index ----------------------------------------------------

@dataclass(frozen=True)
class HistoryEntry:
    """One artefact of a report: its history as made in this audit, or as JSON text an audit index kept."""

    key: tuple[str, str, str]
    """Where it sorts: (first name, else U+FFFF; first build's time, else ``~``; sha256)."""
    sha256: str
    anomalies: tuple[Anomaly, ...]
    history: ArtifactHistory | None
    text: str | None
    """Its :meth:`ArtifactHistory.to_dict` as compact JSON with sorted keys, without ``anomalies`` (judged with the
    whole history, and put first when printed)."""

    def json(self) -> str:
        """The compact JSON of its ``to_dict()``, keys sorted."""
        kinds = json.dumps(sorted({a.kind for a in self.anomalies}), separators=(",", ":")) if self.anomalies else "[]"
        if self.text is not None:
            return '{"anomalies":' + kinds + "," + self.text[1:]
        assert self.history is not None
        return json.dumps(self.history.to_dict(), sort_keys=True, separators=(",", ":"))

    def read(self) -> ArtifactHistory:
        if self.history is not None:
            return self.history
        try:
            return ArtifactHistory.from_dict(json.loads(self.json()), self.anomalies)
        except ValueError as e:
            raise ConfigError(f"the audit index's history of {short_sha(self.sha256)} does not read back ({e}); run "
                              "the audit with --reverify to check and replace it, or with --no-index") from e


class Histories(Sequence[ArtifactHistory]):
    """A report's artefacts in order, each read back from its JSON text only when asked for: an audit at an
    organisation's scale prints its JSON without making a single history."""

    def __init__(self, entries: Sequence[HistoryEntry]) -> None:
        self._entries = tuple(entries)

    def __len__(self) -> int:
        return len(self._entries)

    @overload
    def __getitem__(self, i: int) -> ArtifactHistory: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[ArtifactHistory]: ...

    def __getitem__(self, i: int | slice) -> ArtifactHistory | Sequence[ArtifactHistory]:
        if isinstance(i, slice):
            return Histories(self._entries[i])
        return self._entries[i].read()

    def __iter__(self) -> Iterator[ArtifactHistory]:
        return (entry.read() for entry in self._entries)

    def json_texts(self) -> Iterator[str]:
        """Each artefact's compact JSON, in order, never made into a history when kept as text."""
        return (entry.json() for entry in self._entries)

    def anomalous(self) -> list[ArtifactHistory]:
        """The artefacts with anomalies, in order (only these are read back)."""
        return [entry.read() for entry in self._entries if entry.anomalies]


def _json_texts(artifacts: Sequence[ArtifactHistory]) -> Iterator[str]:
    """Each artefact's compact JSON (keys sorted), in order."""
    if isinstance(artifacts, Histories):
        return artifacts.json_texts()
    return (json.dumps(a.to_dict(), sort_keys=True, separators=(",", ":")) for a in artifacts)
