"""The runtime contract: retries, fallbacks, timeouts, resets, continuation, cancellation.

Every test runs on a FakeClock: virtual time, no sleeps, same events every run.
"""

from __future__ import annotations

import asyncio
import gc
import random
from typing import Any

import httpx
import openai
import pytest

import l0
from l0.guardrails.base import GuardrailRule, GuardrailViolation
from l0.testing import FakeClock, delay, fail, hang, scripted_factory, scripted_stream
from l0.types import State

REQUEST = httpx.Request("POST", "https://api.example.test/v1/chat/completions")


def status_error(cls: type[openai.APIStatusError], status: int, **headers: str) -> Exception:
    response = httpx.Response(status, request=REQUEST, headers=headers)
    return cls(f"status {status}", response=response, body=None)


def no_wait_retry(**kwargs: Any) -> l0.Retry:
    return l0.Retry(base_delay=0.0, max_delay=0.0, **kwargs)


async def collect(result: l0.Result) -> list[l0.Event]:
    return [event async for event in result]


def texts(events: list[l0.Event]) -> list[str]:
    return [e.text or "" for e in events if e.is_token]


async def test_clean_stream_yields_tokens_then_one_complete() -> None:
    clock = FakeClock()
    factory = scripted_factory(["Hel", "lo", " world"], clock=clock)
    result = await l0.run(stream=factory, clock=clock)
    events = await collect(result)
    assert texts(events) == ["Hel", "lo", " world"]
    assert [e.type for e in events].count(l0.EventType.COMPLETE) == 1
    assert events[-1].is_complete
    state = result.state
    assert state.content == "Hello world"
    assert state.token_count == 3
    assert state.completed and not state.aborted
    assert state.fallback_index == 0
    assert state.attempt == 1
    assert state.errors == []
    assert state.duration is not None


async def test_read_returns_text() -> None:
    clock = FakeClock()
    result = await l0.run(stream=scripted_factory(["a", "b"], clock=clock), clock=clock)
    assert await result.read() == "ab"


# --- the seed's retry table ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "counts_toward_attempts"),
    [
        pytest.param(fail(ConnectionResetError("connection reset by peer")), False, id="network"),
        pytest.param(fail(httpx.RemoteProtocolError("peer closed connection")), False, id="drop"),
        pytest.param(fail(status_error(openai.RateLimitError, 429)), False, id="429"),
        pytest.param(fail(status_error(openai.InternalServerError, 503)), False, id="503"),
        pytest.param(hang(), False, id="timeout"),
    ],
)
async def test_transient_failures_retry_without_consuming_attempts(
    failure: Any, counts_toward_attempts: bool
) -> None:
    clock = FakeClock()
    factory = scripted_factory([failure], [failure], ["ok"], clock=clock)
    # attempts=0: a failure that consumed `attempts` could not be retried at all.
    result = await l0.run(
        stream=factory,
        retry=no_wait_retry(attempts=0, max_retries=6),
        timeout=l0.Timeout(initial_token=5, inter_token=5),
        clock=clock,
    )
    assert await result.read() == "ok"
    assert factory.calls == 3
    assert result.state.network_retry_count == 2
    assert result.state.model_retry_count == 0


async def test_zero_output_is_retried_without_consuming_attempts() -> None:
    clock = FakeClock()
    factory = scripted_factory([], [""], ["done"], clock=clock)
    result = await l0.run(stream=factory, retry=no_wait_retry(attempts=0), clock=clock)
    assert await result.read() == "done"
    assert [e.code for e in result.state.errors] == [l0.ErrorCode.ZERO_OUTPUT] * 2
    assert result.state.network_retry_count == 2


def banned_word_rule(word: str, name: str = "banned") -> GuardrailRule:
    def check(state: State, delta: str) -> list[GuardrailViolation]:
        if word in delta:
            return [GuardrailViolation(rule=name, message=f"contains {word!r}")]
        return []

    return GuardrailRule(name=name, check=check)


