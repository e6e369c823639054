"""Replay every vector of tests/assets/regressions/ (see its README): each must end in OUR error, with the
outcome stated here, never in a crash.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.hardening._helpers import DEV
from tests.verify import _factory as f
from verify.errors import LimitExceeded, MalformedEvidence, PolicyError
from verify.formats.evidence import Evidence, load_evidence
from verify.formats.statement import parse_statement
from verify.policy_file import load_policy

VECTORS = ROOT / "tests" / "assets" / "regressions"


def test_every_vector_is_replayed_and_documented() -> None:
    names = {p.name for p in VECTORS.iterdir() if p.name != "README.md"}
    replayed = set(POLICIES) | set(STATEMENTS) | {"envelope-integer-over-python-digit-limit.intoto.jsonl",
                                                  "jsonl-one-line-nested-too-deep.intoto.jsonl",
                                                  "bundle-duplicate-key-pretty-printed.sigstore.json"}
    assert names == replayed
    readme = (VECTORS / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in names)


POLICIES = {
    "policy-yaml-invalid-timestamp.yaml": r"policy-yaml-invalid-timestamp\.yaml:5 is not valid YAML: cannot read "
                                          r"'2026-00-01T00:00:00Z' as timestamp",
    "policy-yaml-timestamp-tag-on-a-non-time.yaml": r":1 is not valid YAML: cannot read '' as timestamp",
    "policy-yaml-bool-tag-on-a-non-bool.yaml": r":6 is not valid YAML: cannot read 'maybe' as bool",
    "policy-yaml-integer-too-long.yaml": r":1 is not valid YAML: cannot read '1111[1]+' as int",
    "policy-time-out-of-utc-range.yaml": (r":3: identities\.dev\.not-before: '0001-01-01T00:00:00\+01:00' is not a "
                                          r"valid time between years 1 and 9999"),
    "policy-yaml-nesting-too-deep.yaml": r"nests YAML too deeply to be a policy",
    "policy-source-uri-not-a-url.yaml": r":6: provenance\.source\.uri: source repository '\[github\.com/acme/app' is "
                                        r"not a repository URI",
    "policy-github-repo-not-a-url.yaml": r":3: identities\.gha\.sigstore\.github-repo: is not a repository",
}


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_policy_vectors_are_policy_errors(tmp_path: Path, name: str) -> None:
    shutil.copy(VECTORS / name, tmp_path / name)
    f.write_pem(tmp_path, "k.pem", DEV)
    f.write_pem(tmp_path / "keys", "dev.pub.pem", DEV)
    with pytest.raises(PolicyError, match=POLICIES[name]):
        load_policy(tmp_path / name)


STATEMENTS = {
    "statement-integer-over-python-digit-limit.json": "JSON integer of 5000 digits is too large",
    "statement-number-overflows-to-infinity.json": "JSON number 1e999999 is out of range",
    "statement-unpaired-surrogate.json": "statement holds an unpaired UTF-16 surrogate escape",
}


@pytest.mark.parametrize("name", sorted(STATEMENTS))
def test_statement_vectors_are_malformed_evidence(name: str) -> None:
    with pytest.raises(MalformedEvidence, match=STATEMENTS[name]):
        parse_statement((VECTORS / name).read_bytes())


def test_an_envelope_with_an_integer_over_pythons_digit_limit_is_that_lines_error() -> None:
    [item] = load_evidence((VECTORS / "envelope-integer-over-python-digit-limit.intoto.jsonl").read_bytes(), source="p")
    assert isinstance(item, MalformedEvidence) and "JSON integer of 5000 digits is too large" in str(item)


def test_one_deep_line_is_that_lines_error_only() -> None:
    items = load_evidence((VECTORS / "jsonl-one-line-nested-too-deep.intoto.jsonl").read_bytes(), source="p")
    assert [type(i) for i in items] == [Evidence, MalformedEvidence, Evidence]
    assert str(items[1]) == "p:2 nests JSON deeper than 64 levels"
    assert not isinstance(items[1], LimitExceeded)  # a line's error, not the file's


def test_a_pretty_printed_bundle_with_a_duplicate_key_is_one_error() -> None:
    items = load_evidence((VECTORS / "bundle-duplicate-key-pretty-printed.sigstore.json").read_bytes(), source="b")
    assert len(items) == 1 and isinstance(items[0], MalformedEvidence)
    assert str(items[0]) == "duplicate JSON key 'mediaType': two parsers could disagree on its value"


def test_json_lines_whose_first_line_is_broken_still_read_the_rest() -> None:
    # not a vector file: the shape that tells JSON Lines from one pretty-printed document
    line = b'{"payloadType":"t","payload":"e30=","signatures":[{"sig":"c2ln"}]}'
    items = load_evidence(b"not json\n" + line + b"\n" + line + b"\n", source="p")
    assert [type(i) for i in items] == [MalformedEvidence, Evidence, Evidence]
    assert [getattr(i, "source", None) for i in items[1:]] == ["p:2", "p:3"]
