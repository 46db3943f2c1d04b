"""The chaos grammar: a model string (or an ``X-L0-Chaos`` header) parsed into a `Scenario`.

A request picks its behaviour with directives after a ``+`` in the model name, or in the
``X-L0-Chaos`` header (same syntax; the header's directives come after the model's)::

    gpt-4o-mini                         plain, deterministic text
    gpt-4o-mini+drop@12                 connection dropped after 12 content chunks
    gpt-4o-mini+status=503x2            HTTP 503 for the first two requests, then normal
    gpt-4o-mini+words=40,stall@5=0.2    40 words; 0.2 s of silence after chunk 5

Grammar (``docs/chaos.md`` is the reference, with every directive)::

    model      := base [ "+" directives ]
    directives := directive { "," directive }
    setting    := name [ "=" value ]                      words text json tool chunk seed
                                                          scenario first retry
    fault      := name [ "@" K ] [ "=" value ] [ "x" N ]  ttfb delay drip stall drop cut
                                                          badsse fail status empty
                                                          truncate repeat asai

``K`` counts content chunks already sent; ``xN`` limits a fault to the first ``N`` requests
of its scenario. Values of ``text=`` and ``scenario=`` are percent-decoded, so ``%2C`` is a
comma and ``%2B`` a plus sign.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Literal, cast, get_args
from urllib.parse import unquote

__all__ = [
    "ChaosGrammarError",
    "Chunking",
    "Content",
    "Fault",
    "FaultKind",
    "Plan",
    "Scenario",
    "parse_scenario",
]

FaultKind = Literal[
    "ttfb",
    "delay",
    "drip",
    "stall",
    "drop",
    "cut",
    "badsse",
    "fail",
    "status",
    "empty",
    "truncate",
    "repeat",
    "asai",
]
ContentKind = Literal["words", "text", "json", "tool"]

#: The default base model when a model string is only directives (``+drop@3``).
DEFAULT_MODEL = "chaos"
#: Words of seeded text when the request asks for nothing else.
DEFAULT_WORDS = 24
#: Keys of a seeded JSON object for a bare ``json``.
DEFAULT_JSON_KEYS = 3
#: Repetitions of the looping phrase for a bare ``repeat``.
DEFAULT_REPEAT = 12
#: Retry-After sent with a 429 unless ``retry=`` says otherwise (seconds).
DEFAULT_RETRY_AFTER_429 = 1.0

# Bounds keep a typo (words=1e9) from turning the test server into a memory hog.
_MAX_WORDS = 100_000
_MAX_CHUNK = 10_000
_MAX_SECONDS = 3_600.0

_POSITIONAL: frozenset[str] = frozenset({"stall", "drop", "cut", "badsse", "fail", "truncate"})
_SECONDS: frozenset[str] = frozenset({"ttfb", "delay", "drip"})
_FLAGS: frozenset[str] = frozenset({"empty", "asai"})
_FAULTS: tuple[str, ...] = get_args(FaultKind)
_SETTINGS: tuple[str, ...] = (
    "words",
    "text",
    "json",
    "tool",
    "chunk",
    "seed",
    "scenario",
    "first",
    "retry",
)

_NAME = re.compile(r"[a-z][a-z0-9_-]*")
_FAULT = re.compile(r"(?P<name>[a-z][a-z0-9_-]*?)(?:@(?P<at>[^=]*))?(?:=(?P<value>.*))?")
_TIMES = re.compile(r"x(\d+)$")
_CHUNK = re.compile(r"(?P<low>\d+)(?:-(?P<high>\d+))?(?P<unit>[wc]?)")


class ChaosGrammarError(ValueError):
    """A model string or ``X-L0-Chaos`` header the chaos server cannot understand.

    The message names the directive and what was wrong; the server sends it back as an
    OpenAI-shaped 400 (``code: "invalid_chaos_directive"``).
    """


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault directive.

    Attributes:
        kind: which fault (``"drop"``, ``"status"``, …).
        at: content chunks sent before the fault fires (positional faults); ``None`` for
            the others and for ``truncate`` without ``@K`` (cut in the middle).
        value: the directive's number: seconds (``ttfb``, ``delay``, ``drip``, ``stall``;
            ``None`` for a stall that never ends), an HTTP status code (``status``) or a
            repetition count (``repeat``).
        first: apply only to the first ``first`` requests of the scenario; ``None``: always.
    """

    kind: FaultKind
    at: int | None = None
    value: float | None = None
    first: int | None = None

    def applies_to(self, index: int) -> bool:
        """Whether this fault is active for the scenario's request number ``index`` (0-based)."""
        return self.first is None or index < self.first


