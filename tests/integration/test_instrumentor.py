"""L0Instrumentor: unchanged application code, driven against the chaos server, runs through l0.

Each test instruments, makes plain SDK calls (OpenAI async and sync clients, Chat Completions
and Responses, LiteLLM), and checks three things: the caller gets the SDK's own types and
behaviour, the faults injected before the first chunk are survived, and the exported spans show
the session → chat → attempt tree with the retries.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.metadata
import os
import pathlib
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import pydantic
import pytest
from openai.resources.chat.completions import AsyncCompletions, Completions
from openai.resources.responses import AsyncResponses, Responses
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ParsedChatCompletion
from openai.types.responses import Response
from opentelemetry.instrumentation.l0 import L0Instrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import l0
import l0.chaos
from l0.errors import L0Error

pytestmark = pytest.mark.integration

MESSAGES: list[Any] = [{"role": "user", "content": "Tell me about rivers."}]
FAST_RETRY = l0.Retry(base_delay=0.01, max_delay=0.02)
ORIGINALS = tuple(
    (owner, name)
    for owner in (AsyncCompletions, Completions, AsyncResponses, Responses)
    for name in ("create", "parse")
)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with l0.chaos.serve_in_thread(seed=5) as url:
        yield url


@pytest.fixture
async def client(base_url: str) -> AsyncIterator[openai.AsyncOpenAI]:
    # max_retries=0: l0 owns the retries, so the spans and the server's counters show each.
    async with openai.AsyncOpenAI(base_url=base_url, api_key="test", max_retries=0, timeout=5) as c:
        yield c


@pytest.fixture
def sync_client(base_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=base_url, api_key="test", max_retries=0, timeout=5) as c:
        yield c


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as h:
        yield h


@contextlib.contextmanager
def instrumented(**options: Any) -> Iterator[InMemorySpanExporter]:
    """Instrument for the block; yields the exporter that receives l0's spans."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    options.setdefault("retry", FAST_RETRY)
    instrumentor = L0Instrumentor()
    instrumentor.instrument(tracer_provider=provider, **options)
    try:
        yield exporter
    finally:
        instrumentor.uninstrument()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with instrumented() as exporter:
        yield exporter


def fresh(directives: str = "", model: str = "gpt-4o-mini") -> str:
    """A model string whose scenario counter no other test shares."""
    tag = f"scenario=i{uuid.uuid4().hex[:8]}"
    return f"{model}+{directives},{tag}" if directives else f"{model}+{tag}"


async def stats(http: httpx.AsyncClient, model: str) -> dict[str, int]:
    root = str(http.base_url).removesuffix("/").removesuffix("/v1")
    doc = (await http.get(root + "/_chaos/stats")).json()
    counters: dict[str, int] = doc["scenarios"][model.rsplit("scenario=", 1)[1]]
    return counters


async def reference_text(http: httpx.AsyncClient, messages: list[Any] = MESSAGES) -> str:
    """What the server says to ``messages`` (content depends on seed and prompt only)."""
    reply = await http.post("/chat/completions", json={"model": fresh(), "messages": messages})
    text: str = reply.json()["choices"][0]["message"]["content"]
    return text


def text_of(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def tree(exporter: InMemorySpanExporter) -> list[tuple[str, str | None, str | None]]:
    """(name, parent name, outcome) of every finished span, in end order."""
    finished: tuple[ReadableSpan, ...] = exporter.get_finished_spans()
    names = {s.context.span_id: s.name for s in finished}
    return [
        (
            s.name,
            names.get(s.parent.span_id) if s.parent else None,
            (s.attributes or {}).get("l0.outcome"),  # type: ignore[misc]
        )
        for s in finished
    ]


def attempts(exporter: InMemorySpanExporter) -> list[str | None]:
    return [outcome for name, _, outcome in tree(exporter) if name == "l0.attempt"]


def sync_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "l0-sync-call"]


# --- setup ------------------------------------------------------------------------------------


def test_the_entry_point_is_discoverable() -> None:
    found = {
        ep.name: ep for ep in importlib.metadata.entry_points(group="opentelemetry_instrumentor")
    }
    assert found["l0"].value == "opentelemetry.instrumentation.l0:L0Instrumentor"
    assert found["l0"].load() is L0Instrumentor
    assert l0.L0Instrumentor is L0Instrumentor
    # Whichever of openai / litellm is installed is instrumented: no hard dependency.
    assert tuple(L0Instrumentor().instrumentation_dependencies()) == ()


