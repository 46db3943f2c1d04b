"""Every public function of the JSON repair takes linear time, whatever the input.

Each adversarial input is built at a size where linear work takes well under a second and
quadratic work takes minutes (the bracket matcher this replaced: ~56 s at 100 kB, ~95 min at
1 MB), and must come back within the test's timeout. No timing is measured or compared: how
the time grows is a benchmark's job (the figures are in docs/performance.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l0.structured.repair import (
    JSONRepairError,
    _balanced_end,
    _fence_span,
    _find_start,
    auto_correct_json,
    extract_json_from_markdown,
    parse_partial_json,
    repair_json,
)

MB = 1_000_000
# Inputs that take a step of Python per character or per escape (the scanner reads them)
# cost up to 3 s a megabyte. At an eighth of that they still show a quadratic term plainly
# (the bracket matcher's took a hundred times as long there), and keep the suite short.
SCANNED = MB // 8


def _times(piece: str, size: int) -> int:
    return max(1, size // len(piece))


# name: (builds the input of about n characters, n for the larger size)
ADVERSARIAL: dict[str, tuple[Callable[[int], str], int]] = {
    # Strings: escaped quotes in a string left open made the bracket matcher quadratic.
    "escaped_quotes_left_open": (lambda n: '["' + '\\"' * _times("..", n), SCANNED),
    "escaped_quotes_in_prose": (lambda n: 'see ["' + '\\"' * _times("..", n), SCANNED),
    "escaped_quotes_and_brackets": (lambda n: 'see ["' + '\\"[' * _times("...", n), SCANNED),
    "escaped_quotes_fenced": (lambda n: '```json\n["' + '\\"' * _times("..", n), SCANNED),
    "escaped_quotes_other_fence": (lambda n: '```py\n["' + '\\"' * _times("..", n), SCANNED),
    "escaped_quotes_in_an_object": (lambda n: '{"a": "' + '\\"' * _times("..", n), SCANNED),
    "closers_after_escaped_quotes": (lambda n: 'x {"' + '\\"}' * _times("...", n), SCANNED),
    "backslashes_left_open": (lambda n: '["' + "\\" * n, SCANNED),
    "unicode_escapes_cut": (lambda n: '["' + "\\u12" * _times("....", n), SCANNED),
    "quotes": (lambda n: '"' * n, MB),
    "quotes_in_an_array": (lambda n: "[" + '"' * n + "]", SCANNED),
    "single_quotes": (lambda n: "[" + "'" * n + "]", SCANNED),
    "single_quoted_strings": (lambda n: "[" + "'x', " * _times(".....", n) + "'y']", MB),
    "inner_quotes": (lambda n: '["' + 'a"b' * _times("...", n) + '"]', SCANNED),
    "inner_quotes_left_open": (lambda n: '["' + 'a" b' * _times("....", n), SCANNED),
    "strings_never_closing": (lambda n: "[" + "'x " * _times("...", n) + "]", SCANNED),
    "strings_left_open_in_turn": (lambda n: "[" + '"a", \'' * _times("......", n), SCANNED),
    "control_characters": (lambda n: '["' + "\x01" * n + '"]', MB),
    # Brackets.
    "deep_nesting": (lambda n: "[" * (n // 2) + "]" * (n // 2), SCANNED),
    "deep_nesting_in_prose": (lambda n: "x " + "[" * (n // 2) + "]" * (n // 2), SCANNED),
    "open_arrays": (lambda n: "[" * n, SCANNED),
    "open_objects": (lambda n: "{" * n, SCANNED),
    "open_keys": (lambda n: "{" + '"k": {' * _times("......", n), SCANNED),
    "unmatched_closers": (lambda n: "[" + "}" * n, MB),
    "braces_in_prose": (lambda n: "{ " * _times("..", n), SCANNED),
    "brackets_around_words": (lambda n: "so " + "[note] " * _times(".......", n), SCANNED),
    "trailing_commas": (lambda n: "[" * (n // 3) + "1," + "]," * (n // 3 - 1) + "]", SCANNED),
    "open_members": (lambda n: '[{"a": [' * _times("........", n), SCANNED),
    # Separators.
    "commas": (lambda n: "[" + "," * n + "]", MB),
    "commas_left_open": (lambda n: "[" + "," * n, MB),
    "colons": (lambda n: "{" + ":" * n + "}", MB),
    "missing_commas": (lambda n: "[" + "1 " * _times("..", n) + "2]", SCANNED),
    "keys_without_values": (lambda n: "{" + '"a",' * _times("....", n) + "}", SCANNED),
    # Comments.
    "line_comment_left_open": (lambda n: "[1, //" + "x" * n, MB),
    "block_comment_left_open": (lambda n: "[1, /*" + "* " * _times("..", n), MB),
    "comments": (lambda n: "[" + "1, // c\n" * _times("........", n) + "2]", SCANNED),
    "block_comments": (lambda n: "[" + "1, /* c */ " * _times("...........", n) + "2]", MB),
    "comments_in_a_row": (lambda n: "[1" + " /**/" * _times(".....", n) + " 2]", SCANNED),
    "comments_before_a_closer": (lambda n: "[1," + " /**/" * _times(".....", n) + "]", SCANNED),
    "hash_comments": (lambda n: "[" + "#\n" * _times("..", n) + "1]", SCANNED),
    # Words.
    "a_long_word": (lambda n: "[" + "a" * n + "]", MB),
    "a_long_word_left_open": (lambda n: "[" + "a" * n, MB),
    "a_long_key": (lambda n: "{" + "a" * n + ": 1}", MB),
    "a_long_bare_word": (lambda n: "a" * n, MB),
    "unquoted_words": (lambda n: "[" + "a " * _times("..", n) + "]", MB),
    "unquoted_keys": (lambda n: "{" + "a: True, " * _times(".........", n) + "b: 1}", SCANNED),
    "number_like_words": (lambda n: "[" + "1e1." * _times("....", n) + "]", MB),
    "literal_prefixes": (lambda n: "[" + "tru " * _times("....", n) + "]", MB),
    "signs": (lambda n: "[" + "-" * n, MB),
    "garbage": (lambda n: "[" + "@" * n + "]", MB),
    "blanks": (lambda n: "[" + " " * n, MB),
    "blanks_before_a_value": (lambda n: "[" + " " * n + "1]", MB),
    "prose": (lambda n: "x " * _times("..", n), MB),
    # Markdown.
    "a_fence_with_no_end": (lambda n: "```json\n" + "[1, " * _times("....", n), SCANNED),
    "fences": (lambda n: "```\n" * _times("....", n), MB),
    "fences_of_other_languages": (lambda n: "```py\n" * _times("......", n), MB),
    "backticks": (lambda n: "`" * n, SCANNED),
    "a_fence_cut_in_its_backticks": (lambda n: "```json\n[1]\n" + "`" * n, MB),
    "nesting_in_a_fence": (lambda n: "```json\n" + "[" * n + "\n```", SCANNED),
}

FUNCTIONS: dict[str, Callable[[str], Any]] = {
    "repair_json": repair_json,
    "parse_partial_json": parse_partial_json,
    "auto_correct_json": auto_correct_json,
    "extract_json_from_markdown": extract_json_from_markdown,
}


def _call(function: Callable[[str], Any], text: str) -> None:
    try:
        function(text)
    except JSONRepairError:
        pass  # text with no JSON in it is an answer too


# A guard against quadratic work, not a speed limit: linear inputs take < 3 s here.
@pytest.mark.timeout(60)
@pytest.mark.parametrize("function", list(FUNCTIONS))
@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_adversarial_input_finishes(name: str, function: str) -> None:
    build, size = ADVERSARIAL[name]
    _call(FUNCTIONS[function], build(size))


def test_the_inputs_have_the_sizes_they_claim() -> None:
    for name, (build, size) in ADVERSARIAL.items():
        assert 0.9 * size <= len(build(size)) <= 1.1 * size, name


# --- the bracket matcher reads as it did before it was made linear ---------------------------

# It used to try a string at every quote, and so at each escaped quote of a string left open.
_OLD_BALANCE_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[{}\[\]]', re.S)


def _old_balanced_end(s: str, start: int) -> int:
    depth = 0
    for m in _OLD_BALANCE_TOKEN.finditer(s, start):
        c = m.group()
        if c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
            if depth == 0:
                return m.end()
    return -1


def _old_extract_json_from_markdown(text: str) -> str:
    span = _fence_span(text)
    if span is not None:
        return text[span[0] : span[1]].strip()
    start = _find_start(text)
    if start >= 0:
        end = _old_balanced_end(text, start)
        if end > 0:
            return text[start:end]
    return text.strip()


_SOUP = st.lists(
    st.sampled_from(
        [
            "{", "}", "[", "]", '"', '\\"', "\\", "\\\\", '"a"', '"]"', '"{"', '"\\""',
            "'", "a", " ", "\n", ",", ":", "1", "true", "```", "```json\n", "```py\n",
            "\n```", "Sure: ", "[note] ", "{x}", "é",
        ]
    ),
    max_size=40,
).map("".join)  # fmt: skip


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.one_of(_SOUP, st.text(alphabet='{}[]"\\a `\n', max_size=40)))
def test_bracket_matcher_reads_as_before(text: str) -> None:
    for start, c in enumerate(text):
        if c in "{[":
            assert _balanced_end(text, start) == _old_balanced_end(text, start), (text, start)
    assert extract_json_from_markdown(text) == _old_extract_json_from_markdown(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # An escaped quote in a string left open: the bracket after it counts, as prose.
        ('["\\"', '["\\"'),
        ('["\\"]', '["\\"]'),
        ('see ["' + '\\"' * 1000 + "]]", '["' + '\\"' * 1000 + "]"),
        # A string that closes hides its brackets.
        ('["\\"", "]"]', '["\\"", "]"]'),
        ('x ["a\\"b", {"c": "\\"}"}] ["', '["a\\"b", {"c": "\\"}"}]'),
        ('[ "\\\\"]', '[ "\\\\"]'),  # an escaped backslash: the quote closes the string
        ('{"a": "\\', '{"a": "\\'),  # a lone backslash at the end: nothing closes
    ],
)
def test_bracket_matcher_on_strings_left_open(text: str, expected: str) -> None:
    assert extract_json_from_markdown(text) == expected
    assert _old_extract_json_from_markdown(text) == expected
