"""The fast path for damage spread through a document must read like the token scanner.

``_rewrite`` repairs a complete container site by site and hands back what the scanner would
make of it (text, value and corrections, in the same order), or None. These tests hold it to
the scanner: on hand-picked cases where the order of corrections is subtle, on documents
written wrong the ways models write them, and on soups of JSON-ish pieces.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l0.structured import repair as repair_module
from l0.structured.repair import JSONRepairError, _repair, _rewrite, repair_json


def _scanned(text: str, partial: bool = False) -> tuple[str, Any, tuple[str, ...]] | str:
    """What ``_repair`` makes of ``text`` with every shortcut off: the token scanner."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(repair_module, "_BULK_RUNS", False)
        try:
            r = _repair(text, partial)
        except JSONRepairError as e:
            return e.reason
    return (r.text, r.value, r.corrections)


def _with_shortcuts(text: str, partial: bool = False) -> tuple[str, Any, tuple[str, ...]] | str:
    try:
        r = _repair(text, partial)
    except JSONRepairError as e:
        return e.reason
    return (r.text, r.value, r.corrections)


def _rewritten(text: str) -> tuple[str, Any, tuple[str, ...]] | None:
    start = len(text) - len(text.lstrip(" \t\n\r"))
    result = _rewrite(text, start)
    if result is None:
        return None
    return (result[0], result[1], tuple(result[2]))


def _same(a: Any, b: Any) -> bool:
    """Equality that tells ``True`` from ``1``, ``1.0`` from ``1`` and NaN from nothing."""
    return repr(a) == repr(b)


def _assert_reads_like_scanner(text: str) -> None:
    fast = _rewritten(text)
    scanned = _scanned(text)
    if fast is not None:
        assert not isinstance(scanned, str), (text, fast, scanned)
        assert _same(fast[1], scanned[1]), text
        assert fast[2] == scanned[2], text
        # With no fixes the scanner hands back the input byte for byte; _repair does too.
        if scanned[2]:
            assert fast[0] == scanned[0], text
    with_shortcuts = _with_shortcuts(text)
    if isinstance(scanned, str):
        assert with_shortcuts == scanned, text
    else:
        assert not isinstance(with_shortcuts, str), text
        assert with_shortcuts[0] == scanned[0] and with_shortcuts[2] == scanned[2], text
        assert _same(with_shortcuts[1], scanned[1]), text


# --- cases where the order of corrections is subtle ---------------------------------------

HANDLED = [
    # (input, repaired text, corrections)
    ('{"a": 1, "b": [1, 2,],}', '{"a": 1, "b": [1, 2]}', ("trailing_comma",)),
    ("[1 ,\n]", "[1]", ("trailing_comma",)),
    ('{"a": 1, // c\n}', '{"a": 1}', ("removed_comments", "trailing_comma")),
    ('{"a": 1 /* c */ , }', '{"a": 1}', ("removed_comments", "trailing_comma")),
    ("[1 // one\n 2]", "[1, \n 2]", ("removed_comments", "missing_comma")),
    ('{"a": 1\n "b": 2}', '{"a": 1,\n "b": 2}', ("missing_comma",)),
    ('["a" "b" 3 true]', '["a", "b", 3, true]', ("missing_comma",)),
    # A key's fixes count once its value starts, after the value's own fixes.
    ("{a: True}", '{"a": true}', ("python_literals", "unquoted_keys")),
    ("{a: 1, b: True}", '{"a": 1, "b": true}', ("unquoted_keys", "python_literals")),
    ("{a: /* c */ True}", '{"a":  true}', ("removed_comments", "python_literals", "unquoted_keys")),
    ("{a: 'x'}", '{"a": "x"}', ("single_quotes", "unquoted_keys")),
    ("{'a': True}", '{"a": true}', ("python_literals", "single_quotes")),
    (
        "{'a': 1, b: True}",
        '{"a": 1, "b": true}',
        ("single_quotes", "python_literals", "unquoted_keys"),
    ),
    (
        "{a: {'b': None}}",
        '{"a": {"b": null}}',
        ("unquoted_keys", "python_literals", "single_quotes"),
    ),
    ("{\"k\x01\": 'v'}", '{"k\\u0001": "v"}', ("single_quotes", "escaped_control_chars")),
    ("{'k': 'a\nb'}", '{"k": "a\\nb"}', ("single_quotes", "escaped_control_chars")),
    ("['say \"hi\"', 'it\\'s']", '["say \\"hi\\"", "it\'s"]', ("single_quotes",)),
    ('{"a": "He said "hi" to me"}', '{"a": "He said \\"hi\\" to me"}', ("unescaped_quotes",)),
    ("[NaN, -Infinity, undefined]", "[null, null, null]", ("nonstandard_literals",)),
    ("[+1, .5]", "[1, 0.5]", ("fixed_numbers",)),
    ('{"url": "http://x//y", "n": 1} ', '{"url": "http://x//y", "n": 1}', ()),
]


