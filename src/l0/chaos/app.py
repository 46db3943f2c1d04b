"""The chaos server's ASGI app: OpenAI's wire format, with faults injected on request.

Endpoints:

- ``POST /v1/chat/completions`` — SSE exactly as OpenAI streams it (role chunk, content
  chunks, finish chunk, optional usage chunk, ``data: [DONE]``) or one JSON completion;
- ``POST /v1/responses`` — Responses API events (or one JSON response);
- ``GET /v1/models``, ``GET /v1/models/{id}``;
- ``GET /_chaos/stats`` — per-scenario counters; ``POST /_chaos/reset`` — zero them.

Each response is written by a producer task while a watcher task waits for the client to
go away, so a client that closes mid-stream (or during a stall) is noticed and counted at
once instead of when the next write would have failed.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Literal

import orjson

from l0.chaos.content import Reply, compose_reply, make_id, message_text
from l0.chaos.grammar import ChaosGrammarError, Plan, Scenario, parse_scenario

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.types import Message, Receive, Scope, Send

__all__ = [
    "CHAOS_HEADER",
    "SCENARIO_HEADER",
    "STATS_PATH",
    "ChaosState",
    "ScenarioStats",
    "create_app",
]

#: Request header with extra directives (same syntax as after ``+`` in the model name).
CHAOS_HEADER = "x-l0-chaos"
#: Request header naming the counter a request is booked under.
SCENARIO_HEADER = "x-l0-chaos-scenario"
#: Where the counters are served.
STATS_PATH = "/_chaos/stats"

# `created` timestamps are derived, not read from the clock: 2025-01-01T00:00:00Z plus the
# scenario's request number, so the same request sequence gives the same bytes.
_EPOCH = 1_735_689_600
_FINGERPRINT = "fp_l0chaos"
_MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "chaos")

Outcome = Literal["completed", "errors", "dropped", "disconnected"]

# Set in the request's task when the chaos server cuts a connection on purpose: uvicorn then
# logs "ASGI callable returned without completing response" from that same task, and the
# filter below keeps that expected line out of the user's logs.
_DROPPING: contextvars.ContextVar[bool] = contextvars.ContextVar("l0_chaos_dropping", default=False)
_EXPECTED = (
    "ASGI callable returned without completing response.",
    "ASGI callable returned without starting response.",
)


class _ExpectedDropFilter(logging.Filter):
    """Drops uvicorn's error line for connections the chaos server cut deliberately."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (_DROPPING.get() and record.msg in _EXPECTED)


def _install_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _ExpectedDropFilter) for f in logger.filters):
        logger.addFilter(_ExpectedDropFilter())


@dataclass(slots=True)
class ScenarioStats:
    """Counters for one scenario, as served by ``GET /_chaos/stats``.

    Attributes:
        requests: requests received (and understood) for the scenario.
        completed: responses the server finished as planned (HTTP 200, including streams a
            ``cut``/``fail``/``truncate`` fault ended early but cleanly).
        errors: injected HTTP error responses (``status=…``).
        dropped: connections the server dropped on purpose (``drop``, or server shutdown).
        disconnected: responses the client abandoned before the server finished them.
        open: responses being written right now (streams open).
    """

    requests: int = 0
    completed: int = 0
    errors: int = 0
    dropped: int = 0
    disconnected: int = 0
    open: int = 0


