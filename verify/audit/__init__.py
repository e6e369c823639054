"""Audit: many attestations in, one history per artefact and a list of anomalies out.

The plan, one function a step:

  (1) read    attestation files arrive as ``(uri, bytes)``, one at a time; none is kept
  (2) check   each envelope or bundle (in worker processes): parse it, find which policy
              identities sign it -- pinned keys (a keyid only orders the keys tried), or a
              pinned Sigstore identity for a keyless bundle, verified offline against the
              trusted root -- parse its statement and keep a small :class:`_Fact` -- never
              the envelope
  (3) fold    each fact into the record of every artefact it names (by subject sha256),
              judging its signer against what the policy lets that identity sign, and a
              provenance against the source, builder and clean-tree rules
  (4) stored  then each stored artefact's bytes, hashed by the caller, against the sha256 its
              address names (``sha256/<hex>/artifact/NAME``): other bytes are ``tampered-artifact``
  (5) judge   each artefact's whole history once everything is read: stages in the
              policy's order, their times, approvals, and reproducibility across builds
  (6) report  artefacts, releases and anomalies, sorted, as an :class:`AuditReport`

Memory grows with the number of artefacts and the facts about them, not with the bytes read.

Who signed: the identities of the policy whose pinned keys verify an envelope's
signature, or, for a keyless Sigstore bundle (a certificate and a log entry), the
identities whose ``sigstore`` entries the certificate satisfies once
:mod:`verify.sigstore` has verified the whole bundle against the trusted root. Either
way the signers are identity names, and everything below treats them alike.

Which signer counts for what: a provenance must be signed by an identity in
``provenance.signed-by``; a VSA by its stage's ``verifier`` (or an identity a
``require-vsa`` of another stage names for it), the stage being the one whose
``StageRule.accepts_resource`` takes the VSA's ``resourceUri``; an approval by
the stage's ``require-approvals.signed-by``; a reproduction by any identity of
the policy; a release manifest by ``releases.signed-by`` (a policy without
``releases`` trusts no manifest). A message-signature bundle signs an artefact's sha256 (its
``messageDigest``, else its log entry's), not a statement: verified, and by any
identity of the policy, it is listed as a signature of that artefact, and it is
never a provenance.

Telling a bad signature from an untrusted one: evidence that no pinned signer
verifies is ``bad-signature`` if it claims a pinned signer -- one of its
signatures' keyids (or a bundle's key hint) equals the fingerprint of a pinned
key, or a keyless bundle's certificate names an identity that a ``sigstore``
entry of the policy pins -- and the bytes do not prove it: it was altered after
signing or forged (for a keyless bundle, this includes a certificate or log
entry that the trusted root does not vouch for, as when audit is given another
Sigstore instance's root). Otherwise it is ``untrusted-signer``: signed by a key
or a certificate identity the policy does not pin (an altered envelope whose
keyid names no pinned key looks the same and is reported the same way). A
certificate's claims are read before it is verified only to choose between the
two; they are never believed unverified.

``unverifiable`` is left for a message-signature bundle that names no digest (neither a
``messageDigest`` nor a ``hashedrekord`` log entry): audit has no artefact bytes to check
its signature against.

Cost: keyless bundles are verified natively (:mod:`verify.sigstore._native`, through
:func:`verify.signers.find_signers`): each process reads the trusted root from its path when it
first meets a keyless bundle whose certificate names a pinned identity.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from verify.digests import MESSAGE_DIGESTS, DigestSet
from verify.errors import EvidenceRejected, MalformedEvidence, PolicyError, SignatureInvalid, TrustConfigError
from verify.files import read_file
from verify.formats.encoding import parse_time, printable
from verify.formats.envelope import INTOTO_PAYLOAD_TYPE, Envelope
from verify.formats.evidence import Evidence, load_evidence
from verify.formats.statement import (
    APPROVAL_V1,
    PROVENANCE_V02,
    PROVENANCE_V1,
    RELEASE_V1,
    REPRODUCTION_V1,
    VSA_V1,
    Statement,
    parse_statement,
    read_approval,
    read_provenance,
    read_release,
    read_vsa,
)
from verify.limits import MAX_TRUSTED_ROOT_BYTES
from verify.policy import Policy, ProvenanceRules, StageRule
from verify.rules import evaluate_provenance
from verify.signers import TrustRun, find_signers
from verify.sigstore.identity import claimed_identities
from verify.sigstore.verifier import BundleVerifier
from verify.trust import Identity

if TYPE_CHECKING:
    from concurrent.futures import Future

__all__ = [
    "ANOMALY_KINDS",
    "Anomaly",
    "ArtifactHistory",
    "AuditReport",
    "BuildRecord",
    "Endorsement",
    "ReleaseComponent",
    "ReleaseRecord",
    "StageHistory",
    "StoredArtifact",
    "StoredCopy",
    "audit",
    "printable",
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
}

StageStatus = Literal["passed", "failed", "absent", "anomalous"]
Source = tuple[str, "bytes | EvidenceRejected"]
"""One attestation file: (its URI, its bytes, or why they were not read)."""
StoredArtifact = tuple[str, str, "str | EvidenceRejected"]
"""One stored artefact: (its URI, the sha256 its address ``sha256/<hex>/artifact/NAME`` claims, the sha256
of its bytes as read, or why they could not be read)."""
Progress = Callable[[int], None]

_SHA256 = re.compile(r"[0-9a-f]{64}")
_PROVENANCE_TYPES = (PROVENANCE_V1, PROVENANCE_V02)
#: Files per unit of work sent to a worker process, and bytes at most.
BATCH_FILES = 64
_BATCH_BYTES = 4 * 1024 * 1024


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _short(sha256: str | None) -> str:
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
                "builder": self.builder, "startedOn": _iso(self.started_on),
                "finishedOn": _iso(self.finished_on), "dirty": self.dirty, "invocationId": self.invocation_id,
                "lockfiles": {name: dict(digests) for name, digests in self.lockfiles},
                "signers": list(self.signers), "attestation": self.attestation}


@dataclass(frozen=True)
class Endorsement:
    """A trusted VSA, approval, reproduction, message signature or release manifest for an artefact."""

    kind: Literal["vsa", "approval", "reproduction", "signature", "release"]
    stage: str
    """The stage (VSA, approval); empty for a reproduction, a signature or a release."""
    result: str
    """verificationResult (VSA), the approver (approval), the verdict (reproduction), the digest
    signed, ``sha256:<hex>`` (signature), or the release's name (release)."""
    time: datetime | None
    signers: tuple[str, ...]
    attestation: str
    level: int | None = None
    """The SLSA build level a VSA states (None: none, or not a VSA)."""

    def to_dict(self) -> dict[str, Any]:
        key = {"vsa": "result", "approval": "approver", "reproduction": "verdict", "signature": "digest",
               "release": "release"}[self.kind]
        out: dict[str, Any] = {key: self.result, "signers": list(self.signers), "attestation": self.attestation}
        if self.kind != "signature":  # a message signature carries no time audit could trust
            out["time"] = _iso(self.time)
        if self.kind in ("vsa", "approval"):
            out["stage"] = self.stage
        if self.kind == "vsa":
            out["buildLevel"] = self.level
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
        return {"name": self.name, "timeCreated": _iso(self.created), "signers": list(self.signers),
                "attestation": self.attestation, "components": [c.to_dict() for c in self.components]}


