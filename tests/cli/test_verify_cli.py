"""``attest verify``: the gate. Exact exit codes and one-sentence messages, never a traceback."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from attest.signers import sign_envelope
from attest.signers.key import load as load_signer
from tests.conftest import AttestRunner, KeyPair, git
from verify.formats.envelope import Envelope

ARTIFACT = "dist/app.tar.gz"


def _envelope(built: Path) -> Envelope:
    return Envelope.from_json((built / "provenance.intoto.jsonl").read_bytes().strip())


def _statement(built: Path) -> dict[str, Any]:
    return json.loads(_envelope(built).payload)


def _resign(built: Path, key: KeyPair, change: Callable[[dict[str, Any]], None]) -> bytes:
    """The build's statement, changed, signed again with ``key``."""
    statement = _statement(built)
    change(statement)
    envelope = sign_envelope(load_signer(key.private), payload_type="application/vnd.in-toto+json",
                             payload=json.dumps(statement).encode())
    return envelope.to_json_line()


def _verify(attest: AttestRunner, built: Path, keys: dict[str, KeyPair], *extra: str,
            attestation: str = "provenance.intoto.jsonl") -> Any:
    return attest("verify", ARTIFACT, "--attestation", attestation, "--key", keys["dev"].public, *extra, cwd=built)