class ChaosState:
    """Mutable server state: counters, seed, time scale, and the shutdown signal.

    Lives in ``app.state.chaos``; only touched from the server's event loop.

    Args:
        seed: the default seed for content and ids (a request's ``seed=`` overrides it).
        time_scale: every injected delay is multiplied by this (``0.01`` makes a 3 s stall
            last 30 ms). ``Retry-After`` headers are data, not delays, and are not scaled.
    """

    def __init__(self, *, seed: int = 0, time_scale: float = 1.0) -> None:
        if time_scale < 0:
            raise ValueError(f"time_scale must be >= 0, got {time_scale}")
        self.seed = seed
        self.time_scale = time_scale
        self.scenarios: dict[str, ScenarioStats] = {}
        self.rejected = 0
        self._closed = False
        self._waiters: set[asyncio.Future[bool]] = set()

    def book(self, scenario_id: str) -> tuple[ScenarioStats, int]:
        """Count a request for ``scenario_id``; returns its counters and its 0-based number."""
        stats = self.scenarios.setdefault(scenario_id, ScenarioStats())
        index = stats.requests
        stats.requests += 1
        return stats, index

    async def pause(self, seconds: float | None) -> bool:
        """Sleep ``seconds × time_scale`` (``None``: until shutdown).

        Returns ``False`` when the server is shutting down, so stalled streams end promptly
        instead of holding uvicorn's graceful shutdown hostage.
        """
        if self._closed:
            return False
        if seconds is not None and seconds * self.time_scale <= 0:
            return True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiters.add(waiter)
        timer = (
            loop.call_later(seconds * self.time_scale, _resolve, waiter, True)
            if seconds is not None
            else None
        )
        try:
            return await waiter
        finally:
            if timer is not None:
                timer.cancel()
            self._waiters.discard(waiter)

    def close(self) -> None:
        """Wake every pause with ``False``; call from the server's loop before stopping it."""
        self._closed = True
        for waiter in list(self._waiters):
            _resolve(waiter, False)

    def reset(self) -> None:
        """Zero every counter and restart every ``xN`` window.

        Responses still open keep their ``open`` count and book their outcome when they end:
        they hold their scenario's counters, so those are zeroed in place, not replaced.
        """
        for name, stats in list(self.scenarios.items()):
            if stats.open:
                opened = stats.open
                for counter in fields(stats):
                    setattr(stats, counter.name, 0)
                stats.open = opened
            else:
                del self.scenarios[name]
        self.rejected = 0

    def stats(self) -> dict[str, Any]:
        """The ``GET /_chaos/stats`` document: per-scenario counters and their totals."""
        scenarios = {k: asdict(v) for k, v in self.scenarios.items()}
        total = asdict(ScenarioStats())
        for counters in scenarios.values():
            for name, value in counters.items():
                total[name] += value
        total["rejected"] = self.rejected
        return {
            "seed": self.seed,
            "time_scale": self.time_scale,
            "scenarios": scenarios,
            "total": total,
        }


def _resolve(waiter: asyncio.Future[bool], value: bool) -> None:
    if not waiter.done():
        waiter.set_result(value)


# --- the response writer ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Pause:
    seconds: float | None


class _Drop:
    """Marker: stop writing and close the connection without ending the body."""


_DROP = _Drop()
Step = bytes | _Pause | _Drop


