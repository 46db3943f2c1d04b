"""``l0.run`` and ``l0.wrap``: the two ways into a session."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from l0.adapters.base import Adapter
from l0.config import ConfigError, Retry, Timeout
from l0.guardrails.base import GuardrailRule
from l0.observability.bus import Sink
from l0.runtime.clock import Clock
from l0.runtime.fallback import StreamFactory, Target, make_targets
from l0.runtime.session import Result, build_session

__all__ = ["run", "wrap"]


async def run(
    stream: StreamFactory | Target,
    *,
    fallbacks: Sequence[StreamFactory | Target] | None = None,
    guardrails: Sequence[GuardrailRule] | None = None,
    retry: Retry | None = None,
    timeout: Timeout | None = None,
    on_event: Sink | None = None,
    meta: dict[str, Any] | None = None,
    continue_from_checkpoint: bool = False,
    adapter: Adapter | str | None = None,
    clock: Clock | None = None,
    retry_after_output: bool = True,
) -> Result:
    """Run a stream with retries, fallbacks, timeouts and guardrails.

    Args:
        stream: a factory: ``lambda: client.chat.completions.create(..., stream=True)``. It
            may return the stream or an awaitable of it, and may take one parameter, an
            :class:`l0.AttemptContext`, to build a continuation prompt.
        fallbacks: factories tried in order when the primary target fails for good, each
            with the full retry logic.
        guardrails: rules checked while the output streams and when it completes.
        retry: the retry policy (default ``l0.Retry()``).
        timeout: the stream timers (default ``l0.Timeout()``: 5 s to first token, 10 s between).
        on_event: receives every :class:`l0.ObservabilityEvent`.
        meta: attached to every observability event (and to spans as ``l0.meta.<key>``).
        continue_from_checkpoint: after a failure mid-stream, continue from the text already
            delivered instead of starting over (no reset; overlap removed).
        adapter: an adapter (or its name) instead of auto-detection.
        clock: the time source (inject ``l0.testing.FakeClock`` in tests).
        retry_after_output: whether an attempt that already delivered output may be
            retried (the consumer then gets a ``RESET`` event). ``False`` makes such a failure
            terminal — for consumers that cannot take back what they showed.

    Returns:
        a :class:`l0.Result`: iterate it for events or ``await result.read()``.

    Raises:
        l0.ConfigError: an option is invalid (raised here, before anything runs).
    """
    targets = make_targets(stream, fallbacks)
    session = build_session(
        targets,
        guardrails=guardrails,
        retry=retry,
        timeout=timeout,
        on_event=on_event,
        meta=meta,
        continue_from_checkpoint=continue_from_checkpoint,
        adapter=adapter,
        clock=clock,
        retry_after_output=retry_after_output,
    )
    return Result(session)


class _OneShot:
    """A factory for a stream that already exists: it can be handed out once."""

    __slots__ = ("_stream", "_used")

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._used = False

    def __call__(self) -> Any:
        if self._used:
            raise ConfigError(
                "wrap", "stream", "a wrapped stream can be consumed once; use l0.run with a factory"
            )
        self._used = True
        return self._stream


def wrap(
    stream: Any,
    *,
    guardrails: Sequence[GuardrailRule] | None = None,
    timeout: Timeout | None = None,
    on_event: Sink | None = None,
    meta: dict[str, Any] | None = None,
    adapter: Adapter | str | None = None,
    clock: Clock | None = None,
    **unsupported: Any,
) -> Result:
    """Wrap an existing stream (or an un-awaited call that returns one) — no ``await`` needed.

    A bare stream cannot be re-created, so a wrapped stream gets **no retries and no
    fallbacks**: failures are still detected, categorized and reported (timeouts, guardrails,
    zero output), but the first one is terminal. For retries, pass a factory to :func:`run`.

    Example::

        async with l0.wrap(client.chat.completions.create(..., stream=True)) as result:
            async for event in result:
                ...
    """
    for name in ("fallbacks", "retry", "continue_from_checkpoint"):
        if name in unsupported:
            raise ConfigError(
                "wrap",
                name,
                "a wrapped stream cannot be re-created, so it cannot be retried or fall back; "
                "use l0.run(stream=lambda: ...) instead",
                unsupported[name],
            )
    if unsupported:
        name = next(iter(unsupported))
        raise ConfigError("wrap", name, "unknown option", unsupported[name])
    if callable(stream) and not hasattr(stream, "__aiter__"):
        raise ConfigError("wrap", "stream", "is a factory; use l0.run(stream=...) for it", stream)
    if not (hasattr(stream, "__aiter__") or inspect.isawaitable(stream)):
        raise ConfigError("wrap", "stream", "must be an async iterator or an awaitable", stream)
    targets = [Target(_OneShot(stream), 0, takes_context=False)]
    session = build_session(
        targets,
        guardrails=guardrails,
        retry=Retry(attempts=0, max_retries=0),
        timeout=timeout,
        on_event=on_event,
        meta=meta,
        continue_from_checkpoint=False,
        adapter=adapter,
        clock=clock,
    )
    return Result(session)
