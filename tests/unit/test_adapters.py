"""The built-in adapters: provider chunks in, l0 events out, text untouched, never a raise.

Chunks are real SDK objects (``ChatCompletionChunk.model_validate``, Responses event classes,
``litellm.ModelResponseStream``) or come from a real ``AsyncOpenAI`` client whose HTTP
transport replays server-sent events, so the adapters see exactly what users' code sees.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from types import SimpleNamespace
from typing import Any

import httpx2
import litellm
import pytest
from openai import AsyncOpenAI, AsyncStream
from openai.types.chat import ChatCompletionChunk
from openai.types.responses import (
    ResponseCompletedEvent,
    ResponseCreatedEvent,
    ResponseErrorEvent,
    ResponseFailedEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseIncompleteEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseRefusalDeltaEvent,
    ResponseTextDeltaEvent,
)

from l0.adapters._close import close_stream
from l0.adapters.base import Adapter, Adapters, NoAdapterError
from l0.adapters.litellm import LiteLLMAdapter
from l0.adapters.openai import OpenAIAdapter, OpenAIResponsesAdapter
from l0.adapters.text import TextAdapter
from l0.errors import (
    InvalidStreamError,
    ModelRefusalError,
    ProviderStreamError,
    TruncatedStreamError,
)
from l0.types import Event, EventType, Usage

# --- building streams ------------------------------------------------------------------------


class Boom:
    """A stream item that makes the stream raise ``error`` at that position."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


class RecordingStream:
    """A provider-stream double: yields ``items`` (raising at a :class:`Boom`) and records how
    it was closed."""

    def __init__(self, items: Iterable[Any], *, close: str = "aclose") -> None:
        self._items = iter(items)
        self.closed = 0
        closer: Any = self._close_sync if close == "sync-close" else self._close_async
        setattr(self, "aclose" if close == "aclose" else "close", closer)

    def __aiter__(self) -> RecordingStream:
        return self

    async def __anext__(self) -> Any:
        for item in self._items:
            if isinstance(item, Boom):
                raise item.error
            return item
        raise StopAsyncIteration

    async def _close_async(self) -> None:
        self.closed += 1

    def _close_sync(self) -> None:
        self.closed += 1


async def collect(events: AsyncIterator[Event]) -> list[Event]:
    return [event async for event in events]


def types_of(events: list[Event]) -> list[EventType]:
    return [event.type for event in events]


def text_of(events: list[Event]) -> str:
    return "".join(event.text or "" for event in events if event.type is EventType.TOKEN)


def chunk_dict(
    delta: dict[str, Any] | None = None,
    finish_reason: str | None = None,
    *,
    index: int = 0,
    usage: dict[str, int] | None = None,
    empty: bool = False,
) -> dict[str, Any]:
    choices = (
        [] if empty else [{"index": index, "delta": delta or {}, "finish_reason": finish_reason}]
    )
    raw: dict[str, Any] = {
        "id": "chatcmpl-42",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_1",
        "choices": choices,
    }
    if usage is not None:
        raw["usage"] = usage
    return raw


def chunk(*args: Any, **kwargs: Any) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate(chunk_dict(*args, **kwargs))


def tool_fragment(
    index: int, arguments: str, *, call_id: str | None = None, name: str | None = None
) -> dict[str, Any]:
    function: dict[str, Any] = {"arguments": arguments}
    if name is not None:
        function["name"] = name
    fragment: dict[str, Any] = {"index": index, "function": function}
    if call_id is not None:
        fragment["id"] = call_id
        fragment["type"] = "function"
    return fragment


USAGE = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}


def sse_client(payloads: list[Any]) -> AsyncOpenAI:
    """A real client whose server answers every request with ``payloads`` as SSE events,
    one network read per event, the connection held open until the client closes it."""

    async def body() -> AsyncIterator[bytes]:
        for payload in payloads:
            yield b"data: " + json.dumps(payload).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body(), headers={"content-type": "text/event-stream"})

    return AsyncOpenAI(
        api_key="sk-test",
        base_url="http://llm.test/v1",
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)),
    )


async def chat_stream(payloads: list[Any]) -> AsyncStream[ChatCompletionChunk]:
    client = sse_client(payloads)
    return await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )


# --- Chat Completions ------------------------------------------------------------------------

TRICKY_TEXT = ["Hé", "llo ", "  ", "\n\n", "世界 🌍", "\u200b", "\r\n\t", " end "]


