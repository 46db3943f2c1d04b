"""JSON auto-healing: what a model wrote goes in, JSON that parses comes out."""

from __future__ import annotations

import json
import pickle
import re
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l0._utils import auto_correct_json as utils_auto_correct_json
from l0._utils import extract_json_from_markdown as utils_extract
from l0.structured import repair as repair_module
from l0.structured.repair import (
    NO_JSON,
    JSONRepairError,
    RepairResult,
    _repair,
    auto_correct_json,
    extract_json_from_markdown,
    parse_partial_json,
    repair_json,
)

# --- the README's examples -----------------------------------------------------------------


def test_readme_examples() -> None:
    assert utils_auto_correct_json('{"a": 1,}') == '{"a": 1}'
    assert utils_auto_correct_json('{"a": {"b": 1}') == '{"a": {"b": 1}}'
    text = """
Here's the JSON:
```json
{"key": "value"}
```
"""
    assert utils_extract(text) == '{"key": "value"}'


# --- one case per fix, with the exact text that must come out -------------------------------

CASES = [
    # (input, repaired text, corrections)
    ('{"a": 1,}', '{"a": 1}', ("trailing_comma",)),
    ("[1, 2, ]", "[1, 2]", ("trailing_comma",)),
    ('{"a": {"b": 1}', '{"a": {"b": 1}}', ("closed_brackets",)),
    ('{"a": [1, {"b": "x', '{"a": [1, {"b": "x"}]}', ("closed_string", "closed_brackets")),
    ("[[1, [2", "[[1, [2]]]", ("closed_brackets",)),
    ('"abc', '"abc"', ("closed_string",)),
    (
        '{"url": "http://example.com//x", // note\n"n": 1}',
        '{"url": "http://example.com//x", \n"n": 1}',
        ("removed_comments",),
    ),
    (
        '{"c": "/* kept */", /* dropped */ "d": 2}',
        '{"c": "/* kept */",  "d": 2}',
        ("removed_comments",),
    ),
    ('{"a": 1 # python comment\n}', '{"a": 1 \n}', ("removed_comments",)),
    ("[1 /* unterminated", "[1]", ("removed_comments", "closed_brackets")),
    (
        '{"a": True, "b": False, "c": None}',
        '{"a": true, "b": false, "c": null}',
        ("python_literals",),
    ),
    ("{'a': 'b'}", '{"a": "b"}', ("single_quotes",)),
    ("['say \"hi\"', 'it\\'s']", '["say \\"hi\\"", "it\'s"]', ("single_quotes",)),
    ("{'t': 'don't'}", '{"t": "don\'t"}', ("single_quotes", "unescaped_quotes")),
    ('{"a": "x\ny\tz\x01"}', '{"a": "x\\ny\\tz\\u0001"}', ("escaped_control_chars",)),
    ('{"a": "\\x41 \\q"}', '{"a": "\\\\x41 \\\\q"}', ("invalid_escapes",)),
    ('{"a": "He said "hi" to me"}', '{"a": "He said \\"hi\\" to me"}', ("unescaped_quotes",)),
    ('{"a": 1, "b', '{"a": 1}', ("dropped_dangling_key", "closed_brackets")),
    ('{"a": 1, "b"', '{"a": 1}', ("dropped_dangling_key", "closed_brackets")),
    ('{"a": 1, "b":', '{"a": 1}', ("dropped_dangling_key", "closed_brackets")),
    ('{"a": 1, "b": ', '{"a": 1}', ("dropped_dangling_key", "closed_brackets")),
    ('{"a": {"b": ', '{"a": {}}', ("dropped_dangling_key", "closed_brackets")),
    ('{"a": 1,', '{"a": 1}', ("trailing_comma", "closed_brackets")),
    ('{"a", "b": 1}', '{"b": 1}', ("dropped_dangling_key",)),
    ('{"a": , "b": 1}', '{"b": 1}', ("dropped_dangling_key",)),
    ("[1, 2,", "[1, 2]", ("trailing_comma", "closed_brackets")),
    ("[tru", "[true]", ("completed_literal", "closed_brackets")),
    ('{"a": nul', '{"a": null}', ("completed_literal", "closed_brackets")),
    ("[fa", "[false]", ("completed_literal", "closed_brackets")),
    ("[Tr", "[true]", ("completed_literal", "closed_brackets")),
    ("[12.", "[12]", ("truncated_number", "closed_brackets")),
    ("[1.5e-", "[1.5]", ("truncated_number", "closed_brackets")),
    (
        "[1, -",
        "[1]",
        ("truncated_number", "dropped_incomplete_value", "trailing_comma", "closed_brackets"),
    ),
    (
        '{"a": -',
        "{}",
        ("truncated_number", "dropped_incomplete_value", "dropped_dangling_key", "closed_brackets"),
    ),
    ('["abc\\', '["abc"]', ("closed_string", "closed_brackets")),
    ('["ab\\u12', '["ab"]', ("closed_string", "closed_brackets")),
    ('["\\ud83d', '[""]', ("closed_string", "closed_brackets")),
    ('{"ke', "{}", ("dropped_dangling_key", "closed_brackets")),
    ("{ke", "{}", ("dropped_dangling_key", "closed_brackets")),
    ('{"a": 1 "b": 2}', '{"a": 1, "b": 2}', ("missing_comma",)),
    ('{"a": "x"\n "b": 2}', '{"a": "x",\n "b": 2}', ("missing_comma",)),
    ("[1 2 3]", "[1, 2, 3]", ("missing_comma",)),
    ('["a" "b" {"c": 1} [2]]', '["a", "b", {"c": 1}, [2]]', ("missing_comma",)),
    ('{"a" 1}', '{"a": 1}', ("missing_colon",)),
    ('{a: 1, b_c: "x", 3: null}', '{"a": 1, "b_c": "x", "3": null}', ("unquoted_keys",)),
    ('{"a": hello world, "b": 2}', '{"a": "hello world", "b": 2}', ("unquoted_strings",)),
    (
        "[NaN, Infinity, -Infinity, undefined]",
        "[null, null, null, null]",
        ("nonstandard_literals",),
    ),
    ("[.5, +1, 007, 1., -.5e3]", "[0.5, 1, 7, 1, -0.5e3]", ("fixed_numbers",)),
    ("[1,,2]", "[1,2]", ("extra_comma",)),
    ("[,1]", "[1]", ("extra_comma",)),
    ('{{"a": 1}}', '{"a": 1}', ("skipped_characters", "extracted_from_prose")),
    ("[1; 2]", "[1, 2]", ("skipped_characters", "missing_comma")),
    ("[1, 2]]", "[1, 2]", ("extracted_from_prose",)),
    # A closer of an outer container closes the inner ones left open.
    ('{"a": [1, 2}', '{"a": [1, 2]}', ("closed_brackets",)),
    ('[{"a": 1]', '[{"a": 1}]', ("closed_brackets",)),
    ('Sure! Here it is: {"a": 1} Hope it helps.', '{"a": 1}', ("extracted_from_prose",)),
    ("Results [see below]: [1, 2]", "[1, 2]", ("extracted_from_prose",)),
    ('```json\n{"a": 1,}\n```', '{"a": 1}', ("extracted_from_markdown", "trailing_comma")),
    ("```\n[1, 2]\n```", "[1, 2]", ("extracted_from_markdown",)),
    (
        'Here:\n```json\n{"a": [1, 2',
        '{"a": [1, 2]}',
        ("extracted_from_markdown", "closed_brackets"),
    ),
    ('```json\n{"a": 1}\n``', '{"a": 1}', ("extracted_from_markdown",)),
    ("True", "true", ("python_literals",)),
    ("'abc'", '"abc"', ("single_quotes",)),
]


