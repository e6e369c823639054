"""Promotion gates: stg signs a VSA for what it verified, prd requires it; approvals; release manifests."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from attest.signing import sign_statement
from attest.summaries import vsa_statement
from tests.conftest import AttestRunner, KeyPair, git, make_keypair
from verify.formats.envelope import Envelope

ARTIFACT = "dist/app.tar.gz"


def _write_policy(built: Path, keys: dict[str, KeyPair], *, approvals: str = "") -> Path:
    path = built / "policy.yaml"
    path.write_text(f"""\
version: 1
identities:
  dev-build: {{keys: ["{keys['dev'].public}"]}}
  stg-verifier: {{keys: ["{keys['stg'].public}"]}}
  other: {{keys: ["{keys['other'].public}"]}}
provenance:
  signed-by: [dev-build]
  source: {{uri: github.com/acme/app, branches: [main]}}
stages:
  stg: {{verifier: stg-verifier}}
  prd:
    require-vsa: [{{stage: stg, signed-by: stg-verifier}}]
{approvals}""")
    return path


@pytest.fixture
def published(built: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> Path:
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "dist/", "--publish", "store",
                    cwd=built)
    assert result.code == 0, result
    _write_policy(built, keys)
    return built


def _stg(attest: AttestRunner, built: Path, keys: dict[str, KeyPair], artifact: str = ARTIFACT) -> object:
    return attest("verify", artifact, "--store", "store", "--policy", "policy.yaml", "--stage", "stg",
                  "--emit-vsa", "vsa.intoto.jsonl", "--signer", keys["stg"].private, cwd=built)


def _prd(attest: AttestRunner, built: Path, *extra: str) -> object:
    return attest("verify", ARTIFACT, "--store", "store", "--policy", "policy.yaml", "--stage", "prd", *extra,
                  cwd=built)


def _digests(built: Path) -> dict[str, str]:
    statement = json.loads(Envelope.from_json((built / "provenance.intoto.jsonl").read_bytes().strip()).payload)
    return next(s["digest"] for s in statement["subject"] if s["name"] == ARTIFACT)


def test_stg_vsa_then_prd_passes(published: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    stg = _stg(attest, published, keys)
    assert stg.code == 0, stg
    vsa = json.loads(Envelope.from_json((published / "vsa.intoto.jsonl").read_bytes().strip()).payload)
    assert vsa["predicateType"] == "https://slsa.dev/verification_summary/v1"
    predicate = vsa["predicate"]
    assert predicate["verificationResult"] == "PASSED"
    assert predicate["resourceUri"] == "attest:stage:stg"
    assert vsa["subject"][0]["digest"] == _digests(published)
    import hashlib

    policy_bytes = (published / "policy.yaml").read_bytes()
    assert predicate["policy"]["digest"]["sha256"] == hashlib.sha256(policy_bytes).hexdigest()
    provenance_line = (published / "provenance.intoto.jsonl").read_bytes()
    assert predicate["inputAttestations"][0]["digest"]["sha256"] == hashlib.sha256(provenance_line.strip()).hexdigest()
    # published beside the provenance
    sha = _digests(published)["sha256"]
    assert len(list((published / "store" / "sha256" / sha).glob("vsa-*.intoto.jsonl"))) == 1

    prd = _prd(attest, published, "--format", "json")
    assert prd.code == 0, prd
    verdict = json.loads(prd.out)
    assert verdict["stages"][0]["stage"] == "stg" and verdict["stages"][0]["signer"] == "stg-verifier"


def test_prd_refuses_what_skipped_stg(published: Path, attest: AttestRunner) -> None:
    result = _prd(attest, published)
    assert result.code == 1
    assert "stage 'prd' requires stage 'stg' to have verified this artefact" in result.err
    assert "no VSA from stage 'stg' was found" in result.err


def test_no_vsa_is_written_when_verification_fails(published: Path, keys: dict[str, KeyPair],
                                                  attest: AttestRunner) -> None:
    (published / ARTIFACT).write_bytes(b"tampered")
    result = _stg(attest, published, keys)
    assert result.code == 1
    assert not (published / "vsa.intoto.jsonl").exists()


def _provenance_sha256(built: Path) -> str:
    """What a VSA's inputAttestations names for the provenance: the sha256 of its line as stored."""
    import hashlib

    return hashlib.sha256((built / "provenance.intoto.jsonl").read_bytes().strip()).hexdigest()