@dataclass(frozen=True, slots=True)
class Chunking:
    """How content is cut into stream chunks.

    Attributes:
        unit: ``"words"`` (whitespace-led words, like tokens) or ``"chars"``.
        low: smallest chunk, in units.
        high: largest chunk, in units; each chunk's size is drawn from the seeded generator.
    """

    unit: Literal["words", "chars"] = "words"
    low: int = 1
    high: int = 4


@dataclass(frozen=True, slots=True)
class Content:
    """What the assistant says.

    Attributes:
        kind: ``"words"`` (seeded text), ``"text"`` (exactly ``text``), ``"json"`` (a seeded
            JSON object of ``json_keys`` keys) or ``"tool"`` (a call to ``tool``).
        words: length of seeded text, in words.
        text: the exact text for ``kind="text"``.
        json_keys: number of keys for ``kind="json"``.
        tool: the function name for ``kind="tool"``; ``None``: the request's first tool.
    """

    kind: ContentKind = "words"
    words: int = DEFAULT_WORDS
    text: str | None = None
    json_keys: int = DEFAULT_JSON_KEYS
    tool: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """The faults that apply to one request, resolved from a `Scenario` and its request number.

    Attributes:
        status: HTTP error status to answer with, or ``None`` to stream normally.
        ttfb: seconds before the first byte (the status line) is sent.
        delay: seconds before each content chunk.
        char_chunks: ``drip`` is active: one character per chunk.
        stalls: ``(after_chunks, seconds)`` pauses; ``seconds=None`` never ends.
        badsse: chunk positions after which one malformed SSE line is sent.
        end: ``(kind, after_chunks)`` for the first of ``drop``/``cut``/``fail``, if any.
        empty: send no content chunks at all.
        truncate: ``True`` to cut content with ``finish_reason="length"``; ``truncate_at``
            is where (``None``: the middle).
        repeat: repetitions of a looping phrase, or ``None``.
        asai: prefix the content with "As an AI language model".
    """

    status: int | None = None
    ttfb: float = 0.0
    delay: float = 0.0
    char_chunks: bool = False
    stalls: tuple[tuple[int, float | None], ...] = ()
    badsse: tuple[int, ...] = ()
    end: tuple[Literal["drop", "cut", "fail"], int] | None = None
    empty: bool = False
    truncate: bool = False
    truncate_at: int | None = None
    repeat: int | None = None
    asai: bool = False


@dataclass(frozen=True, slots=True)
class Scenario:
    """A parsed chaos request: the base model, what to say, and which faults to inject.

    Attributes:
        model: the base model name, echoed in responses (``gpt-4o-mini`` for
            ``gpt-4o-mini+drop@3``).
        faults: the fault directives in the order given.
        content: what the assistant says.
        chunking: how content is cut into chunks.
        seed: a per-request seed overriding the server's, or ``None``.
        scenario_id: the counter key given with ``scenario=``, or ``None``.
        retry_after: ``Retry-After`` seconds for error statuses (``None``: 1 s for 429,
            absent otherwise).
        spec: the directive text as given (model suffix, then header), ``""`` if none.

    Example::

        >>> parse_scenario("gpt-4o-mini+status=503x2").plan(2).status is None
        True
    """

    model: str = DEFAULT_MODEL
    faults: tuple[Fault, ...] = ()
    content: Content = field(default_factory=Content)
    chunking: Chunking = field(default_factory=Chunking)
    seed: int | None = None
    scenario_id: str | None = None
    retry_after: float | None = None
    spec: str = ""

    def plan(self, index: int) -> Plan:
        """Resolve the faults active for the scenario's request number ``index`` (0-based).

        When two faults of the same kind are active, the first one listed wins, so
        ``status=503x2,status=429`` answers 503 twice, then 429.
        """
        active = [f for f in self.faults if f.applies_to(index)]
        seen: set[str] = set()
        status: int | None = None
        ttfb = delay = 0.0
        char_chunks = empty = truncate = asai = False
        truncate_at: int | None = None
        repeat: int | None = None
        stalls: list[tuple[int, float | None]] = []
        badsse: list[int] = []
        end: tuple[Literal["drop", "cut", "fail"], int] | None = None
        for fault in active:
            kind = fault.kind
            # Positional faults may repeat at different positions; the rest are single.
            if kind in ("stall", "badsse"):
                at = fault.at or 0
                if kind == "stall":
                    stalls.append((at, fault.value))
                else:
                    badsse.append(at)
                continue
            if kind in ("drop", "cut", "fail"):
                at = fault.at or 0
                if end is None or at < end[1]:
                    end = (kind, at)
                continue
            if kind in seen:
                continue
            seen.add(kind)
            if kind == "status":
                status = int(fault.value or 500)
            elif kind == "ttfb":
                ttfb = fault.value or 0.0
            elif kind == "delay":
                delay = fault.value or 0.0
            elif kind == "drip":
                char_chunks = True
                delay = fault.value or 0.0
            elif kind == "empty":
                empty = True
            elif kind == "truncate":
                truncate, truncate_at = True, fault.at
            elif kind == "repeat":
                repeat = int(fault.value or DEFAULT_REPEAT)
            elif kind == "asai":
                asai = True
        return Plan(
            status=status,
            ttfb=ttfb,
            delay=delay,
            char_chunks=char_chunks,
            stalls=tuple(sorted(stalls, key=lambda s: s[0])),
            badsse=tuple(sorted(badsse)),
            end=end,
            empty=empty,
            truncate=truncate,
            truncate_at=truncate_at,
            repeat=repeat,
            asai=asai,
        )


