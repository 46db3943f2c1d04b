"""Race, parallel, batched, pool, consensus and the shared rate-limit cooldown.

Every test runs on a FakeClock with scripted streams: virtual time, no sleeps, the same
winner and the same events every run.
"""

from __future__ import annotations

import asyncio
import gc
import random
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel

import l0
from l0.guardrails.base import GuardrailRule, GuardrailViolation
from l0.multi import (
    MISSING,
    ConsensusError,
    ParallelError,
    PoolClosedError,
    RaceError,
    RaceState,
    batched,
    consensus,
    cooldowns,
    current_rate_limit_key,
    parallel,
    pool,
    race,
    rate_limited,
)
from l0.multi.cooldown import Cooldowns
from l0.observability.events import ObservabilityEvent
from l0.observability.events import ObservabilityEventType as T
from l0.testing import FakeClock, delay, fail, hang, scripted_factory
from l0.types import State

REQUEST = httpx.Request("POST", "https://api.example.test/v1/chat/completions")


def rate_limit_error(retry_after: float | None) -> openai.RateLimitError:
    headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
    response = httpx.Response(429, request=REQUEST, headers=headers)
    return openai.RateLimitError("rate limited", response=response, body=None)


def no_wait_retry(**kwargs: Any) -> l0.Retry:
    return l0.Retry(base_delay=0.0, max_delay=0.0, rng=random.Random(0), **kwargs)


def banned_word_rule(word: str) -> GuardrailRule:
    def check(state: State, delta: str) -> list[GuardrailViolation]:
        if word in delta:
            return [GuardrailViolation(rule="banned", message=f"contains {word!r}")]
        return []

    return GuardrailRule(name="banned", check=check)


def must_end_with_rule(suffix: str) -> GuardrailRule:
    """A completion check: the whole output must end with ``suffix``."""

    def check(state: State) -> list[GuardrailViolation]:
        if not state.content.endswith(suffix):
            return [GuardrailViolation(rule="ending", message=f"does not end with {suffix!r}")]
        return []

    return GuardrailRule(name="ending", check=check, streaming=False)


def texts(events: list[l0.Event]) -> list[str]:
    return [e.text or "" for e in events if e.is_token]


@pytest.fixture(autouse=True)
def clean_cooldowns() -> Iterator[None]:
    cooldowns.clear()
    yield
    cooldowns.clear()


@pytest.fixture
def spans(otel: Any) -> Iterator[InMemorySpanExporter]:
    """l0's finished spans (the shared ``otel`` fixture's in-memory exporter); on the way out,
    every span that started must have ended."""
    exporter: InMemorySpanExporter = otel.spans
    yield exporter
    assert len(otel.started) == len(otel.ended)


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def only(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    [span] = [s for s in spans if s.name == name]
    return span


def outcome(span: ReadableSpan) -> Any:
    assert span.attributes is not None
    return span.attributes.get("l0.outcome")


def our_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("l0.")]


async def settle_loop() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


# === race ==================================================================================


async def test_race_the_first_valid_token_wins_and_nothing_is_lost() -> None:
    clock = FakeClock()
    slow = scripted_factory([delay(2), "slow"], clock=clock)
    fast = scripted_factory([delay(1), "fa", "st"], clock=clock)
    result = await race([slow, fast], clock=clock)
    assert result.winner_index == 1
    assert result.state.winner_index == 1
    assert isinstance(result.state, RaceState)
    events = [e async for e in result]
    assert texts(events) == ["fa", "st"]
    assert events[-1].is_complete
    assert result.state.content == "fast"
    assert [c.outcome for c in result.candidates] == ["lost", "won"]
    assert result.candidates[1].decided_after == 1.0
    # The loser was stopped at once, its stream closed, its state marked.
    assert slow.streams[0].closed
    assert result.candidates[0].state.aborted
    assert result.candidates[0].state.winner_index == 1


async def test_race_a_tie_at_the_same_instant_goes_to_the_lower_index() -> None:
    clock = FakeClock()
    # Both produce at t=1. Candidate 1's timer was set first (at t=0), candidate 0's at t=0.5,
    # so candidate 1's coroutine runs first: the winner must not depend on that.
    first = scripted_factory([delay(0.5), delay(0.5), "zero"], clock=clock)
    second = scripted_factory([delay(1), "one"], clock=clock)
    result = await race([first, second], clock=clock)
    assert result.winner_index == 0
    assert await result.read() == "zero"
    assert result.candidates[1].outcome == "lost"
    assert result.candidates[1].decided_after == 1.0


