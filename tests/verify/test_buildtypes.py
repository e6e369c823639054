"""verify.buildtypes: every external parameter is recognised or named (SLSA's "expected values").

Property tests generate the variants: any key added anywhere the build type does not define is named
(whatever its name or value), any entry of a workflow's inputs must be expected or ignored, an
expected value matches only exactly (JSON types included), and ``ignore`` covers exactly its subtree.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verify.buildtypes import KNOWN, BuildTypeRule, check_parameters, known_build_type

ATTEST = "https://attest.dev/build-type/command/v1"
GITHUB = "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1"
GITLAB = "https://gitlab.com/gitlab-org/gitlab-runner/-/blob/v17.0.0/PROVENANCE.md"
NPM_GITLAB = "https://github.com/npm/cli/gitlab/v0alpha1"

GOOD = {
    ATTEST: {"source": {"uri": "git+https://github.com/acme/app", "ref": "refs/heads/main"}, "command": ["make"],
             "artifacts": ["dist/"], "lockfiles": ["requirements.txt"], "workingDirectory": "app"},
    GITHUB: {"workflow": {"ref": "refs/heads/main", "repository": "https://github.com/acme/app",
                          "path": ".github/workflows/release.yml"}, "inputs": {}, "vars": {}},
    GITLAB: {"source": "https://gitlab.com/acme/app", "entryPoint": "build", "CI_DEBUG": "", "DEPLOY_TOKEN": ""},
    NPM_GITLAB: {"CI_COMMIT_SHA": "ab" * 20, "GITLAB_USER_LOGIN": "alice", "RUNNER_GENERATE_ARTIFACTS_METADATA": "1"},
}

keys = st.text(st.characters(codec="utf-8", exclude_characters="."), min_size=1, max_size=12)
values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
                      max_leaves=6)


def _check(build_type: str, params: dict[str, Any], rule: BuildTypeRule | None = None) -> list[str]:
    return check_parameters(build_type, params, known=known_build_type(build_type), rule=rule)


@pytest.mark.parametrize("build_type", list(GOOD))
def test_what_each_build_type_defines_passes(build_type: str) -> None:
    assert _check(build_type, GOOD[build_type]) == []


@settings(max_examples=60, deadline=None)
@given(key=keys, value=values)
def test_a_top_level_key_attests_build_never_writes_is_named(key: str, value: Any) -> None:
    params = dict(GOOD[ATTEST])
    if key in params:
        return
    params[key] = value
    problems = _check(ATTEST, params)
    assert len(problems) == 1 and f"external parameter {key!r} of build type" in problems[0]


@settings(max_examples=60, deadline=None)
@given(key=keys, value=values, where=st.sampled_from([(ATTEST, "source"), (GITHUB, "workflow")]))
def test_a_key_added_inside_a_defined_object_is_named(key: str, value: Any, where: tuple[str, str]) -> None:
    build_type, parent = where
    params = json.loads(json.dumps(GOOD[build_type]))
    if key in params[parent]:
        return
    params[parent][key] = value
    assert [p.split(" of build type")[0] for p in _check(build_type, params)] == \
        [f"external parameter {parent + '.' + key!r}"]


@settings(max_examples=60, deadline=None)
@given(name=keys, value=values, kind=st.sampled_from(["inputs", "vars"]))
def test_every_workflow_input_must_be_expected_or_ignored(name: str, value: Any, kind: str) -> None:
    params = {**GOOD[GITHUB], kind: {name: value}}
    assert len(_check(GITHUB, params)) == 1
    assert _check(GITHUB, params, BuildTypeRule(ignore=((kind,),))) == []
    assert _check(GITHUB, params, BuildTypeRule(ignore=((kind, name),))) == []
    assert _check(GITHUB, params, BuildTypeRule(parameters={(kind, name): value})) == []
    other = name + "x"
    assert len(_check(GITHUB, params, BuildTypeRule(ignore=((kind, other),)))) == 1  # another input's name


@settings(max_examples=80, deadline=None)
@given(found=values, expected=values)
def test_an_expected_value_matches_only_exactly(found: Any, expected: Any) -> None:
    params = {**GOOD[GITHUB], "inputs": {"mode": found}}
    problems = _check(GITHUB, params, BuildTypeRule(parameters={("inputs", "mode"): expected}))
    same = json.dumps(found, sort_keys=True) == json.dumps(expected, sort_keys=True)
    assert (problems == []) is same
    if not same:
        assert "external parameter 'inputs.mode' is" in problems[0]


@pytest.mark.parametrize(("found", "expected"), [(1, True), (0, False), ("1", 1), ("true", True), (1, 1.0),
                                                 ([1], 1), ({"a": 1}, {"a": "1"})])
def test_values_that_python_would_call_equal_are_not(found: Any, expected: Any) -> None:
    params = {**GOOD[GITHUB], "inputs": {"mode": found}}
    assert _check(GITHUB, params, BuildTypeRule(parameters={("inputs", "mode"): expected})) != []


def test_an_expected_parameter_that_is_absent_fails() -> None:
    problems = _check(GITHUB, GOOD[GITHUB], BuildTypeRule(parameters={("inputs", "mode"): "fast"}))
    assert problems == ["external parameter 'inputs.mode' is absent, and the policy expects \"fast\""]


def test_gitlab_variable_names_pass_and_a_value_does_not() -> None:
    assert _check(GITLAB, {**GOOD[GITLAB], "SKIP_TESTS": ""}) == []
    assert len(_check(GITLAB, {**GOOD[GITLAB], "SKIP_TESTS": "1"})) == 1
    assert len(_check(NPM_GITLAB, {**GOOD[NPM_GITLAB], "SKIP_TESTS": "1"})) == 1


@pytest.mark.parametrize("build_type", [GITLAB, GITLAB.replace("v17.0.0", "v18.2.1"),
                                        GITLAB.replace("v17.0.0", "0123abcd")])
def test_gitlabs_runner_is_known_at_any_version(build_type: str) -> None:
    assert known_build_type(build_type) is KNOWN["https://gitlab.com/gitlab-org/gitlab-runner/-/blob/{VERSION}/"
                                                 "PROVENANCE.md"]


@pytest.mark.parametrize("build_type", [GITLAB.replace("gitlab.com", "gitlab.com.evil"), GITLAB + "x",
                                        GITLAB.replace("/blob/v17.0.0/", "/blob/a/b/"), ATTEST + "/", ATTEST.upper(),
                                        "https://attest.dev/build-type/command/v2"])
def test_a_look_alike_is_an_unknown_build_type(build_type: str) -> None:
    assert known_build_type(build_type) is None
    assert "is not one attest knows" in _check(build_type, {})[0]


def test_a_defined_object_given_as_something_else_is_named() -> None:
    assert len(_check(ATTEST, {**GOOD[ATTEST], "source": "git+https://github.com/acme/app"})) == 1
    assert len(_check(GITHUB, {**GOOD[GITHUB], "inputs": ["skip"]})) == 1


def test_an_accepted_unknown_type_recognises_only_what_the_policy_names() -> None:
    rule = BuildTypeRule(ignore=(("pipeline",),), parameters={("stage",): "build"})
    assert _check("https://ci.example/v1", {"pipeline": {"id": 1}, "stage": "build"}, rule) == []
    problems = _check("https://ci.example/v1", {"pipeline": {}, "stage": "build", "debug": True}, rule)
    assert problems == ["external parameter 'debug' of build type 'https://ci.example/v1' is not one the policy "
                        "recognises; if it is expected, give its value (or ignore it) in the policy's "
                        "provenance.build-types"]
