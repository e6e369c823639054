"""The provenance check: which pieces of evidence show that a trusted builder made this artefact under the rules?

Each piece of evidence is evaluated on its own, each step a call that raises or returns:

  (1) parse      the envelope or bundle (done by :mod:`verify.formats.evidence`, the hardened reader)
  (2) signature  signed by an identity the policy trusts for provenance (:func:`verify.signers.find_signers`)
  (3) statement  payloadType in-toto, Statement v1 (or v0.1), the expected predicate type
  (4) subject    one subject is this artefact (:func:`verify.matching.subject_matches`, the run's one
                 digest set)
  (5) rules      :func:`verify.rules.judge_build`: stops at the first rule that fails

A message-signature bundle (a plain signed artefact, no statement) stops after (2), whose signature
covers the artefact's sha256: it passes only when no rule needs a provenance.

Every piece that passes is a :class:`Candidate`. :func:`candidates` returns them all, in a fixed
order that depends on the evidence's content, never on file names or the order it was found in
(newest build first, then by the sha256 of the attestation); the stage gate (:mod:`verify.gate`)
then asks which candidate also satisfies the stage's requirements. When none passes, the failure of
the piece that got furthest is the answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from verify.budget import VerificationBudget
from verify.digests import DigestSet
from verify.errors import (
    DigestMismatch,
    EvidenceRejected,
    MalformedEvidence,
    PolicyViolation,
    SignatureInvalid,
    UnknownEvidence,
)
from verify.formats.encoding import format_time
from verify.formats.envelope import INTOTO_PAYLOAD_TYPE, Envelope
from verify.formats.evidence import Evidence
from verify.formats.statement import (
    PROVENANCE_V02,
    PROVENANCE_V1,
    REPRODUCTION_V1,
    Provenance,
    Statement,
    Subject,
    read_provenance,
)
from verify.matching import accepted_algorithms, matching_subject
from verify.policy import Policy
from verify.rules import UNCHECKED, judge_build, policy_demands
from verify.signers import TrustRun, find_signers
from verify.sigstore.verifier import BundleVerifier
from verify.trust import Identity

__all__ = ["PROVENANCE_TYPES", "Candidate", "Check", "Verdict", "candidates", "digest_source", "verify_artifact",
           "verify_signature"]

log = logging.getLogger(__name__)

PROVENANCE_TYPES = (PROVENANCE_V1, PROVENANCE_V02)

#: What a caller may give as the artefact's digests: the set, or a function returning it (hashing may
#: still be running while signatures are checked).
Digests = DigestSet | Mapping[str, str] | Callable[[], DigestSet | Mapping[str, str]]


def digest_source(digests: Digests) -> Callable[[], DigestSet]:
    """``digests`` as a function returning the run's one :class:`DigestSet`, computed at most once."""
    cache: list[DigestSet] = []

    def get() -> DigestSet:
        if not cache:
            value = digests() if callable(digests) else digests
            cache.append(value if isinstance(value, DigestSet) else DigestSet(dict(value)))
        return cache[0]

    return get


@dataclass(frozen=True)
class Check:
    """One check made, with what was expected and what was found."""

    name: str
    passed: bool
    expected: Any
    found: Any

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.name, "passed": self.passed, "expected": self.expected, "found": self.found}


@dataclass(frozen=True)
class Candidate:
    """A piece of evidence that passed steps (1) to (5) for this artefact."""

    evidence: Evidence
    subject: Subject
    statement: Statement | None
    """None for a message signature (a plain signed artefact), which passes identity-only checks."""
    provenance: Provenance | None
    signers: tuple[str, ...]
    checks: tuple[Check, ...]
    time: datetime | None
    """When it was built: the provenance's finishedOn (else startedOn), else the verified log time."""