def parse_scenario(model: str, header: str | None = None) -> Scenario:
    """Parse a model string and an optional ``X-L0-Chaos`` header value into a `Scenario`.

    Raises:
        ChaosGrammarError: an unknown directive, a malformed value, or conflicting content
            directives; the message says which.

    Example::

        >>> s = parse_scenario("gpt-4o-mini+drop@12", "ttfb=0.2")
        >>> (s.model, [f.kind for f in s.faults])
        ('gpt-4o-mini', ['drop', 'ttfb'])
    """
    base, plus, suffix = model.partition("+")
    base = base.strip()
    if plus and not suffix.strip():
        raise ChaosGrammarError(f"model {model!r} ends with '+' but has no directives after it")
    parts = [p for p in (suffix.strip(), (header or "").strip()) if p]
    spec = ",".join(parts)
    directives = _split_directives(spec) if spec else ()
    return _build(base or DEFAULT_MODEL, directives, spec)


def _split_directives(text: str) -> tuple[tuple[str, str | None, str | None, int | None], ...]:
    """Split a directive list into ``(name, at, value, times)``, checking each name.

    The lexical half of `parse_scenario`: values are still strings here.
    """
    out: list[tuple[str, str | None, str | None, int | None]] = []
    for raw in text.split(","):
        token = raw.strip()
        if not token:
            raise ChaosGrammarError(f"empty directive in {text!r} (two commas in a row?)")
        out.append(_lex(token))
    return tuple(out)


def _lex(token: str) -> tuple[str, str | None, str | None, int | None]:
    name, eq, rest = token.partition("=")
    # Settings take their value verbatim: `text=` may legitimately end in "x2".
    if name in _SETTINGS:
        return name, None, (unquote(rest) if eq else None), None
    times: int | None = None
    m_times = _TIMES.search(token)
    body = token
    if m_times is not None:
        times = int(m_times.group(1))
        body = token[: m_times.start()]
    m = _FAULT.fullmatch(body)
    if m is None or m.group("name") not in _FAULTS:
        bare = _NAME.match(token)
        shown = bare.group(0) if bare else token
        raise ChaosGrammarError(
            f"unknown chaos directive {shown!r} in {token!r}; faults: {', '.join(_FAULTS)}; "
            f"settings: {', '.join(_SETTINGS)}"
        )
    if times is not None and times < 1:
        raise ChaosGrammarError(f"{token!r}: xN needs N >= 1")
    return m.group("name"), m.group("at"), m.group("value"), times


