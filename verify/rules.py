"""The provenance rules: what a trusted provenance must show. One evaluator; verify and audit both call it.

:func:`evaluate_provenance` returns a result for every rule the policy (narrowed by flags) sets, in a
fixed order: source repository, branch, commit, builder, level, build parameters, lockfiles, clean
work tree. ``verify`` stops
at the first that failed (and records the others that passed before it in its verdict); ``audit``
reports every failure as an anomaly of the result's ``kind``.

Fail closed: a provenance that names no source, no ref or no commit fails a rule that asks for one;
one that names its source or ref in two places (a resolved dependency and a parameter) passes a rule
only if every place satisfies it; a "dirty" flag that is anything but absent or ``false`` is dirty.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from verify.buildtypes import check_parameters, known_build_type, rule_key
from verify.formats.statement import Provenance
from verify.formats.uris import branch_of, normalize_repo
from verify.policy import Policy, ProvenanceRules

__all__ = ["UNCHECKED", "UNPINNED_SOURCE", "RuleResult", "components_for_build", "evaluate_provenance", "judge_build",
           "policy_demands", "provenance_demands", "rules_for_build"]

#: Why a build is refused whose repository the policy does not pin (:meth:`verify.policy.Policy.unnamed_rules`).
UNPINNED_SOURCE = ("the policy names no source repository for this build (its components name theirs, provenance "
                   "none); add provenance.source, or name the build's component and repository under components")


@dataclass(frozen=True)
class RuleResult:
    """One rule applied to one provenance."""

    rule: str
    """``source``, ``branch``, ``commit``, ``builder``, ``level``, ``parameters``, ``lockfiles`` or ``clean``."""
    passed: bool
    expected: Any
    found: Any
    message: str = ""
    """When failed: one sentence saying what was found and what was expected."""
    kind: str = ""
    """When failed: the audit anomaly kind (``disallowed-source``, ``disallowed-builder``, ...)."""


def provenance_demands(rules: ProvenanceRules) -> list[str]:
    """The rules that only a provenance (or a statement of a requested type) can satisfy."""
    demands = {"source": rules.source.uri is not None or rules.source.required, "branch": bool(rules.source.branches),
               "commit": rules.commit is not None, "builder": bool(rules.builders),
               "builder level": rules.min_level > 0,
               "lockfiles": bool(rules.lockfiles), "predicate type": rules.predicate_type is not None}
    return [name for name, given in demands.items() if given]


@functools.lru_cache(maxsize=1024)
def _normalized(uri: str) -> str | None:
    """A repository the provenance names, normalised; None if it is no URL (evidence may say anything). Kept for the
    last names seen: an audit reads the same few repositories in thousands of provenances."""
    try:
        return normalize_repo(uri)
    except ValueError:  # not a URL at all (an unbalanced '[', say): it names no repository
        return None


#: What a verdict says of the build's inputs when no policy says what to expect of them.
UNCHECKED = "not checked: no policy says what this build type's parameters must be"


def _parameters(prov: Provenance, rules: ProvenanceRules) -> RuleResult:
    """The buildType and its externalParameters as expected (:func:`verify.buildtypes.check_parameters`)."""
    found = sorted(prov.external_parameters)
    if not rules.check_parameters:
        return RuleResult("parameters", True, UNCHECKED, {"buildType": prov.build_type, "parameters": found})
    problems = check_parameters(prov.build_type, prov.external_parameters, known=known_build_type(prov.build_type),
                                rule=rules.build_types.get(rule_key(prov.build_type)))
    if problems:
        return RuleResult("parameters", False, "every external parameter recognised, as expected",
                          {"buildType": prov.build_type, "parameters": found}, problems[0], "unexpected-parameters")
    return RuleResult("parameters", True, "every external parameter recognised, as expected",
                      {"buildType": prov.build_type, "parameters": found})


def evaluate_provenance(prov: Provenance, rules: ProvenanceRules) -> list[RuleResult]:
    """Every rule of ``rules`` applied to ``prov``, in order; see the module docstring."""
    checks = (_source, _branch, _commit, _builder, _level, _parameters, _lockfiles, _clean)
    return [result for check in checks if (result := check(prov, rules)) is not None]


def components_for_build(policy: Policy, source_uris: Iterable[str]) -> tuple[str, ...]:
    """The components (by name, in order) whose ``source`` is a repository a build names: the rules a build that no
    release binds to a component is judged by (:func:`rules_for_build`)."""
    named = {found for uri in source_uris if (found := _normalized(uri)) is not None}
    return tuple(name for name, rules in sorted(policy.components.items())
                 if rules.source is not None and rules.source.repository in named)


def rules_for_build(policy: Policy, source_uris: Iterable[str]) -> tuple[ProvenanceRules, ...]:
    """The rules a build is judged by when no release binds it to a component (``attest verify`` of one artefact;
    in ``attest audit``, a provenance no trusted manifest among the sources binds): those of each component whose
    repository built it (the build passes if it passes any of them), else ``provenance``'s, which refuse every
    build when they name no repository while the components name theirs (:meth:`Policy.unnamed_rules`). A policy from
    :meth:`verify.policy.Policy.for_component` has no components left: its rules are the component's."""
    names = components_for_build(policy, source_uris)
    if names:
        return tuple(policy.components[name].apply(policy.provenance) for name in names)
    return (policy.unnamed_rules(),)