@pytest.mark.parametrize(
    ("rule_name", "code"),
    [("banned", l0.ErrorCode.GUARDRAIL_VIOLATION), ("drift", l0.ErrorCode.DRIFT_DETECTED)],
)
async def test_guardrail_and_drift_violations_consume_attempts(
    rule_name: str, code: l0.ErrorCode
) -> None:
    clock = FakeClock()
    factory = scripted_factory(["bad"], clock=clock)
    result = await l0.run(
        stream=factory,
        guardrails=[banned_word_rule("bad", rule_name)],
        retry=no_wait_retry(attempts=2, max_retries=10),
        clock=clock,
    )
    with pytest.raises(l0.L0Error) as raised:
        await result.read()
    # 1 try + 2 retries allowed by `attempts`, although max_retries would allow more.
    assert factory.calls == 3
    assert result.state.model_retry_count == 2
    assert raised.value.code is l0.ErrorCode.ALL_ATTEMPTS_EXHAUSTED
    assert raised.value.category is l0.ErrorCategory.CONTENT
    assert [e.code for e in raised.value.errors] == [code] * 3


@pytest.mark.parametrize(
    ("cls", "status"), [(openai.AuthenticationError, 401), (openai.PermissionDeniedError, 403)]
)
async def test_auth_errors_never_retry_but_fall_back(
    cls: type[openai.APIStatusError], status: int
) -> None:
    clock = FakeClock()
    primary = scripted_factory([fail(status_error(cls, status))], clock=clock)
    backup = scripted_factory(["from backup"], clock=clock)
    result = await l0.run(stream=primary, fallbacks=[backup], clock=clock)
    assert await result.read() == "from backup"
    assert primary.calls == 1
    assert result.state.fallback_index == 1
    assert result.state.errors[0].category is l0.ErrorCategory.FATAL


async def test_auth_error_without_fallback_is_terminal_after_one_attempt() -> None:
    clock = FakeClock()
    primary = scripted_factory([fail(status_error(openai.AuthenticationError, 401))], clock=clock)
    result = await l0.run(stream=primary, clock=clock)
    events: list[l0.Event] = []
    with pytest.raises(l0.L0Error) as raised:
        async for event in result:
            events.append(event)
    assert primary.calls == 1
    assert raised.value.code is l0.ErrorCode.AUTH_ERROR
    assert raised.value.category is l0.ErrorCategory.FATAL
    assert raised.value.status_code == 401
    # Terminal failure is never silent: one ERROR event carrying the error, then the raise.
    assert [e.type for e in events] == [l0.EventType.ERROR]
    assert events[0].error is raised.value


async def test_bug_in_user_factory_is_internal_and_not_retried() -> None:
    clock = FakeClock()
    calls = 0

    def factory() -> Any:
        nonlocal calls
        calls += 1
        raise KeyError("model")

    result = await l0.run(stream=factory, fallbacks=[scripted_factory(["x"])], clock=clock)
    with pytest.raises(l0.L0Error) as raised:
        await result.read()
    assert calls == 1
    assert raised.value.category is l0.ErrorCategory.INTERNAL
    assert isinstance(raised.value.__cause__, KeyError)


async def test_max_retries_caps_the_whole_session_including_fallbacks() -> None:
    clock = FakeClock()
    drop = fail(ConnectionResetError("connection reset"))
    primary = scripted_factory([drop], clock=clock)
    backup = scripted_factory([drop], clock=clock)
    result = await l0.run(
        stream=primary, fallbacks=[backup], retry=no_wait_retry(max_retries=3), clock=clock
    )
    with pytest.raises(l0.L0Error):
        await result.read()
    # 3 retries in the session in all: primary 1 + 3 retries, then the fallback's first try
    # (moving to a fallback is not a retry) and no retry left for it.
    assert primary.calls + backup.calls == 5
    assert (primary.calls, backup.calls) == (4, 1)


async def test_fallbacks_tried_in_order() -> None:
    clock = FakeClock()
    dead = fail(status_error(openai.NotFoundError, 404))
    a = scripted_factory([dead], clock=clock)
    b = scripted_factory([dead], clock=clock)
    c = scripted_factory(["third"], clock=clock)
    seen: list[l0.ObservabilityEventType] = []
    result = await l0.run(
        stream=a, fallbacks=[b, c], clock=clock, on_event=lambda e: seen.append(e.type)
    )
    assert await result.read() == "third"
    assert (a.calls, b.calls, c.calls) == (1, 1, 1)
    assert result.state.fallback_index == 2
    assert seen.count(l0.ObservabilityEventType.FALLBACK_START) == 2