class _Exchange:
    """One HTTP response: status, headers, then a script of bytes, pauses and drops."""

    def __init__(
        self,
        state: ChaosState,
        stats: ScenarioStats,
        *,
        status: int,
        headers: list[tuple[bytes, bytes]],
        steps: Iterator[Step],
        ttfb: float,
    ) -> None:
        self.state = state
        self.stats = stats
        self.status = status
        self.headers = headers
        self.steps = steps
        self.ttfb = ttfb
        self.finishing = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.stats.open += 1
        outcome: Outcome = "dropped"
        producer = asyncio.ensure_future(self._produce(send))
        watcher = asyncio.ensure_future(self._watch(receive))
        try:
            await asyncio.wait({producer, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if producer.done():
                outcome = producer.result()
            else:
                outcome = "disconnected"
                producer.cancel()
                await asyncio.gather(producer, return_exceptions=True)
        finally:
            watcher.cancel()
            if not producer.done():  # we were cancelled ourselves (forced shutdown)
                producer.cancel()
            self.stats.open -= 1
            setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)
        if outcome == "dropped":
            # Returning without finishing the body makes uvicorn close the socket: the
            # client sees a truncated chunked body, exactly like a provider dropping it.
            _DROPPING.set(True)

    async def _produce(self, send: Send) -> Outcome:
        if self.ttfb and not await self.state.pause(self.ttfb):
            return "dropped"
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        for step in self.steps:
            if isinstance(step, bytes):
                await send({"type": "http.response.body", "body": step, "more_body": True})
            elif isinstance(step, _Pause):
                if not await self.state.pause(step.seconds):
                    return "dropped"
            else:
                return "dropped"
        self.finishing = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return "errors" if self.status >= 400 else "completed"

    async def _watch(self, receive: Receive) -> None:
        message: Message = await receive()
        while message["type"] != "http.disconnect":
            message = await receive()
        if self.finishing:
            # uvicorn also reports "disconnect" once the last byte is written: that one is us,
            # not the client. Park until cancelled so the producer's result wins.
            await asyncio.Event().wait()


# --- OpenAI-shaped errors -----------------------------------------------------------------

_ERRORS: dict[int, tuple[str, str, str | None, str | None]] = {
    400: (
        "This model's maximum context length is 128000 tokens. However, your messages "
        "resulted in {tokens} tokens. Please reduce the length of the messages.",
        "invalid_request_error",
        "messages",
        "context_length_exceeded",
    ),
    401: (
        "Incorrect API key provided: sk-chaos***. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        None,
        "invalid_api_key",
    ),
    403: (
        "Country, region, or territory not supported",
        "request_forbidden",
        None,
        "unsupported_country_region_territory",
    ),
    404: (
        "The model `{model}` does not exist or you do not have access to it.",
        "invalid_request_error",
        None,
        "model_not_found",
    ),
    429: (
        "Rate limit reached for {model} in organization org-l0chaos on requests per min "
        "(RPM): Limit 3, Used 3, Requested 1. Please try again in {retry}s.",
        "requests",
        None,
        "rate_limit_exceeded",
    ),
    500: (
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
        None,
    ),
    502: ("Bad gateway.", "cf_bad_gateway", None, None),
    503: (
        "The engine is currently overloaded, please try again later.",
        "server_error",
        None,
        None,
    ),
    504: ("Gateway timeout.", "cf_gateway_timeout", None, None),
}


def _error_body(
    message: str, type_: str, param: str | None = None, code: str | None = None
) -> bytes:
    """OpenAI's error document: ``{"error": {"message", "type", "param", "code"}}``."""
    return orjson.dumps(
        {"error": {"message": message, "type": type_, "param": param, "code": code}}
    )


def _injected_error(status: int, *, model: str, tokens: int, retry: str) -> bytes:
    known = _ERRORS.get(status)
    if known is None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        kind = "server_error" if status >= 500 else "invalid_request_error"
        return _error_body(f"Injected HTTP {status} ({phrase}).", kind)
    message, kind, param, code = known
    text = message.format(model=model, tokens=128_001 + tokens, retry=retry)
    return _error_body(text, kind, param, code)


def _json_headers(body: bytes, extra: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]


def _sse_headers(extra: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-cache"),
        *extra,
    ]


# --- one request, parsed ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Call:
    """Everything a script needs about one accepted request."""

    scenario: Scenario
    plan: Plan
    reply: Reply
    index: int
    scenario_id: str
    seed: int
    body: Mapping[str, Any]

    def id(self, prefix: str, *what: object) -> str:
        return make_id(prefix, self.seed, self.scenario_id, self.index, *what)

    @property
    def created(self) -> int:
        return _EPOCH + self.index

    def meta_headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-request-id", self.id("req_", "request").encode()),
            (b"x-l0-chaos-scenario", _header_safe(self.scenario_id)),
            (b"x-l0-chaos-request", str(self.index).encode()),
        ]


def _header_safe(value: str) -> bytes:
    return value.encode("ascii", "backslashreplace").replace(b"\r", b"").replace(b"\n", b"")


