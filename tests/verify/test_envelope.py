"""verify.formats.envelope: DSSE PAE, strict base64, envelope shapes."""

from __future__ import annotations

import base64
import copy
import json
import re
from typing import Any

import pytest

from tests.verify import _factory as f
from verify import limits
from verify.errors import MalformedEvidence
from verify.formats.envelope import Envelope, Signature, b64decode, pae

# --- PAE ------------------------------------------------------------------------------------------


def test_pae_matches_the_dsse_spec_example() -> None:
    assert (
        pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


@pytest.mark.parametrize(
    ("payload_type", "payload"),
    [
        ("", b""),
        (f.INTOTO, b'{"_type": "x"}'),
        ("t\u00e9st/\u2603", b"\x00\xff binary \n with spaces"),  # lengths are in bytes, not characters
        ("a" * 1000, b"b" * 100_000),
    ],
)
def test_pae_counts_utf8_bytes(payload_type: str, payload: bytes) -> None:
    kind = payload_type.encode("utf-8")
    expected = (
        b"DSSEv1 "
        + str(len(kind)).encode()
        + b" "
        + kind
        + b" "
        + str(len(payload)).encode()
        + b" "
        + payload
    )
    assert pae(payload_type, payload) == expected
    env = Envelope(payload_type=payload_type, payload=payload, signatures=(Signature("", b"s"),))
    assert env.pae() == expected


def test_pae_distinguishes_type_and_payload_boundaries() -> None:
    # the length prefixes make ("a b", "c") and ("a", "b c") sign different bytes
    assert pae("a b", b"c") != pae("a", b"b c")


# --- strict base64 --------------------------------------------------------------------------------


def test_b64decode_standard_and_url_safe_alphabets() -> None:
    data = bytes(range(256))
    assert b64decode(base64.b64encode(data).decode(), what="x") == data
    assert b64decode(base64.urlsafe_b64encode(data).decode(), what="x") == data
    assert b64decode(base64.urlsafe_b64encode(data).decode().rstrip("="), what="x") == data  # unpadded too
    assert b64decode("", what="x") == b""


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("YR==", "x is not canonical base64"),  # 'a' is YQ==; R sets bits that must be zero
        ("YWJ=", "x is not canonical base64"),  # 'ab' is YWI=
        ("YQ==!", "x is not base64 text"),
        ("YQ ==", "x is not base64 text"),
        ("YQ\n==", "x is not base64 text"),
        ("Y=Q=", "x is not base64 text"),
        ("YQ===", "x is not base64 text"),
        ("YWJj====", "x is not base64 text"),  # padding a whole quantum long: no alphabet spells it
        ("YWJ\u00e9", "x is not base64 text"),
        ("YQ==YQ==", "x is not base64 text"),
        ("YQ-/", "x mixes the standard and URL-safe base64 alphabets"),
        ("YQ=", "x is not canonical base64 (wrong padding)"),
        ("Y", "x is not valid base64"),  # 1 character cannot encode anything
        ("YWJjZ", "x is not valid base64"),
        (None, "x is not base64 text"),
        (b"YQ==", "x is not base64 text"),
        (12, "x is not base64 text"),
    ],
)
def test_b64decode_rejects(value: object, message: str) -> None:
    with pytest.raises(MalformedEvidence, match=re.escape(message)):
        b64decode(value, what="x")


# --- Envelope.from_dict ---------------------------------------------------------------------------


def _good() -> dict[str, Any]:
    return {
        "payloadType": f.INTOTO,
        "payload": f.b64(b"{}"),
        "signatures": [{"keyid": "k1", "sig": f.b64(b"sig-one")}, {"keyid": "k2", "sig": f.b64(b"sig-two")}],
    }


def test_from_dict_reads_fields_and_never_mutates_input() -> None:
    raw = _good()
    raw["extra"] = {"ignored": [1, 2]}
    raw["signatures"][0]["extra"] = True
    before = copy.deepcopy(raw)
    env = Envelope.from_dict(raw)
    assert raw == before
    assert env.payload_type == f.INTOTO
    assert env.payload == b"{}"
    assert env.signatures == (Signature("k1", b"sig-one"), Signature("k2", b"sig-two"))


