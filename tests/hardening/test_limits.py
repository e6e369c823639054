"""Every named limit of verify/limits.py: its value (as docs/limits.md states it) and what happens over it.

Over a limit is a rejection decided before reading on: a huge file is refused by its size, a file
of a million lines stops at the limit, and signature verifications are counted through the real
code path (a wrapper around PublicKey.verify that still verifies).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import verify.files as files_module
import verify.formats.evidence as evidence_module
import verify.formats.statement as statement_module
from tests.conftest import ROOT, AttestRunner, make_keypair
from tests.hardening._helpers import (
    DEV,
    OTHER,
    artefact_digests,
    counting_verifications,
    envelope_line,
    evidence,
    policy,
)
from tests.verify import _factory as f
from verify import limits
from verify.budget import VerificationBudget
from verify.errors import EvidenceRejected, LimitExceeded, MalformedEvidence, PolicyError, SignatureInvalid
from verify.formats import strict_json
from verify.formats.evidence import Evidence, load_evidence, read_evidence_file
from verify.policy import StageRule, VsaRequirement
from verify.policy_file import load_policy
from verify.stages import check_stage
from verify.trust import Identity
from verify.verifier import verify_artifact, verify_signature

GiB = 1024**3

#: name -> value, as docs/limits.md must state them
EXPECTED = {
    "MAX_EVIDENCE_BYTES": 16 * 1024 * 1024,
    "MAX_ENVELOPES_PER_FILE": 1024,
    "MAX_SIGNATURES": 16,
    "MAX_SUBJECTS": 100_000,
    "MAX_JSON_DEPTH": 64,
    "MAX_JSON_INTEGER_DIGITS": 20,
    "MAX_POLICY_BYTES": 1024 * 1024,
    "MAX_KEY_BYTES": 64 * 1024,
    "MAX_TRUSTED_ROOT_BYTES": 4 * 1024 * 1024,
    "MAX_VERIFICATIONS_PER_ENVELOPE": 64,
    "MAX_VERIFICATIONS_PER_RUN": 1024,
    "MAX_EVIDENCE_FILES_PER_RUN": 1024,
    "MAX_EVIDENCE_BYTES_PER_RUN": 64 * 1024 * 1024,
    "MAX_TIMESTAMPS": 32,
    "MAX_CLOCK_SKEW_SECONDS": 300,
    "MAX_LOG_ENTRIES": 8,
    "MAX_CHAIN_CERTIFICATES": 10,
    "MAX_PROOF_HASHES": 64,
    "MAX_NOTE_SIGNATURES": 100,
    "MAX_DEPENDENCIES": 10_000,
    "MAX_DIGESTS": 16,
    "MAX_STORE_KEYS": 10_000_000,
    "MAX_OCI_MANIFEST_BYTES": 4 * 1024 * 1024,
    "MAX_OCI_INDEX_CHILDREN_BYTES": 16 * 1024 * 1024,
    "MAX_REFERRERS": 1000,
}


def test_limits_have_their_documented_values() -> None:
    named = {name: getattr(limits, name) for name in dir(limits) if name.startswith("MAX_")}
    assert named == EXPECTED
    doc = (ROOT / "docs" / "limits.md").read_text()
    for name, value in EXPECTED.items():
        row = re.search(rf"^\| `{name}` \| ([^|]+) \|", doc, re.MULTILINE)
        assert row is not None, f"docs/limits.md has no row for {name}"
        assert int(row.group(1).split("(")[0].replace(",", "").replace(" ", "")) == value, row.group(0)


# --- file size ------------------------------------------------------------------------------------


class _ReadSpy:
    """Stands in for verify.files' one reader of an open file, and counts what it is asked to read."""

    def __init__(self) -> None:
        self.reads = 0
        self.real = files_module._read_up_to

    def __call__(self, fd: int, size: int, *, enough: int) -> bytes:
        self.reads += 1
        return self.real(fd, size, enough=enough)


