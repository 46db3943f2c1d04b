"""Race, parallel and consensus with the real OpenAI SDK against the chaos server.

Timing differences come from the server's injected delays (each at most 0.3 s of real time);
cleanup is checked on the server's own counters (``disconnected``, ``open``).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import openai
import pytest
from pydantic import BaseModel

import l0
from l0.chaos import ChaosServer
from l0.guardrails.base import GuardrailRule, GuardrailViolation
from l0.guardrails.rules import pattern_rule
from l0.multi import ConsensusError, consensus, cooldowns, parallel, race, rate_limited
from l0.runtime.clock import SystemClock
from l0.types import State

pytestmark = pytest.mark.integration

MESSAGES: list[Any] = [{"role": "user", "content": "Name a city."}]


@pytest.fixture
async def server() -> AsyncIterator[ChaosServer]:
    cooldowns.clear()
    async with ChaosServer(seed=1) as running:
        yield running
    cooldowns.clear()


@pytest.fixture
async def client(server: ChaosServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=server.base_url, api_key="x", max_retries=0, timeout=5
    ) as made:
        yield made


def model(directives: str, base: str = "gpt-4o-mini") -> tuple[str, str]:
    """A model string with its own scenario counter, and that counter's name."""
    scenario = f"s{uuid.uuid4().hex[:8]}"
    spec = f"{directives},scenario={scenario}" if directives else f"scenario={scenario}"
    return f"{base}+{spec}", scenario


def saying(text: str) -> str:
    return f"text={quote(text, safe='')}"


def stream(client: openai.AsyncOpenAI, name: str) -> Callable[[], Any]:
    def factory() -> Any:
        return client.chat.completions.create(model=name, messages=MESSAGES, stream=True)

    return factory


def counters(server: ChaosServer, scenario: str) -> dict[str, int]:
    found: dict[str, int] = server.stats()["scenarios"].get(scenario, {})
    return found


async def eventually(
    server: ChaosServer, scenario: str, check: Callable[[dict[str, int]], bool]
) -> dict[str, int]:
    """Poll the counters until ``check`` holds: the server notices a hang-up asynchronously."""
    deadline = time.monotonic() + 3
    while True:
        found = counters(server, scenario)
        if (found and check(found)) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.01)


def banned_word_rule(word: str) -> GuardrailRule:
    def check(state: State, delta: str) -> list[GuardrailViolation]:
        if word in delta:
            return [GuardrailViolation(rule="banned", message=f"contains {word!r}")]
        return []

    return GuardrailRule(name="banned", check=check)


# --- race ----------------------------------------------------------------------------------


async def test_race_the_slower_first_byte_loses_and_is_disconnected(
    server: ChaosServer, client: openai.AsyncOpenAI, otel: Any
) -> None:
    slow, slow_id = model("ttfb=0.3", base="gpt-4o")
    stalled, stalled_id = model("stall@1", base="gpt-4o")  # one chunk, then silence
    fast, fast_id = model("ttfb=0.05," + saying("Oslo is the answer"))
    result = await race(
        [stream(client, slow), stream(client, stalled), stream(client, fast)],
        until="complete",
        timeout=l0.Timeout(initial_token=2, inter_token=2),
    )
    assert result.winner_index == 2
    assert await result.read() == "Oslo is the answer"
    assert result.state.response_model == "gpt-4o-mini"
    assert counters(server, fast_id)["completed"] == 1
    # Both losers' connections were closed by the client, not left to finish.
    for scenario in (slow_id, stalled_id):
        found = await eventually(server, scenario, lambda c: c["disconnected"] == 1)
        assert found["requests"] == 1
        assert found["disconnected"] == 1
        assert found["open"] == 0

    finished = otel.finished()
    [race_span] = otel.named("l0.race")
    sessions = [
        s
        for s in finished
        if s.parent is not None and s.parent.span_id == race_span.context.span_id
    ]
    assert len(sessions) == 3
    outcomes = sorted(s.attributes["l0.outcome"] for s in sessions)
    assert outcomes == ["cancelled", "cancelled", "completed"]
    assert {s.name for s in otel.named("l0.attempt")} == {"l0.attempt"}
    assert len(otel.started) == len(otel.ended)


async def test_race_first_token_goes_to_the_earliest_first_byte(
    server: ChaosServer, client: openai.AsyncOpenAI
) -> None:
    late, late_id = model("ttfb=0.25")
    early, _ = model("ttfb=0.02", base="gpt-4o")
    result = await race([stream(client, late), stream(client, early)])
    assert result.winner_index == 1
    events = [e async for e in result]
    assert events[0].is_token and events[-1].is_complete
    assert "".join(e.text or "" for e in events if e.is_token) == result.state.content
    await eventually(server, late_id, lambda c: c["disconnected"] == 1)
    assert counters(server, late_id)["open"] == 0


async def test_race_a_fast_candidate_failing_guardrails_loses_to_a_slower_valid_one(
    server: ChaosServer, client: openai.AsyncOpenAI
) -> None:
    invalid, invalid_id = model(saying("BANNED words first"))
    valid, _ = model("ttfb=0.15," + saying("fine words"))
    result = await race(
        [stream(client, invalid), stream(client, valid)],
        guardrails=[banned_word_rule("BANNED")],
        retry=l0.Retry(base_delay=0.3, max_delay=0.3, strategy=l0.BackoffStrategy.FIXED),
    )
    assert result.winner_index == 1
    assert await result.read() == "fine words"
    assert result.candidates[0].outcome == "lost"
    assert counters(server, invalid_id)["requests"] >= 1