# --- backoff -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (l0.BackoffStrategy.EXPONENTIAL, [1.0, 2.0, 4.0, 8.0, 10.0]),
        (l0.BackoffStrategy.LINEAR, [1.0, 2.0, 3.0, 4.0, 5.0]),
        (l0.BackoffStrategy.FIXED, [1.0, 1.0, 1.0, 1.0, 1.0]),
    ],
)
def test_deterministic_backoff_formulas(
    strategy: l0.BackoffStrategy, expected: list[float]
) -> None:
    retry = l0.Retry(base_delay=1.0, max_delay=10.0, strategy=strategy)
    assert [retry.delay(n) for n in range(5)] == expected


def test_jitter_backoff_formulas_with_seeded_rng() -> None:
    full = l0.Retry(base_delay=1.0, max_delay=10.0, strategy="full_jitter")
    fixed = l0.Retry(base_delay=1.0, max_delay=10.0, strategy=l0.BackoffStrategy.FIXED_JITTER)
    for n in range(6):
        t = min(2.0**n, 10.0)
        reference = random.Random(42)
        assert full.delay(n, random.Random(42)) == reference.uniform(0, t)
        reference = random.Random(42)
        assert fixed.delay(n, random.Random(42)) == t / 2 + reference.uniform(0, t / 2)
        assert t / 2 <= fixed.delay(n, random.Random(n)) <= t


async def test_backoff_waits_on_the_clock_between_attempts() -> None:
    clock = FakeClock()
    drop = fail(ConnectionResetError("reset"))
    factory = scripted_factory([drop], [drop], ["ok"], clock=clock)
    starts: list[float] = []
    result = await l0.run(
        stream=factory,
        retry=l0.Retry(base_delay=2.0, max_delay=30.0, strategy="exponential"),
        clock=clock,
        on_event=lambda e: (
            starts.append(clock.now())
            if e.type is l0.ObservabilityEventType.ATTEMPT_START
            else None
        ),
    )
    assert await result.read() == "ok"
    assert starts == [0.0, 2.0, 6.0]


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "999"}, 60.0),
    ],
)
async def test_retry_after_replaces_backoff_up_to_the_cap(
    headers: dict[str, str], wait: float
) -> None:
    clock = FakeClock()
    limited = fail(status_error(openai.RateLimitError, 429, **headers))
    factory = scripted_factory([limited], ["ok"], clock=clock)
    result = await l0.run(stream=factory, clock=clock)
    assert await result.read() == "ok"
    assert clock.now() == pytest.approx(wait)


# --- timeouts ------------------------------------------------------------------------------


async def test_initial_token_timeout_on_a_hanging_stream() -> None:
    clock = FakeClock()
    factory = scripted_factory([hang()], ["late but fine"], clock=clock)
    result = await l0.run(
        stream=factory,
        timeout=l0.Timeout(initial_token=5.0, inter_token=10.0),
        retry=no_wait_retry(),
        clock=clock,
    )
    assert await result.read() == "late but fine"
    assert result.state.errors[0].code is l0.ErrorCode.INITIAL_TOKEN_TIMEOUT
    assert result.state.errors[0].category is l0.ErrorCategory.NETWORK
    assert clock.now() == pytest.approx(5.0)
    assert factory.streams[0].closed


async def test_inter_token_timeout_after_tokens_and_a_real_stall() -> None:
    clock = FakeClock()
    factory = scripted_factory(["a", delay(3), "b", hang()], ["ab"], clock=clock)
    result = await l0.run(
        stream=factory,
        timeout=l0.Timeout(initial_token=5.0, inter_token=10.0),
        retry=no_wait_retry(),
        clock=clock,
    )
    events = await collect(result)
    assert result.state.errors[0].code is l0.ErrorCode.INTER_TOKEN_TIMEOUT
    # The stall started after "b" at t=3 and was cut at t=13.
    assert clock.now() == pytest.approx(13.0)
    assert result.state.content == "ab"
    assert [e.type for e in events] == [
        l0.EventType.TOKEN,
        l0.EventType.TOKEN,
        l0.EventType.RESET,
        l0.EventType.TOKEN,
        l0.EventType.COMPLETE,
    ]
    assert factory.streams[0].closed