def policy_demands(policy: Policy) -> list[str]:
    """:func:`provenance_demands` of every set of rules that may judge a build under ``policy`` (``provenance``'s, as
    :func:`rules_for_build` gives them for a build of no named repository, and each component's): what evidence
    that shows no readable provenance (a message signature, another predicate) cannot satisfy, whichever build it is."""
    rules = (*rules_for_build(policy, ()), *(c.apply(policy.unnamed_rules()) for c in policy.components.values()))
    return list(dict.fromkeys(name for r in rules for name in provenance_demands(r)))


def judge_build(prov: Provenance, policy: Policy) -> list[RuleResult]:
    """:func:`evaluate_provenance` under :func:`rules_for_build`: the results under the first rules the build
    passes, else under the first rules."""
    return applied_rules(prov, policy)[1]


def applied_rules(prov: Provenance, policy: Policy) -> tuple[ProvenanceRules, list[RuleResult]]:
    """The rules :func:`judge_build` judges a build by, with their results: what the build level it is trusted for
    is read from (a component's ``builders``, not ``provenance``'s, when the component's rules apply)."""
    judged = [(rules, evaluate_provenance(prov, rules)) for rules in rules_for_build(policy, prov.source_uris)]
    return next((j for j in judged if all(result.passed for result in j[1])), judged[0])


def _source(prov: Provenance, rules: ProvenanceRules) -> RuleResult | None:
    """The source repository, in every place the provenance names one, is the policy's."""
    expected = rules.source.repository
    if expected is None and rules.source.required:
        return RuleResult("source", False, None, next(iter(prov.source_uris), None), UNPINNED_SOURCE,
                          "disallowed-source")
    if expected is None:
        return None
    # one repository spelt two ways (a dependency's git+URL and a parameter's URL) is one repository
    found = list({_normalized(uri) or uri: uri for uri in prov.source_uris}.values())
    if not found:
        return RuleResult("source", False, expected, None, f"the provenance names no source repository, expected "
                          f"{expected!r}", "disallowed-source")
    if all(_normalized(uri) == expected for uri in found):
        return RuleResult("source", True, expected, found[0])
    said = (f"source repository is {found[0]!r}" if len(found) == 1 else
            f"the provenance names source repositories {' and '.join(repr(u) for u in found)}, and each must be "
            "the one")
    return RuleResult("source", False, expected, found[0] if len(found) == 1 else found, f"{said}, expected "
                      f"{expected!r}", "disallowed-source")