def test_keyid_missing_or_null_reads_as_empty() -> None:
    raw = _good()
    del raw["signatures"][0]["keyid"]
    raw["signatures"][1]["keyid"] = None
    env = Envelope.from_dict(raw)
    assert [s.keyid for s in env.signatures] == ["", ""]


def _with(**changes: Any) -> dict[str, Any]:
    raw = _good()
    for key, value in changes.items():
        if value is _DELETE:
            del raw[key]
        else:
            raw[key] = value
    return raw


_DELETE = object()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "env is not a JSON object"),
        ("text", "env is not a JSON object"),
        (None, "env is not a JSON object"),
        (_with(payload=_DELETE), "env has no 'payload' field; is it a DSSE envelope"),
        (_with(payloadType=_DELETE), "env has no 'payloadType' field"),
        (_with(signatures=_DELETE), "env has no 'signatures' field"),
        (_with(payloadType=None), "env payloadType is not a string"),
        (_with(payloadType=["x"]), "env payloadType is not a string"),
        (_with(payload="not base64!"), "env payload is not base64 text"),
        (_with(payload="YR=="), "env payload is not canonical base64"),
        (_with(signatures=[]), "env has no signatures"),
        (_with(signatures={"sig": "YQ=="}), "env has no signatures"),
        (_with(signatures="YQ=="), "env has no signatures"),
        (
            _with(signatures=[{"sig": "YQ=="}] * (limits.MAX_SIGNATURES + 1)),
            f"env has {limits.MAX_SIGNATURES + 1} signatures; at most {limits.MAX_SIGNATURES} are read",
        ),
        (_with(signatures=[{"keyid": "k"}]), "env signature 0 has no 'sig' field"),
        (_with(signatures=[{"sig": "YQ=="}, "YQ=="]), "env signature 1 has no 'sig' field"),
        (_with(signatures=[{"sig": "YQ==", "keyid": 7}]), "env signature 0 keyid is not a string"),
        (_with(signatures=[{"sig": "YQ==", "keyid": {"id": "k"}}]), "env signature 0 keyid is not a string"),
        (_with(signatures=[{"sig": ""}]), "env signature 0 is empty"),
        (_with(signatures=[{"sig": None}]), "env signature 0 is not base64 text"),
        (_with(signatures=[{"sig": "YR=="}]), "env signature 0 is not canonical base64"),
    ],
)
def test_from_dict_rejects_malformed(raw: Any, message: str) -> None:
    before = copy.deepcopy(raw)
    with pytest.raises(MalformedEvidence, match=re.escape(message)):
        Envelope.from_dict(raw, what="env")
    assert raw == before


def test_exactly_max_signatures_is_accepted() -> None:
    env = Envelope.from_dict(_with(signatures=[{"sig": "YQ=="}] * limits.MAX_SIGNATURES))
    assert len(env.signatures) == limits.MAX_SIGNATURES


def test_round_trip_to_dict_from_dict_and_json_line() -> None:
    raw = _good()
    raw["signatures"][1]["keyid"] = ""
    env = Envelope.from_dict(raw)
    assert env.to_dict() == raw
    assert Envelope.from_dict(env.to_dict()) == env
    line = env.to_json_line()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == raw
    assert Envelope.from_json(line) == env


def test_url_safe_envelope_reserialises_as_standard_base64() -> None:
    payload = b"\xfb\xff\xfe" * 3  # encodes with '+' and '/' in the standard alphabet
    raw = {
        "payloadType": "t",
        "payload": base64.urlsafe_b64encode(payload).decode(),
        "signatures": [{"sig": base64.urlsafe_b64encode(b"\xff\xfe").decode().rstrip("=")}],
    }
    env = Envelope.from_dict(raw)
    assert env.payload == payload
    assert env.to_dict()["payload"] == base64.b64encode(payload).decode()


def test_from_json_rejects_invalid_json_naming_what() -> None:
    with pytest.raises(MalformedEvidence, match=r"my\.jsonl:3 is not valid JSON"):
        Envelope.from_json(b"{not json", what="my.jsonl:3")