@dataclass(frozen=True)
class Verdict:
    """Proof that every check passed; only :func:`verify_artifact` and :mod:`verify.gate` make one."""

    artifact: str
    digests: Mapping[str, str]
    subject: Subject
    statement: Statement | None
    provenance: Provenance | None
    signer: str
    evidence: Evidence
    checks: tuple[Check, ...] = field(default=())

    @classmethod
    def of(cls, artifact: str, candidate: Candidate, digests: DigestSet,
           checks: Sequence[Check] | None = None) -> Verdict:
        return cls(artifact=artifact, digests=digests.as_dict(), subject=candidate.subject,
                   statement=candidate.statement, provenance=candidate.provenance, signer=candidate.signers[0],
                   evidence=candidate.evidence, checks=tuple(candidate.checks if checks is None else checks))

    @property
    def parameters_checked(self) -> bool:
        """Whether the build's external parameters were checked against what a policy expects (a gate
        of flags alone has no policy to say what to expect, and accepts them unread)."""
        return any(c.name == "parameters" and c.passed and c.expected != UNCHECKED for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        prov = self.provenance
        return {
            "verified": True,
            "artifact": self.artifact,
            "digests": dict(self.digests),
            "subject": {"name": self.subject.name, "digest": dict(self.subject.digest)},
            "predicateType": None if self.statement is None else self.statement.predicate_type,
            "kind": "message-signature" if self.statement is None else "attestation",
            "signer": self.signer,
            "evidence": {"source": self.evidence.source, "sha256": self.evidence.digest},
            "provenance": None if prov is None else {
                "builder": prov.builder_id, "source": prov.source_uri, "ref": prov.source_ref,
                "commit": prov.commit, "invocationId": prov.invocation_id, "buildType": prov.build_type,
                "parametersChecked": self.parameters_checked,
            },
            "checks": [c.to_dict() for c in self.checks],
        }


class _Checks:
    """Records checks as they are made; a failed one raises with the record attached."""

    def __init__(self) -> None:
        self.done: list[Check] = []

    def ok(self, name: str, expected: Any, found: Any) -> None:
        self.done.append(Check(name, True, expected, found))

    def fail(self, error: type[EvidenceRejected], message: str, name: str, expected: Any,
             found: Any) -> EvidenceRejected:
        self.done.append(Check(name, False, expected, found))
        return error(message, checks=tuple(self.done))


def evaluate(item: Evidence, *, policy: Policy, digests: Callable[[], DigestSet], run: TrustRun) -> Candidate:
    """Steps (2) to (5) for one piece of evidence; raises :class:`EvidenceRejected` with the checks made."""
    checks = _Checks()
    # (2) signature
    log.info("%s: checking signature", item.source)
    declared = [i.name for i in policy.signers()]
    try:
        message = digests() if item.envelope is None else None  # a message signature signs the artefact's digest
        signers = find_signers(item, policy.signers(), run, message=message)
    except EvidenceRejected as e:
        raise checks.fail(type(e), str(e), "signature", declared, "no trusted signature") from e
    checks.ok("signature", declared, signers[0].name)
    names = tuple(i.name for i in signers)
    # a keyless bundle's time: only one a signature vouches for (never an integrated time nothing signs)
    signed = run.signed_times.get(item.digest) if item.bundle is not None and item.bundle.keyless else None
    verified_time = signed.at if signed is not None else None
    if signed is not None:
        checks.ok("signedTime", signed.by, format_time(signed.at))
    # (3) statement
    log.info("%s: checking statement", item.source)
    statement = _statement_step(item, policy, checks)
    if statement is None:
        subject = _message_step(item, digests(), policy, checks)
        return Candidate(evidence=item, subject=subject, statement=None, provenance=None, signers=names,
                         checks=tuple(checks.done), time=verified_time)
    # (4) subject
    log.info("%s: checking subject digests", item.source)
    subject = _subject_step(item, statement, digests(), policy, checks)
    # (5) rules
    log.info("%s: checking provenance rules", item.source)
    prov = _rules_step(item, statement, policy, checks)
    time = (prov.time if prov is not None else None) or verified_time
    return Candidate(evidence=item, subject=subject, statement=statement, provenance=prov, signers=names,
                     checks=tuple(checks.done), time=time)


def candidates(evidence: Sequence[Evidence | MalformedEvidence], *, policy: Policy, digests: Callable[[], DigestSet],
               run: TrustRun) -> tuple[list[Candidate], EvidenceRejected | None]:
    """Every piece of ``evidence`` that passes steps (2) to (5), newest build first, then by the sha256 of
    the attestation; and the failure of the piece that got furthest (None if nothing failed)."""
    if not policy.provenance.signed_by:
        raise SignatureInvalid("no trusted identity may sign provenance; verification without one is refused")
    passed: list[Candidate] = []
    best: tuple[int, EvidenceRejected] | None = None
    for item in evidence:
        if isinstance(item, MalformedEvidence):
            failure: tuple[int, EvidenceRejected] = (0, item)
        else:
            try:
                passed.append(evaluate(item, policy=policy, digests=digests, run=run))
                continue
            except EvidenceRejected as e:
                failure = (len(e.checks), e)
        if best is None or failure[0] > best[0]:
            best = failure
    passed.sort(key=lambda c: (c.time is None, -(c.time.timestamp() if c.time else 0), c.evidence.digest,
                               c.evidence.source))
    return passed, None if best is None else best[1]


def verify_artifact(artifact: str, evidence: Sequence[Evidence | MalformedEvidence], *, policy: Policy,
                    digests: Digests, bundle_verifier: BundleVerifier | None = None, at: datetime | None = None,
                    budget: VerificationBudget | None = None, run: TrustRun | None = None) -> Verdict:
    """Verify ``artifact`` (whose digests ``digests`` gives) against ``evidence`` under ``policy``.

    The verdict names the first :func:`candidates` candidate. ``run`` (or ``at``, ``budget`` and
    ``bundle_verifier`` to make one) is shared by every signature check.
    """
    if run is None:
        run = policy.trust_run(at=at, budget=budget, bundles=bundle_verifier)
    if not evidence:
        raise MalformedEvidence(f"no attestation found for {artifact}")
    digest_set = digest_source(digests)
    found, failure = candidates(evidence, policy=policy, digests=digest_set, run=run)
    if not found:
        assert failure is not None
        raise failure
    return Verdict.of(artifact, found[0], digest_set())


def verify_signature(envelope: Envelope, identities: Sequence[Identity], *, source: str,
                     budget: VerificationBudget | None = None, at: datetime | None = None) -> Identity:
    """The first of ``identities`` that signed ``envelope`` (:func:`verify.signers.find_signers`)."""
    item = Evidence(source=source, digest="", envelope=envelope)
    run = TrustRun(budget=VerificationBudget() if budget is None else budget)
    if at is not None:
        run.at = at
    return find_signers(item, identities, run)[0]


def _statement_step(evidence: Evidence, policy: Policy, checks: _Checks) -> Statement | None:
    envelope = evidence.envelope
    if envelope is None:
        return None  # a message-signature bundle: identity only
    if envelope.payload_type != INTOTO_PAYLOAD_TYPE:
        raise checks.fail(UnknownEvidence, f"{evidence.source}: payloadType is {envelope.payload_type!r}, "
                                           f"not {INTOTO_PAYLOAD_TYPE!r}",
                          "payloadType", INTOTO_PAYLOAD_TYPE, envelope.payload_type)
    checks.ok("payloadType", INTOTO_PAYLOAD_TYPE, envelope.payload_type)
    try:
        statement = evidence.statement()
    except EvidenceRejected as e:
        raise checks.fail(type(e), str(e), "statement", "an in-toto Statement", "unreadable") from e
    checks.ok("statement", "an in-toto Statement", statement.type)
    wanted = (policy.provenance.predicate_type,) if policy.provenance.predicate_type else PROVENANCE_TYPES
    if statement.predicate_type not in wanted:
        expected = (repr(policy.provenance.predicate_type) if policy.provenance.predicate_type
                    else f"a SLSA provenance ({PROVENANCE_V1}); ask for another type with --predicate-type")
        raise checks.fail(UnknownEvidence, f"{evidence.source}: predicate type {statement.predicate_type!r} is not "
                                           f"{expected}",
                          "predicateType", list(wanted), statement.predicate_type)
    checks.ok("predicateType", list(wanted), statement.predicate_type)
    return statement


def _message_step(evidence: Evidence, digests: DigestSet, policy: Policy, checks: _Checks) -> Subject:
    """(3)-(5) for a message signature, whose signature step checked it signs the artefact's digest.

    A plain signed artefact says nothing but "this identity signed these bytes": it satisfies an
    identity-only check, and no rule that needs a provenance.
    """
    demands = policy_demands(policy)
    if demands:
        raise checks.fail(PolicyViolation, f"{evidence.source}: a message signature (a plain signed artefact) is "
                                           f"not a provenance, and the rules on {', '.join(demands)} need one",
                          "predicateType", list(PROVENANCE_TYPES), "message signature")
    bundle = evidence.bundle
    assert bundle is not None and bundle.message is not None
    _, algorithm = bundle.message.algorithm(evidence.source)  # find_signers refused another, or none computed
    accepted = accepted_algorithms(policy.provenance.digests)
    if algorithm not in accepted:  # (the policy's digests decide what counts, for a signed digest as for a subject)
        raise checks.fail(PolicyViolation, f"{evidence.source}: the message signature signs the artefact's "
                                           f"{algorithm}, which the policy's digests do not accept "
                                           f"({', '.join(accepted)})",
                          "messageSignature", list(accepted), algorithm)
    signed = {algorithm: digests.digests[algorithm]}
    checks.ok("messageSignature", signed, "the artefact's digest, signed")
    return Subject(name="", digest=signed)


def _subject_step(evidence: Evidence, statement: Statement, digests: DigestSet, policy: Policy,
                  checks: _Checks) -> Subject:
    """(4) A subject of the statement is this artefact; else why none is."""
    accepted = accepted_algorithms(policy.provenance.digests)
    subject = matching_subject(statement, digests, accepted)
    if subject is None:
        raise _no_subject(evidence, statement, digests, accepted, checks)
    shown = {a: h for a, h in digests.digests.items() if a in subject.digest}
    checks.ok("subject", shown, subject.name or "(unnamed)")
    return subject


def _no_subject(evidence: Evidence, statement: Statement, digests: DigestSet, accepted: Sequence[str],
                checks: _Checks) -> EvidenceRejected:
    """Why no subject is this artefact: no accepted digest, none of the kind computed, or another artefact's."""
    usable = [s for s in statement.subjects if any(a in s.digest for a in accepted)]
    if not usable:
        found = sorted({a for s in statement.subjects for a in s.digest})
        return checks.fail(DigestMismatch, f"{evidence.source}: no subject has a digest attest accepts "
                                           f"(found {found}, accepted {list(accepted)})",
                           "subject", list(accepted), found)
    if not any(a in s.digest for s in usable for a in digests.digests if a in accepted):
        return checks.fail(DigestMismatch, f"{evidence.source}: no subject has a digest of the kind computed for the "
                                           f"artefact ({', '.join(digests.digests)}); the attestation names it "
                                           "otherwise", "subject", list(digests.digests),
                           sorted({a for s in usable for a in s.digest}))
    return checks.fail(DigestMismatch, f"{evidence.source}: the artefact's digest {digests.short()} is not among "
                                       f"the {len(statement.subjects)} subject(s) it attests; the artefact was "
                                       "changed or this attestation is for another one",
                       "subject", digests.as_dict(), [s.name for s in statement.subjects][:20])


def _reproduced(evidence: Evidence, statement: Statement, checks: _Checks) -> None:
    """A reproduction vouches for its subjects only if the rebuild reproduced them all: its verdict REPRODUCIBLE and
    every result a match (``attest reproduce`` names the differing subjects too, with the digests the provenance
    gave them, so that an audit can place the verdict)."""
    predicate = statement.predicate
    verdict, results = predicate.get("verdict"), predicate.get("results", [])
    listed = results if isinstance(results, list) else [None]
    statuses = [r.get("status") if isinstance(r, dict) else None for r in listed]
    if verdict != "REPRODUCIBLE" or any(status != "match" for status in statuses):
        found = verdict if isinstance(verdict, str) else "no verdict"
        raise checks.fail(PolicyViolation, f"{evidence.source}: the reproduction's verdict is {found[:40]!r} with "
                          f"{sum(s != 'match' for s in statuses)} subject(s) not matched: a rebuild that did not "
                          "reproduce every artefact vouches for none", "reproduction", "REPRODUCIBLE", found[:40])
    checks.ok("reproduction", "REPRODUCIBLE", "REPRODUCIBLE")


def _rules_step(evidence: Evidence, statement: Statement, policy: Policy, checks: _Checks) -> Provenance | None:
    demands = [name for name in policy_demands(policy) if name != "predicate type"]
    if statement.predicate_type not in PROVENANCE_TYPES:
        if statement.predicate_type == REPRODUCTION_V1:
            _reproduced(evidence, statement, checks)
        # another predicate asked for by type: fine alone, but rules it cannot show must not pass silently
        if demands:
            raise checks.fail(PolicyViolation, f"{evidence.source}: predicate type {statement.predicate_type!r} is not "
                                               f"a SLSA provenance, and the rules on {', '.join(demands)} need one",
                              "provenance", "a SLSA provenance", statement.predicate_type)
        return None
    try:
        prov = read_provenance(statement)
    except EvidenceRejected as e:
        if not demands and not policy.provenance.check_parameters:
            # an identity-only check (flags, no policy): no rule reads the predicate, which need not be readable, as
            # with gh; a policy's rules read every provenance (its parameters, a clean tree), and one they cannot read
            # would pass what they refuse once readable
            checks.ok("provenance", "not interpreted (no provenance rule reads it)", f"unreadable: {e}")
            return None
        raise checks.fail(type(e), f"{evidence.source}: {e}", "provenance", "a SLSA provenance", "unreadable") from e
    for result in judge_build(prov, policy):
        if not result.passed:
            raise checks.fail(PolicyViolation, f"{evidence.source}: {result.message}", result.rule, result.expected,
                              result.found)
        checks.ok(result.rule, result.expected, result.found)
    return prov