@pytest.mark.parametrize(("text", "expected", "corrections"), HANDLED)
def test_rewrite_handles(text: str, expected: str, corrections: tuple[str, ...]) -> None:
    fast = _rewritten(text)
    assert fast is not None
    assert fast[0] == expected
    assert fast[2] == corrections
    assert fast[1] == orjson.loads(expected)
    _assert_reads_like_scanner(text)


LEFT_TO_THE_SCANNER = [
    "[1, abc]",  # an unquoted string
    "[1,, 2]",  # a doubled comma
    "[,]",  # a comma after no value
    '{"a",}',  # a key without a value
    '{"a": 1} and more',  # prose after the JSON
    "[1] // done",  # a comment after the JSON
    '["a" NaN]',  # the quote does not end the string: it reads on
    '{"a"b": 1}',  # keys are read without the unescaped-quote lookahead
    "[1, 2",  # cut short
    "[1 /* open",  # an open comment
    '{"a": 1} {"b": 2}',  # two values
]


@pytest.mark.parametrize("text", LEFT_TO_THE_SCANNER)
def test_rewrite_leaves_other_damage_to_the_scanner(text: str) -> None:
    assert _rewritten(text) is None
    _assert_reads_like_scanner(text)


def test_valid_json_that_missed_the_orjson_path_comes_back_unchanged() -> None:
    # More "]" than "[" in its strings: not read as cut short, so _rewrite sees it.
    text = '  {"a": "]]"}\n'
    assert _repair(text, partial=False).text is text
    assert repair_json(text).text is text


