"""The gate: may this artefact go on? One decision, made here, for ``attest verify`` and for Python callers.

Two steps, both pure (the artefact's bytes are read and the evidence is found by the caller):

  :func:`prepare`  the policy and the command-line flags become one :class:`Gate`: the rules that
                   apply, what the stage requires, and which stage's VSA may be signed. Flags only
                   ever NARROW a policy (intersection); without a policy they are the whole policy.
                   Nothing absent, empty or unknown weakens a rule: it is a :class:`RequestError`
                   (exit 2) or, for the policy itself, a :class:`PolicyError` (exit 3).
  :func:`decide`   the gate passes when some provenance candidate (:func:`verify.verifier.candidates`)
                   satisfies the rules AND every requirement of the stage (:func:`verify.stages.check_stage`)
                   together. Candidates are tried in an order fixed by their content, never by file
                   names; the verdict names the one that passed.

:func:`verify.release_gate.decide_release` is the same gate applied to every component of a signed release
manifest, all or nothing.

The table of flags, policy keys and how they combine is in docs/policy.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from verify.digests import DigestSet
from verify.errors import MalformedEvidence, PolicyError, PolicyViolation, RequestError
from verify.formats.evidence import Evidence
from verify.formats.levels import level_name, requested_build_level
from verify.formats.statement import (
    APPROVAL_V1,
    VSA_V1,
    Statement,
)
from verify.matching import intoto_statements
from verify.policy import (
    Policy,
    ProvenanceRules,
    SourceRule,
    StageRule,
    TrustedBuilder,
    VsaRequirement,
    check_repository,
)
from verify.request import GateRules
from verify.rules import applied_rules
from verify.signers import TrustRun
from verify.stages import Bound, StageEvidence, check_stage
from verify.trust import Identity, PublicKey
from verify.verifier import Candidate, Check, Verdict, candidates, digest_source

__all__ = ["Gate", "GateFlags", "GateVerdict", "approver", "decide", "prepare"]

_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
#: The name of the requirements given by --require-vsa without --stage.
THIS_GATE = "this gate"

Found = Sequence[Evidence | MalformedEvidence]


@dataclass(frozen=True)
class GateFlags:
    """What the command line gives :func:`prepare`: its rules as given, and the keys and switches read for them."""

    rules: GateRules = field(default_factory=GateRules)
    keys: tuple[PublicKey, ...] = ()
    keyless: Identity | None = None
    vsa_keys: tuple[PublicKey, ...] = ()
    emit_key: PublicKey | None = None
    """The public key of the signer of ``--emit-vsa``: it must be the stage verifier's."""
    emit_vsa: bool = False
    emit_resource_uri: str | None = None
    """``--resource-uri``: what the VSA signed names (default ``attest:stage:STAGE``)."""
    lockfiles: int = 0
    release: bool = False


@dataclass(frozen=True)
class Gate:
    """What one run checks: the rules (the policy narrowed by the flags) and the stage's requirements."""

    policy: Policy
    stage: StageRule | None
    """The requirements besides a provenance (earlier stages' VSAs, approvals); None: none."""
    emits: str | None = None
    """The stage whose VSA this run signs after a pass (its verifier's key was checked)."""

    @property
    def requires_stages(self) -> bool:
        return self.stage is not None and (bool(self.stage.require_vsa) or self.stage.require_approvals is not None)


# --- prepare: flags and policy -> one gate ------------------------------------------------------------------

