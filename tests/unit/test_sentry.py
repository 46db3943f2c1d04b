"""The Sentry integration, against the real ``sentry_sdk`` with a transport that keeps envelopes.

One event per failed session, grouped by failure mode, with the session's breadcrumbs and its
OpenTelemetry trace; nothing for sessions that recover or are cancelled; no content by default.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
import sentry_sdk
from opentelemetry.trace import format_span_id, format_trace_id
from sentry_sdk.envelope import Envelope
from sentry_sdk.integrations.dedupe import DedupeIntegration
from sentry_sdk.transport import Transport

import l0
from l0.guardrails.base import GuardrailRule, GuardrailViolation
from l0.observability import bus
from l0.observability.events import ObservabilityEvent, ObservabilityEventType
from l0.observability.sentry import L0Integration, _Recorder, _recorder
from l0.runtime.fallback import Target
from l0.testing import FakeClock, fail, scripted_factory
from l0.types import State

# Port 9 (discard) on localhost: a syntactically valid DSN; the transport below never sends.
DSN = "http://public@127.0.0.1:9/1"
SECRET = "SECRET-COMPLETION-7f3a"
REQUEST = httpx.Request("POST", "https://api.example.test/v1/chat/completions")


class CapturingTransport(Transport):
    """Keeps every envelope instead of sending it."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    @property
    def events(self) -> list[dict[str, Any]]:
        found = (envelope.get_event() for envelope in self.envelopes)
        return [dict(event) for event in found if event is not None]

    def serialized(self) -> bytes:
        return b"".join(envelope.serialize() for envelope in self.envelopes)


class BrokenTransport(Transport):
    def capture_envelope(self, envelope: Envelope) -> None:
        raise RuntimeError("the Sentry transport is down")


@pytest.fixture
def init_sentry() -> Iterator[Any]:
    """``init_sentry(**options)`` initialises Sentry with a capturing transport; reset after."""

    def init(*, transport: Transport | None = None, **options: Any) -> CapturingTransport:
        capturing = CapturingTransport()
        options.setdefault("integrations", [L0Integration()])
        sentry_sdk.init(
            dsn=DSN, transport=transport or capturing, default_integrations=False, **options
        )
        return capturing

    # A fresh isolation scope per test, so breadcrumbs never leak from one test to the next.
    with sentry_sdk.isolation_scope():
        yield init
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)


def no_wait_retry(**kwargs: Any) -> l0.Retry:
    return l0.Retry(base_delay=0.0, max_delay=0.0, **kwargs)


def status_error(cls: type[openai.APIStatusError], status: int) -> Exception:
    response = httpx.Response(status, request=REQUEST)
    return cls(f"status {status}", response=response, body=None)


def openai_target(factory: Any, model: str = "gpt-4o") -> Target:
    return Target(factory, 0, True, model=model, provider="openai")


def banned_word_rule(word: str, name: str = "banned") -> GuardrailRule:
    def check(state: State, delta: str) -> list[GuardrailViolation]:
        if word in delta:
            # Quotes the output, as a careless rule might: must not reach Sentry by default.
            return [GuardrailViolation(rule=name, message=f"contains {delta!r}")]
        return []

    return GuardrailRule(name=name, check=check)


async def fail_session(stream: Any, clock: FakeClock, **options: Any) -> l0.L0Error:
    result = await l0.run(stream=stream, clock=clock, **options)
    with pytest.raises(l0.L0Error) as raised:
        await result.read()
    return raised.value


def crumbs(event: dict[str, Any], category: str) -> list[dict[str, Any]]:
    return [c for c in event["breadcrumbs"]["values"] if c.get("category") == category]


def l0_exception(event: dict[str, Any]) -> dict[str, Any]:
    # Sentry lists the chain cause first; the L0Error the caller received is last.
    top: dict[str, Any] = event["exception"]["values"][-1]
    assert top["type"] == "L0Error"
    return top


# --- one event per failed session -----------------------------------------------------------


