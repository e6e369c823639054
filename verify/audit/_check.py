"""Step (2) of an audit (:mod:`verify.audit`): what one envelope or bundle says and who signed it, as a small
fact (in worker processes when there is more than one batch of files: :mod:`verify.audit._workers`)."""

from __future__ import annotations

import functools
import hashlib
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from verify.audit._reproduction import _Reproduction, _text, read_reproduction
from verify.audit.report import ReleaseComponent, short_sha
from verify.digests import MESSAGE_DIGESTS, DigestSet
from verify.errors import EvidenceRejected, MalformedEvidence, SignatureInvalid
from verify.formats.deployment import read_deployment
from verify.formats.envelope import INTOTO_PAYLOAD_TYPE, Envelope
from verify.formats.evidence import Evidence, load_evidence
from verify.formats.release import read_release
from verify.formats.statement import (
    APPROVAL_V1,
    DEPLOYMENT_V1,
    PROVENANCE_V02,
    PROVENANCE_V1,
    RELEASE_V1,
    REPRODUCTION_V1,
    VSA_V1,
    Provenance,
    Statement,
    parse_statement,
    read_approval,
    read_provenance,
    read_vsa,
)
from verify.policy import ProvenanceRules
from verify.rules import evaluate_provenance
from verify.signers import TrustRun, find_signers
from verify.sigstore.identity import claimed_identities
from verify.sigstore.verifier import BundleVerifier, make_bundle_verifier
from verify.trust import Identity

_SHA256 = re.compile(r"[0-9a-f]{64}")
_PROVENANCE_TYPES = (PROVENANCE_V1, PROVENANCE_V02)


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
    by_component: tuple[tuple[str, tuple[tuple[str, str, str], ...]], ...] = ()
    """The same findings under each ``components.NAME`` rules of the policy: a release that binds this
    provenance to a component decides which apply."""
    line_sha256: str = ""
    """sha256 of the provenance's envelope line (or bundle): how a release manifest binds it."""
    committed_on: datetime | None = None
    """When the commit built was made, as the provenance says (the start of a change's lead time)."""
    signed_on: datetime | None = None
    """A keyless bundle's verified log time: when it was built, where the provenance says nothing of it."""

    @property
    def built_on(self) -> datetime | None:
        """When it was built, as the gate takes it: finishedOn, else startedOn, else the signed time."""
        return self.finished_on or self.started_on or self.signed_on


@dataclass(frozen=True)
class _Vsa:
    resource_uri: str
    time: datetime
    result: str
    level: int | None = None
    inputs: tuple[str, ...] = ()
    """The sha256 of each attestation it names (``inputAttestations``): the provenance it verified among them."""
    policy_named: bool = False
    """Whether it names the policy it was verified under by a sha256 (a gate counts no VSA that does not)."""


@dataclass(frozen=True)
class _Approval:
    stage: str
    approver: str
    time: datetime | None
    hotfix: bool = False
    person: str = ""
    """Who signed a keyless approval (its certificate's names and issuer, verified): one person is one approver,
    however many approvers' identities the certificate satisfies. Empty for a key's signature."""


@dataclass(frozen=True)
class _Deployment:
    """A deployment record: an environment says it deployed (or failed to deploy) a component of a release."""

    environment: str
    status: str
    time: datetime
    release: str
    component: str
    kind: str
    release_sha256: str = ""
    artifacts: frozenset[str] = frozenset()
    """The sha256 of each artefact the record names."""
    line_sha256: str = ""
    """sha256 of the record's envelope line: of two records of one time, what runs is the one of the higher (as
    ``attest status`` reads the deployment index, newest name first)."""


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
    line_sha256: str = ""
    """sha256 of the manifest's envelope line (or bundle): how a deployment record names the release."""


