"""verify.formats.evidence: finding envelopes and bundles in .intoto.jsonl files and Sigstore bundles."""

from __future__ import annotations

import hashlib
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

import verify.formats.evidence as evidence_module
from tests.verify import _factory as f
from verify.errors import InputError, LimitExceeded, MalformedEvidence
from verify.formats.envelope import Envelope
from verify.formats.evidence import Evidence, load_evidence, read_evidence_file

BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"


@cache
def _signed(n: int) -> str:
    envelope = f.envelope_dict(
        f.payload_of(f.statement([(f"file{n}", {"sha256": f"{n:064x}"})])), [f.private_key()]
    )
    return json.dumps(envelope)


def _envelope(n: int = 0) -> dict[str, Any]:
    """Envelope n, the same bytes every time (ECDSA signatures are randomised)."""
    result: dict[str, Any] = json.loads(_signed(n))
    return result


def _ok(item: Evidence | MalformedEvidence) -> Evidence:
    assert isinstance(item, Evidence), item
    return item


def test_single_envelope_file() -> None:
    line = f.json_line(_envelope())
    [item] = load_evidence(line, source="p.intoto.jsonl")
    item = _ok(item)
    assert item.source == "p.intoto.jsonl"
    assert item.envelope == Envelope.from_dict(_envelope())
    assert item.raw == line.strip()
    assert item.digest == hashlib.sha256(line.strip()).hexdigest()
    assert item.bundle is None and not item.has_certificate


def test_json_lines_with_several_envelopes() -> None:
    lines = [f.json_line(_envelope(n)) for n in range(3)]
    items = [_ok(i) for i in load_evidence(b"".join(lines), source="p.intoto.jsonl")]
    assert [i.source for i in items] == ["p.intoto.jsonl:1", "p.intoto.jsonl:2", "p.intoto.jsonl:3"]
    assert [i.envelope for i in items] == [Envelope.from_dict(_envelope(n)) for n in range(3)]
    assert [i.digest for i in items] == [hashlib.sha256(line.strip()).hexdigest() for line in lines]


def test_crlf_and_blank_lines_between_envelopes() -> None:
    data = f.json_line(_envelope(0)).replace(b"\n", b"\r\n") + b"\n   \n" + f.json_line(_envelope(1))
    items = [_ok(i) for i in load_evidence(data, source="p")]
    assert [i.source for i in items] == ["p:1", "p:4"]


def test_line_numbers_count_leading_blank_lines() -> None:
    # regression: the line numbers were those of the file with its leading blank lines stripped
    data = b"\n\n" + f.json_line(_envelope(0)) + b"{broken\n" + f.json_line(_envelope(1))
    items = load_evidence(data, source="p.intoto.jsonl")
    assert isinstance(items[1], MalformedEvidence)
    assert str(items[1]).startswith("p.intoto.jsonl:4 is not valid JSON")
    assert [_ok(items[0]).source, _ok(items[2]).source] == ["p.intoto.jsonl:3", "p.intoto.jsonl:5"]


def test_pretty_printed_single_document() -> None:
    text = json.dumps(_envelope(), indent=2).encode()
    assert text.count(b"\n") > 3
    [item] = load_evidence(b"\n" + text + b"\n\n", source="p.json")
    item = _ok(item)
    assert item.source == "p.json"
    assert item.envelope == Envelope.from_dict(_envelope())
    assert item.digest == hashlib.sha256(text).hexdigest()


def test_pretty_printed_document_that_is_not_an_envelope() -> None:
    [item] = load_evidence(json.dumps({"payload": "YQ=="}, indent=2).encode(), source="p.json")
    assert isinstance(item, MalformedEvidence)
    assert str(item) == "p.json has no 'payloadType' field; is it a DSSE envelope?"