async def test_text_is_preserved_byte_for_byte() -> None:
    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": piece}) for piece in TRICKY_TEXT]
    chunks += [chunk({}), chunk({}, "stop")]

    events = await collect(OpenAIAdapter().wrap(RecordingStream(chunks)))

    tokens = [event.text for event in events if event.type is EventType.TOKEN]
    assert tokens == TRICKY_TEXT  # empty deltas make no token, nothing else is touched
    assert types_of(events)[-1] is EventType.COMPLETE
    assert events[-1].data == {
        "finish_reason": "stop",
        "response_id": "chatcmpl-42",
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_1",
    }


async def test_a_real_sdk_stream_goes_through_unchanged() -> None:
    payloads = [chunk_dict({"content": piece}) for piece in TRICKY_TEXT]
    payloads += [chunk_dict({}, "stop"), chunk_dict(empty=True, usage=USAGE)]
    stream = await chat_stream(payloads)

    events = await collect(OpenAIAdapter().wrap(stream))

    assert text_of(events) == "".join(TRICKY_TEXT)
    assert events[-1].usage == Usage(input_tokens=11, output_tokens=7, total_tokens=18)
    assert stream.response.is_closed


async def test_dict_chunks_give_the_same_events_as_objects() -> None:
    dicts = [
        chunk_dict({"content": "Hi"}),
        chunk_dict({"tool_calls": [tool_fragment(0, '{"a":', call_id="call_1", name="f")]}),
        chunk_dict({"tool_calls": [tool_fragment(0, " 1}")]}),
        chunk_dict({}, "tool_calls"),
        chunk_dict(empty=True, usage=USAGE),
    ]
    objects = [ChatCompletionChunk.model_validate(raw) for raw in dicts]

    from_dicts = await collect(OpenAIAdapter().wrap(RecordingStream(dicts)))
    from_objects = await collect(OpenAIAdapter().wrap(RecordingStream(objects)))

    assert [(e.type, e.text, e.data, e.usage) for e in from_dicts] == [
        (e.type, e.text, e.data, e.usage) for e in from_objects
    ]


async def test_tool_call_fragments_are_merged_by_index() -> None:
    chunks = [
        chunk({"role": "assistant", "content": None}),
        chunk({"tool_calls": [tool_fragment(0, "", call_id="call_a", name="get_weather")]}),
        chunk({"tool_calls": [tool_fragment(1, "", call_id="call_b", name="get_time")]}),
        chunk({"tool_calls": [tool_fragment(0, '{"city"')]}),
        chunk({"tool_calls": [tool_fragment(1, '{"tz": "Europe/')]}),
        chunk({"tool_calls": [tool_fragment(0, ': "Paris"}')]}),
        chunk({"tool_calls": [tool_fragment(1, 'Paris"}')]}),
        chunk({}, "tool_calls"),
        chunk(empty=True, usage=USAGE),
    ]

    events = await collect(OpenAIAdapter().wrap(RecordingStream(chunks)))

    deltas = [e.data for e in events if e.type is EventType.TOOL_CALL_DELTA]
    assert len(deltas) == 6
    assert deltas[0] == {"index": 0, "id": "call_a", "name": "get_weather", "arguments": ""}
    assert deltas[3] == {"index": 1, "id": None, "name": None, "arguments": '{"tz": "Europe/'}
    assert types_of(events)[-3:] == [EventType.TOOL_CALL, EventType.TOOL_CALL, EventType.COMPLETE]
    first, second = events[-3].data, events[-2].data
    assert first == {
        "index": 0,
        "id": "call_a",
        "name": "get_weather",
        "arguments": '{"city": "Paris"}',
        "parsed_arguments": {"city": "Paris"},
    }
    assert second["id"] == "call_b"
    assert second["parsed_arguments"] == {"tz": "Europe/Paris"}
    assert events[-1].data["finish_reason"] == "tool_calls"
    assert events[-1].usage is not None


async def test_a_stream_cut_before_finish_reason_is_truncated_not_complete() -> None:
    chunks = [
        chunk({"tool_calls": [tool_fragment(0, '{"x": [1, ', call_id="c", name="f")]}),
        chunk({"tool_calls": [tool_fragment(0, "2")]}),  # the stream stops mid-arguments
    ]

    events = await collect(OpenAIAdapter().wrap(RecordingStream(chunks)))

    # The unfinished call is not reported as complete, and the stream is not a success.
    assert types_of(events) == [
        EventType.TOOL_CALL_DELTA,
        EventType.TOOL_CALL_DELTA,
        EventType.ERROR,
    ]
    assert isinstance(events[-1].error, TruncatedStreamError)


