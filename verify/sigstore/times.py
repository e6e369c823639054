"""When a keyless bundle was signed, as a signature vouches for it, and the windows keys are trusted in.

Only a time that a signature covers is a time (issue 23, class 2): an RFC 3161 timestamp verified against
a timestamp authority of the trusted root, or the integrated time a log's inclusion promise signs. A
bundle's ``integratedTime`` that nothing signs is never a :class:`SignedTime`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from verify.formats.encoding import format_time

__all__ = ["PROMISE", "TIMESTAMP", "SignedTime", "Window", "inside", "show", "show_times"]

PROMISE = "the log's inclusion promise"
TIMESTAMP = "an RFC 3161 timestamp"

Window = tuple[datetime, datetime | None]
"""When a key or authority of the trusted root may be relied on: from, and to (None: still)."""


@dataclass(frozen=True)
class SignedTime:
    at: datetime
    by: str
    """What vouches for it: :data:`TIMESTAMP` or :data:`PROMISE`."""


def inside(when: datetime, window: Window) -> bool:
    start, end = window
    return start <= when and (end is None or when <= end)


def show(window: Window) -> str:
    start, end = window
    return f"from {format_time(start)}" + (f" to {format_time(end)}" if end is not None else "")


def show_times(times: Sequence[SignedTime]) -> str:
    return " and ".join(format_time(t.at) for t in times)