async def test_race_a_fast_candidate_failing_guardrails_loses_to_a_slower_valid_one() -> None:
    clock = FakeClock()
    fast_invalid = scripted_factory([delay(0.1), "BANNED words"], clock=clock)
    slow_valid = scripted_factory([delay(1), "fine ", "words"], clock=clock)
    result = await race(
        [fast_invalid, slow_valid],
        guardrails=[banned_word_rule("BANNED")],
        retry=l0.Retry(base_delay=0.5, max_delay=0.5, strategy=l0.BackoffStrategy.FIXED),
        clock=clock,
    )
    assert result.winner_index == 1
    assert await result.read() == "fine words"
    # The invalid one was retried by its own session meanwhile, then stopped.
    assert fast_invalid.calls >= 2
    assert all(s.closed for s in fast_invalid.streams)


async def test_race_until_complete_waits_for_a_valid_completion() -> None:
    clock = FakeClock()
    # Candidate 0 has the first token but completes late; candidate 1 completes first but
    # fails the completion check; candidate 2 completes validly in between.
    early_token = scripted_factory(["a", delay(5), " end."], clock=clock)
    fails_final = scripted_factory([delay(0.5), "no ending"], clock=clock)
    valid = scripted_factory([delay(1), "b", delay(1), " end."], clock=clock)
    result = await race(
        [early_token, fails_final, valid],
        until="complete",
        guardrails=[must_end_with_rule("end.")],
        retry=l0.Retry(base_delay=10, max_delay=10, strategy=l0.BackoffStrategy.FIXED),
        clock=clock,
    )
    assert result.winner_index == 2
    assert result.candidates[2].decided_after == 2.0
    assert await result.read() == "b end."
    assert early_token.streams[0].closed


async def test_race_reset_before_winning_restarts_the_buffer() -> None:
    clock = FakeClock()
    # Attempt 1 delivers "stale" then drops; attempt 2 completes. With until="complete" the
    # caller must see only attempt 2, and no RESET.
    flaky = scripted_factory(["stale", fail(ConnectionResetError("reset"))], ["fresh"], clock=clock)
    slow = scripted_factory([delay(10), "slow"], clock=clock)
    result = await race([flaky, slow], until="complete", retry=no_wait_retry(), clock=clock)
    events = [e async for e in result]
    assert result.winner_index == 0
    assert texts(events) == ["fresh"]
    assert not any(e.is_reset for e in events)
    assert result.state.content == "fresh"


async def test_race_all_candidates_failing_raise_one_error_with_every_failure() -> None:
    clock = FakeClock()
    refused = scripted_factory([fail(rate_limit_error(None))], clock=clock)
    dropped = scripted_factory([fail(ConnectionResetError("reset"))], clock=clock)
    with pytest.raises(RaceError) as raised:
        await race([refused, dropped], retry=no_wait_retry(max_retries=1), clock=clock)
    error = raised.value
    assert isinstance(error, l0.L0Error)
    assert error.code is l0.ErrorCode.ALL_ATTEMPTS_EXHAUSTED
    assert len(error.failures) == 2
    assert {r.code for r in error.failures[0].errors} == {l0.ErrorCode.RATE_LIMITED}
    assert {r.code for r in error.failures[1].errors} == {l0.ErrorCode.NETWORK_ERROR}
    assert len(error.errors) == 4  # two attempts each
    assert "[0]" in error.message and "[1]" in error.message


async def test_race_one_failing_candidate_does_not_stop_the_others() -> None:
    clock = FakeClock()
    broken = scripted_factory(
        [
            fail(
                openai.AuthenticationError(
                    "no", response=httpx.Response(401, request=REQUEST), body=None
                )
            )
        ],
        clock=clock,
    )
    ok = scripted_factory([delay(3), "ok"], clock=clock)
    result = await race([broken, ok], clock=clock)
    assert result.winner_index == 1
    assert [c.outcome for c in result.candidates] == ["failed", "won"]
    assert result.candidates[0].error is not None
    assert result.candidates[0].error.code is l0.ErrorCode.AUTH_ERROR