def prepare(policy: Policy | None, flags: GateFlags) -> Gate:
    """The :class:`Gate` for ``policy`` (None: the flags are the whole policy) narrowed by ``flags``."""
    asked = flags.rules
    _refuse_empty(asked)
    commit = _full_commit(asked.commit)
    source = _flag_source(asked)
    if flags.release and flags.lockfiles:
        raise RequestError("--release verifies every component of a manifest; --lockfile applies to one artefact, "
                           "verify each component on its own for it")
    level = requested_build_level(asked.verified_levels)
    if policy is not None and policy.components and (asked.source_uri or asked.source_branch or asked.builder_id):
        raise RequestError("the policy's components give each component its own source and builders; "
                           "--source-uri, --source-branch and --builder-id would apply to all of them: put the rule "
                           "in the policy's components instead")
    if policy is None:
        return _ad_hoc(flags, source, commit, level)
    return _narrowed(policy, flags, source, commit, level)


def _refuse_empty(asked: GateRules) -> None:
    given = {"--source-uri": asked.source_uri, "--source-branch": asked.source_branch, "--commit": asked.commit,
             "--builder-id": asked.builder_id, "--predicate-type": asked.predicate_type, "--stage": asked.stage}
    for flag, value in given.items():
        if value is not None and not value.strip():
            raise RequestError(f"{flag} is empty (an unset pipeline variable?); give a value or leave the flag out, "
                               "an empty value never removes a rule")
    if any(not s.strip() for s in asked.verified_levels):
        raise RequestError("--verified-level is empty (an unset pipeline variable?); name the level to require, "
                           "e.g. SLSA_BUILD_LEVEL_3, or leave the flag out")
    if any(not s.strip() for s in asked.require_vsa):
        raise RequestError("--require-vsa is empty (an unset pipeline variable?); name the stage whose VSA is "
                           "required")


def _full_commit(commit: str | None) -> str | None:
    if commit is None:
        return None
    if not _COMMIT.fullmatch(commit.lower()):
        raise RequestError(f"--commit {commit!r} is not a full commit id (40 or 64 hex digits); a prefix can be "
                           "matched by another commit made to collide with it")
    return commit.lower()


def _flag_source(asked: GateRules) -> SourceRule:
    """--source-uri and --source-branch as a source rule; a URI that names no repository is a usage error."""
    if asked.source_uri is not None:
        try:
            check_repository(asked.source_uri, what="--source-uri")
        except PolicyError as e:
            raise RequestError(str(e)) from e
    try:
        return SourceRule(uri=asked.source_uri, branches=(asked.source_branch,) if asked.source_branch else ())
    except PolicyError as e:
        raise RequestError(f"--source-branch: {e}") from e


def _ad_hoc(flags: GateFlags, source: SourceRule, commit: str | None, level: int) -> Gate:
    """No policy: the flags are the whole policy (identities, rules and, with --require-vsa, a stage)."""
    asked = flags.rules
    identities = _flag_identities(flags)
    _refuse_without_policy(flags, level)
    rules = ProvenanceRules(
        signed_by=tuple(identities), source=source,
        builders=(TrustedBuilder(id=asked.builder_id),) if asked.builder_id else (), commit=commit,
        predicate_type=asked.predicate_type, min_level=level, check_parameters=False)
    if not asked.require_vsa:
        return Gate(policy=Policy(identities=identities, provenance=rules, stages={}), stage=None)
    verifier, stages, rule = _vsa_gate(flags)
    return Gate(policy=Policy(identities={**identities, verifier.name: verifier}, provenance=rules, stages=stages),
                stage=rule)


def _flag_identities(flags: GateFlags) -> dict[str, Identity]:
    """The identities --key and the keyless flags pin; at least one."""
    identities: dict[str, Identity] = {}
    if flags.keys:
        identities["--key"] = Identity(name="--key", keys=flags.keys)
    if flags.keyless is not None:
        identities[flags.keyless.name] = flags.keyless
    if not identities:
        raise RequestError("no trusted identity: pass --key PEM, --certificate-identity with "
                           "--certificate-oidc-issuer, --github-repo, or --policy FILE (verification without a "
                           "pinned identity is refused)")
    return identities


