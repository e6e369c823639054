"""What ``attest verify`` does around the core verification: stage gates, VSA emission, release manifests."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from verify.errors import EvidenceRejected, MalformedEvidence, PolicyViolation
from verify.evidence import Evidence
from verify.policy import Policy, StageRule, VsaRequirement
from verify.stages import StageEvidence, check_stage
from verify.trust import Identity
from verify.verifier import Verdict

BundleVerifier = Callable[[Evidence, Sequence[Identity]], Identity]


def stage_rule(policy: Policy, stage: str | None, require_vsa: Sequence[str],
               vsa_identity: Identity | None) -> tuple[Policy, StageRule | None]:
    """The rule for ``stage``: the policy's, plus ``--require-vsa`` flags (signed by ``--vsa-key``)."""
    rule = policy.stages.get(stage) if stage else None
    if not require_vsa:
        return policy, rule
    if vsa_identity is None:
        import click

        raise click.UsageError("--require-vsa needs --vsa-key PEM (the key of the stage whose VSA is required) "
                               "or a policy whose stages name their verifiers")
    identities = {**policy.identities, vsa_identity.name: vsa_identity}
    stages = dict(policy.stages)
    extra = tuple(VsaRequirement(stage=s, signed_by=(vsa_identity.name,)) for s in require_vsa)
    for s in require_vsa:
        stages.setdefault(s, StageRule(name=s, verifier=vsa_identity.name))
    name = stage or "this stage"
    rule = StageRule(name=name) if rule is None else rule
    rule = replace(rule, require_vsa=(*rule.require_vsa, *extra))
    stages[name] = rule
    return replace(policy, identities=identities, stages=stages), rule


def check_gate(verdict: Verdict, *, policy: Policy, rule: StageRule | None,
               evidence: Sequence[Evidence | MalformedEvidence],
               bundle_verifier: BundleVerifier | None = None) -> list[StageEvidence]:
    """Stage requirements (earlier stages' VSAs, approvals) for the artefact ``verdict`` verified."""
    if rule is None:
        return []
    digests = {**verdict.subject.digest, **verdict.digests}
    not_before = verdict.provenance.finished_on if verdict.provenance else None
    return check_stage(rule, policy=policy, evidence=evidence, digests=digests, not_before=not_before,
                       bundle_verifier=bundle_verifier)


def emit_vsa(verdict: Verdict, *, policy: Policy, stage: str, resource_uri: str | None, signer_uri: str,
             insecure_key_permissions: bool, output: Path, store: str | None, verifier_id: str | None,
             levels: Sequence[str], inputs: Sequence[Evidence]) -> list[str]:
    """Sign and write a VSA for the artefact ``verdict`` verified (only ever called after a pass)."""
    from importlib.metadata import version

    from attest.cli._signing import sign_statement, write_and_publish
    from attest.collect import detect_platform
    from attest.summaries import stage_uri, vsa_statement

    platform = detect_platform(os.environ)
    document = vsa_statement(
        subject_name=verdict.subject.name, digests={**verdict.subject.digest, **verdict.digests},
        verifier_id=verifier_id or platform.builder_id or "attest:verifier:local",
        resource_uri=resource_uri or stage_uri(stage), policy_uri=policy.uri, policy_digest=policy.digest,
        inputs=[(e.source, e.digest) for e in inputs], levels=levels, verified_at=datetime.now(UTC),
        attest_version=version("attest"))
    line = sign_statement(document, signer_uri=signer_uri, insecure_key_permissions=insecure_key_permissions)
    sha256 = verdict.subject.digest.get("sha256") or verdict.digests.get("sha256")
    return write_and_publish(line, output=output, store=store, kind="vsa", digests=[sha256] if sha256 else [])


def verify_release(manifest: Path, *, policy: Policy, store: str | None, same_commit: bool,
                   bundle_verifier: BundleVerifier | None = None) -> dict[str, Any]:
    """Verify a release manifest and every component's provenance, all or nothing."""
    from verify.evidence import load_evidence, read_evidence_file
    from verify.statement import RELEASE_V1
    from verify.verifier import verify_artifact

    release_policy = policy.with_rules(predicate_type=RELEASE_V1)
    evidence = load_evidence(read_evidence_file(manifest), source=str(manifest))
    first = next((e for e in evidence if isinstance(e, Evidence)), None)
    subject_digests = _first_subject(first)
    verdict = verify_artifact(str(manifest), evidence, policy=release_policy, digests=lambda: subject_digests,
                              bundle_verifier=bundle_verifier)
    if verdict.statement is None:
        raise MalformedEvidence(f"release manifest {manifest} is a bare signature, not a release statement")
    manifest_statement = verdict.statement
    components = manifest_statement.predicate.get("components")
    if not isinstance(components, list) or not components:
        raise MalformedEvidence(f"release manifest {manifest} names no components")
    if store is None:
        import click

        raise click.UsageError("--release needs --store STORE to find each component's provenance")
    from attest.stores import from_uri

    target = from_uri(store)
    results = []
    commits = set()
    for component in components:
        label = component.get("name") if isinstance(component, dict) else None
        wanted = ((component.get("provenance") or {}).get("digest") or {}).get("sha256") \
            if isinstance(component, dict) else None
        artifacts = component.get("artifacts") if isinstance(component, dict) else None
        if not (isinstance(label, str) and isinstance(wanted, str) and isinstance(artifacts, list) and artifacts):
            raise MalformedEvidence(f"release manifest {manifest} has a malformed component")
        for artifact in artifacts:
            digests = artifact.get("digest") if isinstance(artifact, dict) else None
            if not isinstance(digests, dict) or "sha256" not in digests:
                raise MalformedEvidence(f"release manifest {manifest}: component {label} has an artefact "
                                        "without a sha256")
            found = []
            for uri, data in target.attestations(digests["sha256"]):
                found.extend(load_evidence(data, source=uri))
            candidates = [e for e in found if isinstance(e, Evidence) and e.digest == wanted]
            if not candidates:
                raise PolicyViolation(f"component {label}: the provenance the release names "
                                      f"(sha256:{wanted[:16]}...) is not in {store}")
            try:
                component_verdict = verify_artifact(str(artifact.get("name", "")), candidates, policy=policy,
                                                    digests=_fixed(digests), bundle_verifier=bundle_verifier)
            except EvidenceRejected as e:
                raise type(e)(f"component {label}: {e}", checks=e.checks) from e
            commit = component_verdict.provenance.commit if component_verdict.provenance else None
            commits.add(commit)
            results.append({"component": label, "artifact": artifact.get("name"), "commit": commit})
    if same_commit and len(commits) != 1:
        raise PolicyViolation(f"release {manifest}: components come from {len(commits)} commits "
                              f"({', '.join(sorted(c or '?' for c in commits))}); --same-commit requires one")
    return {"verified": True, "release": manifest_statement.predicate.get("name"), "signer": verdict.signer,
            "components": results}


def _fixed(digests: dict[str, str]) -> Callable[[], dict[str, str]]:
    """Digests known in advance (from a signed manifest), as the verifier's digest callback."""
    return lambda: dict(digests)


def _first_subject(evidence: Evidence | None) -> dict[str, str]:
    from verify.verifier import peek_statement

    statement = peek_statement(evidence) if evidence is not None else None
    if statement is None:
        raise MalformedEvidence("the release manifest holds no readable statement")
    return dict(statement.subjects[0].digest)
