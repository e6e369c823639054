"""The CloudFormation templates in docs/aws/templates lint clean and keep their least-privilege shape."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import missing_tool

TEMPLATES = Path(__file__).resolve().parents[2] / "docs" / "aws" / "templates"
NAMES = ["kms-signing-key.yaml", "store-bucket.yaml", "iam-roles.yaml"]


def _cfnlint() -> Any:
    try:
        import cfnlint.api  # type: ignore[import-untyped]
        import cfnlint.decode  # type: ignore[import-untyped]
    except ImportError:
        missing_tool("cfn-lint is not installed (pip install cfn-lint, or make test); the templates were not linted")
    return cfnlint


def load(name: str) -> dict[str, Any]:
    template, matches = _cfnlint().decode.decode(str(TEMPLATES / name))
    assert not matches, matches
    assert isinstance(template, dict)
    return template


def statements(node: Any) -> Iterator[dict[str, Any]]:
    """Every policy statement anywhere in ``node`` (through Fn::If branches too)."""
    if isinstance(node, dict):
        if "Effect" in node and ("Action" in node or "NotAction" in node):
            yield node
        for value in node.values():
            yield from statements(value)
    elif isinstance(node, list):
        for value in node:
            yield from statements(value)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("name", NAMES)
def test_template_lints_clean(name: str) -> None:
    cfnlint = _cfnlint()
    args = cfnlint.api.ManualArgs(include_checks=["I"], regions=["eu-west-1", "us-east-1"])
    matches = cfnlint.api.lint_file(TEMPLATES / name, args)
    assert [str(m) for m in matches] == []


def test_no_allow_grants_wildcard_actions() -> None:
    for name in NAMES:
        for statement in statements(load(name)):
            if statement["Effect"] == "Allow":
                assert "NotAction" not in statement, (name, statement)
                for action in as_list(statement["Action"]):
                    assert action != "*" and not str(action).endswith(":*"), (name, statement)


def test_only_the_signer_role_may_sign() -> None:
    key = load("kms-signing-key.yaml")["Resources"]["SigningKey"]["Properties"]
    assert (key["KeySpec"], key["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")
    policy = list(statements(key["KeyPolicy"]))
    signers = [s for s in policy if s["Effect"] == "Allow" and "kms:Sign" in as_list(s["Action"])]
    assert [s["Sid"] for s in signers] == ["SignOnlyBySignerRole"]
    assert "SignerRoleName" in str(signers[0]["Principal"])
    deny = [s for s in policy if s["Effect"] == "Deny" and "kms:Sign" in as_list(s["Action"])]
    assert deny and "ArnNotEquals" in deny[0]["Condition"]
    readers = next(s for s in policy if s["Sid"] == "PublicKeyForVerifierRoles")
    assert set(as_list(readers["Action"])) <= {"kms:GetPublicKey", "kms:DescribeKey"}


def test_store_bucket_is_locked_private_and_tls_only() -> None:
    template = load("store-bucket.yaml")
    bucket = template["Resources"]["StoreBucket"]["Properties"]
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"
    assert bucket["ObjectLockEnabled"] is True
    assert bucket["ObjectLockConfiguration"]["ObjectLockEnabled"] == "Enabled"
    assert all(v is True for v in bucket["PublicAccessBlockConfiguration"].values())
    policy = list(statements(template["Resources"]["StoreBucketPolicy"]["Properties"]["PolicyDocument"]))
    tls = next(s for s in policy if s["Sid"] == "TlsOnly")
    assert tls["Effect"] == "Deny" and tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    writers = [s for s in policy if s["Effect"] == "Allow" and "s3:PutObject" in as_list(s["Action"])]
    assert [s["Sid"] for s in writers] == ["StgMayAddVsasOnly", "StgAndPrdMayAddTheirDeploymentRecords"]
    assert "vsa-*.intoto.jsonl" in str(writers[0]["Resource"])
    # stg and prd add their deployment records (the index and the copy under each artefact), nothing else
    records = [str(r) for r in as_list(writers[1]["Resource"])]
    assert len(records) == 2 and "/sha256/*/deployment-*.intoto.jsonl" in records[0] and "/deployments/*" in records[1]
    deny = next(s for s in policy if s["Sid"] == "DenyWritesByOthers")
    allowed = " ".join(map(str, deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]))
    assert "role/attest-verify-stg" in allowed and "role/attest-verify-prd" in allowed


def test_only_stg_and_prd_write_deployment_records_each_in_its_part_of_the_index() -> None:
    template = load("iam-roles.yaml")
    found = [p for p in template["Resources"]["AttestRole"]["Properties"]["Policies"]
             if isinstance(p, dict) and "Fn::If" in p and p["Fn::If"][0] == "RecordsDeployments"]
    assert len(found) == 1
    (statement,) = found[0]["Fn::If"][1]["PolicyDocument"]["Statement"]
    assert as_list(statement["Action"]) == ["s3:PutObject"]
    resources = [str(r) for r in as_list(statement["Resource"])]
    assert any("/deployments/${Stage}/*" in r for r in resources), resources
    assert any("/sha256/*/deployment-*.intoto.jsonl" in r for r in resources), resources
    assert template["Conditions"]["RecordsDeployments"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "Stage"}, "dev"]}]}


def test_roles_name_their_resources() -> None:
    template = load("iam-roles.yaml")
    for statement in statements(template["Resources"]["AttestRole"]["Properties"]["Policies"]):
        assert statement["Effect"] == "Allow"
        assert statement["Resource"] != "*", statement
        assert not any(str(a).startswith("kms:Sign") for a in as_list(statement["Action"])), statement
