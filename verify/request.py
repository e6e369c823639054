"""The rules a caller asks a gate for, as given on a command line: the one request type that crosses from
attest/ to verify/ (no field is copied from one dataclass to another on the way).

Only the standard library is imported here, so that the command line can build its request before the
trust core is imported (the artefact's read starts first, and the trust core loads while it runs).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GateRules"]


@dataclass(frozen=True)
class GateRules:
    """The command line's rules, as given: None (or empty tuples) where a flag was not given. The same
    object crosses from the caller's request (:class:`attest.gate.GateRequest`) to :func:`prepare`.

    An empty string is a flag given with nothing after it (an unset pipeline variable, often): it is
    refused, never read as "no rule".
    """

    source_uri: str | None = None
    source_branch: str | None = None
    commit: str | None = None
    builder_id: str | None = None
    predicate_type: str | None = None
    stage: str | None = None
    require_vsa: tuple[str, ...] = ()
    verified_levels: tuple[str, ...] = ()
    """``--verified-level``: the SLSA build level the builder must be trusted for (one at most); a VSA states
    the level the policy trusts the builder for, never a level merely asked for."""
