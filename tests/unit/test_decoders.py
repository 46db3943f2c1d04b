"""The decoder seam: the runtime reads provider chunks through an adapter's ``Decoder``.

The OpenAI decoder answers plain content chunks on a fast path (``text``) and everything else
through ``events``; whatever the chunks, the two paths must give the same events. Custom
adapters may provide a decoder or only ``wrap()``; both run under the session's loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletionChunk

import l0
from l0.adapters.base import Decoder, EventsDecoder, decoded_events, open_decoder
from l0.adapters.openai import OpenAIAdapter, OpenAIDecoder
from l0.errors import InvalidStreamError
from l0.testing import FakeClock
from l0.types import ErrorCode, Event, EventType


async def replay(items: Sequence[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


class SlowOnly(OpenAIDecoder):
    """The OpenAI decoder with its fast path switched off: the reference."""

    __slots__ = ()

    def text(self, chunk: Any) -> str | None:
        return None


def summary(events: Sequence[Event]) -> list[tuple[Any, ...]]:
    return [
        (
            e.type,
            e.text,
            e.data,
            e.usage,
            type(e.error).__name__ if e.error else None,
            str(e.error) if e.error else None,
        )
        for e in events
    ]


async def decode(decoder: OpenAIDecoder) -> list[Event]:
    return [event async for event in decoded_events(decoder)]


# One chunk of a Chat Completions stream, as the SDK builds it (``construct``, no validation,
# or ``model_validate``): any mix of content, finish reason, usage, tool calls, choice index.
texts = st.one_of(st.none(), st.just(""), st.text(min_size=1, max_size=6))
tool_call = st.fixed_dictionaries(
    {"index": st.integers(0, 1), "function": st.fixed_dictionaries({"arguments": st.just("{}")})}
)
chunk_bodies = st.fixed_dictionaries(
    {
        "content": texts,
        "finish_reason": st.sampled_from([None, None, None, "stop", "length", "tool_calls"]),
        "index": st.sampled_from([0, 0, 0, 1]),
        "usage": st.sampled_from([None, None, {"prompt_tokens": 1, "completion_tokens": 2}]),
        "tool_calls": st.one_of(st.none(), st.lists(tool_call, min_size=1, max_size=2)),
        "empty": st.sampled_from([False, False, False, False, True]),
        "validate": st.booleans(),
    }
)


def build(body: dict[str, Any]) -> ChatCompletionChunk:
    delta: dict[str, Any] = {"content": body["content"]}
    if body["tool_calls"] is not None:
        delta["tool_calls"] = body["tool_calls"]
    choice = {"index": body["index"], "delta": delta, "finish_reason": body["finish_reason"]}
    raw: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [] if body["empty"] else [choice],
    }
    if body["usage"] is not None:
        usage = dict(body["usage"], total_tokens=3)
        raw["usage"] = usage
    if body["validate"]:
        return ChatCompletionChunk.model_validate(raw)
    return ChatCompletionChunk.construct(**raw)  # what the SDK does with a server's JSON


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(chunk_bodies, min_size=1, max_size=12))
async def test_the_fast_path_gives_the_same_events_as_the_full_one(
    bodies: list[dict[str, Any]],
) -> None:
    chunks = [build(body) for body in bodies]

    fast = await decode(OpenAIDecoder(replay(chunks), source="openai"))
    slow = await decode(SlowOnly(replay(chunks), source="openai"))

    assert summary(fast) == summary(slow)


def content_chunk(text: str) -> ChatCompletionChunk:
    return build(
        {
            "content": text,
            "finish_reason": None,
            "index": 0,
            "usage": None,
            "tool_calls": None,
            "empty": False,
            "validate": False,
        }
    )


def test_the_fast_path_opens_after_the_first_chunk_of_a_known_class() -> None:
    decoder = OpenAIDecoder(replay([]), source="openai")
    first, second = content_chunk("Hello"), content_chunk(" world")

    assert decoder.text(first) is None  # the first chunk is read in full (id, model)
    assert summary(decoder.events(first)) == summary([Event(EventType.TOKEN, "Hello")])
    assert decoder.text(second) == " world"
    assert decoder.chat.response_id == "chatcmpl-1"


def test_the_fast_path_leaves_other_shapes_to_the_full_path() -> None:
    decoder = OpenAIDecoder(replay([]), source="openai")
    decoder.events(content_chunk("Hello"))
    with_finish = build(
        {
            "content": "bye",
            "finish_reason": "stop",
            "index": 0,
            "usage": None,
            "tool_calls": None,
            "empty": False,
            "validate": False,
        }
    )
    as_dict = {"id": "x", "choices": [{"index": 0, "delta": {"content": "hi"}}]}

    assert decoder.text(with_finish) is None
    assert decoder.text(as_dict) is None
    assert decoder.text("a string") is None
    assert decoder.text(object()) is None


# --- custom adapters under the session ------------------------------------------------------


class _DecoderAdapter:
    """A custom adapter that is only ever passed explicitly; wrap() runs its decoder."""

    name = "custom"

    def detect(self, stream: Any) -> bool:
        return False

    def wrap(self, stream: Any) -> AsyncIterator[Event]:
        return decoded_events(self.decoder(stream))

    def decoder(self, stream: Any) -> Decoder:
        raise NotImplementedError


class Shouting(_DecoderAdapter):
    """A custom adapter with a decoder: upper-cases the text of plain strings."""

    name = "shouting"

    def decoder(self, stream: Any) -> Decoder:
        return ShoutingDecoder(stream)


class ShoutingDecoder:
    def __init__(self, stream: Any) -> None:
        self.chunks = stream.__aiter__()
        self.closed = False

    def text(self, chunk: Any) -> str | None:
        if chunk == "explode":
            raise ValueError("cannot read this one")
        return chunk.upper() if isinstance(chunk, str) and chunk else None

    def events(self, chunk: Any) -> Sequence[Event]:
        return ()

    def finish(self) -> Sequence[Event]:
        return (Event(EventType.COMPLETE, data={"finish_reason": "stop"}),)

    def failed(self, error: BaseException) -> Event:
        return Event(EventType.ERROR, error=error)

    def invalid(self, chunk: Any, error: Exception) -> Event:
        return Event(EventType.ERROR, error=InvalidStreamError(f"bad chunk: {error}"))

    async def aclose(self) -> None:
        self.closed = True


async def test_a_custom_decoder_drives_the_session() -> None:
    result = await l0.run(
        stream=lambda: replay(["hello", "", " world"]), adapter=Shouting(), clock=FakeClock()
    )

    assert await result.read() == "HELLO WORLD"
    assert result.state.finish_reason == "stop"
    assert result.state.token_count == 2


async def test_a_decoder_that_raises_is_an_invalid_stream_and_retried() -> None:
    streams = iter([["ok", "explode"], ["fine"]])
    result = await l0.run(
        stream=lambda: replay(next(streams)),
        adapter=Shouting(),
        retry=l0.Retry(attempts=2),
        clock=FakeClock(),
    )

    events = [event async for event in result]

    assert [e.type for e in events] == [
        EventType.TOKEN,
        EventType.RESET,
        EventType.TOKEN,
        EventType.COMPLETE,
    ]
    assert result.state.content == "FINE"
    assert result.state.errors[0].code is ErrorCode.INVALID_STREAM


def test_an_adapter_without_a_decoder_is_read_through_its_events() -> None:
    class WrapOnly:
        name = "wrap-only"

        def detect(self, stream: Any) -> bool:
            return False

        def wrap(self, stream: Any) -> AsyncIterator[Event]:
            return replay([Event(EventType.TOKEN, "x")])

    assert isinstance(open_decoder(WrapOnly(), None), EventsDecoder)
    assert isinstance(open_decoder(OpenAIAdapter(), replay([])), OpenAIDecoder)


async def test_a_wrap_adapter_that_yields_garbage_fails_the_attempt_cleanly() -> None:
    class Garbage:
        name = "garbage"

        def detect(self, stream: Any) -> bool:
            return False

        def wrap(self, stream: Any) -> AsyncIterator[Any]:
            return replay(["not an event"])

    result = await l0.run(
        stream=lambda: replay([]), adapter=Garbage(), retry=l0.Retry(attempts=1), clock=FakeClock()
    )

    with pytest.raises(l0.L0Error, match=r"expected l0\.Event"):
        await result.read()
    assert {record.code for record in result.state.errors} == {ErrorCode.INVALID_STREAM}


async def test_fast_path_events_are_complete_events() -> None:
    # The session builds the fast path's TOKEN events field by field: none may be missing.
    clock = FakeClock()
    result = await l0.run(stream=lambda: replay(["a", "b", "c"]), clock=clock)

    events = [event async for event in result]

    for event in events[:3]:
        values = {f.name: getattr(event, f.name) for f in dataclasses.fields(Event)}
        assert event == Event(EventType.TOKEN, event.text, ts=event.ts)
        assert values == dataclasses.asdict(Event(EventType.TOKEN, event.text, ts=event.ts))
    assert [e.text for e in events[:3]] == ["a", "b", "c"]


async def test_a_chunk_keeping_decoder_hands_back_every_chunk_in_order() -> None:
    from opentelemetry.instrumentation.l0.adapters import RawChunkDecoder

    chunks = [content_chunk(word) for word in ("one", " two", " three")]
    finish = build(
        {
            "content": None,
            "finish_reason": "stop",
            "index": 0,
            "usage": None,
            "tool_calls": None,
            "empty": False,
            "validate": False,
        }
    )
    stream = [*chunks, finish]

    events = [e async for e in decoded_events(RawChunkDecoder(replay(stream), source="openai"))]
    result = await l0.run(
        stream=lambda: replay(stream),
        adapter=_RawChunks(),
        clock=FakeClock(),
    )
    through_session = [e async for e in result]

    for seen in (events, through_session):
        assert [c for e in seen for c in (e.raw or ())] == stream
        assert "".join(e.text or "" for e in seen) == "one two three"


class _RawChunks(_DecoderAdapter):
    name = "openai"

    def decoder(self, stream: Any) -> Decoder:
        from opentelemetry.instrumentation.l0.adapters import RawChunkDecoder

        return RawChunkDecoder(stream, source="openai")