@dataclass(frozen=True)
class _Fact:
    """What one envelope contributes; small, so that millions fit where envelopes would not."""

    source: str
    statement_digest: str
    subjects: tuple[tuple[str, str], ...]
    """(name, sha256) of each subject (claimed, when the signature did not verify)."""
    predicate_type: str = ""
    signers: tuple[str, ...] = ()
    detail: _Build | _Vsa | _Approval | _Reproduction | _Signature | _Release | _Deployment | None = None
    problem: tuple[str, str] | None = None
    """(anomaly kind, message) when the envelope itself is at fault."""
    claimed_stage: str = ""
    """A VSA's resourceUri, or an approval's stage or a deployment record's environment, as claimed (to place an
    anomaly on the path)."""

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _received, (self.source, self.statement_digest, self.subjects, self.predicate_type, self.signers,
                           self.detail, self.problem, self.claimed_stage)


def _received(source: str, statement_digest: str, subjects: tuple[tuple[str, str], ...], *rest: Any) -> _Fact:
    """A fact as a worker process sent it, its place and its artefacts' sha256s interned: one string each in the
    audit's process, shared with the file it came from and with every record that names them."""
    return _Fact(sys.intern(source), statement_digest, tuple((name, sys.intern(sha)) for name, sha in subjects),
                 *rest)


_Signers = tuple[tuple[str, ...], tuple[str, str] | None]
"""(identities that sign, (anomaly kind, message) when none does)."""