async def test_slow_but_steady_stream_is_not_a_timeout() -> None:
    clock = FakeClock()
    factory = scripted_factory(["a", delay(9), "b", delay(9), "c"], clock=clock)
    result = await l0.run(
        stream=factory, timeout=l0.Timeout(initial_token=5, inter_token=10), clock=clock
    )
    assert await result.read() == "abc"
    assert result.state.errors == []


async def test_disabled_timers_let_a_long_silence_pass() -> None:
    clock = FakeClock()
    factory = scripted_factory([delay(100), "a", delay(500), "b"], clock=clock)
    result = await l0.run(
        stream=factory, timeout=l0.Timeout(initial_token=None, inter_token=None), clock=clock
    )
    assert await result.read() == "ab"


async def test_a_slow_consumer_does_not_trip_the_inter_token_timer() -> None:
    clock = FakeClock()
    factory = scripted_factory(["a", "b", "c"], clock=clock)
    result = await l0.run(stream=factory, timeout=l0.Timeout(inter_token=1.0), clock=clock)
    seen = []
    async for event in result:
        if event.is_token:
            seen.append(event.text)
            await clock.sleep(30)  # the consumer is busy far longer than the timer
    assert seen == ["a", "b", "c"]
    assert result.state.errors == []


# --- the reset contract and continuation ---------------------------------------------------


async def test_reset_event_when_a_failed_attempt_had_delivered_tokens() -> None:
    clock = FakeClock()
    factory = scripted_factory(
        ["The ", "quick", fail(ConnectionResetError("reset"))],
        ["A ", "slow ", "fox"],
        clock=clock,
    )
    result = await l0.run(stream=factory, retry=no_wait_retry(), clock=clock)
    events = await collect(result)
    kinds = [e.type for e in events]
    assert kinds == [
        l0.EventType.TOKEN,
        l0.EventType.TOKEN,
        l0.EventType.RESET,
        l0.EventType.TOKEN,
        l0.EventType.TOKEN,
        l0.EventType.TOKEN,
        l0.EventType.COMPLETE,
    ]
    reset = events[2]
    assert reset.is_reset and reset.data["discarded_chars"] == len("The quick")
    # Exactly the winning attempt's text — never a mix.
    assert result.state.content == "A slow fox"
    assert "".join(texts(events[3:])) == "A slow fox"


async def test_no_reset_when_the_failed_attempt_delivered_nothing() -> None:
    clock = FakeClock()
    factory = scripted_factory([fail(ConnectionResetError("x"))], ["hi"], clock=clock)
    result = await l0.run(stream=factory, retry=no_wait_retry(), clock=clock)
    events = await collect(result)
    assert not any(e.is_reset for e in events)


async def test_continuation_removes_overlap_split_across_chunks() -> None:
    clock = FakeClock()
    factory = scripted_factory(
        ["The quick ", "brown", fail(httpx.ReadError("connection lost"))],
        # The model repeats "k brown" across three chunks before going on.
        ["k b", "ro", "wn", " fox ", "jumps"],
        clock=clock,
    )
    result = await l0.run(
        stream=factory, retry=no_wait_retry(), continue_from_checkpoint=True, clock=clock
    )
    events = await collect(result)
    assert not any(e.is_reset for e in events)
    assert "".join(texts(events)) == "The quick brown fox jumps"
    assert result.state.content == "The quick brown fox jumps"
    context = factory.contexts[1]
    assert isinstance(context, l0.AttemptContext)
    assert context.checkpoint == "The quick brown"
    assert context.continuation is True
    assert context.reason is l0.AttemptReason.RETRY
    assert context.attempt == 2


async def test_continuation_with_no_overlap_passes_text_through() -> None:
    clock = FakeClock()
    factory = scripted_factory(
        ["Hello", fail(httpx.ReadError("lost"))], [" there", "!"], clock=clock
    )
    result = await l0.run(
        stream=factory, retry=no_wait_retry(), continue_from_checkpoint=True, clock=clock
    )
    assert await result.read() == "Hello there!"


async def test_continuation_when_the_model_restarts_from_scratch() -> None:
    clock = FakeClock()
    factory = scripted_factory(
        ["Once upon", " a time", fail(httpx.ReadError("lost"))],
        ["Once ", "upon a", " time there", " was"],
        clock=clock,
    )
    result = await l0.run(
        stream=factory, retry=no_wait_retry(), continue_from_checkpoint=True, clock=clock
    )
    assert await result.read() == "Once upon a time there was"


