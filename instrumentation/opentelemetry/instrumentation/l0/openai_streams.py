"""What an instrumented OpenAI streaming call returns: ``openai.AsyncStream`` / ``openai.Stream``.

The proxies *are* SDK streams (subclasses), so ``isinstance`` checks, other integrations that
wrap a stream's ``_iterator`` (Sentry) and the SDK's helpers (``chat.completions.stream()``)
keep working. Only where the chunks come from changes: an l0 session (:class:`.relay.Running`)
instead of one HTTP response. Iteration yields the SDK's own chunk objects; ``async with`` /
``with``, ``close()`` and ``aclose()`` end the session and release the connection;
``response`` is the HTTP response of the attempt being read.
"""

from __future__ import annotations

from typing import Any

from openai import AsyncStream, Stream

from .bridge import LoopThread
from .relay import Running

__all__ = ["L0AsyncStream", "L0Stream"]


def _adopt(proxy: Any, running: Running) -> None:
    # The SDK fields other code may read, taken from the first attempt's stream.
    stream = running.stream
    proxy._cast_to = getattr(stream, "_cast_to", object)
    proxy._client = getattr(stream, "_client", None)
    proxy._options = getattr(stream, "_options", None)
    decoder = getattr(stream, "_decoder", None)
    if decoder is not None:
        proxy._decoder = decoder


class L0AsyncStream(AsyncStream[Any]):
    """An ``openai.AsyncStream`` fed by an l0 session (see the module docstring)."""

    def __init__(self, running: Running) -> None:
        # The base __init__ would read an HTTP response: the chunks come from l0 instead.
        self._l0 = running
        _adopt(self, running)
        self._l0_chunks = running.achunks()
        self._iterator = self._l0_chunks

    @property
    def response(self) -> Any:
        """The HTTP response of the attempt being read (``httpx`` / ``httpx2.Response``)."""
        return getattr(self._l0.stream, "response", None)

    @response.setter
    def response(self, value: Any) -> None:
        raise AttributeError("an instrumented stream's response follows its l0 attempts")

    async def close(self) -> None:
        """End the l0 session and release the connection."""
        try:
            await self._l0_chunks.aclose()
        finally:
            await self._l0.aclose()


class L0Stream(Stream[Any]):
    """An ``openai.Stream`` fed by an l0 session running on a private loop thread."""

    def __init__(self, running: Running, bridge: LoopThread) -> None:
        self._l0 = running
        self._l0_bridge = bridge
        _adopt(self, running)
        self._l0_chunks = running.chunks(bridge)
        self._iterator = self._l0_chunks

    @property
    def response(self) -> Any:
        """The HTTP response of the attempt being read (``httpx`` / ``httpx2.Response``)."""
        return getattr(self._l0.stream, "response", None)

    @response.setter
    def response(self, value: Any) -> None:
        raise AttributeError("an instrumented stream's response follows its l0 attempts")

    def close(self) -> None:
        """End the l0 session, release the connection and stop the call's loop thread."""
        try:
            self._l0_chunks.close()
        finally:
            self._l0.close(self._l0_bridge)

    def __del__(self) -> None:
        # A stream dropped without being read to the end or closed: its loop thread must go.
        try:
            self._l0.close(self._l0_bridge)
        except Exception:
            pass
