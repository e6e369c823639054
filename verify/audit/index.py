"""What an audit remembers between runs: what it checked and how it judged, keyed by the bytes and the trust they
were checked under. A cache, never a source of trust.

An audit's expensive steps are (2), checking each attestation file's signatures and reading its statement into
small facts, and (5)-(6), judging each artefact's history and printing it. Both depend only on the files' bytes,
where they are (their URIs name the facts' sources), and the trust they are checked under (:func:`setup_digest`:
the policy's digest, the pinned keys and Sigstore identities and which of them are valid now, the revocations,
the trusted root's bytes, and this version of the checking code). So the index keeps, per file, its digest, what
its facts concern (:func:`touches`) and how many there are -- and the facts themselves only for a file every
judgement may depend on (a release manifest: :data:`EVERYWHERE`); and per artefact, its judgement
(:class:`Judged`: what the whole report needs of it) and its history as the JSON text the report prints, under
the digest of everything the judgement rests on. An audit then checks only files whose bytes it has not seen,
and judges again only artefacts whose files, stored copies or release manifests changed; any other file or
artefact is answered from the index. A file about an artefact judged again whose facts the index does not keep
is read and checked again.

Facts and judgements are kept as JSON (:func:`encode_facts`, :func:`encode_judged`): plain data that is read back
into the known classes only, never code, whoever wrote the index. An entry that does not read back is a miss
(checked or judged again), never an error. Who can write the index can make an audit believe what they wrote;
the threat model (docs/threat-model.md) says so, and ``--reverify`` checks and judges everything again and
reports each entry that disagrees (``index-mismatch``).

:class:`Listed` lets the caller give a file the audit may not need to read: the digest a previous run found
at that place (when its name, size and time are unchanged), and how to read it if the facts are needed.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from verify.audit._check import (
    _Approval,
    _Build,
    _Deployment,
    _Fact,
    _Release,
    _Setup,
    _Signature,
    _Vsa,
)
from verify.audit._reproduction import _Reproduction
from verify.audit._whole import Group
from verify.audit.report import Anomaly, Endorsement, ReleaseComponent
from verify.errors import EvidenceRejected

__all__ = ["INDEX_FORMAT", "FactIndex", "Judged", "Kept", "Listed", "decode_facts", "decode_judged", "disagrees",
           "encode_facts", "encode_judged", "history_reads_back", "setup_digest", "touches"]

#: The version of the index's forms (facts, judgements) and of what they mean; an index of an older version is
#: emptied, a newer one refused. 6: a build no release binds is judged by its repository's component
#: (:func:`verify.rules.rules_for_build`): judgements of format 5 passed some that are refused now. 7: facts and
#: judgements of format 6 passed provenances whose sources went unread (a source in another shape, v0.2's git
#: materials), lockfiles bound by no digest, approvals signed after their stage verified, and deployment records
#: of releases no manifest shows; those of format 7 judged min-level by provenance.builders where a component's
#: builders applied. 9: those of format 8 took a lead time's start from provenances the policy refuses, counted
#: deployment records dated before what they deployed was built, and never held a record to its stage's gate.
#: 10: a deployment record's fact keeps the sha256 of its envelope line (what runs, of two records of one time).
#: 11: those of format 10 counted one person's keyless hotfix approval once for each hotfix approver it fitted, and
#: approvals signed before the build, judged a rollback by the ordinary gate, and never held a deployment to its
#: stage's approvals and level, judged a provenance two releases bind to two components by one of them, and counted a
#: required VSA that names no trusted provenance of the artefact; a release's components keep what each needs, and
#: a build keeps a keyless bundle's signed time (a build without finishedOn is timed as the gate times it).
#: 12: a judgement keeps each deployment record's line sha256 too (of two records of one time, the one that runs):
#: those of format 11 lost it, and a warm audit could show the other as running, and miss an out-of-order deployment.
#: 13: each audit's use names the places it audited (``used.places``), so that the checks of a place no audit has
#: named for a while are dropped: those of format 12 kept a moved store's old place for as long as its policy was used.
INDEX_FORMAT = 13

_CLASSES: Mapping[str, type] = {cls.__name__: cls for cls in (
    _Fact, _Build, _Vsa, _Approval, _Deployment, _Reproduction, _Signature, _Release, ReleaseComponent, Anomaly,
    Endorsement)}


@dataclass(frozen=True)
class Listed:
    """An attestation file the caller has listed but not read."""

    digest: str | None
    """The sha256 of its bytes as a previous run found them at this place, if its name, size and time (or S3
    ETag) are unchanged: a hint to look the facts up by, never believed without the facts' own key."""
    read: Callable[[], bytes | EvidenceRejected]
    """Its bytes, read now."""
    record: Callable[[str], None] | None = None
    """Told the sha256 of the bytes its first :attr:`read` gave, once the audit has hashed them (for the caller's
    next listing: the digest its place and stamp stand for)."""