async def test_tool_calls_without_index_are_told_apart_by_id() -> None:
    # Some OpenAI-compatible servers leave out the index; the SDK then reads it as None.
    fragments = [
        {"id": "call_1", "function": {"name": "f", "arguments": '{"a": 1}'}},
        {"id": "call_2", "function": {"name": "g", "arguments": "{"}},
        {"function": {"arguments": "}"}},
    ]
    stream = await chat_stream(
        [chunk_dict({"tool_calls": [f]}) for f in fragments] + [chunk_dict({}, "tool_calls")]
    )

    events = await collect(OpenAIAdapter().wrap(stream))

    calls = [e.data for e in events if e.type is EventType.TOOL_CALL]
    assert [(c["index"], c["id"], c["arguments"]) for c in calls] == [
        (0, "call_1", '{"a": 1}'),
        (1, "call_2", "{}"),
    ]


async def test_legacy_function_call_becomes_a_tool_call() -> None:
    chunks = [
        chunk({"function_call": {"name": "lookup", "arguments": ""}}),
        chunk({"function_call": {"arguments": '{"q": "l0"}'}}),
        chunk({}, "function_call"),
    ]

    events = await collect(OpenAIAdapter().wrap(RecordingStream(chunks)))

    assert types_of(events) == [
        EventType.TOOL_CALL_DELTA,
        EventType.TOOL_CALL_DELTA,
        EventType.TOOL_CALL,
        EventType.COMPLETE,
    ]
    assert events[2].data["name"] == "lookup"
    assert events[2].data["parsed_arguments"] == {"q": "l0"}


async def test_usage_from_the_final_chunk() -> None:
    chunks = [chunk({"content": "ok"}), chunk({}, "stop"), chunk(empty=True, usage=USAGE)]

    events = await collect(OpenAIAdapter().wrap(RecordingStream(chunks)))

    complete = events[-1]
    assert complete.type is EventType.COMPLETE
    assert complete.usage == Usage(input_tokens=11, output_tokens=7, total_tokens=18)
    assert [e.type for e in events].count(EventType.COMPLETE) == 1


async def test_a_refusal_becomes_a_model_refusal_error() -> None:
    chunks = [
        chunk({"role": "assistant", "refusal": ""}),
        chunk({"refusal": "I can't "}),
        chunk({"refusal": "help with that."}),
        chunk({}, "stop"),
        chunk(empty=True, usage=USAGE),
    ]

    events = await collect(OpenAIAdapter().wrap(RecordingStream(chunks)))

    assert types_of(events) == [EventType.ERROR]
    error = events[0].error
    assert isinstance(error, ModelRefusalError)
    assert str(error) == "I can't help with that."
    assert events[0].data == {"response_id": "chatcmpl-42", "model": "gpt-4o-mini-2024-07-18"}
    assert events[0].usage is not None


async def test_content_filter_becomes_a_model_refusal_error() -> None:
    chunks = [chunk({"content": "Once upon"}), chunk({}, "content_filter")]

    events = await collect(OpenAIAdapter().wrap(RecordingStream(chunks)))

    assert types_of(events) == [EventType.TOKEN, EventType.ERROR]
    assert isinstance(events[-1].error, ModelRefusalError)
    assert "content_filter" in str(events[-1].error)


async def test_an_exception_mid_stream_becomes_the_last_event() -> None:
    dropped = ConnectionResetError("connection reset by peer")
    stream = RecordingStream([chunk({"content": "Hel"}), chunk({"content": "lo"}), Boom(dropped)])

    events = await collect(OpenAIAdapter().wrap(stream))

    assert types_of(events) == [EventType.TOKEN, EventType.TOKEN, EventType.ERROR]
    assert text_of(events) == "Hello"
    assert events[-1].error is dropped  # the very object: the runtime categorizes it
    assert events[-1].data == {"response_id": "chatcmpl-42", "model": "gpt-4o-mini-2024-07-18"}
    assert stream.closed == 1