@dataclass(frozen=True)
class StageHistory:
    stage: str
    status: StageStatus
    vsas: tuple[Endorsement, ...]
    approvals: tuple[Endorsement, ...]

    @property
    def first_passed(self) -> Endorsement | None:
        passed = [v for v in self.vsas if v.result == "PASSED"]
        return min(passed, key=_when) if passed else None

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "status": self.status, "vsas": [v.to_dict() for v in self.vsas],
                "approvals": [a.to_dict() for a in self.approvals]}


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
            "builtOn": _iso(build.finished_on) if build else None, "dirty": build.dirty if build else None,
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

    @property
    def clean(self) -> bool:
        return not self.anomalies

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifacts": [a.to_dict() for a in self.artifacts],
            "releases": [r.to_dict() for r in self.releases],
            "anomalies": [a.to_dict() for a in self.anomalies],
            "summary": {"files": self.files, "attestations": self.attestations,
                        "artifacts": len(self.artifacts), "anomalies": len(self.anomalies),
                        "stages": list(self.stages), "releases": len(self.releases), "stored": self.stored,
                        "unread": self.unread},
            "policy": {"uri": self.policy_uri, "sha256": self.policy_digest or None},
        }


def _when(e: Endorsement) -> datetime:
    return e.time or datetime.max.replace(tzinfo=UTC)


# --- (2) check: what one envelope says and who signed it -------------------------------------------------

@dataclass(frozen=True)
class _Build:
    commit: str | None
    source: str | None
    ref: str | None
    builder: str
    started_on: datetime | None
    finished_on: datetime | None
    dirty: bool
    invocation_id: str
    lockfiles: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]
    findings: tuple[tuple[str, str, str], ...] = ()
    """(anomaly kind, message, step) of each provenance rule it breaks (:func:`verify.rules.evaluate_provenance`)."""


@dataclass(frozen=True)
class _Vsa:
    resource_uri: str
    time: datetime
    result: str
    level: int | None = None


@dataclass(frozen=True)
class _Approval:
    stage: str
    approver: str
    time: datetime | None


@dataclass(frozen=True)
class _Reproduction:
    verdict: str
    time: datetime | None
    statuses: tuple[tuple[str, str], ...] = ()
    """(subject name, match/differs/missing/refused) from ``results``, where given."""

    def verdict_for(self, name: str) -> str:
        """This subject's own verdict when the rebuilder compared it, else the statement's."""
        status = next((s for n, s in self.statuses if n == name), None)
        if status is None:
            return self.verdict
        return "REPRODUCIBLE" if status == "match" else "NOT_REPRODUCIBLE"


@dataclass(frozen=True)
class _Signature:
    """A message signature: the signers vouch for the artefact's bytes, and say nothing else."""

    sha256: str


@dataclass(frozen=True)
class _Release:
    """A release manifest: the signers vouch that these components' artefacts go out together."""

    name: str
    created: datetime
    components: tuple[ReleaseComponent, ...]


@dataclass(frozen=True)
class _Fact:
    """What one envelope contributes; small, so that millions fit where envelopes would not."""

    source: str
    statement_digest: str
    subjects: tuple[tuple[str, str], ...]
    """(name, sha256) of each subject (claimed, when the signature did not verify)."""
    predicate_type: str = ""
    signers: tuple[str, ...] = ()
    detail: _Build | _Vsa | _Approval | _Reproduction | _Signature | _Release | None = None
    problem: tuple[str, str] | None = None
    """(anomaly kind, message) when the envelope itself is at fault."""
    claimed_stage: str = ""
    """A VSA's resourceUri or an approval's stage, as claimed (to place an anomaly on the path)."""


def _time(value: Any) -> datetime | None:
    """An optional time in evidence audit only reports (None if absent or unreadable), by the one time reader."""
    if value is None:
        return None
    try:
        return parse_time(value, what="a time")
    except MalformedEvidence:
        return None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _verdict(predicate: Mapping[str, Any]) -> str:
    """A reproduction's verdict, read leniently: a string, or an object with a result/verdict/status."""
    value = predicate.get("verdict")
    if isinstance(value, dict):
        value = value.get("result") or value.get("verdict") or value.get("status")
    text = _text(value).strip().upper().replace("-", "_").replace(" ", "_")
    return text or "UNKNOWN"