async def test_race_losers_hanging_mid_request_are_closed() -> None:
    clock = FakeClock()
    hanging = scripted_factory([hang()], clock=clock)
    stalled = scripted_factory(["x", hang()], clock=clock)
    quick = scripted_factory([delay(0.2), "quick"], clock=clock)
    # `stalled` has its first token at t=0: with first_token it would win, so race on complete.
    result = await race(
        [hanging, stalled, quick],
        until="complete",
        timeout=l0.Timeout(initial_token=None, inter_token=None),
        clock=clock,
    )
    assert result.winner_index == 2
    assert hanging.streams[0].closed and stalled.streams[0].closed
    assert [c.state.aborted for c in result.candidates] == [True, True, False]
    await result.read()
    assert our_tasks() == []


async def test_race_caller_cancellation_stops_every_candidate() -> None:
    clock = FakeClock()
    a = scripted_factory([hang()], clock=clock)
    b = scripted_factory([hang()], clock=clock)
    task = asyncio.create_task(
        race([a, b], timeout=l0.Timeout(initial_token=None, inter_token=None), clock=clock)
    )
    await settle_loop()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert a.streams[0].closed and b.streams[0].closed
    assert our_tasks() == []


async def test_race_break_early_closes_the_winner(spans: InMemorySpanExporter) -> None:
    clock = FakeClock()
    winner = scripted_factory(["a", "b", "c"], clock=clock)
    result = await race([winner], clock=clock)
    async for event in result:
        if event.is_token:
            break
    await settle_loop()
    assert winner.streams[0].closed
    finished = list(spans.get_finished_spans())
    assert outcome(only(finished, "l0.race")) == "cancelled"
    assert outcome(only(finished, "l0.session")) == "cancelled"


async def test_race_result_dropped_unread_ends_every_span(spans: InMemorySpanExporter) -> None:
    clock = FakeClock()
    factory = scripted_factory(["a", "b"], clock=clock)
    result = await race([factory], clock=clock)
    del result
    gc.collect()
    await settle_loop()
    finished = list(spans.get_finished_spans())
    assert outcome(only(finished, "l0.race")) == "abandoned"
    assert outcome(only(finished, "l0.session")) == "cancelled"
    assert factory.streams[0].closed


async def test_race_span_tree_and_events(spans: InMemorySpanExporter) -> None:
    clock = FakeClock()
    seen: list[ObservabilityEvent] = []
    slow = scripted_factory([delay(2), "slow"], clock=clock)
    fast = scripted_factory([delay(1), "fast"], clock=clock)
    result = await race([slow, fast], clock=clock, on_event=seen.append, meta={"user": "u1"})
    assert await result.read() == "fast"

    finished = list(spans.get_finished_spans())
    race_span = only(finished, "l0.race")
    sessions = children(finished, race_span)
    assert sorted(s.name for s in sessions) == ["l0.session", "l0.session"]
    by_id = {s.attributes["l0.stream.id"]: s for s in sessions if s.attributes}
    assert outcome(by_id[result.candidates[0].stream_id]) == "cancelled"
    assert outcome(by_id[result.candidates[1].stream_id]) == "completed"
    assert outcome(race_span) == "completed"
    assert race_span.attributes is not None
    assert race_span.attributes["l0.race.winner_index"] == 1
    assert race_span.attributes["l0.race.candidates"] == 2
    assert race_span.attributes["l0.meta.user"] == "u1"
    assert [e.name for e in race_span.events] == ["l0.race.candidate"] * 2

    race_events = [e for e in seen if e.stream_id == result.race_id]
    assert [e.type for e in race_events] == [T.RACE_START, T.RACE_WINNER, T.RACE_END]
    assert race_events[1].data["winner_index"] == 1
    assert race_events[2].data["outcome"] == "completed"
    # The candidates' own session events reach the same callback.
    assert {e.stream_id for e in seen if e.type is T.SESSION_START} == {
        c.stream_id for c in result.candidates
    }


async def test_race_abort_and_aclose_end_the_race() -> None:
    clock = FakeClock()
    factory = scripted_factory(["a", delay(1), "b"], clock=clock)
    result = await race([factory], clock=clock)
    first = await result.__anext__()
    assert first.text == "a"
    result.abort()
    assert [e async for e in result] == []
    assert result.state.aborted
    unread = scripted_factory(["x", "y"], clock=clock)
    async with await race([unread], clock=clock) as second:
        pass
    assert second.state.aborted
    assert unread.streams[0].closed


