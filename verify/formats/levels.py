"""SLSA levels: what a verifier may claim in a VSA's ``verifiedLevels``, and only what trust supports.

A level is ``SLSA_<TRACK>_LEVEL_<N>``. attest verifies the build track only: the level of a
provenance is the level the policy trusts its builder for (``provenance.builders``, a bare id
meaning level 1), never what a flag or the provenance says. The VSA spec allows one level per
track ("each level implies all levels below it"); two are ambiguous, and refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from verify.errors import MalformedEvidence, RequestError

__all__ = ["BUILD_LEVELS", "build_level", "level_name", "requested_build_level"]

#: The build-track levels of SLSA v1.0 (0: no guarantees; 1: provenance exists; 2: hosted and signed;
#: 3: hardened builder).
BUILD_LEVELS = range(0, 4)
_LEVEL = re.compile(r"SLSA_([A-Z]+)_LEVEL_(\d)")


def level_name(level: int) -> str:
    """``SLSA_BUILD_LEVEL_<level>``, the name a VSA gives a build-track level."""
    return f"SLSA_BUILD_LEVEL_{level}"


def requested_build_level(levels: Iterable[str]) -> int:
    """The build level ``--verified-level`` asks the gate to require (0: none asked).

    :class:`RequestError` for a level that is not a SLSA build level attest can verify, or for two
    build levels: a VSA holds at most one level per track.
    """
    asked: list[int] = []
    for text in levels:
        match = _LEVEL.fullmatch(text.strip())
        if match is None or match.group(1) != "BUILD" or int(match.group(2)) not in BUILD_LEVELS:
            known = ", ".join(level_name(n) for n in BUILD_LEVELS)
            raise RequestError(f"--verified-level {text!r} is not a SLSA build level attest verifies ({known}); "
                               "the level a VSA states comes from the builder's trust in the policy")
        asked.append(int(match.group(2)))
    if len(asked) > 1:
        raise RequestError(f"--verified-level is given {len(asked)} times; a VSA states at most one level of the "
                           "build track (each level implies those below it), so give the one to require")
    return asked[0] if asked else 0


def build_level(levels: Iterable[str], *, what: str) -> int | None:
    """The build-track level among a VSA's ``verifiedLevels`` (None: it states none).

    :class:`MalformedEvidence` when it states two levels of one SLSA track: which one it meant is
    not for the reader to guess. Levels of other tracks and other names are kept, not read.
    """
    found: dict[str, str] = {}
    for text in levels:
        match = _LEVEL.fullmatch(text)
        if match is None:
            continue
        track = match.group(1)
        if track in found and found[track] != text:
            raise MalformedEvidence(f"{what} states two levels of the {track.lower()} track ({found[track]} and "
                                    f"{text}); a VSA states at most one level per track")
        found[track] = text
    build = found.get("BUILD")
    return None if build is None else int(build.rsplit("_", 1)[1])