def _statuses(predicate: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """(name, status) of each subject in a reproduction's ``results`` (docs/reproducibility.md), if any."""
    results = predicate.get("results")
    if not isinstance(results, list):
        return ()
    return tuple((_text(r.get("name")), _text(r.get("status")).lower()) for r in results
                 if isinstance(r, dict) and _text(r.get("name")) and _text(r.get("status")))


_Signers = tuple[tuple[str, ...], tuple[str, str] | None]
"""(identities that sign, (anomaly kind, message) when none does)."""


class _Checker:
    """Step (2) for one process: the identities, and what each envelope says and who signed it."""

    def __init__(self, identities: Sequence[Identity], rules: ProvenanceRules, *, trusted_root: Path | None = None,
                 revoked: frozenset[str] = frozenset(), at: datetime | None = None) -> None:
        self._identities = tuple(identities)
        self._keyless = tuple(identity for identity in identities if identity.sigstore)
        self._rules = rules
        self._trusted_root = trusted_root
        self._revoked = revoked
        self._at = at or datetime.now(UTC)
        self._bundles: BundleVerifier | None = None

    def _run(self) -> TrustRun:
        """One file's signature checks: the audit's time and revocations, and a budget of their own."""
        if self._bundles is None:
            from verify.sigstore.verifier import make_bundle_verifier

            self._bundles = make_bundle_verifier(trusted_root=self._trusted_root)
        return TrustRun(at=self._at, bundles=self._bundles, revoked=self._revoked)

    def check_batch(self, batch: Sequence[tuple[str, bytes | EvidenceRejected]]) -> list[_Fact]:
        return [fact for uri, data in batch for fact in self.check_file(uri, data)]

    def check_file(self, uri: str, data: bytes | EvidenceRejected) -> list[_Fact]:
        if isinstance(data, EvidenceRejected):  # not read: over a limit, or not a regular file
            return [_Fact(source=uri, statement_digest="", subjects=(), problem=("malformed", str(data)))]
        try:
            items = load_evidence(data, source=uri)
        except EvidenceRejected as e:
            return [_Fact(source=uri, statement_digest="", subjects=(), problem=("malformed", str(e)))]
        run = self._run()
        return [self.check(item, uri, run) for item in items]

    def check(self, item: Evidence | MalformedEvidence, uri: str, run: TrustRun) -> _Fact:
        """(2a) parsed (2b) statement peeked at (2c) signed by whom (2d) statement read (2e) predicate read."""
        # (2a) an envelope at all
        if isinstance(item, MalformedEvidence):
            return _Fact(source=uri, statement_digest="", subjects=(), problem=("malformed", str(item)))
        if item.envelope is None:
            return self._check_message(item, run)
        envelope = item.envelope
        digest = hashlib.sha256(envelope.payload).hexdigest()
        # (2b) what it claims, before anything is believed: to name the artefact in an anomaly
        statement, error = _peek(envelope)
        subjects = _subjects(statement) if statement else ()
        claimed = _claimed_stage(statement) if statement else ""
        ptype = statement.predicate_type if statement else ""
        # (2c) who signs it: pinned keys, or a pinned Sigstore identity for a keyless bundle
        signers, problem = self._signers(item, _describe(statement), run)
        if problem is not None:
            return _Fact(source=item.source, statement_digest=digest, subjects=subjects, predicate_type=ptype,
                         problem=problem, claimed_stage=claimed)
        # (2d) a statement naming every artefact by sha256
        if statement is None:
            return _Fact(source=item.source, statement_digest=digest, subjects=(), signers=signers,
                         problem=("malformed", error))
        for name, sha in _all_subjects(statement):
            if sha is None:
                return _Fact(source=item.source, statement_digest=digest, subjects=subjects, signers=signers,
                             predicate_type=ptype,
                             problem=("malformed", f"subject {name!r} has no sha256 digest "
                                                   "of 64 hex digits; audit finds artefacts by sha256"))
        # (2e) what the predicate says, as far as audit needs it
        try:
            detail = _detail(statement, self._rules)
        except EvidenceRejected as e:
            return _Fact(source=item.source, statement_digest=digest, subjects=subjects, signers=signers,
                         predicate_type=ptype, problem=("malformed", str(e)))
        return _Fact(source=item.source, statement_digest=digest, subjects=subjects, predicate_type=ptype,
                     signers=signers, detail=detail, claimed_stage=claimed)

    def _check_message(self, item: Evidence, run: TrustRun) -> _Fact:
        """(2) for a message-signature bundle: the sha256 it names, and who verifiably signed it."""
        try:
            sha = _message_digest(item)
        except MalformedEvidence as e:
            return _Fact(source=item.source, statement_digest=item.digest, subjects=(), problem=("malformed", str(e)))
        if sha is None:
            algorithm = item.bundle.message.digest_algorithm if item.bundle and item.bundle.message else None
            named = (f"a Sigstore message signature over the artefact's {algorithm} digest names no sha256"
                     if algorithm else "a Sigstore message-signature bundle with neither a messageDigest nor a "
                                       "hashedrekord log entry names no artefact")
            return _Fact(source=item.source, statement_digest=item.digest, subjects=(),
                         problem=("unverifiable", f"{named}, so audit, which places artefacts by sha256, cannot "
                                                  "check it; check it with attest verify ARTIFACT"))
        subjects = (("", sha),)
        signers, problem = self._signers(item, f"a message signature of {_short(sha)}", run,
                                         message=DigestSet({"sha256": sha}))
        if problem is not None:
            return _Fact(source=item.source, statement_digest=item.digest, subjects=subjects, problem=problem)
        return _Fact(source=item.source, statement_digest=item.digest, subjects=subjects, signers=signers,
                     detail=_Signature(sha))

    def _signers(self, item: Evidence, what: str, run: TrustRun, *, message: DigestSet | None = None) -> _Signers:
        """The policy identities that signed ``item`` (:func:`verify.signers.find_signers`), or the anomaly.

        A keyless bundle's certificate claims, unverified, decide whether it needs verifying at all:
        one that names no pinned identity is untrusted whether or not it verifies.
        """
        bundle = item.bundle
        named: tuple[str, ...] = ()
        claims = None
        if bundle is not None and bundle.keyless:
            try:
                claims = bundle.certificate_claims()
            except MalformedEvidence as e:
                return (), ("malformed", f"{what} is signed keylessly, but {e}")
            named = claimed_identities(bundle, self._keyless)
            if not named:
                pins = "pins no Sigstore identity" if not self._keyless else "pins no Sigstore identity it satisfies"
                return (), ("untrusted-signer", f"{what} is signed keylessly by {claims.describe()}, and the policy "
                                                f"{pins}")
        try:
            found = find_signers(item, self._identities, run, message=message)
        except SignatureInvalid as e:
            if claims is not None:
                return (), ("bad-signature", f"{what} is signed keylessly in the name of {' and '.join(named)} "
                                             f"({claims.describe()}), but {_sentence_for(item, e)}; it was altered "
                                             "after signing, forged, or signed by a Sigstore instance the trusted "
                                             "root does not name")
            if e.claimed:
                return (), ("bad-signature", f"{what} names the pinned key of {' and '.join(e.claimed)} but its "
                                             "signature does not verify; it was altered after signing or forged")
            return (), ("untrusted-signer", f"{what} is signed by no key the policy pins")
        except EvidenceRejected as e:
            return (), ("malformed", _sentence_for(item, e))
        return tuple(identity.name for identity in found), None


def _sentence_for(item: Evidence, error: EvidenceRejected) -> str:
    """``error``'s message without the ``SOURCE: `` it starts with (an anomaly names its source apart)."""
    return str(error).removeprefix(f"{item.source}: ")


def _message_digest(item: Evidence) -> str | None:
    """The sha256 (hex) a message-signature bundle signs, as it claims; None if it names none (no digest, or
    the SHA-384 or SHA-512 one a P-384 or P-521 key signs); :class:`MalformedEvidence` for an algorithm
    Sigstore does not define.

    The claim is the bundle's ``messageDigest``, else its ``hashedrekord`` log entry's digest;
    either is believed only once a signature over it verifies.
    """
    assert item.bundle is not None and item.bundle.message is not None
    message = item.bundle.message
    if message.digest_algorithm is None:
        return item.bundle.logged_sha256()
    if message.digest_algorithm in MESSAGE_DIGESTS and message.digest_algorithm != "SHA2_256":
        return None
    if message.digest_algorithm != "SHA2_256":
        raise MalformedEvidence(f"the bundle's messageDigest algorithm is {message.digest_algorithm!r}, not "
                                "'SHA2_256'; audit finds artefacts by sha256")
    if message.digest is None or len(message.digest) != 32:
        raise MalformedEvidence("the bundle's messageDigest is not a base64 sha256 digest")
    return message.digest.hex()


def _peek(envelope: Envelope) -> tuple[Statement | None, str]:
    """The statement, parsed whoever signed it, or the sentence saying why it cannot be."""
    if envelope.payload_type != INTOTO_PAYLOAD_TYPE:
        return None, f"payloadType is {envelope.payload_type!r}, not {INTOTO_PAYLOAD_TYPE!r}"
    try:
        return parse_statement(envelope.payload, what="the statement"), ""
    except EvidenceRejected as e:
        return None, str(e)


def _all_subjects(statement: Statement) -> Iterator[tuple[str, str | None]]:
    for subject in statement.subjects:
        sha = subject.digest.get("sha256")
        yield subject.name, sha if sha is not None and _SHA256.fullmatch(sha) else None


def _subjects(statement: Statement) -> tuple[tuple[str, str], ...]:
    return tuple((name, sha) for name, sha in _all_subjects(statement) if sha is not None)


def _claimed_stage(statement: Statement) -> str:
    if statement.predicate_type == VSA_V1:
        return _text(statement.predicate.get("resourceUri"))
    if statement.predicate_type == APPROVAL_V1:
        return f"attest:stage:{_text(statement.predicate.get('stage'))}"
    return ""


def _describe(statement: Statement | None) -> str:
    if statement is None:
        return "an attestation"
    kind = {PROVENANCE_V1: "a provenance", PROVENANCE_V02: "a provenance", VSA_V1: "a VSA",
            APPROVAL_V1: "an approval", REPRODUCTION_V1: "a reproduction",
            RELEASE_V1: "a release manifest"}.get(statement.predicate_type, "a statement")
    names = [s.name for s in statement.subjects[:2] if s.name]
    more = ", ..." if len(statement.subjects) > 2 else ""
    return f"{kind} for {', '.join(repr(n) for n in names)}{more}" if names else kind


def _detail(statement: Statement,
            rules: ProvenanceRules) -> _Build | _Vsa | _Approval | _Reproduction | _Release | None:
    pred = statement.predicate
    if statement.predicate_type in _PROVENANCE_TYPES:
        prov = read_provenance(statement)
        locks = tuple(sorted((d.name, tuple(sorted(d.digest.items()))) for d in prov.lockfiles))
        findings = tuple((r.kind, r.message, "source" if r.kind == "disallowed-source" else "build")
                         for r in evaluate_provenance(prov, rules) if not r.passed)
        return _Build(commit=prov.commit, source=prov.source_uri, ref=prov.source_ref,
                      builder=prov.builder_id, started_on=prov.started_on, finished_on=prov.finished_on,
                      dirty=prov.dirty, invocation_id=prov.invocation_id, lockfiles=locks, findings=findings)
    if statement.predicate_type == VSA_V1:
        vsa = read_vsa(statement)
        return _Vsa(resource_uri=vsa.resource_uri, time=vsa.time_verified, result=vsa.result, level=vsa.build_level)
    if statement.predicate_type == APPROVAL_V1:
        approval = read_approval(statement)
        return _Approval(stage=approval.stage, approver=approval.approver, time=approval.time)
    if statement.predicate_type == REPRODUCTION_V1:
        when = next((t for k in ("timeReproduced", "timeVerified", "finishedOn", "time")
                     if (t := _time(pred.get(k))) is not None), None)
        return _Reproduction(verdict=_verdict(pred), time=when, statuses=_statuses(pred))
    if statement.predicate_type == RELEASE_V1:
        return _read_release(statement)
    return None


def _read_release(statement: Statement) -> _Release:
    """A release manifest, read by :func:`verify.formats.statement.read_release` (as ``attest verify --release``
    reads it)."""
    release = read_release(statement)
    components = tuple(ReleaseComponent(name=part.name, source=part.source, commit=part.commit,
                                        provenance=part.provenance_sha256,
                                        artifacts=tuple((a.name, a.digest["sha256"]) for a in part.artifacts))
                       for part in release.components)
    return _Release(name=release.name, created=release.created, components=components)


# --- worker processes ------------------------------------------------------------------------------------

_WORKER: _Checker | None = None


@dataclass(frozen=True)
class _Setup:
    """What every checker, in every worker process, is made from (it crosses process boundaries)."""

    identities: tuple[Identity, ...]
    rules: ProvenanceRules
    trusted_root: Path | None
    revoked: frozenset[str]
    at: datetime

    def checker(self) -> _Checker:
        return _Checker(self.identities, self.rules, trusted_root=self.trusted_root, revoked=self.revoked,
                        at=self.at)


def _init_worker(setup: _Setup) -> None:
    import signal

    global _WORKER  # one checker per worker process
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles ^C
    _WORKER = setup.checker()


def _work(batch: Sequence[tuple[str, bytes | EvidenceRejected]]) -> list[_Fact]:
    assert _WORKER is not None
    return _WORKER.check_batch(batch)


def _batches(sources: Iterable[Source], size: int) -> Iterator[list[Source]]:
    batch: list[Source] = []
    held = 0
    for uri, data in sources:
        batch.append((uri, data))
        held += len(data) if isinstance(data, bytes) else 0
        if len(batch) >= size or held >= _BATCH_BYTES:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch


def _facts(sources: Iterable[Source], setup: _Setup, *, workers: int,
           batch_size: int) -> Iterator[tuple[int, list[_Fact]]]:
    """(files, facts) per batch, in the order read; in worker processes when there is more than one batch.

    A worker gets the identities and the trusted root's path, never a verifier: each process makes
    its own bundle verifier (and imports sigstore-python) only if it meets a keyless bundle.
    """
    batches = _batches(sources, batch_size)
    first = next(batches, None)
    if first is None:
        return
    second = next(batches, None)
    if second is None or workers < 2:
        checker = setup.checker()
        for batch in itertools.chain([first], [] if second is None else [second], batches):
            yield len(batch), checker.check_batch(batch)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # forkserver: workers start from a clean process, never from this one's threads (a progress bar)
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                             initargs=(setup,)) as pool:
        pending: deque[tuple[int, Future[list[_Fact]]]] = deque()
        try:
            for batch in itertools.chain([first, second], batches):  # lazily: one batch read at a time
                pending.append((len(batch), pool.submit(_work, batch)))
                while len(pending) > 2 * workers:  # bounded: a few batches in flight, whatever the input size
                    files, future = pending.popleft()
                    yield files, future.result()
            while pending:
                files, future = pending.popleft()
                yield files, future.result()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


