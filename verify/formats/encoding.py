"""The one reader of each textual encoding evidence uses: base64, RFC 3339 times, and safe display.

Every module that reads base64 or a time from evidence calls these, so that one spelling has one
meaning everywhere (verify, stages, audit, Sigstore bundles) and a bad value is refused the same
way: with :class:`~verify.errors.MalformedEvidence` naming what was being read.
"""

from __future__ import annotations

import binascii
import re
from datetime import UTC, datetime

from verify.errors import MalformedEvidence

__all__ = ["b64decode", "base64_problem", "format_time", "parse_time", "printable", "time_problem"]

_B64 = re.compile(r"[A-Za-z0-9+/\-_]*={0,2}")
#: RFC 3339 date-time (section 5.6): a full date, a time with seconds, an optional fraction, a zone.
_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})")


def b64decode(value: object, *, what: str) -> bytes:
    """Decode standard or URL-safe base64 (DSSE and protobuf JSON allow either), strictly.

    One spelling per byte string: one alphabet (not ``+`` and ``_`` mixed), padding either
    absent or exactly right, no whitespace, and no stray bits in the last character.
    """
    if not isinstance(value, str):
        raise MalformedEvidence(f"{what} is not base64 text")
    url_safe = "-" in value or "_" in value
    if url_safe and ("+" in value or "/" in value):
        raise _refused(value, what, "mixes the standard and URL-safe base64 alphabets")
    text = value.replace("-", "+").replace("_", "/") if url_safe else value
    if "=" in text and len(text) % 4:
        raise _refused(value, what, "is not canonical base64 (wrong padding)")
    text += "=" * (-len(text) % 4)
    try:  # strict: only the alphabet, padding only at the end
        decoded = binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError) as e:
        raise _refused(value, what, f"is not valid base64 ({e})") from e
    # Refuse non-canonical encodings (stray bits in the last character, padding beyond what the length needs): the
    # same bytes must have one spelling, or two tools could disagree on what was signed.
    if binascii.b2a_base64(decoded, newline=False) != text.encode("ascii"):
        raise _refused(value, what, "is not canonical base64")
    return decoded


def _refused(value: str, what: str, why: str) -> MalformedEvidence:
    """Why ``value`` is refused: first whether it is base64 text at all (the alphabets, at most two ``=`` at the
    end), then ``why``."""
    return MalformedEvidence(f"{what} {why}" if _B64.fullmatch(value) else f"{what} is not base64 text")


def parse_time(value: object, *, what: str) -> datetime:
    """An RFC 3339 date-time with a zone, as an aware UTC datetime.

    Refused: anything but a string, dates without a time, times without a zone (which zone would
    be a guess), ISO 8601 forms RFC 3339 does not allow (week dates, basic format), impossible
    dates, and times whose UTC value falls outside years 1 to 9999 (``0001-01-01T00:00:00+01:00``).
    Fractions finer than microseconds are truncated.
    """
    if not isinstance(value, str):
        raise MalformedEvidence(f"{what} is not an RFC 3339 time string")
    match = _RFC3339.fullmatch(value)
    if match is None:
        shown = value if len(value) <= 40 else value[:37] + "..."
        raise MalformedEvidence(f"{what} {shown!r} is not an RFC 3339 time such as 2026-01-31T00:00:00Z")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    text = f"{year}-{month}-{day}T{hour}:{minute}:{second}"
    if fraction:
        text += "." + fraction[:6].ljust(6, "0")
    text += "+00:00" if zone in ("Z", "z") else zone
    try:
        parsed = datetime.fromisoformat(text)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError) as e:
        raise MalformedEvidence(f"{what} {value!r} is not a valid time between years 1 and 9999 in UTC") from e


def base64_problem(value: object, where: str) -> str | None:
    """Why ``value`` is not base64 text (:func:`b64decode`'s sentence), or None: for schema walkers."""
    try:
        b64decode(value, what=where)
    except MalformedEvidence as e:
        return str(e)
    return None


def time_problem(value: object, where: str) -> str | None:
    """Why ``value`` is not an RFC 3339 time (:func:`parse_time`'s sentence), or None: for schema walkers."""
    try:
        parse_time(value, what=where)
    except MalformedEvidence as e:
        return str(e)
    return None


def format_time(at: datetime) -> str:
    """``at`` as RFC 3339 in UTC with a Z, to the second (what attest writes)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def printable(text: str) -> str:
    """``text`` with control, format and separator characters spelled as escapes.

    Evidence is hostile: a subject name may carry terminal escape sequences or right-to-left
    overrides meant to make a report lie. Everything that shows evidence text to a person
    (verify, inspect, audit) shows it through this function.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
                   for c in text)