async def test_a_session_failing_after_three_retries_is_one_event(init_sentry: Any) -> None:
    transport = init_sentry()
    clock = FakeClock()
    drop = fail(ConnectionResetError("connection reset by peer"))
    factory = scripted_factory([SECRET, drop], clock=clock)
    error = await fail_session(
        openai_target(factory), clock, retry=no_wait_retry(max_retries=3), meta={"user": "u1"}
    )

    assert factory.calls == 4
    [event] = transport.events
    assert event["fingerprint"] == ["l0", "network", "NETWORK_ERROR", "openai"]
    assert event["level"] == "error"
    tags = event["tags"]
    assert tags["gen_ai.request.model"] == "gpt-4o"
    assert tags["gen_ai.provider.name"] == "openai"
    assert tags["l0.fallback.index"] == "0"
    assert tags["l0.attempts"] == "4"
    assert tags["l0.error.category"] == "network"
    assert tags["l0.error.code"] == error.code.value == "ALL_ATTEMPTS_EXHAUSTED"
    assert tags["l0.error.last_code"] == "NETWORK_ERROR"
    top = l0_exception(event)
    assert top["mechanism"]["type"] == "l0"
    assert top["mechanism"]["handled"] is True
    # The cause (the last attempt's failure) is in the chain.
    assert event["exception"]["values"][0]["type"] == "ConnectionResetError"

    retries = crumbs(event, "l0.retry")
    assert [c["data"]["attempt"] for c in retries] == [2, 3, 4]
    assert all(c["data"]["code"] == "NETWORK_ERROR" for c in retries)
    assert len(crumbs(event, "l0.attempt")) == 4
    context = event["contexts"]["l0"]
    assert context["attempts"] == 4
    assert context["meta"] == {"user": "u1"}


async def test_fallback_then_failure_is_still_one_event(init_sentry: Any) -> None:
    transport = init_sentry()
    clock = FakeClock()
    primary = scripted_factory([fail(status_error(openai.AuthenticationError, 401))], clock=clock)
    backup = scripted_factory([fail(ConnectionResetError("reset"))], clock=clock)
    await fail_session(
        openai_target(primary),
        clock,
        fallbacks=[Target(backup, 0, True, model="claude", provider="anthropic")],
        retry=no_wait_retry(max_retries=1),
    )

    [event] = transport.events
    assert event["tags"]["l0.fallback.index"] == "1"
    assert event["tags"]["gen_ai.request.model"] == "claude"
    assert event["fingerprint"] == ["l0", "network", "NETWORK_ERROR", "anthropic"]
    [fallback] = crumbs(event, "l0.fallback")
    assert fallback["data"] == {"from_index": 0, "to_index": 1, "reason": "fatal"}
    assert [c["data"]["code"] for c in crumbs(event, "l0.attempt")] == [
        "AUTH_ERROR",
        "NETWORK_ERROR",
        "NETWORK_ERROR",
    ]


async def test_a_recovered_session_sends_nothing_but_leaves_a_breadcrumb(
    init_sentry: Any,
) -> None:
    transport = init_sentry()
    clock = FakeClock()
    factory = scripted_factory([fail(ConnectionResetError("reset"))], ["ok"], clock=clock)
    result = await l0.run(stream=factory, clock=clock, retry=no_wait_retry())
    assert await result.read() == "ok"
    assert transport.events == []

    sentry_sdk.capture_message("something else went wrong later")
    [event] = transport.events
    [recovered] = crumbs(event, "l0.session")
    assert recovered["data"]["attempts"] == 2
    assert recovered["data"]["stream_id"] == result.stream_id


async def test_cancelled_sessions_are_not_reported(init_sentry: Any) -> None:
    transport = init_sentry()
    clock = FakeClock()
    factory = scripted_factory(["a", "b", fail(ConnectionResetError("reset"))], clock=clock)
    result = await l0.run(stream=factory, clock=clock)
    async for event in result:
        if event.is_token:
            break
    await result.aclose()
    assert transport.events == []


# --- grouping: the fingerprint is the failure mode ------------------------------------------


