"""Verification policy: who is trusted, what a provenance must show, what each stage requires.

A policy is a YAML file (see docs/policy.md, read by :mod:`verify.policy_file`) or the same rules
given as command-line flags. An empty set of trusted identities never passes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from verify.budget import VerificationBudget
from verify.buildtypes import BuildTypeRule
from verify.digests import ACCEPTED
from verify.errors import PolicyError, RequestError
from verify.formats.uris import normalize_repo
from verify.signers import TrustRun
from verify.sigstore.verifier import BundleVerifier
from verify.trust import Identity, PublicKey

__all__ = ["ApprovalRequirement", "ComponentRules", "Policy", "ProvenanceRules", "ReleaseRule", "SourceRule",
           "StageRule", "TrustedBuilder", "VsaRequirement", "check_repository", "empty_policy"]

def check_repository(uri: str, *, what: str) -> str:
    """``uri`` normalised (see :func:`verify.formats.uris.normalize_repo`); :class:`PolicyError` if it names no
    repository (not a URL at all, or no HOST/PATH), so that a bad rule fails at load, not at use."""
    if "?" in uri or "#" in uri:  # (normalize_repo drops them: a ref written there would be no rule at all)
        raise PolicyError(f"{what} {uri!r} carries a query or a fragment, which names no repository and would be "
                          "dropped; give the repository alone, and its branches under source.branches")
    try:
        normalized = normalize_repo(uri)
    except ValueError as e:
        raise PolicyError(f"{what} {uri!r} is not a repository URI ({e})") from e
    host, _, path = normalized.partition("/")
    if not host or not path:
        raise PolicyError(f"{what} {uri!r} names no repository; expected HOST/PATH, e.g. github.com/acme/app")
    return normalized


@dataclass(frozen=True)
class SourceRule:
    """``provenance.source``: the repository (as given, and normalised) and the allowed branches.

    A ``uri`` that names no repository is a :class:`PolicyError` here (:func:`check_repository`), so no
    rule can hold one.
    """

    uri: str | None = None
    """The repository as the policy or the flag spells it (for messages)."""
    branches: tuple[str, ...] = ()
    required: bool = False
    """A repository must be named, and ``uri`` names none: no build passes (:func:`verify.rules.rules_for_build`)."""
    repository: str | None = field(init=False, default=None, repr=False, compare=False)
    """``uri`` normalised (``host/path``): what the rules compare."""

    def __post_init__(self) -> None:
        # always from ``uri`` as given: normalising a normalised form again may read it differently
        if self.uri is not None:
            object.__setattr__(self, "repository", check_repository(self.uri, what="source repository"))
        object.__setattr__(self, "branches", tuple(map(_branch_name, self.branches)))

    @classmethod
    def of_names(cls, *, uri: str | None, branches: tuple[str, ...], required: bool = False) -> SourceRule:
        """A rule of branches already read as names (another rule's): not read again, which would take the name
        of the branch literally called ``refs/heads/main`` for ``main``."""
        made = cls(uri=uri, required=required)
        object.__setattr__(made, "branches", tuple(branches))
        return made


def _branch_name(text: str) -> str:
    """A branch as a rule names it: ``main``, or its ref ``refs/heads/main`` read as ``main`` (compared with the
    branch a provenance's ref names: taken as the name, ``refs/heads/main`` would match only a branch named so,
    whose ref is ``refs/heads/refs/heads/main``, which anyone who may push can make). Another ref is no branch."""
    if text.startswith("refs/heads/") and len(text) > len("refs/heads/"):
        return text.removeprefix("refs/heads/")
    if text.startswith("refs/"):
        raise PolicyError(f"branch {text!r} is a ref that names no branch; give the branch's name (main) or its ref "
                          "(refs/heads/main)")
    return text


@dataclass(frozen=True)
class TrustedBuilder:
    """A builder the policy trusts (``provenance.builders``), with the highest SLSA build level it is
    trusted for: what a VSA may state for its provenance. A bare id in the policy is level 1."""

    id: str
    level: int = 1


@dataclass(frozen=True)
class ProvenanceRules:
    signed_by: tuple[str, ...] = ()
    source: SourceRule = SourceRule()
    builders: tuple[TrustedBuilder, ...] = ()
    digests: tuple[str, ...] = ACCEPTED
    lockfiles: tuple[str, ...] = ()
    allow_dirty: bool = False
    commit: str | None = None
    predicate_type: str | None = None
    min_level: int = 0
    """The SLSA build level the provenance's builder must be trusted for (``--verified-level``, a stage's
    ``min-level``); 0: none."""
    build_types: Mapping[str, BuildTypeRule] = field(default_factory=dict)
    """``build-types``: per buildType URI, parameters to ignore and expected values; a type attest does not
    know is accepted only if it is named here."""
    check_parameters: bool = True
    """Refuse unrecognised external parameters and unknown build types (SLSA's "expected values"). Only a
    gate made of flags alone, with no policy to say what is expected, turns it off, and says so."""

    def builder(self, builder_id: str) -> TrustedBuilder | None:
        """The trusted builder ``builder_id`` names; without a ``builders`` rule any builder, at level 1."""
        if not self.builders:
            return TrustedBuilder(id=builder_id, level=1)
        return next((b for b in self.builders if b.id == builder_id), None)


@dataclass(frozen=True)
class VsaRequirement:
    stage: str
    signed_by: tuple[str, ...]


@dataclass(frozen=True)
class ApprovalRequirement:
    count: int
    signed_by: tuple[str, ...]


@dataclass(frozen=True)
class StageRule:
    name: str
    verifier: str | None = None
    require_vsa: tuple[VsaRequirement, ...] = ()
    require_approvals: ApprovalRequirement | None = None
    resource_uris: tuple[str, ...] = ()
    """resourceUri values a VSA of this stage may carry besides ``attest:stage:<name>`` (e.g. a pipeline ARN)."""
    min_level: int = 0
    """The SLSA build level this stage requires (``min-level``): of the provenance's builder, and stated by
    every VSA the stage relies on; 0: none."""
    deployed_by: tuple[str, ...] = ()
    """The identities that may sign deployment records for this stage as an environment (``deployed-by``,
    ``attest deploy record``); none: no deployment record for it counts."""
    require_deployed: tuple[str, ...] = ()
    """The stages where each component of a release must have run before it reaches this one
    (``require-deployed``): a succeeded deployment record of the same artefacts, signed by a deployer of
    that stage. A VSA says a stage verified the bytes; the record says it ran them."""
    hotfix: ApprovalRequirement | None = None
    """``hotfix.require-approvals``: the approvals of a release manifest that let it reach this stage as a
    hotfix, without the stage's other requirements; None: no hotfix may."""

    def accepts_resource(self, uri: str) -> bool:
        return uri == f"attest:stage:{self.name}" or uri in self.resource_uris


@dataclass(frozen=True)
class ComponentRules:
    """``components.NAME``: the provenance rules that differ for one component of a release (infra and app
    come from different repositories). None: as ``provenance`` says."""

    source: SourceRule | None = None
    builders: tuple[TrustedBuilder, ...] | None = None
    lockfiles: tuple[str, ...] | None = None

    def apply(self, rules: ProvenanceRules) -> ProvenanceRules:
        """``rules`` with this component's rules in place of theirs."""
        changed = {name: value for name in ("source", "builders", "lockfiles")
                   if (value := getattr(self, name)) is not None}
        return replace(rules, **changed)


@dataclass(frozen=True)
class ReleaseRule:
    """Who may sign release manifests (``releases.signed-by``)."""

    signed_by: tuple[str, ...]


@dataclass(frozen=True)
class Policy:
    identities: Mapping[str, Identity]
    provenance: ProvenanceRules
    stages: Mapping[str, StageRule] = field(default_factory=dict)
    releases: ReleaseRule | None = None
    """Who may sign release manifests; None: ``--release`` is refused."""
    uri: str = "attest:policy:flags"
    digest: str = ""
    """sha256 of the policy file's bytes (of the flags' canonical form when built from flags)."""
    revoked: frozenset[str] = frozenset()
    """Fingerprints of keys the policy revokes for every identity (its top-level ``revoked``)."""
    revoked_keys: tuple[PublicKey, ...] = field(default=(), repr=False)
    """The revoked keys the policy has the public key of (pinned, or named by PEM in a ``revoked``
    list): only to say "signed by a revoked key" instead of "by an unknown key"; never to verify."""
    components: Mapping[str, ComponentRules] = field(default_factory=dict)
    """``components``: per release component, the provenance rules that differ (:meth:`for_component`)."""
    key_files: tuple[str, ...] = ()
    """Every key file the policy file reads (pinned, revoked, a KMS key's PEM): what no output may replace."""

    def for_component(self, name: str) -> Policy:
        """The policy a release's component ``name`` is verified under: ``provenance`` with the rules
        ``components.NAME`` gives in place of its own (:meth:`unnamed_rules`, for a component the policy does not
        name, and the source of one that names none), and no ``components`` left: the release has said which
        component its builds are, and they are judged so (:func:`verify.rules.rules_for_build`)."""
        rules = self.components.get(name)  # (one that names no source takes the unnamed one's: never "any")
        return replace(self, provenance=self.unnamed_rules() if rules is None else rules.apply(self.unnamed_rules()),
                       components={})

    def unnamed_rules(self) -> ProvenanceRules:
        """``provenance``'s rules as they judge a build of no component the policy names (from a repository no
        component names, or a release's component the policy does not name): where the components name their
        repositories and ``provenance`` names none, rules no build passes (:attr:`SourceRule.required`), so that an
        unnamed repository is never taken as any."""
        if self.provenance.source.uri is None and any(r.source is not None for r in self.components.values()):
            return replace(self.provenance, source=SourceRule(required=True))
        return self.provenance

    def holder(self, names: Sequence[str], key: PublicKey) -> Identity | None:
        """The first identity among ``names`` that ``key`` is a key of (usable now or not): who a signer of an
        approval or a deployment record would sign as."""
        return next((self.identities[name] for name in names
                     if any(k.fingerprint == key.fingerprint for k in self.identities[name].keys)), None)

    def signer_as(self, names: Sequence[str], key: PublicKey, *, what: str) -> str | None:
        """The name of the identity among ``names`` that ``key`` is a key of (:meth:`holder`), or None; a
        :class:`RequestError` if the key may not sign for it now, since ``what`` ("an approval", "a deployment
        record") it signed would not count."""
        identity = self.holder(names, key)
        if identity is None:
            return None
        if not any(k.fingerprint == key.fingerprint for k in identity.usable_keys()):
            raise RequestError(f"--signer's key may not sign for {identity.name!r} now "
                               f"({identity.unusable_because()}); {what} it signed would not count, so none is "
                               "signed")
        return identity.name

    def stage_named(self, name: str, *, flag: str, purpose: str) -> StageRule:
        """The stage ``name`` given by ``flag`` (``--stage``, ``--env``) for ``purpose`` ("this approval is
        for"); a :class:`RequestError` for an empty name or one the policy does not have."""
        if not name.strip():
            raise RequestError(f"{flag} is empty (an unset pipeline variable?); name the {purpose}")
        rule = self.stages.get(name)
        if rule is None:
            known = ", ".join(self.stages) or "none"
            raise RequestError(f"{flag} {name!r} is not a stage of the policy (its stages: {known}); stage names "
                               "are exact")
        return rule

    def signers(self) -> tuple[Identity, ...]:
        """The identities trusted to sign provenance."""
        return tuple(self.identities[name] for name in self.provenance.signed_by)

    def with_rules(self, **rules: Any) -> Policy:
        """A copy whose provenance rules named in ``rules`` are replaced, exactly as given (for code that
        builds a policy; the command line combines flags with a policy through :func:`verify.gate.prepare`).

        A source repository that names no repository (``SourceRule(uri='[')``) is a :class:`PolicyError`
        when the :class:`SourceRule` is made, before any evidence is read.
        """
        return replace(self, provenance=replace(self.provenance, **rules))

    def trust_run(self, *, at: datetime | None = None, budget: VerificationBudget | None = None,
                  bundles: BundleVerifier | None = None) -> TrustRun:
        """What every signature check of one run under this policy shares (:class:`verify.signers.TrustRun`):
        the verification time, one budget, the Sigstore verifier and this policy's revocations."""
        run = TrustRun(budget=VerificationBudget() if budget is None else budget, bundles=bundles,
                       revoked=self.revoked, revoked_keys=self.revoked_keys)
        if at is not None:
            run.at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
        return run

    def with_identity(self, identity: Identity, *, signs_provenance: bool = True) -> Policy:
        identity = replace(identity, revoked=identity.revoked | self.revoked)
        identities = {**self.identities, identity.name: identity}
        signed_by = self.provenance.signed_by
        if signs_provenance and identity.name not in signed_by:
            signed_by = (*signed_by, identity.name)
        return replace(self, identities=identities, provenance=replace(self.provenance, signed_by=signed_by))


def empty_policy() -> Policy:
    return Policy(identities={}, provenance=ProvenanceRules())