def _refuse_without_policy(flags: GateFlags, level: int) -> None:
    """The flags that need a policy to say what they mean are refused without one."""
    asked = flags.rules
    if flags.release:
        raise RequestError("--release needs --policy FILE naming who may sign release manifests (releases.signed-by)")
    if flags.emit_vsa:
        raise RequestError("--emit-vsa signs a VSA for a stage the policy names, with that stage's verifier key; "
                           "pass --policy FILE whose stages name their verifiers")
    if flags.vsa_keys and not asked.require_vsa:
        raise RequestError("--vsa-key goes with --require-vsa STAGE (the stage whose VSA that key signs)")
    if level > 1:
        raise RequestError(f"--verified-level {level_name(level)} needs --policy FILE listing the builders trusted "
                           "for that level (provenance.builders); flags alone trust a builder for level 1 at most")
    if asked.stage is not None and not asked.require_vsa:
        raise RequestError(f"--stage {asked.stage!r} names a stage of a policy, and there is no --policy; pass "
                           "--policy FILE, or say what this stage requires with --require-vsa STAGE --vsa-key PEM")


def _vsa_gate(flags: GateFlags) -> tuple[Identity, dict[str, StageRule], StageRule]:
    """--require-vsa without a policy: the --vsa-key identity, a stage for each required one, and this gate's."""
    asked = flags.rules
    if not flags.vsa_keys:
        raise RequestError("--require-vsa needs --vsa-key PEM (the key of the stage whose VSA is required) or a "
                           "policy whose stages name their verifiers")
    verifier = Identity(name="--vsa-key", keys=flags.vsa_keys)
    stages = {name: StageRule(name=name, verifier=verifier.name) for name in asked.require_vsa}
    rule = StageRule(name=asked.stage or THIS_GATE,
                     require_vsa=tuple(VsaRequirement(stage=s, signed_by=(verifier.name,)) for s in asked.require_vsa))
    stages.setdefault(rule.name, rule)
    return verifier, stages, rule


def _narrowed(policy: Policy, flags: GateFlags, source: SourceRule, commit: str | None, level: int) -> Gate:
    """The policy, narrowed by each flag given; a flag that would widen it, or that no provenance could
    satisfy together with it, is refused."""
    if flags.keyless is not None:
        raise RequestError(f"{flags.keyless.name} adds a trusted identity, and flags only narrow a policy; name "
                           "Sigstore identities in the policy's identities")
    if flags.vsa_keys:
        raise RequestError("--vsa-key is for a gate without a policy; the policy names each stage's verifier")
    identities = dict(policy.identities)
    prov = policy.provenance
    if flags.keys:
        identities, signed_by = _narrow_keys(policy, flags.keys)
        prov = replace(prov, signed_by=signed_by)
    rule = _stage_rule(policy, flags.rules)
    if rule is not None and rule.require_deployed and not flags.release:
        raise RequestError(f"stage {rule.name!r} requires what runs in {' and '.join(rule.require_deployed)} "
                           "(require-deployed), which a deployment record says of a release's component, not of "
                           "one artefact; verify it with --release MANIFEST --component NAME")
    prov = replace(prov, source=_narrow_source(prov.source, source), builders=_narrow_builders(prov, flags.rules),
                   commit=commit, predicate_type=_narrow_predicate_type(prov, flags.rules),
                   min_level=max(prov.min_level, level, rule.min_level if rule is not None else 0))
    narrowed = replace(policy, identities=identities, provenance=prov)
    if flags.release and policy.releases is None:
        raise PolicyError(f"policy {policy.uri} names no release signers (releases: {{signed-by: [...]}}), so "
                          "--release cannot trust any manifest")
    emits = None
    if flags.emit_vsa:
        emits = _emitting_stage(policy, flags)
    if rule is not None:
        narrowed = replace(narrowed, stages={**narrowed.stages, rule.name: rule})
    return Gate(policy=narrowed, stage=rule, emits=emits)