async def test_an_exception_before_any_chunk_has_no_metadata() -> None:
    dropped = TimeoutError("read timed out")

    events = await collect(OpenAIAdapter().wrap(RecordingStream([Boom(dropped)])))

    assert len(events) == 1
    assert events[0].error is dropped
    assert events[0].data is None


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param("data: not json", id="str"),
        pytest.param(42, id="int"),
        pytest.param({"object": "chat.completion.chunk"}, id="dict-without-choices"),
        pytest.param(object(), id="object"),
        pytest.param(SimpleNamespace(type="session.updated"), id="unknown-event-type"),
        pytest.param({"choices": [{"index": 0, "delta": 5}]}, id="nested-garbage"),
        pytest.param({"choices": [{"index": 0, "delta": {"content": 5}}]}, id="content-not-str"),
        pytest.param({"choices": [{"index": "0", "delta": {}}]}, id="index-not-int"),
    ],
)
async def test_a_chunk_l0_cannot_read_is_an_invalid_stream_error(garbage: Any) -> None:
    stream = RecordingStream([chunk({"content": "fine"}), garbage, chunk({"content": "never"})])

    events = await collect(OpenAIAdapter().wrap(stream))

    assert types_of(events) == [EventType.TOKEN, EventType.ERROR]
    error = events[-1].error
    assert isinstance(error, InvalidStreamError)
    assert "openai adapter" in str(error)
    assert stream.closed == 1


async def test_garbage_from_a_real_sdk_stream() -> None:
    # The SDK passes JSON that is not an object straight through: a str, then an int.
    stream = await chat_stream([chunk_dict({"content": "ok"}), "oops", 7])

    events = await collect(OpenAIAdapter().wrap(stream))

    assert types_of(events) == [EventType.TOKEN, EventType.ERROR]
    assert isinstance(events[-1].error, InvalidStreamError)
    assert "str" in str(events[-1].error)


async def test_a_non_iterable_is_an_invalid_stream_error() -> None:
    events = await collect(OpenAIAdapter().wrap([chunk({"content": "sync"})]))

    assert types_of(events) == [EventType.ERROR]
    assert isinstance(events[0].error, InvalidStreamError)


async def test_only_choice_zero_is_read() -> None:
    chunks = [
        chunk({"content": "zero"}, index=0),
        chunk({"content": "one"}, index=1),
        chunk({}, "length", index=1),
        chunk({}, "stop", index=0),
    ]

    events = await collect(OpenAIAdapter().wrap(RecordingStream(chunks)))

    assert text_of(events) == "zero"
    assert events[-1].data["finish_reason"] == "stop"


@pytest.mark.parametrize("error", [asyncio.CancelledError(), KeyboardInterrupt()])
async def test_cancellation_and_interrupts_propagate(error: BaseException) -> None:
    stream = RecordingStream([chunk({"content": "a"}), Boom(error)])
    events = OpenAIAdapter().wrap(stream)

    assert (await events.__anext__()).text == "a"
    with pytest.raises(type(error)):
        await events.__anext__()
    assert stream.closed == 1  # released on the way out all the same


# --- closing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("close", ["aclose", "async-close", "sync-close"])
async def test_an_early_aclose_closes_the_provider_stream(close: str) -> None:
    stream = RecordingStream([chunk({"content": "a"}), chunk({"content": "b"})], close=close)
    events = OpenAIAdapter().wrap(stream)

    assert (await events.__anext__()).text == "a"
    await events.aclose()

    assert stream.closed == 1


async def test_breaking_out_of_a_real_sdk_stream_releases_the_response() -> None:
    stream = await chat_stream([chunk_dict({"content": str(i)}) for i in range(5)])
    events = OpenAIAdapter().wrap(stream)

    async for event in events:
        assert event.text == "0"
        break
    assert not stream.response.is_closed  # the server is still sending
    await events.aclose()

    assert stream.response.is_closed


async def test_the_stream_is_closed_when_it_ends() -> None:
    stream = RecordingStream([chunk({"content": "a"})])

    await collect(OpenAIAdapter().wrap(stream))

    assert stream.closed == 1


class _Unclosable:
    def close(self) -> None:
        raise RuntimeError("already closed")


async def test_close_stream_never_raises_and_is_idempotent() -> None:
    stream = RecordingStream([], close="async-close")
    await close_stream(stream)
    await close_stream(stream)
    assert stream.closed == 2

    await close_stream(_Unclosable())
    await close_stream(None)
    await close_stream(object())


async def test_close_stream_prefers_aclose() -> None:
    calls: list[str] = []

    class Both:
        async def aclose(self) -> None:
            calls.append("aclose")

        def close(self) -> None:
            calls.append("close")

    await close_stream(Both())

    assert calls == ["aclose"]