# --- documents written wrong the ways models write them ------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**6), max_value=10**6)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.text(max_size=10)
    | st.sampled_from(["it's", 'say "hi"', "a // b", "# x", "/* y */", "C:\\new", "x\ny", "t\tz"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=16,
)
json_containers = st.one_of(
    st.lists(json_values, min_size=1, max_size=5),
    st.dictionaries(st.text(max_size=6), json_values, min_size=1, max_size=5),
)
_PYTHON_LITERALS = {"true": "True", "false": "False", "null": "None"}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_COMMENTS = ["// note\n", "# note\n", "/* c */ ", '// it\'s "x"\n']


class _Writer:
    """Serializes a value the way a model gets it wrong, each habit drawn at random."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.indent = rng.choice([None, 2])
        self.quote = rng.choice(['"', '"', "'"])
        self.unquoted_keys = rng.random() < 0.3
        self.python = rng.random() < 0.3
        self.raw_controls = rng.random() < 0.3
        self.raw_quotes = rng.random() < 0.2
        self.comments = rng.choice([0.0, 0.0, 0.3])
        self.trailing = rng.choice([0.0, 0.0, 0.5])
        self.missing = rng.choice([0.0, 0.0, 0.4])

    def write(self, value: Any, depth: int = 0) -> str:
        if isinstance(value, (list, dict)):
            return self.container(value, depth)
        if isinstance(value, str):
            return self.string(value, self.quote)
        if value is None or isinstance(value, bool):
            literal = json.dumps(value)
            return _PYTHON_LITERALS[literal] if self.python else literal
        return json.dumps(value)

    def container(self, value: list[Any] | dict[str, Any], depth: int) -> str:
        items = (
            [self.key(k) + ": " + self.write(v, depth + 1) for k, v in value.items()]
            if isinstance(value, dict)
            else [self.write(v, depth + 1) for v in value]
        )
        pad = "" if self.indent is None else "\n" + " " * (self.indent * (depth + 1))
        parts = []
        for k, item in enumerate(items):
            parts.append(pad + self.maybe_comment() + item)
            if k < len(items) - 1:
                parts.append(" " if self.rng.random() < self.missing else ",")
                if self.indent is None:
                    parts.append(" ")
            elif items and self.rng.random() < self.trailing:
                parts.append(",")
            if self.indent is not None and self.rng.random() < self.comments:
                parts.append(" " + self.rng.choice(_COMMENTS).rstrip("\n"))
        close = "" if self.indent is None or not items else "\n" + " " * (self.indent * depth)
        opener, closer = ("{", "}") if isinstance(value, dict) else ("[", "]")
        return opener + "".join(parts) + close + closer

    def key(self, key: str) -> str:
        if self.unquoted_keys and _IDENTIFIER.fullmatch(key):
            return key
        return self.string(key, self.quote)

    def string(self, text: str, quote: str) -> str:
        out = []
        for ch in text:
            if ch == "\\" or (ch == quote and not (self.raw_quotes and quote == '"')):
                out.append("\\" + ch)
            elif ch < " " and not self.raw_controls:
                out.append(json.dumps(ch)[1:-1])
            else:
                out.append(ch)
        return quote + "".join(out) + quote

    def maybe_comment(self) -> str:
        return self.rng.choice(_COMMENTS) if self.rng.random() < self.comments else ""


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(json_containers, st.randoms(use_true_random=False))
def test_rewrite_reads_written_wrong_documents_like_the_scanner(
    value: Any, rng: random.Random
) -> None:
    _assert_reads_like_scanner(_Writer(rng).write(value))


def test_rewrite_takes_the_common_damage() -> None:
    # The property above holds vacuously if _rewrite always gives up: it must not.
    rng = random.Random(7)
    value = {"name": "Ada", "tags": ["x", "y"], "ok": True, "n": [1, 2.5, None], "s": "a\nb"}
    answered = 0
    for _ in range(200):
        text = _Writer(rng).write(value)
        answered += _rewritten(text) is not None
    assert answered > 150


# --- soups of JSON-ish pieces inside a container ---------------------------------------------

_PIECES = st.sampled_from(
    [
        "{", "}", "[", "]", ",", ":", " ", "\n", '"a"', "'b'", '"c d"', "'e f'", '"x,y: z"',
        '"it\'s"', "'q\"'", "1", "-2.5", "1e3", "01", "+1", ".5", "true", "null", "True",
        "None", "False", "NaN", "-Infinity", "undefined", "// c\n", "/* x */", "# h\n",
        '"u // v"', "abc", "a_b", '"\\n"', '"\\q"', "'\\''", '"', "'", '"\\u00e9"', '"x\ny"',
        "\t", "\x01", "é", "{}", "[]", "key:", "k: 1", '"k": ', "'k': ", '"say "hi" now"',
        '"a"b"', '"a" ', " true", "-", "\\",
    ]
)  # fmt: skip


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(_PIECES, max_size=30).map("".join), st.sampled_from(["[]", "{}"]))
def test_rewrite_reads_soups_like_the_scanner(soup: str, brackets: str) -> None:
    _assert_reads_like_scanner(brackets[0] + soup + brackets[1])
