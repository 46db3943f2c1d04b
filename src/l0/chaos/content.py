"""Deterministic content for the chaos server: text, JSON, tool arguments, chunking and ids.

Everything here is a pure function of its inputs and a seed. The generator is a small
SplitMix64 rather than `random.Random` so the same seed gives the same bytes on every Python
version, not just the one the test was written on.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from l0.chaos.grammar import Chunking, Content, Plan, Scenario

__all__ = [
    "ASAI_PREFIX",
    "Reply",
    "SeededRandom",
    "chunk_text",
    "compose_reply",
    "count_words",
    "derive_seed",
    "make_id",
    "message_text",
    "repetition",
    "seeded_json",
    "seeded_text",
    "tool_arguments",
]

T = TypeVar("T")

#: The refusal preamble content guardrails look for (``asai`` fault).
ASAI_PREFIX = "As an AI language model, I don't have personal opinions, but "

_MASK = (1 << 64) - 1

# Plain, common words: the text should look like prose to a human reading a demo, and must
# not accidentally contain the patterns the guardrails hunt for. (A paragraph reads better
# here than a column of 170 quoted literals, hence the noqa.)
_WORDS = (  # noqa: SIM905
    "the a of and to in is that it for on with as was at by from this be are or an "
    "not but all which their they there been one has more when will would can into "
    "time about other many then these some could people only first over new after "
    "most also made between used such through where river garden window morning "
    "signal harbor lantern pattern meadow engine letter bridge market winter summer "
    "silver orange yellow gentle quiet steady rapid careful simple bright distant "
    "north south island valley forest mountain station library kitchen journey "
    "record circle number measure answer question reason method system network "
    "stream token model output input buffer packet channel server client request "
    "reply careful quickly slowly rarely often always seldom together beyond "
    "under above across around behind inside outside during before after while "
    "builds carries follows gathers holds keeps leaves moves opens reaches runs "
    "sends shows starts turns waits walks writes reads grows falls rises shines"
).split()
_KEYS = (  # noqa: SIM905
    "name id title status count total score city country color size kind label "
    "priority owner region language version enabled tags notes"
).split()
_STRING_VALUES = (  # noqa: SIM905
    "alpha beta gamma delta north south amber cobalt ready pending done paris oslo "
    "lima tokyo nairobi"
).split()


class SeededRandom:
    """SplitMix64: tiny, fast, and identical on every platform and Python version."""

    __slots__ = ("_state",)

    def __init__(self, seed: int) -> None:
        self._state = seed & _MASK

    def next64(self) -> int:
        """The next 64-bit unsigned integer."""
        self._state = (self._state + 0x9E3779B97F4A7C15) & _MASK
        z = self._state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        """A number in ``[0, n)``; the tiny modulo bias is irrelevant for test content."""
        return self.next64() % n

    def between(self, low: int, high: int) -> int:
        """A number in ``[low, high]``."""
        return low + self.below(high - low + 1)

    def choice(self, items: Sequence[T]) -> T:
        """One of ``items``."""
        return items[self.below(len(items))]


def derive_seed(*parts: object) -> int:
    """A 64-bit seed from any parts (joined by their ``repr``), stable across runs."""
    digest = hashlib.sha256("\x1f".join(repr(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def make_id(prefix: str, *parts: object, length: int = 24) -> str:
    """An OpenAI-looking id (``chatcmpl-…``, ``call_…``) derived from ``parts``."""
    digest = hashlib.sha256("\x1f".join(repr(p) for p in parts).encode()).hexdigest()
    return prefix + digest[:length]


def resume_point(partial: str, overlap_words: int = 2) -> int:
    """Where a continuation of ``partial`` starts: the beginning of its last
    ``overlap_words`` words (0 when it has fewer)."""
    position = len(partial)
    for _ in range(overlap_words):
        position = partial.rfind(" ", 0, max(0, position - 1))
        if position <= 0:
            return 0
    return position + 1


def seeded_text(rng: SeededRandom, words: int) -> str:
    """``words`` words of prose: sentences of 6–14 words, capitalised, ending in a period."""
    out: list[str] = []
    left = words
    while left > 0:
        n = min(left, rng.between(6, 14))
        sentence = [rng.choice(_WORDS) for _ in range(n)]
        sentence[0] = sentence[0].capitalize()
        out.append(" ".join(sentence) + ".")
        left -= n
    return " ".join(out)


def seeded_json(rng: SeededRandom, keys: int) -> str:
    """A JSON object with ``keys`` distinct keys and mixed value types (pretty-printed)."""
    pool = list(_KEYS)
    obj: dict[str, Any] = {}
    for i in range(keys):
        key = pool.pop(rng.below(len(pool))) if pool else f"field_{i}"
        obj[key] = _value(rng, i)
    return json.dumps(obj, indent=2)


def _value(rng: SeededRandom, i: int) -> Any:
    kind = (i + rng.below(4)) % 4
    if kind == 0:
        return rng.choice(_STRING_VALUES)
    if kind == 1:
        return rng.below(1000)
    if kind == 2:
        return rng.below(2) == 1
    return [rng.choice(_STRING_VALUES) for _ in range(rng.between(1, 3))]


def tool_arguments(rng: SeededRandom, schema: Mapping[str, Any] | None) -> str:
    """JSON arguments for a tool call: fills the schema's properties, or ``{"query": …}``."""
    props = schema.get("properties") if isinstance(schema, Mapping) else None
    if not isinstance(props, Mapping) or not props:
        return json.dumps({"query": seeded_text(rng, 3).rstrip(".")})
    return json.dumps({str(k): _from_schema(rng, v) for k, v in props.items()})