def _narrow_keys(policy: Policy, keys: Sequence[PublicKey]) -> tuple[dict[str, Identity], tuple[str, ...]]:
    """--key with a policy: only signatures by these keys count, and each must be a provenance signer's key."""
    wanted = {key.fingerprint for key in keys}
    signers = {name: policy.identities[name] for name in policy.provenance.signed_by}
    for key in keys:
        if not any(key.fingerprint == k.fingerprint for i in signers.values() for k in i.keys):
            raise RequestError(f"--key {key.name} is not a key the policy trusts to sign provenance "
                               "(provenance.signed-by); flags narrow a policy and never add to it")
    identities = dict(policy.identities)
    signed_by = []
    for name, identity in signers.items():
        kept = tuple(k for k in identity.keys if k.fingerprint in wanted)
        identities[name] = replace(identity, keys=kept, sigstore=())
        if kept:
            signed_by.append(name)
    return identities, tuple(signed_by)


def _narrow_source(rule: SourceRule, asked: SourceRule) -> SourceRule:
    """The policy's source rule narrowed by the flags' (``asked``): the same repository, one of its branches."""
    uri, branches = rule.uri, rule.branches
    if asked.uri is not None:
        if rule.repository is not None and rule.repository != asked.repository:
            raise RequestError(f"--source-uri {asked.uri!r} names another repository than the policy's "
                               f"{uri!r}; flags narrow a policy, and no provenance could satisfy both")
        uri = uri or asked.uri
    if asked.branches:  # the one --source-branch
        if branches and asked.branches[0] not in branches:
            raise RequestError(f"--source-branch {asked.branches[0]!r} is not one of the policy's branches "
                               f"{list(branches)}; flags narrow a policy, and no provenance could satisfy both")
        branches = asked.branches
    return SourceRule.of_names(uri=uri, branches=branches, required=rule.required)  # (both read as names already)


def _narrow_builders(prov: ProvenanceRules, asked: GateRules) -> tuple[TrustedBuilder, ...]:
    """--builder-id keeps the one builder it names, at the level the policy trusts it for."""
    if asked.builder_id is None:
        return prov.builders
    trusted = prov.builder(asked.builder_id)
    if trusted is None:
        raise RequestError(f"--builder-id {asked.builder_id!r} is not one of the policy's builders "
                           f"{[b.id for b in prov.builders]}; flags narrow a policy, and no provenance could satisfy "
                           "both")
    return (trusted,)


def _narrow_predicate_type(prov: ProvenanceRules, asked: GateRules) -> str | None:
    if asked.predicate_type is None or asked.predicate_type == prov.predicate_type:
        return prov.predicate_type
    expected = prov.predicate_type or "a SLSA provenance"
    raise RequestError(f"--predicate-type {asked.predicate_type!r} is not what the policy asks for ({expected}); "
                       "set provenance.predicate-type in the policy instead")


def _stage_rule(policy: Policy, asked: GateRules) -> StageRule | None:
    """``stages.STAGE`` of the policy, with any --require-vsa added to it; the stage must exist."""
    rule = None
    if asked.stage is not None:
        if asked.stage not in policy.stages:
            known = ", ".join(policy.stages) or "none"
            raise RequestError(f"--stage {asked.stage!r} is not a stage of the policy (its stages: {known}); stage "
                               "names are exact")
        rule = policy.stages[asked.stage]
    if not asked.require_vsa:
        return rule
    extra = []
    for name in asked.require_vsa:
        required = policy.stages.get(name)
        if required is None:
            known = ", ".join(policy.stages) or "none"
            raise RequestError(f"--require-vsa {name!r} is not a stage of the policy (its stages: {known})")
        if required.verifier is None:
            raise PolicyError(f"policy {policy.uri}: stages.{name} names no verifier, so --require-vsa {name} cannot "
                              "know whose VSAs to accept")
        # added beside the stage's own requirement of that stage unless that one is as narrow: both must hold
        if rule is None or not any(r.stage == name and set(r.signed_by) <= {required.verifier}
                                   for r in rule.require_vsa):
            extra.append(VsaRequirement(stage=name, signed_by=(required.verifier,)))
    rule = StageRule(name=THIS_GATE) if rule is None else rule
    return replace(rule, require_vsa=(*rule.require_vsa, *extra))