class _Rejected(Exception):
    """A request the chaos server refuses with a 400, as OpenAI would."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


def _load_body(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _Rejected(
            "We could not parse the JSON body of your request. (HINT: This likely means "
            "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
            f"payload, but what was sent was not valid JSON: {exc})"
        ) from None
    if not isinstance(body, dict):
        raise _Rejected(
            f"Invalid type for request body: expected an object, but got {type(body).__name__}."
        )
    return body


def _scenario(body: Mapping[str, Any], request: Request) -> Scenario:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _Rejected("you must provide a model parameter")
    try:
        return parse_scenario(model, request.headers.get(CHAOS_HEADER))
    except ChaosGrammarError as exc:
        raise _Rejected(
            f"Invalid chaos directive: {exc}", "model", "invalid_chaos_directive"
        ) from None


def _accept(
    state: ChaosState,
    request: Request,
    body: Mapping[str, Any],
    prompt: list[str],
    last_user: str | None,
    tools: list[tuple[str, Mapping[str, Any] | None]],
    max_tokens: Any,
    *,
    resume_after: str | None = None,
) -> tuple[_Call, ScenarioStats]:
    scenario = _scenario(body, request)
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise _Rejected("Invalid 'max_tokens': expected an integer >= 1.", "max_tokens")
    header = request.headers.get(CHAOS_HEADER)
    scenario_id = (
        scenario.scenario_id
        or request.headers.get(SCENARIO_HEADER)
        or (str(body["model"]) + (f"|{header}" if header else ""))
    )
    stats, index = state.book(scenario_id)
    plan = scenario.plan(index)
    seed = state.seed if scenario.seed is None else scenario.seed
    reply = compose_reply(
        scenario,
        plan,
        seed=seed,
        prompt=prompt,
        last_user=last_user,
        tools=tools,
        max_tokens=max_tokens,
        resume_after=resume_after,
    )
    call = _Call(scenario, plan, reply, index, scenario_id, seed, body)
    return call, stats


def _error_exchange(state: ChaosState, stats: ScenarioStats, call: _Call) -> _Exchange:
    status = call.plan.status or 500
    retry = call.scenario.retry_after
    if retry is None and status == 429:
        retry = 1.0
    shown = f"{retry:g}" if retry is not None else "1"
    body = _injected_error(
        status, model=call.scenario.model, tokens=call.reply.prompt_tokens, retry=shown
    )
    extra = call.meta_headers()
    if retry is not None:
        extra.append((b"retry-after", shown.encode()))
    return _Exchange(
        state,
        stats,
        status=status,
        headers=_json_headers(body, extra),
        steps=iter((body,)),
        ttfb=call.plan.ttfb,
    )


def _json_exchange(state: ChaosState, stats: ScenarioStats, call: _Call, doc: Any) -> _Exchange:
    """A non-streaming answer; stream-position faults map onto the one body."""
    body = orjson.dumps(doc)
    plan = call.plan
    steps: list[Step] = [_Pause(s) for _, s in plan.stalls]
    if plan.delay:
        # Generation time still scales with length when nothing is streamed.
        steps.append(_Pause(plan.delay * len(call.reply.chunks)))
    end = plan.end[0] if plan.end else None
    if end == "fail":
        failed = _injected_error(500, model=call.scenario.model, tokens=0, retry="1")
        return _Exchange(
            state,
            stats,
            status=500,
            headers=_json_headers(failed, call.meta_headers()),
            steps=iter([*steps, failed]),
            ttfb=plan.ttfb,
        )
    headers = _json_headers(body, call.meta_headers())
    if end == "drop":
        # Promise the whole body, deliver half, hang up.
        steps += [body[: len(body) // 2], _DROP]
    elif end == "cut" or plan.badsse:
        body = body[: len(body) // 2]
        headers = _json_headers(body, call.meta_headers())
        steps.append(body)
    else:
        steps.append(body)
    return _Exchange(state, stats, status=200, headers=headers, steps=iter(steps), ttfb=plan.ttfb)


def _faults_at(plan: Plan, position: int, last: bool) -> Iterator[_Pause | Literal["bad", "end"]]:
    """The pauses, malformed lines and ending due after ``position`` content chunks.

    Positions past the last chunk fire after it (``last=True``), so ``drop@1000`` still drops.
    """

    def due(at: int) -> bool:
        return at == position or (last and at > position)

    for at, seconds in plan.stalls:
        if due(at):
            yield _Pause(seconds)
    for at in plan.badsse:
        if due(at):
            yield "bad"
    if plan.end is not None and due(plan.end[1]):
        yield "end"


# --- Chat Completions ---------------------------------------------------------------------


def _chunk_head(call: _Call) -> dict[str, Any]:
    """The fields every chunk of one completion shares (computed once per stream)."""
    return {
        "id": call.id("chatcmpl-", "chat"),
        "object": "chat.completion.chunk",
        "created": call.created,
        "model": call.scenario.model,
        "service_tier": "default",
        "system_fingerprint": _FINGERPRINT,
    }


def _chat_chunk(
    head: dict[str, Any], delta: dict[str, Any], finish: str | None, usage: bool
) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    doc: dict[str, Any] = {**head, "choices": [choice]}
    if usage:
        doc["usage"] = None
    return b"data: " + orjson.dumps(doc) + b"\n\n"


def _chat_usage(reply: Reply) -> dict[str, Any]:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _chat_stream(call: _Call, include_usage: bool) -> Iterator[Step]:
    reply, plan = call.reply, call.plan
    if reply.kind == "tool":
        first: dict[str, Any] = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "index": 0,
                    "id": reply.call_id,
                    "type": "function",
                    "function": {"name": reply.tool_name, "arguments": ""},
                }
            ],
            "refusal": None,
        }
    else:
        first = {"role": "assistant", "content": "", "refusal": None}
    head = _chunk_head(call)
    yield _chat_chunk(head, first, None, include_usage)
    n = len(reply.chunks)
    for position in range(n + 1):
        for step in _faults_at(plan, position, last=position == n):
            if step == "bad":
                # A data line cut mid-JSON, as a broken proxy might pass it on.
                yield _garble(_chat_chunk(head, {"content": "garbled"}, None, include_usage))
            elif step == "end":
                yield from _chat_end(call)
                return
            else:
                yield step
        if position == n:
            break
        if plan.delay:
            yield _Pause(plan.delay)
        piece = reply.chunks[position]
        if reply.kind == "tool":
            delta: dict[str, Any] = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
        else:
            delta = {"content": piece}
        yield _chat_chunk(head, delta, None, include_usage)
    yield _chat_chunk(head, {}, reply.finish_reason, include_usage)
    if include_usage:
        doc = {**head, "choices": [], "usage": _chat_usage(reply)}
        yield b"data: " + orjson.dumps(doc) + b"\n\n"
    yield b"data: [DONE]\n\n"


def _garble(event: bytes) -> bytes:
    """The event cut off inside its JSON string: ``…"content":"gar`` then a blank line."""
    return event[: event.index(b'"garbled"') + 4] + b"\n\n"


