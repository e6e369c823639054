"""The verification pipeline: is this artefact the one a trusted builder attested, under this policy?

For each piece of evidence, in order, each step a call that raises or returns:

  (1) parse      the envelope or bundle (done by :mod:`verify.evidence`), and
                 peek at its statement to start hashing the artefact early
  (2) signature  a signature by an identity the policy pins (keyid is only a hint)
  (3) statement  payloadType in-toto, Statement v1 (or v0.1), the expected predicate type
  (4) subject    one subject's digest equals the artefact's (preferred algorithm;
                 md5 and sha1 never count, whatever the policy object says)
  (5) rules      source repository, branch, commit, builder, lockfiles, clean tree

A message-signature bundle (a plain signed artefact, no statement) stops after (2), whose
signature covers the artefact's sha256: it passes only when no rule needs a provenance.

The first piece of evidence that passes every step gives the :class:`Verdict`.
If none does, the failure of the piece that got furthest is raised.

Keys are used as the policy allows them at the verification time (``at``, default now):
a revoked key, or an identity outside its ``not-before`` / ``not-after`` window, verifies
nothing (:meth:`verify.trust.Identity.usable`). Signature verifications are bounded per
envelope (:data:`MAX_VERIFICATIONS_PER_ENVELOPE`) and per run
(:data:`MAX_VERIFICATIONS_PER_RUN`, a :class:`VerificationBudget`), so that a file full of
bogus signatures costs a bounded amount of work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from verify.digests import WEAK
from verify.envelope import INTOTO_PAYLOAD_TYPE, Envelope
from verify.errors import (
    DigestMismatch,
    EvidenceRejected,
    MalformedEvidence,
    PolicyError,
    PolicyViolation,
    SignatureInvalid,
    UnknownEvidence,
)
from verify.evidence import Evidence
from verify.limits import MAX_VERIFICATIONS_PER_ENVELOPE, MAX_VERIFICATIONS_PER_RUN
from verify.policy import Policy, ProvenanceRules
from verify.statement import (
    PROVENANCE_V02,
    PROVENANCE_V1,
    Provenance,
    Statement,
    Subject,
    parse_statement,
    read_provenance,
)
from verify.trust import Identity, keys_in_order
from verify.uris import branch_of, normalize_repo

__all__ = ["KEYLESS_BUNDLE_COST", "Check", "Verdict", "VerificationBudget", "accepted_algorithms",
           "preferred_algorithms", "provenance_demands", "verify_artifact", "verify_signature"]

#: What one keyless Sigstore bundle costs from a :class:`VerificationBudget`: its certificate chain,
#: SCT, log entry and signature are several verifications.
KEYLESS_BUNDLE_COST = 8


class VerificationBudget:
    """The signature verifications one run may still try (:data:`MAX_VERIFICATIONS_PER_RUN`).

    One budget is shared by every envelope and bundle a run looks at, so that a file (or a
    store) full of bogus signatures cannot cost more than a bounded amount of work. Once it is
    spent, every further verification fails at once with :class:`SignatureInvalid`.
    """

    def __init__(self, total: int = MAX_VERIFICATIONS_PER_RUN) -> None:
        self.total = total
        self.left = total

    @property
    def spent(self) -> int:
        return self.total - self.left

    def spend(self, count: int, *, source: str) -> None:
        """Take ``count`` verifications, or raise :class:`SignatureInvalid` naming ``source`` if too few are left."""
        if count > self.left:
            self.left = 0
            raise SignatureInvalid(f"{source}: gave up, this verification already tried {self.total} signature "
                                   "verifications without enough valid ones; the evidence holds too many bogus "
                                   "signatures")
        self.left -= count


def accepted_algorithms(policy: Policy) -> tuple[str, ...]:
    """The digest algorithms the policy accepts, strongest first, never md5 or sha1 (whatever the policy says)."""
    return tuple(a for a in policy.provenance.digests if a not in WEAK)

log = logging.getLogger(__name__)

PROVENANCE_TYPES = (PROVENANCE_V1, PROVENANCE_V02)


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
class Verdict:
    """Proof that every check passed; only :func:`verify_artifact` makes one."""

    artifact: str
    digests: Mapping[str, str]
    subject: Subject
    statement: Statement | None
    """None for a message signature (a plain signed artefact), which passes identity-only checks."""
    provenance: Provenance | None
    signer: str
    evidence: Evidence
    checks: tuple[Check, ...] = field(default=())

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
                "commit": prov.commit, "invocationId": prov.invocation_id,
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


def peek_statement(evidence: Evidence) -> Statement | None:
    """The statement an envelope carries, parsed WITHOUT checking its signature (to plan hashing only)."""
    if evidence.envelope is None or evidence.envelope.payload_type != INTOTO_PAYLOAD_TYPE:
        return None
    try:
        return parse_statement(evidence.envelope.payload)
    except EvidenceRejected:
        return None


def preferred_algorithms(evidence: Sequence[Evidence], policy: Policy, *, available: Sequence[str]) -> list[str]:
    """Which digests of the artefact to compute: per statement, the first accepted algorithm it carries."""
    wanted: list[str] = []
    for item in evidence:
        statement = peek_statement(item)
        candidates = [s.digest for s in statement.subjects] if statement else [{"sha256": ""}]
        for digest in candidates:
            for algorithm in accepted_algorithms(policy):
                if algorithm in digest and algorithm in available:
                    if algorithm not in wanted:
                        wanted.append(algorithm)
                    break
    return wanted or ["sha256"]


def verify_signature(envelope: Envelope, identities: Sequence[Identity], *, source: str,
                     budget: VerificationBudget | None = None, at: datetime | None = None) -> Identity:
    """(2) The identity one of whose pinned keys signed ``envelope``.

    Keys whose fingerprint equals a signature's keyid are tried first; every
    usable pinned key is tried (the keyid is an unauthenticated hint), up to
    :data:`MAX_VERIFICATIONS_PER_ENVELOPE` verifications per envelope and, with
    a ``budget``, within what is left of it. Revoked keys and identities outside
    their validity window at ``at`` (default: now) are never tried.
    """
    pairs = keys_in_order(identities, "", at=at)
    if not pairs:
        reasons = [r for r in (identity.unusable_because(at) for identity in identities) if r]
        why = f" ({'; '.join(reasons)})" if reasons else ""
        raise SignatureInvalid(f"{source}: no pinned public key may sign this evidence{why}; "
                               "pass --key or name the signer in the policy's signed-by")
    message = envelope.pae()
    tries = MAX_VERIFICATIONS_PER_ENVELOPE
    for signature in envelope.signatures:
        for identity, key in keys_in_order(identities, signature.keyid, at=at):
            if tries == 0:
                raise SignatureInvalid(f"{source}: gave up after {MAX_VERIFICATIONS_PER_ENVELOPE} signature "
                                       "verifications without a valid one")
            tries -= 1
            if budget is not None:
                budget.spend(1, source=source)
            if key.verify(signature.sig, message):
                log.debug("%s: signature verified with %s (%s)", source, key.name, identity.name)
                return identity
    names = ", ".join(sorted({i.name for i in identities if i.keys}))
    raise SignatureInvalid(f"{source}: no signature verifies with a trusted key (trusted: {names}); "
                           "the evidence was altered or signed by an untrusted key")


def _revocation_note(evidence: Evidence, policy: Policy, signers: Sequence[Identity], at: datetime,
                     budget: VerificationBudget) -> str:
    """Why a trusted signer may have failed: out of its window, or the evidence is signed by a revoked key.

    Only for the message: a revoked key is tried here to NAME it, and what it says is never trusted.
    """
    notes = [r for r in (identity.unusable_because(at) for identity in signers) if r]
    envelope = evidence.envelope
    if envelope is not None and policy.revoked_keys:
        message = envelope.pae()
        pairs = [(key, s) for key in policy.revoked_keys for s in envelope.signatures]
        for key, signature in pairs[:MAX_VERIFICATIONS_PER_ENVELOPE]:
            if budget.left == 0:
                break
            budget.spend(1, source=evidence.source)
            if key.verify(signature.sig, message):
                notes.insert(0, f"it is signed by {key.name}, a key the policy revokes")
                break
    return f" ({'; '.join(notes)})" if notes else ""


def _signature_step(evidence: Evidence, policy: Policy, checks: _Checks,
                    bundle_verifier: Callable[[Evidence, Sequence[Identity]], Identity] | None,
                    budget: VerificationBudget, at: datetime) -> Identity:
    declared = policy.signers()
    signers = policy.usable(declared, at)  # what every path below sees: no revoked key, no expired identity
    if evidence.has_certificate or (evidence.envelope is None):
        if bundle_verifier is None:
            raise checks.fail(UnknownEvidence, f"{evidence.source}: Sigstore bundles with a certificate need "
                                               "Sigstore support, which this verifier was not given",
                              "signature", "a trusted signature", "a Sigstore bundle")
        try:
            keys = sum(len(identity.keys) for identity in signers)
            budget.spend(KEYLESS_BUNDLE_COST if evidence.has_certificate
                         else max(1, min(keys, MAX_VERIFICATIONS_PER_ENVELOPE)), source=evidence.source)
            identity = bundle_verifier(evidence, signers)
        except EvidenceRejected as e:
            message = str(e) + _revocation_note(evidence, policy, declared, at, budget)
            raise checks.fail(type(e), message, "signature", [i.name for i in declared], "no trusted signature") from e
    else:
        try:
            identity = verify_signature(evidence.envelope, signers, source=evidence.source, budget=budget, at=at)
        except SignatureInvalid as e:
            message = str(e) + _revocation_note(evidence, policy, declared, at, budget)
            raise checks.fail(SignatureInvalid, message, "signature", [i.name for i in declared],
                              "no trusted signature") from e
    checks.ok("signature", [i.name for i in declared], identity.name)
    return identity


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
        statement = parse_statement(envelope.payload, what=f"{evidence.source} statement")
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


def provenance_demands(rules: ProvenanceRules) -> list[str]:
    """The rules that only a provenance (or a statement of a requested type) can satisfy."""
    demands = {"source": rules.source.uri is not None, "branch": bool(rules.source.branches),
               "commit": rules.commit is not None, "builder": bool(rules.builders),
               "lockfiles": bool(rules.lockfiles), "predicate type": rules.predicate_type is not None}
    return [name for name, given in demands.items() if given]


def _message_step(evidence: Evidence, digests: Mapping[str, str], policy: Policy, checks: _Checks) -> Subject:
    """(3)-(5) for a message signature, whose signature step checked it signs the artefact's sha256.

    A plain signed artefact says nothing but "this identity signed these bytes": it satisfies an
    identity-only check, and no rule that needs a provenance.
    """
    demands = provenance_demands(policy.provenance)
    if demands:
        raise checks.fail(PolicyViolation, f"{evidence.source}: a message signature (a plain signed artefact) is "
                                           f"not a provenance, and the rules on {', '.join(demands)} need one",
                          "predicateType", list(PROVENANCE_TYPES), "message signature")
    signed = {"sha256": digests["sha256"]} if "sha256" in digests else dict(digests)
    checks.ok("messageSignature", signed, "the artefact's digest, signed")
    return Subject(name="", digest=signed)


def _subject_step(evidence: Evidence, statement: Statement, digests: Mapping[str, str], policy: Policy,
                  checks: _Checks) -> Subject:
    strong = accepted_algorithms(policy)  # md5 and sha1 never count, even if a policy object lists them
    accepted = tuple(a for a in strong if a in digests)
    for subject in statement.subjects:
        # the strongest accepted algorithm that both the subject and our hashing have
        algorithm = next((a for a in strong if a in subject.digest and a in digests), None)
        if algorithm is not None and subject.digest[algorithm] == digests[algorithm]:
            checks.ok("subject", {algorithm: digests[algorithm]}, subject.name or "(unnamed)")
            return subject
    usable = [s for s in statement.subjects if any(a in s.digest for a in strong)]
    if not usable:
        found = sorted({a for s in statement.subjects for a in s.digest})
        raise checks.fail(DigestMismatch, f"{evidence.source}: no subject has a digest attest accepts "
                                          f"(found {found}, accepted {list(strong)})",
                          "subject", list(strong), found)
    shown = {a: digests[a] for a in accepted}
    raise checks.fail(DigestMismatch, f"{evidence.source}: the artefact's digest {_short(shown)} is not among the "
                                      f"{len(statement.subjects)} subject(s) it attests; the artefact was changed "
                                      "or this attestation is for another one",
                      "subject", shown, [s.name for s in statement.subjects][:20])


def _short(digests: Mapping[str, str]) -> str:
    return ", ".join(f"{a}:{h[:16]}..." for a, h in digests.items())


def _rules_step(evidence: Evidence, statement: Statement, policy: Policy, checks: _Checks) -> Provenance | None:
    rules = policy.provenance
    if statement.predicate_type not in PROVENANCE_TYPES:
        # another predicate asked for by type: fine alone, but rules it cannot show must not pass silently
        unmet = [name for name in provenance_demands(rules) if name != "predicate type"]
        if unmet:
            raise checks.fail(PolicyViolation, f"{evidence.source}: predicate type {statement.predicate_type!r} is not "
                                               f"a SLSA provenance, and the rules on {', '.join(unmet)} need one",
                              "provenance", "a SLSA provenance", statement.predicate_type)
        return None
    try:
        prov = read_provenance(statement)
    except EvidenceRejected as e:
        if rules.predicate_type is not None and provenance_demands(rules) == ["predicate type"]:
            # asked for by type, with no rule to apply: the predicate need not be readable, as with gh
            checks.ok("provenance", "not interpreted (--predicate-type, no provenance rule)", f"unreadable: {e}")
            return None
        raise checks.fail(type(e), f"{evidence.source}: {e}", "provenance", "a SLSA provenance", "unreadable") from e
    src = evidence.source
    if rules.source.uri is not None:
        try:
            expected = normalize_repo(rules.source.uri)
        except ValueError as e:  # a policy object built by hand; load_policy and with_rules refuse these
            raise PolicyError(f"source repository {rules.source.uri!r} in the policy is not a repository URI") from e
        try:
            found = normalize_repo(prov.source_uri) if prov.source_uri else None
        except ValueError:  # not a URL at all (an unbalanced '[', say): it names no repository
            found = None
        if found != expected:
            raise checks.fail(PolicyViolation,
                              f"{src}: source repository is {prov.source_uri!r}, expected {expected!r}",
                              "source", expected, prov.source_uri)
        checks.ok("source", expected, prov.source_uri)
    if rules.source.branches:
        branch = branch_of(prov.source_ref)
        if branch not in rules.source.branches:
            raise checks.fail(PolicyViolation, f"{src}: built from ref {prov.source_ref!r}, expected branch "
                                               f"{' or '.join(rules.source.branches)}",
                              "branch", list(rules.source.branches), prov.source_ref)
        checks.ok("branch", list(rules.source.branches), prov.source_ref)
    if rules.commit is not None:
        if not prov.commit or not prov.commit.startswith(rules.commit.lower()) or len(rules.commit) < 7:
            raise checks.fail(PolicyViolation, f"{src}: built from commit {prov.commit!r}, expected {rules.commit!r}",
                              "commit", rules.commit, prov.commit)
        checks.ok("commit", rules.commit, prov.commit)
    if rules.builders:
        if prov.builder_id not in rules.builders:
            raise checks.fail(PolicyViolation, f"{src}: builder {prov.builder_id!r} is not one of the allowed "
                                               f"builders {list(rules.builders)}",
                              "builder", list(rules.builders), prov.builder_id)
        checks.ok("builder", list(rules.builders), prov.builder_id)
    if rules.lockfiles:
        bound = {d.name: d for d in prov.lockfiles}
        missing = [name for name in rules.lockfiles if name not in bound]
        if missing:
            raise checks.fail(PolicyViolation, f"{src}: the provenance does not bind lockfile {missing[0]!r}",
                              "lockfiles", list(rules.lockfiles), sorted(bound))
        checks.ok("lockfiles", list(rules.lockfiles), sorted(bound))
    if prov.dirty and not rules.allow_dirty:
        raise checks.fail(PolicyViolation, f"{src}: built from a work tree with uncommitted changes "
                                           "(--allow-dirty); the policy does not allow dirty builds",
                          "clean", True, False)
    checks.ok("clean", True, not prov.dirty)
    return prov


def verify_artifact(artifact: str, evidence: Sequence[Evidence | MalformedEvidence], *, policy: Policy,
                    digests: Callable[[], Mapping[str, str]],
                    bundle_verifier: Callable[[Evidence, Sequence[Identity]], Identity] | None = None,
                    at: datetime | None = None, budget: VerificationBudget | None = None) -> Verdict:
    """Verify ``artifact`` (whose digests ``digests()`` returns) against ``evidence`` under ``policy``.

    ``at`` is the verification time the policy's key windows are evaluated at (default: now);
    ``budget`` bounds the signature verifications of the whole run (default: a fresh one of
    :data:`MAX_VERIFICATIONS_PER_RUN`).
    """
    at = datetime.now(UTC) if at is None else at
    budget = VerificationBudget() if budget is None else budget
    if not policy.provenance.signed_by:
        raise SignatureInvalid("no trusted identity may sign provenance; verification without one is refused")
    if not evidence:
        raise MalformedEvidence(f"no attestation found for {artifact}")
    best: tuple[int, EvidenceRejected] | None = None
    for item in evidence:
        if isinstance(item, MalformedEvidence):
            failure: tuple[int, EvidenceRejected] = (0, item)
        else:
            checks = _Checks()
            try:
                log.info("%s: checking signature", item.source)
                signer = _signature_step(item, policy, checks, bundle_verifier, budget, at)
                log.info("%s: checking statement", item.source)
                statement = _statement_step(item, policy, checks)
                if statement is None:
                    subject = _message_step(item, digests(), policy, checks)
                    return Verdict(artifact=artifact, digests=dict(digests()), subject=subject, statement=None,
                                   provenance=None, signer=signer.name, evidence=item, checks=tuple(checks.done))
                log.info("%s: checking subject digests", item.source)
                subject = _subject_step(item, statement, digests(), policy, checks)
                log.info("%s: checking provenance rules", item.source)
                prov = _rules_step(item, statement, policy, checks)
                return Verdict(artifact=artifact, digests=dict(digests()), subject=subject, statement=statement,
                               provenance=prov, signer=signer.name, evidence=item, checks=tuple(checks.done))
            except EvidenceRejected as e:
                failure = (len(checks.done), e)
        if best is None or failure[0] > best[0]:
            best = failure
    assert best is not None
    raise best[1]
