"""Statements attest signs after the build: verification summaries (VSA), approvals, release manifests.

* VSA: SLSA Verification Summary v1, https://slsa.dev/spec/v1.0/verification_summary
* approval: ``https://attest.dev/approval/v1`` (docs/predicates.md)
* release: ``https://attest.dev/release/v1`` (docs/predicates.md)
* deployment: ``https://attest.dev/deployment/v1`` (docs/predicates.md)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from verify.formats.statement import APPROVAL_V1, DEPLOYMENT_V1, RELEASE_V1, STATEMENT_V1, VSA_V1

__all__ = ["Component", "approval_statement", "deployment_statement", "release_statement", "stage_uri",
           "vsa_statement"]


def stage_uri(stage: str) -> str:
    """The resourceUri naming a stage when no pipeline ARN is given."""
    return f"attest:stage:{stage}"


def _time(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _subject(name: str, digests: Mapping[str, str]) -> dict[str, Any]:
    return {"name": name, "digest": dict(digests)}


def release_subject(name: str, manifest_sha256: str) -> tuple[str, dict[str, str]]:
    """How a statement about a whole release names it: ``release:NAME`` and the sha256 of the manifest's
    envelope line (as ``inputAttestations`` name an attestation)."""
    return f"release:{name}", {"sha256": manifest_sha256}


def vsa_statement(*, subject_name: str, digests: Mapping[str, str], verifier_id: str, resource_uri: str,
                  policy_uri: str, policy_digest: str, inputs: Sequence[tuple[str, str]],
                  levels: Sequence[str], verified_at: datetime, attest_version: str = "",
                  result: str = "PASSED",
                  more_subjects: Sequence[tuple[str, Mapping[str, str]]] = ()) -> dict[str, Any]:
    """A VSA saying ``verifier_id`` verified the artefact with ``digests`` (and ``more_subjects``, for a
    release: the manifest first, then every component artefact) for ``resource_uri``.

    ``inputs`` are (uri, sha256) of the attestations the verification accepted.
    """
    verifier: dict[str, Any] = {"id": verifier_id}
    if attest_version:
        verifier["version"] = {"attest": attest_version}
    policy: dict[str, Any] = {"uri": policy_uri}
    if policy_digest:
        policy["digest"] = {"sha256": policy_digest}
    return {
        "_type": STATEMENT_V1,
        "subject": [_subject(subject_name, digests), *(_subject(n, d) for n, d in more_subjects)],
        "predicateType": VSA_V1,
        "predicate": {
            "verifier": verifier,
            "timeVerified": _time(verified_at),
            "resourceUri": resource_uri,
            "policy": policy,
            "inputAttestations": [{"uri": uri, "digest": {"sha256": sha}} for uri, sha in inputs],
            "verificationResult": result,
            "verifiedLevels": list(levels),
            "slsaVersion": "1.0",
        },
    }


def approval_statement(*, subject_name: str, digests: Mapping[str, str], stage: str, approver: str,
                       reason: str, approved_at: datetime, hotfix: bool = False) -> dict[str, Any]:
    """A person's signed "this artefact may go to ``stage``" (with ``hotfix``: "this release may go to ``stage``
    as a hotfix"; written only when true)."""
    predicate: dict[str, Any] = {"stage": stage, "approver": approver, "reason": reason,
                                 "timeApproved": _time(approved_at)}
    if hotfix:
        predicate["hotfix"] = True
    return {
        "_type": STATEMENT_V1,
        "subject": [_subject(subject_name, digests)],
        "predicateType": APPROVAL_V1,
        "predicate": predicate,
    }


@dataclass(frozen=True)
class Component:
    name: str
    subjects: Sequence[tuple[str, Mapping[str, str]]]
    provenance_sha256: str
    source: str | None
    commit: str | None
    needs: Sequence[str] = ()
    """The components deployed before this one (written sorted, and only when there is one)."""


def _release_component(c: Component) -> dict[str, Any]:
    component: dict[str, Any] = {
        "name": c.name,
        "artifacts": [_subject(n, d) for n, d in c.subjects],
        "provenance": {"digest": {"sha256": c.provenance_sha256}},
        "source": c.source,
        "commit": c.commit,
    }
    if c.needs:
        component["needs"] = sorted(c.needs)
    return component


def release_statement(*, name: str, components: Sequence[Component], created_at: datetime) -> dict[str, Any]:
    """A release manifest binding several stacks' artefacts and provenances into one signed unit, with the
    order they are deployed in (each component's ``needs``; attest release create checks it before signing)."""
    return {
        "_type": STATEMENT_V1,
        "subject": [_subject(n, d) for c in components for n, d in c.subjects],
        "predicateType": RELEASE_V1,
        "predicate": {
            "name": name,
            "timeCreated": _time(created_at),
            "components": [_release_component(c) for c in components],
        },
    }


def deployment_statement(*, environment: str, release_name: str, release_sha256: str, component: str,
                         artifacts: Sequence[tuple[str, Mapping[str, str]]], status: str, kind: str,
                         deployed_at: datetime, invocation: tuple[str, str] | None = None,
                         replaces: str | None = None, commit: str | None = None) -> dict[str, Any]:
    """An environment's signed word that it deployed ``component`` of a release (``status`` succeeded), or tried
    to (failed). ``artifacts`` are the component's (name, digests) as the manifest gives them; ``release_sha256``
    is the sha256 of the manifest's envelope line; ``invocation`` is (platform, run id) when known; ``replaces``
    is the sha256 of the record this one replaces; ``commit`` the component's commit as the manifest gives it.
    Absent optional fields are left out."""
    predicate: dict[str, Any] = {
        "environment": environment,
        "release": {"name": release_name, "digest": {"sha256": release_sha256}},
        "component": component,
        "status": status,
        "timeDeployed": deployed_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),  # to the microsecond
        "kind": kind,
    }
    if invocation is not None:
        predicate["invocation"] = {"platform": invocation[0], "id": invocation[1]}
    if replaces is not None:
        predicate["replaces"] = replaces
    if commit is not None:
        predicate["commit"] = commit
    return {
        "_type": STATEMENT_V1,
        "subject": [_subject(n, d) for n, d in artifacts],
        "predicateType": DEPLOYMENT_V1,
        "predicate": predicate,
    }