def test_race_rejects_bad_input() -> None:
    with pytest.raises(l0.ConfigError, match="factories"):
        asyncio.run(race([]))
    with pytest.raises(l0.ConfigError, match="until"):
        asyncio.run(race([lambda: None], until="first_byte"))  # type: ignore[arg-type]


# === parallel / batched ====================================================================


async def test_parallel_results_in_input_order_with_the_limit_honoured() -> None:
    clock = FakeClock()
    running = peak = 0

    def job(i: int, seconds: float) -> Any:
        async def work() -> int:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await clock.sleep(seconds)
            running -= 1
            return i * 10

        return work

    durations = [3, 1, 2, 1, 1]
    result = await parallel(
        [job(i, d) for i, d in enumerate(durations)], concurrency=2, clock=clock
    )
    assert result.values == [0, 10, 20, 30, 40]
    assert [o.index for o in result] == [0, 1, 2, 3, 4]
    assert peak == 2
    assert result.ok and result.succeeded == 5
    # 2 slots: 0 runs 0→3; 1 runs 0→1, then 2 runs 1→3, 3 runs 3→4, 4 runs 3→4.
    assert clock.now() == 4


async def test_parallel_collects_failures_and_reports_progress() -> None:
    clock = FakeClock()
    progress: list[l0.multi.Progress] = []

    async def ok() -> str:
        return "ok"

    async def broken() -> str:
        raise ValueError("bad input")

    result = await parallel([ok, broken, ok], on_progress=progress.append, clock=clock)
    assert [o.status for o in result] == ["succeeded", "failed", "succeeded"]
    assert isinstance(result[1].error, ValueError)
    assert result[1].calls == 1  # not transient: not retried
    assert result.values == ["ok", None, "ok"]
    assert [p.finished for p in progress] == [1, 2, 3]
    assert progress[-1].succeeded == 2 and progress[-1].failed == 1
    assert not result.ok


async def test_parallel_fail_fast_cancels_the_rest() -> None:
    clock = FakeClock()
    started: list[int] = []

    def job(i: int) -> Any:
        async def work() -> int:
            started.append(i)
            await clock.sleep(5)
            return i

        return work

    async def broken() -> int:
        await clock.sleep(1)
        raise ValueError("boom")

    with pytest.raises(ParallelError) as raised:
        await parallel([job(0), broken, job(2), job(3)], concurrency=3, fail_fast=True, clock=clock)
    error = raised.value
    assert error.index == 1
    assert isinstance(error.__cause__, ValueError)
    assert [o.status for o in error.result] == ["cancelled", "failed", "cancelled", "cancelled"]
    assert error.result[3].calls == 0  # never started
    assert started == [0, 2]
    assert our_tasks() == []


async def test_parallel_reads_sessions_and_streams() -> None:
    clock = FakeClock()
    session_factory = scripted_factory(["from ", "session"], clock=clock)
    stream_task = scripted_factory(
        ["part", fail(ConnectionResetError("drop"))], ["whole ", "stream"], clock=clock
    )
    result = await parallel(
        [
            lambda: l0.run(stream=session_factory, clock=clock),
            lambda: stream_task(None),
            lambda: {"plain": "value"},
        ],
        retry=no_wait_retry(),
        clock=clock,
    )
    assert result.values == ["from session", "whole stream", {"plain": "value"}]
    # The raw stream was read through a session that called the task again after the drop.
    assert stream_task.calls == 2
    state = result[1].state
    assert state is not None and state.network_retry_count == 1
    assert result[0].state is not None and result[0].state.completed


async def test_parallel_retries_a_transient_failure_of_the_task() -> None:
    clock = FakeClock()
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise rate_limit_error(2.0)
        return "done"

    result = await parallel([flaky], clock=clock)
    assert result.values == ["done"]
    assert result[0].calls == 2
    assert clock.now() == 2.0  # Retry-After honoured


async def test_parallel_caller_cancellation_leaves_no_task_behind() -> None:
    clock = FakeClock()
    factories = [scripted_factory(["a", hang()], clock=clock) for _ in range(3)]
    call = asyncio.create_task(
        parallel(
            [
                lambda f=f: l0.run(stream=f, timeout=l0.Timeout(None, None), clock=clock)
                for f in factories
            ],
            concurrency=2,
            clock=clock,
        )
    )
    await settle_loop()
    assert len(our_tasks()) == 2
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert our_tasks() == []
    assert [f.calls for f in factories] == [1, 1, 0]
    assert all(f.streams[0].closed for f in factories[:2])


