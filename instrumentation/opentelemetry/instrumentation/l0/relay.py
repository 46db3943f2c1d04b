"""One instrumented call: the SDK call as l0 targets, the session, and its output relayed back.

The patched SDK methods (``patch_openai``, ``patch_litellm``) describe the call as a
:class:`Plan`: one :class:`l0.runtime.fallback.Target` per model (the requested one, then its
fallbacks), each a factory that repeats the caller's call with ``model`` replaced. :func:`start`
runs the plan as an l0 session and reads it up to the first output:

- **streaming**: up to the first event, so a failure before the first chunk is retried or
  fallen back transparently and, when l0 gives up, raised from ``create()`` itself, where the
  SDK raises it. The returned :class:`Running` relays the SDK chunks carried on each event
  (``Event.raw``, see :mod:`.adapters`); the stream proxies iterate it.
- **non-streaming**: to the end; the result is the winning attempt's response object.

Output the caller has received cannot be taken back, so the session runs with
``retry_after_output=False``: a failure after the first chunk is raised to the caller as the
SDK's exception (:mod:`.exceptions`), unless the policy enables continuation.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import AsyncGenerator, Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from l0.errors import L0Error
from l0.runtime.api import run
from l0.runtime.fallback import Target, inside_attempt
from l0.types import AttemptContext, Event, EventType

from .adapters import RawChunkAdapter, ResponseAdapter
from .bridge import BlockingWorker, LoopThread, SyncStreamReader
from .exceptions import SdkErrors, sdk_exception
from .policy import DEFAULT_STREAMING_TIMEOUT, NON_STREAMING_TIMEOUT, Policy

__all__ = [
    "CONTINUE_PROMPT",
    "Api",
    "Plan",
    "Running",
    "build_targets",
    "l0_owns_call",
    "open_async",
    "open_sync",
    "run_sync",
    "start",
]

_log = logging.getLogger("l0.instrumentation")

_TOKEN = EventType.TOKEN
_COMPLETE = EventType.COMPLETE
_ERROR = EventType.ERROR

CONTINUE_PROMPT = "Continue exactly where you stopped."
"""The user turn appended (after the delivered text as an assistant turn) to continue."""

# Set while an attempt of an instrumented call is calling the SDK: a patched method reached
# from there (LiteLLM calling the OpenAI SDK, a method patched twice) passes straight through.
_OWNED: contextvars.ContextVar[bool] = contextvars.ContextVar("l0_instrumented_call", default=False)

# The request parameters a target carries for telemetry: the GenAI request attributes read
# an allow-list of them, and content capture (opt-in) reads the messages.
_REQUEST_KEYS = (
    "temperature",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "top_p",
    "top_k",
    "frequency_penalty",
    "presence_penalty",
    "seed",
    "stop",
    "n",
    "messages",
    "input",
    "instructions",
    "stream",
)


def l0_owns_call() -> bool:
    """Whether the current call is already run by l0: an attempt of an instrumented call, or
    a factory the user handed to ``l0.run`` (l0 marks every factory call it makes)."""
    return _OWNED.get() or inside_attempt()


@dataclass(frozen=True, slots=True)
class Api:
    """What kind of call a patched method makes.

    Attributes:
        adapter: the adapter name telemetry reports (``"openai"``, ``"openai_responses"``,
            ``"litellm"``).
        messages_key: where the conversation is in the request (``"messages"`` or
            ``"input"``), for continuation.
    """

    adapter: str
    messages_key: str = "messages"


@dataclass(frozen=True, slots=True)
class Plan:
    """An instrumented call, ready to run.

    Attributes:
        targets: the requested model first, then its fallbacks.
        streaming: whether the caller asked for a stream.
        api: what kind of call it is.
        errors: builds the SDK's connection exceptions (``None``: raise ``L0Error``).
    """

    targets: Sequence[Target]
    streaming: bool
    api: Api
    errors: SdkErrors | None


def is_sentinel(value: Any) -> bool:
    """openai's ``omit`` / ``NOT_GIVEN``: a parameter that was not passed."""
    return type(value).__name__ in ("Omit", "NotGiven")