def _python(code: str, *, launcher: list[str] | None = None) -> str:
    env = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }
    done = subprocess.run(
        [*(launcher or []), sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=True,
    )
    return done.stdout.strip()


def test_libraries_are_patched_when_the_application_imports_them() -> None:
    code = """
import sys
from opentelemetry.instrumentation.l0 import L0Instrumentor
L0Instrumentor().instrument()
assert "openai" not in sys.modules and "litellm" not in sys.modules
from openai.resources.chat.completions import AsyncCompletions
print(type(AsyncCompletions.__dict__["create"]).__name__, "litellm" in sys.modules)
"""
    # Patched on import; LiteLLM (seconds to import) is never imported on l0's account.
    assert _python(code) == "FunctionWrapper False"


def test_opentelemetry_instrument_picks_the_instrumentor_up() -> None:
    launcher = [str(pathlib.Path(sys.executable).with_name("opentelemetry-instrument"))]
    code = """
from openai.resources.chat.completions import AsyncCompletions
from opentelemetry.instrumentation.l0 import L0Instrumentor
wrapper = type(AsyncCompletions.__dict__["create"]).__name__
print(wrapper, L0Instrumentor().is_instrumented_by_opentelemetry)
"""
    assert _python(code, launcher=launcher) == "FunctionWrapper True"


def test_uninstrument_restores_the_originals_exactly() -> None:
    import litellm

    before = [owner.__dict__[name] for owner, name in ORIGINALS]
    litellm_before = (litellm.acompletion, litellm.completion)
    with instrumented():
        assert all(
            owner.__dict__[name] is not original
            for (owner, name), original in zip(ORIGINALS, before, strict=True)
        )
        assert litellm.acompletion is not litellm_before[0]
    assert all(
        owner.__dict__[name] is original
        for (owner, name), original in zip(ORIGINALS, before, strict=True)
    )
    assert (litellm.acompletion, litellm.completion) == litellm_before


async def test_instrumenting_twice_is_harmless(client: openai.AsyncOpenAI) -> None:
    original = AsyncCompletions.__dict__["create"]
    with instrumented() as exporter:
        wrapper = AsyncCompletions.__dict__["create"]
        L0Instrumentor().instrument(retry=FAST_RETRY)  # ignored, with a warning
        assert AsyncCompletions.__dict__["create"] is wrapper
        stream = await client.chat.completions.create(model=fresh(), messages=MESSAGES, stream=True)
        _ = [chunk async for chunk in stream]
        assert [name for name, _, _ in tree(exporter)].count("l0.session") == 1
    assert AsyncCompletions.__dict__["create"] is original


def test_options_are_validated_at_instrument_time() -> None:
    with pytest.raises(l0.ConfigError, match="fallbacks"):
        L0Instrumentor().instrument(fallbacks=["gpt-4o-mini"])
    assert not L0Instrumentor().is_instrumented_by_opentelemetry


# --- async client -----------------------------------------------------------------------------


async def test_a_stream_keeps_the_sdk_types(
    client: openai.AsyncOpenAI, http: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    model = fresh()
    stream = await client.chat.completions.create(
        model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    assert isinstance(stream, openai.AsyncStream)
    assert stream.response.status_code == 200
    chunks = [chunk async for chunk in stream]

    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    # Every chunk the SDK produced, the role, finish and usage chunks included.
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert text_of(chunks) == await reference_text(http)
    assert tree(spans) == [
        ("l0.attempt", f"chat {model}", "completed"),
        (f"chat {model}", "l0.session", "completed"),
        ("l0.session", None, "completed"),
    ]


async def test_a_503_storm_is_survived_and_the_spans_show_the_retries(
    client: openai.AsyncOpenAI, http: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    model = fresh("status=503x2")
    stream = await client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]

    assert text_of(chunks) == await reference_text(http)
    counters = await stats(http, model)
    assert (counters["requests"], counters["errors"], counters["completed"]) == (3, 2, 1)
    assert tree(spans) == [
        ("l0.attempt", f"chat {model}", "error"),
        ("l0.attempt", f"chat {model}", "error"),
        ("l0.attempt", f"chat {model}", "completed"),
        (f"chat {model}", "l0.session", "completed"),
        ("l0.session", None, "completed"),
    ]
    chat = next(s for s in spans.get_finished_spans() if s.name.startswith("chat"))
    attributes = dict(chat.attributes or {})
    assert attributes["gen_ai.request.model"] == model
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["server.address"] == "127.0.0.1"


async def test_a_connection_dropped_before_the_first_chunk_is_retried(
    client: openai.AsyncOpenAI, http: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    model = fresh("drop@0x1")
    stream = await client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]

    assert text_of(chunks) == await reference_text(http)
    # One role chunk: the dropped attempt's was never handed on.
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.role) == 1
    counters = await stats(http, model)
    assert (counters["dropped"], counters["completed"]) == (1, 1)
    assert attempts(spans) == ["error", "completed"]


async def test_a_drop_after_chunks_raises_the_sdk_exception(
    client: openai.AsyncOpenAI, http: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    model = fresh("drop@3,chunk=1")
    stream = await client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
    got: list[Any] = []
    with pytest.raises(openai.APIConnectionError) as info:
        async for chunk in stream:
            got.append(chunk)

    assert len([c for c in got if c.choices and c.choices[0].delta.content]) == 3
    # The caller's own except clause works; l0's record of the attempts rides along.
    assert isinstance(info.value.__context__, L0Error)
    assert (await stats(http, model))["requests"] == 1  # delivered output is never retried
    assert tree(spans)[-1] == ("l0.session", None, "error")


async def test_a_stream_cut_after_chunks_raises_a_connection_error(
    client: openai.AsyncOpenAI, spans: InMemorySpanExporter
) -> None:
    # Without l0 the SDK would end quietly on a truncated body; l0 notices the missing finish
    # and reports it as the SDK reports a broken connection.
    stream = await client.chat.completions.create(
        model=fresh("cut@2,chunk=1"), messages=MESSAGES, stream=True
    )
    with pytest.raises(openai.APIConnectionError) as info:
        _ = [chunk async for chunk in stream]
    assert isinstance(info.value.__cause__, L0Error)
    assert info.value.__cause__.code is l0.ErrorCode.STREAM_TRUNCATED


async def test_giving_up_before_output_raises_the_sdk_exception_from_create(
    client: openai.AsyncOpenAI, spans: InMemorySpanExporter
) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model=fresh("status=500"), messages=MESSAGES)
    assert info.value.status_code == 500
    cause = info.value.__context__
    assert isinstance(cause, L0Error) and len(cause.errors) == 7  # 1 + Retry().max_retries
    assert attempts(spans) == ["error"] * 7


async def test_a_stall_before_the_first_chunk_times_out_and_is_retried(
    client: openai.AsyncOpenAI, http: httpx.AsyncClient
) -> None:
    timeout = l0.Timeout(initial_token=0.3, inter_token=1)
    with instrumented(timeout=timeout) as exporter:
        model = fresh("stall@0=2x1")
        stream = await client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
        chunks = [chunk async for chunk in stream]
    assert text_of(chunks) == await reference_text(http)
    assert attempts(exporter) == ["error", "completed"]


async def test_the_fallbacks_mapping_is_used_when_the_model_is_dead(
    client: openai.AsyncOpenAI, http: httpx.AsyncClient
) -> None:
    dead, alive = fresh("status=503", model="gpt-4o"), fresh()
    retry = l0.Retry(max_retries=1, base_delay=0.01, max_delay=0.02)
    with instrumented(retry=retry, fallbacks={dead: [alive]}) as exporter:
        stream = await client.chat.completions.create(model=dead, messages=MESSAGES, stream=True)
        chunks = [chunk async for chunk in stream]

    assert {c.model for c in chunks} == {"gpt-4o-mini"}
    assert text_of(chunks) == await reference_text(http)
    assert (await stats(http, dead))["requests"] == 2
    assert tree(exporter) == [
        ("l0.attempt", f"chat {dead}", "error"),
        ("l0.attempt", f"chat {dead}", "error"),
        (f"chat {dead}", "l0.session", "error"),
        ("l0.attempt", f"chat {alive}", "completed"),
        (f"chat {alive}", "l0.session", "completed"),
        ("l0.session", None, "completed"),
    ]


async def test_a_non_streaming_call_returns_the_completion(
    client: openai.AsyncOpenAI, http: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    model = fresh("status=503x1")
    done = await client.chat.completions.create(model=model, messages=MESSAGES)
    assert isinstance(done, ChatCompletion)
    assert done.choices[0].message.content == await reference_text(http)
    assert (await stats(http, model))["requests"] == 2
    assert attempts(spans) == ["error", "completed"]


async def test_tool_calls_are_answers_too(client: openai.AsyncOpenAI) -> None:
    tool: Any = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    with instrumented() as exporter:
        done = await client.chat.completions.create(
            model=fresh("tool"), messages=MESSAGES, tools=[tool]
        )
        stream = await client.chat.completions.create(
            model=fresh("tool"), messages=MESSAGES, tools=[tool], stream=True
        )
        chunks = [chunk async for chunk in stream]
    calls = done.choices[0].message.tool_calls or []
    assert [call.function.name for call in calls if call.type == "function"] == ["get_weather"]
    streamed = "".join(
        call.function.arguments or ""
        for c in chunks
        if c.choices
        for call in c.choices[0].delta.tool_calls or ()
        if call.function is not None
    )
    assert streamed == calls[0].function.arguments  # type: ignore[union-attr]
    assert attempts(exporter) == ["completed", "completed"]


async def test_async_with_and_close_end_the_session(
    client: openai.AsyncOpenAI, spans: InMemorySpanExporter
) -> None:
    async with await client.chat.completions.create(
        model=fresh("chunk=1"), messages=MESSAGES, stream=True
    ) as stream:
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break
    assert tree(spans)[-1] == ("l0.session", None, "cancelled")

    stream = await client.chat.completions.create(model=fresh(), messages=MESSAGES, stream=True)
    await stream.close()
    assert tree(spans)[-1] == ("l0.session", None, "cancelled")


async def test_with_raw_response(
    client: openai.AsyncOpenAI, http: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    # Non-streaming: through l0 (retried); the winning attempt's raw response comes back.
    model = fresh("status=503x1")
    raw = await client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES)
    assert raw.status_code == 200
    assert raw.headers["content-type"].startswith("application/json")
    completion = raw.parse()
    assert isinstance(completion, ChatCompletion)
    assert completion.choices[0].message.content == await reference_text(http)
    assert attempts(spans) == ["error", "completed"]

    # Streaming: the caller reads that one HTTP response itself, so it passes through.
    spans.clear()
    raw_stream = await client.chat.completions.with_raw_response.create(
        model=fresh(), messages=MESSAGES, stream=True
    )
    stream = raw_stream.parse()
    assert type(stream) is openai.AsyncStream
    assert text_of([chunk async for chunk in stream]) == await reference_text(http)
    assert tree(spans) == []


async def test_with_streaming_response_passes_through(
    client: openai.AsyncOpenAI, http: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    async with client.chat.completions.with_streaming_response.create(
        model=fresh(), messages=MESSAGES
    ) as response:
        assert response.headers["content-type"].startswith("application/json")
        completion = await response.parse()
    assert completion.choices[0].message.content == await reference_text(http)
    assert tree(spans) == []


async def test_continuation_resumes_a_stream_instead_of_raising(
    client: openai.AsyncOpenAI, http: httpx.AsyncClient
) -> None:
    with instrumented(continuation=True) as exporter:
        model = fresh("drop@4x1,chunk=1")
        stream = await client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
        chunks = [chunk async for chunk in stream]
    # One continuous text, nothing repeated, nothing lost.
    assert text_of(chunks) == await reference_text(http)
    assert attempts(exporter) == ["error", "completed"]


async def test_a_call_inside_l0_run_is_not_instrumented_twice(
    client: openai.AsyncOpenAI, spans: InMemorySpanExporter
) -> None:
    result = await l0.run(
        stream=lambda: client.chat.completions.create(model=fresh(), messages=MESSAGES, stream=True)
    )
    await result.read()
    assert [name for name, _, _ in tree(spans)].count("l0.session") == 1


async def test_the_sdk_helpers_built_on_create_and_parse(
    client: openai.AsyncOpenAI, http: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    async with client.chat.completions.stream(
        model=fresh("status=503x1"), messages=MESSAGES
    ) as stream:
        final = await stream.get_final_completion()
    assert final.choices[0].message.content == await reference_text(http)

    class Anything(pydantic.BaseModel):
        pass

    parsed = await client.chat.completions.parse(
        model=fresh("json,status=503x1"), messages=MESSAGES, response_format=Anything
    )
    assert isinstance(parsed, ParsedChatCompletion)
    assert isinstance(parsed.choices[0].message.parsed, Anything)
    assert attempts(spans) == ["error", "completed", "error", "completed"]


async def test_capture_content_records_the_conversation(client: openai.AsyncOpenAI) -> None:
    from l0.observability.settings import ContentCapture, content_capture

    before = content_capture()
    with instrumented(capture_content=True) as exporter:
        done = await client.chat.completions.create(model=fresh(), messages=MESSAGES)
    chat = next(s for s in exporter.get_finished_spans() if s.name.startswith("chat"))
    attributes = dict(chat.attributes or {})
    assert "Tell me about rivers." in str(attributes["gen_ai.input.messages"])
    assert str(done.choices[0].message.content) in str(attributes["gen_ai.output.messages"])
    assert content_capture() is before is not ContentCapture.SPAN_AND_EVENT


# --- the Responses API ------------------------------------------------------------------------


async def test_responses_stream_and_response(
    client: openai.AsyncOpenAI, http: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    model = fresh("status=503x1")
    async with await client.responses.create(model=model, input="hi", stream=True) as stream:
        assert isinstance(stream, openai.AsyncStream)
        events: list[Any] = [event async for event in stream]
    types = [event.type for event in events]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert "response.output_text.done" in types
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == events[-1].response.output_text
    assert (await stats(http, model))["requests"] == 2

    done = await client.responses.create(model=fresh("status=503x1"), input="hi")
    assert isinstance(done, Response)
    assert done.output_text == text
    assert attempts(spans) == ["error", "completed", "error", "completed"]


# --- sync client ------------------------------------------------------------------------------


def test_a_sync_stream_keeps_the_sdk_types(
    sync_client: openai.OpenAI, spans: InMemorySpanExporter
) -> None:
    model = fresh("status=503x2")
    with sync_client.chat.completions.create(model=model, messages=MESSAGES, stream=True) as s:
        assert isinstance(s, openai.Stream)
        assert s.response.status_code == 200
        chunks = list(s)
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert attempts(spans) == ["error", "error", "completed"]
    assert sync_threads() == []

    done = sync_client.chat.completions.create(model=fresh("status=503x1"), messages=MESSAGES)
    assert isinstance(done, ChatCompletion)
    assert done.choices[0].message.content == text_of(chunks)
    response = sync_client.responses.create(model=fresh(), input="hi")
    assert isinstance(response, Response)
    assert sync_threads() == []


def test_a_sync_stream_drop_after_chunks_raises_the_sdk_exception(
    sync_client: openai.OpenAI, spans: InMemorySpanExporter
) -> None:
    stream = sync_client.chat.completions.create(
        model=fresh("drop@2,chunk=1"), messages=MESSAGES, stream=True
    )
    with pytest.raises(openai.APIConnectionError):
        for _ in stream:
            pass
    assert tree(spans)[-1] == ("l0.session", None, "error")
    assert sync_threads() == []


def test_a_sync_stream_left_early_releases_everything(
    sync_client: openai.OpenAI, spans: InMemorySpanExporter
) -> None:
    stream = sync_client.chat.completions.create(model=fresh(), messages=MESSAGES, stream=True)
    for _ in stream:
        break
    stream.close()
    assert tree(spans)[-1] == ("l0.session", None, "cancelled")

    unread = sync_client.chat.completions.create(model=fresh(), messages=MESSAGES, stream=True)
    del unread
    gc.collect()
    deadline = time.monotonic() + 2
    while sync_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sync_threads() == []
    assert tree(spans)[-1][0] == "l0.session"


def test_a_sync_stall_times_out_and_is_retried(sync_client: openai.OpenAI) -> None:
    with instrumented(timeout=l0.Timeout(initial_token=0.3, inter_token=1)) as exporter:
        stream = sync_client.chat.completions.create(
            model=fresh("stall@0=1x1"), messages=MESSAGES, stream=True
        )
        assert text_of(list(stream))
    assert attempts(exporter) == ["error", "completed"]


# --- LiteLLM ----------------------------------------------------------------------------------


async def test_litellm_acompletion(
    base_url: str, http: httpx.AsyncClient, spans: InMemorySpanExporter
) -> None:
    import litellm
    from litellm.types.utils import ModelResponse, ModelResponseStream

    litellm.suppress_debug_info = True
    model = fresh("status=503x1")
    stream = await litellm.acompletion(
        model=f"openai/{model}",
        api_base=base_url,
        api_key="x",
        messages=MESSAGES,
        stream=True,
        max_retries=0,
    )
    assert isinstance(stream, litellm.CustomStreamWrapper)
    chunks = [chunk async for chunk in stream]
    assert all(isinstance(c, ModelResponseStream) for c in chunks)
    assert text_of(chunks) == await reference_text(http)
    assert attempts(spans) == ["error", "completed"]
    chat = next(s for s in spans.get_finished_spans() if s.name.startswith("chat"))
    assert (chat.attributes or {})["gen_ai.provider.name"] == "openai"

    done = await litellm.acompletion(
        model=f"openai/{fresh('status=503x1')}",
        api_base=base_url,
        api_key="x",
        messages=MESSAGES,
        max_retries=0,
    )
    assert isinstance(done, ModelResponse)
    assert done.choices[0].message.content == text_of(chunks)
    # LiteLLM calls the OpenAI SDK underneath: still one session per call.
    assert [name for name, _, _ in tree(spans)].count("l0.session") == 2

    dropping = await litellm.acompletion(
        model=f"openai/{fresh('drop@2,chunk=1')}",
        api_base=base_url,
        api_key="x",
        messages=MESSAGES,
        stream=True,
        max_retries=0,
    )
    with pytest.raises(litellm.exceptions.MidStreamFallbackError):
        _ = [chunk async for chunk in dropping]


def test_litellm_completion(base_url: str, spans: InMemorySpanExporter) -> None:
    import litellm
    from litellm.types.utils import ModelResponse

    litellm.suppress_debug_info = True
    options: dict[str, Any] = {"api_base": base_url, "api_key": "x", "max_retries": 0}
    stream = litellm.completion(
        model=f"openai/{fresh('status=503x1')}", messages=MESSAGES, stream=True, **options
    )
    assert isinstance(stream, litellm.CustomStreamWrapper)
    with stream:
        text = text_of(list(stream))
    done = litellm.completion(model=f"openai/{fresh()}", messages=MESSAGES, **options)
    assert isinstance(done, ModelResponse)
    assert done.choices[0].message.content == text
    assert attempts(spans) == ["error", "completed", "completed"]
    assert sync_threads() == []


# --- double instrumentation -------------------------------------------------------------------


def _fake_openai_v2(tracer_spans: list[str]) -> Any:
    """A wrapper shaped like opentelemetry-instrumentation-openai-v2's: a wrapt wrapper from an
    ``opentelemetry.instrumentation.openai_v2`` module that opens a ``chat {model}`` span."""

    async def traced_method(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        tracer_spans.append(f"chat {kwargs.get('model')}")
        return await wrapped(*args, **kwargs)

    traced_method.__module__ = "opentelemetry.instrumentation.openai_v2.patch"
    return traced_method


async def test_an_earlier_openai_instrumentation_is_stepped_past(
    client: openai.AsyncOpenAI,
) -> None:
    import wrapt

    original = AsyncCompletions.__dict__["create"]
    calls: list[str] = []
    wrapt.wrap_function_wrapper(AsyncCompletions, "create", _fake_openai_v2(calls))
    try:
        with instrumented() as exporter:
            model = fresh("status=503x1")
            stream = await client.chat.completions.create(
                model=model, messages=MESSAGES, stream=True
            )
            _ = [chunk async for chunk in stream]
        assert calls == []  # no per-attempt chat span from the other instrumentation
        assert attempts(exporter) == ["error", "completed"]
        assert [n for n, _, _ in tree(exporter) if n.startswith("chat")] == [f"chat {model}"]
    finally:
        setattr(AsyncCompletions, "create", original)  # noqa: B010


async def test_sentrys_openai_wrapper_is_stepped_past(
    client: openai.AsyncOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sentry_sdk
    from sentry_sdk.integrations import openai as sentry_openai

    original = AsyncCompletions.__dict__["create"]
    looked_up: list[int] = []
    real_get_client = sentry_sdk.get_client

    def get_client() -> Any:
        # Count only the OpenAI wrapper's look-ups (l0's own Sentry sink makes some too).
        if sys._getframe(1).f_globals.get("__name__") == sentry_openai.__name__:
            looked_up.append(1)
        return real_get_client()

    monkeypatch.setattr(sentry_sdk, "get_client", get_client)
    # What OpenAIIntegration.setup_once() does (without sentry_sdk.init's process-wide setup).
    sentry_wrapper = sentry_openai._wrap_async_chat_completion_create(original)
    setattr(AsyncCompletions, "create", sentry_wrapper)  # noqa: B010
    try:
        with instrumented() as exporter:
            done = await client.chat.completions.create(model=fresh(), messages=MESSAGES)
        assert isinstance(done, ChatCompletion)
        assert looked_up == []  # Sentry's wrapper never ran for the call l0 owned
        assert attempts(exporter) == ["completed"]
    finally:
        setattr(AsyncCompletions, "create", original)  # noqa: B010