class Kept(NamedTuple):
    """What the index holds of a file without reading its facts: enough to tell whether it changed, and what it
    concerns (a named tuple: one is made per file on every audit)."""

    digest: str
    touch: tuple[str, ...]
    """:func:`touches` of its facts."""
    facts: int
    """How many facts (attestations) it holds."""


@dataclass(frozen=True)
class Judged:
    """An artefact's judgement as the index keeps it: what the whole report needs from it without reading its
    history (kept beside, as the JSON text the report prints)."""

    key: tuple[str, str]
    """Where it sorts in the report: (its first name, else U+FFFF; the time of its first build, else ``~``)."""
    groups: tuple[Group, ...]
    deps: tuple[str, ...]
    committed: tuple[str, datetime] | None
    """The change it was built from, (commit, when it was made), as a provenance the policy accepts says."""
    placed: tuple[tuple[str, _Deployment], ...]
    anomalies: tuple[Anomaly, ...]
    """Its own anomalies, not those of reproducibility across artefacts (judged over the whole history)."""
    exceptional: tuple[Endorsement, ...]
    """Its hotfix and rollback deployment records."""


class FactIndex(Protocol):
    """Where an audit's facts and judgements are kept between runs (:mod:`attest.audit_index` has SQLite and
    PostgreSQL)."""

    def kept(self, uri: str) -> Kept | None:
        """What the index holds of the file at ``uri`` under this setup, without its facts; None if nothing."""
        ...

    def read_done(self) -> None:
        """Every file of the audit has been asked about (:meth:`kept`): what was loaded to answer may be let go."""
        ...

    def facts(self, uri: str, digest: str) -> str | None:
        """The facts (as :func:`encode_facts` wrote them) for the file at ``uri`` whose bytes hash to ``digest``,
        checked under this index's setup; None if there are none."""
        ...

    def put(self, uri: str, digest: str, facts: str, touch: tuple[str, ...], count: int) -> None:
        """Keep ``facts`` for the file at ``uri`` with ``digest``, under this index's setup."""
        ...

    def judgements(self) -> Mapping[str, tuple[str, str, str]]:
        """Every artefact's judgement under this setup: sha256 -> (the digest of what it was judged from, the
        judgement as :func:`encode_judged` wrote it, the history's JSON text)."""
        ...

    def judge(self, sha256: str, inputs: str, judged: str, history: str) -> None:
        """Keep an artefact's judgement (see :meth:`judgements`)."""
        ...


def setup_digest(setup: _Setup, *, policy_digest: str, version: str) -> str:
    """The trust a fact was checked under, as one digest: the same digest means the same facts for the same bytes."""
    identities = [{"name": i.name, "keys": sorted(k.fingerprint for k in i.keys), "sigstore": repr(i.sigstore),
                   "valid": i.valid_at(setup.at), "revoked": sorted(i.revoked)} for i in setup.identities]
    described = {"format": INDEX_FORMAT, "version": version, "policy": policy_digest,
                 "identities": sorted(identities, key=lambda i: str(i["name"])), "revoked": sorted(setup.revoked),
                 "trustedRoot": setup.trusted_root_sha256 or "shipped"}
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


# --- facts as JSON ---------------------------------------------------------------------------------------
#
# A fact is written as plain JSON in the shape of its class: a dataclass as a list, its class's name first and
# then its fields in order; a tuple or a frozenset as a list; a time as ISO 8601 text. It is read back by
# converters made once from the classes' own annotations, which check every value's shape on the way: what
# does not fit is not a fact (the entry is then a miss, and the file is checked again).

Convert = Callable[[Any], Any]


class _Misfit(Exception):
    """A value that does not have the shape its annotation says."""


_PLAIN = (str, int, float, bool, type(None))
_FIELDS: Mapping[type, tuple[str, ...]] = {cls: tuple(f.name for f in fields(cls)) for cls in _CLASSES.values()}


def _encode(value: Any) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is tuple:
        return [_encode(v) for v in value]
    names = _FIELDS.get(kind)
    if names is not None:
        return [kind.__name__, *(_encode(getattr(value, name)) for name in names)]
    if kind is datetime:
        return value.isoformat()
    if kind is frozenset:
        return sorted(_encode(v) for v in value)
    raise TypeError(f"a fact holds a {kind.__name__}, which the index cannot keep")


def _exactly(kind: type) -> Convert:
    def convert(value: Any) -> Any:
        if type(value) is not kind:
            raise _Misfit
        return value
    return convert