async def test_close_stream_closes_async_generators() -> None:
    finished = False

    async def gen() -> AsyncIterator[str]:
        nonlocal finished
        try:
            yield "a"
            yield "b"
        finally:
            finished = True

    stream = gen()
    await stream.__anext__()
    await close_stream(stream)

    assert finished


# --- Responses API ---------------------------------------------------------------------------


def response_body(status: str = "in_progress", **extra: Any) -> dict[str, Any]:
    return {
        "id": "resp_7",
        "object": "response",
        "created_at": 1_700_000_000,
        "model": "gpt-4.1-2025-04-14",
        "output": [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "status": status,
        **extra,
    }


RESPONSE_USAGE = {
    "input_tokens": 20,
    "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
    "output_tokens": 9,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": 29,
}


def function_item(arguments: str, status: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_9",
        "name": "get_weather",
        "arguments": arguments,
        "status": status,
    }


def text_delta(delta: str, output_index: int = 0) -> dict[str, Any]:
    return {
        "type": "response.output_text.delta",
        "output_index": output_index,
        "item_id": "msg_1",
        "content_index": 0,
        "delta": delta,
        "logprobs": [],
    }


def arguments_event(kind: str, text: str) -> dict[str, Any]:
    field = "delta" if kind == "delta" else "arguments"
    return {
        "type": f"response.function_call_arguments.{kind}",
        "output_index": 0,
        "item_id": "fc_1",
        field: text,
    }


def refusal_delta(delta: str) -> dict[str, Any]:
    return {
        "type": "response.refusal.delta",
        "output_index": 0,
        "item_id": "msg_1",
        "content_index": 0,
        "delta": delta,
    }


def numbered(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for number, event in enumerate(events):
        event["sequence_number"] = number
    return events


def responses_flow() -> list[dict[str, Any]]:
    """A Responses stream with a function call (output 0) and a message (output 1)."""
    message = {"type": "message", "id": "msg_1", "role": "assistant", "status": "in_progress"}
    arguments = '{"city": "Paris"}'
    text_part = {"type": "output_text", "text": "Il fait beau ☀️", "annotations": []}
    return numbered(
        [
            {"type": "response.created", "response": response_body()},
            {"type": "response.in_progress", "response": response_body()},
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": function_item("", "in_progress"),
            },
            arguments_event("delta", '{"city": '),
            arguments_event("delta", '"Paris"}'),
            arguments_event("done", arguments),
            {
                "type": "response.output_item.done",
                "output_index": 0,
                "item": function_item(arguments, "completed"),
            },
            {
                "type": "response.output_item.added",
                "output_index": 1,
                "item": {**message, "content": []},
            },
            {
                "type": "response.content_part.added",
                "output_index": 1,
                "item_id": "msg_1",
                "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": []},
            },
            text_delta("Il fait ", output_index=1),
            text_delta("beau ☀️", output_index=1),
            {
                "type": "response.output_text.done",
                "output_index": 1,
                "item_id": "msg_1",
                "content_index": 0,
                "text": "Il fait beau ☀️",
                "logprobs": [],
            },
            {
                "type": "response.output_item.done",
                "output_index": 1,
                "item": {**message, "status": "completed", "content": [text_part]},
            },
            {
                "type": "response.completed",
                "response": response_body("completed", usage=RESPONSE_USAGE),
            },
        ]
    )


_RESPONSE_EVENT_CLASSES: dict[str, Any] = {
    "response.created": ResponseCreatedEvent,
    "response.completed": ResponseCompletedEvent,
    "response.failed": ResponseFailedEvent,
    "response.incomplete": ResponseIncompleteEvent,
    "response.output_item.added": ResponseOutputItemAddedEvent,
    "response.output_item.done": ResponseOutputItemDoneEvent,
    "response.function_call_arguments.delta": ResponseFunctionCallArgumentsDeltaEvent,
    "response.function_call_arguments.done": ResponseFunctionCallArgumentsDoneEvent,
    "response.output_text.delta": ResponseTextDeltaEvent,
    "response.refusal.delta": ResponseRefusalDeltaEvent,
    "error": ResponseErrorEvent,
}


