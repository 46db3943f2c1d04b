"""What keeps a session's fixed cost down without changing what it reports: ids, environment
settings read on change, the provider snapshot, the bus's sinks, the no-SDK phases."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import NoOpTracerProvider

import l0
from l0.observability import _env, ids, providers, semconv
from l0.observability.bus import Bus
from l0.observability.events import ObservabilityEventType as T
from l0.observability.phase import Outcome, Phase, PhaseKind
from l0.runtime.fallback import Target, inside_attempt
from l0.testing import FakeClock, scripted_factory

# --- ids ------------------------------------------------------------------------------------


def test_new_id_is_a_time_ordered_uuid7_string() -> None:
    made = [ids.new_id() for _ in range(1000)]
    assert len(set(made)) == len(made)
    assert made == sorted(made)
    for text in made:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122


def test_new_id_carries_the_unix_milliseconds() -> None:
    import time

    before = time.time_ns() // 1_000_000
    made = uuid.UUID(ids.new_id()).int >> 80
    # Ids made within one millisecond take the next ones (as uuid6.uuid7 does): a little ahead.
    assert before <= made <= before + 10_000


def test_a_forked_child_draws_its_own_randomness() -> None:
    ids.new_id()
    assert ids._pool
    ids._forget()  # what os.register_at_fork runs in the child
    assert not ids._pool
    assert uuid.UUID(ids.new_id()).version == 7


async def test_a_session_id_is_unique_per_session() -> None:
    clock = FakeClock()
    first = await l0.run(stream=scripted_factory(["a"], clock=clock), clock=clock)
    second = await l0.run(stream=scripted_factory(["a"], clock=clock), clock=clock)
    assert await first.read() == await second.read() == "a"
    assert first.stream_id != second.stream_id
    assert uuid.UUID(first.stream_id).version == 7


# --- environment settings ---------------------------------------------------------------------


def test_an_env_setting_is_parsed_again_only_when_it_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[str | None] = []

    def parse(raw: str | None) -> str:
        seen.append(raw)
        return (raw or "").upper()

    monkeypatch.delenv("L0_TEST_SETTING", raising=False)
    setting = _env.EnvSetting("L0_TEST_SETTING", parse)
    assert setting.get() == "" and setting.get() == ""
    assert seen == [None]
    monkeypatch.setenv("L0_TEST_SETTING", "on")
    assert setting.get() == "ON" and setting.get() == "ON"
    assert seen == [None, "on"]
    monkeypatch.setenv("L0_TEST_SETTING", "on")  # assigned again: read again, same value
    assert setting.get() == "ON"
    monkeypatch.setenv("L0_TEST_SETTING", "off")
    assert setting.get() == "OFF"
    monkeypatch.delenv("L0_TEST_SETTING")
    assert setting.get() == ""
    assert seen[-2:] == ["off", None]


def test_the_conventions_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(semconv.OPT_IN_ENV, raising=False)
    assert semconv.conventions().latest is False
    monkeypatch.setenv(semconv.OPT_IN_ENV, "http,gen_ai_latest_experimental")
    assert semconv.conventions().latest is True
    monkeypatch.setenv(semconv.OPT_IN_ENV, "http")
    assert semconv.conventions().latest is False


# --- the provider snapshot --------------------------------------------------------------------


def test_the_snapshot_is_kept_while_the_providers_stay() -> None:
    assert providers.telemetry() is providers.telemetry()


def test_the_snapshot_follows_l0s_own_providers(otel: Any) -> None:
    with_sdk = providers.telemetry()
    assert with_sdk.tracing and with_sdk.metrics and with_sdk.logs and with_sdk.observed
    assert with_sdk.tracer_provider is otel.tracer_provider
    providers.set_tracer_provider(NoOpTracerProvider())
    try:
        without = providers.telemetry()
        assert without is not with_sdk
        assert not without.tracing and without.metrics
        assert not providers.tracing_active()
    finally:
        providers.set_tracer_provider(otel.tracer_provider)
    again = providers.telemetry()
    assert again.tracing
    assert again.tracer_provider is otel.tracer_provider


def test_the_snapshot_follows_the_global_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    assert providers._FAST
    before = providers.telemetry()
    sdk = TracerProvider()
    # What opentelemetry.trace.set_tracer_provider does (once per process): set the global.
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", sdk)
    now = providers.telemetry()
    assert now is not before
    assert now.tracing and now.tracer_provider is sdk
    assert providers.tracer_provider() is sdk
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    assert not providers.telemetry().tracing
    sdk.shutdown()


def test_an_environment_provider_is_loaded_when_it_appears(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    loaded = TracerProvider()

    def from_environment() -> Any:
        # The API's getter loads OTEL_PYTHON_TRACER_PROVIDER's entry point and sets the global.
        trace._TRACER_PROVIDER = loaded
        return loaded

    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    monkeypatch.delenv("OTEL_PYTHON_TRACER_PROVIDER", raising=False)
    assert not providers.telemetry().tracing
    monkeypatch.setattr(trace, "get_tracer_provider", from_environment)
    monkeypatch.setenv("OTEL_PYTHON_TRACER_PROVIDER", "sdk_tracer_provider")
    assert providers.telemetry().tracer_provider is loaded
    loaded.shutdown()


# --- the bus ------------------------------------------------------------------------------------


def test_the_metrics_recorder_alone_gets_only_what_it_counts(otel: Any) -> None:
    bus = Bus("id", {}, FakeClock())
    assert bus.metrics is not None
    assert bus.sinks == ()
    assert not bus
    bus.emit(T.SESSION_START, {"targets": 1})  # nobody reads it: nothing is built
    bus.emit(T.RETRY_ATTEMPT, {"category": "network"})
    _, [retry] = otel.metric_points()["l0.retries"]
    assert dict(retry.attributes) == {"l0.retry.reason": "network"}


def test_with_a_sink_the_recorder_comes_last(otel: Any) -> None:
    seen: list[Any] = []
    bus = Bus("id", {}, FakeClock(), seen.append)
    assert bus.metrics is not None
    assert bus.sinks[0] == seen.append
    assert bus.sinks[-1] == bus.metrics.on_event
    bus.emit(T.RETRY_ATTEMPT, {"category": "network"})
    assert [event.type for event in seen] == [T.RETRY_ATTEMPT]
    _, [retry] = otel.metric_points()["l0.retries"]
    assert retry.value == 1


# --- phases -------------------------------------------------------------------------------------


def _no_sdk() -> None:
    from opentelemetry._logs import NoOpLoggerProvider
    from opentelemetry.metrics import NoOpMeterProvider

    providers.set_tracer_provider(NoOpTracerProvider())
    providers.set_meter_provider(NoOpMeterProvider())
    providers.set_logger_provider(NoOpLoggerProvider())


def _back_to_the_globals() -> None:
    providers.set_tracer_provider(None)
    providers.set_meter_provider(None)
    providers.set_logger_provider(None)


def test_without_an_sdk_phases_share_the_callers_span() -> None:
    _no_sdk()
    try:
        bus = Bus("id", {}, FakeClock())
        root = Phase(PhaseKind.SESSION, bus)
        child = Phase(PhaseKind.TARGET, bus, parent=root, name="chat")
        grandchild = Phase(PhaseKind.ATTEMPT, bus, parent=child)
        # What the API's no-op tracer returns for a child of a non-recording span.
        assert not root.recording
        assert child.span is root.span and grandchild.span is root.span
        assert child.attributes is None
        with grandchild.activate():
            assert trace.get_current_span() is grandchild.span
        for phase in (grandchild, child, root):
            phase.end(Outcome.COMPLETED)
            assert phase.ended and phase.outcome is Outcome.COMPLETED
    finally:
        _back_to_the_globals()


def test_with_an_sdk_activate_makes_the_span_current(otel: Any) -> None:
    bus = Bus("id", {}, FakeClock())
    root = Phase(PhaseKind.SESSION, bus)
    child = Phase(PhaseKind.ATTEMPT, bus, parent=root)
    assert child.span is not root.span and child.recording
    outside = trace.get_current_span()
    with child.activate():
        assert trace.get_current_span() is child.span
        with child.activate():  # already current: nothing to do
            assert trace.get_current_span() is child.span
        assert trace.get_current_span() is child.span
    assert trace.get_current_span() is outside
    child.set_many({"a": 1, "b": None})
    child.end(Outcome.ERROR, error_type="Boom", attributes={"c": "x", "d": None})
    root.end(Outcome.COMPLETED)
    [ended] = otel.named("l0.attempt")
    assert dict(ended.attributes) == {"a": 1, "l0.outcome": "error", "c": "x", "error.type": "Boom"}
    assert child.attributes == dict(ended.attributes)


# --- targets ------------------------------------------------------------------------------------


def test_opening_marks_the_factory_call() -> None:
    assert not inside_attempt()
    with Target.opening():
        assert inside_attempt()
        with Target.opening():
            assert inside_attempt()
        assert inside_attempt()
    assert not inside_attempt()
