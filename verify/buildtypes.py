"""Build types and their external parameters: SLSA's "match the expected values", and refuse the unknown.

SLSA v1.0 asks a verifier to check that a provenance's ``buildType`` and ``externalParameters`` match
what it expects, and says "any unrecognized externalParameters SHOULD cause verification to fail":
an input that the verifier cannot interpret (a workflow input that skips the tests, say) changes
what was built without any rule seeing it. :func:`check_parameters` does that, one parameter at a
time, for the build types attest knows (:data:`KNOWN`, documented in docs/policy.md) and for those a
policy accepts explicitly (``provenance.build-types``).

A parameter is named by its path, the keys from ``externalParameters`` down joined by dots
(``workflow.path``, ``inputs.skip-tests``). It is *recognised* when the build type defines it (and
its value is then checked by the rule that reads it: source, ref), when the policy gives its
expected value (``parameters``), or when the policy says to ignore it or a parent (``ignore``).
Every other parameter fails, named; so does an expected value that is absent or different.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["KNOWN", "BuildTypeRule", "KnownBuildType", "check_parameters", "known_build_type", "rule_key"]

Path = tuple[str, ...]


@dataclass(frozen=True)
class BuildTypeRule:
    """What a policy says about one build type (``provenance.build-types.URI``)."""

    ignore: tuple[Path, ...] = ()
    """Parameters (and everything under them) that are recognised and not checked."""
    parameters: Mapping[Path, Any] = field(default_factory=dict)
    """Parameters whose value must be exactly this (as JSON: "1" is not 1, "true" is not true)."""


@dataclass(frozen=True)
class KnownBuildType:
    """The external parameters a build type defines."""

    name: str
    """Who writes it, for docs and messages."""
    values: frozenset[Path] = frozenset()
    """Parameters whose whole value is defined (a named rule checks it where one applies)."""
    objects: frozenset[Path] = frozenset()
    """Objects whose keys are exactly the ``values`` below them: another key is unrecognised."""
    maps: frozenset[Path] = frozenset()
    """Objects whose every entry is an input of the build (workflow inputs, variables): each one must be
    expected or ignored by the policy. Empty, they pass."""
    variable_names: bool = False
    """Other top-level keys are CI variable names recorded with an empty value (GitLab's runner): a
    name says which variables were set, never to what."""
    fact_prefixes: tuple[str, ...] = ()
    """Other top-level keys with these prefixes are facts the CI platform sets (npm's GitLab form)."""


_GITHUB_WORKFLOW = frozenset({("workflow", "ref"), ("workflow", "repository"), ("workflow", "path")})
_GITLAB_RUNNER = "https://gitlab.com/gitlab-org/gitlab-runner/-/blob/{VERSION}/PROVENANCE.md"

#: The build types attest knows, by URI (GitLab's names the runner's version: any version matches).
KNOWN: Mapping[str, KnownBuildType] = {
    "https://attest.dev/build-type/command/v1": KnownBuildType(
        name="attest build",
        values=frozenset({("source", "uri"), ("source", "ref"), ("command",), ("artifacts",), ("lockfiles",),
                          ("workingDirectory",)}),
        objects=frozenset({("source",)})),
    "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1": KnownBuildType(
        name="GitHub Actions workflow (SLSA community definition; npm and gh attestations)",
        values=_GITHUB_WORKFLOW | {("release", key) for key in ("body", "draft", "name", "prerelease",
                                                                  "target_commitish")},
        objects=frozenset({("workflow",), ("release",)}), maps=frozenset({("inputs",), ("vars",)})),
    "https://actions.github.io/buildtypes/workflow/v1": KnownBuildType(
        name="GitHub Actions workflow (GitHub's definition; actions/attest-build-provenance)",
        values=_GITHUB_WORKFLOW, objects=frozenset({("workflow",)})),
    "https://github.com/slsa-framework/slsa-github-generator/generic@v1": KnownBuildType(
        name="slsa-github-generator generic workflow (SLSA v0.2: invocation.parameters)",
        maps=frozenset({("event_inputs",), ("vars",)})),
    "https://github.com/slsa-framework/slsa-github-generator/container@v1": KnownBuildType(
        name="slsa-github-generator container workflow (SLSA v0.2: invocation.parameters)",
        maps=frozenset({("event_inputs",), ("vars",)})),
    "https://github.com/slsa-framework/slsa-github-generator/delegator-generic@v0": KnownBuildType(
        name="slsa-github-generator delegator (trusted reusable workflows)",
        maps=frozenset({("inputs",), ("vars",)})),
    _GITLAB_RUNNER: KnownBuildType(
        name="GitLab runner", values=frozenset({("source",), ("entryPoint",)}), variable_names=True),
    "https://github.com/npm/cli/gitlab/v0alpha1": KnownBuildType(
        name="npm publish --provenance on GitLab (SLSA v0.2)", fact_prefixes=("CI_", "GITLAB_", "RUNNER_")),
    "https://github.com/npm/cli/gha@v1": KnownBuildType(name="npm publish --provenance on GitHub (2023, SLSA v0.2)"),
    "https://github.com/npm/cli/gha/v2": KnownBuildType(name="npm publish --provenance on GitHub (2023, SLSA v0.2)"),
}
_VERSIONED = re.compile(r"https://gitlab\.com/gitlab-org/gitlab-runner/-/blob/[^/]+/PROVENANCE\.md")


def rule_key(uri: str) -> str:
    """The key a policy's ``build-types`` rule for ``uri`` is kept and looked up under: GitLab's runner names its
    version, and one rule holds for every version (keyed by any version, or as written here with ``VERSION``)."""
    return _GITLAB_RUNNER if uri == _GITLAB_RUNNER or _VERSIONED.fullmatch(uri) else uri


def known_build_type(uri: str) -> KnownBuildType | None:
    """The build type attest knows by ``uri`` (GitLab's runner at any version), else None."""
    if _VERSIONED.fullmatch(uri):
        return KNOWN[_GITLAB_RUNNER]
    return KNOWN.get(uri)


def _shown(path: Path) -> str:
    return ".".join(path)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def check_parameters(build_type: str, parameters: Mapping[str, Any], *, known: KnownBuildType | None,
                     rule: BuildTypeRule | None) -> list[str]:
    """Why ``parameters`` (a provenance's externalParameters) do not match what is expected of
    ``build_type``: one sentence per problem, in a fixed order; empty when they match.

    ``known`` is attest's definition of the type (None: unknown), ``rule`` the policy's (None: none).
    An unknown type the policy does not accept is one problem: its parameters cannot be interpreted.
    """
    if known is None and rule is None:
        return [f"build type {build_type!r} is not one attest knows, so its external parameters cannot be "
                "interpreted; accept it in the policy (provenance.build-types) with the parameters it expects"]
    rule = rule or BuildTypeRule()
    shape = known or KnownBuildType(name=build_type)
    problems: list[str] = []
    for path, expected in rule.parameters.items():
        found = _at(parameters, path)
        if found is _MISSING:
            problems.append(f"external parameter {_shown(path)!r} is absent, and the policy expects "
                            f"{_canonical(expected)}")
        elif _canonical(found) != _canonical(expected):
            problems.append(f"external parameter {_shown(path)!r} is {_canonical(found)[:80]}, and the policy "
                            f"expects {_canonical(expected)}")
    accepted = [*rule.ignore, *rule.parameters]
    problems.extend(f"external parameter {_shown(path)!r} of build type {build_type!r} is not one the "
                    f"{'policy' if known is None else 'build type or the policy'} recognises; if it is expected, give "
                    "its value (or ignore it) in the policy's provenance.build-types"
                    for path in _unrecognised(parameters, (), shape, accepted))
    return problems


_MISSING = object()


def _at(value: Any, path: Path) -> Any:
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _unrecognised(value: Any, path: Path, shape: KnownBuildType, accepted: Sequence[Path]) -> list[Path]:
    """Every parameter path under ``path`` that neither the build type nor the policy recognises."""
    if any(path[:len(a)] == a for a in accepted) or path in shape.values:
        return []
    if path == () or path in shape.objects or path in shape.maps:
        if not isinstance(value, dict):
            return [path]  # an object the type defines, as something else: not the parameter it defines
        found: list[Path] = []
        for key in sorted(value):
            found.extend(_unrecognised(value[key], (*path, str(key)), shape, accepted))
        return found
    if len(path) == 1 and shape.variable_names and value == "":
        return []
    if len(path) == 1 and shape.fact_prefixes and path[0].startswith(shape.fact_prefixes):
        return []
    return [path]