def test_pass(built: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    result = _verify(attest, built, keys, "--source-uri", "https://github.com/acme/app",
                     "--source-branch", "main", "--commit", git(built, "rev-parse", "HEAD"))
    assert result.code == 0, result
    assert result.out.startswith(f"PASS {ARTIFACT}")
    assert result.err == ""


def test_pass_json_explains_every_check(built: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    result = _verify(attest, built, keys, "--source-uri", "github.com/acme/app", "--format", "json")
    assert result.code == 0, result
    verdict = json.loads(result.out)
    assert verdict["verified"] is True
    checks = {c["check"]: c for c in verdict["checks"]}
    assert {"signature", "payloadType", "statement", "predicateType", "subject", "source"} <= set(checks)
    assert all(c["passed"] for c in checks.values())
    assert checks["source"]["expected"] == "github.com/acme/app"
    assert verdict["subject"]["name"] == ARTIFACT
    assert verdict["provenance"]["commit"] == git(built, "rev-parse", "HEAD")


def test_sha256_digest_instead_of_a_file(built: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    sha = _statement(built)["subject"][0]["digest"]["sha256"]
    result = attest("verify", f"sha256:{sha}", "--attestation", "provenance.intoto.jsonl",
                    "--key", keys["dev"].public, cwd=built)
    assert result.code == 0, result
    result = attest("verify", "sha256:" + "0" * 64, "--attestation", "provenance.intoto.jsonl",
                    "--key", keys["dev"].public, cwd=built)
    assert result.code == 1 and "is not among the 2 subject(s)" in result.err


def test_publish_and_verify_from_store(built: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    result = attest("build", "--signer", keys["dev"].private, "--artifact", "dist/", "--publish", "store",
                    cwd=built)
    assert result.code == 0, result
    sha = _statement(built)["subject"][0]["digest"]["sha256"]
    stored = built / "store" / "sha256" / sha / "artifact" / ARTIFACT
    assert stored.read_bytes() == (built / ARTIFACT).read_bytes()
    assert len(list((built / "store" / "sha256" / sha).glob("provenance-*.intoto.jsonl"))) == 1
    result = attest("verify", ARTIFACT, "--store", "store", "--key", keys["dev"].public, cwd=built)
    assert result.code == 0, result
    # the stored copy verifies as well, and a replaced one does not
    assert attest("verify", stored, "--store", "store", "--key", keys["dev"].public, cwd=built).code == 0
    (built / ARTIFACT).write_bytes(b"evil")
    result = attest("verify", ARTIFACT, "--store", "store", "--key", keys["dev"].public, cwd=built)
    assert result.code == 1 and "holds no attestation for sha256:" in result.err


def _flip_payload(line: bytes) -> bytes:
    obj = json.loads(line)
    payload = bytearray(base64.b64decode(obj["payload"]))
    payload[payload.index(b"dist/app") + 5] ^= 0x01
    obj["payload"] = base64.b64encode(bytes(payload)).decode()
    return json.dumps(obj).encode()


def _set(field: str, value: Any) -> Callable[[bytes], bytes]:
    def change(line: bytes) -> bytes:
        obj = json.loads(line)
        obj[field] = value
        return json.dumps(obj).encode()
    return change


# (case, how to make the attestation, expected words in the sentence)
TAMPERED: list[tuple[str, Callable[[Path, dict[str, KeyPair]], bytes], str]] = [
    ("payload changed under the signature",
     lambda b, k: _flip_payload((b / "provenance.intoto.jsonl").read_bytes()), "no signature verifies"),
    ("payloadType changed",
     lambda b, k: _set("payloadType", "application/json")((b / "provenance.intoto.jsonl").read_bytes()),
     "no signature verifies"),
    ("re-signed by an unpinned key", lambda b, k: _resign(b, k["other"], lambda s: None), "no signature verifies"),
    ("unknown statement type",
     lambda b, k: _resign(b, k["dev"], lambda s: s.update(_type="https://in-toto.io/Statement/v9")),
     "expected an in-toto Statement"),
    ("predicate not a provenance",
     lambda b, k: _resign(b, k["dev"], lambda s: s.update(predicateType="https://example.com/test-result/v1")),
     "is not a SLSA provenance"),
    ("empty signature list",
     lambda b, k: _set("signatures", [])((b / "provenance.intoto.jsonl").read_bytes()), "has no signatures"),
    ("bad base64", lambda b, k: _set("payload", "not base64!!")((b / "provenance.intoto.jsonl").read_bytes()),
     "is not base64"),
    ("not JSON", lambda b, k: b"this is not json\n", "is not valid JSON"),
    ("empty file", lambda b, k: b"", "is empty"),
    ("md5-only subject",
     lambda b, k: _resign(b, k["dev"], lambda s: [sub.update(digest={"md5": "0" * 32}) for sub in s["subject"]]),
     "no subject has a digest attest accepts"),
    ("sha1-only subject",
     lambda b, k: _resign(b, k["dev"], lambda s: [sub.update(digest={"sha1": "0" * 40}) for sub in s["subject"]]),
     "no subject has a digest attest accepts"),
]


@pytest.mark.parametrize(("case", "make", "words"), TAMPERED, ids=[t[0] for t in TAMPERED])
def test_tampered_evidence_is_rejected(case: str, make: Callable[[Path, dict[str, KeyPair]], bytes], words: str,
                                       built: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    (built / "bad.intoto.jsonl").write_bytes(make(built, keys))
    result = _verify(attest, built, keys, attestation="bad.intoto.jsonl")
    assert result.code == 1, result
    assert words in result.err
    assert result.err.startswith(f"attest: verification failed for {ARTIFACT}:")
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert result.out == ""


def test_tampered_artifact_is_rejected(built: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    data = bytearray((built / ARTIFACT).read_bytes())
    data[0] ^= 0x01
    (built / ARTIFACT).write_bytes(bytes(data))
    result = _verify(attest, built, keys)
    assert result.code == 1
    assert "is not among the 2 subject(s) it attests" in result.err


@pytest.mark.parametrize(("flag", "value", "words"), [
    ("--source-uri", "github.com/evil/app", "source repository is 'https://github.com/acme/app', expected"),
    ("--source-branch", "release", "built from ref 'refs/heads/main', expected branch release"),
    ("--commit", "deadbeef" * 5, f"expected '{'deadbeef' * 5}'"),
    ("--builder-id", "arn:aws:codebuild:eu-west-1:111111111111:project/app-build", "is not one of the allowed"),
])
def test_rule_violations(flag: str, value: str, words: str, built: Path, keys: dict[str, KeyPair],
                         attest: AttestRunner) -> None:
    result = _verify(attest, built, keys, flag, value)
    assert result.code == 1, result
    assert words in result.err


def test_failure_json_lists_the_failed_check(built: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    result = _verify(attest, built, keys, "--source-branch", "release", "--format", "json")
    assert result.code == 1
    verdict = json.loads(result.out)
    assert verdict["verified"] is False
    failed = [c for c in verdict["checks"] if not c["passed"]]
    assert failed == [{"check": "branch", "passed": False, "expected": ["release"], "found": "refs/heads/main"}]


def test_any_line_may_match(built: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    good = (built / "provenance.intoto.jsonl").read_bytes()
    bad = _resign(built, keys["other"], lambda s: None)
    (built / "multi.intoto.jsonl").write_bytes(b"not json\n" + bad + good)
    assert _verify(attest, built, keys, attestation="multi.intoto.jsonl").code == 0


def test_usage_and_input_errors(built: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    no_identity = attest("verify", ARTIFACT, "--attestation", "provenance.intoto.jsonl", cwd=built)
    assert no_identity.code == 2 and "no trusted identity" in no_identity.err
    no_evidence = attest("verify", ARTIFACT, "--key", keys["dev"].public, cwd=built)
    assert no_evidence.code == 2 and "no evidence" in no_evidence.err
    missing = _verify(attest, built, keys, attestation="missing.intoto.jsonl")
    assert missing.code == 3 and "cannot read attestation missing.intoto.jsonl" in missing.err
    no_artifact = attest("verify", "dist/none.tgz", "--attestation", "provenance.intoto.jsonl",
                         "--key", keys["dev"].public, cwd=built)
    assert no_artifact.code == 3 and "does not exist" in no_artifact.err
    bad_key = attest("verify", ARTIFACT, "--attestation", "provenance.intoto.jsonl",
                     "--key", "provenance.intoto.jsonl", cwd=built)
    assert bad_key.code == 3 and "is not a PEM public key" in bad_key.err
    for result in (no_identity, no_evidence, missing, no_artifact, bad_key):
        assert "Traceback" not in result.err


def _policy(built: Path, keys: dict[str, KeyPair], extra: str = "") -> Path:
    path = built / "policy.yaml"
    path.write_text(f"""\
version: 1
identities:
  dev-build: {{keys: ["{keys['dev'].public}"]}}
  stg-verifier: {{keys: ["{keys['stg'].public}"]}}
provenance:
  signed-by: [dev-build]
  source: {{uri: github.com/acme/app, branches: [main]}}
  builders: ["attest:builder:local"]
  digests: [blake3, sha256]
  lockfiles: [requirements.txt]
{extra}""")
    return path


def test_policy_pass_and_violation(built: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    policy = _policy(built, keys)
    result = attest("verify", ARTIFACT, "--attestation", "provenance.intoto.jsonl", "--policy", policy, cwd=built)
    assert result.code == 0, result
    assert "signed by dev-build" in result.out
    # the stg key is trusted by the policy, but not to sign provenance
    bad = _resign(built, keys["stg"], lambda s: None)
    (built / "stg.intoto.jsonl").write_bytes(bad)
    result = attest("verify", ARTIFACT, "--attestation", "stg.intoto.jsonl", "--policy", policy, cwd=built)
    assert result.code == 1 and "trusted: dev-build" in result.err
    # a flag narrows the policy's rules; one the policy does not allow could never pass: a usage error
    result = attest("verify", ARTIFACT, "--attestation", "provenance.intoto.jsonl", "--policy", policy,
                    "--source-branch", "main", cwd=built)
    assert result.code == 0, result
    result = attest("verify", ARTIFACT, "--attestation", "provenance.intoto.jsonl", "--policy", policy,
                    "--source-branch", "release", cwd=built)
    assert result.code == 2 and "is not one of the policy's branches ['main']" in result.err, result


def test_bad_policy_is_a_configuration_error(built: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    policy = _policy(built, keys, extra="stages:\n  prd: {verifier: nobody}\n")
    result = attest("verify", ARTIFACT, "--attestation", "provenance.intoto.jsonl", "--policy", policy, cwd=built)
    assert result.code == 3
    assert f"{policy}:12: stages.prd.verifier: names identity 'nobody'" in result.err
    policy.write_text("version: 1\nidentities: {}\nprovenance: {signed-by: [x]}\n")
    result = attest("verify", ARTIFACT, "--attestation", "provenance.intoto.jsonl", "--policy", policy, cwd=built)
    assert result.code == 3 and "names no trusted identity" in result.err
    result = attest("verify", ARTIFACT, "--attestation", "provenance.intoto.jsonl", "--policy", "nope.yaml",
                    cwd=built)
    assert result.code == 3 and "cannot read policy nope.yaml" in result.err


def test_dirty_build_needs_policy_consent(repo: Path, keys: dict[str, KeyPair], attest: AttestRunner) -> None:
    (repo / "build.py").write_text("print('changed')\n")
    assert attest("build", "--allow-dirty", "--signer", keys["dev"].private, "--artifact", "build.py",
                  cwd=repo).code == 0
    result = attest("verify", "build.py", "--attestation", "provenance.intoto.jsonl", "--key", keys["dev"].public,
                    cwd=repo)
    assert result.code == 1 and "uncommitted changes" in result.err


def test_unparseable_github_repo_is_a_usage_error(built: Path, attest: AttestRunner) -> None:
    """Regression: a repository that is not even a URL crashed with exit 70."""
    result = attest("verify", ARTIFACT, "--attestation", "provenance.intoto.jsonl", "--github-repo", "[x/a/b",
                    cwd=built)
    assert result.code == 2 and "is not OWNER/REPO" in result.err and "Traceback" not in result.err


def test_a_policy_accepting_only_sha256_has_sha256_computed_and_compared(built: Path, keys: dict[str, KeyPair],
                                                                           attest: AttestRunner) -> None:
    """The policy's digests decide what counts: accepting only sha256 (FIPS) computes sha256 alone, and the
    subject check names it (tests/cli/test_digest_plan.py has the rule both ways)."""
    policy = _policy(built, keys).read_text().replace("digests: [blake3, sha256]", "digests: [sha256]")
    (built / "policy.yaml").write_text(policy)
    result = attest("verify", ARTIFACT, "--attestation", "provenance.intoto.jsonl", "--policy", "policy.yaml",
                    "--format", "json", cwd=built)
    assert result.code == 0, result
    subject = json.loads(result.out)["checks"]
    assert next(c for c in subject if c["check"] == "subject")["expected"].keys() == {"sha256"}