def _build(
    model: str,
    directives: tuple[tuple[str, str | None, str | None, int | None], ...],
    spec: str,
) -> Scenario:
    faults: list[Fault] = []
    content = Content()
    content_from: str | None = None
    chunking = Chunking()
    seed: int | None = None
    scenario_id: str | None = None
    first: int | None = None
    retry_after: float | None = None

    def set_content(name: str, new: Content) -> Content:
        nonlocal content_from
        # The same content directive twice (model, then header) is an override; two
        # different ones (text and json) would be a guess, so refuse.
        if content_from not in (None, name):
            raise ChaosGrammarError(
                f"conflicting content directives {content_from!r} and {name!r}: pick one"
            )
        content_from = name
        return new

    for name, at, value, times in directives:
        token = _show(name, at, value, times)
        if name == "words":
            n = _int(token, value, low=0, high=_MAX_WORDS)
            content = set_content("words", replace(content, kind="words", words=n))
        elif name == "text":
            if value is None:
                raise ChaosGrammarError(f"{token!r}: text needs a value (text=Hello%2C%20world)")
            content = set_content("text", replace(content, kind="text", text=value))
        elif name == "json":
            keys = DEFAULT_JSON_KEYS if value is None else _int(token, value, low=1, high=50)
            content = set_content("json", replace(content, kind="json", json_keys=keys))
        elif name == "tool":
            if value is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
                raise ChaosGrammarError(
                    f"{token!r}: a tool name is 1-64 letters, digits, '_' or '-'"
                )
            content = set_content("tool", replace(content, kind="tool", tool=value or None))
        elif name == "chunk":
            chunking = _chunking(token, value)
        elif name == "seed":
            seed = _int(token, value, low=0, high=2**63 - 1)
        elif name == "scenario":
            if not value:
                raise ChaosGrammarError(f"{token!r}: scenario needs a name")
            scenario_id = value
        elif name == "first":
            first = _int(token, value, low=1, high=2**31)
        elif name == "retry":
            retry_after = _seconds(token, value)
        else:
            faults.append(_fault(name, at, value, times, token))

    if first is not None:
        faults = [f if f.first is not None else replace(f, first=first) for f in faults]
    return Scenario(
        model=model,
        faults=tuple(faults),
        content=content,
        chunking=chunking,
        seed=seed,
        scenario_id=scenario_id,
        retry_after=retry_after,
        spec=spec,
    )


def _fault(name: str, at: str | None, value: str | None, times: int | None, token: str) -> Fault:
    kind = cast(FaultKind, name)  # the lexer only lets names from _FAULTS through
    pos: int | None = None
    if at is not None:
        if name not in _POSITIONAL:
            raise ChaosGrammarError(f"{token!r}: {name} takes no @K position")
        pos = _int(token, at, low=0, high=_MAX_WORDS)
    elif name in _POSITIONAL and name != "truncate":
        pos = 0
    number: float | None = None
    if name in _SECONDS:
        number = _seconds(token, value)
    elif name == "stall":
        number = None if value is None else _seconds(token, value)
    elif name == "status":
        number = float(_int(token, value, low=400, high=599))
    elif name == "repeat":
        number = float(DEFAULT_REPEAT if value is None else _int(token, value, low=1, high=10_000))
    elif value is not None:
        raise ChaosGrammarError(f"{token!r}: {name} takes no value")
    return Fault(kind=kind, at=pos, value=number, first=times)


def _int(token: str, value: str | None, *, low: int, high: int) -> int:
    if value is None or not re.fullmatch(r"\d+", value):
        raise ChaosGrammarError(f"{token!r}: expected a whole number, got {value!r}")
    n = int(value)
    if not low <= n <= high:
        raise ChaosGrammarError(f"{token!r}: {n} is outside {low}..{high}")
    return n


def _seconds(token: str, value: str | None) -> float:
    try:
        s = float(value) if value is not None else math.nan
    except ValueError:
        s = math.nan
    if not math.isfinite(s) or not 0.0 <= s <= _MAX_SECONDS:
        raise ChaosGrammarError(
            f"{token!r}: expected seconds between 0 and {_MAX_SECONDS:g}, got {value!r}"
        )
    return s


def _chunking(token: str, value: str | None) -> Chunking:
    m = _CHUNK.fullmatch(value or "")
    if m is None:
        raise ChaosGrammarError(f"{token!r}: chunk is N, N-M, Nw or N-Mc (words or chars)")
    low = int(m.group("low"))
    high = int(m.group("high") or low)
    if not 1 <= low <= high <= _MAX_CHUNK:
        raise ChaosGrammarError(f"{token!r}: need 1 <= N <= M <= {_MAX_CHUNK}")
    return Chunking(unit="chars" if m.group("unit") == "c" else "words", low=low, high=high)


def _show(name: str, at: str | None, value: str | None, times: int | None) -> str:
    return (
        name
        + (f"@{at}" if at is not None else "")
        + (f"={value}" if value is not None else "")
        + (f"x{times}" if times is not None else "")
    )
