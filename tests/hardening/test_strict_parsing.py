"""Strict parsing: one meaning per document, or a clean rejection (never a crash, never a second reading).

Duplicate keys, non-UTF-8 text, unpaired surrogates, NaN/Infinity, numbers that overflow or are
too long to convert, non-canonical base64, ECDSA signature encodings, weak digests and
repository URIs that are not URIs.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from tests.conftest import ROOT, AttestRunner, make_keypair
from tests.hardening._helpers import DEV, artefact_digests, envelope_line, evidence, policy, pub
from tests.verify import _factory as f
from verify.errors import DigestMismatch, EvidenceRejected, MalformedEvidence, PolicyError, PolicyViolation
from verify.formats import strict_json
from verify.formats.envelope import b64decode
from verify.formats.evidence import Evidence, load_evidence
from verify.formats.statement import parse_statement
from verify.policy import SourceRule
from verify.policy_file import load_policy
from verify.verifier import verify_artifact

BUNDLE = ROOT / "tests" / "assets" / "sigstore" / "gh-custom-issuer.sigstore.json"


def _reject(data: bytes, match: str, **policy_rules: Any) -> EvidenceRejected:
    with pytest.raises(EvidenceRejected, match=match) as info:
        verify_artifact("app", evidence(data), policy=policy(**policy_rules), digests=artefact_digests())
    return info.value


def _signed_payload(payload: bytes) -> bytes:
    """An envelope correctly signed by DEV over ``payload``: only the statement step can refuse it."""
    return f.json_line(f.envelope_dict(payload, [DEV]))


# --- duplicate keys ---------------------------------------------------------------------------------


def test_duplicate_key_in_an_envelope_is_refused() -> None:
    good = json.loads(envelope_line())
    text = json.dumps(good)
    doubled = text.replace('"payloadType": ', '"payloadType": "text/plain", "payloadType": ', 1)
    [item] = load_evidence(doubled.encode(), source="p")
    assert isinstance(item, MalformedEvidence) and "duplicate JSON key 'payloadType'" in str(item)


def test_duplicate_key_in_a_signed_statement_is_refused() -> None:
    statement = json.dumps(f.statement())
    doubled = statement.replace('"predicateType": ', '"predicateType": "https://evil/v1", "predicateType": ', 1)
    _reject(_signed_payload(doubled.encode()), "duplicate JSON key 'predicateType'")
    with pytest.raises(MalformedEvidence, match="duplicate JSON key 'predicateType'"):
        parse_statement(doubled.encode())


def test_duplicate_key_in_a_bundle_is_refused_before_sigstore_python_sees_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from sigstore.models import Bundle

    import verify.sigstore._native as native
    import verify.sigstore.verifier as vs

    text = BUNDLE.read_text()
    doubled = text.replace('"mediaType"', '"mediaType": "application/x-other", "mediaType"', 1)
    Bundle.from_json(doubled)  # sigstore-python's own parser takes the last value: it would not notice
    parsed = [0]
    monkeypatch.setattr(native, "parse", lambda e: parsed.__setitem__(0, parsed[0] + 1))
    items = load_evidence(doubled.encode(), source="b.sigstore.json")
    assert [type(i) for i in items] == [MalformedEvidence]
    assert "duplicate JSON key 'mediaType'" in str(items[0])
    hook = vs.make_bundle_verifier(trusted_root=None)
    with pytest.raises(MalformedEvidence, match="duplicate JSON key"):
        verify_artifact("a", items, policy=policy(source=None, builders=()), digests=lambda: {"sha256": "0" * 64},
                        bundle_verifier=hook)
    assert parsed[0] == 0


def test_sigstore_python_parses_exactly_the_bytes_we_parsed_strictly() -> None:
    # the Evidence sigstore-python gets is made from the same bytes, so there is no second reading
    [item] = load_evidence(b"\n\n" + BUNDLE.read_bytes() + b"\n", source="b")
    assert isinstance(item, Evidence) and item.raw == BUNDLE.read_bytes().strip()
    assert item.bundle is not None and json.loads(item.raw) == item.bundle.document


# --- text -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("payload", "message"), [
    (b'{"_type": "\xff"}', r"statement is not UTF-8 text \(byte 11\)"),
    (b"\xef\xbb\xbf" + json.dumps(f.statement()).encode(), "Unexpected UTF-8 BOM"),
    (json.dumps(f.statement()).replace('"dist/app.tar.gz"', '"\\ud800app"').encode(),
     "unpaired UTF-16 surrogate escape"),
    (json.dumps(f.statement()).replace('"dist/app.tar.gz"', '"\\udfff"').encode(),
     "unpaired UTF-16 surrogate escape"),
])
def test_signed_payloads_that_are_not_text_are_refused(payload: bytes, message: str) -> None:
    _reject(_signed_payload(payload), message)


def test_paired_surrogates_and_escaped_backslashes_are_text() -> None:
    value = strict_json.loads(r'{"a": "\ud83d\ude00", "b": "\\ud800"}', what="doc")
    assert value == {"a": "\U0001f600", "b": "\\ud800"}


# --- numbers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("number", "message"), [
    ("NaN", "JSON constant NaN is not allowed"),
    ("Infinity", "JSON constant Infinity is not allowed"),
    ("-Infinity", "JSON constant -Infinity is not allowed"),
    ("1e999999", "JSON number 1e999999 is out of range"),
    ("-1.5E400", "JSON number -1.5E400 is out of range"),
    ("9" * 1_000_000, "JSON integer of 1000000 digits is too large; at most 20 digits are read"),
    ("-" + "1" * 21, "JSON integer of 21 digits is too large"),
])
def test_numbers_without_one_exact_value_are_refused(number: str, message: str) -> None:
    statement = json.dumps(f.statement()).replace('"SOURCE_DATE_EPOCH": "1700000000"',
                                                  f'"SOURCE_DATE_EPOCH": {number}')
    assert number in statement
    started = time.monotonic()
    _reject(_signed_payload(statement.encode()), message)
    [item] = load_evidence(b'{"payload": "e30=", "x": ' + number.encode() + b"}", source="p")  # the envelope too
    assert isinstance(item, MalformedEvidence) and message in str(item)
    assert time.monotonic() - started < 2


def test_ordinary_numbers_still_parse() -> None:
    value = strict_json.loads('[0, -1, 18446744073709551615, 1.5e300, -0.0, 12345678901234567890]', what="doc")
    assert value == [0, -1, 2**64 - 1, 1.5e300, -0.0, 12345678901234567890]


# --- base64 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "message"), [
    ("YQ=", "not canonical base64 (wrong padding)"),
    ("YWI", None),  # unpadded: accepted (DSSE producers do both)
    ("YWI=", None),
    ("+/_-", "mixes the standard and URL-safe base64 alphabets"),
    ("YR==", "not canonical base64"),
    ("YQ==\n", "not base64 text"),
    (" YQ==", "not base64 text"),
])
def test_base64_has_one_spelling(value: str, message: str | None) -> None:
    if message is None:
        assert b64decode(value, what="x") == base64.b64decode(value + "=" * (-len(value) % 4))
    else:
        with pytest.raises(MalformedEvidence, match=message.replace("(", r"\(").replace(")", r"\)")):
            b64decode(value, what="x")


@pytest.mark.parametrize(("payload", "sig"), [("YQ=", "c2ln"), ("YQ==", "c2lnX+=="), ("YR==", "c2ln")])
def test_non_canonical_base64_is_refused_in_an_envelope(payload: str, sig: str) -> None:
    envelope = {"payloadType": f.INTOTO, "payload": payload, "signatures": [{"sig": sig}]}
    [item] = load_evidence(json.dumps(envelope).encode(), source="p")
    assert isinstance(item, MalformedEvidence) and "base64" in str(item)


# --- ECDSA encodings ----------------------------------------------------------------------------------

_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # the order of P-256


def _der_int(value: int, pad: int = 0) -> bytes:
    body = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    body = b"\x00" * ((body[0] >> 7) + pad) + body
    return b"\x02" + bytes([len(body)]) + body


def _encodings() -> dict[str, tuple[bytes, bool]]:
    statement = f.payload_of(f.statement())
    pae = f.pae(f.INTOTO, statement)
    assert isinstance(DEV, ec.EllipticCurvePrivateKey)
    der = DEV.sign(pae, ec.ECDSA(hashes.SHA256()))
    r, s = utils.decode_dss_signature(der)
    body = der[2:]

    def raw(a: int, b: int) -> bytes:
        return a.to_bytes(32, "big") + b.to_bytes(32, "big")

    return {
        "DER": (der, True),
        "raw r||s": (raw(r, s), True),
        "DER, high S (n - s)": (utils.encode_dss_signature(r, _N - s), True),
        "raw, high S": (raw(r, _N - s), True),
        "DER + trailing byte": (der + b"\x00", False),
        "BER long-form length": (b"\x30\x81" + bytes([len(body)]) + body, False),
        "non-minimal integer": (b"\x30" + bytes([len(_der_int(r, 1) + _der_int(s))]) + _der_int(r, 1) + _der_int(s),
                                False),
        "raw + trailing byte": (raw(r, s) + b"\x00", False),
        "raw, r = n (r mod n = 0)": (raw(_N, s), False),
        "raw, r = 0": (raw(0, s), False),
        "raw, truncated": (raw(r, s)[:-1], False),
    }


@pytest.mark.parametrize("name", list(_encodings()))
def test_ecdsa_signatures_in_der_or_raw_verify_and_nothing_else(name: str) -> None:
    signature, accepted = _encodings()[name]
    line = f.json_line({"payloadType": f.INTOTO, "payload": f.b64(f.payload_of(f.statement())),
                        "signatures": [{"keyid": "", "sig": f.b64(signature)}]})
    if accepted:
        assert verify_artifact("app", evidence(line), policy=policy(), digests=artefact_digests()).signer == "dev"
    else:
        _reject(line, "no signature verifies with a trusted key")
    key = pub(DEV)
    assert key.verify(signature, f.pae(f.INTOTO, f.payload_of(f.statement()))) is accepted


# --- weak digests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("weak", [("md5",), ("sha1",), ("md5", "sha1")])
def test_a_policy_object_listing_only_weak_digests_never_matches(weak: tuple[str, ...]) -> None:
    digests = f.digest_set(f.ARTIFACT, ("md5", "sha1"))
    statement = f.statement([("app", digests)])
    strict = policy().with_rules(digests=weak)
    assert strict.provenance.digests == weak  # the library lets a caller say so ...
    with pytest.raises(DigestMismatch, match="no subject has a digest attest accepts"):
        verify_artifact("app", evidence(envelope_line(statement)), policy=strict,
                        digests=lambda: f.digest_set(f.ARTIFACT, ("md5", "sha1", "sha256")))  # ... it never counts


def test_weak_digests_beside_a_strong_one_only_the_strong_one_counts() -> None:
    # the md5 matches our artefact, the sha256 does not: the verdict must follow the sha256
    digests = {**f.digest_set(f.ARTIFACT, ("md5",)), "sha256": "0" * 64}
    statement = f.statement([("app", digests)])
    with pytest.raises(DigestMismatch, match="is not among the 1 subject"):
        verify_artifact("app", evidence(envelope_line(statement)),
                        policy=policy().with_rules(digests=("md5", "sha256")),
                        digests=lambda: f.digest_set(f.ARTIFACT, ("md5", "sha256")))


# --- repository URIs ----------------------------------------------------------------------------------


def _policy_file(tmp_path: Path, source: str) -> Path:
    key = tmp_path / "dev.pub.pem"
    key.write_bytes(f.public_pem(DEV))
    path = tmp_path / "policy.yaml"
    path.write_text(f"version: 1\nidentities:\n  dev: {{keys: [dev.pub.pem]}}\nprovenance:\n  signed-by: [dev]\n"
                    f"  source:\n    uri: '{source}'\n")
    return path


@pytest.mark.parametrize(("uri", "problem"), [
    ("[", "is not a repository URI"),
    ("https://[github.com/acme/app", "is not a repository URI"),
    ("https:///", "names no repository"),
    ("github.com", "names no repository"),
])
def test_policy_source_uris_that_name_no_repository_fail_at_load(tmp_path: Path, uri: str, problem: str) -> None:
    with pytest.raises(PolicyError, match=rf"policy\.yaml:7: provenance\.source\.uri: .*{problem}"):
        load_policy(_policy_file(tmp_path, uri))


def test_policy_github_repo_that_is_not_a_url_fails_at_load(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\nidentities:\n"
                    "  g: {sigstore: {issuer: https://i, identity: x, github-repo: '[x/a/b'}}\n"
                    "provenance: {signed-by: [g]}\n")
    with pytest.raises(PolicyError, match=r"policy\.yaml:3: identities\.g\.sigstore"):
        load_policy(path)


def test_with_rules_refuses_a_source_that_is_not_a_repository() -> None:
    with pytest.raises(PolicyError, match=r"source repository '\[' is not a repository URI"):
        policy().with_rules(source=SourceRule(uri="["))


def test_a_hand_built_policy_with_a_broken_source_is_a_policy_error() -> None:
    # the rule refuses itself when it is made (issue 18: each value normalised where it is born), so no
    # policy built by hand reaches verification with a source that is not a repository
    with pytest.raises(PolicyError, match=r"source repository '\[' is not a repository URI"):
        verify_artifact("app", evidence(envelope_line()), policy=policy(source=SourceRule(uri="[")),
                        digests=artefact_digests())


def test_evidence_whose_source_is_not_a_url_is_a_mismatch() -> None:
    statement = f.statement(predicate=f.provenance_v1(repo="https://[github.com/acme/app"))
    with pytest.raises(PolicyViolation, match=r"source repository is 'git\+https://\[github.com/acme/app'|"
                                              r"source repository is 'https://\[github.com/acme/app'"):
        verify_artifact("app", evidence(envelope_line(statement)), policy=policy(), digests=artefact_digests())


def test_cli_source_uri_that_is_not_a_url_is_one_sentence_and_exit_2(tmp_path: Path, attest: AttestRunner) -> None:
    keys = make_keypair(tmp_path, "dev")
    artefact, attestation = tmp_path / "app", tmp_path / "p.intoto.jsonl"
    artefact.write_bytes(f.ARTIFACT)
    attestation.write_bytes(envelope_line())
    result = attest("verify", artefact, "--attestation", attestation, "--key", keys.public, "--source-uri", "[",
                    cwd=tmp_path)
    assert result.code == 2, result  # a flag that names no repository is a usage error
    assert result.err.strip() == "attest: --source-uri '[' is not a repository URI (Invalid IPv6 URL)."
