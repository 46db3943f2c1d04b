"""The fault matrix: every chaos-server fault, through l0.run, with the real clients.

Each case runs with (a) `openai.AsyncOpenAI(base_url=...)` and (b)
`litellm.acompletion(model="openai/...", api_base=...)` and asserts the exact outcome:
recovered by retry (with the request count the server saw), recovered by fallback, or a typed
terminal error with its category and code. For every recovered case the text the consumer
received equals the winning attempt's text exactly: nothing lost, duplicated or mixed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
import pytest

import l0
from l0.chaos import serve_in_thread
from l0.guardrails.rules import pattern_rule, repetition_rule

pytestmark = pytest.mark.integration

MESSAGES = [{"role": "user", "content": "Tell me something."}]
WORDS = 24
C = l0.ErrorCategory
E = l0.ErrorCode


@dataclass(frozen=True)
class Case:
    """One row: a fault, the l0 options, and what must come out.

    ``codes`` are the error codes of the failed attempts, per client when they differ.
    """

    id: str
    directives: str
    outcome: str  # "ok" | "retry" | "fallback" | "error"
    requests: int = 1
    codes: tuple[E, ...] = ()
    litellm_codes: tuple[E, ...] | None = None
    category: C | None = None
    code: E | None = None
    reset: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    text: str = "full"  # "full" | "any": what the consumer must end up with


FAST = l0.Retry(base_delay=0.01, max_delay=0.02)
SHORT = l0.Timeout(initial_token=0.4, inter_token=0.3)

CASES = [
    Case("clean", "", "ok"),
    Case("delay-per-chunk", "delay=0.005", "ok"),
    Case("slow-drip", "drip=0.0005,words=4", "ok"),
    Case("short-stall", "stall@3=0.05", "ok", options={"timeout": SHORT}),
    Case(
        "slow-first-byte",
        "ttfb=1.0x1",
        "retry",
        requests=2,
        codes=(E.INITIAL_TOKEN_TIMEOUT,),
        options={"timeout": SHORT},
    ),
    Case(
        "stall-forever",
        "stall@3x1",
        "retry",
        requests=2,
        codes=(E.INTER_TOKEN_TIMEOUT,),
        reset=True,
        options={"timeout": SHORT},
    ),
    Case("drop", "drop@4x1", "retry", requests=2, codes=(E.NETWORK_ERROR,), reset=True),
    Case(
        "cut",
        "cut@4x1",
        "retry",
        requests=2,
        codes=(E.STREAM_TRUNCATED,),
        reset=True,
        litellm_codes=(E.NETWORK_ERROR,),
    ),
    # LiteLLM reports both as an APIConnectionError (its catch-all) inside a
    # MidStreamFallbackError: NETWORK for it, and retried all the same.
    Case(
        "malformed-sse",
        "badsse@3x1",
        "retry",
        requests=2,
        codes=(E.INVALID_STREAM,),
        litellm_codes=(E.NETWORK_ERROR,),
        reset=True,
    ),
    Case(
        "error-event",
        "fail@3x1",
        "retry",
        requests=2,
        codes=(E.SERVER_ERROR,),
        litellm_codes=(E.NETWORK_ERROR,),
        reset=True,
    ),
    Case("zero-output", "empty x1", "retry", requests=2, codes=(E.ZERO_OUTPUT,)),
    Case(
        "rate-limit",
        "status=429x2,retry=0.15",
        "retry",
        requests=3,
        codes=(E.RATE_LIMITED, E.RATE_LIMITED),
    ),
    Case("500", "status=500x1", "retry", requests=2, codes=(E.SERVER_ERROR,)),
    Case("502", "status=502x1", "retry", requests=2, codes=(E.SERVER_ERROR,)),
    Case("503", "status=503x1", "retry", requests=2, codes=(E.SERVER_ERROR,)),
    Case(
        "504",
        "status=504x1",
        "retry",
        requests=2,
        codes=(E.SERVER_ERROR,),
        litellm_codes=(E.TIMEOUT,),
    ),
    Case("401-fallback", "status=401", "fallback", codes=(E.AUTH_ERROR,)),
    Case("403-fallback", "status=403", "fallback", codes=(E.AUTH_ERROR,)),
    Case(
        "401-terminal",
        "status=401",
        "error",
        category=C.FATAL,
        code=E.AUTH_ERROR,
        codes=(E.AUTH_ERROR,),
    ),
    Case(
        "context-length",
        "status=400",
        "error",
        category=C.PROVIDER,
        code=E.CONTEXT_LENGTH_EXCEEDED,
        codes=(E.CONTEXT_LENGTH_EXCEEDED,),
    ),
    Case(
        "repetition-loop",
        "repeat=12x1",
        "retry",
        requests=2,
        codes=(E.GUARDRAIL_VIOLATION,),
        reset=True,
        options={"guardrails": [repetition_rule()]},
        text="any",
    ),
    Case(
        "as-an-ai",
        "asai x1",
        "retry",
        requests=2,
        codes=(E.GUARDRAIL_VIOLATION,),
        reset=True,
        options={"guardrails": [pattern_rule(severity="error")]},
    ),
    Case("truncated-json", "json,truncate", "ok", text="any"),
]


class Server:
    """The chaos server on its own thread (one for the whole module), and its counters."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def stats(self) -> dict[str, Any]:
        root = self.base_url.removesuffix("/v1")
        counters: dict[str, Any] = httpx.get(f"{root}/_chaos/stats").json()
        return counters


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with serve_in_thread(seed=11) as base_url:
        yield Server(base_url)