@pytest.mark.parametrize(
    ("rule", "fingerprint"),
    [("banned", ["l0", "guardrail", "banned"]), ("drift", ["l0", "drift"])],
)
async def test_guardrail_failures_group_by_rule(
    init_sentry: Any, rule: str, fingerprint: list[str]
) -> None:
    transport = init_sentry()
    clock = FakeClock()
    await fail_session(
        openai_target(scripted_factory([SECRET], clock=clock)),
        clock,
        guardrails=[banned_word_rule("SECRET", rule)],
        retry=no_wait_retry(attempts=1),
    )
    [event] = transport.events
    assert event["fingerprint"] == fingerprint
    guardrail_crumbs = crumbs(event, "l0.guardrail")
    assert [c["data"]["rule"] for c in guardrail_crumbs] == [rule, rule]
    assert all(c["level"] == "error" for c in guardrail_crumbs)
    # The rule's message quotes the output: withheld from the exception and the breadcrumbs.
    assert SECRET.encode() not in transport.serialized()
    assert "withheld" in l0_exception(event)["value"]


async def test_failure_modes_get_different_fingerprints_and_repeats_the_same(
    init_sentry: Any,
) -> None:
    transport = init_sentry()
    clock = FakeClock()
    rate_limited = fail(status_error(openai.RateLimitError, 429))
    outage = fail(status_error(openai.InternalServerError, 503))
    for failure in (rate_limited, outage, rate_limited):
        await fail_session(
            openai_target(scripted_factory([failure], clock=clock)),
            clock,
            retry=no_wait_retry(max_retries=2),
        )

    first, second, third = (event["fingerprint"] for event in transport.events)
    # Same category and the same session code (all attempts exhausted), different failures:
    assert first == ["l0", "transient", "RATE_LIMITED", "openai"]
    assert second == ["l0", "transient", "SERVER_ERROR", "openai"]
    assert third == first


async def test_a_bug_in_the_stream_factory_keeps_sentry_default_grouping(
    init_sentry: Any,
) -> None:
    transport = init_sentry()
    clock = FakeClock()

    def factory() -> Any:
        raise KeyError("model")

    await fail_session(factory, clock)
    [event] = transport.events
    assert "fingerprint" not in event
    assert event["tags"]["l0.error.category"] == "internal"
    assert event["exception"]["values"][0]["type"] == "KeyError"


# --- trace link, content, options -----------------------------------------------------------


async def test_the_event_links_to_the_session_trace(init_sentry: Any, otel: Any) -> None:
    # `otel` (tests/conftest.py) points l0 at an in-memory SDK tracer provider.
    transport = init_sentry()
    clock = FakeClock()
    factory = scripted_factory([fail(ConnectionResetError("reset"))], clock=clock)
    await fail_session(factory, clock, retry=no_wait_retry(max_retries=1))

    [session_span] = otel.named("l0.session")
    [event] = transport.events
    trace_context = event["contexts"]["trace"]
    assert trace_context["trace_id"] == format_trace_id(session_span.context.trace_id)
    assert trace_context["span_id"] == format_span_id(session_span.context.span_id)


async def test_no_content_by_default(init_sentry: Any) -> None:
    # Sentry itself would take everything (GenAI outputs, frame variables): l0 still sends none.
    transport = init_sentry(data_collection={"stack_frame_variables": True})
    clock = FakeClock()
    factory = scripted_factory(["Hello ", SECRET, fail(ConnectionResetError("reset"))], clock=clock)
    error = await fail_session(factory, clock, retry=no_wait_retry(max_retries=1))
    assert SECRET in error.checkpoint
    assert len(transport.events) == 1
    # Not in the exception, not in a stack frame's local variables, nowhere.
    assert SECRET.encode() not in transport.serialized()


@pytest.mark.filterwarnings("ignore:The send_default_pii option is deprecated")
@pytest.mark.parametrize(
    ("sentry_options", "captured"),
    [
        pytest.param({}, False, id="sentry-default"),
        pytest.param({"data_collection": {}}, True, id="data_collection-default"),
        pytest.param({"data_collection": {"gen_ai": {"outputs": False}}}, False, id="no-outputs"),
        pytest.param({"send_default_pii": True}, True, id="send_default_pii"),
    ],
)
async def test_content_needs_both_opt_ins(
    init_sentry: Any, sentry_options: dict[str, Any], captured: bool
) -> None:
    transport = init_sentry(integrations=[L0Integration(capture_content=True)], **sentry_options)
    clock = FakeClock()
    factory = scripted_factory([SECRET, fail(ConnectionResetError("reset"))], clock=clock)
    await fail_session(factory, clock, retry=no_wait_retry(max_retries=1))
    [event] = transport.events
    assert (event["contexts"]["l0"].get("checkpoint") == SECRET) is captured


