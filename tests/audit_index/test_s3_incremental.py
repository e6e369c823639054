"""Issue 21: an S3 store audited with an index (objects recognised by key, ETag and size) gives the report of an
audit without one, and a warm audit checks and judges nothing; through real boto3 to a local moto S3."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from attest.cli.audit import _audit, _policy
from tests import factory as f
from tests.audit_index.test_incremental import WINDOW, _forms
from tests.conftest import KeyPair
from tests.conftest_aws import MotoEnv
from tests.dora.history import history_with_dora, write_policy
from verify.audit import AuditReport

BUCKET = "attest-audit"


def _upload(s3: Any, local: Path) -> None:
    for path in sorted(local.rglob("*")):
        if path.is_file():
            s3.put_object(Bucket=BUCKET, Key=f"app/{path.relative_to(local).as_posix()}", Body=path.read_bytes())


def _both(tmp_path: Path) -> tuple[AuditReport, dict[str, Any]]:
    policy = _policy(tmp_path / "policy.yaml", ())
    source = [f"s3://{BUCKET}/app"]
    indexed, used = _audit(source, policy, None, tmp_path / "index.sqlite", reverify=False, dora=WINDOW)
    fresh, _ = _audit(source, policy, None, None, reverify=False, dora=WINDOW)
    assert _forms(indexed) == _forms(fresh)
    assert used is not None
    return indexed, used


def test_an_s3_store_is_audited_incrementally(tmp_path: Path, keys: dict[str, KeyPair], aws_env: MotoEnv) -> None:
    s3 = aws_env.client("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": aws_env.region})
    write_policy(tmp_path, keys)
    _upload(s3, history_with_dora(tmp_path, keys))
    cold, used = _both(tmp_path)
    assert used["judged"] == len(cold.artifacts) == 3 and used["checked"] == cold.files
    _, used = _both(tmp_path)
    assert (used["checked"], used["judged"]) == (0, 0)

    more = tmp_path / "more"
    f.publish(more, f.provenance(keys["dev"].private, subjects={"app.zip": b"app v4"}, commit=f"{4:040x}"))
    _upload(s3, more)
    report, used = _both(tmp_path)
    assert (used["checked"], used["judged"]) == (1, 1) and len(report.artifacts) == 4

    v2 = hashlib.sha256(b"app v2").hexdigest()
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"app/sha256/{v2}/provenance-")["Contents"]
    body = s3.get_object(Bucket=BUCKET, Key=listed[0]["Key"])["Body"].read()
    s3.put_object(Bucket=BUCKET, Key=listed[0]["Key"], Body=body.replace(b'"sig":"', b'"sig":"AAAA'))  # a new ETag
    report, used = _both(tmp_path)
    assert used["judged"] == 1 and any(a.kind == "bad-signature" and a.sha256 == v2 for a in report.anomalies)
    s3.delete_object(Bucket=BUCKET, Key=listed[0]["Key"])
    report, _ = _both(tmp_path)
    assert not any(a.kind == "bad-signature" for a in report.anomalies)
