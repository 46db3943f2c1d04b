"""JSON auto-healing: turn what a model wrote into JSON that parses.

Models wrap JSON in markdown fences and prose, stop mid-value when a stream is cut, and
write JavaScript or Python instead of JSON. :func:`repair_json` undoes that with one
left-to-right scanner (:func:`_scan`): linear time, an explicit stack instead of recursion,
nothing emitted ever revisited. Three shortcuts spare it most of the work and give the same
result (the tests hold them to it): runs of valid members are copied one regex match at a
time; text that is valid JSON cut short is closed with C-level string operations and
checked by orjson; and a complete document with damage spread through it is fixed site by
site, the clean text between sites copied in bulk, and checked by orjson. Every kind of fix
made is reported as a short, stable name:

``extracted_from_markdown``
    the JSON was taken out of a ```json (or plain ```) fence.
``extracted_from_prose``
    text before or after the JSON value was dropped.
``trailing_comma`` / ``extra_comma``
    a comma before a closer (or at a truncation point) / a doubled or leading comma.
``closed_string`` / ``closed_brackets``
    an unterminated string / unclosed (or mismatched) arrays and objects were closed,
    innermost first.
``removed_comments``
    ``//``, ``/* */`` and ``#`` comments outside strings (inside a string they are data).
``python_literals`` / ``nonstandard_literals``
    ``True``/``False``/``None`` became JSON; ``NaN``, ``Infinity`` and ``undefined``,
    which JSON cannot represent, became ``null``.
``single_quotes``, ``escaped_control_chars``, ``invalid_escapes``, ``unescaped_quotes``
    string syntax fixed; an inner ``"`` is escaped only when the text after it does not
    read like the end of a value.
``dropped_dangling_key``
    a member cut off before its value (``{"a": 1, "b":``) was dropped.
``dropped_incomplete_value``, ``completed_literal``, ``truncated_number``
    a value cut mid-token: ``-`` is dropped, ``tru`` becomes ``true``, ``12.`` becomes
    ``12``.
``missing_comma``, ``missing_colon``, ``unquoted_keys``, ``unquoted_strings``,
``fixed_numbers``, ``skipped_characters``
    the remaining syntax fixes (``fixed_numbers``: ``+1``, ``01``, ``.5``, ``1.``).

Text that is already valid JSON is returned unchanged, byte for byte. Values are parsed by
orjson (so integers beyond 64 bits come back as floats); valid JSON that orjson refuses,
such as nesting deeper than 1024, is parsed without recursion instead.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "JSONRepairError",
    "RepairResult",
    "auto_correct_json",
    "extract_json_from_markdown",
    "parse_partial_json",
    "repair_json",
]

NO_JSON = "no JSON value found"
UNPARSABLE = "repaired text is still not valid JSON"


class JSONRepairError(ValueError):
    """The text holds no JSON value, or what it holds cannot be repaired.

    ``reason`` says why and ``pos`` is the character offset in the input it refers to.
    """

    def __init__(self, reason: str, pos: int) -> None:
        super().__init__(f"{reason} (at position {pos})")
        self.reason = reason
        self.pos = pos

    def __reduce__(self) -> tuple[type[JSONRepairError], tuple[str, int]]:
        return (type(self), (self.reason, self.pos))


@dataclass(frozen=True, slots=True)
class RepairResult:
    """The outcome of :func:`repair_json`.

    Attributes:
        text: the repaired JSON text; the input itself when it was already valid JSON.
        value: ``text`` parsed into Python objects.
        corrections: the names of the fixes applied, in the order first needed; empty when
            the input was valid JSON. The names are listed in this module's docstring.
    """

    text: str
    value: Any
    corrections: tuple[str, ...]

    @property
    def repaired(self) -> bool:
        """Whether anything had to be fixed."""
        return bool(self.corrections)


def repair_json(text: str) -> RepairResult:
    """Repair ``text`` into valid JSON and parse it.

    >>> r = repair_json('Sure:\\n```json\\n{"a": [1, 2,], "b": True\\n')
    >>> r.text
    '{"a": [1, 2], "b": true}'
    >>> r.corrections
    ('extracted_from_markdown', 'trailing_comma', 'python_literals', 'closed_brackets')

    Raises:
        JSONRepairError: ``text`` contains no JSON value.
    """
    if _may_be_valid(text):
        try:
            # Fast path: most model output is already valid, and orjson says so in C.
            return RepairResult(text, orjson.loads(text), ())
        except orjson.JSONDecodeError:
            pass
    return _repair(text, partial=False)


def auto_correct_json(text: str) -> str:
    """Return ``text`` repaired into valid JSON (see :func:`repair_json`).

    >>> auto_correct_json('{"a": 1,}')
    '{"a": 1}'
    >>> auto_correct_json('{"a": {"b": 1}')
    '{"a": {"b": 1}}'

    Raises:
        JSONRepairError: ``text`` contains no JSON value.
    """
    return repair_json(text).text


def parse_partial_json(text: str) -> Any | None:
    """Best-effort value of a JSON prefix, for showing objects while they stream in.

    Open strings, arrays and objects are closed; a key without a value yet and a literal
    or number cut mid-token are dropped. Returns ``None`` while nothing is parseable
    (which cannot be told apart from a document that is ``null``).

    >>> parse_partial_json('{"name": "Ad')
    {'name': 'Ad'}
    >>> parse_partial_json('{"name": "Ada", "ok": tr')
    {'name': 'Ada'}
    >>> parse_partial_json('```json\\n') is None
    True
    """
    if _may_be_valid(text):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    try:
        return _repair(text, partial=True).value
    except JSONRepairError:
        return None


def extract_json_from_markdown(text: str) -> str:
    """Return the JSON part of a model's answer, without repairing it.

    That is the content of the first ```json fence (else the first plain ``` fence), else
    the first balanced ``{...}`` or ``[...]`` in the prose, else ``text`` stripped.

    >>> extract_json_from_markdown('Here it is:\\n```json\\n{"key": "value"}\\n```\\n')
    '{"key": "value"}'
    >>> extract_json_from_markdown('The answer is {"a": [1, 2]}. Done.')
    '{"a": [1, 2]}'
    """
    span = _fence_span(text)
    if span is not None:
        return text[span[0] : span[1]].strip()
    start = _find_start(text)
    if start >= 0:
        end = _balanced_end(text, start)
        if end > 0:
            return text[start:end]
    return text.strip()


_MAY_END_JSON = frozenset('}]"0123456789el \t\n\r')


def _may_be_valid(text: str) -> bool:
    """A cheap test that rules out most truncated text before orjson is asked.

    A failed ``orjson.loads`` costs more than repairing a short document; a wrong guess
    here only costs speed, as the scanner returns valid JSON unchanged too.
    """
    return (
        text[-1:] in _MAY_END_JSON
        and text.count("{") == text.count("}")
        and text.count("[") == text.count("]")
    )


# --- locating the JSON --------------------------------------------------------------------

_FENCE_INFO = re.compile(r"[A-Za-z0-9_+.-]*")
_WS = re.compile(r"[ \t\n\r]+")
_WS0 = re.compile(r"[ \t\n\r]*")
_OPENER = re.compile(r"[{\[]")


def _fence_span(text: str) -> tuple[int, int] | None:
    """The content span of the first ```json fence, else of the first plain one."""
    plain: tuple[int, int] | None = None
    pos = text.find("```")
    while pos >= 0:
        info_end = _FENCE_INFO.match(text, pos + 3).end()  # type: ignore[union-attr]
        info = text[pos + 3 : info_end].lower()
        close = text.find("```", info_end)
        end = len(text) if close < 0 else close
        if close < 0:
            # A stream cut inside the closing fence leaves a line of backticks behind.
            nl = text.rfind("\n", info_end, end)
            if nl >= 0 and text[nl + 1 : end].strip(" \t\r`") == "":
                end = nl
        if info.startswith("json"):
            return (info_end, end)
        if plain is None and info == "":
            plain = (info_end, end)
        if close < 0:
            break
        pos = text.find("```", close + 3)
    return plain