async def test_batched_runs_batch_by_batch() -> None:
    clock = FakeClock()
    starts: dict[str, float] = {}

    async def handle(item: str) -> str:
        starts[item] = clock.now()
        await clock.sleep({"a": 1, "b": 3, "c": 1, "d": 1, "e": 1}[item])
        return item.upper()

    result = await batched(
        items=["a", "b", "c", "d", "e"], handler=handle, batch_size=2, clock=clock
    )
    assert result.values == ["A", "B", "C", "D", "E"]
    # "c" waits for the whole first batch ("b" ends at 3), not just for a free slot.
    assert starts == {"a": 0, "b": 0, "c": 3, "d": 3, "e": 4}


async def test_parallel_span_tree(spans: InMemorySpanExporter) -> None:
    clock = FakeClock()
    seen: list[ObservabilityEvent] = []
    factories = [scripted_factory([f"t{i}"], clock=clock) for i in range(3)]
    result = await parallel(
        [lambda f=f: l0.run(stream=f, clock=clock) for f in factories],
        concurrency=2,
        on_event=seen.append,
        clock=clock,
    )
    assert result.values == ["t0", "t1", "t2"]
    finished = list(spans.get_finished_spans())
    parent = only(finished, "l0.parallel")
    assert [s.name for s in children(finished, parent)] == ["l0.session"] * 3
    assert outcome(parent) == "completed"
    assert parent.attributes is not None
    assert parent.attributes["l0.parallel.succeeded"] == 3
    assert parent.attributes["l0.parallel.concurrency"] == 2
    assert [e.type for e in seen] == [T.PARALLEL_START, T.PARALLEL_END]
    assert seen[1].data["succeeded"] == 3


def test_parallel_rejects_bad_input() -> None:
    with pytest.raises(l0.ConfigError, match="concurrency"):
        asyncio.run(parallel([lambda: 1], concurrency=0))
    with pytest.raises(l0.ConfigError, match="tasks"):
        asyncio.run(parallel(["not callable"]))  # type: ignore[list-item]
    with pytest.raises(l0.ConfigError, match="rate_limit_key"):
        asyncio.run(parallel([lambda: 1], rate_limit_key=["a", "b"]))
    with pytest.raises(l0.ConfigError, match="batch_size"):
        asyncio.run(batched(items=[1], handler=lambda x: x, batch_size=0))


# === the shared rate-limit cooldown ========================================================


async def test_cooldown_registry_publishes_waits_and_expires() -> None:
    clock = FakeClock()
    registry = Cooldowns()
    registry.publish("k", 3.0, clock)
    registry.publish("k", 1.0, clock)  # a shorter one does not shorten it
    assert registry.remaining("k") == 3.0
    assert registry.active() == {"k": 3.0}
    assert await registry.wait("k", clock) == 3.0
    assert registry.remaining("k") == 0.0
    assert await registry.wait("k", clock) == 0.0
    assert registry.note_failure("k", rate_limit_error(2.5), clock) == 2.5
    assert registry.note_failure("k", rate_limit_error(None), clock) == 0.0  # no Retry-After
    assert registry.note_failure("k", ConnectionResetError(), clock) == 0.0
    assert registry.note_failure("k", rate_limit_error(500), clock, cap=10) == 10.0
    assert registry.note_failure(None, rate_limit_error(1), clock) == 0.0
    registry.clear("k")
    assert registry.active() == {}


async def test_parallel_tasks_for_the_same_target_wait_out_a_429() -> None:
    clock = FakeClock()
    calls: list[tuple[str, float]] = []

    def job(name: str, first_error: Exception | None = None) -> Any:
        async def work() -> str:
            calls.append((name, clock.now()))
            if first_error is not None and len([c for c in calls if c[0] == name]) == 1:
                raise first_error
            await clock.sleep(1)
            return name

        return work

    result = await parallel(
        [job("a", rate_limit_error(5)), job("b"), job("c"), job("d")],
        concurrency=1,
        rate_limit_key="openai:gpt-4o",
        retry=l0.Retry(base_delay=0.1, max_delay=0.1, strategy=l0.BackoffStrategy.FIXED),
        clock=clock,
    )
    assert result.values == ["a", "b", "c", "d"]
    # "a" got a 429 at t=0 saying "wait 5 s": its retry and everyone after waited for it.
    assert calls == [("a", 0.0), ("a", 5.0), ("b", 6.0), ("c", 7.0), ("d", 8.0)]
    assert result[0].calls == 2