def _branch(prov: Provenance, rules: ProvenanceRules) -> RuleResult | None:
    """Every ref the provenance names is an allowed branch."""
    if not rules.source.branches:
        return None
    allowed = list(rules.source.branches)
    refs = list(prov.source_refs)
    wrong = [ref for ref in refs if branch_of(ref) not in rules.source.branches]
    if refs and not wrong:
        return RuleResult("branch", True, allowed, refs[0])
    found = refs[0] if len(refs) == 1 else (refs or None)
    said = "the provenance names no source ref" if not refs else (
        f"built from ref {wrong[0]!r}" if len(refs) == 1 else
        f"the provenance names refs {' and '.join(repr(r) for r in refs)}, and each must be allowed")
    return RuleResult("branch", False, allowed, found, f"{said}, expected branch {' or '.join(allowed)}",
                      "disallowed-source")


def _commit(prov: Provenance, rules: ProvenanceRules) -> RuleResult | None:
    """Every commit the provenance names is the policy's."""
    if rules.commit is None:
        return None
    commits = prov.commits or ((prov.commit,) if prov.commit else ())
    wrong = [c for c in commits if c.lower() != rules.commit.lower()]
    if commits and not wrong:
        return RuleResult("commit", True, rules.commit, prov.commit)
    said = (f"built from commit {prov.commit!r}" if len(commits) <= 1 else
            f"the provenance names commits {' and '.join(repr(c) for c in commits)}, and each must be it")
    return RuleResult("commit", False, rules.commit, prov.commit if len(commits) <= 1 else list(commits),
                      f"{said}, expected {rules.commit!r}", "disallowed-commit")


def _builder(prov: Provenance, rules: ProvenanceRules) -> RuleResult | None:
    """The builder is one the policy lists."""
    if not rules.builders:
        return None
    allowed = [b.id for b in rules.builders]
    if rules.builder(prov.builder_id) is not None:
        return RuleResult("builder", True, allowed, prov.builder_id)
    return RuleResult("builder", False, allowed, prov.builder_id, f"builder {prov.builder_id!r} is not one of the "
                      f"allowed builders {allowed}", "disallowed-builder")


def _level(prov: Provenance, rules: ProvenanceRules) -> RuleResult | None:
    """The policy trusts the builder for the SLSA build level required."""
    if not rules.min_level:
        return None
    trusted = rules.builder(prov.builder_id)
    level = 0 if trusted is None else trusted.level
    if level >= rules.min_level:
        return RuleResult("level", True, rules.min_level, level)
    why = ("the policy lists no builders, so any builder is trusted for level 1 only" if not rules.builders
           else "the policy does not trust it" if trusted is None
           else f"the policy trusts it for level {level} (provenance.builders)")
    return RuleResult("level", False, rules.min_level, level, f"builder {prov.builder_id!r} is not trusted for SLSA "
                      f"build level {rules.min_level}: {why}", "insufficient-level")


def _lockfiles(prov: Provenance, rules: ProvenanceRules) -> RuleResult | None:
    """The provenance binds every lockfile the policy names."""
    if not rules.lockfiles:
        return None
    named = {d.name for d in prov.lockfiles}
    # a lockfile is bound by a digest of an algorithm the policy accepts: named without one, it binds nothing
    bound = sorted({d.name for d in prov.lockfiles if any(a in d.digest for a in rules.digests)})
    missing = [name for name in rules.lockfiles if name not in bound]
    if not missing:
        return RuleResult("lockfiles", True, list(rules.lockfiles), bound)
    said = (f"the provenance names lockfile {missing[0]!r} without a digest of an algorithm the policy accepts "
            f"({', '.join(rules.digests)}), so it binds none" if missing[0] in named
            else f"the provenance does not bind lockfile {missing[0]!r}")
    return RuleResult("lockfiles", False, list(rules.lockfiles), bound, said, "missing-lockfile")


def _clean(prov: Provenance, rules: ProvenanceRules) -> RuleResult:
    """A clean work tree, unless the policy allows dirty builds."""
    if prov.dirty and not rules.allow_dirty:
        return RuleResult("clean", False, True, False, "built from a work tree with uncommitted changes "
                          "(--allow-dirty); the policy does not allow dirty builds", "dirty-build")
    return RuleResult("clean", True, True, not prov.dirty)
