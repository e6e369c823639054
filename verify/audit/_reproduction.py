"""What a reproduction (``https://attest.dev/reproduction/v1``, as ``attest reproduce --emit`` signs it) says, as
the audit reads it: leniently where it only reports (a verdict, a time), and exactly where it decides (which
subject of which digest matched, which commit and which provenance were rebuilt)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from verify.errors import MalformedEvidence
from verify.formats.encoding import parse_time

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class _Reproduction:
    verdict: str
    time: datetime | None
    statuses: tuple[tuple[str, str, str], ...] = ()
    """(subject name, its expected sha256, match/differs/missing/refused) from ``results``, where given."""
    commit: str = ""
    """The commit the rebuilder built (``source.commit``), where given."""
    provenance: str = ""
    """The sha256 of the provenance's envelope line it rebuilt from (``provenance.digest.sha256``), where given."""

    def verdict_for(self, name: str, sha256: str) -> str:
        """This subject's own verdict when the rebuilder compared it (by name and digest: two subjects may share a
        name), else the statement's."""
        status = next((s for n, sha, s in self.statuses if n == name and sha in ("", sha256)), None)
        if status is None:
            return self.verdict
        return "REPRODUCIBLE" if status == "match" else "NOT_REPRODUCIBLE"


def read_reproduction(predicate: Mapping[str, Any]) -> _Reproduction:
    when = next((t for k in ("timeReproduced", "timeVerified", "finishedOn", "time")
                 if (t := _time(predicate.get(k))) is not None), None)
    commit, provenance = _rebuilt_from(predicate)
    return _Reproduction(verdict=_verdict(predicate), time=when, statuses=_statuses(predicate), commit=commit,
                         provenance=provenance)


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


def _statuses(predicate: Mapping[str, Any]) -> tuple[tuple[str, str, str], ...]:
    """(name, expected sha256 or "", status) of each subject in a reproduction's ``results``
    (docs/reproducibility.md), if any."""
    results = predicate.get("results")
    if not isinstance(results, list):
        return ()
    return tuple((_text(r.get("name")), _sha256_of(r.get("expected")), _text(r.get("status")).lower())
                 for r in results if isinstance(r, dict) and _text(r.get("name")) and _text(r.get("status")))


def _sha256_of(digests: Any) -> str:
    """The sha256 a digest set names, in lower case ("" if none)."""
    value = digests.get("sha256") if isinstance(digests, dict) else None
    return value.lower() if isinstance(value, str) and _SHA256.fullmatch(value.lower()) else ""


def _rebuilt_from(predicate: Mapping[str, Any]) -> tuple[str, str]:
    """(commit, provenance line sha256) a reproduction says it rebuilt, each "" where not given."""
    source, provenance = predicate.get("source"), predicate.get("provenance")
    commit = _text(source.get("commit")).lower() if isinstance(source, dict) else ""
    return commit, _sha256_of(provenance.get("digest")) if isinstance(provenance, dict) else ""
