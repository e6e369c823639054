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


#: A public MD5 collision (Wang, Feng, Lai and Yu, 2004): two 128-byte blocks with one MD5 and other sha256s.
COLLIDING = (
    bytes.fromhex("d131dd02c5e6eec4693d9a0698aff95c2fcab58712467eab4004583eb8fb7f8955ad340609f4b30283e488832571415a"
                  "085125e8f7cdc99fd91dbdf280373c5bd8823e3156348f5bae6dacd436c919c6dd53e2b487da03fd02396306d248cda0"
                  "e99f33420f577ee8ce54b67080a80d1ec69821bcb6a8839396f9652b6ff72a70"),
    bytes.fromhex("d131dd02c5e6eec4693d9a0698aff95c2fcab50712467eab4004583eb8fb7f8955ad340609f4b30283e4888325f1415a"
                  "085125e8f7cdc99fd91dbd7280373c5bd8823e3156348f5bae6dacd436c919c6dd53e23487da03fd02396306d248cda0"
                  "e99f33420f577ee8ce54b67080280d1ec69821bcb6a8839396f965ab6ff72a70"),
)


def test_a_stored_artefact_replaced_by_bytes_of_its_md5_and_size_is_found(tmp_path: Path, keys: dict[str, KeyPair],
                                                                         aws_env: MotoEnv) -> None:
    """A single-part object's ETag is its MD5: an index that took ETag and size for the bytes never hashed the
    replacement again. S3's own time of the replacement tells it apart."""
    import time

    first, second = COLLIDING
    assert hashlib.md5(first).digest() == hashlib.md5(second).digest()
    s3 = aws_env.client("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": aws_env.region})
    write_policy(tmp_path, keys)
    sha = hashlib.sha256(first).hexdigest()
    built = tmp_path / "built"
    f.publish(built, f.provenance(keys["dev"].private, subjects={"blob.bin": first}))
    _upload(s3, built)
    stored = f"app/sha256/{sha}/artifact/blob.bin"
    s3.put_object(Bucket=BUCKET, Key=stored, Body=first)
    time.sleep(2.2)  # older than a clock's tick: the index may take its stamp for its bytes
    report, _ = _both(tmp_path)
    assert not any(a.kind == "tampered-artifact" for a in report.anomalies) and report.stored == 1
    s3.put_object(Bucket=BUCKET, Key=stored, Body=second)
    replaced = s3.list_objects_v2(Bucket=BUCKET, Prefix=stored)["Contents"][0]
    assert replaced["Size"] == len(first) and replaced["ETag"].strip('"') == hashlib.md5(first).hexdigest()
    report, _ = _both(tmp_path)  # (the index's report is held equal to a fresh one's)
    assert [a.kind for a in report.anomalies if a.sha256 == sha] == ["tampered-artifact"]