async def test_checkpoint_excludes_the_delta_that_violated() -> None:
    clock = FakeClock()
    factory = scripted_factory(["good ", "text ", "bad"], ["fine"], clock=clock)
    result = await l0.run(
        stream=factory,
        guardrails=[banned_word_rule("bad")],
        retry=no_wait_retry(),
        continue_from_checkpoint=True,
        clock=clock,
    )
    events = await collect(result)
    assert "bad" not in "".join(texts(events))
    assert factory.contexts[1].checkpoint == "good text "
    assert result.state.content == "good text fine"


async def test_factory_without_parameter_still_gets_retried() -> None:
    clock = FakeClock()
    calls = []

    def factory() -> Any:
        calls.append(1)
        if len(calls) == 1:
            return scripted_stream([fail(ConnectionResetError("x"))])
        return scripted_stream(["ok"])

    result = await l0.run(stream=factory, retry=no_wait_retry(), clock=clock)
    assert await result.read() == "ok"


async def test_async_factory_result_is_awaited() -> None:
    clock = FakeClock()

    async def create() -> Any:
        return scripted_stream(["awaited"])

    result = await l0.run(stream=lambda: create(), clock=clock)
    assert await result.read() == "awaited"


# --- guardrails in the runtime -------------------------------------------------------------


async def test_warning_is_recorded_and_does_not_fail() -> None:
    clock = FakeClock()

    def check(state: State) -> list[GuardrailViolation]:
        if state.content_length > 3:
            return [GuardrailViolation(rule="long", message="long", severity="warning")]
        return []

    rule = GuardrailRule(name="long", check=check, streaming=False)
    result = await l0.run(stream=scripted_factory(["abcdef"]), guardrails=[rule], clock=clock)
    assert await result.read() == "abcdef"
    assert [v.rule for v in result.state.violations] == ["long"]


async def test_fatal_violation_stops_retries_on_that_target() -> None:
    clock = FakeClock()

    def check(state: State, delta: str) -> list[GuardrailViolation]:
        return [GuardrailViolation(rule="leak", message="prompt leak", severity="fatal")]

    primary = scripted_factory(["<|im_start|>"], clock=clock)
    backup = scripted_factory(["clean"], clock=clock)
    result = await l0.run(
        stream=primary,
        fallbacks=[backup],
        guardrails=[GuardrailRule(name="leak", check=check)],
        clock=clock,
    )
    with pytest.raises(l0.L0Error):
        await result.read()  # the backup violates too: "clean" also triggers this rule
    assert primary.calls == 1
    assert backup.calls == 1


async def test_async_guardrail_checks_are_awaited() -> None:
    clock = FakeClock()

    async def check(state: State, delta: str) -> list[GuardrailViolation]:
        await asyncio.sleep(0)
        return [GuardrailViolation(rule="async", message="no")] if "x" in delta else []

    factory = scripted_factory(["x"], ["y"], clock=clock)
    result = await l0.run(
        stream=factory,
        guardrails=[GuardrailRule(name="async", check=check)],
        retry=no_wait_retry(),
        clock=clock,
    )
    assert await result.read() == "y"


# --- cancellation and early exit -----------------------------------------------------------


async def test_break_closes_the_provider_stream() -> None:
    clock = FakeClock()
    factory = scripted_factory(["a", "b", "c", "d"], clock=clock)
    result = await l0.run(stream=factory, clock=clock)
    async for event in result:
        if event.is_token:
            break
    for _ in range(5):
        await asyncio.sleep(0)
    assert factory.streams[0].closed
    assert result.state.aborted
    assert not result.state.completed


async def test_abort_between_events_ends_iteration_and_closes() -> None:
    clock = FakeClock()
    factory = scripted_factory(["a", "b", "c"], clock=clock)
    result = await l0.run(stream=factory, clock=clock)
    seen = []
    async for event in result:
        seen.append(event)
        result.abort()
    assert len(seen) == 1
    assert result.state.aborted
    assert factory.streams[0].closed