def _chat_end(call: _Call) -> Iterator[Step]:
    assert call.plan.end is not None
    kind = call.plan.end[0]
    if kind == "drop":
        yield _DROP
    elif kind == "fail":
        # OpenAI reports mid-stream failures as a data line holding an error document.
        yield b"data: " + _injected_error(500, model=call.scenario.model, tokens=0, retry="1")
        yield b"\n\n"
    # "cut": the body simply ends — no finish chunk, no [DONE].


def _chat_completion(call: _Call) -> dict[str, Any]:
    reply = call.reply
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
    if reply.kind == "tool":
        message["content"] = None
        message["tool_calls"] = [
            {
                "id": reply.call_id,
                "type": "function",
                "function": {"name": reply.tool_name, "arguments": reply.text},
            }
        ]
    message["annotations"] = []
    return {
        "id": call.id("chatcmpl-", "chat"),
        "object": "chat.completion",
        "created": call.created,
        "model": call.scenario.model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}
        ],
        "usage": _chat_usage(reply),
        "service_tier": "default",
        "system_fingerprint": _FINGERPRINT,
    }


def _function_tools(tools: Any, *, nested: bool) -> list[tuple[str, Mapping[str, Any] | None]]:
    out: list[tuple[str, Mapping[str, Any] | None]] = []
    if not isinstance(tools, list):
        return out
    for tool in tools:
        if not isinstance(tool, Mapping) or tool.get("type", "function") != "function":
            continue
        spec = tool.get("function") if nested else tool
        if isinstance(spec, Mapping) and isinstance(spec.get("name"), str):
            params = spec.get("parameters")
            out.append((spec["name"], params if isinstance(params, Mapping) else None))
    return out


async def _chat(request: Request) -> Any:
    state: ChaosState = request.app.state.chaos
    body = _load_body(await request.body())
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _Rejected(
            "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
        )
    prompt: list[str] = []
    last_user: str | None = None
    for m in messages:
        if not isinstance(m, Mapping) or not isinstance(m.get("role"), str):
            raise _Rejected(
                "Invalid 'messages': each message must be an object with a 'role'.", "messages"
            )
        text = message_text(m.get("content"))
        prompt.append(text)
        if m["role"] == "user":
            last_user = text
    resume_after: str | None = None
    roles = [m["role"] for m in messages]
    if len(roles) >= 3 and roles[-2] == "assistant" and roles[-1] == "user":
        # A continuation request: answer as the original prompt would have, resuming after
        # the assistant's partial text (see "Continuations" in docs/chaos.md).
        resume_after = prompt[-2]
        prompt = prompt[:-2]
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    tools = _function_tools(body.get("tools"), nested=True)
    call, stats = _accept(
        state, request, body, prompt, last_user, tools, max_tokens, resume_after=resume_after
    )
    if call.plan.status is not None:
        return _error_exchange(state, stats, call)
    if body.get("stream") is True:
        options = body.get("stream_options")
        include_usage = isinstance(options, Mapping) and options.get("include_usage") is True
        return _Exchange(
            state,
            stats,
            status=200,
            headers=_sse_headers(call.meta_headers()),
            steps=_chat_stream(call, include_usage),
            ttfb=call.plan.ttfb,
        )
    return _json_exchange(state, stats, call, _chat_completion(call))