def _emitting_stage(policy: Policy, flags: GateFlags) -> str:
    stage = flags.rules.stage
    if stage is None:
        raise RequestError("--emit-vsa needs --stage (the stage being verified)")
    verifier = policy.stages[stage].verifier
    if verifier is None:
        raise PolicyError(f"policy {policy.uri}: stages.{stage} names no verifier, so no key may sign its VSAs")
    if flags.emit_key is None:
        raise RequestError("--emit-vsa needs --signer (the stage verifier's key)")
    identity = policy.identities[verifier]
    if not any(k.fingerprint == flags.emit_key.fingerprint for k in identity.keys):
        raise RequestError(f"--signer's public key is not a key of {verifier!r}, the verifier of stage {stage!r}; a "
                           "VSA it signed would not count, so none is signed")
    if not any(k.fingerprint == flags.emit_key.fingerprint for k in identity.usable_keys()):
        raise RequestError(f"--signer's key may not sign for {verifier!r} now ({identity.unusable_because()}); a VSA "
                           "it signed would not count, so none is signed")
    uri = flags.emit_resource_uri
    if uri is not None and not policy.stages[stage].accepts_resource(uri):  # (no other stage takes one it takes)
        raise RequestError(f"--resource-uri {uri!r} is not one that stage {stage!r} takes (attest:stage:{stage}, or "
                           "one of its resource-uri); the VSA would say another stage verified it")
    return stage


def approver(policy: Policy, stage: str, key: PublicKey) -> str:
    """The identity ``key`` signs approvals as, for ``stage`` of ``policy`` (``attest approve``).

    The stage must be one the policy names and that requires approvals, and the key one of an
    identity its ``require-approvals.signed-by`` lists: an approval nobody would count is not signed.
    """
    rule = policy.stage_named(stage, flag="--stage", purpose="stage this approval is for")
    if rule.require_approvals is None:
        raise RequestError(f"stage {stage!r} of the policy requires no approvals (stages.{stage}.require-approvals), "
                           "so an approval for it would count for nothing")
    name = policy.signer_as(rule.require_approvals.signed_by, key, what="an approval")
    if name is None:
        raise RequestError(f"--signer's public key is not a key of an approver of stage {stage!r} "
                           f"({', '.join(rule.require_approvals.signed_by)}); an approval it signed would not count")
    return name


# --- decide ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GateVerdict:
    """The gate passed: the provenance that passed, and the stage evidence that satisfied its requirements."""

    verdict: Verdict
    candidate: Candidate
    stages: tuple[StageEvidence, ...] = ()
    considered: int = 1
    """How many provenance candidates passed the rules (the verdict names the one that passed the stage)."""
    level: int = 0
    """The SLSA build level the policy trusts the provenance's builder for (0: not a provenance): the one
    level a VSA for this verdict may state."""

    def accepted(self) -> list[tuple[str, str]]:
        """(source, sha256) of every attestation the verdict rests on: what an emitted VSA names."""
        return [(self.candidate.evidence.source, self.candidate.evidence.digest),
                *[(s.source, s.sha256) for s in self.stages]]

    def to_dict(self) -> dict[str, Any]:
        return {**self.verdict.to_dict(), "stages": [s.to_dict() for s in self.stages],
                "candidates": self.considered, "buildLevel": self.level}


def _statements(evidence: Found, predicate_type: str) -> list[tuple[Evidence, Statement]]:
    """Every readable statement of ``predicate_type`` in ``evidence``, each parsed once (not yet trusted)."""
    found = [(item, statement) for item, statement in intoto_statements(evidence)
             if statement.predicate_type == predicate_type]
    return sorted(found, key=lambda pair: (pair[0].digest, pair[0].source))