async def test_race_until_complete_rejects_a_fast_stream_that_turns_bad(
    server: ChaosServer, client: openai.AsyncOpenAI
) -> None:
    # "As an AI language model…" is only recognisable after a few chunks: its first token
    # is fine, so this race has to be decided on completion.
    meta_talk, _ = model("asai")
    valid, _ = model("ttfb=0.1," + saying("Bergen is rainy"))
    result = await race(
        [stream(client, meta_talk), stream(client, valid)],
        until="complete",
        guardrails=[pattern_rule(severity="error")],
        retry=l0.Retry(base_delay=0.3, max_delay=0.3, strategy=l0.BackoffStrategy.FIXED),
    )
    assert result.winner_index == 1
    assert await result.read() == "Bergen is rainy"


# --- parallel and the shared cooldown -------------------------------------------------------


async def test_parallel_429_storm_the_other_tasks_wait_out_the_cooldown(
    server: ChaosServer, client: openai.AsyncOpenAI
) -> None:
    storm, storm_id = model("status=429x1,retry=0.3")
    tasks = [stream(client, storm) for _ in range(6)]
    running = asyncio.create_task(parallel(tasks, concurrency=2, rate_limit_key="chaos:storm"))
    # The first request got "429, Retry-After: 0.3". The other in-flight request finished at
    # once, but the tasks after it did not start: they are waiting for the cooldown.
    await asyncio.sleep(0.15)
    during = counters(server, storm_id)
    cooling = cooldowns.remaining("chaos:storm")
    result = await running
    assert during["errors"] == 1
    assert during["requests"] == 2
    assert cooling > 0
    assert result.ok
    after = counters(server, storm_id)
    assert after["requests"] == 7  # 6 tasks + the one retry: nobody hammered the server
    assert after["errors"] == 1
    assert after["completed"] == 6
    assert sum(o.calls for o in result) == 7
    assert sum(1 for o in result if o.waited > 0) >= 1


async def test_sessions_behind_a_rate_limited_factory_share_the_cooldown(
    server: ChaosServer, client: openai.AsyncOpenAI
) -> None:
    storm, storm_id = model("status=429x1,retry=0.2")
    waits: list[float] = []

    class RecordingClock(SystemClock):
        """The real clock, noting every wait l0 asks of it."""

        async def sleep(self, seconds: float) -> None:
            waits.append(seconds)
            await super().sleep(seconds)

    clock = RecordingClock()

    def task() -> Any:
        return l0.run(stream=rate_limited("chaos:gate", stream(client, storm)), clock=clock)

    result = await parallel([task, task, task], concurrency=1)
    assert result.ok
    # The 429's Retry-After (0.2 s) was waited out, once, before the next request.
    assert sum(waits) >= 0.19
    found = counters(server, storm_id)
    assert (found["requests"], found["errors"], found["completed"]) == (4, 1, 3)


async def test_parallel_cancellation_closes_every_connection(
    server: ChaosServer, client: openai.AsyncOpenAI
) -> None:
    stuck, stuck_id = model("stall@2")
    timeout = l0.Timeout(initial_token=5, inter_token=5)
    tasks = [lambda: l0.run(stream=stream(client, stuck), timeout=timeout) for _ in range(5)]
    running = asyncio.create_task(parallel(tasks, concurrency=3))
    await eventually(server, stuck_id, lambda c: c["open"] == 3)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    found = await eventually(server, stuck_id, lambda c: c["disconnected"] == 3)
    assert (found["requests"], found["disconnected"], found["open"]) == (3, 3, 0)
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("l0.")] == []


# --- consensus -----------------------------------------------------------------------------


async def test_consensus_majority_over_real_streams(
    server: ChaosServer, client: openai.AsyncOpenAI, otel: Any
) -> None:
    names = [model(saying(t))[0] for t in ("Paris", "paris", "Lyon")]
    result = await consensus(
        [lambda n=n: l0.run(stream=stream(client, n)) for n in names], strategy="majority"
    )
    assert result.value.casefold() == "paris"
    assert result.agreement == pytest.approx(2 / 3)
    [parent] = otel.named("l0.consensus")
    sessions = [s for s in otel.named("l0.session") if s.parent.span_id == parent.context.span_id]
    assert len(sessions) == 3


class City(BaseModel):
    name: str
    country: str
    population: int


class Pair(BaseModel):
    a: int
    b: int


async def test_consensus_field_level_voting_on_json_outputs(
    server: ChaosServer, client: openai.AsyncOpenAI
) -> None:
    docs = [
        {"name": "Oslo", "country": "Norway", "population": 700000},
        {"name": "Oslo", "country": "Norway", "population": 710000},
        {"name": "Oslo", "country": "Norway", "population": 700000},
    ]
    names = [model(saying(json.dumps(d)))[0] for d in docs]
    result = await consensus([stream(client, n) for n in names], schema=City)
    assert result.value == City(name="Oslo", country="Norway", population=700000)
    [disagreement] = result.disagreements
    assert disagreement.field == "population"
    assert [(v.value, v.indices) for v in disagreement.votes] == [(700000, (0, 2)), (710000, (1,))]

    # Two outputs that differ in a field do not agree on it, however alike their text is.
    split = [model(saying(json.dumps({"a": 1, "b": b})))[0] for b in (2, 3)]
    with pytest.raises(ConsensusError) as raised:
        await consensus([stream(client, n) for n in split], strategy="unanimous", schema=Pair)
    [disagreement] = raised.value.disagreements
    assert disagreement.field == "b"
    assert [v.value for v in disagreement.votes] == [2, 3]