async def test_handled_flag_is_configurable(init_sentry: Any) -> None:
    transport = init_sentry(integrations=[L0Integration(handled=False)])
    clock = FakeClock()
    await fail_session(scripted_factory([fail(ConnectionResetError("reset"))], clock=clock), clock)
    [event] = transport.events
    assert l0_exception(event)["mechanism"] == {"type": "l0", "handled": False}


def test_options_are_validated() -> None:
    with pytest.raises(l0.ConfigError, match="capture_content"):
        L0Integration(capture_content="yes")  # type: ignore[arg-type]


async def test_the_callers_own_capture_of_the_same_error_is_deduplicated(
    init_sentry: Any,
) -> None:
    transport = init_sentry(integrations=[L0Integration(), DedupeIntegration()])
    clock = FakeClock()
    error = await fail_session(
        scripted_factory([fail(ConnectionResetError("reset"))], clock=clock), clock
    )
    sentry_sdk.capture_exception(error)
    assert len(transport.events) == 1


# --- isolation: Sentry never breaks the stream, and keeps nothing it does not need ----------


async def test_a_broken_transport_does_not_break_the_stream(init_sentry: Any) -> None:
    init_sentry(transport=BrokenTransport())
    clock = FakeClock()
    seen: list[ObservabilityEventType] = []
    factory = scripted_factory(["partial", fail(ConnectionResetError("reset"))], clock=clock)
    error = await fail_session(
        factory, clock, retry=no_wait_retry(max_retries=1), on_event=lambda e: seen.append(e.type)
    )
    assert error.code is l0.ErrorCode.ALL_ATTEMPTS_EXHAUSTED
    assert seen[-1] is ObservabilityEventType.SESSION_END
    # Contained inside the integration: the bus never saw its sink fail.
    assert id(_recorder) not in bus._failed_sinks


async def test_before_breadcrumb_applies_to_l0_breadcrumbs(init_sentry: Any) -> None:
    def drop_retries(crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
        assert isinstance(hint["l0_event"], ObservabilityEvent)
        return None if crumb["category"] == "l0.retry" else crumb

    transport = init_sentry(before_breadcrumb=drop_retries)
    clock = FakeClock()
    factory = scripted_factory([fail(ConnectionResetError("reset"))], clock=clock)
    await fail_session(factory, clock, retry=no_wait_retry(max_retries=2))
    [event] = transport.events
    assert crumbs(event, "l0.retry") == []
    assert len(crumbs(event, "l0.attempt")) == 3


async def test_without_the_integration_nothing_is_sent(init_sentry: Any) -> None:
    transport = init_sentry(integrations=[])
    clock = FakeClock()
    await fail_session(scripted_factory([fail(ConnectionResetError("reset"))], clock=clock), clock)
    assert transport.events == []


def test_breadcrumb_state_is_bounded_and_dropped_at_session_end(init_sentry: Any) -> None:
    init_sentry()
    recorder = _Recorder(max_sessions=2)

    def emit(stream_id: str, kind: ObservabilityEventType, **data: Any) -> None:
        recorder(ObservabilityEvent(kind, ts=1_700_000_000.0, stream_id=stream_id, data=data))

    for stream_id in ("a", "b", "c"):
        emit(stream_id, ObservabilityEventType.RETRY_ATTEMPT, attempt=2, code="NETWORK_ERROR")
    # Sessions that never end cannot grow the state: the oldest is dropped.
    assert len(recorder) == 2
    emit("b", ObservabilityEventType.SESSION_END, outcome="cancelled")
    emit("c", ObservabilityEventType.SESSION_END, outcome="completed", attempts=2)
    assert len(recorder) == 0
    # A session without trouble never gets state at all.
    emit("d", ObservabilityEventType.ATTEMPT_END, outcome="completed")
    assert len(recorder) == 0