def _vsa_line(built: Path, key: KeyPair, **changes: object) -> bytes:
    values: dict[str, object] = {
        "subject_name": ARTIFACT, "digests": _digests(built), "verifier_id": "test", "resource_uri":
        "attest:stage:stg", "policy_uri": "p", "policy_digest": "ab" * 32,
        "inputs": [("provenance.intoto.jsonl", _provenance_sha256(built))], "levels": [],
        "verified_at": datetime.now(UTC)}
    values.update(changes)
    return sign_statement(vsa_statement(**values), signer_uri=str(key.private))  # type: ignore[arg-type]


@pytest.mark.parametrize(("case", "make", "words"), [
    ("signed by another identity", lambda b, k: _vsa_line(b, k["other"]),
     "is signed by 'other', not by stg-verifier"),
    ("signed by an untrusted key", lambda b, k: _vsa_line(b, make_keypair(b, "stranger")),
     "is signed by an untrusted key"),
    ("FAILED", lambda b, k: _vsa_line(b, k["stg"], result="FAILED"), "says FAILED"),
    ("another stage", lambda b, k: _vsa_line(b, k["stg"], resource_uri="attest:stage:dev"),
     "is for 'attest:stage:dev', not stage 'stg'"),
    ("another artefact", lambda b, k: _vsa_line(b, k["stg"], digests={"sha256": "1" * 64}),
     "are for another artefact"),
    ("older than the provenance",
     lambda b, k: _vsa_line(b, k["stg"], verified_at=datetime.now(UTC) - timedelta(days=1)),
     "is older than the provenance"),
    ("for another provenance of these bytes", lambda b, k: _vsa_line(b, k["stg"], inputs=[("p", "12" * 32)]),
     "does not name the provenance provenance.intoto.jsonl"),
    ("naming no policy", lambda b, k: _vsa_line(b, k["stg"], policy_digest=""),
     "does not name the policy it was verified under"),
])
def test_wrong_vsa_is_refused(case: str, make, words: str, published: Path, keys: dict[str, KeyPair],
                              attest: AttestRunner) -> None:
    (published / "bad-vsa.intoto.jsonl").write_bytes(make(published, keys))
    result = attest("verify", ARTIFACT, "--attestation", "provenance.intoto.jsonl",
                    "--attestation", "bad-vsa.intoto.jsonl", "--policy", "policy.yaml", "--stage", "prd",
                    cwd=published)
    assert result.code == 1, result
    assert "stage 'stg'" in result.err and words in result.err
    assert "Traceback" not in result.err