async def test_abort_from_another_task_interrupts_a_pending_read() -> None:
    clock = FakeClock()
    factory = scripted_factory(["a", hang()], clock=clock)
    result = await l0.run(stream=factory, timeout=l0.Timeout(None, None), clock=clock)

    async def consume() -> list[l0.Event]:
        return [e async for e in result]

    task = asyncio.create_task(consume())
    for _ in range(10):
        await asyncio.sleep(0)
    result.abort()
    events = await task
    assert texts(events) == ["a"]
    assert result.state.aborted
    assert factory.streams[0].closed


async def test_task_cancellation_propagates_and_closes() -> None:
    clock = FakeClock()
    factory = scripted_factory(["a", hang()], clock=clock)
    result = await l0.run(stream=factory, timeout=l0.Timeout(None, None), clock=clock)
    task = asyncio.create_task(result.read())
    for _ in range(10):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert factory.streams[0].closed


async def test_cancellation_while_a_timeout_is_armed_is_not_mistaken_for_a_timeout() -> None:
    clock = FakeClock()
    factory = scripted_factory([hang()], clock=clock)
    result = await l0.run(stream=factory, timeout=l0.Timeout(initial_token=1000), clock=clock)
    task = asyncio.create_task(result.read())
    for _ in range(10):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert result.state.errors == []


async def test_leaving_async_with_closes() -> None:
    clock = FakeClock()
    factory = scripted_factory(["a", "b"], clock=clock)
    async with l0.wrap(scripted_stream(["a", "b"]), clock=clock) as result:
        async for _event in result:
            break
    assert result.state.aborted
    result2 = await l0.run(stream=factory, clock=clock)
    async with result2:
        await result2.__anext__()
    assert factory.streams[0].closed


async def test_never_iterated_result_opens_nothing() -> None:
    clock = FakeClock()
    factory = scripted_factory(["a"], clock=clock)
    result = await l0.run(stream=factory, clock=clock)
    del result
    gc.collect()
    assert factory.calls == 0


# ``async for`` iterates the session's generator itself (no wrapper with a Python __anext__);
# the loop owns it, and the session ends when the loop lets it go early.


async def test_leaving_async_with_after_a_break_has_already_closed_the_stream() -> None:
    clock = FakeClock()
    factory = scripted_factory(["a", "b", "c"], clock=clock)
    result = await l0.run(stream=factory, clock=clock)
    async with result:
        async for _ in result:
            break
        # The loop let the generator go: the session ended (cancelled) at once ...
        assert result.state.aborted
        assert result._session.finished
    # ... and leaving `async with` waited for asyncio's close of it: the stream is released.
    assert factory.streams[0].closed


async def test_looping_over_run_directly_keeps_the_session_alive() -> None:
    # The Result is a temporary here: only the loop holds the generator.
    clock = FakeClock()
    seen: list[str] = []

    def note(event: Any) -> None:
        seen.append(event.type.value)

    factory = scripted_factory(["a", "b", "c"], clock=clock)
    async for event in await l0.run(stream=factory, on_event=note, clock=clock):
        gc.collect()  # the Result is gone: that must not end the session
        seen.append(event.type.value)
    # One session end, after the last token: not when the Result was collected.
    assert seen.count("SESSION_END") == 1
    last_token = len(seen) - 1 - seen[::-1].index("token")
    assert seen.index("SESSION_END") > last_token
    assert seen[-1] == "complete"


async def test_a_second_loop_after_a_break_yields_nothing() -> None:
    clock = FakeClock()
    factory = scripted_factory(["a", "b", "c"], clock=clock)
    result = await l0.run(stream=factory, clock=clock)
    async for _ in result:
        break
    assert [e async for e in result] == []
    assert await result.read() == "a"
    assert result.state.aborted
    await result.aclose()  # nothing left to close: returns at once
    assert factory.streams[0].closed


async def test_an_iterator_dropped_before_its_first_step_ends_the_session() -> None:
    clock = FakeClock()
    factory = scripted_factory(["a"], clock=clock)
    result = await l0.run(stream=factory, clock=clock)
    iterator = aiter(result)
    del iterator
    assert result._session.finished
    assert result.state.aborted
    assert await result.read() == ""
    assert factory.calls == 0