class _Checker:
    """Step (2) for one process: the identities, and what each envelope says and who signed it."""

    def __init__(self, identities: Sequence[Identity], rules: ProvenanceRules, *, trusted_root: Path | None = None,
                 revoked: frozenset[str] = frozenset(), at: datetime | None = None,
                 components: tuple[tuple[str, ProvenanceRules], ...] = ()) -> None:
        self._identities = tuple(identities)
        self._keyless = tuple(identity for identity in identities if identity.sigstore)
        self._rules = rules
        self._components = components
        self._trusted_root = trusted_root
        self._revoked = revoked
        self._at = at or datetime.now(UTC)
        self._usable: dict[Any, Any] = {}  # shared by every file's TrustRun: the time and revocations are fixed
        self._pairs: dict[Any, Any] = {}  # (as _usable)
        self._bundles: BundleVerifier | None = None

    def _run(self) -> TrustRun:
        """One file's signature checks: the audit's time and revocations, and a budget of their own."""
        if self._bundles is None:
            self._bundles = make_bundle_verifier(trusted_root=self._trusted_root)
        return TrustRun(at=self._at, bundles=self._bundles, revoked=self._revoked, usable_cache=self._usable,
                        pairs_cache=self._pairs)

    def check_batch(self, batch: Sequence[tuple[str, bytes | EvidenceRejected]]) -> list[list[_Fact]]:
        """The facts of each file of ``batch``, file by file."""
        return [self.check_file(uri, data) for uri, data in batch]

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
        every = tuple(_all_subjects(statement)) if statement else ()
        subjects = tuple((name, sha) for name, sha in every if sha is not None)
        claimed = _claimed_stage(statement) if statement else ""
        ptype = statement.predicate_type if statement else ""
        # (2c) who signs it: pinned keys, or a pinned Sigstore identity for a keyless bundle
        signers, problem = self._signers(item, functools.partial(_describe, statement), run)
        if problem is not None:
            return _Fact(source=item.source, statement_digest=digest, subjects=subjects, predicate_type=ptype,
                         problem=problem, claimed_stage=claimed)
        # (2d) a statement naming every artefact by sha256
        if statement is None:
            return _Fact(source=item.source, statement_digest=digest, subjects=(), signers=signers,
                         problem=("malformed", error))
        for name, sha in every:
            if sha is None:
                return _Fact(source=item.source, statement_digest=digest, subjects=subjects, signers=signers,
                             predicate_type=ptype,
                             problem=("malformed", f"subject {name!r} has no sha256 digest "
                                                   "of 64 hex digits; audit finds artefacts by sha256"))
        # (2e) what the predicate says, as far as audit needs it
        try:
            detail = _detail(statement, self._rules, line=item.digest)
        except EvidenceRejected as e:
            return _Fact(source=item.source, statement_digest=digest, subjects=subjects, signers=signers,
                         predicate_type=ptype, problem=("malformed", str(e)))
        detail = self._placed(detail, item, statement, run)
        return _Fact(source=item.source, statement_digest=digest, subjects=subjects, predicate_type=ptype,
                     signers=signers, detail=detail, claimed_stage=claimed)

    def _placed(self, detail: Any, item: Evidence, statement: Statement, run: TrustRun) -> Any:
        """``detail`` with what places it on the path beyond its statement: who signed a keyless approval, a keyless
        provenance's signed time, and a provenance's findings under each component's rules (a release decides which
        apply)."""
        if isinstance(detail, _Approval) and item.bundle is not None and item.bundle.keyless:
            claims = item.bundle.certificate_claims()  # (verified by now: _signers found a pinned identity)
            return replace(detail, person=claims.person)
        if isinstance(detail, _Build) and (self._components or (item.bundle is not None and item.bundle.keyless)):
            prov = read_provenance(statement) if self._components else None
            signed = run.signed_times.get(item.digest) if item.bundle is not None and item.bundle.keyless else None
            return replace(detail, line_sha256=item.digest, signed_on=signed.at if signed is not None else None,
                           by_component=tuple((name, _findings(prov, rules)) for name, rules in self._components
                                              if prov is not None))
        return detail

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
        signers, problem = self._signers(item, lambda: f"a message signature of {short_sha(sha)}", run,
                                         message=DigestSet({"sha256": sha}))
        if problem is not None:
            return _Fact(source=item.source, statement_digest=item.digest, subjects=subjects, problem=problem)
        return _Fact(source=item.source, statement_digest=item.digest, subjects=subjects, signers=signers,
                     detail=_Signature(sha))

    def _signers(self, item: Evidence, what: Callable[[], str], run: TrustRun, *,
                 message: DigestSet | None = None) -> _Signers:
        """The policy identities that signed ``item`` (:func:`verify.signers.find_signers`), or the anomaly, which
        names it as ``what()`` says (made only for an anomaly).

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
                return (), ("malformed", f"{what()} is signed keylessly, but {e}")
            named = claimed_identities(bundle, self._keyless)
            if not named:
                pins = "pins no Sigstore identity" if not self._keyless else "pins no Sigstore identity it satisfies"
                return (), ("untrusted-signer", f"{what()} is signed keylessly by {claims.describe()}, and the policy "
                                                f"{pins}")
        try:
            found = find_signers(item, self._identities, run, message=message)
        except SignatureInvalid as e:
            if claims is not None:
                return (), ("bad-signature", f"{what()} is signed keylessly in the name of {' and '.join(named)} "
                                             f"({claims.describe()}), but {_sentence_for(item, e)}; it was altered "
                                             "after signing, forged, or signed by a Sigstore instance the trusted "
                                             "root does not name")
            if e.claimed:
                return (), ("bad-signature", f"{what()} names the pinned key of {' and '.join(e.claimed)} but its "
                                             "signature does not verify; it was altered after signing or forged")
            return (), ("untrusted-signer", f"{what()} is signed by no key the policy pins")
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


def _claimed_stage(statement: Statement) -> str:
    if statement.predicate_type == VSA_V1:
        return _text(statement.predicate.get("resourceUri"))
    if statement.predicate_type == APPROVAL_V1:
        return f"attest:stage:{_text(statement.predicate.get('stage'))}"
    if statement.predicate_type == DEPLOYMENT_V1:
        return f"attest:stage:{_text(statement.predicate.get('environment'))}"
    return ""


def _describe(statement: Statement | None) -> str:
    if statement is None:
        return "an attestation"
    kind = {PROVENANCE_V1: "a provenance", PROVENANCE_V02: "a provenance", VSA_V1: "a VSA",
            APPROVAL_V1: "an approval", REPRODUCTION_V1: "a reproduction",
            RELEASE_V1: "a release manifest", DEPLOYMENT_V1: "a deployment record"}.get(statement.predicate_type,
                                                                                         "a statement")
    names = [s.name for s in statement.subjects[:2] if s.name]
    more = ", ..." if len(statement.subjects) > 2 else ""
    return f"{kind} for {', '.join(repr(n) for n in names)}{more}" if names else kind


def _findings(prov: Provenance, rules: ProvenanceRules) -> tuple[tuple[str, str, str], ...]:
    """(anomaly kind, message, step) of each rule of ``rules`` the provenance breaks."""
    return tuple((r.kind, r.message, "source" if r.kind == "disallowed-source" else "build")
                 for r in evaluate_provenance(prov, rules) if not r.passed)


def _detail(statement: Statement, rules: ProvenanceRules, *,
            line: str) -> _Build | _Vsa | _Approval | _Reproduction | _Release | _Deployment | None:
    """What the predicate says, as far as audit needs it; a release, a deployment record and a provenance with
    ``line``, the sha256 of their envelope line (or bundle): how a deployment record names a release, and a release
    binds a provenance."""
    pred = statement.predicate
    if statement.predicate_type in _PROVENANCE_TYPES:
        prov = read_provenance(statement)
        locks = tuple(sorted((d.name, tuple(sorted(d.digest.items()))) for d in prov.lockfiles))
        findings = _findings(prov, rules)
        return _Build(commit=prov.commit, source=prov.source_uri, ref=prov.source_ref,
                      builder=prov.builder_id, started_on=prov.started_on, finished_on=prov.finished_on,
                      dirty=prov.dirty, invocation_id=prov.invocation_id, lockfiles=locks, findings=findings,
                      committed_on=prov.commit_time, line_sha256=line)
    if statement.predicate_type == VSA_V1:
        vsa = read_vsa(statement)
        policy = vsa.policy_digest.get("sha256")
        return _Vsa(resource_uri=vsa.resource_uri, time=vsa.time_verified, result=vsa.result, level=vsa.build_level,
                    inputs=tuple(sorted({sha for d in vsa.input_attestations if (sha := d.digest.get("sha256"))})),
                    policy_named=isinstance(policy, str) and _SHA256.fullmatch(policy) is not None)
    if statement.predicate_type == APPROVAL_V1:
        approval = read_approval(statement)
        return _Approval(stage=approval.stage, approver=approval.approver, time=approval.time, hotfix=approval.hotfix)
    if statement.predicate_type == REPRODUCTION_V1:
        return read_reproduction(pred)
    if statement.predicate_type == RELEASE_V1:
        return _read_release(statement, line)
    if statement.predicate_type == DEPLOYMENT_V1:
        deployment = read_deployment(statement)
        return _Deployment(environment=deployment.environment, status=deployment.status, time=deployment.time,
                           release=deployment.release, component=deployment.component, kind=deployment.kind,
                           release_sha256=deployment.release_sha256,
                           artifacts=frozenset(a.digest["sha256"] for a in deployment.artifacts), line_sha256=line)
    return None


def _read_release(statement: Statement, line: str) -> _Release:
    """A release manifest, read by :func:`verify.formats.release.read_release` (as ``attest verify --release``
    reads it)."""
    release = read_release(statement)
    components = tuple(ReleaseComponent(name=part.name, source=part.source, commit=part.commit,
                                        provenance=part.provenance_sha256,
                                        artifacts=tuple((a.name, a.digest["sha256"]) for a in part.artifacts),
                                        needs=part.needs)
                       for part in release.components)
    return _Release(name=release.name, created=release.created, components=components, line_sha256=line)


# --- what every checker is made from -------------------------------------------------------------------

@dataclass(frozen=True)
class _Setup:
    """What every checker, in every worker process, is made from (it crosses process boundaries)."""

    identities: tuple[Identity, ...]
    rules: ProvenanceRules
    trusted_root: Path | None
    revoked: frozenset[str]
    at: datetime
    components: tuple[tuple[str, ProvenanceRules], ...] = ()
    """Each ``components.NAME`` of the policy, as the rules its provenance is judged by."""
    trusted_root_sha256: str = ""
    """The sha256 of the trusted root's bytes as read when the audit began (empty: the root shipped with
    sigstore-python): part of the trust an audit index keys its facts by."""

    def checker(self) -> _Checker:
        return _Checker(self.identities, self.rules, trusted_root=self.trusted_root, revoked=self.revoked,
                        at=self.at, components=self.components)
