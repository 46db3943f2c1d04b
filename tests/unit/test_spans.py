"""Spans: the tree, the attributes, the outcome of every span on every exit path, context.

Each test points l0 at in-memory SDK providers (the ``otel`` fixture in ``tests/conftest.py``)
and runs on a FakeClock.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionChunk
from opentelemetry.trace import NoOpTracerProvider, SpanKind, StatusCode

import l0
import l0.observability
from l0.guardrails.base import GuardrailRule, GuardrailViolation
from l0.observability import providers, semconv
from l0.observability.bus import Bus
from l0.runtime.fallback import Target
from l0.testing import FakeClock, fail, hang, scripted_factory, scripted_stream
from l0.types import State

REQUEST = httpx.Request("POST", "https://api.example.test/v1/chat/completions")
SECRET = "sk-live-0123456789SECRETabcdef"


def chunk(
    text: str | None = None,
    *,
    finish: str | None = None,
    usage: tuple[int, int] | None = None,
    model: str = "gpt-4o-2024-08-06",
) -> ChatCompletionChunk:
    """An OpenAI Chat Completions chunk, as the SDK builds it from one SSE event."""
    raw: dict[str, Any] = {
        "id": "chatcmpl-42",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": []
        if usage
        else [{"index": 0, "delta": {"content": text}, "finish_reason": finish}],
    }
    if usage:
        raw["usage"] = {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": sum(usage),
        }
    return ChatCompletionChunk.model_validate(raw)


def target(factory: Any, index: int = 0, **known: Any) -> Target:
    """A target as an integration fills it: model, provider, server, request."""
    return Target(factory, index, takes_context=True, **known)


def no_wait() -> l0.Retry:
    return l0.Retry(base_delay=0.0, max_delay=0.0)


def attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def assert_every_span_ended(otel: Any) -> None:
    started = {s.context.span_id for s in otel.started}
    ended = {s.context.span_id for s in otel.ended}
    assert started == ended, f"{len(started - ended)} span(s) never ended"


async def settle() -> None:
    # Closing an abandoned iteration runs in a task: give it a few loop turns.
    for _ in range(10):
        await asyncio.sleep(0)


# --- the tree -------------------------------------------------------------------------------


async def test_tree_attributes_and_outcomes_across_a_retry_and_a_fallback(otel: Any) -> None:
    clock = FakeClock()
    primary = scripted_factory(
        [chunk("par"), chunk("tial"), fail(ConnectionResetError("connection reset by peer"))],
        [
            fail(
                openai.NotFoundError(
                    "no such model", response=httpx.Response(404, request=REQUEST), body=None
                )
            )
        ],
        clock=clock,
    )
    backup = scripted_factory(
        [chunk("Hel"), chunk("lo", finish="stop"), chunk(usage=(12, 2))], clock=clock
    )
    result = await l0.run(
        stream=target(
            primary,
            model="gpt-4o",
            provider="openai",
            server_address="api.example.test",
            server_port=443,
            request={"temperature": 0.2, "max_tokens": 50, "top_p": 0.9, "stop": "\n", "seed": 7},
        ),
        fallbacks=[target(backup, 1, model="gpt-4o-mini", provider="openai")],
        retry=l0.Retry(base_delay=1.5, max_delay=1.5, strategy="fixed"),
        meta={"tenant": "acme", "user": {"not": "primitive"}},
        adapter="openai",
        clock=clock,
    )
    assert await result.read() == "Hello"
    assert_every_span_ended(otel)

    [session] = otel.named("l0.session")
    [first, second] = sorted(
        otel.named("chat gpt-4o") + otel.named("chat gpt-4o-mini"), key=lambda s: s.start_time
    )
    attempts = sorted(otel.named("l0.attempt"), key=lambda s: s.start_time)
    assert len(otel.finished()) == 6  # bounded by attempts x phases: no per-chunk spans

    # session -> chat (one per target) -> attempt
    assert session.parent is None
    assert session.kind is SpanKind.INTERNAL
    assert first.name == "chat gpt-4o" and second.name == "chat gpt-4o-mini"
    for chat in (first, second):
        assert chat.kind is SpanKind.CLIENT
        assert chat.parent.span_id == session.context.span_id
    assert [a.parent.span_id for a in attempts] == [
        first.context.span_id,
        first.context.span_id,
        second.context.span_id,
    ]

    s = attrs(session)
    assert s["l0.stream.id"] == result.stream_id
    assert s["l0.meta.tenant"] == "acme"
    assert "l0.meta.user" not in s
    assert s["l0.outcome"] == "completed"
    assert s["l0.attempts"] == 3
    assert s["l0.fallback.index"] == 1

    c = attrs(first)
    assert c["gen_ai.operation.name"] == "chat"
    assert c["gen_ai.provider.name"] == "openai"
    assert c["gen_ai.request.model"] == "gpt-4o"
    assert c["gen_ai.request.stream"] is True
    assert c["server.address"] == "api.example.test"
    assert c["server.port"] == 443
    assert c["gen_ai.request.temperature"] == 0.2
    assert c["gen_ai.request.max_tokens"] == 50
    assert c["gen_ai.request.top_p"] == 0.9
    assert c["gen_ai.request.stop_sequences"] == ("\n",)
    assert c["gen_ai.request.seed"] == 7
    assert c["l0.outcome"] == "error"
    assert c["error.type"] == "NotFoundError"
    assert first.status.status_code is StatusCode.ERROR
    assert "gen_ai.system" not in c

    c = attrs(second)
    assert c["l0.outcome"] == "completed"
    assert c["gen_ai.response.id"] == "chatcmpl-42"
    assert c["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    assert c["gen_ai.response.finish_reasons"] == ("stop",)
    assert c["gen_ai.usage.input_tokens"] == 12
    assert c["gen_ai.usage.output_tokens"] == 2
    assert c["gen_ai.response.time_to_first_chunk"] == 0.0
    assert second.status.status_code is StatusCode.UNSET

    a1, a2, a3 = (attrs(a) for a in attempts)
    assert [a["l0.attempt.number"] for a in (a1, a2, a3)] == [1, 2, 3]
    assert [a["l0.attempt.reason"] for a in (a1, a2, a3)] == ["initial", "retry", "fallback"]
    assert "l0.backoff.seconds" not in a1
    assert a2["l0.backoff.seconds"] == 1.5
    assert a1["error.type"] == "ConnectionResetError"
    assert a1["l0.error.category"] == "network"
    assert a1["l0.stream.chunks"] == 2
    assert a2["error.type"] == "NotFoundError"
    assert [a["l0.outcome"] for a in (a1, a2, a3)] == ["error", "error", "completed"]
    assert attempts[0].status.status_code is StatusCode.ERROR
    assert attempts[2].status.status_code is StatusCode.UNSET


async def test_provider_is_learned_from_an_openai_stream_when_the_target_does_not_say(
    otel: Any,
) -> None:
    clock = FakeClock()
    result = await l0.run(
        stream=scripted_factory([chunk("hi", finish="stop")], clock=clock),
        adapter="openai",
        clock=clock,
    )
    await result.read()
    [chat] = otel.named("chat")
    assert attrs(chat)["gen_ai.provider.name"] == "openai"
    assert "gen_ai.request.model" not in attrs(chat)
    assert attrs(chat)["gen_ai.response.model"] == "gpt-4o-2024-08-06"


async def test_span_count_does_not_grow_with_tokens(otel: Any) -> None:
    clock = FakeClock()
    result = await l0.run(stream=scripted_factory(["x"] * 2000, clock=clock), clock=clock)
    assert len(await result.read()) == 2000
    spans = otel.finished()
    assert sorted(s.name for s in spans) == ["chat", "l0.attempt", "l0.session"]
    assert all(not s.events for s in spans)


# --- guardrails ---------------------------------------------------------------------------


def rule(name: str, severity: Any = "error", *, streaming: bool = True) -> GuardrailRule:
    found = [GuardrailViolation(rule=name, message="matched the deny list", severity=severity)]

    def check_delta(state: State, delta: str) -> list[GuardrailViolation]:
        return found if "forbidden" in delta else []

    def check_final(state: State) -> list[GuardrailViolation]:
        return found if "forbidden" in state.content else []

    return GuardrailRule(
        name=name, check=check_delta if streaming else check_final, streaming=streaming
    )


async def test_guardrail_results_are_span_events_without_content(otel: Any) -> None:
    clock = FakeClock()
    factory = scripted_factory(["a forbidden word"], ["fine"], clock=clock)
    result = await l0.run(
        stream=factory,
        guardrails=[rule("deny"), rule("late", "warning", streaming=False)],
        retry=no_wait(),
        clock=clock,
    )
    assert await result.read() == "fine"
    assert_every_span_ended(otel)
    guard_spans = sorted(otel.named("l0.guardrails"), key=lambda s: s.start_time)
    assert len(guard_spans) == 2
    [event] = guard_spans[0].events
    assert event.name == "gen_ai.guardrail.result"
    assert dict(event.attributes) == {
        "l0.guardrail.rule": "deny",
        "l0.guardrail.severity": "error",
        "l0.guardrail.result": "fail",
        "l0.guardrail.reason": "matched the deny list",
    }
    assert attrs(guard_spans[0])["l0.guardrail.rule"] == "deny"
    assert attrs(guard_spans[0])["l0.guardrail.violations"] == 1
    assert guard_spans[0].parent.span_id != otel.named("l0.session")[0].context.span_id
    for span in otel.finished():
        for e in span.events:
            assert "forbidden word" not in json.dumps(dict(e.attributes))


async def test_latest_experimental_guardrail_attributes(
    otel: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http, gen_ai_latest_experimental")
    clock = FakeClock()
    factory = scripted_factory(["forbidden"], ["fine"], clock=clock)
    result = await l0.run(stream=factory, guardrails=[rule("deny")], retry=no_wait(), clock=clock)
    await result.read()
    [event] = [e for s in otel.finished() for e in s.events]
    assert event.attributes["gen_ai.guardrail.policy.rule.id"] == "deny"
    assert event.attributes["gen_ai.guardrail.result.type"] == "severity"
    assert event.attributes["gen_ai.guardrail.result.value"] == "error"
    assert event.attributes["gen_ai.guardrail.component.name"] == "l0"


# --- every span ends, with the right outcome ----------------------------------------------


async def full_read(clock: FakeClock) -> None:
    result = await l0.run(stream=scripted_factory(["a", "b"], clock=clock), clock=clock)
    await result.read()


async def consumer_break(clock: FakeClock) -> None:
    result = await l0.run(stream=scripted_factory(["a", "b", "c"], clock=clock), clock=clock)
    async for _ in result:
        break
    await settle()


async def async_with_break(clock: FakeClock) -> None:
    result = await l0.run(stream=scripted_factory(["a", "b", "c"], clock=clock), clock=clock)
    async with result:
        async for _ in result:
            break


async def abort(clock: FakeClock) -> None:
    result = await l0.run(stream=scripted_factory(["a", "b", "c"], clock=clock), clock=clock)
    async for _ in result:
        result.abort()


async def task_cancelled(clock: FakeClock) -> None:
    result = await l0.run(
        stream=scripted_factory(["a", hang()], clock=clock),
        timeout=l0.Timeout(None, None),
        clock=clock,
    )
    task = asyncio.create_task(result.read())
    await settle()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def mid_stream_error(clock: FakeClock) -> None:
    result = l0.wrap(scripted_stream(["a", fail(ConnectionResetError("reset"))]), clock=clock)
    with pytest.raises(l0.L0Error):
        await result.read()


async def never_iterated(clock: FakeClock) -> None:
    result = await l0.run(stream=scripted_factory(["a"], clock=clock), clock=clock)
    async with result:
        pass


async def garbage_collected_unread(clock: FakeClock) -> None:
    result = await l0.run(stream=scripted_factory(["a"], clock=clock), clock=clock)
    del result
    gc.collect()


async def garbage_collected_mid_stream(clock: FakeClock) -> None:
    result = await l0.run(stream=scripted_factory(["a", "b"], clock=clock), clock=clock)
    iterator = aiter(result)
    await anext(iterator)
    del result, iterator
    gc.collect()
    await settle()


Scenario = Callable[[FakeClock], Awaitable[None]]


@pytest.mark.parametrize(
    ("scenario", "outcome", "spans"),
    [
        pytest.param(full_read, "completed", 3, id="full-read"),
        pytest.param(consumer_break, "cancelled", 3, id="break"),
        pytest.param(async_with_break, "cancelled", 3, id="async-with-break"),
        pytest.param(abort, "cancelled", 3, id="abort"),
        pytest.param(task_cancelled, "cancelled", 3, id="task-cancelled"),
        pytest.param(mid_stream_error, "error", 3, id="mid-stream-error"),
        pytest.param(never_iterated, "abandoned", 1, id="never-iterated"),
        pytest.param(garbage_collected_unread, "abandoned", 1, id="gc-unread"),
        pytest.param(garbage_collected_mid_stream, "cancelled", 3, id="gc-mid-stream"),
    ],
)
async def test_every_started_span_ends_with_its_outcome(
    otel: Any, caplog: pytest.LogCaptureFixture, scenario: Scenario, outcome: str, spans: int
) -> None:
    caplog.set_level(logging.DEBUG)
    await scenario(FakeClock())
    assert_every_span_ended(otel)
    finished = otel.finished()
    assert len(finished) == spans
    assert {attrs(s)["l0.outcome"] for s in finished} == {outcome}
    expected = StatusCode.ERROR if outcome == "error" else StatusCode.UNSET
    assert {s.status.status_code for s in finished} == {expected}
    [session] = otel.named("l0.session")
    if spans == 3:
        [chat] = otel.named("chat")
        [attempt] = otel.named("l0.attempt")
        assert chat.parent.span_id == session.context.span_id
        assert attempt.parent.span_id == chat.context.span_id
        assert attrs(attempt)["l0.attempt.number"] == 1
    if outcome == "error":
        assert attrs(attempt)["error.type"] == "ConnectionResetError"
        assert attrs(chat)["error.type"] == "ConnectionResetError"
        assert attrs(session)["error.type"] == "NETWORK_ERROR"
    assert "Failed to detach context" not in caplog.text


async def test_ending_is_idempotent(otel: Any) -> None:
    clock = FakeClock()
    result = await l0.run(stream=scripted_factory(["a"], clock=clock), clock=clock)
    await result.read()
    session = result._session
    session.end_abandoned()
    session.phase.end(l0.observability.phase.Outcome.ERROR)
    assert [attrs(s)["l0.outcome"] for s in otel.named("l0.session")] == ["completed"]


# --- context ------------------------------------------------------------------------------


async def test_spans_opened_by_the_factory_nest_under_the_attempt(otel: Any) -> None:
    clock = FakeClock()
    provider_tracer = otel.tracer_provider.get_tracer("provider-sdk")

    def factory() -> Any:
        # What an instrumented HTTP client does inside the factory: a span for the request.
        with provider_tracer.start_as_current_span("POST /v1/chat/completions"):
            return scripted_stream(["ok"])

    result = await l0.run(stream=factory, clock=clock)
    await result.read()
    [http] = otel.named("POST /v1/chat/completions")
    [attempt] = otel.named("l0.attempt")
    assert http.parent.span_id == attempt.context.span_id


async def test_the_consumers_spans_are_never_children_of_l0_spans(
    otel: Any, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    tracer = otel.tracer_provider.get_tracer("app")
    factory = scripted_factory([fail(ConnectionResetError("x"))], ["a", "b", "c"], clock=clock)
    with tracer.start_as_current_span("handler") as handler:
        result = await l0.run(stream=factory, retry=no_wait(), clock=clock)
        async for event in result:
            with tracer.start_as_current_span(f"render {event.type}"):
                pass
    result2 = await l0.run(stream=scripted_factory(["z"], clock=clock), clock=clock)
    async for _ in result2:
        with tracer.start_as_current_span("outside"):
            pass
    renders = [s for s in otel.finished() if s.name.startswith("render")]
    assert len(renders) == 4
    assert {s.parent.span_id for s in renders} == {handler.get_span_context().span_id}
    [session] = [s for s in otel.named("l0.session") if s.parent is not None]
    assert session.parent.span_id == handler.get_span_context().span_id
    outside = otel.named("outside")
    assert len(outside) == 2
    assert all(s.parent is None for s in outside)
    assert "Failed to detach context" not in caplog.text


# --- message content ------------------------------------------------------------------------


async def run_with_content(clock: FakeClock) -> l0.Result:
    factory = scripted_factory([chunk("Paris"), chunk(" it is", finish="stop")], clock=clock)
    request = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of France?"},
        ],
        "api_key": SECRET,
    }
    result = await l0.run(
        stream=target(factory, model="gpt-4o", request=request), adapter="openai", clock=clock
    )
    await result.read()
    return result


async def test_no_content_by_default(otel: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    await run_with_content(FakeClock())
    [chat] = otel.named("chat gpt-4o")
    assert not any(
        k.startswith(("gen_ai.input", "gen_ai.output", "gen_ai.system_")) for k in attrs(chat)
    )
    assert otel.logs.get_finished_logs() == ()


@pytest.mark.parametrize(
    ("setting", "on_span", "as_event"),
    [
        ("SPAN_ONLY", True, False),
        ("span_only", True, False),
        ("EVENT_ONLY", False, True),
        ("SPAN_AND_EVENT", True, True),
        ("true", True, True),
        ("False", False, False),
        ("NO_CONTENT", False, False),
        ("bogus", False, False),
    ],
)
async def test_content_capture_modes(
    otel: Any, monkeypatch: pytest.MonkeyPatch, setting: str, on_span: bool, as_event: bool
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", setting)
    await run_with_content(FakeClock())
    [chat] = otel.named("chat gpt-4o")
    c = attrs(chat)
    if on_span:
        [output] = json.loads(c["gen_ai.output.messages"])
        assert output == {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Paris it is"}],
            "finish_reason": "stop",
        }
        assert json.loads(c["gen_ai.input.messages"]) == [
            {"role": "user", "parts": [{"type": "text", "content": "Capital of France?"}]}
        ]
        assert json.loads(c["gen_ai.system_instructions"]) == [
            {"type": "text", "content": "Be brief."}
        ]
    else:
        assert "gen_ai.output.messages" not in c
    logs = otel.logs.get_finished_logs()
    if as_event:
        [log] = logs
        record = log.log_record
        assert record.event_name == "gen_ai.client.inference.operation.details"
        assert record.span_id == chat.context.span_id
        assert record.attributes["gen_ai.request.model"] == "gpt-4o"
        assert (
            record.attributes["gen_ai.output.messages"][0]["parts"][0]["content"] == "Paris it is"
        )
    else:
        assert logs == ()


async def test_configure_overrides_the_environment(
    otel: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "NO_CONTENT")
    l0.observability.configure(capture_content=l0.observability.ContentCapture.SPAN_ONLY)
    await run_with_content(FakeClock())
    assert "gen_ai.output.messages" in attrs(otel.named("chat gpt-4o")[0])
    with pytest.raises(ValueError, match="capture_content"):
        l0.observability.configure(capture_content="everything")


# --- secrets ------------------------------------------------------------------------------


async def test_api_keys_and_auth_headers_never_reach_telemetry(
    otel: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_AND_EVENT")
    clock = FakeClock()
    denied = openai.AuthenticationError(
        f"Incorrect API key provided: {SECRET} (Authorization: Bearer {SECRET})",
        response=httpx.Response(401, request=REQUEST),
        body=None,
    )
    primary = scripted_factory([fail(denied)], clock=clock)
    backup = scripted_factory([chunk("ok", finish="stop")], clock=clock)
    request = {
        "messages": [{"role": "user", "content": "hi"}],
        "api_key": SECRET,
        "extra_headers": {"Authorization": f"Bearer {SECRET}", "x-api-key": SECRET},
        "default_headers": {"api-key": SECRET},
    }
    result = await l0.run(
        stream=target(primary, model="gpt-4o", request=request),
        fallbacks=[target(backup, 1, model="gpt-4o-mini", request=request)],
        adapter="openai",
        clock=clock,
    )
    await result.read()
    telemetry: list[str] = []
    for span in otel.finished():
        telemetry.append(json.dumps(attrs(span), default=str))
        telemetry.append(str(span.status.description))
        telemetry.extend(json.dumps(dict(e.attributes), default=str) for e in span.events)
    for log in otel.logs.get_finished_logs():
        telemetry.append(json.dumps(dict(log.log_record.attributes or {}), default=str))
        telemetry.append(str(log.log_record.body))
    for _, points in otel.metric_points().values():
        telemetry.extend(json.dumps(dict(p.attributes), default=str) for p in points)
    assert telemetry
    leaked = [t for t in telemetry if "SECRET" in t]
    assert leaked == []
    # The failure is still described, with the credential masked.
    [denied_attempt] = [
        s for s in otel.named("l0.attempt") if s.status.status_code is StatusCode.ERROR
    ]
    assert "[REDACTED]" in (denied_attempt.status.description or "")


# --- conventions ----------------------------------------------------------------------------


def test_literal_names_match_the_semantic_conventions_package() -> None:
    from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as g
    from opentelemetry.semconv._incubating.metrics import gen_ai_metrics as m

    assert semconv.GEN_AI_PROVIDER_NAME == g.GEN_AI_PROVIDER_NAME == "gen_ai.provider.name"
    assert semconv.GEN_AI_REQUEST_STREAM == g.GEN_AI_REQUEST_STREAM
    assert semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK == g.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK
    assert semconv.METRIC_TOKEN_USAGE == m.GEN_AI_CLIENT_TOKEN_USAGE
    # The fallback literals (used without the `otel` extra) are the package's strings.
    for name in dir(semconv):
        if name.startswith("GEN_AI_") and hasattr(g, name):
            assert getattr(semconv, name) == getattr(g, name), name


@pytest.mark.parametrize(
    ("opt_in", "latest"),
    [
        (None, False),
        ("http", False),
        ("gen_ai_latest_experimental", True),
        ("http/dup, gen_ai_latest_experimental ,database", True),
    ],
)
def test_stability_opt_in_switch(
    monkeypatch: pytest.MonkeyPatch, opt_in: str | None, latest: bool
) -> None:
    if opt_in is None:
        monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN", raising=False)
    else:
        monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", opt_in)
    conventions = semconv.conventions()
    assert conventions.latest is latest
    assert conventions.operation_duration == (
        "gen_ai.client.inference.duration" if latest else "gen_ai.client.operation.duration"
    )


def test_request_attributes_read_only_the_allow_listed_parameters() -> None:
    found = semconv.request_attributes(
        {
            "temperature": 1,
            "max_completion_tokens": 100,
            "stop": ["a", "b"],
            "n": 3,
            "stream": True,
            "api_key": SECRET,
            "max_tokens": True,
        }
    )
    assert found == {
        "gen_ai.request.temperature": 1.0,
        "gen_ai.request.max_tokens": 100,
        "gen_ai.request.stop_sequences": ("a", "b"),
        "gen_ai.request.choice.count": 3,
    }


# --- no SDK: next to nothing ----------------------------------------------------------------


async def test_without_an_sdk_nothing_builds_attributes() -> None:
    from opentelemetry._logs import NoOpLoggerProvider
    from opentelemetry.metrics import NoOpMeterProvider

    providers.set_tracer_provider(NoOpTracerProvider())
    providers.set_meter_provider(NoOpMeterProvider())
    providers.set_logger_provider(NoOpLoggerProvider())
    try:
        clock = FakeClock()
        bus = Bus("id", {}, clock)
        assert not bus.observed
        assert bus.metrics is None
        result = await l0.run(stream=scripted_factory(["a"], clock=clock), clock=clock)
        session = result._session
        assert session.phase.attributes is None
        assert not session.phase.recording
        assert await result.read() == "a"
    finally:
        providers.set_tracer_provider(None)
        providers.set_meter_provider(None)
        providers.set_logger_provider(None)
