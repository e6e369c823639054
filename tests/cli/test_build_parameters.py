"""A provenance's build inputs must be ones the verifier recognises (issue 17, finding 2), through the real CLI.

Each provenance is signed by the trusted dev key, so only its build type and external parameters can
make it fail: an extra parameter attest's own build never writes, a build type attest has never
heard of, and the same two under a policy that expects them, and under flags alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from attest.provenance import BUILD_TYPE
from tests import factory as f
from tests.conftest import KeyPair, Result, make_keypair, run_attest

ARTIFACT = b"app bytes\n"
UNKNOWN = "https://ci.example/build-types/pipeline/v3"


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, KeyPair]:
    work = tmp_path_factory.mktemp("params")
    key = make_keypair(work, "dev")
    (work / "app.tar.gz").write_bytes(ARTIFACT)
    good = f.provenance(key.private, subjects={"app.tar.gz": ARTIFACT})
    statement = json.loads(good.payload)
    variants: dict[str, Callable[[dict[str, Any]], None]] = {
        "good": lambda s: None,
        "skip-tests": lambda s: s["predicate"]["buildDefinition"]["externalParameters"].update(skipTests=True),
        "nested": lambda s: s["predicate"]["buildDefinition"]["externalParameters"]["source"].update(
            fetchDepth=1),
        "unknown-type": lambda s: s["predicate"]["buildDefinition"].update(buildType=UNKNOWN),
    }
    for name, change in variants.items():
        changed = json.loads(json.dumps(statement))
        change(changed)
        (work / f"{name}.intoto.jsonl").write_bytes(f.sign(key.private, changed).to_json_line())
    return work, key


def _verify(work: tuple[Path, KeyPair], attestation: str, *args: str, policy: str | None = None) -> Result:
    path, key = work
    if policy is not None:
        (path / "policy.yaml").write_text(f"""\
version: 1
identities:
  dev-build: {{keys: ["{key.public}"]}}
provenance:
  signed-by: [dev-build]
{policy}""")
        args = ("--policy", "policy.yaml", *args)
    else:
        args = ("--key", str(key.public), *args)
    return run_attest("verify", "app.tar.gz", "--attestation", f"{attestation}.intoto.jsonl", *args, cwd=path)


def test_attests_own_provenance_passes_with_its_parameters_checked(work: tuple[Path, KeyPair]) -> None:
    result = _verify(work, "good", "--format", "json", policy="")
    assert result.code == 0, result
    assert json.loads(result.out)["provenance"]["parametersChecked"] is True
    text = _verify(work, "good", policy="")
    assert f"inputs    {BUILD_TYPE}: as the policy expects" in text.out, text


@pytest.mark.parametrize(("variant", "named"), [("skip-tests", "skipTests"), ("nested", "source.fetchDepth")])
def test_an_external_parameter_attest_never_writes_is_refused_under_a_policy(
        work: tuple[Path, KeyPair], variant: str, named: str) -> None:
    result = _verify(work, variant, policy="")
    assert result.code == 1, result
    assert f"external parameter {named!r} of build type '{BUILD_TYPE}' is not one the build type or the policy " \
           "recognises" in result.err, result
    assert result.err.count("\n") == 1 and "Traceback" not in result.err


def test_an_unknown_build_type_is_refused_under_a_policy(work: tuple[Path, KeyPair]) -> None:
    result = _verify(work, "unknown-type", policy="")
    assert result.code == 1, result
    assert f"build type '{UNKNOWN}' is not one attest knows, so its external parameters cannot be interpreted" \
           in result.err, result


def test_a_policy_may_ignore_a_parameter_or_expect_its_value(work: tuple[Path, KeyPair]) -> None:
    ignored = f"  build-types:\n    {BUILD_TYPE}: {{ignore: [skipTests]}}\n"
    assert _verify(work, "skip-tests", policy=ignored).code == 0
    expected = f"  build-types:\n    {BUILD_TYPE}: {{parameters: {{skipTests: false}}}}\n"
    result = _verify(work, "skip-tests", policy=expected)
    assert result.code == 1 and "external parameter 'skipTests' is true, and the policy expects false" in result.err
    as_string = f"  build-types:\n    {BUILD_TYPE}: {{parameters: {{skipTests: 'true'}}}}\n"
    result = _verify(work, "skip-tests", policy=as_string)
    assert result.code == 1 and "is true, and the policy expects \"true\"" in result.err, result  # JSON types differ


def test_a_policy_may_accept_another_build_type_with_exactly_its_parameters(work: tuple[Path, KeyPair]) -> None:
    # the provenance's parameters: artifacts, command, lockfiles, source (attest's own, under another type's name)
    listed = f"  build-types:\n    {UNKNOWN}:\n      ignore: [source, command, artifacts, lockfiles]\n"
    assert _verify(work, "unknown-type", policy=listed).code == 0
    partial = f"  build-types:\n    {UNKNOWN}:\n      ignore: [source, command, artifacts]\n"
    result = _verify(work, "unknown-type", policy=partial)
    assert result.code == 1 and f"external parameter 'lockfiles' of build type '{UNKNOWN}' is not one the policy " \
                                "recognises" in result.err, result


@pytest.mark.parametrize("variant", ["skip-tests", "unknown-type"])
def test_a_flags_only_gate_accepts_and_says_the_inputs_were_not_checked(work: tuple[Path, KeyPair],
                                                                       variant: str) -> None:
    text = _verify(work, variant)
    assert text.code == 0, text
    assert "NOT CHECKED: no policy says what its external parameters must be" in text.out, text
    machine = _verify(work, variant, "--format", "json")
    assert json.loads(machine.out)["provenance"]["parametersChecked"] is False