def response_events(raw: list[dict[str, Any]]) -> list[Any]:
    """The SDK's event objects; event types l0 ignores stay out (their classes vary)."""
    return [
        _RESPONSE_EVENT_CLASSES[event["type"]].model_validate(event)
        for event in raw
        if event["type"] in _RESPONSE_EVENT_CLASSES
    ]


def check_responses_flow(events: list[Event]) -> None:
    assert types_of(events) == [
        EventType.TOOL_CALL_DELTA,
        EventType.TOOL_CALL_DELTA,
        EventType.TOOL_CALL_DELTA,
        EventType.TOOL_CALL,
        EventType.TOKEN,
        EventType.TOKEN,
        EventType.COMPLETE,
    ]
    assert events[0].data == {"index": 0, "id": "call_9", "name": "get_weather", "arguments": ""}
    assert events[3].data == {
        "index": 0,
        "id": "call_9",
        "name": "get_weather",
        "arguments": '{"city": "Paris"}',
        "parsed_arguments": {"city": "Paris"},
    }
    assert text_of(events) == "Il fait beau ☀️"
    complete = events[-1]
    assert complete.usage == Usage(input_tokens=20, output_tokens=9, total_tokens=29)
    assert complete.data["response_id"] == "resp_7"
    assert complete.data["model"] == "gpt-4.1-2025-04-14"
    assert complete.data["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(
    "adapter", [OpenAIResponsesAdapter(), OpenAIAdapter()], ids=lambda a: a.name
)
async def test_responses_full_flow(adapter: Adapter) -> None:
    events = await collect(adapter.wrap(RecordingStream(response_events(responses_flow()))))

    check_responses_flow(events)


async def test_responses_full_flow_from_a_real_sdk_stream() -> None:
    client = sse_client(responses_flow())
    stream = await client.responses.create(model="gpt-4.1", input="weather?", stream=True)

    adapter = Adapters.detect(stream)
    events = await collect(adapter.wrap(stream))

    assert adapter.name == "openai_responses"
    check_responses_flow(events)
    assert stream.response.is_closed


async def test_the_sdk_responses_helper_stream() -> None:
    client = sse_client(responses_flow())
    async with client.responses.stream(model="gpt-4.1", input="weather?") as stream:
        adapter = Adapters.detect(stream)
        events = await collect(adapter.wrap(stream))

    assert adapter.name == "openai_responses"
    check_responses_flow(events)


async def test_responses_dict_events() -> None:
    events = await collect(OpenAIResponsesAdapter().wrap(RecordingStream(responses_flow())))

    check_responses_flow(events)


async def test_responses_failed_event_is_a_provider_stream_error() -> None:
    failure = {"code": "rate_limit_exceeded", "message": "Slow down"}
    raw = numbered(
        [
            *responses_flow()[:2],
            text_delta("Hi"),
            {"type": "response.failed", "response": response_body("failed", error=failure)},
            text_delta("never"),
        ]
    )
    stream = RecordingStream(response_events(raw))

    events = await collect(OpenAIResponsesAdapter().wrap(stream))

    assert types_of(events) == [EventType.TOKEN, EventType.ERROR]
    error = events[-1].error
    assert isinstance(error, ProviderStreamError)
    assert str(error) == "Slow down"
    assert error.provider_code == "rate_limit_exceeded"
    assert events[-1].data == {"response_id": "resp_7", "model": "gpt-4.1-2025-04-14"}
    assert stream.closed == 1


async def test_responses_error_event_is_a_provider_stream_error() -> None:
    raw = numbered(
        [{"type": "error", "code": "server_error", "message": "The server had an error"}]
    )

    events = await collect(OpenAIResponsesAdapter().wrap(RecordingStream(response_events(raw))))

    assert types_of(events) == [EventType.ERROR]
    assert isinstance(events[0].error, ProviderStreamError)
    assert events[0].error.provider_code == "server_error"


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("max_output_tokens", EventType.COMPLETE),
        ("content_filter", ModelRefusalError),
        ("max_messages", ProviderStreamError),
    ],
)
async def test_responses_incomplete(reason: str, expected: Any) -> None:
    incomplete = response_body("incomplete", incomplete_details={"reason": reason})
    raw = numbered(
        [
            {"type": "response.created", "response": response_body()},
            text_delta("Long"),
            {"type": "response.incomplete", "response": incomplete},
        ]
    )

    events = await collect(OpenAIResponsesAdapter().wrap(RecordingStream(response_events(raw))))

    assert events[0].text == "Long"
    last = events[-1]
    if expected is EventType.COMPLETE:
        assert last.type is EventType.COMPLETE
        assert last.data["finish_reason"] == "length"  # as Chat Completions reports truncation
    else:
        assert last.type is EventType.ERROR
        assert type(last.error) is expected