def _find_start(s: str) -> int:
    """Index of the first ``{``/``[`` that plausibly opens JSON, else of the first one."""
    first = -1
    n = len(s)
    m = _OPENER.search(s)
    while m is not None:
        p = m.start()
        if first < 0:
            first = p
        k = _WS0.match(s, p + 1).end()  # type: ignore[union-attr]
        if k >= n:
            return p
        c = s[k]
        if s[p] == "{":
            # Keys may be unquoted, so any identifier start is plausible after "{".
            if c in "\"'}" or c.isalpha() or c == "_":
                return p
        elif c in "\"'{[]-." or c.isdigit():
            return p
        elif c.isalpha():
            # "[see below]" or "[note]" in prose is not JSON; "[true" and "[nul" are.
            w = _WORD.match(s, k)
            assert w is not None
            word = w.group()
            if word in _KNOWN_WORDS or (w.end() == n and word in _LITERAL_PREFIXES):
                return p
        m = _OPENER.search(s, p + 1)
    return first


# A string (group "closed" unset if it is left open to the end of the text), or a bracket.
# The quantifiers are possessive: a string's reading is unique, so there is nothing to retry.
_BALANCE_TOKEN = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+(?P<closed>")?|[{}\[\]]', re.S)
_BRACKET = re.compile(r"[{}\[\]]")


def _balanced_end(s: str, start: int) -> int:
    """End index of the bracket-balanced value at ``start``, or -1 if it never closes."""
    depth = 0
    for m in _brackets_outside_strings(s, start):
        if m.group() in "{[":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                return m.end()
    return -1


def _brackets_outside_strings(s: str, start: int) -> Iterator[re.Match[str]]:
    """The brackets from ``start`` on, but for those inside complete strings.

    The quote of a string left open is read as prose, and so is every later quote: each is
    escaped in that string's reading, so no string can close after it either. From there on
    only brackets count. (Trying a string at each of those quotes, to fail at the end of the
    text each time, made this quadratic.)
    """
    for m in _BALANCE_TOKEN.finditer(s, start):
        if m.group()[0] != '"':
            yield m
        elif m.group("closed") is None:
            yield from _BRACKET.finditer(s, m.start() + 1)
            return


# --- the scanner --------------------------------------------------------------------------

# What the scanner expects next.
_VALUE, _KEY, _COLON, _AFTER = 0, 1, 2, 3

_WORD = re.compile(r"[\w.+\-]+")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_LOOSE_NUMBER = re.compile(r"([-+]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([-+]?[0-9]+))?")
_PARTIAL_NUMBER = re.compile(r"[-+]?[0-9]*(?:\.[0-9]*)?(?:[eE][-+]?[0-9]*)?")
_UNQUOTED_TAIL = re.compile(r'[^,{}\[\]"\n\r/]*(?:/(?![/*])[^,{}\[\]"\n\r/]*)*')
_GARBAGE = re.compile(r"[^ \t\n\r\w{}\[\]\"',:/#.+\-]+")
_RUNS = {c: re.compile(re.escape(c) + "+") for c in "}]:,"}

_LITERALS = {"true": "true", "false": "false", "null": "null"}
# Words that need no thought: the literals and the commonest small numbers.
_PLAIN_WORDS = _LITERALS | {str(k): str(k) for k in range(-9, 100)}
_PYTHON_LITERALS = {"True": "true", "False": "false", "None": "null"}
_NONSTANDARD = {
    w: "null" for w in ("NaN", "-NaN", "Infinity", "-Infinity", "+Infinity", "undefined")
}


def _literal_prefixes() -> dict[str, str]:
    prefixes: dict[str, str] = {}
    for table in (_LITERALS, _PYTHON_LITERALS, _NONSTANDARD):
        for word, json_text in table.items():
            for k in range(1, len(word)):
                # "N" may start None or NaN: both become null, so it stays unambiguous.
                prefixes.setdefault(word[:k], json_text)
    for sign in "-+":
        prefixes.pop(sign, None)  # a lone sign is an unfinished number
    return prefixes


_LITERAL_PREFIXES = _literal_prefixes()
_KNOWN_WORDS = frozenset(_LITERALS) | frozenset(_PYTHON_LITERALS) | frozenset(_NONSTANDARD)

# Runs of complete members whose values are scalars, valid JSON exactly as the scanner
# would read it, are copied in one C-level regex match instead of token by token: most of a
# broken document is still valid. A run ends with a comma (kept pending: it may be
# trailing), with a last scalar before the closer ("last"), or with the head of a container
# element ("head"). Each piece of a run begins with its own character class, so a failed
# attempt gives back at most one member and the scanner reads that member itself. Strings
# with escapes end a run too.
_J_WS = r"[ \t\n\r]*"
_J_VALUE = (
    r'(?:"[^"\\\x00-\x1f]*"|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?'
    r"|true|false|null)"
)
_J_KEY = rf'{_J_WS}"[^"\\\x00-\x1f]*"{_J_WS}:{_J_WS}'
_ARRAY_RUN = re.compile(
    rf"(?:{_J_WS}{_J_VALUE}{_J_WS},)*"
    rf"(?:(?P<last>{_J_WS}{_J_VALUE}{_J_WS}(?=\]))|(?P<head>{_J_WS}(?=[{{\[])))?"
)
_OBJECT_RUN = re.compile(
    rf"(?:{_J_KEY}{_J_VALUE}{_J_WS},)*"
    rf"(?:(?P<last>{_J_KEY}{_J_VALUE}{_J_WS}(?=}}))|(?P<head>{_J_KEY}(?=[{{\[])))?"
)
# What the first non-blank character of a run can be; anything else is not worth a match.
_ARRAY_RUN_START = frozenset('"-0123456789tfn')
_OBJECT_RUN_START = frozenset('"')
# Tests turn the shortcuts (bulk runs, the cut-short and the site-by-site fast paths) off,
# to check them against the token-by-token scanner.
_BULK_RUNS = True


_DQ_PLAIN = re.compile(r'[^"\\\x00-\x1f]*')
_SQ_PLAIN = re.compile(r"[^'\"\\\x00-\x1f]*")
_CONTROL = re.compile(r"[\x00-\x1f]+")
_CONTROL_TABLE = {i: f"\\u{i:04x}" for i in range(0x20)} | {
    0x08: "\\b",
    0x09: "\\t",
    0x0A: "\\n",
    0x0C: "\\f",
    0x0D: "\\r",
}
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")
_HEX_PARTIAL = re.compile(r"[0-9a-fA-F]{0,3}")
_SIMPLE_ESCAPES = frozenset('"\\/bfnrt')
# After a closing quote inside a container, one of these means the string really ended.
_ENDS_VALUE = frozenset(",:}]\"'{[/#-0123456789")
_QUICK_CLOSE = frozenset(("", ",", "}", "]", ":"))
_LITERAL_WORDS = ("true", "false", "null", "True", "False", "None")


def _repair(text: str, partial: bool) -> RepairResult:
    """Locate the JSON in ``text`` and repair it (``partial``: for a streaming prefix)."""
    fixes: dict[str, None] = {}
    s = text
    offset = 0
    lead = _WS0.match(text).end()  # type: ignore[union-attr]
    # JSON that starts the text holds any ``` as data (a code sample in a string).
    fenced = "```" in text and not text.startswith(("{", "["), lead)
    span = _fence_span(text) if fenced else None
    if span is not None:
        fixes["extracted_from_markdown"] = None
        offset = span[0]
        s = text[span[0] : span[1]]
    lead = _WS0.match(s).end()  # type: ignore[union-attr]
    if lead == len(s):
        raise JSONRepairError(NO_JSON, offset + lead)
    start = lead if s[lead] in "{[" else _find_start(s)
    scalar: tuple[str, int] | None = None
    if start != lead:
        # A bare scalar counts only if it is the whole text: `"a [b]"` is a string, but
        # `3 items: [1, 2, 3]` is prose around an array.
        scalar_fixes: dict[str, None] = {}
        try:
            scalar = _scan(s, lead, partial, scalar_fixes)
        except JSONRepairError:
            if start < 0:
                raise JSONRepairError(NO_JSON, offset + lead) from None
        if scalar is not None and (start < 0 or not s[scalar[1] :].strip(" \t\n\r")):
            fixes.update(scalar_fixes)
            start = lead
        else:
            scalar = None
            fixes["extracted_from_prose"] = None
    if fixes and scalar is None:
        # Taken from a fence or prose, the JSON itself is often valid. orjson stops where
        # trailing prose begins; a container is never a prefix of a longer one, so if the
        # text up to there parses, that is the value.
        body = s[start:]
        try:
            value = orjson.loads(body)
            out = body.rstrip(_JSON_WS)
        except orjson.JSONDecodeError as e:
            out = body[: e.pos].rstrip(_JSON_WS)
            if len(out) == len(body.rstrip(_JSON_WS)):
                out = ""  # stopped by the end of the text: cut short, not followed by prose
            elif out[-1:] not in ("}", "]"):
                out = ""  # not a whole container either
            else:
                try:
                    value = orjson.loads(out)
                except orjson.JSONDecodeError:
                    out = ""
                else:
                    fixes["extracted_from_prose"] = None
        if out:
            return RepairResult(out, value, tuple(fixes))
    if _BULK_RUNS and scalar is None:
        if s.count("{", start) + s.count("[", start) > s.count("}", start) + s.count("]", start):
            closed = _close_prefix(s, start, partial)
            if closed is not None:
                fixes.update(dict.fromkeys(closed[2]))
                return RepairResult(closed[0], closed[1], tuple(fixes))
        else:
            rewritten = _rewrite(s, start)
            if rewritten is not None:
                fixes.update(rewritten[2])
                # Valid JSON that missed the orjson fast path comes back byte for byte.
                out = rewritten[0] if fixes else text
                return RepairResult(out, rewritten[1], tuple(fixes))
    try:
        out, end = scalar if scalar is not None else _scan(s, start, partial, fixes)
    except JSONRepairError as e:
        raise JSONRepairError(e.reason, offset + e.pos) from None
    if s[end:].strip(" \t\n\r"):
        fixes["extracted_from_prose"] = None
    if not fixes:
        # Valid JSON that orjson refuses (nesting over 1024, a lone surrogate escape):
        # the scanner copied it verbatim, so hand back the input byte for byte.
        out = text
    try:
        value = orjson.loads(out)
    except orjson.JSONDecodeError:
        try:
            value = _load_deep(out)
        except (ValueError, RecursionError):
            raise JSONRepairError(UNPARSABLE, offset + start) from None
    return RepairResult(out, value, tuple(fixes))


# --- the fast path for text cut short -------------------------------------------------------

_FULL_STRING = re.compile(r'"[^"\\]*+(?:\\[\s\S][^"\\]*+)*+"')
# With complete strings collapsed to "", the quote that opens the string left open.
_LONE_QUOTE = re.compile(r'(?:[^"]++|"")*+"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_TO_CLOSER = str.maketrans("{[", "}]")
_JSON_WS = " \t\n\r"
_VALUE_END = frozenset('"0123456789el}]')
_MAX_PASSES = 8  # bracket-pair removal passes; deeper nesting goes to the scanner
# Each escaped quote in a string left open costs _FULL_STRING a failed match to the end of
# the text; past this many, the scanner reads the text instead, in linear time.
_MAX_ESCAPED_QUOTES = 64


def _close_prefix(s: str, start: int, partial: bool) -> tuple[str, Any, list[str]] | None:
    """Close valid JSON that was cut short, mostly with C-level string operations.

    The commonest damage by far is a stream that stopped. If ``s[start:]`` is valid JSON
    up to a cut, the repair is that text, its last token settled as the scanner would
    settle it, and the closers of what is still open. Complete strings are collapsed to
    ``""`` so brackets and separators can be read without a tokenizer; orjson then has the
    last word. Returns (text, value, corrections), or None when the scanner must decide
    (the text has other damage too, or is nested too deeply for a few passes).
    """
    body = s[start:]
    if body.count('\\"') > _MAX_ESCAPED_QUOTES:
        return None
    t = _FULL_STRING.sub('""', body)
    n = len(body)
    found: list[str] = []
    open_quote = -1
    # An odd count of quotes means a string left open, and so may an escaped quote left over.
    lone = _LONE_QUOTE.match(t) if t.count('"') % 2 or '\\"' in t else None
    if lone is not None:
        k = lone.end() - 1
        open_quote = n - (len(t) - k)  # the suffix after the last complete string is shared
        t = t[:k]
    brackets = _NOT_BRACKET.sub("", t)
    for _ in range(_MAX_PASSES):
        reduced = brackets.replace("[]", "").replace("{}", "")
        if reduced == brackets:
            break
        brackets = reduced
    else:
        return None
    if not brackets or "]" in brackets or "}" in brackets:
        return None
    in_object = brackets[-1] == "{"
    # Positions at the end of t and of body line up: only whitespace and tokens other than
    # complete strings lie after t's last collapsed string.
    shift = n - len(t) if open_quote < 0 else open_quote - len(t)
    tail = ""
    keep_ws = False
    if open_quote >= 0:
        before = t.rstrip(_JSON_WS)
        if in_object and before[-1:] in ("{", ","):
            # A key cut off: the member goes, and the comma that introduced it.
            found.append("dropped_dangling_key")
            cut = len(before) + shift - (before[-1] == ",")
            if before[-1] == "," and before[:-1].rstrip(_JSON_WS)[-1:] not in _VALUE_END:
                return None
        else:
            fixes: dict[str, None] = {}
            tail = _string(body, open_quote, n, '"', True, fixes)[0]
            found.extend(fixes)
            found.append("closed_string")
            cut = open_quote
            keep_ws = True
    else:
        end = t.rstrip(_JSON_WS)
        cut = len(end) + shift
        last = end[-1:]
        if last in _WORD_END:
            word_start = len(_WORD_TAIL.match(end[::-1]).group())  # type: ignore[union-attr]
            word = end[len(end) - word_start :]
            if end[: len(end) - word_start].rstrip(_JSON_WS)[-1:] not in (
                (":",) if in_object else ("[", ",")
            ):
                return None  # a key, or a word out of place: the scanner's call
            fixes = {}
            token = _word_value(word, len(end) == len(t), partial, fixes)
            if token is None:
                return None
            found.extend(fixes)
            cut -= len(word)
            if token:
                tail = token
                keep_ws = True
            else:
                found.append("dropped_incomplete_value")
                end = end[: len(end) - len(word)].rstrip(_JSON_WS)
                last = end[-1:]
                cut = len(end) + shift
        if tail:
            pass
        elif last == ",":
            if end[:-1].rstrip(_JSON_WS)[-1:] not in _VALUE_END:
                return None
            found.append("trailing_comma")
            cut -= 1
        elif in_object and (last == ":" or last == '"'):
            key_end = end[:-1].rstrip(_JSON_WS) if last == ":" else end
            if not key_end.endswith('""'):
                return None
            prev = key_end[:-2].rstrip(_JSON_WS)[-1:]
            if last == '"' and prev not in ("{", ","):
                pass  # a complete value
            else:
                if prev not in ("{", ","):
                    return None
                # Drop the key (its quotes in body are found from the shared suffix).
                close = len(key_end) - 1 + shift
                q = body.rfind('"', 0, close)
                if q < 1 or body[q - 1] == "\\":
                    return None
                found.append("dropped_dangling_key")
                cut = q
                head = body[:cut].rstrip(_JSON_WS)
                if head[-1:] == ",":
                    if head[:-1].rstrip(_JSON_WS)[-1:] not in _VALUE_END:
                        return None  # a comma after nothing: the scanner says so
                    cut = len(head) - 1
        elif last not in ('"', "{", "[", "}", "]"):
            return None
    text = body[:cut] if keep_ws else body[:cut].rstrip(_JSON_WS)
    text += tail + brackets[::-1].translate(_TO_CLOSER)
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    found.append("closed_brackets")
    return text, value, found


_WORD_END = frozenset(string.ascii_letters + string.digits + "_.+-")
_WORD_TAIL = re.compile(r"[\w.+\-]*")


# --- the fast path for damage spread through the text -----------------------------------------

# The other damage is spread through a complete document: a comment on every other line,
# Python literals, every key unquoted, every string in single quotes. _rewrite copies the
# text between damage sites in bulk (one regex match takes a run of clean tokens and the
# site that ends it), so Python runs once per site rather than per token, fixing each site
# as the scanner fixes it there (strings go through _string itself); orjson then checks the
# result. Where that is valid JSON, it is the scanner's output too: up to any point both
# have read the same tokens, the output so far is a valid JSON prefix, so the scanner's
# state is the place in the grammar the output is at, the one each fix assumed. Damage
# _rewrite does not fix (an unquoted string, a doubled comma, a cut, prose after the JSON)
# leaves text that orjson refuses, and the scanner reads it instead.

# What may follow a string's closing quote when _closes(s, k, n) holds for it: a string
# whose end _closes would not accept is left to _string.
_CLOSES = (
    r"(?=[\n,:}\]]|[ \t\r]*+(?:[\n,:}\]\"'{\[/#\-]|\Z)"
    r"|[ \t\r]++(?:[0-9]|true|false|null|True|False|None))"
)
_ESCAPE = r'\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})'
_COMMENT = r"(?://[^\n]*+|#[^\n]*+|/\*(?:[^*]++|\*(?!/))*+\*/)"
_CLEAN_STRING = rf'"[^"\\\x00-\x1f]*+(?:{_ESCAPE}[^"\\\x00-\x1f]*+)*+"'
# With single quotes about, a run also takes single-quoted strings that need nothing but
# their quotes swapped: it does so in one str.replace, so its double-quoted strings must be
# free of "'".
_CLEAN_STRING_OR_SINGLE = (
    rf"""(?:"[^"'\\\x00-\x1f]*+(?:{_ESCAPE}[^"'\\\x00-\x1f]*+)*+\""""
    r"""|'[^'"\\\x00-\x1f]*+')"""
)


def _step(string: str) -> re.Pattern[str]:
    """A run of clean tokens (group 1), then the damage site that ended it, by name."""
    # Alternatives in order of frequency: each failed one costs.
    clean = (
        rf"(?:{string}{_CLOSES}"
        r"|[{\[:][ \t\n\r]*+"  # an opener or a colon, with the blanks after it
        r"|,[ \t\n\r]*+(?![}\]])"  # a comma, unless it is trailing
        r"|-?[0-9][\w.+\-]*+"  # a number (or not: orjson decides)
        r"|[}\]]"
        r"|[ \t\n\r]++(?=[,:}\]/#])"  # blanks, unless a value follows: a missing comma
        r"|(?:true|false|null)(?![\w.+\-])"
        r")*+"
    )
    site = (
        r"(?P<key>[\w.+\-]++)(?=[ \t\n\r]*+:)"
        r"|(?P<word>[\w.+\-]++)"
        rf"|{_COMMENT}(?P<comment>[ \t\n\r]*+)"
        r"|(?P<comma>,[ \t\n\r]*+)"  # trailing: a closer follows
        r"|(?P<end>[ \t\n\r]*+\Z)"
        r"|(?P<blanks>[ \t\n\r]++)"  # before a value: a missing comma
        r"|(?P<string>[\"'])"
    )
    return re.compile(f"({clean})(?:{site})")


_STEP = _step(_CLEAN_STRING)
_STEP_SINGLE = _step(_CLEAN_STRING_OR_SINGLE)
_KEY_COLON = re.compile(rf"(?:[ \t\n\r]++|{_COMMENT})*+:")
_SINGLE_KEY_AT_END = re.compile(r"'[ \t\n\r]*+:[ \t\n\r]*+\Z")
_STARTS_VALUE = frozenset("{[\"'_.+-")
_ENDS_STRING_VALUE = frozenset(",}]\n")


def _rewrite(s: str, start: int) -> tuple[str, Any, dict[str, None]] | None:
    """Repair the complete container at ``s[start]`` site by site, or None.

    Returns (text, value, corrections) exactly as the scanner would make them, or None when
    the scanner must read the text (then it has damage this does not fix).
    """
    single = "'" in s
    match = (_STEP_SINGLE if single else _STEP).match
    out: list[str] = []
    fixes: dict[str, None] = {}
    # A key's own fixes count once its value starts, after the value's own ones.
    held: dict[str, None] | None = None
    pos = start
    while True:
        m = match(s, pos)
        if m is None:
            return None
        run = m.group(1)
        if run:
            if single and "'" in run:
                run, held = _single_quoted_run(run, fixes, held)
            elif held is not None and run.strip(" \t\n\r:"):
                fixes.update(held)
                held = None
            out.append(run)
        pos = m.end()
        site = m.lastgroup
        if site == "key":
            if held is not None:
                return None
            held = {"unquoted_keys": None}
            out.append('"' + m.group("key") + '"')
        elif site == "word":
            token = _word_value(m.group("word"), False, False, fixes)
            if token is None:
                return None  # an unquoted string
            out.append(token)
            if held is not None:
                fixes.update(held)
                held = None
        elif site == "comment":
            fixes["removed_comments"] = None
            out.append(m.group("comment"))
            after = s[pos : pos + 1]
            if after == "}" or after == "]":
                if _last_char(out) == "," and not _drop_trailing_comma(out, fixes):
                    return None
            elif (after in _STARTS_VALUE or after.isalnum()) and _last_char(out) in _VALUE_END:
                _insert_missing_comma(out, fixes)
        elif site == "comma":
            out.append(",")
            if not _drop_trailing_comma(out, fixes):
                return None
        elif site == "blanks":
            _insert_missing_comma(out, fixes)
            out.append(m.group("blanks"))
        elif site == "string":
            begin = pos - 1
            found: dict[str, None] = {}
            piece, pos, closed = _string(s, begin, len(s), s[begin], True, found)
            if not closed:
                return None
            after = s[pos : pos + 1]
            if after == ":" or (after not in _ENDS_STRING_VALUE and _KEY_COLON.match(s, pos)):
                # Keys are read without the lookahead that finds unescaped quotes.
                if held is not None or "unescaped_quotes" in found:
                    return None
                held = found
            else:
                fixes.update(found)
                if held is not None:
                    fixes.update(held)
                    held = None
            out.append(piece)
        else:  # end: the container must close with a clean closer, or prose followed it
            if run[-1:] not in ("}", "]"):
                return None
            break
    text = "".join(out)
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return text, value, fixes


def _single_quoted_run(
    run: str, fixes: dict[str, None], held: dict[str, None] | None
) -> tuple[str, dict[str, None] | None]:
    """``run`` with its single-quoted strings double-quoted; note the fix where the scanner would.

    That is at the first string value, or at the value of the first key. If the fixes of a key
    before the run are still held, its value starts the run. A key that ends the run holds its
    fix in turn. Returns the run and what is held after it.
    """
    if held is not None:
        if run.lstrip(" \t\n\r:")[:1] == "'":
            fixes["single_quotes"] = None
        fixes.update(held)
        held = None
    if "single_quotes" not in fixes:
        if run.count("'") == 2 and _SINGLE_KEY_AT_END.search(run) is not None:
            held = {"single_quotes": None}
        else:
            fixes["single_quotes"] = None
    return run.replace("'", '"'), held


def _split_blanks(out: list[str]) -> list[str]:
    """Take the blanks off the end of ``out`` and return them."""
    blanks: list[str] = []
    while out:
        last = out[-1]
        if last and last[-1] not in _JSON_WS:
            break
        out.pop()
        kept = last.rstrip(_JSON_WS)
        if kept:
            out.append(kept)
            blanks.append(last[len(kept) :])
            break
        blanks.append(last)
    blanks.reverse()
    return blanks


def _last_char(out: list[str]) -> str:
    """The last character of ``out`` that is not a blank."""
    for piece in reversed(out):
        # Blanks are short: strip a copy of the tail before copying a whole run.
        kept = piece[-8:].rstrip(_JSON_WS) or piece.rstrip(_JSON_WS)
        if kept:
            return kept[-1]
    return ""


def _insert_missing_comma(out: list[str], fixes: dict[str, None]) -> None:
    """Put a comma right after the value that ends ``out``, if one does, as the scanner does."""
    blanks = _split_blanks(out)
    if out and out[-1][-1] in _VALUE_END:
        out.append(",")
        fixes["missing_comma"] = None
    out.extend(blanks)


def _drop_trailing_comma(out: list[str], fixes: dict[str, None]) -> bool:
    """Drop the comma that ends ``out`` (but for blanks), and the blanks around it.

    A closer follows, so the scanner drops what it held since the last value. False when no
    value comes before the comma: the scanner reads that as an extra comma instead.
    """
    _split_blanks(out)
    out[-1] = out[-1][:-1]
    _split_blanks(out)
    if not out or out[-1][-1] not in _VALUE_END:
        return False
    fixes["trailing_comma"] = None
    return True


def _scan(s: str, i: int, partial: bool, fixes: dict[str, None]) -> tuple[str, int]:
    """Emit the repaired JSON value that starts at ``s[i]``; return it and where it ended.

    Separators, whitespace and keys are held in ``pend`` until the next value shows that
    they were needed: a closer then simply drops a trailing comma or a dangling key, and
    truncation drops whatever is still pending. Nothing already emitted is ever revisited.
    """
    n = len(s)
    out: list[str] = []
    pend: list[str] = []
    comma_at = -1  # index in pend of a pending comma
    key_at = -1  # index in pend of a pending key
    held: dict[str, None] = {}  # fixes inside the pending key: they count once it stays
    lost_key = False  # a key was cut off by the end of the text
    stack: list[str] = []  # the closers still owed, innermost last
    open_objects = open_arrays = 0
    state = _VALUE
    try_run = False  # just after "{", "[" or ",": valid members may follow in bulk
    ws_match = _WS.match
    word_match = _WORD.match
    while i < n:
        if try_run and _BULK_RUNS:
            try_run = False
            obj = stack[-1] == "}"
            # Peek past blanks at what comes next: a failed match costs more than a look.
            first = s[i : i + 40].lstrip(_JSON_WS)[:1]
            if first in (_OBJECT_RUN_START if obj else _ARRAY_RUN_START):
                m = (_OBJECT_RUN if obj else _ARRAY_RUN).match(s, i)
                assert m is not None  # every part is optional
                j = m.end()
                if j > i:
                    out.extend(pend)
                    pend.clear()
                    run = s[i:j]
                    i = j
                    if m.lastgroup is not None:
                        out.append(run)
                        comma_at = -1
                        state = _AFTER if m.lastgroup == "last" else _VALUE
                    else:
                        # Ended with a comma, which may yet turn out to be trailing: it
                        # stays pending, with the blanks before it, as the scanner holds them.
                        head = run[:-1].rstrip(_JSON_WS)
                        out.append(head)
                        if len(head) < len(run) - 1:
                            pend.append(run[len(head) : -1])
                        comma_at = len(pend)
                        pend.append(",")
                    continue
        c = s[i]
        if c in " \t\n\r":
            j = ws_match(s, i).end()  # type: ignore[union-attr]
            pend.append(s[i:j])
            if j >= n:
                break
            i = j
            c = s[i]

        if c in "{[\"'" or c.isalnum() or c in "_.+-":
            if state == _AFTER:
                # Top level never gets here: the scan stops when the first value ends.
                fixes["missing_comma"] = None
                pend.insert(0, ",")
                comma_at = 0
                state = _KEY if stack[-1] == "}" else _VALUE
                try_run = True
                continue
            elif state == _COLON:
                fixes["missing_colon"] = None
                pend.insert(key_at + 1, ":")
                state = _VALUE

            if state == _KEY:
                if c == '"' or c == "'":
                    held = {}
                    piece, i, closed = _string(s, i, n, c, False, held)
                    if not closed:
                        lost_key = True
                        break
                    key_at = len(pend)
                    pend.append(piece)
                    state = _COLON
                elif c in "{[":
                    fixes["skipped_characters"] = None  # e.g. "{{" from a prompt template
                    i += 1
                else:
                    m = word_match(s, i)
                    if m is None:
                        fixes["skipped_characters"] = None
                        i += 1
                        continue
                    i = m.end()
                    if i >= n:
                        lost_key = True
                        break
                    held = {"unquoted_keys": None}
                    key_at = len(pend)
                    pend.append('"' + m.group() + '"')
                    state = _COLON
                continue

            # state == _VALUE
            if c == "{" or c == "[":
                out.extend(pend)
                pend.clear()
                comma_at = key_at = -1
                if held:
                    fixes.update(held)
                    held = {}
                out.append(c)
                if c == "{":
                    stack.append("}")
                    open_objects += 1
                    state = _KEY
                else:
                    stack.append("]")
                    open_arrays += 1
                i += 1
                try_run = True
                continue
            if c == '"' or c == "'":
                piece, i, closed = _string(s, i, n, c, bool(stack), fixes)
                out.extend(pend)
                pend.clear()
                comma_at = key_at = -1
                if held:
                    fixes.update(held)
                    held = {}
                out.append(piece)
                if not closed:
                    fixes["closed_string"] = None
                    break
            else:
                m = word_match(s, i)
                if m is None:
                    fixes["skipped_characters"] = None
                    i += 1
                    continue
                word = m.group()
                i = m.end()
                token = _PLAIN_WORDS.get(word) if i < n else None
                if token is None:
                    token = _word_value(word, i >= n, partial, fixes)
                if token is None:
                    if not stack:
                        raise JSONRepairError(NO_JSON, m.start())
                    # An unquoted string: runs to the next separator on the same line.
                    tail = _UNQUOTED_TAIL.match(s, i).end()  # type: ignore[union-attr]
                    word = s[m.start() : tail].rstrip(" \t")
                    i = m.start() + len(word)
                    fixes["unquoted_strings"] = None
                    token = json.dumps(word, ensure_ascii=False)
                elif token == "":
                    fixes["dropped_incomplete_value"] = None
                    break
                out.extend(pend)
                pend.clear()
                comma_at = key_at = -1
                if held:
                    fixes.update(held)
                    held = {}
                out.append(token)
            if not stack:
                return "".join(out), i
            state = _AFTER
            continue

        if c == ",":
            if state == _AFTER:
                comma_at = len(pend)
                pend.append(",")
                state = _KEY if stack[-1] == "}" else _VALUE
                i += 1
                try_run = True
            elif key_at >= 0:
                # `{"a", ...` or `{"a": , ...`: a member without a value.
                fixes["dropped_dangling_key"] = None
                del pend[key_at:]
                key_at = -1
                held = {}
                state = _KEY
                i = _WS0.match(s, i + 1).end()  # type: ignore[union-attr]
            else:
                fixes["extra_comma"] = None
                i = _RUNS[","].match(s, i).end()  # type: ignore[union-attr]
        elif c == ":":
            if state == _COLON:
                pend.append(":")
                state = _VALUE
                i += 1
            else:
                fixes["skipped_characters"] = None
                i = _RUNS[":"].match(s, i).end()  # type: ignore[union-attr]
        elif c == "}" or c == "]":
            if (open_objects if c == "}" else open_arrays) == 0:
                fixes["skipped_characters"] = None
                i = _RUNS[c].match(s, i).end()  # type: ignore[union-attr]
                continue
            if key_at >= 0:
                fixes["dropped_dangling_key"] = None
                held = {}
            elif comma_at >= 0:
                fixes["trailing_comma"] = None
            else:
                out.extend(pend)
            pend.clear()
            comma_at = key_at = -1
            # A closer for an outer container also closes every inner one left open.
            while True:
                closer = stack.pop()
                out.append(closer)
                if closer == "}":
                    open_objects -= 1
                else:
                    open_arrays -= 1
                if closer == c:
                    break
                fixes["closed_brackets"] = None
            i += 1
            if not stack:
                return "".join(out), i
            state = _AFTER
        elif c == "#" or (c == "/" and i + 1 < n and s[i + 1] == "/"):
            fixes["removed_comments"] = None
            j = s.find("\n", i)
            i = n if j < 0 else j
        elif c == "/" and i + 1 < n and s[i + 1] == "*":
            fixes["removed_comments"] = None
            j = s.find("*/", i + 2)
            i = n if j < 0 else j + 2
        else:
            fixes["skipped_characters"] = None
            m = _GARBAGE.match(s, i)
            i = i + 1 if m is None else m.end()

    # The text ended inside the value: settle what is pending, then close what is open.
    if key_at >= 0 or lost_key:
        fixes["dropped_dangling_key"] = None
    elif comma_at >= 0:
        fixes["trailing_comma"] = None
    if not out:
        raise JSONRepairError(NO_JSON, i)
    if stack:
        fixes["closed_brackets"] = None
        out.append("".join(reversed(stack)))
    return "".join(out), n


def _word_value(word: str, at_end: bool, partial: bool, fixes: dict[str, None]) -> str | None:
    """JSON text for a bare word in value position.

    ``None`` means it is not a number or literal (so an unquoted string); ``""`` means an
    unfinished token to drop.
    """
    if _NUMBER.fullmatch(word) is not None:
        # At a cut, "12" may have been "123"; 12 is still the best reading of the text.
        return word
    token = _LITERALS.get(word)
    if token is not None:
        return token
    token = _PYTHON_LITERALS.get(word)
    if token is not None:
        fixes["python_literals"] = None
        return token
    token = _NONSTANDARD.get(word)
    if token is not None:
        fixes["nonstandard_literals"] = None
        return token
    if at_end:
        token = _LITERAL_PREFIXES.get(word)
        if token is not None:
            if partial:
                return ""
            fixes["completed_literal"] = None
            return token
        if word[0] in "-+.0123456789" and _PARTIAL_NUMBER.fullmatch(word) is not None:
            whole = word.rstrip("eE+-.")
            if whole != word:
                fixes["truncated_number"] = None
            if not any(ch.isdigit() for ch in whole):
                return ""
            return whole if _NUMBER.fullmatch(whole) else _normalize_number(whole, fixes)
    if word[0] in "-+.0123456789":
        return _normalize_number(word, fixes)
    return None


def _normalize_number(word: str, fixes: dict[str, None]) -> str | None:
    """Rewrite a number JSON does not accept (``+1``, ``01``, ``.5``, ``1.``), else None."""
    m = _LOOSE_NUMBER.fullmatch(word)
    if m is None:
        return None
    sign, whole, frac, exp = m.groups()
    if not whole and not frac:
        return None
    fixes["fixed_numbers"] = None
    result = ("-" if sign == "-" else "") + (whole.lstrip("0") or "0")
    if frac:
        result += "." + frac
    if exp:
        result += "e" + exp
    return result


def _string(
    s: str, i: int, n: int, quote: str, lookahead: bool, fixes: dict[str, None]
) -> tuple[str, int, bool]:
    """Scan the string opening at ``s[i]``; return its JSON text, its end, and whether it closed.

    With ``lookahead`` (a value inside a container) a quote that is followed by more words
    is taken as an unescaped quote in the text, not as the end of the string.
    """
    plain = _DQ_PLAIN if quote == '"' else _SQ_PLAIN
    j = i + 1
    k = plain.match(s, j).end()  # type: ignore[union-attr]
    if (
        k < n
        and s[k] == quote
        and (not lookahead or s[k + 1 : k + 2] in _QUICK_CLOSE or _closes(s, k, n))
    ):
        if quote == '"':
            return s[i : k + 1], k + 1, True
        fixes["single_quotes"] = None
        return '"' + s[j:k] + '"', k + 1, True
    if quote == "'":
        fixes["single_quotes"] = None
    parts = ['"']
    while True:
        if k > j:
            parts.append(s[j:k])
        if k >= n:
            break
        c = s[k]
        if c == quote:
            if not lookahead or _closes(s, k, n):
                parts.append('"')
                return "".join(parts), k + 1, True
            fixes["unescaped_quotes"] = None
            parts.append('\\"' if quote == '"' else "'")
            j = k + 1
        elif c == "\\":
            if k + 1 >= n:
                break  # a lone backslash at the cut: drop it
            e = s[k + 1]
            if e in _SIMPLE_ESCAPES:
                parts.append(s[k : k + 2])
                j = k + 2
            elif e == "u":
                if _HEX4.match(s, k + 2) is not None:
                    parts.append(s[k : k + 6])
                    j = k + 6
                elif n - (k + 2) < 4 and _HEX_PARTIAL.fullmatch(s, k + 2) is not None:
                    break  # an escape cut mid-way: drop it
                else:
                    fixes["invalid_escapes"] = None
                    parts.append("\\\\")
                    j = k + 1
            elif e == "'":
                if quote == '"':
                    fixes["invalid_escapes"] = None
                parts.append("'")
                j = k + 2
            else:
                fixes["invalid_escapes"] = None
                parts.append("\\\\")  # keep the backslash as data; e is read next
                j = k + 1
        elif c == '"':  # inside a single-quoted string
            parts.append('\\"')
            j = k + 1
        else:
            fixes["escaped_control_chars"] = None
            m = _CONTROL.match(s, k)
            assert m is not None
            parts.append(m.group().translate(_CONTROL_TABLE))
            j = m.end()
        k = plain.match(s, j).end()  # type: ignore[union-attr]
    # Cut by the end of the text. A high surrogate whose pair was cut off cannot stand.
    last = parts[-1]
    if len(last) == 6 and last.startswith("\\u") and last[2:4].lower() in ("d8", "d9", "da", "db"):
        parts.pop()
    parts.append('"')
    return "".join(parts), n, False


def _closes(s: str, k: int, n: int) -> bool:
    """Whether the quote at ``s[k]`` ends a string value inside a container."""
    j = k + 1
    if j >= n:
        return True
    c = s[j]
    if c.isalnum():
        return False  # `"don't"`, `"say "hi" twice"`
    j = _WS0.match(s, j).end()  # type: ignore[union-attr]
    if j >= n or "\n" in s[k + 1 : j]:
        return True  # a line break after a quote ends a value (missing commas are common)
    c = s[j]
    return c in _ENDS_VALUE or s.startswith(_LITERAL_WORDS, j)


# --- parsing what orjson refuses ------------------------------------------------------------

_DEEP_TOKEN = re.compile(
    r'[ \t\n\r]*(?:("[^"\\]*(?:\\.[^"\\]*)*")|([\[\]{},:])|(true|false|null)'
    r"|(-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?))",
    re.S,
)
_CONSTANTS: dict[str, Any] = {"true": True, "false": False, "null": None}
_MISSING: Any = object()


def _load_deep(text: str) -> Any:
    """Parse valid JSON with an explicit stack.

    For the valid JSON orjson refuses: nesting deeper than 1024, lone surrogate escapes,
    numbers beyond a double. Raises ValueError on anything else.
    """
    stack: list[Any] = []
    keys: list[Any] = []  # per open object: the key awaiting its value
    root: Any = _MISSING
    pos = 0
    n = len(text)
    while True:
        m = _DEEP_TOKEN.match(text, pos)
        if m is None:
            break
        pos = m.end()
        string, punct, literal, number = m.groups()
        if punct is not None:
            if punct in ",:":
                continue
            if punct in "]}":
                if not stack:
                    raise ValueError("unbalanced closer")
                value = stack.pop()
                keys.pop()
            else:
                stack.append({} if punct == "{" else [])
                keys.append(_MISSING)
                continue
        elif string is not None:
            value = json.loads(string)
            if stack and isinstance(stack[-1], dict) and keys[-1] is _MISSING:
                keys[-1] = value
                continue
        elif literal is not None:
            value = _CONSTANTS[literal]
        else:
            is_float = "." in number or "e" in number or "E" in number
            value = float(number) if is_float else int(number)
        if not stack:
            if root is not _MISSING:
                raise ValueError("more than one value")
            root = value
        elif isinstance(stack[-1], dict):
            stack[-1][keys[-1]] = value
            keys[-1] = _MISSING
        else:
            stack[-1].append(value)
    if root is _MISSING or stack or _WS0.match(text, pos).end() != n:  # type: ignore[union-attr]
        raise ValueError("not a single JSON value")
    return root
