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

from dataclasses import dataclass
from typing import Any

from verify.buildtypes import check_parameters, known_build_type
from verify.errors import PolicyError
from verify.formats.statement import Provenance
from verify.formats.uris import branch_of, normalize_repo
from verify.policy import ProvenanceRules

__all__ = ["UNCHECKED", "RuleResult", "evaluate_provenance", "provenance_demands"]


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
    demands = {"source": rules.source.uri is not None, "branch": bool(rules.source.branches),
               "commit": rules.commit is not None, "builder": bool(rules.builders),
               "builder level": rules.min_level > 0,
               "lockfiles": bool(rules.lockfiles), "predicate type": rules.predicate_type is not None}
    return [name for name, given in demands.items() if given]


def _normalized(uri: str) -> str | None:
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
                                rule=rules.build_types.get(prov.build_type))
    if problems:
        return RuleResult("parameters", False, "every external parameter recognised, as expected",
                          {"buildType": prov.build_type, "parameters": found}, problems[0], "unexpected-parameters")
    return RuleResult("parameters", True, "every external parameter recognised, as expected",
                      {"buildType": prov.build_type, "parameters": found})


def evaluate_provenance(prov: Provenance, rules: ProvenanceRules) -> list[RuleResult]:
    """Every rule of ``rules`` applied to ``prov``, in order; see the module docstring."""
    results: list[RuleResult] = []
    if rules.source.uri is not None:
        expected = _normalized(rules.source.uri)
        if expected is None:  # a policy object built by hand; load_policy and the flags refuse these
            raise PolicyError(f"source repository {rules.source.uri!r} in the policy is not a repository URI")
        # one repository spelt two ways (a dependency's git+URL and a parameter's URL) is one repository
        found = list({_normalized(uri) or uri: uri for uri in prov.source_uris}.values())
        wrong = [uri for uri in found if _normalized(uri) != expected]
        if not found:
            results.append(RuleResult("source", False, expected, None, f"the provenance names no source "
                                      f"repository, expected {expected!r}", "disallowed-source"))
        elif wrong:
            said = (f"source repository is {found[0]!r}" if len(found) == 1 else
                    f"the provenance names source repositories {' and '.join(repr(u) for u in found)}, and each "
                    "must be the one")
            results.append(RuleResult("source", False, expected, found[0] if len(found) == 1 else found,
                                      f"{said}, expected {expected!r}", "disallowed-source"))
        else:
            results.append(RuleResult("source", True, expected, found[0]))
    if rules.source.branches:
        allowed = list(rules.source.branches)
        refs = list(prov.source_refs)
        wrong = [ref for ref in refs if branch_of(ref) not in rules.source.branches]
        if not refs or wrong:
            found_refs = refs[0] if len(refs) == 1 else (refs or None)
            said = "the provenance names no source ref" if not refs else (
                f"built from ref {wrong[0]!r}" if len(refs) == 1 else
                f"the provenance names refs {' and '.join(repr(r) for r in refs)}, and each must be allowed")
            results.append(RuleResult("branch", False, allowed, found_refs, f"{said}, expected branch "
                                      f"{' or '.join(allowed)}", "disallowed-source"))
        else:
            results.append(RuleResult("branch", True, allowed, refs[0]))
    if rules.commit is not None:
        commits = prov.commits or ((prov.commit,) if prov.commit else ())
        wrong = [c for c in commits if c.lower() != rules.commit.lower()]
        if not commits or wrong:
            said = (f"built from commit {prov.commit!r}" if len(commits) <= 1 else
                    f"the provenance names commits {' and '.join(repr(c) for c in commits)}, and each must be it")
            results.append(RuleResult("commit", False, rules.commit, prov.commit if len(commits) <= 1 else
                                      list(commits), f"{said}, expected {rules.commit!r}", "disallowed-commit"))
        else:
            results.append(RuleResult("commit", True, rules.commit, prov.commit))
    if rules.builders:
        allowed = [b.id for b in rules.builders]
        if rules.builder(prov.builder_id) is None:
            results.append(RuleResult("builder", False, allowed, prov.builder_id, f"builder {prov.builder_id!r} "
                                      f"is not one of the allowed builders {allowed}", "disallowed-builder"))
        else:
            results.append(RuleResult("builder", True, allowed, prov.builder_id))
    if rules.min_level:
        trusted = rules.builder(prov.builder_id)
        level = 0 if trusted is None else trusted.level
        if level < rules.min_level:
            why = ("the policy lists no builders, so any builder is trusted for level 1 only" if not rules.builders
                   else "the policy does not trust it" if trusted is None
                   else f"the policy trusts it for level {level} (provenance.builders)")
            results.append(RuleResult("level", False, rules.min_level, level, f"builder {prov.builder_id!r} is not "
                                      f"trusted for SLSA build level {rules.min_level}: {why}", "insufficient-level"))
        else:
            results.append(RuleResult("level", True, rules.min_level, level))
    results.append(_parameters(prov, rules))
    if rules.lockfiles:
        bound = sorted({d.name for d in prov.lockfiles})
        missing = [name for name in rules.lockfiles if name not in bound]
        if missing:
            results.append(RuleResult("lockfiles", False, list(rules.lockfiles), bound, f"the provenance does not "
                                      f"bind lockfile {missing[0]!r}", "missing-lockfile"))
        else:
            results.append(RuleResult("lockfiles", True, list(rules.lockfiles), bound))
    if prov.dirty and not rules.allow_dirty:
        results.append(RuleResult("clean", False, True, False, "built from a work tree with uncommitted changes "
                                  "(--allow-dirty); the policy does not allow dirty builds", "dirty-build"))
    else:
        results.append(RuleResult("clean", True, True, not prov.dirty))
    return results