async def test_a_429_holds_back_tasks_already_waiting_on_other_keys_only_for_that_key() -> None:
    clock = FakeClock()
    calls: list[tuple[str, float]] = []
    cooldowns.publish("busy", 4.0, clock)

    def job(name: str) -> Any:
        async def work() -> str:
            calls.append((name, clock.now()))
            return name

        return work

    result = await parallel([job("a"), job("b")], rate_limit_key=["busy", "other"], clock=clock)
    assert result.values == ["a", "b"]
    assert sorted(calls, key=lambda c: c[1]) == [("b", 0.0), ("a", 4.0)]
    assert result[0].waited == 4.0 and result[1].waited == 0.0


async def test_sessions_started_by_a_task_see_its_rate_limit_key() -> None:
    clock = FakeClock()
    keys: list[str | None] = []

    async def task() -> None:
        keys.append(current_rate_limit_key())

    await parallel([task, task], rate_limit_key=["k1", None], clock=clock)
    assert keys == ["k1", None]
    assert current_rate_limit_key() is None


async def test_rate_limited_factory_publishes_and_waits() -> None:
    clock = FakeClock()
    limited = scripted_factory([fail(rate_limit_error(3))], ["ok"], clock=clock)
    other = scripted_factory(["other"], clock=clock)
    first = await l0.run(
        stream=rate_limited("k", limited, clock=clock), clock=clock, retry=no_wait_retry()
    )
    assert await first.read() == "ok"
    assert clock.now() == 3.0  # the session's own retry honoured Retry-After
    cooldowns.publish("k", 2.0, clock)
    second = await l0.run(stream=rate_limited("k", other, clock=clock), clock=clock)
    assert await second.read() == "other"
    assert clock.now() == 5.0


async def test_retries_inside_sessions_of_the_same_key_wait_out_a_429() -> None:
    clock = FakeClock()
    calls: list[tuple[str, float]] = []

    def recorded(name: str, factory: Any) -> Any:
        def open_stream() -> Any:
            calls.append((name, clock.now()))
            return factory(None)

        return open_stream

    refused = scripted_factory([fail(rate_limit_error(5))], ["a"], clock=clock)
    dropped = scripted_factory([delay(1), "x", fail(ConnectionResetError())], ["b"], clock=clock)
    result = await parallel(
        [
            lambda: l0.run(stream=recorded("a", refused), retry=no_wait_retry(), clock=clock),
            lambda: l0.run(stream=recorded("b", dropped), retry=no_wait_retry(), clock=clock),
        ],
        rate_limit_key="k",
        clock=clock,
    )
    assert result.values == ["a", "b"]
    # b's connection dropped at t=1, while a's 429 (t=0, Retry-After 5) was in force: b's
    # session held its retry until t=5 instead of retrying at once.
    assert ("b", 5.0) in calls


# === pool ==================================================================================


async def test_pool_submit_drain_close_and_stats() -> None:
    clock = FakeClock()
    order: list[int] = []

    def job(i: int, fails: bool = False) -> Any:
        async def work() -> int:
            order.append(i)
            await clock.sleep(1)
            if fails:
                raise ValueError("no")
            return i

        return work

    p = pool(workers=2, clock=clock)
    handles = [p.submit(job(i, fails=(i == 2))) for i in range(5)]
    await asyncio.sleep(0)
    stats = p.stats
    assert (stats.submitted, stats.running, stats.queued) == (5, 2, 3)
    first = await handles[0]
    assert first.ok and first.value == 0
    outcomes = await p.drain()
    assert [o.index for o in outcomes] == [0, 1, 2, 3, 4]
    assert [o.status for o in outcomes] == [
        "succeeded",
        "succeeded",
        "failed",
        "succeeded",
        "succeeded",
    ]
    assert order == [0, 1, 2, 3, 4]  # FIFO
    assert await p.drain() == []
    stats = p.stats
    assert (stats.succeeded, stats.failed, stats.cancelled, stats.running, stats.queued) == (
        4,
        1,
        0,
        0,
        0,
    )
    p.submit(job(9))
    await p.close()
    assert [o.value for o in await p.drain()] == [9]
    with pytest.raises(PoolClosedError):
        p.submit(job(10))