def test_bad_line_among_good_ones_is_returned_as_its_error() -> None:
    bad_sig = _envelope(1)
    bad_sig["signatures"] = []
    lines = [
        f.json_line(_envelope(0)),
        b"not json at all\n",
        f.json_line(bad_sig),
        f.json_line([1, 2]),
        f.json_line(_envelope(4)),
    ]
    items = load_evidence(b"".join(lines), source="p.intoto.jsonl")
    assert [type(i).__name__ for i in items] == [
        "Evidence",
        "MalformedEvidence",
        "MalformedEvidence",
        "MalformedEvidence",
        "Evidence",
    ]
    assert str(items[1]).startswith("p.intoto.jsonl:2 is not valid JSON (Expecting value at line 1 column 1)")
    assert str(items[2]) == "p.intoto.jsonl:3 has no signatures"
    assert str(items[3]) == "p.intoto.jsonl:4 is not a JSON object"
    assert _ok(items[4]).source == "p.intoto.jsonl:5"


@pytest.mark.parametrize("data", [b"", b"\n", b"  \n\t\r\n"])
def test_empty_file(data: bytes) -> None:
    with pytest.raises(
        MalformedEvidence, match=r"p\.intoto\.jsonl is empty; expected DSSE envelopes or a Sigstore bundle"
    ):
        load_evidence(data, source="p.intoto.jsonl")


def test_single_line_that_does_not_parse() -> None:
    [item] = load_evidence(b'{"a": 1, "a": 2}', source="p")
    assert isinstance(item, MalformedEvidence)
    assert str(item) == "duplicate JSON key 'a': two parsers could disagree on its value"


def test_too_deep_document_is_over_a_limit() -> None:
    with pytest.raises(LimitExceeded, match="p nests JSON deeper than"):
        load_evidence(b"[" * 100 + b"]" * 100, source="p")


def test_over_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    data = f.json_line(_envelope())
    monkeypatch.setattr(evidence_module, "MAX_EVIDENCE_BYTES", len(data) - 1)
    with pytest.raises(LimitExceeded, match=f"p is {len(data)} bytes; at most {len(data) - 1} are read"):
        load_evidence(data, source="p")


def test_too_many_envelopes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evidence_module, "MAX_ENVELOPES_PER_FILE", 3)
    line = f.json_line(_envelope())
    assert len(load_evidence(line * 3, source="p")) == 3
    assert len(load_evidence(line * 3 + b"\n\n", source="p")) == 3  # blank lines do not count
    with pytest.raises(LimitExceeded, match="p holds more than 3 envelopes"):
        load_evidence(line * 4, source="p")


def test_read_evidence_file(tmp_path: Path) -> None:
    path = tmp_path / "p.intoto.jsonl"
    path.write_bytes(f.json_line(_envelope()))
    assert read_evidence_file(path) == f.json_line(_envelope())


def test_read_evidence_file_over_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.intoto.jsonl"
    path.write_bytes(b"x" * 101)
    monkeypatch.setattr(evidence_module, "MAX_EVIDENCE_BYTES", 100)
    with pytest.raises(LimitExceeded, match=re.escape(f"{path} is 101 bytes; at most 100 are read")):
        read_evidence_file(path)


def test_read_evidence_file_missing(tmp_path: Path) -> None:
    with pytest.raises(
        InputError, match=re.escape(f"cannot read attestation {tmp_path / 'x'}: No such file")
    ):
        read_evidence_file(tmp_path / "x")


# --- Sigstore bundles -----------------------------------------------------------------------------


def _bundle(**changes: Any) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {"publicKey": {"hint": "dev"}},
        "dsseEnvelope": _envelope(),
    }
    for key, value in changes.items():
        if value is None:
            bundle.pop(key, None)
        else:
            bundle[key] = value
    return bundle


@pytest.mark.parametrize(
    "media_type",
    [
        "application/vnd.dev.sigstore.bundle+json;version=0.1",
        "application/vnd.dev.sigstore.bundle+json;version=0.2",
        "application/vnd.dev.sigstore.bundle+json;version=0.3",
        BUNDLE_V03,
    ],
)
def test_bundle_with_key_hint(media_type: str) -> None:
    raw = json.dumps(_bundle(mediaType=media_type)).encode()
    [item] = load_evidence(raw, source="a.sigstore.json")
    item = _ok(item)
    assert item.envelope == Envelope.from_dict(_envelope())
    assert item.bundle is not None and item.bundle.media_type == media_type
    assert item.bundle.envelope == item.envelope and item.bundle.public_key_hint is not None
    assert not item.has_certificate
    assert item.digest == hashlib.sha256(raw).hexdigest()