async def test_read_builds_no_token_events_but_keeps_every_count() -> None:
    # read() wants the text only: the steady path skips the token events it would discard.
    clock = FakeClock()
    words = [f"w{i} " for i in range(50)]
    result = await l0.run(stream=scripted_factory(words, clock=clock), clock=clock)
    session = result._session
    assert await result.read() == "".join(words)
    assert session.silent_tokens
    assert result.state.token_count == 50
    # The same session loop, iterated by hand in that mode, yields no steady token events
    # (the first token still takes the full path); iterated normally, every token.
    silent = await l0.run(stream=scripted_factory(words, clock=clock), clock=clock)
    silent._session.silent_tokens = True
    kinds = [e.type async for e in silent]
    assert kinds == [l0.EventType.TOKEN, l0.EventType.COMPLETE]
    assert silent.state.content == "".join(words)
    loud = await l0.run(stream=scripted_factory(words, clock=clock), clock=clock)
    assert [e.type async for e in loud].count(l0.EventType.TOKEN) == 50


async def test_a_finished_session_is_freed_without_the_cycle_collector() -> None:
    import weakref

    clock = FakeClock()
    result = await l0.run(stream=scripted_factory(["a", "b"], clock=clock), clock=clock)
    session = weakref.ref(result._session)
    gc.disable()
    try:
        async for _ in result:
            pass
        del result, _
        assert session() is None
    finally:
        gc.enable()


# --- wrap ----------------------------------------------------------------------------------


async def test_wrap_returns_immediately_and_reads() -> None:
    result = l0.wrap(scripted_stream(["x", "y"]))
    assert await result.read() == "xy"


async def test_wrap_accepts_an_awaitable_of_a_stream() -> None:
    async def create() -> Any:
        return scripted_stream(["z"])

    assert await l0.wrap(create()).read() == "z"


async def test_wrap_gets_no_retries() -> None:
    clock = FakeClock()
    result = l0.wrap(scripted_stream(["a", fail(ConnectionResetError("x"))]), clock=clock)
    with pytest.raises(l0.L0Error) as raised:
        await result.read()
    assert raised.value.category is l0.ErrorCategory.NETWORK
    assert len(raised.value.errors) == 1


def test_wrap_rejects_fallbacks_and_retry() -> None:
    with pytest.raises(l0.ConfigError, match="fallbacks"):
        l0.wrap(scripted_stream([]), fallbacks=[lambda: None])
    with pytest.raises(l0.ConfigError, match="retry"):
        l0.wrap(scripted_stream([]), retry=l0.Retry())


# --- determinism ---------------------------------------------------------------------------


async def run_fault_scenario() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    clock = FakeClock()
    factory = scripted_factory(
        ["one ", delay(1.5), "two ", fail(ConnectionResetError("reset"))],
        [delay(2), "one ", hang()],
        [fail(status_error(openai.RateLimitError, 429))],
        ["one ", "two ", "three"],
        clock=clock,
    )
    observed: list[tuple[Any, ...]] = []
    result = await l0.run(
        stream=factory,
        retry=l0.Retry(rng=random.Random(7)),
        timeout=l0.Timeout(initial_token=3, inter_token=4),
        clock=clock,
        on_event=lambda e: observed.append((e.type, e.ts, tuple(sorted(e.data.items())))),
    )
    events = [(e.type, e.text, e.ts) async for e in result]
    return events, observed