async def test_pool_close_with_cancel_and_caller_cancellation() -> None:
    clock = FakeClock()
    p = pool(workers=1, clock=clock)
    for _ in range(3):
        p.submit(lambda: clock.hang())
    await asyncio.sleep(0)
    await p.close(cancel=True)
    assert p.stats.cancelled == 3
    assert our_tasks() == []

    q = pool(workers=2, clock=clock)
    for _ in range(3):
        q.submit(lambda: clock.hang())
    closing = asyncio.create_task(q.close())
    await settle_loop()
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    assert q.stats.cancelled == 3
    assert our_tasks() == []


async def test_pool_as_context_manager_with_per_task_keys() -> None:
    clock = FakeClock()
    keys: list[str | None] = []

    async def task() -> None:
        keys.append(current_rate_limit_key())

    async with pool(workers=2, rate_limit_key="default", clock=clock) as p:
        p.submit(task)
        p.submit(task, key="special")
        p.submit(task, key=None)
    assert keys == ["default", "special", None]


# === consensus =============================================================================


def values(*outputs: Any) -> list[Any]:
    """Tasks returning the given outputs."""
    return [lambda v=v: v for v in outputs]


async def test_consensus_majority_on_normalized_text() -> None:
    result = await consensus(values("Paris", "  paris ", "Lyon"), strategy="majority")
    assert result.value == "Paris"
    assert result.agreement == pytest.approx(2 / 3)
    assert result.confidence == pytest.approx((2 + 1) / (3 + 2))
    [disagreement] = result.disagreements
    assert disagreement.field is None
    assert [(v.value, v.indices) for v in disagreement.votes] == [("Paris", (0, 1)), ("Lyon", (2,))]


async def test_consensus_majority_needs_more_than_half() -> None:
    with pytest.raises(ConsensusError) as raised:
        await consensus(values("a", "b", "c", "a"), strategy="majority")
    assert raised.value.reason == "no_majority"
    assert isinstance(raised.value, l0.L0Error)


async def test_consensus_unanimous_failure_lists_the_disagreement() -> None:
    with pytest.raises(ConsensusError) as raised:
        await consensus(values("yes", "yes", "no"), strategy="unanimous")
    error = raised.value
    assert error.reason == "disagreement"
    [disagreement] = error.disagreements
    assert [(v.value, v.weight) for v in disagreement.votes] == [("yes", 2.0), ("no", 1.0)]
    unanimous = await consensus(values("Yes", "yes"), strategy="unanimous")
    assert unanimous.agreement == 1.0 and unanimous.disagreements == ()


async def test_consensus_best_is_the_heaviest_first_on_ties() -> None:
    result = await consensus(values("a", "b", "c"), strategy="best", weights=[1, 2, 2])
    assert result.value == "b"
    assert result.agreement == pytest.approx(2 / 5)
    tie = await consensus(values("x", "y"), strategy="best")
    assert tie.value == "x"


async def test_consensus_weights_decide_the_majority() -> None:
    result = await consensus(values("a", "b", "b"), weights=[3, 1, 1])
    assert result.value == "a"
    assert result.agreement == pytest.approx(3 / 5)


async def test_consensus_field_level_voting() -> None:
    result = await consensus(
        values(
            {"name": "Ada", "year": 1815, "field": "math"},
            {"name": "ada ", "year": 1816, "field": "math"},
            {"name": "Ada", "year": 1815, "field": "poetry"},
        )
    )
    assert result.value == {"name": "Ada", "year": 1815, "field": "math"}
    assert {d.field for d in result.disagreements} == {"year", "field"}
    year = next(d for d in result.disagreements if d.field == "year")
    assert [(v.value, v.indices) for v in year.votes] == [(1815, (0, 2)), (1816, (1,))]
    assert result.fields["name"].agreement == 1.0
    assert result.fields["year"].agreement == pytest.approx(2 / 3)
    assert result.agreement == pytest.approx(2 / 3)  # the least agreed field
    assert result.confidence == result.fields["year"].confidence


async def test_consensus_different_field_values_never_agree() -> None:
    # The reference compared string reprs by similarity, so these "agreed". They do not.
    with pytest.raises(ConsensusError) as raised:
        await consensus(values({"a": 1, "b": 2}, {"a": 1, "b": 3}), strategy="unanimous")
    [disagreement] = raised.value.disagreements
    assert disagreement.field == "b"
    assert [v.value for v in disagreement.votes] == [2, 3]
    with pytest.raises(ConsensusError, match="no majority on field"):
        await consensus(values({"b": 2}, {"b": 3}), strategy="majority", threshold=0.5)
    for left, right in [(True, 1), (1, "1"), ([1, 2], [2, 1]), (None, 0), ({"x": 1}, {"x": 1.5})]:
        with pytest.raises(ConsensusError):
            await consensus(values({"v": left}, {"v": right}), strategy="unanimous")


