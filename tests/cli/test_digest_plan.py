"""Which digests ``attest verify`` computes: the cheapest strong digest the evidence and the policy allow.

attest's own subjects carry sha256 and blake3; one agreeing strong digest identifies the bytes, so verify
computes blake3 alone, unless the policy accepts only sha256 (FIPS), a subject's only strong digest is
sha256, or something addressed by sha256 needs it (a store written before the blake3 index). The JSON
verdict's ``digests`` are exactly what was computed. Every digest computed must agree.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from attest.signers import sign_envelope
from attest.signers.key import load as load_signer
from tests.conftest import AttestRunner, KeyPair
from tests.conftest_aws import MotoEnv

ARTIFACT = "dist/app.tar.gz"
SHA256_ONLY = ("version: 1\nidentities:\n  dev: {{keys: [{key}]}}\n"
               "provenance:\n  signed-by: [dev]\n  digests: [sha256]\n")


def _statement(built: Path) -> dict[str, Any]:
    line = json.loads((built / "provenance.intoto.jsonl").read_bytes())
    payload: dict[str, Any] = json.loads(base64.b64decode(line["payload"]))
    return payload


def _resigned(built: Path, key: KeyPair, change: Callable[[dict[str, Any]], None], name: str) -> str:
    statement = _statement(built)
    change(statement)
    envelope = sign_envelope(load_signer(key.private), payload_type="application/vnd.in-toto+json",
                             payload=json.dumps(statement).encode())
    (built / name).write_bytes(envelope.to_json_line())
    return name


def _subject(statement: dict[str, Any]) -> dict[str, str]:
    digest: dict[str, str] = next(s["digest"] for s in statement["subject"] if s["name"] == ARTIFACT)
    return digest


def _verify(attest: AttestRunner, built: Path, keys: dict[str, KeyPair], *extra: str | Path,
            attestation: str = "provenance.intoto.jsonl", artifact: str = ARTIFACT) -> Any:
    return attest("verify", artifact, "--attestation", attestation, "--key", keys["dev"].public, "--format", "json",
                  *extra, cwd=built)


def _computed(result: Any) -> dict[str, str]:
    assert result.code == 0, result
    digests: dict[str, str] = json.loads(result.out)["digests"]
    return digests


def _policy(built: Path, keys: dict[str, KeyPair]) -> Path:
    path = built / "fips.yaml"
    path.write_text(SHA256_ONLY.format(key=keys["dev"].public))
    return path


def test_attests_own_provenance_is_verified_by_blake3_alone(built: Path, keys: dict[str, KeyPair],
                                                            attest: AttestRunner) -> None:
    subject = _subject(_statement(built))
    assert set(subject) == {"sha256", "blake3"}
    assert _computed(_verify(attest, built, keys)) == {"blake3": subject["blake3"]}
    # other bytes are refused on blake3 alone
    (built / ARTIFACT).write_bytes(b"other bytes")
    result = _verify(attest, built, keys)
    assert result.code == 1 and "is not among the 2 subject(s) it attests" in result.err, result


def test_one_agreeing_strong_digest_identifies_the_bytes_and_a_computed_one_must_agree(
        built: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    """A subject whose blake3 is right and whose sha256 is wrong: blake3 alone identifies the bytes; a policy
    that makes attest compute sha256 refuses it, because every digest computed must agree."""
    def wrong_sha256(statement: dict[str, Any]) -> None:
        _subject(statement)["sha256"] = "0" * 64

    name = _resigned(built, keys["dev"], wrong_sha256, "wrong-sha256.intoto.jsonl")
    assert set(_computed(_verify(attest, built, keys, attestation=name))) == {"blake3"}
    result = _verify(attest, built, keys, "--policy", _policy(built, keys), attestation=name)
    assert result.code == 1 and "is not among the 2 subject(s) it attests" in result.err, result
    assert "sha256:" in result.err and "blake3:" not in result.err, result  # it names what it computed

    def wrong_blake3(statement: dict[str, Any]) -> None:
        _subject(statement)["blake3"] = "0" * 64

    name = _resigned(built, keys["dev"], wrong_blake3, "wrong-blake3.intoto.jsonl")
    assert _verify(attest, built, keys, attestation=name).code == 1
    assert set(_computed(_verify(attest, built, keys, "--policy", _policy(built, keys), attestation=name))) == {
        "sha256"}


def test_a_policy_naming_sha256_alone_computes_sha256_alone(built: Path, keys: dict[str, KeyPair],
                                                            attest: AttestRunner) -> None:
    subject = _subject(_statement(built))
    policy = _policy(built, keys)
    assert _computed(_verify(attest, built, keys, "--policy", policy)) == {"sha256": subject["sha256"]}
    (built / ARTIFACT).write_bytes(b"other bytes")
    assert _verify(attest, built, keys, "--policy", policy).code == 1


def test_a_subject_whose_only_strong_digest_is_sha256_is_still_matched(built: Path, keys: dict[str, KeyPair],
                                                                      attest: AttestRunner) -> None:
    def sha256_only(statement: dict[str, Any]) -> None:
        for s in statement["subject"]:
            s["digest"] = {"sha256": s["digest"]["sha256"], "sha1": "0" * 40}

    name = _resigned(built, keys["dev"], sha256_only, "sha256-only.intoto.jsonl")
    subject = _subject(_statement(built))
    assert _computed(_verify(attest, built, keys, attestation=name)) == {"sha256": subject["sha256"]}
    (built / ARTIFACT).write_bytes(b"other bytes")
    assert _verify(attest, built, keys, attestation=name).code == 1


# --- the store: found by blake3 through its index, by sha256 when it has none ---------------------------------


@pytest.fixture
def published(built: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> Path:
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "dist/", "--publish", "store", cwd=built)
    assert result.code == 0, result
    return built


def _from_store(attest: AttestRunner, built: Path, keys: dict[str, KeyPair], *store: str) -> Any:
    return attest("verify", ARTIFACT, *(store or ("--store", "store")), "--key", keys["dev"].public, "--format",
                  "json", cwd=built)


def test_publish_indexes_every_artefact_by_blake3(published: Path) -> None:
    statement = _statement(published)
    for subject in statement["subject"]:
        entry = published / "store" / "blake3" / subject["digest"]["blake3"]
        assert entry.read_text() == subject["digest"]["sha256"] + "\n"


def test_a_store_with_the_index_is_verified_by_blake3_alone(published: Path, keys: dict[str, KeyPair],
                                                             attest: AttestRunner) -> None:
    subject = _subject(_statement(published))
    assert _computed(_from_store(attest, published, keys)) == {"blake3": subject["blake3"]}
    (published / ARTIFACT).write_bytes(b"other bytes")
    result = _from_store(attest, published, keys)
    assert result.code == 1 and "holds no attestation for sha256:" in result.err, result


def test_a_store_written_before_the_index_is_verified_by_sha256(published: Path, keys: dict[str, KeyPair],
                                                                 attest: AttestRunner) -> None:
    shutil.rmtree(published / "store" / "blake3")
    subject = _subject(_statement(published))
    assert _computed(_from_store(attest, published, keys)) == {"sha256": subject["sha256"]}


def test_an_artefact_the_index_does_not_name_is_found_by_sha256(published: Path, keys: dict[str, KeyPair],
                                                                 attest: AttestRunner) -> None:
    """A store indexed since an upgrade still holds older artefacts: a second read computes their sha256."""
    subject = _subject(_statement(published))
    (published / "store" / "blake3" / subject["blake3"]).unlink()
    assert _computed(_from_store(attest, published, keys)) == subject


@pytest.mark.parametrize("entry", ["other", "junk"])
def test_a_wrong_index_entry_is_only_a_wrong_hint(published: Path, keys: dict[str, KeyPair], attest: AttestRunner,
                                                  entry: str) -> None:
    """An index entry naming another artefact's folder (or not an entry at all) is not followed: the artefact is
    found by its sha256, and verified as ever."""
    statement = _statement(published)
    subject = _subject(statement)
    other = next(s["digest"]["sha256"] for s in statement["subject"] if s["name"] != ARTIFACT)
    path = published / "store" / "blake3" / subject["blake3"]
    path.unlink()
    path.write_text(other + "\n" if entry == "other" else "junk")
    assert _computed(_from_store(attest, published, keys)) == subject


def test_a_vsa_names_the_artefact_by_the_provenance_subject_and_prd_finds_it_by_blake3(
        published: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    """stg computed blake3 alone; its VSA names the artefact by the matched subject's sha256 and blake3 (audit
    and the store file by sha256), and prd finds it by blake3."""
    policy = published / "policy.yaml"
    policy.write_text(f"version: 1\nidentities:\n  dev: {{keys: [{keys['dev'].public}]}}\n"
                      f"  stg-verifier: {{keys: [{keys['stg'].public}]}}\n"
                      "provenance:\n  signed-by: [dev]\n"
                      "stages:\n  stg: {verifier: stg-verifier}\n"
                      "  prd: {require-vsa: [{stage: stg, signed-by: stg-verifier}]}\n")
    before = {p for p in (published / "store").rglob("*") if p.is_file()}
    result = attest("verify", ARTIFACT, "--store", "store", "--policy", policy, "--stage", "stg", "--emit-vsa",
                    "vsa.intoto.jsonl", "--signer", keys["stg"].private, "--format", "json", cwd=published)
    subject = _subject(_statement(published))
    assert _computed(result) == {"blake3": subject["blake3"]}
    vsa = json.loads(base64.b64decode(json.loads((published / "vsa.intoto.jsonl").read_bytes())["payload"]))
    assert vsa["subject"][0]["digest"] == subject
    # stg adds its VSA and nothing else (its role may write vsa-* objects only; the build indexed the artefact)
    added = {p for p in (published / "store").rglob("*") if p.is_file()} - before
    assert [p.relative_to(published / "store").parts[:2] for p in added] == [("sha256", subject["sha256"])]
    assert [p.name.startswith("vsa-") for p in added] == [True]
    result = attest("verify", ARTIFACT, "--store", "store", "--policy", policy, "--stage", "prd", "--format", "json",
                    cwd=published)
    assert _computed(result) == {"blake3": subject["blake3"]}


def test_an_s3_store_is_found_by_blake3_and_one_without_the_index_by_sha256(
        aws_env: MotoEnv, built: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    s3 = aws_env.client("s3")
    s3.create_bucket(Bucket="attest-store", CreateBucketConfiguration={"LocationConstraint": aws_env.region})
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "dist/", "--publish",
                    "s3://attest-store/app", "--output", "published.intoto.jsonl", cwd=built)
    assert result.code == 0, result
    subject = _subject(_statement(built))
    index = s3.get_object(Bucket="attest-store", Key=f"app/blake3/{subject['blake3']}")["Body"].read()
    assert index == f"{subject['sha256']}\n".encode()
    store = ("--store", "s3://attest-store/app")
    assert _computed(_from_store(attest, built, keys, *store)) == {"blake3": subject["blake3"]}
    for item in s3.list_objects_v2(Bucket="attest-store", Prefix="app/blake3/")["Contents"]:
        s3.delete_object(Bucket="attest-store", Key=item["Key"])  # as a store written before the index
    assert _computed(_from_store(attest, built, keys, *store)) == {"sha256": subject["sha256"]}
