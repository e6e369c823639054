"""The policy docs/policy.md shows is a policy attest loads, and means what the guide says it means.

The example is read from the guide as written; the key files it names are made (real P-256 keys), so
that a change to the guide that no longer loads, or loads to other rules, fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT, make_keypair
from verify.buildtypes import BuildTypeRule
from verify.policy import TrustedBuilder
from verify.policy_file import kms_pem_name, load_policy

GUIDE = ROOT / "docs" / "policy.md"


def test_the_guides_policy_loads_with_builder_levels_min_level_and_build_types(tmp_path: Path) -> None:
    example = re.search(r"```yaml\n(.*?)```", GUIDE.read_text(), re.S)
    assert example, "docs/policy.md shows no policy"
    text = example.group(1)
    made = tmp_path / "made"
    made.mkdir()
    names = [*sorted(set(re.findall(r"keys/[\w.-]+\.pem", text))),
             *(kms_pem_name(arn) for arn in re.findall(r'kms: \["(arn:aws:kms:[^"]+)"\]', text))]
    for n, name in enumerate(names):  # each its own key, as people's are (approvers may not share one)
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(make_keypair(made, f"k{n}").public.read_bytes())
    (tmp_path / "policy.yaml").write_text(text)

    policy = load_policy(tmp_path / "policy.yaml")

    assert policy.provenance.builders == (
        TrustedBuilder("arn:aws:codebuild:eu-west-1:111111111111:project/app-build", level=3),
        TrustedBuilder("attest:builder:local", level=1))
    assert policy.stages["prd"].min_level == 3 and policy.stages["stg"].min_level == 0
    assert policy.provenance.build_types == {
        "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1": BuildTypeRule(
            ignore=(("vars",),), parameters={("workflow", "path"): ".github/workflows/release.yml"})}
    assert policy.provenance.check_parameters is True
