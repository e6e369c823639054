"""Deployment records (``https://attest.dev/deployment/v1``, docs/predicates.md): an environment's signed word
that it deployed one component of a release, or tried to and failed.

The subjects are the component's artefacts, named and digested as the release manifest names them; the
predicate names the environment, the release (its name and the sha256 of the manifest's envelope line),
the component, the status, the time, the kind of deployment, and optionally the pipeline run and the
record it replaces. :func:`read_deployment` reads every field strictly; like the other readers of
:mod:`verify.formats.statement`, it ignores predicate fields it does not know.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from verify.errors import MalformedEvidence, UnknownEvidence
from verify.formats.encoding import parse_time
from verify.formats.statement import DEPLOYMENT_V1, Statement, Subject

__all__ = ["DEPLOYMENT_KINDS", "DEPLOYMENT_STATUSES", "DEPLOYMENT_V1", "Deployment", "Invocation", "filing_time",
           "read_deployment"]

Status = Literal["succeeded", "failed"]
Kind = Literal["deploy", "rollback", "hotfix"]
#: The statuses a deployment record may have, and the kinds of deployment, each as written.
DEPLOYMENT_STATUSES: Mapping[str, Status] = {"succeeded": "succeeded", "failed": "failed"}
DEPLOYMENT_KINDS: Mapping[str, Kind] = {"deploy": "deploy", "rollback": "rollback", "hotfix": "hotfix"}

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Invocation:
    """The pipeline run that deployed: the platform (``codepipeline``, ``codebuild``, ``github-actions``,
    ``gitlab-ci``) and the run's id there (an execution id, a build ARN, a run URL)."""

    platform: str
    id: str


@dataclass(frozen=True)
class Deployment:
    """A deployment record (``https://attest.dev/deployment/v1``), as read; nothing here is trusted yet."""

    environment: str
    release: str
    """The release's name, as its manifest gives it."""
    release_sha256: str
    """sha256 of the release manifest's envelope line (as a VSA's inputAttestations names an attestation)."""
    component: str
    status: Status
    time: datetime
    """timeDeployed: when the environment recorded the deployment."""
    kind: Kind
    artifacts: tuple[Subject, ...]
    """The statement's subjects: the component's artefacts, each with a sha256."""
    invocation: Invocation | None = None
    replaces: str | None = None
    """sha256 of the deployment record this one replaces (its envelope line), if it names one."""
    commit: str | None = None
    """The component's commit, as the release manifest gives it (what runs, for a reader of the record)."""


def filing_time(time: datetime) -> str:
    """``time`` (UTC) as a store files deployment records by it: fixed width, to the microsecond, so that the
    names sort as the times do (``20261206T140312000000Z``)."""
    return time.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def read_deployment(statement: Statement) -> Deployment:
    """The deployment view of ``statement``: every field of the predicate checked (docs/predicates.md), and every
    subject an artefact with a sha256 of 64 hex digits; :class:`MalformedEvidence` naming what is missing or
    wrong otherwise, :class:`UnknownEvidence` if it is not a deployment record at all."""
    if statement.predicate_type != DEPLOYMENT_V1:
        raise UnknownEvidence(f"predicate type {statement.predicate_type!r} is not a deployment record "
                              f"({DEPLOYMENT_V1})")
    pred = statement.predicate
    environment = _name(pred.get("environment"), "environment")
    what = f"the deployment record for {environment!r}"
    release, release_sha256 = _release(pred.get("release"), what)
    return Deployment(
        environment=environment, release=release, release_sha256=release_sha256,
        component=_name(pred.get("component"), "component", what),
        status=_choice(pred.get("status"), DEPLOYMENT_STATUSES, "status", what),
        time=_time(pred.get("timeDeployed"), what),
        kind=_choice(pred.get("kind"), DEPLOYMENT_KINDS, "kind", what),
        artifacts=_artifacts(statement, what),
        invocation=_invocation(pred.get("invocation"), what),
        replaces=_replaces(pred.get("replaces"), what),
        commit=_commit(pred.get("commit"), what))


def _name(value: Any, field: str, what: str = "the deployment record") -> str:
    """A required, non-empty string."""
    if not isinstance(value, str) or not value:
        raise MalformedEvidence(f"{what} names no {field} (a non-empty string)")
    return value


def _shown(value: Any) -> str:
    """``value`` as JSON-ish text for a message, cut short: evidence may quote anything."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _sha256(value: Any) -> str | None:
    """``value`` if it is 64 lower-case hex digits, else None."""
    return value if isinstance(value, str) and _SHA256.fullmatch(value) else None


def _release(value: Any, what: str) -> tuple[str, str]:
    """``release``: ``{"name": ..., "digest": {"sha256": <64 hex digits>}}``."""
    if not isinstance(value, dict):
        raise MalformedEvidence(f"{what} names no release (an object with a name and a digest)")
    name = _name(value.get("name"), "release name", what)
    digest = value.get("digest")
    sha = _sha256(digest.get("sha256") if isinstance(digest, dict) else None)
    if sha is None:
        raise MalformedEvidence(f"{what} names release {name!r} without a digest.sha256 of 64 lower-case hex digits")
    return name, sha


def _choice(value: Any, known: Mapping[str, Any], field: str, what: str) -> Any:
    """One of the ``known`` values, exactly as written."""
    if not isinstance(value, str) or value not in known:
        raise MalformedEvidence(f"{what} has {field} {_shown(value)}; expected one of {', '.join(known)}")
    return known[value]


def _time(value: Any, what: str) -> datetime:
    """``timeDeployed``: required, an RFC 3339 time read by the one time reader."""
    if value is None:
        raise MalformedEvidence(f"{what} has no timeDeployed")
    return parse_time(value, what=f"{what} timeDeployed")


def _artifacts(statement: Statement, what: str) -> tuple[Subject, ...]:
    """The subjects, each named and with a sha256 (a store files the record under it)."""
    for subject in statement.subjects:
        if not subject.name or _sha256(subject.digest.get("sha256")) is None:
            raise MalformedEvidence(f"{what} has a subject without a name and a sha256 of 64 hex digits")
    return statement.subjects


def _invocation(value: Any, what: str) -> Invocation | None:
    """``invocation``: absent (or null), or ``{"platform": ..., "id": ...}``, both non-empty strings."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise MalformedEvidence(f"{what} has an invocation that is not an object with a platform and an id")
    return Invocation(platform=_name(value.get("platform"), "invocation platform", what),
                      id=_name(value.get("id"), "invocation id", what))


def _replaces(value: Any, what: str) -> str | None:
    """``replaces``: absent (or null), or the sha256 of the record replaced."""
    if value is None:
        return None
    sha = _sha256(value)
    if sha is None:
        raise MalformedEvidence(f"{what} has replaces {_shown(value)}, which is not a sha256 of 64 lower-case hex "
                                "digits")
    return sha


def _commit(value: Any, what: str) -> str | None:
    """``commit``: absent (or null), or a non-empty string (as the release manifest gives it)."""
    if value is None:
        return None
    return _name(value, "commit", what)
