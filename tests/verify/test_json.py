"""verify.formats.strict_json: strict JSON for evidence."""

from __future__ import annotations

import json
import re

import pytest

from verify.errors import LimitExceeded, MalformedEvidence
from verify.formats import strict_json
from verify.limits import MAX_JSON_DEPTH


def test_loads_plain_json_from_str_and_bytes() -> None:
    text = '{"a": [1, 2.5, "x", null, true], "b": {"c": "\u00e9"}}'
    assert strict_json.loads(text, what="doc") == json.loads(text)
    assert strict_json.loads(text.encode("utf-8"), what="doc") == json.loads(text)


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "a": 2}',
        '{"x": {"b": 1, "c": 2, "b": 1}}',
        '[{"ok": 1}, {"k": [{"dup": 1, "dup": 1}]}]',
    ],
)
def test_duplicate_keys_rejected_even_nested(text: str) -> None:
    with pytest.raises(
        MalformedEvidence, match=r"duplicate JSON key '(a|b|dup)': two parsers could disagree"
    ):
        strict_json.loads(text, what="doc")


def test_same_key_in_sibling_objects_is_fine() -> None:
    assert strict_json.loads('[{"a": 1}, {"a": 2}]', what="doc") == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_rejected(constant: str) -> None:
    with pytest.raises(
        MalformedEvidence, match=f"JSON constant {re.escape(constant)} is not allowed in evidence"
    ):
        strict_json.loads(f'{{"x": [{constant}]}}', what="doc")


def test_depth_limit() -> None:
    at_limit = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert strict_json.loads(at_limit, what="doc") is not None
    over = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
    with pytest.raises(LimitExceeded, match=f"doc nests JSON deeper than {MAX_JSON_DEPTH} levels"):
        strict_json.loads(over, what="doc")
    objects = '{"a":' * (MAX_JSON_DEPTH + 1) + "1" + "}" * (MAX_JSON_DEPTH + 1)
    with pytest.raises(LimitExceeded, match="deeper than"):
        strict_json.loads(objects.encode(), what="doc")


def test_depth_limit_refuses_before_parsing_a_huge_unbalanced_prefix() -> None:
    with pytest.raises(LimitExceeded, match="deeper than"):
        strict_json.loads("[" * 1_000_000, what="doc")


def test_brackets_inside_strings_do_not_count() -> None:
    deep_text = "[{" * 200
    doc = json.dumps({"s": deep_text, "t": 'quote \\" then [[[[ ' + "]" * 100, "u": "\\\\"})
    assert strict_json.loads(doc, what="doc")["s"] == deep_text
    # an escaped backslash before a quote ends the string: the brackets after it count again
    tricky = '["\\\\"' + ", [" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH + "]"
    with pytest.raises(LimitExceeded):
        strict_json.loads(tricky, what="doc")


def test_recursion_error_is_translated(monkeypatch: pytest.MonkeyPatch) -> None:
    # defence in depth: were the depth limit raised, the parser's recursion limit is still a rejection
    monkeypatch.setattr(strict_json, "MAX_JSON_DEPTH", 10**9)
    with pytest.raises(LimitExceeded, match="doc nests JSON too deeply"):
        strict_json.loads("[" * 200_000 + "]" * 200_000, what="doc")


@pytest.mark.parametrize(("data", "byte"), [(b'{"a": "\xff"}', 7), (b"\xc3\x28", 0), (b'"' + b"\xe2\x82", 1)])
def test_non_utf8_rejected_with_offset(data: bytes, byte: int) -> None:
    with pytest.raises(MalformedEvidence, match=rf"doc is not UTF-8 text \(byte {byte}\)"):
        strict_json.loads(data, what="doc")


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ('{"a": 1,}', 1, 9),
        ('{\n  "a": 1\n  "b": 2\n}', 3, 3),
        ("", 1, 1),
        ("[1, 2] trailing", 1, 8),
        ("{'a': 1}", 1, 2),
    ],
)
def test_invalid_json_message_has_line_and_column(text: str, line: int, column: int) -> None:
    with pytest.raises(
        MalformedEvidence, match=rf"doc is not valid JSON \(.+ at line {line} column {column}\)"
    ):
        strict_json.loads(text, what="doc")


def test_dumps_canonical_is_compact_sorted_utf8() -> None:
    value = {"b": [1, {"d": "\u00e9", "c": None}], "a": True}
    out = strict_json.dumps_canonical(value)
    assert out == '{"a":true,"b":[1,{"c":null,"d":"\u00e9"}]}'.encode()
    assert strict_json.loads(out, what="doc") == value