async def test_responses_refusal() -> None:
    raw = numbered(
        [
            {"type": "response.created", "response": response_body()},
            refusal_delta("I can't "),
            refusal_delta("do that."),
            {"type": "response.completed", "response": response_body("completed")},
        ]
    )

    events = await collect(OpenAIResponsesAdapter().wrap(RecordingStream(response_events(raw))))

    assert types_of(events) == [EventType.ERROR]
    assert isinstance(events[0].error, ModelRefusalError)
    assert str(events[0].error) == "I can't do that."


async def test_the_sdk_chat_helper_stream() -> None:
    client = sse_client(
        [chunk_dict({"content": "Hel"}), chunk_dict({"content": "lo"}), chunk_dict({}, "stop")]
    )
    async with client.chat.completions.stream(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        adapter = Adapters.detect(stream)
        events = await collect(adapter.wrap(stream))

    assert adapter.name == "openai"
    # The helper's derived events (content.delta, content.done) repeat the chunks: no doubles.
    assert [e.text for e in events if e.type is EventType.TOKEN] == ["Hel", "lo"]
    assert events[-1].data["finish_reason"] == "stop"


# --- LiteLLM ---------------------------------------------------------------------------------


def litellm_chunk(**kwargs: Any) -> Any:
    return litellm.ModelResponseStream(id="chatcmpl-ll", model="claude-3-5-haiku", **kwargs)


async def test_litellm_chunks() -> None:
    first_fragment = tool_fragment(0, '{"n":', call_id="t1", name="count")
    chunks = [
        litellm_chunk(choices=[{"index": 0, "delta": {"role": "assistant", "content": "Bonjour"}}]),
        litellm_chunk(choices=[{"index": 0, "delta": {"content": " à tous "}}]),
        litellm_chunk(choices=[{"index": 0, "delta": {"tool_calls": [first_fragment]}}]),
        litellm_chunk(choices=[{"index": 0, "delta": {"tool_calls": [tool_fragment(0, " 3}")]}}]),
        litellm_chunk(choices=[{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]),
        litellm_chunk(usage=USAGE),  # LiteLLM gives a usage-only chunk a default empty choice
    ]

    events = await collect(LiteLLMAdapter().wrap(RecordingStream(chunks)))

    assert text_of(events) == "Bonjour à tous "
    calls = [e.data for e in events if e.type is EventType.TOOL_CALL]
    assert calls == [
        {
            "index": 0,
            "id": "t1",
            "name": "count",
            "arguments": '{"n": 3}',
            "parsed_arguments": {"n": 3},
        }
    ]
    complete = events[-1]
    assert complete.type is EventType.COMPLETE
    assert complete.usage == Usage(input_tokens=11, output_tokens=7, total_tokens=18)
    assert complete.data["finish_reason"] == "tool_calls"
    assert complete.data["model"] == "claude-3-5-haiku"


async def test_litellm_content_filter() -> None:
    chunks = [litellm_chunk(choices=[{"index": 0, "delta": {}, "finish_reason": "content_filter"}])]

    events = await collect(LiteLLMAdapter().wrap(RecordingStream(chunks)))

    assert isinstance(events[-1].error, ModelRefusalError)


async def test_a_real_litellm_stream() -> None:
    text = "Streams are reliable now. ✓"
    stream = await litellm.acompletion(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        mock_response=text,
    )

    adapter = Adapters.detect(stream)
    events = await collect(adapter.wrap(stream))

    assert adapter.name == "litellm"
    assert text_of(events) == text
    assert events[-1].type is EventType.COMPLETE
    assert events[-1].data["finish_reason"] == "stop"


# --- text ------------------------------------------------------------------------------------


async def strings(*items: Any) -> AsyncIterator[Any]:
    for item in items:
        if isinstance(item, Boom):
            raise item.error
        yield item


async def test_text_adapter_preserves_text() -> None:
    events = await collect(TextAdapter().wrap(strings("", *TRICKY_TEXT, "")))

    assert [e.text for e in events[:-1]] == TRICKY_TEXT
    assert events[-1].type is EventType.COMPLETE


async def test_text_adapter_rejects_anything_but_str() -> None:
    stream = RecordingStream(["ok", b"bytes", "never"])

    events = await collect(TextAdapter().wrap(stream))

    assert types_of(events) == [EventType.TOKEN, EventType.ERROR]
    assert isinstance(events[-1].error, InvalidStreamError)
    assert "bytes" in str(events[-1].error)
    assert stream.closed == 1


async def test_text_adapter_reports_a_failing_stream() -> None:
    dropped = ConnectionResetError("reset")

    events = await collect(TextAdapter().wrap(strings("a", Boom(dropped))))

    assert types_of(events) == [EventType.TOKEN, EventType.ERROR]
    assert events[-1].error is dropped


async def test_text_adapter_needs_an_async_iterable() -> None:
    events = await collect(TextAdapter().wrap(["sync", "list"]))

    assert types_of(events) == [EventType.ERROR]
    assert isinstance(events[0].error, InvalidStreamError)


async def test_text_adapter_closes_on_early_aclose() -> None:
    stream = RecordingStream(["a", "b"])
    events = TextAdapter().wrap(stream)

    await events.__anext__()
    await events.aclose()

    assert stream.closed == 1


# --- detection -------------------------------------------------------------------------------


async def test_detect_each_stream_type() -> None:
    chat = await chat_stream([chunk_dict({"content": "x"})])
    responses = await sse_client(responses_flow()).responses.create(
        model="gpt-4.1", input="x", stream=True
    )
    wrapper = await litellm.acompletion(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "x"}],
        stream=True,
        mock_response="x",
    )
    text = strings("x")

    assert OpenAIAdapter().detect(chat)
    assert not OpenAIResponsesAdapter().detect(chat)
    assert OpenAIResponsesAdapter().detect(responses)
    assert LiteLLMAdapter().detect(wrapper)
    assert not LiteLLMAdapter().detect(chat)
    assert not OpenAIAdapter().detect(wrapper)
    assert not OpenAIAdapter().detect(text)
    assert TextAdapter().detect(text)
    for adapter in (OpenAIAdapter(), OpenAIResponsesAdapter(), LiteLLMAdapter(), TextAdapter()):
        assert isinstance(adapter, Adapter)
        assert not adapter.detect(["not", "async"])
        assert not adapter.detect("a string")

    # Detection reads nothing: every chunk is still there afterwards.
    assert text_of(await collect(OpenAIAdapter().wrap(chat))) == "x"
    for stream in (chat, responses, wrapper):
        await close_stream(stream)