def test_require_vsa_flags(published: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    assert _stg(attest, published, keys).code == 0
    args = ("verify", ARTIFACT, "--store", "store", "--key", keys["dev"].public, "--require-vsa", "stg")
    ok = attest(*args, "--vsa-key", keys["stg"].public, cwd=published)
    assert ok.code == 0, ok
    wrong = attest(*args, "--vsa-key", keys["other"].public, cwd=published)
    assert wrong.code == 1 and "not by --vsa-key" in wrong.err
    usage = attest(*args, cwd=published)
    assert usage.code == 2 and "--require-vsa needs --vsa-key" in usage.err


def test_emit_vsa_usage(published: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    result = attest("verify", ARTIFACT, "--store", "store", "--policy", "policy.yaml", "--emit-vsa", "v.jsonl",
                    cwd=published)
    assert result.code == 2 and "--emit-vsa needs --stage" in result.err


@pytest.mark.parametrize(("uri", "words"), [
    ("attest:stage:prd", "--resource-uri 'attest:stage:prd' is not one that stage 'stg' takes"),
    ("arn:aws:codepipeline:eu-west-1:111111111111:app", "is not one that stage 'stg' takes"),
])
def test_a_vsa_names_only_the_stage_it_was_signed_for(published: Path, keys: dict[str, KeyPair],
                                                      attest: AttestRunner, uri: str, words: str) -> None:
    """--resource-uri was free: stg's gate could sign a VSA naming prd (or any stage sharing its verifier), which
    that stage's requirement then counted, though its own requirements never held."""
    result = attest("verify", ARTIFACT, "--store", "store", "--policy", "policy.yaml", "--stage", "stg",
                    "--emit-vsa", "vsa.intoto.jsonl", "--signer", keys["stg"].private, "--resource-uri", uri,
                    cwd=published)
    assert result.code == 2 and words in result.err, result
    assert not (published / "vsa.intoto.jsonl").exists()
    policy = published / "policy.yaml"
    policy.write_text(policy.read_text().replace("stg: {verifier: stg-verifier}",
                                                 f"stg: {{verifier: stg-verifier, resource-uri: [{uri}]}}"))
    if uri != "attest:stage:prd":  # the stage's own resource-uri is one it takes
        assert attest("verify", ARTIFACT, "--store", "store", "--policy", "policy.yaml", "--stage", "stg",
                      "--emit-vsa", "vsa.intoto.jsonl", "--signer", keys["stg"].private, "--resource-uri", uri,
                      cwd=published).code == 0


def test_approvals(published: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    alice, bob = make_keypair(published, "alice"), make_keypair(published, "bob")
    policy = _write_policy(published, keys, approvals="    require-approvals: {count: 2, signed-by: [alice, bob]}\n")
    policy.write_text(policy.read_text().replace(
        "provenance:", f'  alice: {{keys: ["{alice.public}"]}}\n  bob: {{keys: ["{bob.public}"]}}\nprovenance:'))
    assert _stg(attest, published, keys).code == 0
    approve = ("approve", ARTIFACT, "--policy", "policy.yaml", "--store", "store")
    one = attest(*approve, "--signer", alice.private, "--stage", "prd", "--reason", "CHG-1",
                 "-o", "a1.intoto.jsonl", cwd=published)
    assert one.code == 0, one
    # the same approver twice counts once
    assert attest(*approve, "--signer", alice.private, "--stage", "prd", "-o", "a2.intoto.jsonl",
                  cwd=published).code == 0
    result = _prd(attest, published)
    assert result.code == 1 and "requires 2 approval(s) from alice, bob, but found 1 (alice)" in result.err
    # approvals for a stage that requires none, for a stage the policy does not name, or by someone who is
    # not an approver are refused before anything is signed (finding 2)
    for stage, signer, words in (("stg", bob, "requires no approvals"), ("nostage", bob, "is not a stage of"),
                                 ("PRD", bob, "is not a stage of"), ("prd", keys["other"], "not a key of an approver")):
        refused = attest(*approve, "--signer", signer.private, "--stage", stage, "-o", "no.intoto.jsonl",
                         cwd=published)
        assert refused.code == 2 and words in refused.err, refused
        assert not (published / "no.intoto.jsonl").exists()
    assert _prd(attest, published).code == 1
    assert attest(*approve, "--signer", bob.private, "--stage", "prd", "-o", "b1.intoto.jsonl",
                  cwd=published).code == 0
    result = _prd(attest, published)
    assert result.code == 0, result
    assert "approval  prd by alice" in result.out and "approval  prd by bob" in result.out


def test_release_manifest(tmp_path: Path, repo: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    infra = repo
    assert attest("build", "--signer", keys["dev"].private, "--artifact", "dist/", "--publish", "../store",
                  "-o", "../infra.intoto.jsonl", "--", sys.executable, "build.py", cwd=infra).code == 0
    (infra / "app.txt").write_text("the app\n")
    git(infra, "add", "app.txt")
    git(infra, "commit", "-q", "-m", "app")
    assert attest("build", "--signer", keys["dev"].private, "--artifact", "app.txt", "--publish", "../store",
                  "-o", "../app.intoto.jsonl", cwd=infra).code == 0
    work = repo.parent
    (work / "policy.yaml").write_text(f"""\
version: 1
identities:
  dev-build: {{keys: ["{keys['dev'].public}"]}}
provenance:
  signed-by: [dev-build]
releases: {{signed-by: [dev-build]}}
""")
    made = attest("release", "create", "--name", "r1", "--component", "infra=infra.intoto.jsonl",
                  "--component", "app=app.intoto.jsonl", "--signer", keys["dev"].private, cwd=work)
    assert made.code == 0, made
    ok = attest("verify", "--release", "release.intoto.jsonl", "--store", "store", "--policy", "policy.yaml",
                "--format", "json", cwd=work)
    assert ok.code == 0, ok
    assert {c["component"] for c in json.loads(ok.out)["components"]} == {"infra", "app"}
    same = attest("verify", "--release", "release.intoto.jsonl", "--store", "store", "--policy", "policy.yaml",
                  "--same-commit", cwd=work)
    assert same.code == 1 and "components come from 2 commits" in same.err
    for component in ("infra", "app"):  # each stack's own gate holds the rule too: not dropped by --component
        one = attest("verify", "--release", "release.intoto.jsonl", "--store", "store", "--policy", "policy.yaml",
                     "--component", component, "--same-commit", cwd=work)
        assert one.code == 1 and "components come from 2 commits" in one.err, one
    # a manifest that gives every component infra's commit: app's own gate holds app's provenance to it
    from attest.summaries import Component, release_statement

    manifest = json.loads(Envelope.from_json((work / "release.intoto.jsonl").read_bytes().strip()).payload)
    parts = manifest["predicate"]["components"]
    lying = release_statement(name="r1-lying", created_at=datetime.now(UTC) - timedelta(minutes=1), components=[
        Component(name=c["name"], subjects=[(a["name"], a["digest"]) for a in c["artifacts"]],
                  provenance_sha256=c["provenance"]["digest"]["sha256"], source=c.get("source"),
                  commit=parts[0]["commit"]) for c in parts])
    (work / "lying.intoto.jsonl").write_bytes(sign_statement(lying, signer_uri=str(keys["dev"].private)))
    for component in (parts[0]["name"], parts[1]["name"]):
        one = attest("verify", "--release", "lying.intoto.jsonl", "--store", "store", "--policy", "policy.yaml",
                     "--component", component, "--same-commit", cwd=work)
        assert (one.code == 0) == (component == parts[0]["name"]), one
    assert "and the manifest gives" in one.err
    # a component whose provenance is gone from the store fails the whole release
    for path in (work / "store").rglob("provenance-*.intoto.jsonl"):
        if path.read_bytes() == (work / "app.intoto.jsonl").read_bytes():
            path.unlink()
    gone = attest("verify", "--release", "release.intoto.jsonl", "--store", "store", "--policy", "policy.yaml",
                  cwd=work)
    assert gone.code == 1 and "component app" in gone.err


def test_lockfile_must_be_the_bound_one(published: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    args = ("verify", ARTIFACT, "--store", "store", "--key", keys["dev"].public)
    assert attest(*args, "--lockfile", "requirements.txt", cwd=published).code == 0
    (published / "requirements.txt").write_text("requests==2.0.0 --hash=sha256:" + "1" * 64 + "\n")
    result = attest(*args, "--lockfile", "requirements.txt", cwd=published)
    assert result.code == 1 and "is not the one the provenance bound" in result.err
    shown = json.loads(attest(*args, "--lockfile", "requirements.txt", "--format", "json", cwd=published).out)
    assert [c["check"] for c in shown["checks"] if not c["passed"]] == ["lockfile"]  # after every check that held
    assert shown["checks"][0]["check"] == "signature" and shown["checks"][0]["passed"]