@pytest.mark.parametrize(("text", "expected", "corrections"), CASES)
def test_repairs(text: str, expected: str, corrections: tuple[str, ...]) -> None:
    result = repair_json(text)
    assert result.text == expected
    assert result.corrections == corrections
    assert result.repaired
    assert result.value == json.loads(expected)
    assert auto_correct_json(text) == expected


def test_repair_result_values() -> None:
    assert repair_json('{"a": [1, {"b": "x').value == {"a": [1, {"b": "x"}]}
    assert repair_json("{'a': True, 'b': None}").value == {"a": True, "b": None}
    assert repair_json('```json\n{"a": "x\ny"}\n```').value == {"a": "x\ny"}


def test_comment_markers_inside_strings_are_data() -> None:
    text = '{"url": "https://a.b/c//d", "glob": "/* not a comment */", "hash": "#1",}'
    assert repair_json(text).value == {
        "url": "https://a.b/c//d",
        "glob": "/* not a comment */",
        "hash": "#1",
    }
    single = "{'url': 'http://x.y//z'} // trailing"
    assert repair_json(single).value == {"url": "http://x.y//z"}


def test_result_is_a_frozen_slotted_dataclass() -> None:
    result = repair_json("[1,]")
    assert isinstance(result, RepairResult)
    with pytest.raises(AttributeError):
        result.text = "x"  # type: ignore[misc]
    assert not hasattr(result, "__dict__")