async def test_consensus_missing_fields_are_votes_for_leaving_them_out() -> None:
    result = await consensus(values({"a": 1, "extra": True}, {"a": 1}, {"a": 1}))
    assert result.value == {"a": 1}
    assert result.fields["extra"].value is MISSING


async def test_consensus_text_threshold_but_numbers_must_match() -> None:
    similar = await consensus(
        values("The river is long and wide", "The river is long and wide.", "the river is wide"),
        threshold=0.9,
    )
    assert similar.agreement == pytest.approx(2 / 3)
    with pytest.raises(ConsensusError):
        await consensus(
            values("The answer is 42", "The answer is 43"), strategy="unanimous", threshold=0.5
        )


async def test_consensus_a_single_survivor_is_never_certain() -> None:
    async def broken() -> str:
        raise ValueError("model down")

    result = await consensus([lambda: "only", broken, broken], strategy="unanimous")
    assert result.value == "only"
    assert result.agreement == 1.0
    assert result.confidence < 1.0
    assert result.confidence == pytest.approx(2 / 3)
    assert [o.ok for o in result.outputs] == [True, False, False]


async def test_consensus_with_a_schema_parses_and_votes_fields() -> None:
    class City(BaseModel):
        name: str
        population: int

    result = await consensus(
        values(
            '{"name": "Oslo", "population": 700000}',
            '```json\n{"name": "Oslo", "population": 700000,}\n```',
            {"name": "Oslo", "population": 690000},
            "not json at all",
        ),
        schema=City,
    )
    assert result.value == City(name="Oslo", population=700000)
    assert [o.ok for o in result.outputs] == [True, True, True, False]
    assert result.fields["population"].agreement == pytest.approx(2 / 3)


async def test_consensus_with_no_output_raises() -> None:
    async def broken() -> str:
        raise ValueError("down")

    with pytest.raises(ConsensusError) as raised:
        await consensus([broken, broken])
    assert raised.value.reason == "no_outputs"
    assert raised.value.code is l0.ErrorCode.ALL_ATTEMPTS_EXHAUSTED


async def test_consensus_over_sessions_span_tree(spans: InMemorySpanExporter) -> None:
    clock = FakeClock()
    seen: list[ObservabilityEvent] = []
    factories = [scripted_factory([text], clock=clock) for text in ("yes", "yes", "no")]
    result = await consensus(
        [lambda f=f: l0.run(stream=f, clock=clock) for f in factories],
        on_event=seen.append,
        clock=clock,
    )
    assert result.value == "yes"
    assert all(o.state is not None and o.state.completed for o in result.outputs)
    finished = list(spans.get_finished_spans())
    parent = only(finished, "l0.consensus")
    assert [s.name for s in children(finished, parent)] == ["l0.session"] * 3
    assert parent.attributes is not None
    assert parent.attributes["l0.consensus.strategy"] == "majority"
    assert parent.attributes["l0.consensus.disagreements"] == 1
    assert [e.type for e in seen] == [T.CONSENSUS_START, T.CONSENSUS_END]
    assert seen[1].data["confidence"] == pytest.approx(0.6)

    spans.clear()
    with pytest.raises(ConsensusError):
        await consensus(values("a", "b"), strategy="unanimous")
    failed = only(list(spans.get_finished_spans()), "l0.consensus")
    assert outcome(failed) == "error"


def test_consensus_rejects_bad_input() -> None:
    with pytest.raises(l0.ConfigError, match="strategy"):
        asyncio.run(consensus(values("a"), strategy="plurality"))  # type: ignore[arg-type]
    with pytest.raises(l0.ConfigError, match="threshold"):
        asyncio.run(consensus(values("a"), threshold=0))
    with pytest.raises(l0.ConfigError, match="weights"):
        asyncio.run(consensus(values("a", "b"), weights=[1]))
    with pytest.raises(l0.ConfigError, match="weights"):
        asyncio.run(consensus(values("a"), weights=[-1]))
    with pytest.raises(l0.ConfigError, match="schema"):
        asyncio.run(consensus(values("a"), schema=dict))  # type: ignore[arg-type]