# --- Responses API ------------------------------------------------------------------------


def _event(kind: str, seq: int, fields: dict[str, Any]) -> bytes:
    doc = {"type": kind, "sequence_number": seq, **fields}
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(doc) + b"\n\n"


def _responses_usage(reply: Reply) -> dict[str, Any]:
    return {
        "input_tokens": reply.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": reply.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }


def _response_doc(
    call: _Call,
    status: str,
    output: list[dict[str, Any]],
    *,
    usage: bool,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
    return {
        "id": call.id("resp_", "response"),
        "object": "response",
        "created_at": call.created,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": incomplete,
        "instructions": call.body.get("instructions"),
        "max_output_tokens": call.body.get("max_output_tokens"),
        "model": call.scenario.model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": False,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": call.body.get("tools") or [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": _responses_usage(call.reply) if usage else None,
        "user": None,
        "metadata": {},
    }


def _output_item(call: _Call, text: str, status: str) -> dict[str, Any]:
    reply = call.reply
    if reply.kind == "tool":
        return {
            "id": call.id("fc_", "item"),
            "type": "function_call",
            "status": status,
            "arguments": text,
            "call_id": reply.call_id,
            "name": reply.tool_name,
        }
    content = [] if status == "in_progress" else [_text_part(text)]
    return {
        "id": call.id("msg_", "item"),
        "type": "message",
        "status": status,
        "content": content,
        "role": "assistant",
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _responses_stream(call: _Call) -> Iterator[Step]:
    reply, plan = call.reply, call.plan
    seq = 0

    def ev(kind: str, **fields: Any) -> bytes:
        nonlocal seq
        seq += 1
        return _event(kind, seq - 1, fields)

    item_id = _output_item(call, "", "in_progress")["id"]
    where = {"item_id": item_id, "output_index": 0}
    yield ev("response.created", response=_response_doc(call, "in_progress", [], usage=False))
    yield ev("response.in_progress", response=_response_doc(call, "in_progress", [], usage=False))
    yield ev(
        "response.output_item.added", output_index=0, item=_output_item(call, "", "in_progress")
    )
    if reply.kind == "text":
        yield ev("response.content_part.added", **where, content_index=0, part=_text_part(""))
    n = len(reply.chunks)
    for position in range(n + 1):
        for step in _faults_at(plan, position, last=position == n):
            if step == "bad":
                yield _garble(ev("response.output_text.delta", **where, delta="garbled"))
            elif step == "end":
                yield from _responses_end(call, ev)
                return
            else:
                yield step
        if position == n:
            break
        if plan.delay:
            yield _Pause(plan.delay)
        piece = reply.chunks[position]
        if reply.kind == "tool":
            yield ev("response.function_call_arguments.delta", **where, delta=piece)
        else:
            yield ev(
                "response.output_text.delta", **where, content_index=0, delta=piece, logprobs=[]
            )
    text = reply.text
    status = "incomplete" if reply.finish_reason == "length" else "completed"
    if reply.kind == "tool":
        yield ev("response.function_call_arguments.done", **where, arguments=text)
    else:
        yield ev("response.output_text.done", **where, content_index=0, text=text, logprobs=[])
        yield ev("response.content_part.done", **where, content_index=0, part=_text_part(text))
    item = _output_item(call, text, status)
    yield ev("response.output_item.done", output_index=0, item=item)
    final = "response.incomplete" if status == "incomplete" else "response.completed"
    yield ev(final, response=_response_doc(call, status, [item], usage=True))


def _responses_end(call: _Call, ev: Callable[..., bytes]) -> Iterator[Step]:
    assert call.plan.end is not None
    kind = call.plan.end[0]
    if kind == "drop":
        yield _DROP
    elif kind == "fail":
        error = {
            "code": "server_error",
            "message": "The server had an error while processing your request. Sorry about that!",
        }
        yield ev(
            "response.failed", response=_response_doc(call, "failed", [], usage=False, error=error)
        )


async def _responses(request: Request) -> Any:
    state: ChaosState = request.app.state.chaos
    body = _load_body(await request.body())
    raw_input = body.get("input")
    prompt: list[str] = []
    last_user: str | None = None
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        prompt.append(instructions)
    if isinstance(raw_input, str):
        prompt.append(raw_input)
        last_user = raw_input
    elif isinstance(raw_input, list) and raw_input:
        for item in raw_input:
            if not isinstance(item, Mapping):
                raise _Rejected("Invalid 'input': each item must be an object.", "input")
            text = message_text(item.get("content", item.get("output")))
            prompt.append(text)
            if item.get("role") == "user":
                last_user = text
    else:
        raise _Rejected(
            "Missing required parameter: 'input'.", "input", "missing_required_parameter"
        )
    tools = _function_tools(body.get("tools"), nested=False)
    call, stats = _accept(
        state, request, body, prompt, last_user, tools, body.get("max_output_tokens")
    )
    if call.plan.status is not None:
        return _error_exchange(state, stats, call)
    if body.get("stream") is True:
        return _Exchange(
            state,
            stats,
            status=200,
            headers=_sse_headers(call.meta_headers()),
            steps=_responses_stream(call),
            ttfb=call.plan.ttfb,
        )
    status = "incomplete" if call.reply.finish_reason == "length" else "completed"
    doc = _response_doc(call, status, [_output_item(call, call.reply.text, status)], usage=True)
    return _json_exchange(state, stats, call, doc)


# --- models, stats, errors ----------------------------------------------------------------


def _model_doc(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": _EPOCH, "owned_by": "l0-chaos"}


async def _models(request: Request) -> Any:
    from starlette.responses import Response

    doc = {"object": "list", "data": [_model_doc(m) for m in _MODELS]}
    return Response(orjson.dumps(doc), media_type="application/json")


async def _model(request: Request) -> Any:
    from starlette.responses import Response

    name = str(request.path_params["model"]).partition("+")[0] or "chaos"
    return Response(orjson.dumps(_model_doc(name)), media_type="application/json")


async def _stats(request: Request) -> Any:
    from starlette.responses import Response

    state: ChaosState = request.app.state.chaos
    return Response(orjson.dumps(state.stats()), media_type="application/json")


async def _reset(request: Request) -> Any:
    from starlette.responses import Response

    state: ChaosState = request.app.state.chaos
    state.reset()
    return Response(orjson.dumps(state.stats()), media_type="application/json")


def _rejected(state: ChaosState, exc: _Rejected) -> Any:
    from starlette.responses import Response

    state.rejected += 1
    body = _error_body(exc.message, "invalid_request_error", exc.param, exc.code)
    return Response(body, status_code=400, media_type="application/json")


def create_app(*, seed: int = 0, time_scale: float = 1.0) -> Starlette:
    """Build the chaos server's Starlette app (serve it with any ASGI server).

    Args:
        seed: default seed for generated content and ids; the same request sequence with
            the same seed gives the same bytes.
        time_scale: multiplies every injected delay (``0`` removes them all).

    The app's `ChaosState` is ``app.state.chaos``.
    """
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.responses import Response
    from starlette.routing import Route

    state = ChaosState(seed=seed, time_scale=time_scale)
    _install_log_filter()

    def guarded(endpoint: Any) -> Any:
        async def run(request: Request) -> Any:
            try:
                return await endpoint(request)
            except _Rejected as exc:
                return _rejected(state, exc)

        return run

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        path = request.url.path
        message = f"Invalid URL ({request.method} {path})"
        if status == 404 and not path.startswith(("/v1/", "/_chaos/")):
            message += "; the chaos server serves /v1/…: does your base_url end in /v1?"
        elif status == 405:
            message = f"Method {request.method} not allowed for {path}"
        body = _error_body(message, "invalid_request_error")
        return Response(body, status_code=status, media_type="application/json")

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", guarded(_chat), methods=["POST"]),
            Route("/v1/responses", guarded(_responses), methods=["POST"]),
            Route("/v1/models", _models, methods=["GET"]),
            Route("/v1/models/{model:path}", _model, methods=["GET"]),
            Route(STATS_PATH, _stats, methods=["GET"]),
            Route("/_chaos/reset", _reset, methods=["POST"]),
        ],
        exception_handlers={HTTPException: not_found},
    )
    app.state.chaos = state
    return app