async def test_same_script_and_seed_give_the_same_events() -> None:
    first = await run_fault_scenario()
    second = await run_fault_scenario()
    assert first == second
    assert first[0][-1][0] is l0.EventType.COMPLETE


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: l0.Retry(attempts=-1), "attempts"),
        (lambda: l0.Retry(max_retries=1.5), "max_retries"),
        (lambda: l0.Retry(base_delay=-1), "base_delay"),
        (lambda: l0.Retry(base_delay=5, max_delay=1), "max_delay"),
        (lambda: l0.Retry(strategy="bogus"), "strategy"),
        (lambda: l0.Timeout(initial_token=0), "initial_token"),
        (lambda: l0.Timeout(inter_token=-3), "inter_token"),
        (lambda: l0.Timeout(inter_token="10"), "inter_token"),
    ],
)
def test_invalid_config_names_the_field(make: Any, field: str) -> None:
    with pytest.raises(l0.ConfigError) as raised:
        make()
    assert raised.value.field == field
    assert field in str(raised.value)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"stream": 123}, "stream"),
        ({"stream": scripted_stream([])}, "stream"),
        ({"stream": lambda: None, "fallbacks": [1]}, "fallbacks[0]"),
        ({"stream": lambda: None, "fallbacks": lambda: None}, "fallbacks"),
        ({"stream": lambda a, b: None}, "stream"),
        ({"stream": lambda: None, "retry": 3}, "retry"),
        ({"stream": lambda: None, "guardrails": ["json"]}, "guardrails[0]"),
        ({"stream": lambda: None, "meta": {1: 2}}, "meta"),
        ({"stream": lambda: None, "adapter": "nope"}, "adapter"),
    ],
)
async def test_invalid_run_arguments_raise_at_call(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(l0.ConfigError) as raised:
        await l0.run(**kwargs)
    assert raised.value.field == field


async def test_provider_garbage_becomes_a_categorized_error() -> None:
    clock = FakeClock()
    factory = scripted_factory(["fine", 42], ["ok"], clock=clock)
    result = await l0.run(stream=factory, retry=no_wait_retry(), clock=clock)
    assert await result.read() == "ok"
    assert result.state.errors[0].code is l0.ErrorCode.INVALID_STREAM
    assert result.state.errors[0].category is l0.ErrorCategory.MODEL


async def test_retry_after_output_false_makes_a_late_failure_terminal() -> None:
    clock = FakeClock()
    drop = fail(ConnectionResetError("reset"))
    factory = scripted_factory(["a", drop], ["b"], clock=clock)
    result = await l0.run(stream=factory, retry_after_output=False, clock=clock)
    events: list[l0.Event] = []
    with pytest.raises(l0.L0Error) as raised:
        async for event in result:
            events.append(event)
    assert factory.calls == 1
    assert not any(e.is_reset for e in events)
    assert isinstance(raised.value.__cause__, ConnectionResetError)
    # A failure before any output is still retried.
    early = scripted_factory([drop], ["b"], clock=clock)
    result = await l0.run(
        stream=early, retry_after_output=False, retry=no_wait_retry(), clock=clock
    )
    assert await result.read() == "b"


async def test_complete_event_carries_the_adapters_raw_objects() -> None:
    class RawAdapter:
        name = "raw-test"

        def detect(self, stream: Any) -> bool:
            return False

        async def wrap(self, stream: Any) -> Any:
            async for chunk in stream:
                yield l0.Event(l0.EventType.TOKEN, text=chunk, raw=[chunk])
            yield l0.Event(l0.EventType.COMPLETE, raw=["finish-chunk", "usage-chunk"])

    result = await l0.run(stream=scripted_factory(["x"]), adapter=RawAdapter(), clock=FakeClock())
    events = await collect(result)
    assert events[0].raw == ["x"]
    assert events[-1].raw == ["finish-chunk", "usage-chunk"]


async def test_short_inter_token_timer_applies_after_a_long_initial_one() -> None:
    # The deadline moves *earlier* when the first chunk arrives (30 s -> 0.5 s): the watchdog
    # must re-arm, not wait for the long initial deadline.
    clock = FakeClock()
    factory = scripted_factory(["a", "b", hang()], ["ab"], clock=clock)
    result = await l0.run(
        stream=factory,
        timeout=l0.Timeout(initial_token=30.0, inter_token=0.5),
        retry=no_wait_retry(),
        clock=clock,
    )
    assert await result.read() == "ab"
    assert result.state.errors[0].code is l0.ErrorCode.INTER_TOKEN_TIMEOUT
    assert clock.now() == pytest.approx(0.5)


async def test_a_slow_consumer_then_a_stalled_stream_still_times_out() -> None:
    # The timer fires while the consumer holds a chunk; the next read must still be watched.
    clock = FakeClock()
    factory = scripted_factory(["a", hang()], ["ok"], clock=clock)
    result = await l0.run(
        stream=factory, timeout=l0.Timeout(5, 10), retry=no_wait_retry(), clock=clock
    )
    async for event in result:
        if event.is_token and event.text == "a":
            await clock.sleep(30)
    assert result.state.errors[0].code is l0.ErrorCode.INTER_TOKEN_TIMEOUT
    assert result.state.content == "ok"
