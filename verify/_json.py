"""Strict JSON for evidence: no duplicate keys, no NaN/Infinity, bounded depth and size."""

from __future__ import annotations

import json
from typing import Any

from verify.errors import LimitExceeded, MalformedEvidence
from verify.limits import MAX_JSON_DEPTH


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise MalformedEvidence(f"duplicate JSON key {key!r}: two parsers could disagree on its value")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise MalformedEvidence(f"JSON constant {name} is not allowed in evidence")


def _depth(text: str | bytes) -> int:
    deepest = depth = 0
    in_string = escaped = False
    for ch in text if isinstance(text, str) else text.decode("utf-8", "replace"):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                return deepest
        elif ch in "]}":
            depth -= 1
    return deepest


def loads(data: str | bytes, *, what: str) -> Any:
    """Parse ``data`` as strict JSON, raising :class:`MalformedEvidence` naming ``what`` on failure."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise MalformedEvidence(f"{what} is not UTF-8 text (byte {e.start})") from e
    if _depth(data) > MAX_JSON_DEPTH:
        raise LimitExceeded(f"{what} nests JSON deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except json.JSONDecodeError as e:
        raise MalformedEvidence(f"{what} is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from e
    except RecursionError as e:
        raise LimitExceeded(f"{what} nests JSON too deeply") from e


def dumps_canonical(value: Any) -> bytes:
    """Compact, key-sorted UTF-8 JSON: the form attest signs and hashes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