def _time(value: Any) -> datetime:
    if type(value) is not str:
        raise _Misfit
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _Misfit from None
    if parsed.tzinfo is None:
        raise _Misfit
    return parsed


def _none(value: Any) -> None:
    if value is not None:
        raise _Misfit


@functools.cache
def _converter(hint: Any) -> Convert:
    """The converter for values annotated ``hint`` (made once per annotation)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return _union(args)
    if origin is tuple:
        return _tuple(args)
    if origin is frozenset:
        item = _converter(args[0])
        return lambda value: frozenset(item(v) for v in _list(value))
    if hint is datetime:
        return _time
    if hint is type(None):
        return _none
    if hint in (str, int, bool):
        return _exactly(hint)
    if origin is typing.Literal:
        return lambda value: value if type(value) is str and value in args else _misfit()
    if hint is float:
        return lambda value: value if type(value) in (int, float) else _misfit()
    if isinstance(hint, type) and hint.__name__ in _CLASSES:
        return _record(hint)
    raise TypeError(f"the index cannot read a {hint!r}")


def _misfit() -> Any:
    raise _Misfit


def _list(value: Any) -> list[Any]:
    if type(value) is not list:
        raise _Misfit
    return value


def _tuple(args: tuple[Any, ...]) -> Convert:
    if len(args) == 2 and args[1] is Ellipsis:
        item = _converter(args[0])
        return lambda value: tuple(item(v) for v in _list(value))
    items = tuple(_converter(a) for a in args)

    def convert(value: Any) -> tuple[Any, ...]:
        given = _list(value)
        if len(given) != len(items):
            raise _Misfit
        return tuple(c(v) for c, v in zip(items, given, strict=True))
    return convert


def _union(args: tuple[Any, ...]) -> Convert:
    records = {a.__name__: _converter(a) for a in args if isinstance(a, type) and a.__name__ in _CLASSES}
    others = [_converter(a) for a in args if not (isinstance(a, type) and a.__name__ in _CLASSES)]

    def convert(value: Any) -> Any:
        if type(value) is list and value and type(value[0]) is str and value[0] in records:
            return records[value[0]](value)
        for other in others:
            try:
                return other(value)
            except _Misfit:
                continue
        raise _Misfit
    return convert


def _record(cls: type) -> Convert:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    converters: list[Convert] = []

    def convert(value: Any) -> Any:
        if not converters:  # made on first use: a field may name this class again
            converters.extend(_converter(hints[name]) for name in names)
        given = _list(value)
        if len(given) != len(names) + 1 or given[0] != cls.__name__:
            raise _Misfit
        return cls(*(c(v) for c, v in zip(converters, given[1:], strict=True)))
    return convert


def encode_facts(facts: Sequence[_Fact]) -> str:
    """The facts of one file as JSON text."""
    return json.dumps([_encode(f) for f in facts], separators=(",", ":"))


def decode_facts(text: str, source: str | None = None) -> list[_Fact] | None:
    """The facts :func:`encode_facts` wrote, or None when ``text`` is not that (the entry is then a miss); each
    placed at ``source`` if given (the file as this audit names it: another audit, run from another folder, may
    have named it otherwise)."""
    try:
        items = json.loads(text)
        fact = _converter(_Fact)
        facts = [fact(item) for item in _list(items)]
    except (_Misfit, ValueError, TypeError, RecursionError):
        return None
    if source is not None:
        facts = [f if f.source == source else _placed_at(f, source) for f in facts]
    return facts


def _placed_at(fact: _Fact, uri: str) -> _Fact:
    """``fact`` as another audit placed it (its file as that audit named it, with the line of a JSON Lines file:
    ``...name:3``), placed at the file this audit names ``uri``: the same file name, the same line; its problem's
    sentence names the file as this audit does too."""
    name = uri.rpartition("/")[2]
    at = fact.source.rfind(name)
    if at < 0 or (at > 0 and fact.source[at - 1] != "/"):
        return fact
    before, rest = fact.source[:at + len(name)], fact.source[at + len(name):]
    if rest and not (rest[0] == ":" and rest[1:].isascii() and rest[1:].isdigit()):
        return fact
    problem = None if fact.problem is None else (fact.problem[0], fact.problem[1].replace(before, uri))
    return dataclasses.replace(fact, source=sys.intern(uri + rest), problem=problem)


#: A file whose facts any artefact's judgement may depend on (a release manifest, evidence of no artefact): read
#: and folded on every audit.
EVERYWHERE = "*"


def touches(facts: Sequence[_Fact]) -> tuple[str, ...]:
    """What a file's facts concern: the sha256 of every subject they name, and :data:`EVERYWHERE` for a release
    manifest, a hotfix approval or a fact that names no subject (their effect reaches beyond any one artefact)."""
    found: set[str] = set()
    for fact in facts:
        found.update(sha for _, sha in fact.subjects)
        detail = fact.detail
        if not fact.subjects or isinstance(detail, _Release) or (isinstance(detail, _Approval) and detail.hotfix):
            found.add(EVERYWHERE)
    return tuple(sorted(found))


# --- judgements ------------------------------------------------------------------------------------------
#
# Read for every artefact on every audit: its common fields are plain JSON checked by hand (fast), the rare ones
# (anomalies, deployment records) in the facts' form.

_ANOMALIES = _converter(tuple[Anomaly, ...])
_ENDORSEMENTS = _converter(tuple[Endorsement, ...])


def encode_judged(judged: Judged | None) -> str:
    """A judgement as JSON text; None (the sha256 a file names is no artefact of the report) as ``[]``."""
    if judged is None:
        return "[]"
    placed = [[digest, d.environment, d.status, d.time.isoformat(), d.release, d.component, d.kind,
               d.release_sha256, sorted(d.artifacts), d.line_sha256] for digest, d in judged.placed]
    return json.dumps([judged.key[0], judged.key[1], [list(g) for g in judged.groups], list(judged.deps),
                       [judged.committed[0], judged.committed[1].isoformat()] if judged.committed else None, placed,
                       _encode(judged.anomalies), _encode(judged.exceptional)], separators=(",", ":"))


def _placed(value: Any) -> tuple[str, _Deployment]:
    """A placed deployment record as :func:`encode_judged` writes it (a warm audit reads one per artefact deployed)."""
    digest, environment, status, time, release, component, kind, release_line, artifacts, line = _list(value)
    if not _texts([digest, environment, status, release, component, kind, release_line, line]) or \
            not _texts(artifacts):
        raise _Misfit
    return digest, _Deployment(environment=environment, status=status, time=_time(time), release=release,
                               component=component, kind=kind, release_sha256=release_line,
                               artifacts=frozenset(artifacts), line_sha256=line)


def _texts(value: Any) -> bool:
    return all(type(item) is str for item in _list(value))


def _change(value: Any) -> tuple[str, datetime] | None:
    """A judgement's change as :func:`encode_judged` writes it: null, or [commit, time]."""
    if value is None:
        return None
    if len(_list(value)) != 2 or not _texts(value):
        raise _Misfit
    return value[0], _time(value[1])