def _from_schema(rng: SeededRandom, schema: Any) -> Any:
    if not isinstance(schema, Mapping):
        return rng.choice(_STRING_VALUES)
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return rng.choice(enum)
    kind = schema.get("type")
    if isinstance(kind, list):  # ["string", "null"]
        kind = next((k for k in kind if k != "null"), "string")
    if kind in ("integer", "number"):
        n = rng.below(100)
        return n if kind == "integer" else n + rng.below(10) / 10
    if kind == "boolean":
        return rng.below(2) == 1
    if kind == "array":
        return [_from_schema(rng, schema.get("items")) for _ in range(rng.between(1, 3))]
    if kind == "object":
        return {str(k): _from_schema(rng, v) for k, v in (schema.get("properties") or {}).items()}
    return rng.choice(_STRING_VALUES)


def repetition(text: str, times: int) -> str:
    """A degenerate loop: the first eight words of ``text``, ``times`` times over."""
    phrase = " ".join(text.split()[:8]) or "and so on"
    return " ".join([phrase] * times)


# A piece is one word with the whitespace before it, like a BPE token (" world"); a text's
# trailing whitespace is its own piece, so joining the pieces gives the text back exactly.
_PIECE = re.compile(r"\s*\S+|\s+")


def chunk_text(text: str, chunking: Chunking, rng: SeededRandom) -> list[str]:
    """Cut ``text`` into stream chunks whose concatenation is exactly ``text``.

    Chunk sizes are drawn from ``[chunking.low, chunking.high]`` words or characters.
    """
    if not text:
        return []
    chunks: list[str] = []
    if chunking.unit == "chars":
        i = 0
        while i < len(text):
            n = rng.between(chunking.low, chunking.high)
            chunks.append(text[i : i + n])
            i += n
        return chunks
    pieces = _PIECE.findall(text)
    i = 0
    while i < len(pieces):
        n = rng.between(chunking.low, chunking.high)
        chunks.append("".join(pieces[i : i + n]))
        i += n
    return chunks


def message_text(content: Any) -> str:
    """The text of one message's ``content``: a string or a list of ``{"type": "text"}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            if isinstance(part, Mapping):
                value = part.get("text")
                if isinstance(value, str):
                    texts.append(value)
            elif isinstance(part, str):
                texts.append(part)
        return " ".join(texts)
    return ""


def count_words(texts: Iterable[str]) -> int:
    """Whitespace-separated words across ``texts``: the chaos server's prompt-token count."""
    return sum(len(t.split()) for t in texts)


@dataclass(frozen=True, slots=True)
class Reply:
    """The assistant's answer to one request, already cut into stream chunks.

    Attributes:
        kind: ``"text"`` or ``"tool"``.
        chunks: content deltas (text) or argument deltas (tool); ``"".join(chunks)`` is the
            whole (possibly truncated) content.
        finish_reason: ``"stop"``, ``"length"`` (truncated) or ``"tool_calls"``.
        tool_name: the called function (``kind="tool"``), else ``""``.
        call_id: the tool call id (``call_…``), else ``""``.
        prompt_tokens: whitespace-separated words in the prompt.
        completion_tokens: the number of chunks: one chunk counts as one token.
    """

    kind: Literal["text", "tool"]
    chunks: tuple[str, ...]
    finish_reason: Literal["stop", "length", "tool_calls"]
    tool_name: str
    call_id: str
    prompt_tokens: int
    completion_tokens: int

    @property
    def text(self) -> str:
        """All chunks joined: the text (or tool arguments) the client should end up with."""
        return "".join(self.chunks)