# --- valid JSON comes back unchanged ------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1}',
        '  {\n  "a" : [1 , 2.5e-3, -0],\n\t"b": "ünï\\u00e9 \\n \u2028 😀"\n}\n',
        "[]",
        "{}",
        '"just a string"',
        "42",
        "null",
        '{"a": "http://x//y /* z */"}',
    ],
)
def test_valid_json_is_returned_byte_for_byte(text: str) -> None:
    result = repair_json(text)
    assert result.text is text
    assert result.corrections == ()
    assert not result.repaired


def test_valid_json_orjson_refuses_is_still_unchanged() -> None:
    # Deeper than orjson's nesting limit, and a lone surrogate escape: both valid JSON.
    deep = " " + "[" * 2000 + "]" * 2000 + "\n"
    assert repair_json(deep).text is deep
    lone = '["\\ud800", 1]'
    result = repair_json(lone)
    assert result.text is lone
    assert result.value == ["\ud800", 1]


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "Sorry, I can't help with that.", "```json\n```"])
def test_no_json_raises(text: str) -> None:
    with pytest.raises(JSONRepairError) as info:
        repair_json(text)
    assert info.value.reason == NO_JSON
    assert isinstance(info.value, ValueError)
    with pytest.raises(JSONRepairError):
        auto_correct_json(text)


def test_error_reports_position_and_pickles() -> None:
    with pytest.raises(JSONRepairError) as info:
        repair_json("  nothing")
    assert info.value.pos == 2
    assert "position 2" in str(info.value)
    copy = pickle.loads(pickle.dumps(info.value))
    assert (copy.reason, copy.pos) == (NO_JSON, 2)


# --- extraction ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('Here:\n```json\n{"key": "value"}\n```\nBye', '{"key": "value"}'),
        ("```python\nx = 1\n```\n```\n[1]\n```", "[1]"),
        ('```\n[1]\n```\n```json\n{"a": 1}\n```', '{"a": 1}'),
        ('```JSON\n{"a": 1}', '{"a": 1}'),
        ('The answer is {"a": [1, "}"]}. Done.', '{"a": [1, "}"]}'),
        ("See [note] then [1, 2] ok", "[1, 2]"),
        ('  {"a": 1  ', '{"a": 1'),
        ("no json here  ", "no json here"),
    ],
)
def test_extract_json_from_markdown(text: str, expected: str) -> None:
    assert extract_json_from_markdown(text) == expected


# --- partial values while streaming ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", None),
        ("Here is", None),
        ("```json\n", None),
        ("{", {}),
        ('{"na', {}),
        ('{"name": "Ad', {"name": "Ad"}),
        ('{"name": "Ada", "ok": tr', {"name": "Ada"}),
        ('{"name": "Ada", "ok": true', {"name": "Ada", "ok": True}),
        ('{"n": 12', {"n": 12}),
        ('{"n": 12.', {"n": 12}),
        ("[1, -", [1]),
        ("[1, {", [1, {}]),
        ('```json\n{"a": [1, 2', {"a": [1, 2]}),
        ("tru", None),
        ('{"a": 1}', {"a": 1}),
    ],
)
def test_parse_partial_json(text: str, expected: Any) -> None:
    assert parse_partial_json(text) == expected


def test_parse_partial_json_grows_with_the_stream() -> None:
    doc = '{"user": {"name": "Ada Lovelace", "tags": ["math", "poetry"], "age": 36}}'
    seen = [parse_partial_json(doc[:k]) for k in range(len(doc) + 1)]
    assert seen[-1] == json.loads(doc)
    for value in seen:
        assert value is None or _is_prefix_consistent(value, json.loads(doc), loose_numbers=True)