def decode_judged(text: str) -> Judged | None:
    """The judgement :func:`encode_judged` wrote; None for no artefact. A text that is neither raises ValueError."""
    try:
        value = json.loads(text)
        if value == []:
            return None
        first, built, groups, deps, committed, placed, anomalies, exceptional = _list(value)
        if type(first) is not str or type(built) is not str or not _texts(deps) or not all(
                len(_list(group)) == 3 and _texts(group) for group in _list(groups)):
            raise _Misfit
        return Judged(key=(first, built), groups=tuple((g[0], g[1], g[2]) for g in groups), deps=tuple(deps),
                      committed=_change(committed),
                      placed=tuple(map(_placed, _list(placed))), anomalies=_ANOMALIES(anomalies) if anomalies else (),
                      exceptional=_ENDORSEMENTS(exceptional) if exceptional else ())
    except (_Misfit, ValueError, TypeError, RecursionError) as e:
        raise ValueError("not an artefact's judgement") from e


# --- what --reverify compares ------------------------------------------------------------------------------

def disagrees(index: FactIndex, uri: str, digest: str, facts: Sequence[_Fact], *, every: bool) -> bool:
    """Whether ``index`` held, for the file at ``uri`` with these bytes, other than a fresh check gives: what its facts
    concern or how many there are, or the facts themselves where it keeps them (``every``, or a file read on every
    audit)."""
    before = index.kept(uri)
    touch = touches(facts)
    if before is not None and before.digest == digest and (before.touch != touch or before.facts != len(facts)):
        return True
    if every or EVERYWHERE in touch:
        kept = index.facts(uri, digest)
        return kept is not None and kept != "" and decode_facts(kept, uri) != list(facts)
    return False


_DECODER = json.JSONDecoder()


def history_reads_back(history: str) -> bool:
    """Whether a kept history is one JSON object, as the report prints it: a text that is not (a torn or edited
    entry) is a miss, judged again, never pasted into the report (whose JSON it would break)."""
    try:
        value, end = _DECODER.raw_decode(history)
    except (ValueError, RecursionError):
        return False
    return end == len(history) and type(value) is dict