def compose_reply(
    scenario: Scenario,
    plan: Plan,
    *,
    seed: int,
    prompt: Sequence[str],
    last_user: str | None,
    tools: Sequence[tuple[str, Mapping[str, Any] | None]],
    max_tokens: int | None,
    resume_after: str | None = None,
) -> Reply:
    """Decide what the assistant says for one request.

    Args:
        scenario: the parsed request.
        plan: the faults active for this request (content faults change the text).
        seed: the effective seed; content depends on it and on ``prompt`` only, so the same
            prompt gets the same text whatever faults are injected around it.
        prompt: the text of every message (and instructions), in order.
        last_user: the last user message's text; ``echo: …`` there is echoed verbatim.
        tools: ``(name, parameters schema)`` of the request's function tools.
        max_tokens: the request's output limit; more chunks than this are cut (``length``).
        resume_after: for a continuation request, the assistant's partial text: when the
            reply would start with it, the reply resumes from the start of its last two
            words instead — repeating a little, as real models do when asked to continue.
    """
    key = (seed, tuple(prompt))
    words_rng = SeededRandom(derive_seed("content", *key))
    chunk_rng = SeededRandom(derive_seed("chunks", *key))
    content = scenario.content
    chunking = Chunking("chars", 1, 1) if plan.char_chunks else scenario.chunking
    prompt_tokens = count_words(prompt)

    if content.kind == "tool" and not plan.empty:
        name = content.tool or (tools[0][0] if tools else "lookup")
        schema = next((s for n, s in tools if n == name), None)
        arguments = tool_arguments(words_rng, schema)
        chunks = chunk_text(arguments, chunking, chunk_rng)
        finish: Literal["stop", "length", "tool_calls"] = "tool_calls"
        chunks, finish = _limit(chunks, finish, plan, max_tokens)
        return Reply(
            kind="tool",
            chunks=tuple(chunks),
            finish_reason=finish,
            tool_name=name,
            call_id=make_id("call_", "call", *key),
            prompt_tokens=prompt_tokens,
            completion_tokens=len(chunks),
        )

    if plan.empty:
        text = ""
    elif content.kind == "text":
        text = content.text or ""
    elif content.kind == "json":
        text = seeded_json(words_rng, content.json_keys)
    elif content == Content() and last_user is not None and last_user.startswith("echo:"):
        text = last_user[len("echo:") :].removeprefix(" ")
    else:
        text = seeded_text(words_rng, content.words)
    if resume_after and text.startswith(resume_after):
        text = text[resume_point(resume_after) :]
    if plan.repeat is not None and text:
        text = repetition(text, plan.repeat)
    if plan.asai and not plan.empty:
        text = ASAI_PREFIX + (text[:1].lower() + text[1:] if content.kind == "words" else text)
    chunks = chunk_text(text, chunking, chunk_rng)
    chunks, finish = _limit(chunks, "stop", plan, max_tokens)
    return Reply(
        kind="text",
        chunks=tuple(chunks),
        finish_reason=finish,
        tool_name="",
        call_id="",
        prompt_tokens=prompt_tokens,
        completion_tokens=len(chunks),
    )


def _limit(
    chunks: list[str],
    finish: Literal["stop", "length", "tool_calls"],
    plan: Plan,
    max_tokens: int | None,
) -> tuple[list[str], Literal["stop", "length", "tool_calls"]]:
    limit: int | None = None
    if plan.truncate:
        # Without @K, cut in the middle but keep at least one chunk: truncated JSON must
        # still start like JSON for the repair tests to mean anything.
        limit = plan.truncate_at if plan.truncate_at is not None else max(1, len(chunks) // 2)
    if max_tokens is not None:
        limit = max_tokens if limit is None else min(limit, max_tokens)
    if limit is not None and limit < len(chunks):
        return chunks[:limit], "length"
    return chunks, finish
