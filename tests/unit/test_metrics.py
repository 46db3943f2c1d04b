"""Metrics: every name, unit and attribute set; the allow-list; exemplars; the opt-in histogram.

A FakeClock drives every scenario, so durations are exact virtual seconds.
"""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionChunk
from opentelemetry.metrics import NoOpMeterProvider

import l0
import l0.observability
from l0.guardrails.base import GuardrailRule, GuardrailViolation
from l0.observability import metrics, providers, semconv
from l0.runtime.fallback import Target
from l0.testing import FakeClock, delay, fail, hang, scripted_factory
from l0.types import State

REQUEST = httpx.Request("POST", "https://api.example.test/v1/chat/completions")


def chunk(
    text: str | None = None, *, finish: str | None = None, usage: tuple[int, int] | None = None
) -> ChatCompletionChunk:
    raw: dict[str, Any] = {
        "id": "chatcmpl-7",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "gpt-4o-mini-2024-07-18",
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


def warn_rule() -> GuardrailRule:
    def check(state: State, delta: str) -> list[GuardrailViolation]:
        if "forbidden" in delta:
            return [GuardrailViolation(rule="tone", message="tone", severity="warning")]
        return []

    return GuardrailRule(name="tone", check=check)


async def eventful_session() -> l0.Result:
    """A stall, a retry, a 404 that falls back, a guardrail warning, then success with usage."""
    clock = FakeClock()
    not_found = openai.NotFoundError(
        "no such model", response=httpx.Response(404, request=REQUEST), body=None
    )
    primary = scripted_factory(
        [chunk("a"), delay(0.5), chunk("b"), hang()], [fail(not_found)], clock=clock
    )
    backup = scripted_factory(
        [
            chunk("forbidden"),
            delay(0.25),
            chunk(" ok"),
            delay(0.25),
            chunk("!", finish="stop"),
            chunk(usage=(10, 3)),
        ],
        clock=clock,
    )
    result = await l0.run(
        stream=Target(
            primary,
            0,
            takes_context=True,
            model="gpt-4o",
            provider="openai",
            server_address="api.example.test",
            server_port=443,
        ),
        fallbacks=[Target(backup, 1, takes_context=True, model="gpt-4o-mini")],
        guardrails=[warn_rule()],
        retry=l0.Retry(base_delay=0.0, max_delay=0.0),
        timeout=l0.Timeout(initial_token=5, inter_token=2),
        meta={"user_id": "u-123", "prompt": "secret prompt"},
        adapter="openai",
        clock=clock,
    )
    assert await result.read() == "forbidden ok!"
    return result


def points_by(points: list[Any], *keys: str) -> dict[tuple[Any, ...], Any]:
    return {tuple(p.attributes.get(k) for k in keys): p for p in points}


async def test_every_metric_with_its_unit_and_attributes(otel: Any) -> None:
    await eventful_session()
    found = otel.metric_points()
    units = {name: metric.unit for name, (metric, _) in found.items()}
    assert units == {
        "gen_ai.client.operation.duration": "s",
        "gen_ai.client.operation.time_to_first_chunk": "s",
        "gen_ai.client.token.usage": "{token}",
        "l0.sessions": "{session}",
        "l0.session.duration": "s",
        "l0.attempts": "{attempt}",
        "l0.retries": "{retry}",
        "l0.fallbacks": "{fallback}",
        "l0.guardrail.violations": "{violation}",
        "l0.errors": "{error}",
        "l0.stream.stalls": "{stall}",
        "l0.stream.chunk_gap.max": "s",
    }

    _, [session] = found["l0.sessions"]
    assert dict(session.attributes) == {"l0.outcome": "completed"} and session.value == 1
    _, [duration] = found["l0.session.duration"]
    assert duration.sum == pytest.approx(3.0)  # 2.5 s to the stall cut-off, 0.5 s of backup

    _, operations = found["gen_ai.client.operation.duration"]
    by_model = points_by(operations, "gen_ai.request.model")
    assert dict(by_model[("gpt-4o",)].attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "server.address": "api.example.test",
        "server.port": 443,
        "error.type": "NotFoundError",
    }
    assert by_model[("gpt-4o",)].sum == pytest.approx(2.5)
    assert dict(by_model[("gpt-4o-mini",)].attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
    }
    assert list(by_model[("gpt-4o-mini",)].explicit_bounds) == list(metrics.DURATION_BUCKETS)

    _, usage = found["gen_ai.client.token.usage"]
    tokens = points_by(usage, "gen_ai.token.type")
    assert tokens[("input",)].sum == 10 and tokens[("output",)].sum == 3
    assert tokens[("input",)].attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert list(tokens[("input",)].explicit_bounds) == list(metrics.TOKEN_BUCKETS)

    _, first_chunk = found["gen_ai.client.operation.time_to_first_chunk"]
    assert sum(p.count for p in first_chunk) == 2  # the stalled attempt and the winning one

    _, attempts = found["l0.attempts"]
    assert {
        (
            p.attributes["gen_ai.request.model"],
            p.attributes["l0.attempt.reason"],
            p.attributes["l0.outcome"],
        ): p.value
        for p in attempts
    } == {
        ("gpt-4o", "initial", "error"): 1,
        ("gpt-4o", "retry", "error"): 1,
        ("gpt-4o-mini", "fallback", "completed"): 1,
    }
    _, [retry] = found["l0.retries"]
    assert dict(retry.attributes) == {
        "l0.retry.reason": "network",
        "l0.error.code": "INTER_TOKEN_TIMEOUT",
    }
    _, [fallback] = found["l0.fallbacks"]
    assert dict(fallback.attributes) == {
        "l0.fallback.from_model": "gpt-4o",
        "l0.fallback.to_model": "gpt-4o-mini",
    }
    _, [violation] = found["l0.guardrail.violations"]
    assert dict(violation.attributes) == {
        "l0.guardrail.rule": "tone",
        "l0.guardrail.severity": "warning",
    }
    _, errors = found["l0.errors"]
    assert {(p.attributes["l0.error.category"], p.attributes["l0.error.code"]) for p in errors} == {
        ("network", "INTER_TOKEN_TIMEOUT"),
        ("provider", "NOT_FOUND"),
    }
    _, [stall] = found["l0.stream.stalls"]
    assert dict(stall.attributes) == {"l0.error.code": "INTER_TOKEN_TIMEOUT"}
    _, gaps = found["l0.stream.chunk_gap.max"]
    assert sum(p.count for p in gaps) == 2  # once per stream with 2+ chunks
    assert max(p.max for p in gaps) == pytest.approx(0.5)


async def test_metric_attributes_come_from_the_allow_list_only(otel: Any) -> None:
    result = await eventful_session()
    for _, points in otel.metric_points().values():
        for point in points:
            assert set(point.attributes) <= semconv.METRIC_ATTRIBUTES
            values = {str(v) for v in point.attributes.values()}
            assert not values & {result.stream_id, "u-123", "secret prompt"}


def test_the_allow_list_filter() -> None:
    assert metrics.allowed(
        {"l0.outcome": "error", "l0.stream.id": "x", "l0.meta.user": "u", "l0.error.code": None}
    ) == {"l0.outcome": "error"}


async def test_exemplars_link_histograms_to_the_trace(otel: Any) -> None:
    await eventful_session()
    [session_span] = otel.named("l0.session")
    found = otel.metric_points()
    _, [duration] = found["l0.session.duration"]
    assert duration.exemplars
    assert {e.trace_id for e in duration.exemplars} == {session_span.context.trace_id}
    assert {e.span_id for e in duration.exemplars} == {session_span.context.span_id}
    chats = {s.context.span_id for s in otel.finished() if s.name.startswith("chat")}
    _, operations = found["gen_ai.client.operation.duration"]
    linked = {e.span_id for p in operations for e in p.exemplars}
    assert linked == chats


async def test_time_per_output_chunk_is_off_by_default(
    otel: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("L0_METRICS_PER_CHUNK", raising=False)
    await eventful_session()
    assert "gen_ai.client.operation.time_per_output_chunk" not in otel.metric_points()


@pytest.mark.parametrize("how", ["env", "configure"])
async def test_time_per_output_chunk_when_opted_in(
    otel: Any, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    if how == "env":
        monkeypatch.setenv("L0_METRICS_PER_CHUNK", "true")
    else:
        monkeypatch.delenv("L0_METRICS_PER_CHUNK", raising=False)
        l0.observability.configure(per_chunk_metrics=True)
    await eventful_session()
    metric, points = otel.metric_points()["gen_ai.client.operation.time_per_output_chunk"]
    assert metric.unit == "s"
    # One value per stream (the mean gap after the first chunk), never one per chunk.
    by_model = points_by(points, "gen_ai.request.model")
    assert by_model[("gpt-4o-mini",)].count == 1
    assert by_model[("gpt-4o-mini",)].sum == pytest.approx(0.25)


async def test_latest_experimental_metric_names(otel: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    await eventful_session()
    found = otel.metric_points()
    assert "gen_ai.client.operation.duration" not in found
    assert "gen_ai.client.token.usage" not in found
    assert found["gen_ai.client.inference.duration"][0].unit == "s"
    assert "gen_ai.client.inference.time_to_first_chunk" in found
    metric, [inputs] = found["gen_ai.client.inference.usage.input_tokens"]
    assert metric.unit == "{token}"
    assert inputs.value == 10
    assert inputs.attributes["gen_ai.token.modality"] == "unknown"
    _, [outputs] = found["gen_ai.client.inference.usage.output_tokens"]
    assert outputs.value == 3


async def test_cancelled_calls_are_counted_but_not_timed(otel: Any) -> None:
    clock = FakeClock()
    result = await l0.run(stream=scripted_factory(["a", "b"], clock=clock), clock=clock)
    async with result:
        async for _ in result:
            break
    found = otel.metric_points()
    _, [session] = found["l0.sessions"]
    assert session.attributes["l0.outcome"] == "cancelled"
    assert "gen_ai.client.operation.duration" not in found


async def test_cancelled_attempts_keep_their_reason(otel: Any) -> None:
    clock = FakeClock()
    result = await l0.run(stream=scripted_factory(["a", "b"], clock=clock), clock=clock)
    async with result:
        async for _ in result:
            break
    _, [attempt] = otel.metric_points()["l0.attempts"]
    assert attempt.attributes["l0.outcome"] == "cancelled"
    assert attempt.attributes["l0.attempt.reason"] == "initial"


async def test_failed_sessions_carry_their_terminal_code(otel: Any) -> None:
    clock = FakeClock()
    drop = fail(ConnectionResetError("reset"))
    result = await l0.run(
        stream=scripted_factory([drop], clock=clock),
        retry=l0.Retry(max_retries=1, base_delay=0, max_delay=0),
        clock=clock,
    )
    with pytest.raises(l0.L0Error):
        await result.read()
    _, [session] = otel.metric_points()["l0.sessions"]
    assert session.attributes["l0.outcome"] == "error"
    assert session.attributes["error.type"] == "ALL_ATTEMPTS_EXHAUSTED"


async def test_no_recorder_without_an_sdk_meter_provider() -> None:
    providers.set_meter_provider(NoOpMeterProvider())
    try:
        assert metrics.recorder() is None
    finally:
        providers.set_meter_provider(None)


async def test_a_failing_recorder_does_not_break_the_stream(
    otel: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("exporter on fire")

    monkeypatch.setattr(metrics.MetricsRecorder, "phase_ended", broken)
    monkeypatch.setattr("l0.observability.phase._recorder_failed", False)
    clock = FakeClock()
    result = await l0.run(stream=scripted_factory(["a"], clock=clock), clock=clock)
    assert await result.read() == "a"
    assert caplog.text.count("recording metrics failed") == 1
