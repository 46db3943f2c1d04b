"""The built-in guardrail rules.

Each rule is a factory returning a :class:`GuardrailRule` whose ``new_checker()`` builds fresh
per-attempt state, so concurrent sessions share nothing and a retry starts clean.

Cost model: a streaming checker never reads ``state.content`` on the hot path. It appends each
delta to a small buffer and scans the buffer once it holds a batch of characters (64 to 1024,
by rule), carrying only bounded state between batches: a bracket stack, the head of the
current line, the last few dozen characters for patterns that straddle a batch boundary. So a
chunk costs the same at character 10 and at character 10 million. Completion checks
(``strict_json_rule``, ``zero_output_rule``) read the whole content once, at the end.

Every streaming checker reports the same findings, at the same positions, however the text is
split into deltas: a finding depends on the text, never on where the chunks fall. So each one
declares ``batch`` (see :class:`~l0.guardrails.base.RuleChecker`), and the engine, rather than
calling it on every delta only to have it buffer, hands it the pending text once a batch is
due; the stall checker, which needs no deltas, declares ``NO_DELTAS``.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from l0.config import ConfigError
from l0.guardrails.base import NO_DELTAS, GuardrailRule, GuardrailViolation, RuleChecker, Severity
from l0.types import State

__all__ = [
    "INSTRUCTION_LEAK_PATTERNS",
    "META_COMMENTARY_PATTERNS",
    "PLACEHOLDER_PATTERNS",
    "REFUSAL_PATTERNS",
    "custom_pattern_rule",
    "json_rule",
    "markdown_rule",
    "pattern_rule",
    "repetition_rule",
    "stall_rule",
    "strict_json_rule",
    "zero_output_rule",
]

_NONE: tuple[GuardrailViolation, ...] = ()

# Deltas are scanned in batches of a multiple of this many characters: the per-chunk cost is
# then an append to a list, and the scanning work per character is that of one pass over the
# text. A mid-stream finding is reported at most one batch (for patterns, plus one match) late.
_BATCH = 64

_SEVERITIES = ("error", "warning", "fatal")


def _check_severity(owner: str, value: Any) -> Severity:
    if value not in _SEVERITIES:
        raise ConfigError(owner, "severity", f"must be one of {', '.join(_SEVERITIES)}", value)
    severity: Severity = value
    return severity


def _check_count(owner: str, name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(owner, name, f"must be a whole number >= {minimum}", value)
    return value


# --------------------------------------------------------------------------------------------
# Rule and checker bases


class _BuiltinRule(GuardrailRule):
    """A rule whose per-attempt checker is built by a factory (every built-in rule is one).

    Args:
        name: the rule name reported in violations.
        factory: builds a fresh checker; called once per attempt.
        streaming: whether the checker works during the stream (else only at completion).
        severity: the severity of this rule's violations.
        description: one line for docs and span attributes.
    """

    def __init__(
        self,
        name: str,
        factory: Callable[[], RuleChecker],
        *,
        streaming: bool,
        severity: Severity = "error",
        description: str = "",
    ) -> None:
        super().__init__(
            name, None, streaming=streaming, severity=severity, description=description
        )
        self._factory = factory

    def new_checker(self) -> RuleChecker:
        """Fresh per-attempt state."""
        return self._factory()


class _Checker:
    """No idle watch, nothing to report: the defaults every built-in checker starts from.

    ``batch``: see :class:`~l0.guardrails.base.RuleChecker`; a checker that keeps this
    ``check_delta`` needs no deltas.
    """

    __slots__ = ()

    max_gap: float | None = None
    batch: int | None = NO_DELTAS

    def check_delta(self, state: State, delta: str) -> Sequence[GuardrailViolation]:
        return _NONE

    def check_final(self, state: State) -> Sequence[GuardrailViolation]:
        return _NONE

    def check_idle(self, state: State, gap: float) -> Sequence[GuardrailViolation]:
        return _NONE


class _BatchedChecker(_Checker):
    """Buffers deltas and hands them to ``_scan`` in batches, with absolute offsets.

    Subclasses implement ``_scan(text, base)`` (``base`` is the offset of ``text[0]`` in the
    content), ``_finish(end)`` for what can only be decided at completion, and ``_restart()``.
    A finding depends on the text only, so the engine may hand ``check_delta`` several deltas
    at once: ``batch`` is how many more characters it takes to make a call scan anything.
    """

    __slots__ = ("_batch", "_parts", "_pending", "_seen")

    def __init__(self, batch: int = _BATCH) -> None:
        self._batch = batch
        self._parts: list[str] = []
        self._pending = 0
        self._seen = 0

    @property
    def batch(self) -> int | None:  # type: ignore[override]
        return self._batch - self._pending

    def check_delta(self, state: State, delta: str) -> Sequence[GuardrailViolation]:
        size = len(delta)
        if state._length - size != self._seen:
            return self._resync_delta(state, delta)
        self._seen += size
        pending = self._pending + size
        if pending < self._batch:
            self._parts.append(delta)
            self._pending = pending
            return _NONE
        if self._parts:
            self._parts.append(delta)
            return self._flush()
        return self._scan(delta, self._seen - size)  # a whole batch at once (the engine's)

    def check_final(self, state: State) -> Sequence[GuardrailViolation]:
        found: list[GuardrailViolation] = []
        if state.content_length != self._seen:
            found.extend(self._resync(state, state.content_length))
        if self._parts:
            found.extend(self._flush())
        found.extend(self._finish(self._seen))
        return found

    def _flush(self) -> list[GuardrailViolation]:
        parts = self._parts
        text = parts[0] if len(parts) == 1 else "".join(parts)
        parts.clear()
        self._pending = 0
        return self._scan(text, self._seen - len(text))

    def _resync_delta(self, state: State, delta: str) -> Sequence[GuardrailViolation]:
        found = self._resync(state, state.content_length - len(delta))
        found.extend(self.check_delta(state, delta))
        return found

    def _resync(self, state: State, start: int) -> list[GuardrailViolation]:
        # The content holds text this checker never received as a delta: a continuation's
        # checkpoint (it passed guardrails in an earlier attempt), or content replaced under
        # it. Take that text in as context, without reporting on it again.
        found: list[GuardrailViolation] = []
        if start < self._seen:
            self._restart()
            self._parts.clear()
            self._pending = 0
            self._seen = 0
        elif self._parts:
            found = self._flush()
        gap = state.content[self._seen : start]
        if gap:
            self._scan(gap, self._seen)
            self._absorbed(start)
            self._seen = start
        return found

    def _absorbed(self, end: int) -> None:
        """The text before ``end`` was taken in as context: never report findings in it."""

    def _scan(self, text: str, base: int) -> list[GuardrailViolation]:
        raise NotImplementedError

    def _finish(self, end: int) -> list[GuardrailViolation]:
        return []

    def _restart(self) -> None:
        raise NotImplementedError


# --------------------------------------------------------------------------------------------
# Scanners shared by several rules (and by drift.py)


class _JsonScanner:
    """Bracket and string state of a JSON text, fed in pieces.

    Only the structure is tracked: brackets (with their offsets, so a violation can point at
    the opener), whether the scan is inside a string, and a pending backslash escape.
    """

    __slots__ = ("escape", "in_string", "stack", "string_start")

    def __init__(self) -> None:
        self.stack: list[tuple[str, int]] = []
        self.in_string = False
        self.escape = False
        self.string_start = 0

    def feed(self, text: str, base: int) -> tuple[str, int] | None:
        """Scan ``text`` (at content offset ``base``); return ``(message, position)`` for the
        first structural error in it, else ``None``.

        Two regular expressions do the walking, so Python only runs per bracket and per string
        that does not end in ``text``: one takes a string's characters and escapes up to its
        closing quote, the other plain text and whole strings up to the next bracket."""
        i = 0
        n = len(text)
        if self.escape and n:
            self.escape = False
            i = 1
        stack = self.stack
        while True:
            if self.in_string:
                m = _JSON_STRING_REST.match(text, i)
                assert m is not None  # it matches the empty string
                i = m.end()
                if i >= n:
                    return None
                if text[i] == "\\":  # the last character: what it escapes comes next
                    self.escape = True
                    return None
                self.in_string = False  # text[i] is the closing quote
                i += 1
            m = _JSON_OUTSIDE.match(text, i)
            assert m is not None
            i = m.end()
            if i >= n:
                return None
            char = text[i]
            if char == '"':  # a string that does not end in this text
                self.in_string = True
                self.string_start = base + i
            elif char == "{" or char == "[":
                stack.append((char, base + i))
            elif not stack:
                return f"unexpected {char!r} with no open bracket", base + i
            else:
                opener, where = stack.pop()
                if (opener == "{") != (char == "}"):
                    return f"{char!r} does not close {opener!r} opened at {where}", base + i
            i += 1

    def unbalanced(self) -> tuple[str, int] | None:
        """What is left open, as ``(message, position)``, or ``None`` when balanced."""
        if self.in_string:
            return "unterminated string", self.string_start
        if self.stack:
            opener, where = self.stack[-1]
            count = len(self.stack)
            plural = "s" if count > 1 else ""
            return f"unbalanced: {count} unclosed bracket{plural} (innermost {opener!r})", where
        return None


# Inside a string: everything up to its closing quote (or a backslash ending the text).
_JSON_STRING_REST = re.compile(r'(?:[^"\\]+|\\[\s\S])*')
# Outside strings: plain text and whole strings, up to a bracket or a string's opening quote
# when it does not end in the text.
_JSON_OUTSIDE = re.compile(r'(?:[^\[\]{}"]+|"[^"\\]*(?:\\[\s\S][^"\\]*)*")*')
_JSON_IN_STRING = re.compile(r'["\\]')

# The head of each line is enough to recognise a fence; the rest is only checked for blankness.
_LINE_HEAD = 256
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)", re.DOTALL)

_OPENED = 1
_CLOSED = 2


class _FenceTracker:
    """Which lines are inside a fenced code block (CommonMark-style ``` / ~~~ fences).

    Fed line pieces: a piece ends with ``\\n`` only when it completes a line. Keeps the first
    ``_LINE_HEAD`` characters of the current line, so a long line costs O(its length) once.
    """

    __slots__ = (
        "_blank_tail",
        "_head",
        "_last_char",
        "char",
        "info",
        "last_char",
        "last_head",
        "length",
        "line_start",
        "open_pos",
    )

    def __init__(self) -> None:
        self._head = ""
        self._blank_tail = True
        self._last_char = ""
        self.line_start = 0
        self.char = ""  # the open fence's character; "" when outside a fence
        self.length = 0
        self.info = ""
        self.open_pos = 0
        self.last_head = ""  # head and last non-blank character of the last completed line
        self.last_char = ""

    @property
    def in_fence(self) -> bool:
        return bool(self.char)

    def feed(self, piece: str, pos: int) -> int:
        """Take one line piece at offset ``pos``; return _OPENED/_CLOSED or 0."""
        done = piece.endswith("\n")
        body = piece[:-1] if done else piece
        if body:
            head = self._head
            room = _LINE_HEAD - len(head)
            if room > 0:
                self._head = head + body[:room]
                rest = body[room:]
            else:
                rest = body
            if rest and self._blank_tail and not rest.isspace():
                self._blank_tail = False
            stripped = body.rstrip()
            if stripped:
                self._last_char = stripped[-1]
        if not done:
            return 0
        event = self._end_line()
        self.line_start = pos + len(piece)
        return event

    @property
    def partial_line(self) -> bool:
        """Whether a line without its newline is pending."""
        return bool(self._head) or not self._blank_tail

    def finish(self) -> int:
        """Treat a final line without a newline as complete."""
        if not self.partial_line:
            return 0
        return self._end_line()

    def _end_line(self) -> int:
        head = self._head.rstrip("\r")
        blank_tail = self._blank_tail
        self.last_head = head
        self.last_char = self._last_char
        self._head = ""
        self._blank_tail = True
        self._last_char = ""
        m = _FENCE.match(head)
        if m is None:
            return 0
        run, rest = m.group(1), m.group(2)
        if self.char:
            if run[0] == self.char and len(run) >= self.length and not rest.strip() and blank_tail:
                self.char = ""
                return _CLOSED
            return 0
        if run[0] == "`" and "`" in rest:
            return 0  # CommonMark: a backtick fence's info string has no backticks
        words = rest.split(None, 1)
        self.char = run[0]
        self.length = len(run)
        self.info = words[0].lower() if words else ""
        self.open_pos = self.line_start
        return _OPENED


def _line_pieces(text: str) -> Iterable[tuple[int, int]]:
    """``(start, end)`` of each line piece of ``text``; a piece includes its ``\\n``."""
    start = 0
    n = len(text)
    find = text.find
    while start < n:
        nl = find("\n", start)
        end = n if nl < 0 else nl + 1
        yield start, end
        start = end


# --------------------------------------------------------------------------------------------
# Incremental pattern matching

# How far before a match start a pattern may look (``\b``, lookbehinds); kept in the overlap.
_LOOKBEHIND = 32
# Unbounded patterns (``\s+``, ``.*``) are treated as if no match were longer than this.
_UNBOUNDED_WIDTH = 256

_sre_parse: Any
try:
    _sre_parse = importlib.import_module("re._parser")  # Python 3.11+
except ImportError:  # pragma: no cover - Python 3.10
    _sre_parse = importlib.import_module("sre_parse")


@functools.lru_cache(maxsize=1024)
def _match_width(regex: re.Pattern[str]) -> tuple[int, int]:
    """The shortest and longest text ``regex`` can match (longest capped). Cached: parsing
    costs ~1 ms per preset, and every session builds its rules anew."""
    try:
        low, high = _sre_parse.parse(regex.pattern, regex.flags).getwidth()
    except Exception:  # a private parser: if it ever changes, assume the worst, still work
        return 1, _UNBOUNDED_WIDTH
    return int(low), int(min(high, _UNBOUNDED_WIDTH))


@dataclass(frozen=True, slots=True)
class _Pattern:
    """A compiled pattern and what its matches report.

    ``reach``: whether a match starts at ``p`` is decided by the text up to ``p + reach`` (the
    longest match plus one character of lookahead). ``lowered``: matched against the
    lower-cased text (the built-ins: a case-sensitive pattern with a literal prefix is many
    times faster in ``re`` than ``re.IGNORECASE``). ``parts``: for a pattern that joins
    several categories, each category's own pattern, message and severity, so a match can be
    attributed (``regex.match`` at the match start, in order, picks what the alternation did).
    """

    regex: re.Pattern[str]
    reach: int
    message: str
    severity: Severity
    lowered: bool = False
    parts: tuple[tuple[re.Pattern[str], str, Severity], ...] = ()

    def label(self, match: re.Match[str]) -> tuple[str, Severity]:
        for regex, message, severity in self.parts:
            if regex.match(match.string, match.start()):
                return message, severity
        return self.message, self.severity


def _compile_pattern(owner: str, pattern: Any, message: str, severity: Severity) -> _Pattern:
    if isinstance(pattern, re.Pattern):
        if not isinstance(pattern.pattern, str):
            raise ConfigError(owner, "patterns", "must be str patterns, not bytes", pattern)
        regex: re.Pattern[str] = pattern
    elif isinstance(pattern, str):
        try:
            regex = re.compile(pattern, re.IGNORECASE)
        except re.error as exc:
            raise ConfigError(
                owner, "patterns", f"invalid regular expression: {exc}", pattern
            ) from None
    else:
        raise ConfigError(owner, "patterns", "must be strings or compiled re patterns", pattern)
    low, high = _match_width(regex)
    if low == 0:
        raise ConfigError(owner, "patterns", "must not match the empty string", pattern)
    return _Pattern(regex, high + 1, message, severity)


def _lower(text: str) -> str:
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    # A few characters ("İ") lower-case to two; keep those as they are so offsets still match.
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


class _PatternScan:
    """Every match of a set of patterns over a streamed text, each reported once.

    Finds exactly what ``regex.finditer(whole_text)`` finds, at the same positions, whatever
    the pieces: a match is reported once it is *settled* (the text extends ``reach`` past its
    start, so more text cannot change it); each pattern resumes where its settled part ended.
    Only a bounded overlap (the longest reach plus a lookbehind margin) is kept between feeds,
    and only the last ``reach`` characters of it are scanned again.
    """

    __slots__ = ("_end", "_keep", "_lowered", "_patterns", "_resume", "_tail")

    def __init__(self, patterns: Sequence[_Pattern]) -> None:
        self._patterns = tuple(patterns)
        self._resume = [0] * len(self._patterns)
        self._keep = max((p.reach for p in self._patterns), default=0) + _LOOKBEHIND
        self._lowered = any(p.lowered for p in self._patterns)
        self._tail = ""
        self._end = 0

    @property
    def overlap(self) -> int:
        """Characters kept between feeds."""
        return self._keep

    def skip_to(self, position: int) -> None:
        """Never report a match that starts before ``position``."""
        self._resume = [max(at, position) for at in self._resume]

    def feed(self, text: str, final: bool = False) -> list[tuple[int, str, Severity]]:
        """Scan ``text`` (the next piece); return settled matches as
        ``(position, message, severity)``. ``final=True`` settles everything."""
        window = self._tail + text
        lowered = _lower(window) if self._lowered else window
        window_base = self._end - len(self._tail)
        end = self._end + len(text)
        found: list[tuple[int, str, Severity]] = []
        resume = self._resume
        for k, pattern in enumerate(self._patterns):
            limit = end if final else end - pattern.reach
            at = resume[k]
            if at > limit:
                continue
            subject = lowered if pattern.lowered else window
            # finditer's matches, found with search (no iterator: most feeds find nothing):
            # each search resumes where the last match ended. (No pattern matches the empty
            # string: _compile_pattern refuses those; the else branch is a safeguard.)
            search = pattern.regex.search
            m = search(subject, at - window_base)
            while m is not None:
                start = window_base + m.start()
                if start > limit:
                    break
                stop = m.end()
                if stop > m.start():
                    message, severity = pattern.label(m)
                    found.append((start, message, severity))
                    at = window_base + stop
                    m = search(subject, stop)
                else:
                    m = search(subject, stop + 1)
            resume[k] = max(at, limit + 1)
        self._tail = window[-self._keep :] if len(window) > self._keep else window
        self._end = end
        if len(found) > 1 and len(self._patterns) > 1:
            found.sort(key=lambda hit: hit[0])
        return found


def _phrase(template: str) -> str:
    """A built-in pattern from a readable template.

    A space stands for 1-3 whitespace characters (models put newlines and double spaces in
    odd places; a bounded run keeps the width finite). ``APOS`` is a straight or curly
    apostrophe. A leading ``\\b`` followed by a word is rewritten as the word followed by a
    lookbehind (``as(?<!\\w..)``): same matches, but the literal prefix lets ``re`` skip ahead
    with a fast substring search instead of trying every position.
    """
    pattern = template.replace("NEGATED", _NEGATED).replace("APOS", "['’]")
    if pattern.startswith(r"\b"):
        pattern = pattern[2:]
        k = 0
        while k < len(pattern) and pattern[k].isalpha():
            k += 1
        pattern = pattern[:k] + r"(?<!\w" + "." * k + ")" + pattern[k:]
    return pattern.replace(" ", r"\s{1,3}")


_NEGATED = (
    r"i(?: (?:can(?:not|APOSt)|can not|wonAPOSt|will not|am (?:unable|not able|not allowed) to)"
    r"|APOSm (?:unable|not able|not allowed) to)"
)

# The built-in patterns are lower-case: they are matched against the lower-cased output.
META_COMMENTARY_PATTERNS: tuple[str, ...] = tuple(
    _phrase(p)
    for p in (
        r"\bas an? (?:ai|artificial intelligence)"
        r"(?: (?:language model|model|assistant|chatbot))?\b",
        r"\bas a (?:large )?language model\b",
        r"\bi(?:APOSm| am) (?:just |only |merely )?(?:an ai|a (?:large )?language model"
        r"|an artificial intelligence)\b",
        r"\bi (?:donAPOSt|do not) have (?:personal )?(?:opinions|feelings|emotions|beliefs)\b",
        r"\bmy (?:knowledge cut-?off|training data)\b",
    )
)
"""Meta-commentary: the model talking about itself ("As an AI language model, ...")."""

REFUSAL_PATTERNS: tuple[str, ...] = tuple(
    _phrase(p)
    for p in (
        r"\bi(?:APOSm| am) sorry,? but NEGATED (?:help|assist|comply|fulfill|provide|create"
        r"|generate|write|share|support|engage|do that|do this)\b",
        r"\bNEGATED (?:help|assist)(?: you)? with (?:that|this|your request|the request"
        r"|such requests?)\b",
        r"\bNEGATED (?:comply with|fulfill) (?:that|this|your|the) request\b",
        r"\bi (?:must|have to) (?:respectfully )?decline\b",
    )
)
"""Refusals: "I cannot help with that", "I'm sorry, but I can't ...", "I must decline"."""

INSTRUCTION_LEAK_PATTERNS: tuple[str, ...] = (
    r"<\|(?:im_start|im_end|im_sep|endoftext|eot_id|eom_id|start_header_id|end_header_id"
    r"|begin_of_text|end_of_text|system|user|assistant|end)\|>",
    r"\[/?inst\]",
    r"<</?sys>>",
    r"<(?:start|end)_of_turn>",
)
"""Prompt-template tokens that belong to the prompt, never to an answer (ChatML, Llama, Gemma)."""

PLACEHOLDER_PATTERNS: tuple[str, ...] = (
    r"\[(?<![\w\]].)(?:insert|your|enter|add|fill in|replace with)\b[^\[\]\n]{0,40}\](?!\()",
    r"\[(?<![\w\]].)(?:recipient['’]s )?(?:name|first name|last name|full name|company"
    r"|company name|date|address|email|phone number|job title)\](?!\()",
    r"\{\{ {0,3}[a-z_][\w.]{0,40} {0,3}\}\}",
)
"""Unfilled template placeholders: "[INSERT NAME]", "[Your Name]", "{{variable}}"."""

_CATEGORIES: tuple[tuple[str, tuple[str, ...], str, Severity], ...] = (
    # name, patterns, message, default severity; earlier categories win on the same start
    ("refusal", REFUSAL_PATTERNS, "refusal: the model declined the request", "error"),
    (
        "leak",
        INSTRUCTION_LEAK_PATTERNS,
        "instruction leak: a prompt-template token appeared in the output",
        "error",
    ),
    ("meta", META_COMMENTARY_PATTERNS, "meta-commentary: the model talks about itself", "warning"),
    (
        "placeholder",
        PLACEHOLDER_PATTERNS,
        "placeholder: the output contains an unfilled template placeholder",
        "warning",
    ),
)


def _builtin_patterns(
    severity: Severity | None = None, categories: Iterable[str] | None = None
) -> _Pattern:
    """The built-in categories as one flat alternation over the lower-cased text: one scan
    per batch. (Named groups per category would say which matched, but they defeat ``re``'s
    prefix optimisations and cost 5x; ``_Pattern.label`` asks each category instead.)"""
    return _builtin_alternation(severity, None if categories is None else tuple(categories))


@functools.lru_cache(maxsize=64)
def _builtin_alternation(severity: Severity | None, categories: tuple[str, ...] | None) -> _Pattern:
    # Cached: every session builds its rules (and every drift detector its scanner) anew.
    wanted = set(categories) if categories is not None else None
    alternatives: list[str] = []
    parts: list[tuple[re.Pattern[str], str, Severity]] = []
    for name, patterns, message, default in _CATEGORIES:
        if wanted is not None and name not in wanted:
            continue
        alternatives.extend(patterns)
        parts.append((re.compile("|".join(patterns)), message, severity or default))
    flat = "|".join(alternatives)
    regex = re.compile(_factored(alternatives))
    first_message, first_severity = parts[0][1], parts[0][2]
    return _Pattern(
        regex,
        _match_width(re.compile(flat))[1] + 1,
        first_message,
        first_severity,
        lowered=True,
        parts=tuple(parts) if len(parts) > 1 else (),
    )


# One literal character (not followed by a quantifier), or one lookaround assertion without
# nested groups: what a set of alternatives may share at its start.
_LITERAL_TOKEN = re.compile(r"(?:\\[^\w\s]|[^\\.^$*+?{}\[\]()|])(?![*+?{])")
_ASSERTION_TOKEN = re.compile(r"\(\?<?[!=][^()]*\)")


def _factored(alternatives: Sequence[str]) -> str:
    """``"|".join(alternatives)``, rewritten so that ``re`` tries each alternative less often.

    The alternatives are grouped by their first literal character, and within a group the
    literal characters and lookaround assertions they all start with are written once:
    ``ab(?<!x)c|d|ab(?<!x)e`` becomes ``ab(?<!x)(?:c|e)|d``. Matches are the same, at the same
    positions, with the same extent: at any position only alternatives whose first character is
    the text's can match, the order within a group is kept, and ``P(?:A|B)`` tries exactly what
    ``PA|PB`` does when ``P`` can match only one way. But ``re`` no longer tests every
    alternative's prefix and lookbehind in turn at every ``i`` of the text (~1.6x faster on
    the built-ins). If some alternative does not start with a literal character, or holds a
    top-level ``|``, nothing is rewritten.
    """
    groups: dict[str, list[str]] = {}
    for alternative in alternatives:
        m = _LITERAL_TOKEN.match(alternative)
        if m is None or _has_top_level_bar(alternative):
            return "|".join(alternatives)
        groups.setdefault(m.group()[-1], []).append(alternative)  # by the character itself
    out: list[str] = []
    for members in groups.values():
        if len(members) == 1:
            out.append(members[0])
            continue
        prefix = ""
        while True:
            shared = _shared_token(members, _LITERAL_TOKEN) or _shared_token(
                members, _ASSERTION_TOKEN
            )
            if not shared or any(len(m) == len(shared) for m in members):
                break
            prefix += shared
            members = [m[len(shared) :] for m in members]
        if prefix:
            out.append(f"{prefix}(?:{'|'.join(members)})")
        else:
            out.extend(members)
    return "|".join(out)


def _shared_token(members: Sequence[str], token: re.Pattern[str]) -> str:
    first = token.match(members[0])
    if first is None:
        return ""
    text = first.group()
    return text if all(m.startswith(text) and token.match(m) for m in members) else ""


def _has_top_level_bar(pattern: str) -> bool:
    depth = 0
    in_class = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "^":
                i += 1
            if pattern[i + 1 : i + 2] == "]":  # "[]...]", "[^]...]": a leading "]" is a member
                i += 1
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            return True
        i += 1
    return False


class _PatternChecker(_BatchedChecker):
    __slots__ = ("_name", "_patterns", "_scanner")

    def __init__(self, name: str, patterns: Sequence[_Pattern]) -> None:
        self._name = name
        self._patterns = patterns
        self._scanner = _PatternScan(patterns)
        # A batch at least as long as the overlap keeps the rescanned share of the text <= 1/2.
        super().__init__(max(2 * _BATCH, self._scanner.overlap))

    def _restart(self) -> None:
        self._scanner = _PatternScan(self._patterns)

    def _absorbed(self, end: int) -> None:
        self._scanner.skip_to(end)

    def _scan(self, text: str, base: int) -> list[GuardrailViolation]:
        return self._report(self._scanner.feed(text))

    def _finish(self, end: int) -> list[GuardrailViolation]:
        return self._report(self._scanner.feed("", final=True))

    def _report(self, hits: list[tuple[int, str, Severity]]) -> list[GuardrailViolation]:
        name = self._name
        return [
            GuardrailViolation(rule=name, message=message, severity=severity, position=position)
            for position, message, severity in hits
        ]


def _custom_patterns(
    owner: str, name: str, patterns: Any, severity: Severity, message: str | None
) -> list[_Pattern]:
    if isinstance(patterns, (str, re.Pattern)):
        patterns = [patterns]
    try:
        items = list(patterns)
    except TypeError:
        raise ConfigError(owner, "patterns", "must be a list of patterns", patterns) from None
    if not items:
        raise ConfigError(owner, "patterns", "must not be empty", patterns)
    return [
        _compile_pattern(
            owner,
            pattern,
            message if message is not None else f"matched {name} pattern #{index}",
            severity,
        )
        for index, pattern in enumerate(items)
    ]


def pattern_rule(
    patterns: Iterable[str | re.Pattern[str]] | None = None,
    severity: Severity | None = None,
) -> GuardrailRule:
    """Flags unwanted phrases in the output, as it streams (rule name ``"pattern"``).

    With no ``patterns``, four built-in categories are checked (case-insensitively):

    - refusal, **error**: "I cannot help with that", "I'm sorry, but I can't assist",
      "I must decline";
    - instruction leak, **error**: ``<|im_start|>``, ``<|im_end|>``, ``<|system|>``,
      ``[INST]``, ``<<SYS>>``;
    - meta-commentary, warning: "As an AI language model", "I don't have personal opinions";
    - placeholder, warning: "[INSERT NAME]", "[Your Name]", ``{{variable}}``.

    Refusals and leaks are never the answer a caller wants, and a retry often gets one.
    Meta-commentary is often a fair answer ("As an AI, I don't have feelings, but ..."), and
    placeholders belong in templates the user asked for, so both only warn; ``drift_rule``
    fails meta-commentary that appears in the middle of an answer.

    Args:
        patterns: replaces the built-in lists. Strings are compiled case-insensitively;
            compiled patterns are used as they are. Each match is reported once, at its start,
            as ``"matched custom pattern #<index>"``.
        severity: overrides the severity of every match (default: per category above for the
            built-ins, ``"error"`` for custom patterns).

    Matching is incremental: only the new text plus a bounded overlap is scanned, so a phrase
    split across chunks is found, at the same position as in one pass over the whole text.
    Keep custom patterns bounded (``\\s{1,3}``, not ``\\s+``): an unbounded one is treated as if
    no match were longer than 256 characters.
    """
    if severity is not None:
        severity = _check_severity("pattern_rule", severity)
    if patterns is None:
        compiled = [_builtin_patterns(severity)]
    else:
        compiled = _custom_patterns("pattern_rule", "custom", patterns, severity or "error", None)
    return _BuiltinRule(
        "pattern",
        lambda: _PatternChecker("pattern", compiled),
        streaming=True,
        severity=severity or "error",
        description="refusals, instruction leaks, meta-commentary and placeholders",
    )


def custom_pattern_rule(
    name: str,
    patterns: Iterable[str | re.Pattern[str]] | str,
    severity: Severity = "error",
    message: str | None = None,
) -> GuardrailRule:
    """A streaming rule named ``name`` that flags every match of ``patterns``.

    Args:
        name: the rule name reported in violations.
        patterns: regular expressions; strings are compiled case-insensitively.
        severity: of each match.
        message: the violation message (default ``"matched <name> pattern #<index>"``).

    Example::

        rule = custom_pattern_rule("competitors", [r"\\bacme\\s{1,3}corp\\b"], severity="warning")
    """
    if not isinstance(name, str) or not name:
        raise ConfigError("custom_pattern_rule", "name", "must be a non-empty string", name)
    severity = _check_severity("custom_pattern_rule", severity)
    compiled = _custom_patterns("custom_pattern_rule", name, patterns, severity, message)
    return _BuiltinRule(
        name,
        lambda: _PatternChecker(name, compiled),
        streaming=True,
        severity=severity,
        description=f"custom patterns ({len(compiled)})",
    )


# --------------------------------------------------------------------------------------------
# JSON

_UNDECIDED = 0
_DOCUMENT = 1
_PROSE = 2
_STOPPED = 3

# After a leading "{" or "[", what the next non-blank character must be for the output to
# count as JSON. "[Verse 1]" or "[Click here](...)" starts prose, not a JSON array.
_JSON_SECOND = {"{": frozenset('"}'), "[": frozenset('{["]-0123456789')}
_NON_BLANK = re.compile(r"\S")


class _JsonStart:
    """Whether the output is a JSON document, decided by its first two non-blank characters."""

    __slots__ = ("first", "first_pos", "verdict")

    def __init__(self) -> None:
        self.first = ""
        self.first_pos = 0
        self.verdict: bool | None = None

    def feed(self, text: str, base: int) -> int:
        """Look at ``text`` (at offset ``base``) while undecided; return the index in ``text`` of
        the character that decided, or ``len(text)``."""
        i = 0
        n = len(text)
        while i < n and self.verdict is None:
            m = _NON_BLANK.search(text, i)
            if m is None:
                return n
            i = m.start()
            if not self.first:
                self.first = text[i]
                self.first_pos = base + i
                if self.first not in _JSON_SECOND:
                    self.verdict = False
                    return i
                i += 1
                continue
            self.verdict = text[i] in _JSON_SECOND[self.first]
            return i
        return n

    def finish(self) -> bool:
        """The verdict at completion: a lone ``{`` or ``[`` is a JSON answer cut off early."""
        if self.verdict is None:
            self.verdict = self.first in _JSON_SECOND
        return self.verdict


class _JsonChecker(_BatchedChecker):
    """Balanced JSON structure, for a JSON document or inside ```json fences."""

    __slots__ = ("_block_stopped", "_fence", "_in_json", "_json", "_mode", "_start")

    def __init__(self) -> None:
        super().__init__(2 * _BATCH)
        self._restart()

    def _restart(self) -> None:
        self._mode = _UNDECIDED
        self._start = _JsonStart()
        self._json = _JsonScanner()
        self._fence = _FenceTracker()
        self._in_json = False  # inside a ```json fence (prose mode)
        self._block_stopped = False

    def _scan(self, text: str, base: int) -> list[GuardrailViolation]:
        if self._mode == _DOCUMENT:
            return self._document(text, base)
        if self._mode == _UNDECIDED:
            start = self._start.feed(text, base)
            if self._start.verdict:
                self._mode = _DOCUMENT
                found = self._document(self._start.first, self._start.first_pos)
                return found or self._document(text[start:], base + start)
            if self._start.verdict is False:
                self._mode = _PROSE
        if self._mode == _PROSE or self._mode == _UNDECIDED:
            # Undecided text (blank, or one character) goes through the fence tracker too, so
            # prose mode starts with the lines it has already seen.
            return self._prose(text, base)
        return []

    def _document(self, text: str, base: int) -> list[GuardrailViolation]:
        error = self._json.feed(text, base)
        if error is None:
            return []
        # The structure is broken from here on; reporting what follows would repeat the news.
        self._mode = _STOPPED
        return [self._violation(*error)]

    def _prose(self, text: str, base: int) -> list[GuardrailViolation]:
        found: list[GuardrailViolation] = []
        fence = self._fence
        for start, end in _line_pieces(text):
            piece = text[start:end]
            if self._in_json and not self._block_stopped:
                error = self._json.feed(piece, base + start)
                if error is not None:
                    self._block_stopped = True
                    found.append(self._violation(*error, fenced=True))
            event = fence.feed(piece, base + start)
            if event:
                found.extend(self._fence_event(event))
        return found

    def _fence_event(self, event: int) -> list[GuardrailViolation]:
        if event == _OPENED:
            if self._fence.info == "json":
                self._in_json = True
                self._block_stopped = False
                self._json = _JsonScanner()
            return []
        return self._close_block()

    def _close_block(self) -> list[GuardrailViolation]:
        if not self._in_json:
            return []
        self._in_json = False
        if self._block_stopped:
            return []
        problem = self._json.unbalanced()
        return [self._violation(*problem, fenced=True)] if problem else []

    def _finish(self, end: int) -> list[GuardrailViolation]:
        if self._mode == _UNDECIDED and self._start.finish():
            self._mode = _DOCUMENT
            self._document(self._start.first, self._start.first_pos)
        if self._mode == _DOCUMENT:
            self._mode = _STOPPED
            problem = self._json.unbalanced()
            return [self._violation(*problem)] if problem else []
        # A closing fence on the last line, without a newline, still closes the block.
        in_prose = self._mode == _PROSE or self._mode == _UNDECIDED
        if in_prose and (self._fence.finish() == _CLOSED or self._in_json):
            return self._close_block()
        return []

    @staticmethod
    def _violation(message: str, position: int, fenced: bool = False) -> GuardrailViolation:
        where = "JSON code block" if fenced else "JSON"
        return GuardrailViolation(
            rule="json", message=f"{where}: {message}", severity="error", position=position
        )


def json_rule() -> GuardrailRule:
    """Checks that JSON output is structurally balanced, while it streams (rule ``"json"``).

    Applies when the output *looks like JSON*: its first non-blank character is ``{`` or ``[``
    and the next one can continue JSON (``{"``, ``{}``, ``[{``, ``[1`` …), or inside fenced
    code blocks tagged ``json``. Any other output is prose and never violates this rule.

    Mid-stream (error): a closing bracket that does not match its opener, or one with nothing
    open. At completion (error): an unterminated string or unclosed brackets (for a code
    block: when its closing fence arrives, or at completion if it never does). Strings and
    escapes are tracked, so brackets inside strings never count. Each JSON text reports at most
    one violation. Cost: O(len(delta)) per delta.
    """
    return _BuiltinRule(
        "json",
        _JsonChecker,
        streaming=True,
        description="balanced JSON structure (documents and ```json blocks)",
    )


class _StrictJsonChecker(_Checker):
    __slots__ = ()

    def check_final(self, state: State) -> Sequence[GuardrailViolation]:
        content = state.content
        if not content or content.isspace():
            return _NONE  # nothing to parse: zero_output_rule's finding, not this rule's
        try:
            orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            return (
                GuardrailViolation(
                    rule="strict_json",
                    message=f"output is not valid JSON: {exc.msg}",
                    severity="error",
                    position=exc.pos,
                ),
            )
        return _NONE


def strict_json_rule() -> GuardrailRule:
    """At completion, the whole output must parse as one JSON value (rule ``"strict_json"``).

    Severity ``error`` (a retry can produce valid JSON). Leading and trailing whitespace is
    allowed; a markdown fence or any text around the JSON is not. Empty output is left to
    :func:`zero_output_rule`. Cost: one ``orjson.loads`` of the content, at completion.
    """
    return _BuiltinRule(
        "strict_json",
        _StrictJsonChecker,
        streaming=False,
        description="the complete output parses as JSON",
    )


# --------------------------------------------------------------------------------------------
# Zero output and stalls


def _has_text(state: State) -> bool:
    """Whether the content holds a non-blank character: read from the state's parts, from the
    first, so an answer costs O(its first part), not a join of the whole content."""
    return any(part and not part.isspace() for part in state._parts)


class _ZeroOutputChecker(_Checker):
    __slots__ = ()

    def check_final(self, state: State) -> Sequence[GuardrailViolation]:
        if state.tool_calls:
            return _NONE
        if state.content_length and _has_text(state):
            return _NONE
        return (
            GuardrailViolation(
                rule="zero_output",
                message="the stream produced no content and no tool calls",
                severity="error",
            ),
        )


def zero_output_rule() -> GuardrailRule:
    """At completion: empty or whitespace-only content with no tool calls is an error
    (rule ``"zero_output"``). A response that is only tool calls passes."""
    return _BuiltinRule(
        "zero_output",
        _ZeroOutputChecker,
        streaming=False,
        description="no content and no tool calls",
    )


class _StallChecker(_Checker):
    __slots__ = ("_reported_at", "max_gap")

    def __init__(self, max_gap: float) -> None:
        self.max_gap = max_gap
        self._reported_at = -1

    def check_idle(self, state: State, gap: float) -> Sequence[GuardrailViolation]:
        if gap < (self.max_gap or 0.0):
            return _NONE
        length = state.content_length
        if length == self._reported_at:
            return _NONE  # the same silence, asked about again: already reported
        self._reported_at = length
        return (
            GuardrailViolation(
                rule="stall",
                message=f"no output for {gap:.1f}s (limit {self.max_gap:g}s)",
                severity="error",
                position=length,
            ),
        )


def stall_rule(max_gap: float = 5.0) -> GuardrailRule:
    """Flags a stream that goes silent for ``max_gap`` seconds (rule ``"stall"``).

    The checker sets ``max_gap``, so the runtime calls ``check_idle`` when no chunk arrived for
    that long, even before the first token. One violation per silence (error). Costs nothing
    per delta.
    """
    if isinstance(max_gap, bool) or not isinstance(max_gap, (int, float)) or not max_gap > 0:
        raise ConfigError("stall_rule", "max_gap", "must be a number of seconds > 0", max_gap)
    gap = float(max_gap)
    return _BuiltinRule(
        "stall",
        lambda: _StallChecker(gap),
        streaming=True,
        description=f"no chunk for {gap:g}s",
    )


# --------------------------------------------------------------------------------------------
# Markdown


class _MarkdownChecker(_BatchedChecker):
    __slots__ = ("_fence",)

    def __init__(self) -> None:
        # Nothing is reported before completion: large batches, fewer scans.
        super().__init__(16 * _BATCH)
        self._fence = _FenceTracker()

    def _restart(self) -> None:
        self._fence = _FenceTracker()

    def _scan(self, text: str, base: int) -> list[GuardrailViolation]:
        fence = self._fence
        for start, end in _line_pieces(text):
            fence.feed(text[start:end], base + start)
        return []

    def _finish(self, end: int) -> list[GuardrailViolation]:
        fence = self._fence
        fence.finish()
        if not fence.in_fence:
            return []
        return [
            GuardrailViolation(
                rule="markdown",
                message=f"unclosed code fence ({fence.char * fence.length})",
                severity="error",
                position=fence.open_pos,
            )
        ]


def markdown_rule() -> GuardrailRule:
    """At completion, every fenced code block (``` or ~~~) must be closed (rule
    ``"markdown"``, error). Lines are tracked as they stream, so the check at the end is O(1)."""
    return _BuiltinRule(
        "markdown",
        _MarkdownChecker,
        streaming=True,
        description="fenced code blocks are closed",
    )


# --------------------------------------------------------------------------------------------
# Repetition

_UNIT_END = re.compile(r"[.!?\n]")
# A "sentence" that is only a list number or an initial ("3.", "J.") belongs to what follows:
# numbered steps with the same text are different steps.
_NOT_A_SENTENCE = re.compile(r"\s*(?:\d{1,3}|[^\W\d_])\.")
# Longer sentences are compared by their first characters; a loop repeats them whole anyway.
_MAX_UNIT = 512


class _RepetitionChecker(_BatchedChecker):
    """Counts each sentence or line over a sliding window of characters."""

    __slots__ = (
        "_counts",
        "_fence",
        "_min_length",
        "_recent",
        "_reported",
        "_threshold",
        "_unit",
        "_unit_len",
        "_unit_start",
        "_window",
    )

    def __init__(self, window: int, threshold: int, min_length: int) -> None:
        super().__init__(4 * _BATCH)
        self._window = window
        self._threshold = threshold
        self._min_length = min_length
        self._restart()

    def _restart(self) -> None:
        self._fence = _FenceTracker()
        self._unit: list[str] = []
        self._unit_len = 0
        self._unit_start = 0
        self._recent: deque[tuple[int, str]] = deque()  # (end offset, normalized unit)
        self._counts: dict[str, int] = {}
        self._reported: set[str] = set()

    def _scan(self, text: str, base: int) -> list[GuardrailViolation]:
        found: list[GuardrailViolation] = []
        fence = self._fence
        for start, end in _line_pieces(text):
            piece = text[start:end]
            if fence.in_fence:
                # Code repeats lines legitimately (closing braces, similar calls): skip it.
                self._unit.clear()
                self._unit_len = 0
                self._unit_start = base + end
            else:
                self._units(piece, base + start, found)
            fence.feed(piece, base + start)
        return found

    def _units(self, piece: str, base: int, found: list[GuardrailViolation]) -> None:
        i = 0
        n = len(piece)
        search = _UNIT_END.search
        while i < n:
            m = search(piece, i)
            if m is None:
                if self._unit_len < _MAX_UNIT:
                    self._unit.append(piece[i:])
                    self._unit_len += n - i
                return
            stop = m.end()
            if self._unit:
                if self._unit_len < _MAX_UNIT:
                    self._unit.append(piece[i:stop])
                    self._unit_len += stop - i
                raw = "".join(self._unit)[:_MAX_UNIT]
            else:  # the whole unit is in this piece: no buffering
                raw = piece[i:stop] if stop - i <= _MAX_UNIT else piece[i : i + _MAX_UNIT]
                self._unit_len = stop - i
            self._end_unit(raw, base + stop, found)
            i = stop

    def _end_unit(self, raw: str, end: int, found: list[GuardrailViolation]) -> None:
        stripped = raw.lstrip()
        # (_NOT_A_SENTENCE matches at most 4 characters after the blanks.)
        if len(stripped) <= 4 and _NOT_A_SENTENCE.fullmatch(raw):
            self._unit = [raw]
            return
        start = self._unit_start + (len(raw) - len(stripped))
        self._unit.clear()
        self._unit_len = 0
        self._unit_start = end
        key = " ".join(raw.lower().split())
        if len(key) < self._min_length:
            return
        recent = self._recent
        counts = self._counts
        horizon = end - self._window
        while recent and recent[0][0] <= horizon:
            old = recent.popleft()[1]
            left = counts[old] - 1
            if left:
                counts[old] = left
            else:
                del counts[old]
        recent.append((end, key))
        count = counts.get(key, 0) + 1
        counts[key] = count
        if count >= self._threshold and key not in self._reported:
            self._reported.add(key)
            found.append(
                GuardrailViolation(
                    rule="repetition",
                    message=(
                        f"the same sentence appeared {count} times within {self._window} characters"
                    ),
                    severity="error",
                    position=start,
                )
            )

    def _finish(self, end: int) -> list[GuardrailViolation]:
        found: list[GuardrailViolation] = []
        if self._unit_len and not self._fence.in_fence:
            self._end_unit("".join(self._unit)[:_MAX_UNIT], end, found)
        return found


def repetition_rule(window: int = 2000, threshold: int = 3, min_length: int = 20) -> GuardrailRule:
    """Flags a model that loops: the same sentence or line ``threshold`` times within the last
    ``window`` characters (rule ``"repetition"``, error).

    Args:
        window: the sliding window, in characters of output.
        threshold: how many occurrences of one sentence make a loop.
        min_length: sentences shorter than this many characters (after lower-casing and
            collapsing whitespace) are ignored: "Yes." or "}" repeat legitimately.

    Sentences end at ``.``, ``!``, ``?`` or a newline; fenced code blocks are skipped (code
    repeats lines on purpose). Each looping sentence is reported once, at its
    ``threshold``-th occurrence. Cost: O(len(delta)) amortized; memory bounded by ``window``.
    """
    window = _check_count("repetition_rule", "window", window, 1)
    threshold = _check_count("repetition_rule", "threshold", threshold, 2)
    min_length = _check_count("repetition_rule", "min_length", min_length, 1)
    return _BuiltinRule(
        "repetition",
        lambda: _RepetitionChecker(window, threshold, min_length),
        streaming=True,
        description=f"a sentence {threshold}x within {window} chars",
    )
