"""Strict JSON for evidence: one meaning for every document, or a rejection.

Refused, each with a one-sentence :class:`MalformedEvidence` (or :class:`LimitExceeded`):

* duplicate keys in any object (two parsers could read two different values);
* ``NaN``, ``Infinity`` and ``-Infinity``, and numbers that overflow to infinity (``1e999999``);
* integers longer than :data:`~verify.limits.MAX_JSON_INTEGER_DIGITS` digits (refused before
  Python converts them, which for 10**6 digits is slow or a ``ValueError``);
* text that is not UTF-8, a byte order mark, and unpaired UTF-16 surrogate escapes (``"\\ud800"``),
  which no UTF-8 output can carry;
* nesting deeper than :data:`~verify.limits.MAX_JSON_DEPTH`, found by a scan of the bytes before
  any parsing.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from verify.errors import InputError, LimitExceeded, MalformedEvidence
from verify.formats.encoding import printable
from verify.limits import MAX_JSON_DEPTH, MAX_JSON_INTEGER_DIGITS

__all__ = ["dumps_canonical", "loads", "too_deep"]

#: Bytes deleted before the depth scan: everything but brackets.
_NOT_BRACKETS = bytes(range(256)).translate(None, b"[]{}")
#: Both kinds of bracket counted alike: a mismatch is a syntax error the parser reports.
_ONE_KIND = bytes.maketrans(b"[]{}", b"()()")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise MalformedEvidence(f"duplicate JSON key {key!r}: two parsers could disagree on its value")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise MalformedEvidence(f"JSON constant {name} is not allowed in evidence")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise MalformedEvidence(f"JSON number {text[:20]}{'...' if len(text) > 20 else ''} is out of range")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_JSON_INTEGER_DIGITS:
        raise MalformedEvidence(f"JSON integer of {len(text.lstrip('-'))} digits is too large; at most "
                                f"{MAX_JSON_INTEGER_DIGITS} digits are read")
    return int(text)


#: The strict decoder, made once (``json.loads`` with hooks makes one per call).
_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constants,
                            parse_float=_finite_float, parse_int=_bounded_int)


def too_deep(data: bytes) -> bool:
    """True if the JSON text ``data`` nests arrays and objects deeper than :data:`MAX_JSON_DEPTH`.

    Works on the bytes with C-speed operations only (no Python loop per byte): escaped
    backslashes and quotes are dropped, then strings, then everything but brackets; then each
    pass removes every innermost ``()`` pair, so after ``MAX_JSON_DEPTH`` passes a remaining pair
    is deeper than the limit. Unbalanced text is left to the parser, which refuses it.
    """
    if data.count(b"[") + data.count(b"{") <= MAX_JSON_DEPTH:  # most documents: too few brackets, even in strings
        return False
    text = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    text = b"".join(text.split(b'"')[::2])  # outside strings: the even-numbered parts
    text = text.translate(_ONE_KIND, _NOT_BRACKETS)
    if len(text) <= MAX_JSON_DEPTH:  # most documents: too few brackets to be too deep
        return False
    run = b"(" * (MAX_JSON_DEPTH + 1)
    for _ in range(MAX_JSON_DEPTH):
        if run in text:
            return True
        shorter = text.replace(b"()", b"")
        if len(shorter) == len(text):
            break
        text = shorter
    return b"()" in text or run in text


def loads(data: str | bytes, *, what: str) -> Any:
    """Parse ``data`` as strict JSON, raising :class:`MalformedEvidence` naming ``what`` on failure."""
    if isinstance(data, bytes):
        raw = data
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise MalformedEvidence(f"{what} is not UTF-8 text (byte {e.start})") from e
    else:
        raw = data.encode("utf-8", "surrogatepass")
    if too_deep(raw):
        raise LimitExceeded(f"{what} nests JSON deeper than {MAX_JSON_DEPTH} levels")
    try:
        if data.startswith("\ufeff"):  # (as json.loads says it)
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", data, 0)
        value = _DECODER.decode(data)
    except json.JSONDecodeError as e:
        raise MalformedEvidence(f"{what} is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from e
    except RecursionError as e:
        raise LimitExceeded(f"{what} nests JSON too deeply") from e
    if _SURROGATE_ESCAPE.search(data):
        try:  # the C encoder is exact about escapes (a "\\\\ud800" is no surrogate) and fast
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as e:
            raise MalformedEvidence(f"{what} holds an unpaired UTF-16 surrogate escape, which is not "
                                    "text") from e
    return value


def dumps_canonical(value: Any) -> bytes:
    """Compact, key-sorted UTF-8 JSON: the form attest signs and hashes.

    Text that is not UTF-8 (a file name of other bytes, as the OS hands it over) cannot be signed as
    JSON: :class:`InputError`, naming it, rather than a guess at what the bytes meant.
    """
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        around = printable(text[max(e.start - 40, 0):e.end + 40])
        raise InputError(f"cannot write text that is not UTF-8 (near ...{around}...), most likely a file name; "
                         "rename the file") from e