# --- properties ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)
json_containers = st.one_of(
    st.lists(json_values, max_size=5), st.dictionaries(st.text(max_size=8), json_values, max_size=5)
)


def _same(a: Any, b: Any) -> bool:
    """Equality that tells ``True`` from ``1`` and ``1.0`` from ``1``."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _is_prefix_consistent(part: Any, full: Any, *, loose_numbers: bool = False) -> bool:
    """Whether ``part`` is what a prefix of ``full``'s serialization can show.

    Containers hold a prefix of the original's elements (members, in order); all but the
    last are equal, the last is itself prefix-consistent; a string is a prefix of the
    original string; anything else is equal (with ``loose_numbers``, a number may differ,
    as the digits after the cut are unknown).
    """
    if isinstance(full, list):
        if not isinstance(part, list) or len(part) > len(full):
            return False
        if not part:
            return True
        head_equal = all(_same(a, b) for a, b in zip(part[:-1], full, strict=False))
        return head_equal and _is_prefix_consistent(
            part[-1], full[len(part) - 1], loose_numbers=loose_numbers
        )
    if isinstance(full, dict):
        if not isinstance(part, dict) or len(part) > len(full):
            return False
        keys = list(part)
        if keys != list(full)[: len(keys)]:
            return False
        if not keys:
            return True
        head_equal = all(_same(part[k], full[k]) for k in keys[:-1])
        last = keys[-1]
        return head_equal and _is_prefix_consistent(
            part[last], full[last], loose_numbers=loose_numbers
        )
    if isinstance(full, str):
        return isinstance(part, str) and full.startswith(part)
    if loose_numbers and isinstance(full, (int, float)) and not isinstance(full, bool):
        return isinstance(part, (int, float)) and not isinstance(part, bool)
    return _same(part, full)


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[-+0-9.eE]+|true|false|null|[\[\]{},:]')


def _cut_points(text: str) -> list[int]:
    """Every offset of compact JSON except those inside a number.

    That is: after each token (a complete element, a key, a separator), and inside strings
    (escapes included) and ``true``/``false``/``null``, whose prefixes name one value.
    """
    points: list[int] = []
    for m in _TOKEN.finditer(text):
        token = m.group()
        if token[0] in '"tfn':
            points.extend(range(m.start() + 1, m.end()))
        points.append(m.end())
    return points


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(json_values)
def test_valid_json_is_unchanged(value: Any) -> None:
    text = orjson.dumps(value).decode()
    assert repair_json(text).text is text
    pretty = json.dumps(value, indent=2, ensure_ascii=False)
    assert repair_json(pretty).text is pretty
    # orjson takes the fast path above; the scanner must copy valid JSON verbatim too.
    for candidate in (text, pretty):
        scanned = _repair(candidate, partial=False)
        assert scanned.text == candidate
        assert scanned.corrections == ()


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(json_containers)
def test_truncated_json_repairs_to_a_prefix_of_the_value(value: Any) -> None:
    text = orjson.dumps(value).decode()
    for cut in _cut_points(text):
        result = repair_json(text[:cut])
        assert _is_prefix_consistent(result.value, value), (text[:cut], result)
        assert json.loads(result.text) == result.value
        partial = parse_partial_json(text[:cut])
        assert partial is None or _is_prefix_consistent(partial, value)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(json_containers)
def test_any_cut_repairs_to_valid_json(value: Any) -> None:
    text = json.dumps(value, indent=1)
    for cut in range(1, len(text) + 1):
        result = repair_json(text[:cut])
        assert _is_prefix_consistent(result.value, value, loose_numbers=True), text[:cut]


def _repair_or_error(text: str) -> RepairResult | JSONRepairError:
    try:
        return repair_json(text)
    except JSONRepairError as e:
        return e


def _check_arbitrary(text: str) -> None:
    result = _repair_or_error(text)
    if isinstance(result, JSONRepairError):
        # Never UNPARSABLE: that would mean the scanner emitted broken JSON.
        assert result.reason == NO_JSON, result
    else:
        # The text is real JSON and the value is what it says. (orjson reads integers
        # beyond 64 bits as floats, the stdlib exactly; the value follows orjson.)
        try:
            expected = orjson.loads(result.text)
        except orjson.JSONDecodeError:
            expected = json.loads(result.text)
        assert expected == result.value
    parse_partial_json(text)


_JSONISH = st.text(alphabet="{}[]\"',:\\/*#\n\t 0123456789-+.eEtrufalsnNTFIxu`", max_size=60)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.one_of(st.text(max_size=80), _JSONISH))
def test_arbitrary_text_never_breaks_the_repair(text: str) -> None:
    _check_arbitrary(text)


_PIECES = st.sampled_from(
    [
        "{", "}", "[", "]", ",", ":", " ", "\n", '"a"', '"b c"', "'d'", "'e f'", '"x,y: z"',
        '"it\'s"', "'q\"'", "1", "-2.5", "1e3", "true", "null", "True", "None", "False",
        "// c\n", "/* x */", "# h\n", '"u // v"', '"w # z"', "abc", "tru", '"\\n"', "'",
        '"', "01", "NaN", '"\\u00e9"', '"a\\"b"', '"x\ny"', "\t", "é", "{}", "[]",
        "key_1", "a.b", "None_x", "'True'", '"None"', "x-y", "-", "'a b: c'",
    ]
)  # fmt: skip


def _with_and_without_shortcuts(text: str, partial: bool) -> list[Any]:
    """What ``_repair`` makes of ``text`` with its two shortcuts on, then off."""
    results: list[Any] = []
    for shortcuts in (True, False):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(repair_module, "_BULK_RUNS", shortcuts)
            try:
                r = _repair(text, partial)
            except JSONRepairError as e:
                results.append(e.reason)
            else:
                results.append((r.text, r.corrections))
    return results


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(_PIECES, max_size=40).map("".join), st.booleans())
def test_shortcuts_read_like_the_token_scanner(text: str, partial: bool) -> None:
    # Bulk runs copy many members per regex match and the cut-short path closes text with
    # string operations: both must produce exactly what reading token by token produces.
    with_shortcuts, without = _with_and_without_shortcuts(text, partial)
    assert with_shortcuts == without


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(json_containers, st.sampled_from([None, 1]), st.booleans())
def test_shortcuts_close_cut_json_like_the_token_scanner(
    value: Any, indent: int | None, partial: bool
) -> None:
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    for cut in range(1, len(text)):
        with_shortcuts, without = _with_and_without_shortcuts(text[:cut], partial)
        assert with_shortcuts == without, text[:cut]


# --- adversarial inputs: each must finish in linear time, without recursion ---------------------

MB = 1_000_000
ADVERSARIAL = {
    "deep_arrays": "[" * 100_000,
    "deep_objects": '{"a":' * 100_000,
    "deep_closed": "[" * 100_000 + "]" * 100_000,
    "long_string": '["' + "x" * MB,
    "long_escapes": '["' + "\\n" * (MB // 2),
    "control_chars": '["' + "\x01" * MB,
    "commas": "[" + "," * MB,
    "elements": "[1" + ",1" * (MB // 2),
    "missing_commas": "[" + "1 " * (MB // 2),
    "unmatched_closers": "[" + "}" * MB,
    "comments": "[" + "/**/" * (MB // 4),
    "quotes": '["' + '" "' * (MB // 3),
    "inner_quotes": '["' + 'a"b' * (MB // 3),
    "backslashes": '["' + "\\" * MB,
    "prose": "x " * (MB // 2),
    "brackets_in_prose": "[x" * (MB // 2),
    "fences": "```" * (MB // 3),
    "unquoted_keys": "{" + "a:1 " * (MB // 4),
    "missing_commas_in_object": "{" + '"a":1 ' * (MB // 6),
    "strings_without_commas": "[" + '"a" ' * (MB // 4),
    "comments_between_values": "[" + "/**/1 " * (MB // 6),
    "python_members": "{" + "'a': True, " * (MB // 11),
    "truncated_members": "{" + '"a": "x", ' * (MB // 10),
    "nested_truncated": '[{"a": [' * (MB // 8),
    "open_comment": "[1, /*" + "x" * MB,
}


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_adversarial_input_finishes(name: str) -> None:
    result = _repair_or_error(ADVERSARIAL[name])
    if isinstance(result, JSONRepairError):
        assert result.reason == NO_JSON
    else:
        assert result.text