# --- (3) fold, (4) stored and (5) judge ------------------------------------------------------------------

@dataclass
class _Record:
    sha256: str
    names: set[str] = field(default_factory=set)
    seen: set[str] = field(default_factory=set)
    builds: list[BuildRecord] = field(default_factory=list)
    vsas: dict[str, list[Endorsement]] = field(default_factory=dict)
    approvals: dict[str, list[Endorsement]] = field(default_factory=dict)
    reproductions: list[Endorsement] = field(default_factory=list)
    signatures: list[Endorsement] = field(default_factory=list)
    releases: list[Endorsement] = field(default_factory=list)
    stored: list[StoredCopy] = field(default_factory=list)


def _stage_order(policy: Policy) -> tuple[str, ...]:
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


class _Auditor:
    """Steps (3) to (5): the records of every artefact and release, and the anomalies found."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.order = _stage_order(policy)
        self.records: dict[str, _Record] = {}
        self.anomalies: dict[tuple[str, str | None, str], Anomaly] = {}
        self.attestations = 0
        self.files = 0
        self.stored = 0
        self.unread = 0
        self.releases: dict[str, ReleaseRecord] = {}
        """Trusted release manifests, by the sha256 of their statement (one manifest in two files is one)."""
        self.vsa_signers = {name: self._vsa_signers(rule) for name, rule in policy.stages.items()}

    def _vsa_signers(self, rule: StageRule) -> frozenset[str]:
        names = {rule.verifier} if rule.verifier else set()
        for other in self.policy.stages.values():
            for requirement in other.require_vsa:
                if requirement.stage == rule.name:
                    names.update(requirement.signed_by)
        return frozenset(names)

    def _stage_of(self, resource_uri: str) -> StageRule | None:
        stages = (self.policy.stages[name] for name in self.order)
        return next((rule for rule in stages if rule.accepts_resource(resource_uri)), None)

    def _record(self, sha256: str) -> _Record:
        record = self.records.get(sha256)
        if record is None:
            record = self.records[sha256] = _Record(sha256)
        return record

    def _flag(self, kind: str, sha256: str | None, message: str, *, source: str = "", step: str = "",
              key: str = "") -> None:
        anomaly = Anomaly(kind=kind, sha256=sha256, message=message, source=source, step=step)
        self.anomalies.setdefault((kind, sha256, key or message), anomaly)

    def _step(self, fact: _Fact) -> str:
        if fact.predicate_type in _PROVENANCE_TYPES or fact.predicate_type == REPRODUCTION_V1:
            return "build"
        if fact.claimed_stage:
            rule = self._stage_of(fact.claimed_stage)
            return rule.name if rule else ""
        return ""

    def add(self, fact: _Fact) -> None:
        self.attestations += 1
        if fact.problem is not None:
            kind, message = fact.problem
            step = self._step(fact)
            digests: list[str | None] = [sha for _, sha in fact.subjects] or [None]
            for sha in digests:
                if sha is not None:
                    self._record(sha)
                self._flag(kind, sha, message, source=fact.source, step=step, key=fact.statement_digest)
            return
        detail = fact.detail
        if isinstance(detail, _Build):
            self._add_build(fact, detail)
        elif isinstance(detail, _Vsa):
            self._add_vsa(fact, detail)
        elif isinstance(detail, _Approval):
            self._add_approval(fact, detail)
        elif isinstance(detail, _Reproduction):
            self._add_reproduction(fact, detail)
        elif isinstance(detail, _Signature):
            self._add_signature(fact)
        elif isinstance(detail, _Release):
            self._add_release(fact, detail)
        # other predicate types signed by a pinned identity say nothing about the path: counted only

    def _allowed(self, fact: _Fact, allowed: frozenset[str], what: str, rule: str, step: str) -> bool:
        if set(fact.signers) & allowed:
            return True
        may = ", ".join(sorted(allowed)) or "no identity"
        message = f"{what} is signed by {' and '.join(fact.signers)}, but {rule} allows {may}"
        for _, sha in fact.subjects:
            self._record(sha)
            self._flag("untrusted-signer", sha, message, source=fact.source, step=step,
                       key=fact.statement_digest)
        return False

    def _new(self, fact: _Fact) -> Iterator[tuple[str, _Record]]:
        """(subject name, record) of each artefact the fact names and has not been seen for it before."""
        for name, sha in fact.subjects:
            record = self._record(sha)
            if fact.statement_digest in record.seen:
                continue
            record.seen.add(fact.statement_digest)
            yield name, record

    def _add_build(self, fact: _Fact, build: _Build) -> None:
        rules = self.policy.provenance
        if not self._allowed(fact, frozenset(rules.signed_by), "the provenance", "provenance.signed-by",
                             "build"):
            return
        for name, record in self._new(fact):
            sha = record.sha256
            record.names.add(name)
            record.builds.append(BuildRecord(
                name=name, commit=build.commit, source=build.source, ref=build.ref, builder=build.builder,
                started_on=build.started_on, finished_on=build.finished_on, dirty=build.dirty,
                invocation_id=build.invocation_id, lockfiles=build.lockfiles, signers=fact.signers,
                attestation=fact.source))
            for kind, message, step in build.findings:
                self._flag(kind, sha, f"{name!r}: {message}", source=fact.source, step=step)

    def _add_vsa(self, fact: _Fact, vsa: _Vsa) -> None:
        rule = self._stage_of(vsa.resource_uri)
        if rule is None:
            for _, sha in fact.subjects:
                self._record(sha)
                self._flag("unknown-stage", sha, f"a VSA by {' and '.join(fact.signers)} is "
                           f"for {vsa.resource_uri!r}, which no stage of the policy accepts",
                           source=fact.source, key=fact.statement_digest)
            return
        if not self._allowed(fact, self.vsa_signers[rule.name], f"a VSA for stage {rule.name!r}",
                             f"stages.{rule.name}.verifier", rule.name):
            return
        for _, record in self._new(fact):
            record.vsas.setdefault(rule.name, []).append(Endorsement(
                kind="vsa", stage=rule.name, result=vsa.result, time=vsa.time, signers=fact.signers,
                attestation=fact.source, level=vsa.level))

    def _add_approval(self, fact: _Fact, approval: _Approval) -> None:
        rule = self.policy.stages.get(approval.stage)
        needed = rule.require_approvals if rule else None
        allowed = frozenset(needed.signed_by) if needed else frozenset()
        if not self._allowed(fact, allowed, f"an approval for stage {approval.stage!r}",
                             f"stages.{approval.stage}.require-approvals", approval.stage if rule else ""):
            return
        for _, record in self._new(fact):
            record.approvals.setdefault(approval.stage, []).append(Endorsement(
                kind="approval", stage=approval.stage, result=approval.approver, time=approval.time,
                signers=tuple(s for s in fact.signers if s in allowed), attestation=fact.source))

    def _add_reproduction(self, fact: _Fact, reproduction: _Reproduction) -> None:
        for name, record in self._new(fact):
            verdict = reproduction.verdict_for(name)
            record.reproductions.append(Endorsement(
                kind="reproduction", stage="", result=verdict, time=reproduction.time,
                signers=fact.signers, attestation=fact.source))
            if verdict == "NOT_REPRODUCIBLE":
                self._flag("non-reproducible", record.sha256, f"{' and '.join(fact.signers)} "
                           f"rebuilt {name!r} and got different bytes (NOT_REPRODUCIBLE)",
                           source=fact.source, step="build")

    def _add_signature(self, fact: _Fact) -> None:
        """A message signature by any identity of the policy: listed with the artefact, and nothing more."""
        for _, record in self._new(fact):
            record.signatures.append(Endorsement(
                kind="signature", stage="", result=f"sha256:{record.sha256}", time=None, signers=fact.signers,
                attestation=fact.source))

    def _add_release(self, fact: _Fact, release: _Release) -> None:
        """A release manifest by an identity of ``releases.signed-by``: listed, and named on each artefact."""
        rule = self.policy.releases
        where = "releases.signed-by" if rule else "the policy, which names no release signers,"
        if not self._allowed(fact, frozenset(rule.signed_by if rule else ()), f"the release manifest "
                             f"{release.name!r}", where, ""):
            return
        listed = ReleaseRecord(name=release.name, created=release.created, signers=fact.signers,
                               attestation=fact.source, components=release.components)
        known = self.releases.get(fact.statement_digest)
        if known is None or listed.attestation < known.attestation:  # the same whatever the reading order
            self.releases[fact.statement_digest] = listed
        for _, record in self._new(fact):
            record.releases.append(Endorsement(
                kind="release", stage="", result=release.name, time=release.created, signers=fact.signers,
                attestation=fact.source))

    # (4) stored artefacts

    def add_stored(self, uri: str, claimed: str, found: str | EvidenceRejected) -> None:
        """One stored artefact: the bytes at ``sha256/<claimed>/artifact/NAME`` must hash to ``claimed``."""
        self.stored += 1
        if not _SHA256.fullmatch(claimed):
            self._flag("tampered-artifact", None, f"an artefact is stored at an address that names no sha256 "
                       f"({claimed!r}, not 64 lower-case hex digits), so its bytes cannot be checked",
                       source=uri, key=uri)
            return
        record = self._record(claimed)
        if isinstance(found, EvidenceRejected):
            self.unread += 1
            record.stored.append(StoredCopy(uri=uri, sha256=None, status="unreadable"))
            self._flag("tampered-artifact", claimed, f"the stored bytes of {_short(claimed)} cannot be read to "
                       f"check them against their address: {found}", source=uri, key=uri)
        elif found != claimed:
            record.stored.append(StoredCopy(uri=uri, sha256=found, status="tampered"))
            self._flag("tampered-artifact", claimed, f"the bytes stored as {_short(claimed)} hash to "
                       f"{_short(found)}: they were replaced or corrupted after they were published, so no "
                       "attestation of this artefact vouches for them; do not deploy them",
                       source=uri, key=uri)
        else:
            record.stored.append(StoredCopy(uri=uri, sha256=found, status="verified"))

    # (5) judge, once everything is read

    def _judge_stages(self, record: _Record) -> None:
        sha = record.sha256
        built = [b.finished_on for b in record.builds if b.finished_on is not None]
        built_on = min(built) if built else None
        for name in self.order:
            rule = self.policy.stages[name]
            for vsa in record.vsas.get(name, []):
                if vsa.result != "PASSED":
                    continue
                said = f"stage {name!r} verified {_short(sha)} at {_iso(vsa.time)}"
                where = {"source": vsa.attestation, "step": name}
                if not record.builds:
                    self._flag("skipped-stage", sha, f"{said}, but no trusted provenance for it was found",
                               **where)
                elif built_on is not None and vsa.time is not None and vsa.time < built_on:
                    self._flag("out-of-order", sha, f"{said}, before it was built ({_iso(built_on)})",
                               **where)
                for requirement in rule.require_vsa:
                    earlier = [v for v in record.vsas.get(requirement.stage, [])
                               if v.result == "PASSED" and set(v.signers) & set(requirement.signed_by)]
                    if not earlier:
                        self._flag("skipped-stage", sha, f"{said} without the VSA from stage "
                                   f"{requirement.stage!r} that it requires", **where)
                        continue
                    first = min(earlier, key=_when)
                    if vsa.time is not None and first.time is not None and vsa.time < first.time:
                        self._flag("out-of-order", sha, f"{said}, before stage {requirement.stage!r} did "
                                   f"({_iso(first.time)})", **where)
            if rule.min_level and any(v.result == "PASSED" for v in record.vsas.get(name, [])):
                self._judge_level(record, rule)
            needed = rule.require_approvals
            if needed is not None and any(v.result == "PASSED" for v in record.vsas.get(name, [])):
                approvers = {s for a in record.approvals.get(name, []) for s in a.signers}
                if len(approvers) < needed.count:
                    self._flag("missing-approval", sha, f"stage {name!r} verified {_short(sha)} with "
                               f"{len(approvers)} of the {needed.count} approval(s) it requires "
                               f"from {', '.join(needed.signed_by)}", step=name)

    def _judge_level(self, record: _Record, rule: StageRule) -> None:
        """A stage with ``min-level`` passed the artefact: a build by a builder trusted for that level, and each
        earlier stage it relies on stating that level, must be in the history."""
        sha = record.sha256
        levels = [trusted.level for b in record.builds if (trusted := self.policy.provenance.builder(b.builder))]
        if record.builds and max(levels, default=0) < rule.min_level:
            builders = ", ".join(sorted({b.builder for b in record.builds}))
            self._flag("insufficient-level", sha, f"stage {rule.name!r} verified {_short(sha)}, which no builder "
                       f"trusted for SLSA build level {rule.min_level} built (built by {builders})", step=rule.name)
        for requirement in rule.require_vsa:
            stated = [v.level or 0 for v in record.vsas.get(requirement.stage, [])
                      if v.result == "PASSED" and set(v.signers) & set(requirement.signed_by)]
            if stated and max(stated) < rule.min_level:
                self._flag("insufficient-level", sha, f"stage {rule.name!r} verified {_short(sha)}, and stage "
                           f"{requirement.stage!r} vouched for SLSA build level {max(stated)} at most, not the "
                           f"{rule.min_level} it requires", step=rule.name)

    def _judge_reproducibility(self) -> None:
        """Clean builds of one subject name from one commit and the same lockfiles must give one digest."""
        groups: dict[tuple[str, str, tuple[Any, ...]], set[str]] = {}
        for record in self.records.values():
            for build in record.builds:
                if build.commit and not build.dirty:
                    groups.setdefault((build.name, build.commit, build.lockfiles), set()).add(record.sha256)
        for (name, commit, _), digests in groups.items():
            if len(digests) < 2:
                continue
            ordered = sorted(digests)
            for sha in ordered:
                others = ", ".join(_short(o) for o in ordered if o != sha)
                self._flag("non-reproducible", sha, f"{name!r} from commit {commit[:12]} with the same "
                           f"lockfiles was built as {_short(sha)} and as {others}", step="build")

    def _history(self, record: _Record, anomalies: Sequence[Anomaly]) -> ArtifactHistory:
        steps = {a.step for a in anomalies}
        stages = []
        for name in self.order:
            vsas = tuple(sorted(record.vsas.get(name, []), key=lambda e: (_when(e), e.attestation)))
            status: StageStatus
            if name in steps:
                status = "anomalous"
            elif any(v.result == "PASSED" for v in vsas):
                status = "passed"
            else:
                status = "failed" if vsas else "absent"
            stages.append(StageHistory(stage=name, status=status, vsas=vsas, approvals=tuple(
                sorted(record.approvals.get(name, []), key=lambda e: (_when(e), e.attestation)))))
        builds = sorted(record.builds, key=lambda b: (_iso(b.finished_on) or "~", b.attestation))
        return ArtifactHistory(
            sha256=record.sha256, names=tuple(sorted(record.names)), builds=tuple(builds),
            stages=tuple(stages),
            reproductions=tuple(sorted(record.reproductions, key=lambda e: (_when(e), e.attestation))),
            anomalies=tuple(anomalies),
            signatures=tuple(sorted(record.signatures, key=lambda e: e.attestation)),
            releases=tuple(sorted(record.releases, key=lambda e: (_when(e), e.result, e.attestation))),
            stored=tuple(sorted(record.stored, key=lambda c: c.uri)))

    def report(self) -> AuditReport:
        for record in self.records.values():
            self._judge_stages(record)
        self._judge_reproducibility()
        anomalies = sorted(self.anomalies.values(),
                           key=lambda a: (a.sha256 or "", a.kind, a.source, a.message))
        by_sha: dict[str | None, list[Anomaly]] = {}
        for anomaly in anomalies:
            by_sha.setdefault(anomaly.sha256, []).append(anomaly)
        histories = [self._history(r, by_sha.get(r.sha256, [])) for r in self.records.values()]
        histories.sort(key=lambda h: (h.names[0] if h.names else "\uffff",
                                      (_iso(h.build.finished_on) if h.build else None) or "~", h.sha256))
        releases = sorted(self.releases.values(), key=lambda r: (r.created, r.name, r.attestation))
        return AuditReport(artifacts=tuple(histories), anomalies=tuple(anomalies), stages=self.order,
                           files=self.files, attestations=self.attestations, policy_uri=self.policy.uri,
                           policy_digest=self.policy.digest, releases=tuple(releases), stored=self.stored,
                           unread=self.unread)


# --- the whole audit -------------------------------------------------------------------------------------

def audit(sources: Iterable[Source], *, policy: Policy, trusted_root: Path | None = None,
          workers: int | None = None, batch_size: int = BATCH_FILES,
          progress: Progress | None = None, artifacts: Iterable[StoredArtifact] = ()) -> AuditReport:
    """Read every attestation file in ``sources`` as ``(uri, bytes)`` and report each artefact's history.

    ``artifacts`` are the stored artefacts, as ``(uri, the sha256 their address claims, the sha256 of
    their bytes or why they could not be read)``, iterated once every attestation is read: bytes that
    do not hash to their address, or cannot be read, are a ``tampered-artifact`` anomaly. (Audit reads
    no artefact itself: the caller hashes them, streaming, from wherever they are stored.)

    Signatures are checked in ``workers`` processes (default: one per CPU) once
    there is more than one batch of ``batch_size`` files; ``progress`` is called
    with the number of attestations done after each batch. Keyless Sigstore
    bundles are verified offline against ``trusted_root`` (a trusted_root.json;
    None: the production root shipped in sigstore-python, never refreshed).
    Errors raised while iterating ``sources`` (an unreadable file, a store out
    of reach), and a trusted root that cannot be loaded, propagate.
    """
    identities = [identity for identity in policy.identities.values() if identity.keys or identity.sigstore]
    if not identities:
        raise PolicyError("the policy pins no public key and no Sigstore identity; audit trusts only signatures "
                          "by pinned identities, so name some in the policy or pass --key")
    if trusted_root is not None:  # unreadable is a configuration error now, not when a keyless bundle is met
        read_file(trusted_root, what="trusted root", limit=MAX_TRUSTED_ROOT_BYTES, error=TrustConfigError)
    # the same rule as verify (verify.signers.find_signers): revoked keys never count, an identity outside
    # its validity window (not-before / not-after, at the time of the audit) signs nothing
    setup = _Setup(identities=tuple(identities), rules=policy.provenance, trusted_root=trusted_root,
                   revoked=policy.revoked, at=datetime.now(UTC))
    auditor = _Auditor(policy)
    workers = workers or os.cpu_count() or 1
    def counted(sources: Iterable[Source]) -> Iterator[Source]:
        for source in sources:
            if isinstance(source[1], EvidenceRejected):
                auditor.unread += 1
            yield source

    for files, facts in _facts(counted(sources), setup, workers=workers, batch_size=batch_size):
        auditor.files += files
        for fact in facts:
            auditor.add(fact)
        if progress is not None:
            progress(len(facts))
    for uri, claimed, found in artifacts:
        auditor.add_stored(uri, claimed, found)
    return auditor.report()
