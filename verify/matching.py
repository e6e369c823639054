"""Whether a subject is this artefact: the one matcher every check calls.

A run reads the artefact once (:mod:`verify.digests`) and computes a :class:`DigestSet`; every check
of that run (the provenance, each VSA, each approval, each release component) asks
:func:`subject_matches` with that one set. A subject is the artefact when:

* at least one algorithm is in all three of: the subject's digests, the digests computed, and the
  algorithms the policy accepts (md5 and sha1 never count, whatever a policy object says); and
* every algorithm that was computed and that the subject lists has the same value: a subject whose
  sha256 matches but whose blake3 does not names other bytes, and is not this artefact.

Which algorithms are computed is decided before the read by :func:`plan_algorithms`, from the
evidence and the policy: the fewest, cheapest algorithms that let every subject be matched on one of
its accepted digests (blake3 where the subject has it; sha256 only where it is the only accepted
algorithm in common, where the policy accepts nothing else, or where something addressed by sha256
needs it). One agreeing digest of a collision-resistant algorithm identifies the bytes; a digest that
was computed and disagrees still refuses the subject.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from verify.digests import ACCEPTED, CHEAPEST_FIRST, KNOWN, WEAK, DigestSet
from verify.errors import EvidenceRejected
from verify.formats.envelope import INTOTO_PAYLOAD_TYPE
from verify.formats.evidence import Evidence
from verify.formats.statement import Statement, Subject

__all__ = ["accepted_algorithms", "intoto_statements", "matching_subject", "plan_algorithms", "subject_matches"]


def accepted_algorithms(digests: Sequence[str]) -> tuple[str, ...]:
    """A policy's ``digests`` list as the matcher uses it: never md5 or sha1, only what attest computes."""
    return tuple(a for a in digests if a not in WEAK and a in KNOWN)


def subject_matches(subject: Mapping[str, str], computed: DigestSet, accepted: Sequence[str]) -> bool:
    """True if the subject digest set ``subject`` names the artefact whose digests are ``computed``."""
    common = [a for a in computed.digests if a in subject]
    if not any(a in common for a in accepted_algorithms(accepted)):
        return False
    return all(subject[a] == computed.digests[a] for a in common)


def matching_subject(statement: Statement, computed: DigestSet, accepted: Sequence[str]) -> Subject | None:
    """The first subject of ``statement`` that is this artefact, or None."""
    return next((s for s in statement.subjects if subject_matches(s.digest, computed, accepted)), None)


def plan_algorithms(evidence: Iterable[object], *, accepted: Sequence[str] = ACCEPTED,
                    require: Iterable[str] = ()) -> list[str]:
    """Which digests the one read computes, cheapest first:

      (1) every algorithm in ``require`` (something addressed by it needs it: a store's sha256 index,
          an in-toto link's sha256), and the digest a message signature signs (sha256, or what its
          messageDigest names: sha384 for a P-384 key);
      (2) the one accepted algorithm of each subject that has only one (a subject with sha256 alone);
      (3) for each subject not yet covered, its cheapest accepted algorithm (blake3 where it has it).

    ``accepted`` is the policy's ``digests`` list (md5 and sha1 never count). A subject with no accepted
    algorithm adds nothing: no digest could match it. A plan only, read from evidence nobody trusts
    yet: what is unreadable here is refused later, by the verifier, which reads it again strictly.
    When nothing asks for an algorithm, the plan is the cheapest accepted one.
    """
    items = list(evidence)
    usable = accepted_algorithms(accepted)
    choices = _subject_choices(items, usable)
    # (1) what something addressed by a digest needs, and what each message signature signs
    wanted = {a for a in require if a in KNOWN} | {_message_algorithm(item) for item in _message_signatures(items)}
    # (2) the one accepted algorithm of each subject that has only one
    wanted |= {next(iter(choice)) for choice in choices if len(choice) == 1}
    # (3) the cheapest accepted algorithm of each subject not yet covered
    wanted = _cover(choices, wanted)
    if not wanted:
        wanted.add(next((a for a in CHEAPEST_FIRST if a in usable), "sha256"))
    return [a for a in CHEAPEST_FIRST if a in wanted]


def _subject_choices(evidence: Iterable[object], usable: Sequence[str]) -> list[set[str]]:
    """For each subject of each in-toto statement, in order, its accepted algorithms (if it has any)."""
    return [found for _, statement in intoto_statements(evidence) for subject in statement.subjects
            if (found := {a for a in usable if a in subject.digest})]


def _message_signatures(evidence: Iterable[object]) -> list[Evidence]:
    """The evidence that is a message signature (a bundle without an envelope)."""
    return [item for item in evidence if isinstance(item, Evidence) and item.envelope is None]


def _cover(choices: Sequence[set[str]], wanted: set[str]) -> set[str]:
    """``wanted`` and, for each choice (in order) none of ``wanted`` so far covers, its cheapest algorithm."""
    covered = set(wanted)
    for choice in choices:
        if not choice & covered:
            covered.add(next(a for a in CHEAPEST_FIRST if a in choice))
    return covered


def _message_algorithm(item: Evidence) -> str:
    """The digest a message signature signs: its messageDigest's algorithm, else sha256."""
    try:
        return item.bundle.message.algorithm(item.source)[1] if item.bundle and item.bundle.message else "sha256"
    except EvidenceRejected:  # refused by the verifier; the plan only decides what is read
        return "sha256"


def intoto_statements(evidence: Iterable[object]) -> Iterator[tuple[Evidence, Statement]]:
    """Each readable in-toto statement in ``evidence`` with the evidence it is in, in order (not yet trusted):
    what is not an envelope of an in-toto statement, or does not read as one, is skipped."""
    for item in evidence:
        if not isinstance(item, Evidence) or item.envelope is None:
            continue
        if item.envelope.payload_type != INTOTO_PAYLOAD_TYPE:
            continue
        try:
            statement = item.statement()
        except EvidenceRejected:
            continue
        yield item, statement
