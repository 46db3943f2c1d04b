"""The chaos server, driven by the real OpenAI SDK, LiteLLM and raw httpx.

Every fault must produce what docs/chaos.md says a client sees. Delays are real time, so
each one is kept at or below 0.3 s.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

import l0.chaos
from l0.chaos import ChaosServer

pytestmark = pytest.mark.integration

MESSAGES: list[Any] = [{"role": "user", "content": "Tell me about rivers."}]
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    # One server for the module, on its own thread: it outlives each test's event loop.
    with l0.chaos.serve_in_thread(seed=3) as url:
        yield url


@pytest.fixture
async def client(base_url: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=base_url, api_key="test", max_retries=0, timeout=5
    ) as sdk:
        yield sdk


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as h:
        yield h


def fresh(directives: str = "", model: str = "gpt-4o-mini") -> str:
    """A model string whose scenario counter no other test shares."""
    tag = f"scenario=t{uuid.uuid4().hex[:8]}"
    return f"{model}+{directives},{tag}" if directives else f"{model}+{tag}"


def scenario_of(model: str) -> str:
    return model.rsplit("scenario=", 1)[1]


async def stats_for(http: httpx.AsyncClient, scenario: str) -> dict[str, int]:
    root = str(http.base_url).removesuffix("/v1/").removesuffix("/v1")
    doc = (await http.get(root + "/_chaos/stats")).json()
    counters: dict[str, int] = doc["scenarios"][scenario]
    return counters


async def eventually(
    http: httpx.AsyncClient, scenario: str, check: Callable[[dict[str, int]], bool]
) -> dict[str, int]:
    """Poll the counters until ``check`` holds: the server notices a hang-up asynchronously."""
    deadline = time.monotonic() + 3
    while True:
        counters = await stats_for(http, scenario)
        if check(counters) or time.monotonic() > deadline:
            return counters
        await asyncio.sleep(0.02)


async def collect(stream: Any) -> tuple[str, list[Any]]:
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks


# --- happy paths ------------------------------------------------------------------------


async def test_streams_chunks_exactly_like_openai(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model=fresh("words=30"),
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, chunks = await collect(stream)

    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    content = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert all(1 <= len(c.choices[0].delta.content.split()) <= 4 for c in content)
    assert len(text.split()) == 30
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 4  # words in the messages
    assert chunks[-1].usage.completion_tokens == len(content)  # one chunk, one token
    assert {c.id for c in chunks} == {chunks[0].id}
    assert chunks[0].model == "gpt-4o-mini"


async def test_raw_sse_ends_with_done(http: httpx.AsyncClient) -> None:
    body = {"model": fresh("words=5"), "messages": MESSAGES, "stream": True}
    r = await http.post("/chat/completions", json=body)
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [e for e in r.text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    assert '"usage"' not in r.text  # only with stream_options.include_usage, as OpenAI


async def test_non_streaming_completion(client: openai.AsyncOpenAI) -> None:
    model = fresh("words=12")
    done = await client.chat.completions.create(model=model, messages=MESSAGES)
    assert done.choices[0].finish_reason == "stop"
    assert done.usage is not None
    text = done.choices[0].message.content or ""
    assert len(text.split()) == 12
    # Streaming the same prompt says the same thing: content depends on seed and prompt only.
    stream = await client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
    assert (await collect(stream))[0] == text


async def test_exact_text_from_echo_or_text_directive(client: openai.AsyncOpenAI) -> None:
    echo = [{"role": "user", "content": "echo: Exactly this, with  two spaces.\n"}]
    stream = await client.chat.completions.create(
        model=fresh("chunk=2c"), messages=echo, stream=True
    )
    text, chunks = await collect(stream)
    assert text == "Exactly this, with  two spaces.\n"
    assert all(len(c.choices[0].delta.content or "") <= 2 for c in chunks if c.choices)

    stream = await client.chat.completions.create(
        model=fresh("text=a%2Cb%2Bc"), messages=MESSAGES, stream=True
    )
    assert (await collect(stream))[0] == "a,b+c"


async def test_tool_call_streams_argument_deltas(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model=fresh("tool,chunk=1"), messages=MESSAGES, tools=[WEATHER_TOOL], stream=True
    )
    chunks = [c async for c in stream]
    head = chunks[0].choices[0].delta.tool_calls[0]
    assert head.function.name == "get_weather"
    assert head.id.startswith("call_")
    deltas = [c.choices[0].delta.tool_calls for c in chunks[1:-1]]
    assert len(deltas) > 1
    arguments = "".join(d[0].function.arguments for d in deltas if d)
    assert set(json.loads(arguments)) == {"city", "days"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_json_and_truncated_json(client: openai.AsyncOpenAI) -> None:
    whole = await client.chat.completions.create(model=fresh("json=4"), messages=MESSAGES)
    assert len(json.loads(whole.choices[0].message.content or "")) == 4

    cut = await client.chat.completions.create(model=fresh("json=4,truncate"), messages=MESSAGES)
    assert cut.choices[0].finish_reason == "length"
    text = cut.choices[0].message.content or ""
    assert text.startswith("{")
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


async def test_content_faults(client: openai.AsyncOpenAI) -> None:
    empty = await client.chat.completions.create(
        model=fresh("empty"), messages=MESSAGES, stream=True
    )
    text, chunks = await collect(empty)
    assert text == ""
    assert [c.choices[0].finish_reason for c in chunks] == [None, "stop"]

    asai = await client.chat.completions.create(model=fresh("asai"), messages=MESSAGES)
    assert (asai.choices[0].message.content or "").startswith("As an AI language model")

    loop = await client.chat.completions.create(model=fresh("repeat=5"), messages=MESSAGES)
    words = (loop.choices[0].message.content or "").split()
    assert words == words[:8] * 5


async def test_models(client: openai.AsyncOpenAI) -> None:
    models = [m.id async for m in client.models.list()]
    assert "gpt-4o-mini" in models


# --- HTTP errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "exception"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (403, openai.PermissionDeniedError),
        (404, openai.NotFoundError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (502, openai.InternalServerError),
        (503, openai.InternalServerError),
        (504, openai.InternalServerError),
    ],
)
async def test_status_faults_raise_the_sdk_exception(
    client: openai.AsyncOpenAI, status: int, exception: type[openai.APIStatusError]
) -> None:
    with pytest.raises(exception) as info:
        await client.chat.completions.create(
            model=fresh(f"status={status}"), messages=MESSAGES, stream=True
        )
    assert info.value.status_code == status
    assert isinstance(info.value.body, dict)
    assert {"message", "type", "param", "code"} <= set(info.value.body)


async def test_429_carries_retry_after(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model=fresh("status=429"), messages=MESSAGES)
    assert info.value.response.headers["retry-after"] == "1"
    assert info.value.code == "rate_limit_exceeded"

    with pytest.raises(openai.InternalServerError) as info503:
        await client.chat.completions.create(model=fresh("status=503,retry=2.5"), messages=MESSAGES)
    assert info503.value.response.headers["retry-after"] == "2.5"


async def test_400_is_context_length_exceeded(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model=fresh("status=400"), messages=MESSAGES)
    assert info.value.code == "context_length_exceeded"
    assert info.value.param == "messages"
    assert info.value.type == "invalid_request_error"


async def test_fails_twice_then_works(client: openai.AsyncOpenAI, http: httpx.AsyncClient) -> None:
    model = fresh("status=503x2")
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model=model, messages=MESSAGES)
    ok = await client.chat.completions.create(model=model, messages=MESSAGES)
    assert ok.choices[0].message.content
    counters = await stats_for(http, scenario_of(model))
    assert counters["requests"] == 3
    assert counters["errors"] == 2
    assert counters["completed"] == 1


async def test_openai_retries_through_a_transient_fault(
    base_url: str, http: httpx.AsyncClient
) -> None:
    model = fresh("status=429x1,retry=0.1")  # the SDK sleeps Retry-After (0-60 s) when given
    async with openai.AsyncOpenAI(base_url=base_url, api_key="test", max_retries=2) as retrying:
        done = await retrying.chat.completions.create(model=model, messages=MESSAGES)
    assert done.choices[0].message.content
    counters = await stats_for(http, scenario_of(model))
    assert (counters["requests"], counters["errors"], counters["completed"]) == (2, 1, 1)


# --- in-stream faults ---------------------------------------------------------------------


async def test_drop_raises_a_connection_error(
    client: openai.AsyncOpenAI, http: httpx.AsyncClient
) -> None:
    model = fresh("drop@3,chunk=1")
    stream = await client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
    got: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            got.append(chunk.choices[0].delta.content or "")
    assert len([g for g in got if g]) == 3
    counters = await stats_for(http, scenario_of(model))
    assert counters["dropped"] == 1

    # Underneath: the chunked body ends without its terminator.
    with pytest.raises(httpx.RemoteProtocolError):
        await http.post(
            "/chat/completions", json={"model": model, "messages": MESSAGES, "stream": True}
        )


async def test_drop_in_a_non_streaming_response(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(model=fresh("drop"), messages=MESSAGES)


async def test_cut_ends_the_body_without_finish_or_done(
    client: openai.AsyncOpenAI, http: httpx.AsyncClient
) -> None:
    model = fresh("cut@2,chunk=1")
    stream = await client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
    text, chunks = await collect(stream)  # the SDK ends quietly: no error, no finish_reason
    assert len(text.split()) == 2
    assert all(c.choices[0].finish_reason is None for c in chunks)

    r = await http.post(
        "/chat/completions", json={"model": model, "messages": MESSAGES, "stream": True}
    )
    assert "[DONE]" not in r.text


async def test_malformed_sse_line(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model=fresh("badsse@2"), messages=MESSAGES, stream=True
    )
    with pytest.raises(json.JSONDecodeError):
        await collect(stream)


async def test_fail_sends_an_error_event_mid_stream(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model=fresh("fail@2"), messages=MESSAGES, stream=True
    )
    with pytest.raises(openai.APIError) as info:
        await collect(stream)
    assert not isinstance(info.value, openai.APIStatusError)
    assert "server had an error" in info.value.message


async def test_stall_is_caught_by_a_read_timeout(base_url: str, http: httpx.AsyncClient) -> None:
    model = fresh("stall@2")  # forever
    async with openai.AsyncOpenAI(
        base_url=base_url, api_key="test", max_retries=0, timeout=0.2
    ) as impatient:
        stream = await impatient.chat.completions.create(
            model=model, messages=MESSAGES, stream=True
        )
        with pytest.raises(openai.APITimeoutError):
            await collect(stream)
    counters = await eventually(http, scenario_of(model), lambda c: c["open"] == 0)
    assert counters["disconnected"] == 1
    assert counters["open"] == 0


async def test_a_bounded_stall_resumes(client: openai.AsyncOpenAI) -> None:
    started = time.monotonic()
    stream = await client.chat.completions.create(
        model=fresh("stall@1=0.2,words=6"), messages=MESSAGES, stream=True
    )
    text, _ = await collect(stream)
    assert time.monotonic() - started >= 0.2
    assert len(text.split()) == 6


async def test_time_to_first_byte(client: openai.AsyncOpenAI) -> None:
    started = time.monotonic()
    await client.chat.completions.create(model=fresh("ttfb=0.2,words=2"), messages=MESSAGES)
    assert time.monotonic() - started >= 0.2


async def test_drip_sends_one_character_at_a_time(client: openai.AsyncOpenAI) -> None:
    started = time.monotonic()
    stream = await client.chat.completions.create(
        model=fresh("drip=0.01,words=3"), messages=MESSAGES, stream=True
    )
    text, chunks = await collect(stream)
    content = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content) == len(text)
    assert time.monotonic() - started >= 0.01 * len(text)


# --- counters -----------------------------------------------------------------------------


async def test_client_break_is_counted_as_a_disconnect(
    client: openai.AsyncOpenAI, http: httpx.AsyncClient
) -> None:
    model = fresh("delay=0.02,words=200")
    stream = await client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
    async with stream:
        seen = 0
        async for _ in stream:
            seen += 1
            if seen == 3:
                assert (await stats_for(http, scenario_of(model)))["open"] == 1
                break  # closing the stream hangs up the connection
    counters = await eventually(http, scenario_of(model), lambda c: c["disconnected"] == 1)
    assert counters == {
        "requests": 1,
        "completed": 0,
        "errors": 0,
        "dropped": 0,
        "disconnected": 1,
        "open": 0,
    }


async def test_scenario_and_fault_headers(http: httpx.AsyncClient) -> None:
    name = f"hdr-{uuid.uuid4().hex[:8]}"
    headers = {"X-L0-Chaos": "status=503x1", "X-L0-Chaos-Scenario": name}
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    first = await http.post("/chat/completions", json=body, headers=headers)
    second = await http.post("/chat/completions", json=body, headers=headers)
    assert (first.status_code, second.status_code) == (503, 200)
    assert second.headers["x-l0-chaos-scenario"] == name
    assert second.headers["x-l0-chaos-request"] == "1"
    counters = await stats_for(http, name)
    assert (counters["requests"], counters["errors"], counters["completed"]) == (2, 1, 1)


async def test_default_scenario_is_the_model_string(http: httpx.AsyncClient) -> None:
    model = f"gpt-4o-mini+words={uuid.uuid4().int % 1000 + 1}"
    await http.post("/chat/completions", json={"model": model, "messages": MESSAGES})
    assert (await stats_for(http, model))["completed"] == 1


async def test_stats_reset() -> None:
    async with ChaosServer() as server, httpx.AsyncClient(base_url=server.url) as h:
        body = {"model": "gpt-4o-mini+words=2", "messages": MESSAGES}
        await h.post("/v1/chat/completions", json=body)
        assert (await h.get("/_chaos/stats")).json()["total"]["completed"] == 1
        reset = (await h.post("/_chaos/reset")).json()
        assert reset["scenarios"] == {}
        assert server.stats()["total"]["requests"] == 0

        # A stream open across a reset is still counted when it ends.
        stalled = {"model": "m+stall@1", "messages": MESSAGES, "stream": True}
        async with h.stream("POST", "/v1/chat/completions", json=stalled) as r:
            await r.aiter_bytes().__anext__()
            server.reset()
            assert server.stats()["scenarios"]["m+stall@1"]["open"] == 1
        for _ in range(300):  # the server notices the hang-up asynchronously
            if not server.stats()["total"]["open"]:
                break
            await asyncio.sleep(0.01)
        assert server.stats()["scenarios"]["m+stall@1"]["disconnected"] == 1


# --- bad requests -------------------------------------------------------------------------


async def test_bad_grammar_is_a_400_with_the_reason(
    client: openai.AsyncOpenAI, http: httpx.AsyncClient
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="gpt-4o-mini+dorp@3", messages=MESSAGES)
    assert info.value.code == "invalid_chaos_directive"
    assert "unknown chaos directive 'dorp'" in info.value.message

    r = await http.post(
        "/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MESSAGES},
        headers={"X-L0-Chaos": "ttfb=soon"},
    )
    assert r.status_code == 400
    assert "seconds" in r.json()["error"]["message"]


async def test_malformed_json_body_is_a_400(http: httpx.AsyncClient) -> None:
    r = await http.post(
        "/chat/completions", content=b'{"model": ', headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "could not parse the JSON body" in error["message"]

    r = await http.post("/chat/completions", json={"model": "gpt-4o-mini"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "messages"


async def test_a_base_url_without_v1_gets_a_hint(base_url: str) -> None:
    async with httpx.AsyncClient() as h:
        r = await h.post(base_url.removesuffix("/v1") + "/chat/completions", json={})
    assert r.status_code == 404
    assert "/v1" in r.json()["error"]["message"]


# --- determinism --------------------------------------------------------------------------


async def _raw_exchange(server: ChaosServer) -> bytes:
    body = {"model": "gpt-4o-mini+words=40", "messages": MESSAGES, "stream": True}
    async with httpx.AsyncClient(base_url=server.base_url) as h:
        r = await h.post("/chat/completions", json=body)
    head = b"".join(k + b": " + v + b"\n" for k, v in r.headers.raw)
    return head + r.content


async def test_same_request_and_seed_give_the_same_bytes() -> None:
    async with ChaosServer(seed=7) as a, ChaosServer(seed=7) as b, ChaosServer(seed=8) as c:
        first, again, other = await _raw_exchange(a), await _raw_exchange(b), await _raw_exchange(c)
        assert first == again
        assert first != other
        # Within one server, a request's ids depend on its number in the scenario; a reset
        # starts the numbering again.
        assert await _raw_exchange(a) != first
        a.reset()
        assert await _raw_exchange(a) == first


# --- Responses API ------------------------------------------------------------------------


async def test_responses_stream_events(client: openai.AsyncOpenAI) -> None:
    stream = await client.responses.create(model=fresh("words=10"), input="hello", stream=True)
    events = [e async for e in stream]
    types = [e.type for e in events]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    completed = events[-1].response
    assert completed.output_text == "".join(deltas)
    assert completed.usage.input_tokens == 1
    assert completed.usage.output_tokens == len(deltas)
    assert [e.sequence_number for e in events] == list(range(len(events)))


async def test_responses_function_call(client: openai.AsyncOpenAI) -> None:
    tool = {"type": "function", "name": "get_weather", **WEATHER_TOOL["function"]}
    stream = await client.responses.create(
        model=fresh("tool"), input="weather?", tools=[tool], stream=True
    )
    events = [e async for e in stream]
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert set(json.loads(args)) == {"city", "days"}
    item = events[-1].response.output[0]
    assert (item.type, item.name, item.arguments) == ("function_call", "get_weather", args)


async def test_responses_in_stream_failures(client: openai.AsyncOpenAI) -> None:
    stream = await client.responses.create(model=fresh("fail@1"), input="hi", stream=True)
    events = [e async for e in stream]
    assert events[-1].type == "response.failed"
    assert events[-1].response.error.code == "server_error"

    dropped = await client.responses.create(model=fresh("drop@1"), input="hi", stream=True)
    with pytest.raises(openai.APIConnectionError):
        _ = [e async for e in dropped]

    with pytest.raises(openai.RateLimitError):
        await client.responses.create(model=fresh("status=429"), input="hi", stream=True)


async def test_responses_non_streaming(client: openai.AsyncOpenAI) -> None:
    done = await client.responses.create(
        model=fresh(), input=[{"role": "user", "content": "echo: just this"}]
    )
    assert done.output_text == "just this"
    assert done.status == "completed"


# --- server lifecycle ---------------------------------------------------------------------


async def test_stopping_ends_a_stalled_stream_promptly() -> None:
    async with openai.AsyncOpenAI(base_url="http://unused/v1", api_key="test") as sdk:
        async with l0.chaos.serve() as url:
            client = sdk.with_options(base_url=url, max_retries=0, timeout=5)
            stream = await client.chat.completions.create(
                model="gpt-4o-mini+stall@1", messages=MESSAGES, stream=True
            )
            reader = asyncio.ensure_future(collect(stream))
            await asyncio.sleep(0.05)
            started = time.monotonic()
        assert time.monotonic() - started < 1.5
        with pytest.raises(openai.APIConnectionError):
            await reader


async def test_time_scale_shrinks_delays() -> None:
    async with (
        ChaosServer(time_scale=0.01) as server,
        openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0) as client,
    ):
        started = time.monotonic()
        await client.chat.completions.create(
            model="gpt-4o-mini+ttfb=10,stall@1=10,words=3", messages=MESSAGES
        )
        assert time.monotonic() - started < 5  # 20 s unscaled


def test_sync_client_against_a_threaded_server(base_url: str) -> None:
    with openai.OpenAI(base_url=base_url, api_key="test", max_retries=0) as sync_client:
        done = sync_client.chat.completions.create(
            model=fresh(), messages=[{"role": "user", "content": "echo: sync works"}]
        )
    assert done.choices[0].message.content == "sync works"


async def test_only_loopback_by_default() -> None:
    server = ChaosServer()
    assert server.host == "127.0.0.1"


# --- LiteLLM ------------------------------------------------------------------------------


async def test_litellm_streams_the_text(base_url: str, client: openai.AsyncOpenAI) -> None:
    import litellm

    litellm.suppress_debug_info = True
    model = fresh("words=15")
    expected = await client.chat.completions.create(model=model, messages=MESSAGES)
    stream = await litellm.acompletion(
        model=f"openai/{model}",
        api_base=base_url,
        api_key="x",
        stream=True,
        messages=MESSAGES,
    )
    text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream])
    assert text == expected.choices[0].message.content


async def test_litellm_sees_a_drop_as_a_mid_stream_error(base_url: str) -> None:
    import litellm

    litellm.suppress_debug_info = True
    stream = await litellm.acompletion(
        model=f"openai/{fresh('drop@2')}",
        api_base=base_url,
        api_key="x",
        stream=True,
        messages=MESSAGES,
        max_retries=0,
    )
    with pytest.raises(litellm.exceptions.MidStreamFallbackError) as info:
        _ = [chunk async for chunk in stream]
    assert "Connection error" in str(info.value)


async def test_a_continuation_resumes_the_same_text_with_a_small_overlap(
    client: openai.AsyncOpenAI,
) -> None:
    model = fresh("words=20")
    full, _ = await collect(
        await client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
    )
    partial = " ".join(full.split()[:7])
    continued, _ = await collect(
        await client.chat.completions.create(
            model=model,
            messages=[
                *MESSAGES,
                {"role": "assistant", "content": partial},
                {"role": "user", "content": "Continue exactly where you stopped."},
            ],
            stream=True,
        )
    )
    # It resumes two words before the end of the partial text: an overlap to remove.
    overlap = " ".join(partial.split()[-2:])
    assert continued.startswith(overlap)
    assert partial[: -len(overlap)] + continued == full


async def test_a_continuation_of_foreign_text_starts_over(client: openai.AsyncOpenAI) -> None:
    model = fresh("words=12")
    full, _ = await collect(
        await client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
    )
    other, _ = await collect(
        await client.chat.completions.create(
            model=model,
            messages=[
                *MESSAGES,
                {"role": "assistant", "content": "Something else entirely"},
                {"role": "user", "content": "Continue."},
            ],
            stream=True,
        )
    )
    assert other == full
