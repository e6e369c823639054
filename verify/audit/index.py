"""What an audit remembers between runs: the facts it checked, keyed by the bytes and the trust they were checked
under. A cache, never a source of trust.

An audit's expensive step is (2), checking each attestation file's signatures and reading its statement into
small facts. The facts depend on three things only: the file's bytes, where it is (its URI names the facts'
sources), and the trust it is checked under (:func:`setup_digest`: the policy's digest, the pinned keys and
Sigstore identities and which of them are valid now, the revocations, the trusted root's bytes, and this
version of the checking code). So a file whose bytes and place are unchanged, checked under the same trust,
gives the same facts: :class:`FactIndex` hands them back instead of checking again. Anything else changed,
and the file is checked again and the entry replaced.

Facts are kept as JSON (:func:`encode_facts`, :func:`decode_facts`): plain data that is read back into
the known fact classes only, never code, whoever wrote the index. An entry that does not read back is a miss
(checked again), never an error. Who can write the index can make an audit believe what they wrote; the
threat model (docs/threat-model.md) says so, and ``--reverify`` checks every entry against a fresh check and
reports each one that disagrees (``index-mismatch``).

:class:`Listed` lets the caller give a file the audit may not need to read: the digest a previous run found
at that place (when its name, size and time are unchanged), and how to read it if the facts are needed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from verify.audit._check import (
    _Approval,
    _Build,
    _Deployment,
    _Fact,
    _Release,
    _Reproduction,
    _Setup,
    _Signature,
    _Vsa,
)
from verify.audit.report import ReleaseComponent
from verify.errors import EvidenceRejected, TrustConfigError
from verify.files import read_file
from verify.limits import MAX_TRUSTED_ROOT_BYTES

__all__ = ["INDEX_FORMAT", "FactIndex", "Listed", "decode_facts", "encode_facts", "setup_digest"]

#: The version of the facts' JSON form; an index of another version is not read as this one.
INDEX_FORMAT = 1

_CLASSES: Mapping[str, type] = {cls.__name__: cls for cls in (
    _Fact, _Build, _Vsa, _Approval, _Deployment, _Reproduction, _Signature, _Release, ReleaseComponent)}


@dataclass(frozen=True)
class Listed:
    """An attestation file the caller has listed but not read."""

    digest: str | None
    """The sha256 of its bytes as a previous run found them at this place, if its name, size and time (or S3
    ETag) are unchanged: a hint to look the facts up by, never believed without the facts' own key."""
    read: Callable[[], bytes | EvidenceRejected]
    """Its bytes, read now (the caller records the digest of what it read for the next run)."""


class FactIndex(Protocol):
    """Where an audit's facts are kept between runs (:mod:`attest.audit_index` has SQLite and PostgreSQL)."""

    def facts(self, uri: str, digest: str) -> str | None:
        """The facts (as :func:`encode_facts` wrote them) for the file at ``uri`` whose bytes hash to ``digest``,
        checked under this index's setup; None if there are none."""
        ...

    def put(self, uri: str, digest: str, facts: str) -> None:
        """Keep ``facts`` for the file at ``uri`` with ``digest``, under this index's setup."""
        ...


def setup_digest(setup: _Setup, *, policy_digest: str, trusted_root: bytes | None, version: str) -> str:
    """The trust a fact was checked under, as one digest: the same digest means the same facts for the same bytes."""
    identities = [{"name": i.name, "keys": sorted(k.fingerprint for k in i.keys), "sigstore": repr(i.sigstore),
                   "valid": i.valid_at(setup.at), "revoked": sorted(i.revoked)} for i in setup.identities]
    described = {"format": INDEX_FORMAT, "version": version, "policy": policy_digest,
                 "identities": sorted(identities, key=lambda i: str(i["name"])), "revoked": sorted(setup.revoked),
                 "trustedRoot": hashlib.sha256(trusted_root).hexdigest() if trusted_root is not None else "shipped"}
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


# --- facts as JSON ---------------------------------------------------------------------------------------

def _encode(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {"@": type(value).__name__, **{f.name: _encode(getattr(value, f.name)) for f in fields(value)}}
    if isinstance(value, datetime):
        return {"@": "time", "v": value.isoformat()}
    if isinstance(value, tuple):
        return {"@": "tuple", "v": [_encode(v) for v in value]}
    if isinstance(value, frozenset):
        return {"@": "set", "v": sorted(_encode(v) for v in value)}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"a fact holds a {type(value).__name__}, which the index cannot keep")


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        raise ValueError("a bare list")  # every sequence is tagged: a list here was not written by encode_facts
    if not isinstance(value, dict):
        return value
    tag = value.get("@")
    if tag == "time":
        return datetime.fromisoformat(value["v"])
    if tag == "tuple":
        return tuple(_decode(v) for v in value["v"])
    if tag == "set":
        return frozenset(_decode(v) for v in value["v"])
    cls = _CLASSES.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise ValueError(f"an unknown kind {tag!r}")
    hints = _hints(cls)
    given = {k: _decode(v) for k, v in value.items() if k != "@"}
    if not set(given) <= set(hints):
        raise ValueError(f"unknown fields for {tag}")
    for name, item in given.items():  # an entry someone else wrote is data of the right shape, or a miss
        if not _conforms(item, hints[name]):
            raise ValueError(f"{tag}.{name} is not a {hints[name]}")
    return cls(**given)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _conforms(value: Any, hint: Any) -> bool:
    """Whether ``value`` has the shape of the type ``hint`` (the fact classes' own annotations)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, arg) for arg in args)
    if origin is tuple:
        return isinstance(value, tuple) and _conforms_tuple(value, args)
    if origin is frozenset:
        return isinstance(value, frozenset) and all(_conforms(v, args[0]) for v in value)
    return _conforms_plain(value, hint)


def _conforms_tuple(value: tuple[Any, ...], args: tuple[Any, ...]) -> bool:
    if len(args) == 2 and args[1] is Ellipsis:
        return all(_conforms(v, args[0]) for v in value)
    return len(args) == len(value) and all(_conforms(v, a) for v, a in zip(value, args, strict=True))


def _conforms_plain(value: Any, hint: Any) -> bool:
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is datetime:
        return isinstance(value, datetime) and value.tzinfo is not None
    if isinstance(hint, type):
        return isinstance(value, hint)
    return False


def encode_facts(facts: Sequence[_Fact]) -> str:
    """The facts of one file as JSON text."""
    return json.dumps([_encode(f) for f in facts], separators=(",", ":"), sort_keys=True)


def decode_facts(text: str) -> list[_Fact] | None:
    """The facts :func:`encode_facts` wrote, or None when ``text`` is not that (the entry is then a miss)."""
    try:
        items = json.loads(text)
        if not isinstance(items, list):
            return None
        facts = [_decode(item) for item in items]
    except (ValueError, TypeError, KeyError, RecursionError):
        return None
    return facts if all(isinstance(f, _Fact) for f in facts) else None


def trusted_root_bytes(path: Path | None) -> bytes | None:
    """The trusted root's bytes for :func:`setup_digest` (None: the root shipped with sigstore-python)."""
    if path is None:
        return None
    return read_file(path, what="trusted root", limit=MAX_TRUSTED_ROOT_BYTES, error=TrustConfigError)