@pytest.mark.parametrize(
    "material",
    [
        {"certificate": {"rawBytes": "MIIB"}, "tlogEntries": []},
        {"x509CertificateChain": {"certificates": [{"rawBytes": "MIIB"}]}},
    ],
)
def test_bundle_with_certificate(material: dict[str, Any]) -> None:
    [item] = load_evidence(json.dumps(_bundle(verificationMaterial=material), indent=1).encode(), source="b")
    assert _ok(item).has_certificate


def test_message_signature_bundle_has_no_envelope() -> None:
    bundle = _bundle(
        dsseEnvelope=None,
        messageSignature={"messageDigest": {"algorithm": "SHA2_256", "digest": "eA=="}, "signature": "YQ=="},
    )
    [item] = load_evidence(json.dumps(bundle).encode(), source="m.sigstore.json")
    item = _ok(item)
    assert item.envelope is None
    assert item.bundle is not None and item.bundle.message is not None
    assert (item.bundle.message.digest_algorithm, item.bundle.message.digest, item.bundle.message.signature) == (
        "SHA2_256", b"x", b"a")


@pytest.mark.parametrize("signature", [
    {"messageDigest": {"algorithm": "SHA2_256", "digest": "x"}, "signature": "YQ=="},  # base64 is read once, strictly
    {"messageDigest": {"algorithm": "SHA2_256", "digest": "eA=="}, "signature": "Y"},
    {"messageDigest": {"digest": "eA=="}, "signature": "YQ=="},
    {"messageDigest": {"algorithm": "SHA2_256", "digest": "eA=="}},
    "not an object",
])
def test_message_signature_bundle_with_unreadable_fields_is_malformed(signature: Any) -> None:
    [item] = load_evidence(json.dumps(_bundle(dsseEnvelope=None, messageSignature=signature)).encode(), source="m")
    assert isinstance(item, MalformedEvidence), item


@pytest.mark.parametrize(
    ("bundle", "message"),
    [
        (
            _bundle(mediaType="application/vnd.dev.sigstore.bundle+json;version=9"),
            "b is a bundle of unknown media type 'application/vnd.dev.sigstore.bundle+json;version=9'",
        ),
        (_bundle(mediaType=None, payload="x"), "b has no 'payloadType' field"),
        (_bundle(dsseEnvelope=None), "b is a bundle with neither a dsseEnvelope nor a messageSignature"),
        (_bundle(messageSignature={"messageDigest": {"algorithm": "SHA2_256", "digest": "eA=="}, "signature": "YQ=="}),
         "b is a bundle with both a dsseEnvelope and a messageSignature"),  # (one read would hide the other)
        (_bundle(verificationMaterial=None), "b is a bundle without verificationMaterial"),
        (_bundle(verificationMaterial=[]), "b is a bundle without verificationMaterial"),
        (
            _bundle(dsseEnvelope={"payload": "YQ==", "payloadType": "t", "signatures": "x"}),
            "b dsseEnvelope has no signatures",
        ),
        (_bundle(dsseEnvelope=[]), "b dsseEnvelope is not a JSON object"),
    ],
)
def test_bundle_rejections(bundle: dict[str, Any], message: str) -> None:
    [item] = load_evidence(json.dumps(bundle).encode(), source="b")
    assert isinstance(item, MalformedEvidence)
    assert str(item) == message or str(item).startswith(message)


def test_unhashable_media_type_is_rejected() -> None:
    [item] = load_evidence(json.dumps(_bundle(mediaType=["x"])).encode(), source="b")
    assert isinstance(item, MalformedEvidence)
    assert str(item) == "b is a bundle of unknown media type ['x']"


@pytest.mark.parametrize("material", [
    {"certificate": None}, {"certificate": {"rawBytes": "not base64!"}}, {"x509CertificateChain": {"certificates": []}},
    {"x509CertificateChain": "x"}, {"publicKey": {"hint": 1}}, {},
])
def test_unreadable_verification_material_is_malformed(material: dict[str, Any]) -> None:
    [item] = load_evidence(json.dumps(_bundle(verificationMaterial=material)).encode(), source="b")
    assert isinstance(item, MalformedEvidence), item


def test_has_certificate_without_a_bundle() -> None:
    assert not Evidence(source="s", digest="d", envelope=None).has_certificate
