"""Releasing a provider stream: the one closing helper adapters and the runtime share.

Provider streams close in different ways: openai's ``AsyncStream.close()`` is a coroutine,
async generators and LiteLLM's ``CustomStreamWrapper`` have ``aclose()``, some objects only
have a synchronous ``close()``. :func:`close_stream` knows them all, so no caller has to.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

__all__ = ["close_iteration", "close_stream"]

_log = logging.getLogger("l0.adapters")


async def close_stream(stream: Any) -> None:
    """Close ``stream`` and release its connection, whatever kind of stream it is.

    Prefers ``aclose()``, then ``close()`` (awaited when it returns an awaitable). Safe to call
    more than once and on streams that already ended. Never raises, except
    :class:`asyncio.CancelledError` (and the other ``BaseException`` s that must propagate):
    a stream that fails to close is logged at debug level and otherwise ignored, because the
    caller is already finishing and has nothing better to do with the error.
    """
    if stream is None:
        return
    try:
        closer = getattr(stream, "aclose", None)
        if closer is None:
            closer = getattr(stream, "close", None)
        if closer is None or not callable(closer):
            return
        result = closer()
        if inspect.isawaitable(result):
            await result
    except Exception as error:
        _log.debug("closing %s failed: %r", type(stream).__qualname__, error)


async def close_iteration(stream: Any, iterator: Any) -> None:
    """Close both the iterator an adapter got from ``stream.__aiter__()`` and ``stream``.

    They differ for openai's ``AsyncStream``, whose ``__aiter__`` returns a fresh async
    generator: closing only the stream would leave that generator for the garbage collector.
    """
    if iterator is not None and iterator is not stream:
        await close_stream(iterator)
    await close_stream(stream)
