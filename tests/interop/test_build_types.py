"""Held-out third-party provenance under a policy: each known build type's parameters are recognised.

SLSA's verifier "SHOULD" fail on external parameters it does not recognise (issue 17, finding 2).
Under a policy, every real provenance below still passes, because attest knows its build type
(docs/policy.md lists each type's parameters), except the one whose build took inputs: the
slsa-github-generator delegator's workflow inputs must be expected or ignored by the policy.
Runs are in-process with sockets disabled.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.interop.test_conformance import no_network, run_in_process  # noqa: F401  (no_network: a fixture)
from tests.interop.test_sigstore_bundles import (
    ASSETS,
    CUSTOM,
    CUSTOM_ARTIFACT,
    CUSTOM_ISSUER,
    GENERATOR,
    GENERATOR_SHA256,
    GITHUB,
    REUSABLE,
    REUSABLE_ARTIFACT,
    Verify,
)

DELEGATOR = ASSETS / "slsa-delegator-v2.1.0.sigstore.json"
DELEGATOR_ARTIFACT = ASSETS / "slsa-delegator-v2.1.0-artifact"
DELEGATOR_TYPE = "https://github.com/slsa-framework/slsa-github-generator/delegator-generic@v0"
NPM = ASSETS / "npm-gundam-visor-1.0.1.provenance.sigstore.json"
NPM_ARTIFACT = ASSETS / "npm-gundam-visor-1.0.1.tgz"


@pytest.fixture
def verify(capsys: pytest.CaptureFixture[str], no_network: None) -> Verify:  # noqa: F811
    """``attest verify ARGS`` in-process, with sockets disabled."""

    def run(*args: str | Path) -> Result:
        return run_in_process(["verify", *map(str, args)], capsys)

    return run


def _policy(tmp_path: Path, *, issuer: str = GITHUB, repo: str, extra: str = "") -> Path:
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"""\
version: 1
identities:
  ci: {{sigstore: {{issuer: "{issuer}", identity-regexp: "https://github\\\\.com/.+", github-repo: {repo}}}}}
provenance:
  signed-by: [ci]
  source: {{uri: github.com/{repo}}}
{extra}""")
    return policy


CASES = [
    pytest.param(REUSABLE_ARTIFACT, REUSABLE, GITHUB, "malancas/attest-demo",
                 "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1", id="gh-attestation"),
    pytest.param(CUSTOM_ARTIFACT, CUSTOM, CUSTOM_ISSUER, "too-legit/attest",
                 "https://actions.github.io/buildtypes/workflow/v1", id="gh-custom-issuer"),
    pytest.param(NPM_ARTIFACT, NPM, GITHUB, "ramonpetgrave64/gundam-visor",
                 "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1", id="npm-provenance"),
    pytest.param(GENERATOR_SHA256, GENERATOR, GITHUB, "slsa-framework/example-package",
                 "https://github.com/slsa-framework/slsa-github-generator/generic@v1", id="slsa-generator-v0.2"),
]


@pytest.mark.parametrize(("artefact", "bundle", "issuer", "repo", "build_type"), CASES)
def test_known_third_party_build_types_pass_under_a_policy_with_their_parameters_checked(
        verify: Verify, tmp_path: Path, artefact: Path | str, bundle: Path, issuer: str, repo: str,
        build_type: str) -> None:
    result = verify(artefact, "--attestation", bundle, "--policy", _policy(tmp_path, issuer=issuer, repo=repo),
                    "--format", "json")
    assert result.code == 0, result
    provenance = json.loads(result.out)["provenance"]
    assert (provenance["buildType"], provenance["parametersChecked"]) == (build_type, True)


def test_a_github_workflow_path_is_checked_when_the_policy_expects_one(verify: Verify, tmp_path: Path) -> None:
    build_type = "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1"
    expected = f"  build-types:\n    {build_type}:\n      parameters: {{workflow.path: .github/workflows/PATH}}\n"
    right = _policy(tmp_path, repo="ramonpetgrave64/gundam-visor", extra=expected.replace("PATH", "npm-publish.yml"))
    assert verify(NPM_ARTIFACT, "--attestation", NPM, "--policy", right).code == 0
    wrong = _policy(tmp_path, repo="ramonpetgrave64/gundam-visor", extra=expected.replace("PATH", "release.yml"))
    result = verify(NPM_ARTIFACT, "--attestation", NPM, "--policy", wrong)
    assert result.code == 1, result
    assert ("external parameter 'workflow.path' is \".github/workflows/npm-publish.yml\", and the policy expects "
            "\".github/workflows/release.yml\"") in result.err, result


def test_a_delegator_build_with_workflow_inputs_is_refused_until_the_policy_expects_them(
        verify: Verify, tmp_path: Path) -> None:
    repo = "slsa-framework/example-package"
    refused = verify(DELEGATOR_ARTIFACT, "--attestation", DELEGATOR, "--policy", _policy(tmp_path, repo=repo))
    assert refused.code == 1, refused
    assert f"external parameter 'inputs.artifact' of build type '{DELEGATOR_TYPE}' is not one the build type or the " \
           "policy recognises" in refused.err, refused
    expected = (f"  build-types:\n    {DELEGATOR_TYPE}:\n      ignore: [inputs.artifact, inputs.username, "
                "inputs.rekor-log-public]\n      parameters: {inputs.content: CONTENT}\n")
    accepted = _policy(tmp_path, repo=repo, extra=expected.replace("CONTENT", "hello"))
    assert verify(DELEGATOR_ARTIFACT, "--attestation", DELEGATOR, "--policy", accepted).code == 0
    other = _policy(tmp_path, repo=repo, extra=expected.replace("CONTENT", "goodbye"))
    result = verify(DELEGATOR_ARTIFACT, "--attestation", DELEGATOR, "--policy", other)
    assert result.code == 1 and "external parameter 'inputs.content' is \"hello\", and the policy expects " \
                                "\"goodbye\"" in result.err, result


def test_a_flags_only_gate_accepts_the_inputs_and_says_they_were_not_checked(verify: Verify) -> None:
    result = verify(DELEGATOR_ARTIFACT, "--attestation", DELEGATOR, "--signer-workflow",
                    "slsa-framework/slsa-github-generator/.github/workflows/delegator_generic_slsa3.yml",
                    "--github-repo", "slsa-framework/example-package")
    assert result.code == 0, result
    assert f"inputs    {DELEGATOR_TYPE}: NOT CHECKED: no policy says what its external parameters must be" \
           in result.out, result