def request_of(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """What a target tells telemetry about the request (references, never copies).
    ``stream`` is always there, as a bool."""
    request = {
        key: value
        for key in _REQUEST_KEYS
        if (value := kwargs.get(key)) is not None and not is_sentinel(value)
    }
    request["stream"] = kwargs.get("stream") is True
    return request


def continue_request(kwargs: Mapping[str, Any], api: Api, checkpoint: str) -> dict[str, Any]:
    """The same request, asking the model to continue after ``checkpoint``."""
    key = api.messages_key
    conversation = kwargs.get(key)
    if isinstance(conversation, str):
        turns: list[Any] = [{"role": "user", "content": conversation}]
    elif conversation is None or is_sentinel(conversation):
        turns = []
    else:
        turns = list(conversation)
    turns.append({"role": "assistant", "content": checkpoint})
    turns.append({"role": "user", "content": CONTINUE_PROMPT})
    return {**kwargs, key: turns}


Opener = Callable[[dict[str, Any]], Any]
"""Makes the SDK call with these keyword arguments; returns an awaitable of its result."""


def build_targets(
    *,
    kwargs: dict[str, Any],
    models: Iterable[str],
    opener: Opener,
    api: Api,
    describe: Callable[[str], tuple[str | None, str | None, int | None]],
) -> list[Target]:
    """One target per model: the call with ``model`` replaced. ``describe(model)`` gives
    ``(provider, server_address, server_port)``."""
    targets = []
    for index, model in enumerate(models):
        call_kwargs = kwargs if index == 0 else {**kwargs, "model": model}
        provider, address, port = describe(model)
        targets.append(
            Target(
                _factory(opener, call_kwargs, api),
                index,
                takes_context=True,
                model=model,
                provider=provider,
                server_address=address,
                server_port=port,
                request=request_of(call_kwargs),
            )
        )
    return targets


def _factory(opener: Opener, kwargs: dict[str, Any], api: Api) -> Callable[[AttemptContext], Any]:
    def open_attempt(context: AttemptContext) -> Any:
        if context.continuation and context.checkpoint:
            return opener(continue_request(kwargs, api, context.checkpoint))
        return opener(kwargs)

    return open_attempt


async def open_async(function: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """Call an async SDK function as an attempt of an instrumented call."""
    token = _OWNED.set(True)
    try:
        return await function(**kwargs)
    finally:
        _OWNED.reset(token)


def _call_owned(function: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    token = _OWNED.set(True)
    try:
        return function(**kwargs)
    finally:
        _OWNED.reset(token)


async def open_sync(function: Callable[..., Any], kwargs: dict[str, Any], streaming: bool) -> Any:
    """Call a blocking SDK function as an attempt, on a worker thread (see :mod:`.bridge`)."""
    worker = BlockingWorker()
    try:
        value = await worker.run(_call_owned, function, kwargs)
    except BaseException:
        worker.stop()
        raise
    if streaming:
        return SyncStreamReader(value, worker)
    worker.stop()
    return value


def _raise_for(error: L0Error, errors: SdkErrors | None) -> NoReturn:
    mapped = sdk_exception(error, errors)
    if mapped is error:
        raise error
    # Raised while the L0Error is handled: it becomes the context, with every attempt's record.
    raise mapped


async def start(plan: Plan, policy: Policy) -> Any:
    """Run ``plan``: a :class:`Running` for a stream, the response object otherwise.

    Raises:
        the SDK's exception (or ``l0.L0Error``) when l0 gives up before any output.
    """
    streaming = plan.streaming
    continuation = policy.continuation and streaming
    adapter: RawChunkAdapter | ResponseAdapter = (
        RawChunkAdapter(plan.api.adapter) if streaming else ResponseAdapter(plan.api.adapter)
    )
    # l0.run takes Targets as well as factories (its annotation says factories only).
    targets: list[Any] = list(plan.targets)
    result = await run(
        targets[0],
        fallbacks=targets[1:] or None,
        guardrails=policy.guardrails,
        retry=policy.retry,
        timeout=(policy.timeout or DEFAULT_STREAMING_TIMEOUT)
        if streaming
        else NON_STREAMING_TIMEOUT,
        on_event=policy.on_event,
        continue_from_checkpoint=continuation,
        adapter=adapter,
        # The caller cannot take back chunks it received: a failure after them ends the call
        # (continuation, when on, resumes instead; l0 never sends a RESET here).
        retry_after_output=False,
    )
    events = result.__aiter__()
    try:
        async for event in events:
            etype = event.type
            if etype is _ERROR:
                continue  # terminal: the session raises its L0Error next
            if streaming:
                assert isinstance(adapter, RawChunkAdapter)
                return Running(result, events, adapter, event, plan.errors, continuation)
            if etype is _COMPLETE and event.raw:
                return event.raw[0]
        raise RuntimeError("the l0 session ended without a response")
    except L0Error as error:
        await result.aclose()
        _raise_for(error, plan.errors)
    except BaseException:
        await result.aclose()
        raise


def run_sync(plan: Plan, policy: Policy, stream_class: Callable[..., Any]) -> Any:
    """:func:`start` for a blocking caller, on a private loop thread (see :mod:`.bridge`);
    a stream comes back as ``stream_class(running, bridge)``, which then owns the thread."""
    bridge = LoopThread()
    try:
        # The caller's context: the session's spans get the caller's span as parent.
        started = bridge.run(start(plan, policy), context=contextvars.copy_context())
    except BaseException:
        bridge.close()
        raise
    if plan.streaming:
        return stream_class(started, bridge)
    bridge.close()
    return started


async def _step(events: Any) -> Event | None:
    try:
        event: Event = await events.__anext__()
    except StopAsyncIteration:
        return None
    return event


class Running:
    """A streaming call whose session has delivered its first event: relays SDK chunks.

    The stream proxies take their chunks from :meth:`achunks` (async clients) or
    :meth:`chunks` (sync clients, through a :class:`~.bridge.LoopThread`).
    """

    __slots__ = (
        "_first",
        "_template",
        "adapter",
        "continuation",
        "errors",
        "events",
        "result",
    )

    def __init__(
        self,
        result: Any,
        events: Any,
        adapter: RawChunkAdapter,
        first: Event,
        errors: SdkErrors | None,
        continuation: bool,
    ) -> None:
        self.result = result
        self.events = events
        self.adapter = adapter
        self.errors = errors
        self.continuation = continuation
        self._template: Any = None
        self._first: tuple[Any, ...] = self._relay(first)

    @property
    def stream(self) -> Any:
        """The SDK stream of the attempt being read (for its ``response``)."""
        stream = self.adapter.stream
        if isinstance(stream, SyncStreamReader):
            return stream.stream
        return stream

    def _relay(self, event: Event) -> tuple[Any, ...]:
        """The SDK chunks to hand on for ``event``."""
        raw = event.raw
        if raw:
            if self.continuation and event.type is _TOKEN:
                self._template = raw[-1]
            return tuple(raw)
        # ERROR is terminal: the session raises its L0Error at the next step.
        if raw is None and event.type is _TOKEN and event.text:
            # Continuation trimmed this token (the overlap with the delivered text): l0 made a
            # new event without chunks, so hand on a copy of the last chunk with its text.
            chunk = _with_text(self._template, event.text)
            return (chunk,) if chunk is not None else ()
        return ()

    async def achunks(self) -> AsyncGenerator[Any, None]:
        """Every SDK chunk of the call, in order; the SDK's exception when l0 gives up."""
        try:
            first, self._first = self._first, ()
            for chunk in first:
                yield chunk
            relay = self._relay
            plain = not self.continuation  # no chunk to keep as a template
            async for event in self.events:
                raw = event.raw
                if raw and plain:
                    # The common case, without a call per chunk: the event's own chunks.
                    for chunk in raw:
                        yield chunk
                else:
                    for chunk in relay(event):
                        yield chunk
        except L0Error as error:
            _raise_for(error, self.errors)
        finally:
            await self.result.aclose()

    async def aclose(self) -> None:
        """End the session and release the provider stream (idempotent)."""
        await self.result.aclose()

    def chunks(self, bridge: LoopThread) -> Generator[Any, None, None]:
        """:meth:`achunks` for a synchronous caller: each step runs on ``bridge``'s loop."""
        try:
            first, self._first = self._first, ()
            yield from first
            events = self.events
            while True:
                event = bridge.run(_step(events))
                if event is None:
                    return
                yield from self._relay(event)
        except L0Error as error:
            _raise_for(error, self.errors)
        finally:
            self.close(bridge)

    def close(self, bridge: LoopThread) -> None:
        """End the session and stop ``bridge`` (idempotent; safe from a finalizer)."""
        bridge.close(self.result.aclose)


def _with_text(template: Any, text: str) -> Any:
    """A copy of an SDK chunk carrying ``text`` instead of its own text."""
    if template is None:
        _log.debug("l0: no chunk to carry %d continued characters", len(text))
        return None
    try:
        choices = getattr(template, "choices", None)
        if choices:
            choice = choices[0]
            delta = choice.delta.model_copy(update={"content": text})
            return template.model_copy(
                update={"choices": [choice.model_copy(update={"delta": delta})]}
            )
        if getattr(template, "type", None) == "response.output_text.delta":
            return template.model_copy(update={"delta": text})
    except Exception as error:
        _log.debug("l0: cannot copy a %s chunk: %r", type(template).__qualname__, error)
    return None