def decide(gate: Gate, evidence: Found, *, artifact: str, digests: DigestSet | Callable[[], DigestSet],
           run: TrustRun, provenance: str | None = None) -> GateVerdict:
    """Pass if some candidate satisfies the rules and every stage requirement; else raise the best reason.

    ``provenance`` (the sha256 of an attestation) limits the candidates to that one attestation, as a
    release manifest does; the rest of ``evidence`` still counts as stage evidence.
    """
    if not evidence:
        raise MalformedEvidence(f"no attestation found for {artifact}")
    digest_set = digest_source(digests)
    found = _passing(gate, evidence, digest_set, run, provenance)
    if not gate.requires_stages:
        return GateVerdict(verdict=Verdict.of(artifact, found[0], digest_set()), candidate=found[0],
                           considered=len(found), level=_level(gate, found[0]))
    return _with_stage(gate, evidence, found, artifact=artifact, digests=digest_set, run=run)


def _passing(gate: Gate, evidence: Found, digests: Callable[[], DigestSet], run: TrustRun,
             provenance: str | None) -> list[Candidate]:
    """The candidates that pass the rules (only the attestation ``provenance`` names, if given); else the reason."""
    pool = evidence if provenance is None else [e for e in evidence if isinstance(e, Evidence)
                                                 and e.digest == provenance]
    found, failure = candidates(pool, policy=gate.policy, digests=digests, run=run)
    if not found:
        assert failure is not None
        raise failure
    return found


def _with_stage(gate: Gate, evidence: Found, found: Sequence[Candidate], *, artifact: str,
                digests: Callable[[], DigestSet], run: TrustRun) -> GateVerdict:
    """The first candidate the stage's requirements hold for; else the first candidate's reason."""
    assert gate.stage is not None
    vsas, approvals = _statements(evidence, VSA_V1), _statements(evidence, APPROVAL_V1)
    first: tuple[Candidate, PolicyViolation] | None = None
    for candidate in found:
        bound = Bound(sha256=candidate.evidence.digest, time=candidate.time, source=candidate.evidence.source)
        try:
            passed = check_stage(gate.stage, policy=gate.policy, vsas=vsas, approvals=approvals, digests=digests(),
                                 bound=bound, run=run)
        except PolicyViolation as e:
            first = first or (candidate, e)
            continue
        checks = (*candidate.checks, Check("stage", True, _describe(gate.stage), [s.to_dict() for s in passed]))
        return GateVerdict(verdict=Verdict.of(artifact, candidate, digests(), checks), candidate=candidate,
                           stages=tuple(passed), considered=len(found), level=_level(gate, candidate))
    assert first is not None
    candidate, error = first
    more = f" (and {len(found) - 1} other provenance(s) of these bytes fail it too)" if len(found) > 1 else ""
    checks = (*candidate.checks, Check("stage", False, _describe(gate.stage), str(error)))
    raise PolicyViolation(f"{candidate.evidence.source}: {error}{more}", checks=checks)


def _level(gate: Gate, candidate: Candidate) -> int:
    """The build level the policy trusts the candidate's builder for; 0 for evidence that is no provenance."""
    if candidate.provenance is None:
        return 0
    rules, _ = applied_rules(candidate.provenance, gate.policy)  # the rules its level check applied
    trusted = rules.builder(candidate.provenance.builder_id)
    return 0 if trusted is None else trusted.level


def _describe(stage: StageRule) -> dict[str, Any]:
    required: dict[str, Any] = {"stage": stage.name,
                                "vsa": [{"stage": r.stage, "signed-by": list(r.signed_by)} for r in stage.require_vsa]}
    if stage.require_approvals is not None:
        required["approvals"] = {"count": stage.require_approvals.count,
                                 "signed-by": list(stage.require_approvals.signed_by)}
    return required