async def test_adapters_detect_order() -> None:
    chat = await chat_stream([chunk_dict({"content": "x"})])
    responses = await sse_client(responses_flow()).responses.create(
        model="gpt-4.1", input="x", stream=True
    )
    wrapper = await litellm.acompletion(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "x"}],
        stream=True,
        mock_response="x",
    )

    assert [a.name for a in Adapters.registered()][-4:] == [
        "litellm",
        "openai_responses",
        "openai",
        "text",
    ]
    assert Adapters.detect(wrapper).name == "litellm"  # also async-iterable: text comes last
    assert Adapters.detect(responses).name == "openai_responses"  # also an AsyncStream
    assert Adapters.detect(chat).name == "openai"
    assert Adapters.detect(strings("x")).name == "text"
    with pytest.raises(NoAdapterError):
        Adapters.detect(["sync"])
    for stream in (chat, responses, wrapper):
        await close_stream(stream)


class ShoutingAdapter:
    """A custom adapter, written the way the README shows."""

    name = "shouting"

    def detect(self, stream: Any) -> bool:
        return isinstance(stream, RecordingStream)

    async def wrap(self, stream: Any) -> AsyncIterator[Event]:
        async for item in stream:
            yield Event(type=EventType.TOKEN, text=item.upper())
        yield Event(type=EventType.COMPLETE)


async def test_custom_adapter_register_and_unregister() -> None:
    Adapters.register(ShoutingAdapter())
    try:
        stream = RecordingStream(["hi"])
        adapter = Adapters.detect(stream)
        assert adapter.name == "shouting"  # custom adapters come before the built-in ones
        assert Adapters.get("shouting") is adapter
        assert text_of(await collect(adapter.wrap(stream))) == "HI"
    finally:
        assert Adapters.unregister("shouting")

    assert not Adapters.unregister("shouting")
    assert Adapters.detect(RecordingStream(["hi"])).name == "text"
    with pytest.raises(TypeError):
        Adapters.register(object())  # type: ignore[arg-type]