@pytest.fixture
async def clients(server: Server) -> AsyncIterator[dict[str, Any]]:
    import litellm

    openai_client = openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0)

    def via_openai(model: str) -> Callable[[], Any]:
        return lambda: openai_client.chat.completions.create(
            model=model,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )

    def via_litellm(model: str) -> Callable[[], Any]:
        return lambda: litellm.acompletion(
            model=f"openai/{model}",
            api_base=server.base_url,
            api_key="test",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            max_retries=0,
        )

    yield {"openai": via_openai, "litellm": via_litellm}
    await openai_client.close()


def _has_content(directives: str) -> bool:
    names = {d.split("=")[0].split("@")[0] for d in directives.replace(" ", "").split(",")}
    return bool(names & {"words", "text", "json", "tool"})


async def expected_text(server: Server, directives: str) -> str:
    """What a clean request with the same content settings says."""
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0)
    content = ",".join(d for d in directives.split(",") if d.split("=")[0] in ("words", "json"))
    model = f"gpt-4o-mini+words={WORDS}" + (f",{content}" if content else "")
    model += f",scenario=expect-{uuid.uuid4().hex[:8]}"
    reply = await client.chat.completions.create(model=model, messages=MESSAGES)
    await client.close()
    return reply.choices[0].message.content or ""


@pytest.mark.parametrize("via", ["openai", "litellm"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_fault(case: Case, via: str, server: Server, clients: dict[str, Any]) -> None:
    factory_for = clients[via]
    scenario = f"{via}-{case.id}-{uuid.uuid4().hex[:6]}"
    content = "" if _has_content(case.directives) else f"words={WORDS}"
    directives = ",".join(
        d for d in (content, case.directives.replace(" ", ""), f"scenario={scenario}") if d
    )
    model = f"gpt-4o-mini+{directives}"
    fallbacks = []
    if case.outcome == "fallback":
        fallbacks = [factory_for(f"gpt-4o-mini+words={WORDS},scenario={scenario}-backup")]
    options: dict[str, Any] = {"retry": FAST, **case.options}
    result = await l0.run(stream=factory_for(model), fallbacks=fallbacks, **options)

    events: list[l0.Event] = []
    error: l0.L0Error | None = None
    started = time.monotonic()
    try:
        async for event in result:
            events.append(event)
    except l0.L0Error as raised:
        error = raised
    elapsed = time.monotonic() - started

    state = result.state
    codes = case.litellm_codes if via == "litellm" and case.litellm_codes else case.codes
    assert tuple(e.code for e in state.errors) == codes, [(e.code, e.message) for e in state.errors]
    stats = server.stats()["scenarios"][scenario]
    assert stats["requests"] == case.requests

    if case.outcome == "error":
        assert error is not None
        assert error.category is case.category
        assert error.code is case.code
        assert events[-1].is_error and events[-1].error is error
        return

    assert error is None, error
    assert state.completed
    assert events[-1].is_complete
    assert any(e.is_reset for e in events) is case.reset
    # What the consumer was shown after the last reset is exactly the final text.
    last_reset = max((i for i, e in enumerate(events) if e.is_reset), default=-1)
    shown = "".join(e.text or "" for e in events[last_reset + 1 :] if e.is_token)
    assert shown == state.content
    if case.text == "full":
        assert state.content == await expected_text(server, case.directives)
    if case.outcome == "fallback":
        assert state.fallback_index == 1
        assert server.stats()["scenarios"][f"{scenario}-backup"]["requests"] == 1
    else:
        assert state.fallback_index == 0
    if case.id == "rate-limit":
        assert elapsed >= 0.3  # two Retry-After: 0.15 waits were honoured
    if via == "openai":
        # Usage propagates from the final chunk (stream_options.include_usage).
        assert state.usage is not None and state.usage.output_tokens


@pytest.mark.parametrize("via", ["openai", "litellm"])
async def test_tool_call_arguments_merge_and_parse(
    via: str, server: Server, clients: dict[str, Any]
) -> None:
    scenario = f"tool-{via}-{uuid.uuid4().hex[:6]}"
    result = await l0.run(stream=clients[via](f"gpt-4o-mini+tool=lookup,scenario={scenario}"))
    events = [e async for e in result]
    calls = [e for e in events if e.is_tool_call]
    assert len(calls) == 1
    assert calls[0].data["name"] == "lookup"
    assert isinstance(calls[0].data["parsed_arguments"], dict)
    deltas = "".join(e.data["arguments"] for e in events if e.is_tool_call_delta)
    assert deltas == calls[0].data["arguments"]
    assert result.state.tool_calls[0].name == "lookup"


@pytest.mark.parametrize("via", ["openai", "litellm"])
async def test_consumer_that_breaks_early_closes_the_connection(
    via: str, server: Server, clients: dict[str, Any]
) -> None:
    scenario = f"break-{via}-{uuid.uuid4().hex[:6]}"
    result = await l0.run(
        stream=clients[via](f"gpt-4o-mini+words=200,delay=0.01,scenario={scenario}")
    )
    async for event in result:
        if event.is_token:
            break
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        stats = server.stats()["scenarios"][scenario]
        if stats["disconnected"] == 1 and stats["open"] == 0:
            break
        await _tick()
    assert stats["disconnected"] == 1
    assert stats["open"] == 0
    assert stats["completed"] == 0
    assert result.state.aborted


async def _tick() -> None:
    import asyncio

    await asyncio.sleep(0.02)