def test_a_sparse_gigabyte_attestation_is_refused_by_its_size_without_reading(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small, huge = tmp_path / "small.intoto.jsonl", tmp_path / "huge.intoto.jsonl"
    small.write_bytes(line := envelope_line())
    with huge.open("wb") as out:
        out.truncate(GiB)  # sparse: no disk used, 1 GiB to whoever reads it
    spy = _ReadSpy()
    monkeypatch.setattr(files_module, "_read_up_to", spy)
    assert read_evidence_file(small) == line and spy.reads == 1  # the spy sees reads
    started = time.monotonic()
    with pytest.raises(LimitExceeded, match=re.escape(f"{huge} is {GiB} bytes; at most {limits.MAX_EVIDENCE_BYTES}")):
        read_evidence_file(huge)
    assert spy.reads == 1, "the over-limit file was read"
    assert time.monotonic() - started < 1


def test_cli_refuses_a_gigabyte_attestation_with_exit_1_quickly(tmp_path: Path, attest: AttestRunner) -> None:
    artefact, huge = tmp_path / "app.tar.gz", tmp_path / "huge.intoto.jsonl"
    artefact.write_bytes(f.ARTIFACT)
    with huge.open("wb") as out:
        out.truncate(GiB)
    keys = make_keypair(tmp_path, "dev")
    started = time.monotonic()
    result = attest("verify", artefact, "--attestation", huge, "--key", keys.public, cwd=tmp_path)
    assert result.code == 1, result
    assert f"{huge} is {GiB} bytes; at most {limits.MAX_EVIDENCE_BYTES} are read" in result.err
    assert "Traceback" not in result.err
    assert time.monotonic() - started < 15  # a subprocess (interpreter start-up) on a loaded machine


def test_a_file_that_grows_past_the_limit_while_read_is_refused(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.intoto.jsonl"
    path.write_bytes(b"x" * 200)
    monkeypatch.setattr(evidence_module, "MAX_EVIDENCE_BYTES", 100)
    real_fstat = os.fstat

    def shrunk(fd: int) -> Any:  # the size was under the limit when looked at, then the file grew
        info = real_fstat(fd)
        return type(info)((info[0], *info[1:6], 50, *info[7:]))

    monkeypatch.setattr(os, "fstat", shrunk)
    with pytest.raises(LimitExceeded, match="grew past 100 bytes while it was read"):
        read_evidence_file(path)


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_only_regular_files_are_read_as_evidence(tmp_path: Path, kind: str) -> None:
    from verify.errors import InputError

    path = tmp_path / "x.intoto.jsonl"
    if kind == "fifo":
        os.mkfifo(path)  # opening it for reading must not wait for a writer
    else:
        path.mkdir()
    with pytest.raises(InputError, match=f"attestation {re.escape(str(path))} is not a regular file"):
        read_evidence_file(path)


# --- envelopes per file ---------------------------------------------------------------------------


def test_a_million_lines_stop_at_the_envelope_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    data = b'{"a":1}\n' * 1_000_000  # 8 MB: under the size limit
    parsed = [0]
    real = strict_json.loads

    def counted(*args: Any, **kwargs: Any) -> Any:
        parsed[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(strict_json, "loads", counted)
    started = time.monotonic()
    with pytest.raises(LimitExceeded, match=f"p holds more than {limits.MAX_ENVELOPES_PER_FILE} envelopes"):
        load_evidence(data, source="p")
    assert time.monotonic() - started < 1
    assert parsed[0] <= limits.MAX_ENVELOPES_PER_FILE + 1  # the first line is looked at once more


def test_blank_lines_between_envelopes_cost_no_parsing() -> None:
    data = envelope_line() + b"\n" * 2_000_000 + b"  \t\n" * 100_000 + envelope_line()
    started = time.monotonic()
    items = load_evidence(data, source="p")
    assert [type(i) for i in items] == [Evidence, Evidence]
    assert [i.source for i in items if isinstance(i, Evidence)] == ["p:1", f"p:{2 + 2_000_000 + 100_000}"]
    assert time.monotonic() - started < 2


# --- signatures per envelope, subjects per statement ----------------------------------------------


def test_too_many_signatures_make_that_envelope_malformed() -> None:
    bogus = [{"keyid": "", "sig": f.b64(b"x" * 70)}] * limits.MAX_SIGNATURES
    [item] = evidence(envelope_line(extra_sigs=bogus))  # DEV's signature + MAX bogus ones
    assert isinstance(item, MalformedEvidence)
    assert f"has {limits.MAX_SIGNATURES + 1} signatures; at most {limits.MAX_SIGNATURES} are read" in str(item)


def test_too_many_subjects_reject_the_statement(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statement_module, "MAX_SUBJECTS", 3)
    subjects = [(f"f{i}", {"sha256": f"{i:064x}"}) for i in range(3)] + [("app", f.digest_set(f.ARTIFACT))]
    with pytest.raises(LimitExceeded, match="has 4 subjects; at most 3 are read"):
        verify_artifact("app", evidence(envelope_line(f.statement(subjects))), policy=policy(),
                        digests=artefact_digests())
    assert verify_artifact("app", evidence(envelope_line(f.statement(subjects[1:]))), policy=policy(),
                           digests=artefact_digests()).subject.name == "app"


# --- JSON depth -----------------------------------------------------------------------------------


def test_an_over_deep_line_is_that_lines_error_and_the_good_line_still_verifies() -> None:
    deep = b'{"payload":' + b"[" * (limits.MAX_JSON_DEPTH + 5) + b"]" * (limits.MAX_JSON_DEPTH + 5) + b"}\n"
    items = evidence(deep + envelope_line())
    assert isinstance(items[0], MalformedEvidence)
    assert str(items[0]) == f"p.intoto.jsonl:1 nests JSON deeper than {limits.MAX_JSON_DEPTH} levels"
    verdict = verify_artifact("app", items, policy=policy(), digests=artefact_digests())
    assert verdict.evidence.source == "p.intoto.jsonl:2"


def test_an_over_deep_single_document_is_over_a_limit() -> None:
    deep = b'{\n  "payloadType": "x",\n  "payload": ' + b"[" * 100 + b"]" * 100 + b"\n}\n"
    with pytest.raises(LimitExceeded, match=f"p.json nests JSON deeper than {limits.MAX_JSON_DEPTH} levels"):
        load_evidence(deep, source="p.json")


@pytest.mark.parametrize("shape", ["opening", "balanced", "interleaved", "flat"])
def test_sixteen_megabytes_of_nesting_are_judged_within_a_second(shape: str) -> None:
    n = limits.MAX_EVIDENCE_BYTES // 4
    data = {"opening": b"[" * (4 * n),
            "balanced": b"[" * (2 * n) + b"]" * (2 * n),
            "interleaved": b"[[]," * n,  # one level deeper every 4 bytes, with no long run of '['
            "flat": b"[" + b"[]," * n + b"[]]"}[shape]
    started = time.monotonic()
    assert strict_json.too_deep(data) is (shape != "flat")
    assert time.monotonic() - started < 1.5


def test_depth_is_counted_outside_strings_only() -> None:
    inside = json.dumps({"s": "[" * 1000, "t": '\\" [[[', "u": "\\\\"}).encode()
    assert not strict_json.too_deep(inside)
    at_limit = b"[" * limits.MAX_JSON_DEPTH + b"]" * limits.MAX_JSON_DEPTH
    assert not strict_json.too_deep(at_limit) and strict_json.too_deep(b"[" + at_limit + b"]")
    # a legal document of many limit-deep parts is legal
    assert not strict_json.too_deep(b"[" + b",".join([at_limit[1:-1]] * 1000) + b"]")


# --- policy size ----------------------------------------------------------------------------------


def test_a_gigabyte_policy_is_refused_by_its_size(tmp_path: Path, attest: AttestRunner) -> None:
    path = tmp_path / "policy.yaml"
    with path.open("wb") as out:
        out.truncate(GiB)
    started = time.monotonic()
    with pytest.raises(PolicyError, match=f"is {GiB} bytes; at most {limits.MAX_POLICY_BYTES} are read"):
        load_policy(path)
    assert time.monotonic() - started < 1
    (tmp_path / "a").write_bytes(b"a")
    result = attest("verify", tmp_path / "a", "--attestation", tmp_path / "a", "--policy", path, cwd=tmp_path)
    assert result.code == 3 and f"is {GiB} bytes; at most {limits.MAX_POLICY_BYTES} are read" in result.err, result


# --- signature verifications ----------------------------------------------------------------------


def _many_keys(n: int) -> list[f.PrivateKey]:
    return [f.private_key("p256", 100 + i) for i in range(n)]


def test_one_envelope_costs_at_most_its_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    bogus = [{"keyid": "", "sig": f.b64(f.sign(OTHER, b"other"))}] * limits.MAX_SIGNATURES
    [item] = evidence(envelope_line(signers=(), extra_sigs=bogus))
    assert isinstance(item, Evidence) and item.envelope is not None
    trusted = Identity(name="dev", keys=tuple(policy(keys=_many_keys(8)).identities["dev"].keys))
    with counting_verifications(monkeypatch) as calls, \
            pytest.raises(SignatureInvalid, match=f"gave up after {limits.MAX_VERIFICATIONS_PER_ENVELOPE}"):
        verify_signature(item.envelope, [trusted], source="p")
    assert calls[0] == limits.MAX_VERIFICATIONS_PER_ENVELOPE  # not 16 signatures x 8 keys = 128


def test_ten_thousand_bogus_signatures_cost_at_most_the_run_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    sig = f.b64(f.sign(OTHER, b"something else"))
    per_envelope = limits.MAX_SIGNATURES
    envelopes = 10_000 // per_envelope
    line = envelope_line(signers=(), extra_sigs=[{"keyid": "", "sig": sig}] * per_envelope)
    items = evidence(line * envelopes + envelope_line())  # the good one comes last, too late
    assert len(items) == envelopes + 1 <= limits.MAX_ENVELOPES_PER_FILE
    keys = _many_keys(3)
    started = time.monotonic()
    with counting_verifications(monkeypatch) as calls, pytest.raises(SignatureInvalid):
        verify_artifact("app", items, policy=policy(keys=(*keys, DEV)), digests=artefact_digests())
    assert calls[0] <= limits.MAX_VERIFICATIONS_PER_RUN  # not 10,000 x 4 keys
    assert calls[0] >= limits.MAX_VERIFICATIONS_PER_RUN - limits.MAX_VERIFICATIONS_PER_ENVELOPE
    assert time.monotonic() - started < 20
    # with the good envelope first, the same file verifies at once
    with counting_verifications(monkeypatch) as calls:
        verdict = verify_artifact("app", evidence(envelope_line() + line * 10), policy=policy(keys=(DEV, *keys)),
                                  digests=artefact_digests())
    # every piece of evidence is a candidate (the verdict must not depend on their order), within the budget
    assert verdict.evidence.source == "p.intoto.jsonl:1" and calls[0] <= limits.MAX_VERIFICATIONS_PER_RUN


def test_a_spent_budget_fails_further_verifications_without_trying() -> None:
    budget = VerificationBudget(total=2)
    budget.spend(2, source="a")
    with pytest.raises(SignatureInvalid, match="b: gave up, this verification already tried 2 signature"):
        budget.spend(1, source="b")
    assert budget.spent == 2


def test_stage_checks_share_one_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    stg_keys = _many_keys(4)
    vsa = f.statement(predicate_type=f.VSA_V1, predicate=f.vsa())
    bogus = [{"keyid": "", "sig": f.b64(f.sign(OTHER, b"x"))}] * limits.MAX_SIGNATURES
    items = evidence(envelope_line(vsa, signers=(), extra_sigs=bogus) * 200)
    base = policy()
    stg = Identity(name="stg", keys=tuple(policy(keys=stg_keys).identities["dev"].keys))
    rule = StageRule(name="prd", require_vsa=(VsaRequirement(stage="stg", signed_by=("stg",)),))
    from dataclasses import replace

    staged = replace(base, identities={**base.identities, "stg": stg},
                     stages={"prd": rule, "stg": StageRule(name="stg", verifier="stg")})
    from verify.digests import DigestSet
    from verify.gate import _statements
    from verify.stages import Bound

    with counting_verifications(monkeypatch) as calls, pytest.raises(EvidenceRejected):
        check_stage(rule, policy=staged, vsas=_statements(items, f.VSA_V1), approvals=[],
                    digests=DigestSet(f.digest_set(f.ARTIFACT)), bound=Bound(sha256="ef" * 32, time=None, source="p"),
                    run=staged.trust_run())
    assert calls[0] <= limits.MAX_VERIFICATIONS_PER_RUN


def test_key_signed_message_bundles_are_charged_to_the_run_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    from verify.trust import PublicKey

    bundle = {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
              "verificationMaterial": {"publicKey": {"hint": "x"}, "tlogEntries": []},
              "messageSignature": {"signature": f.b64(f.sign(OTHER, f.ARTIFACT))}}
    items = evidence((json.dumps(bundle) + "\n").encode() * limits.MAX_ENVELOPES_PER_FILE)
    calls = [0]
    real = PublicKey.verify_prehashed

    def counted(*args: Any) -> bool:
        calls[0] += 1
        return real(*args)

    monkeypatch.setattr(PublicKey, "verify_prehashed", counted)
    with pytest.raises(SignatureInvalid):
        verify_artifact("app", items, policy=policy(keys=_many_keys(4), source=None, builders=(), signed_by=("dev",)),
                        digests=artefact_digests())
    assert 0 < calls[0] <= limits.MAX_VERIFICATIONS_PER_RUN  # not 1024 bundles x 4 keys


def test_policy_fixture_is_sound() -> None:
    # the helpers above really verify: a good envelope passes, a wrong key does not
    assert verify_artifact("app", evidence(envelope_line()), policy=policy(), digests=artefact_digests())
    with pytest.raises(SignatureInvalid):
        verify_artifact("app", evidence(envelope_line()), policy=policy(keys=(OTHER,)), digests=artefact_digests())


if sys.platform == "win32":  # pragma: no cover
    pytest.skip("POSIX only", allow_module_level=True)
