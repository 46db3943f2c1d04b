"""What an instrumented LiteLLM streaming call returns: a ``CustomStreamWrapper``.

:class:`L0LiteLLMStream` subclasses LiteLLM's wrapper so ``isinstance`` checks hold; iteration
yields LiteLLM's own ``ModelResponseStream`` chunks from the l0 session, and any other
attribute (``model``, ``custom_llm_provider``, ``_hidden_params`` …) is read from the wrapper of
the attempt being read. ``litellm.acompletion`` streams iterate with ``async for``,
``litellm.completion`` streams with ``for``.
"""

from __future__ import annotations

from typing import Any

from litellm import CustomStreamWrapper

from .bridge import LoopThread
from .relay import Running

__all__ = ["L0LiteLLMStream"]


class L0LiteLLMStream(CustomStreamWrapper):  # type: ignore[misc]
    """A LiteLLM ``CustomStreamWrapper`` fed by an l0 session (see the module docstring).

    Args:
        running: the session.
        bridge: the private loop thread of a synchronous call (``litellm.completion``);
            ``None`` for ``litellm.acompletion``.
    """

    def __init__(self, running: Running, bridge: LoopThread | None = None) -> None:
        # The base __init__ would set up LiteLLM's own chunk processing: l0 feeds this one.
        self._l0 = running
        self._l0_bridge = bridge
        self._l0_chunks: Any = running.chunks(bridge) if bridge is not None else running.achunks()

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes this object lacks: read the current attempt's wrapper.
        if name.startswith("_l0"):
            raise AttributeError(name)
        return getattr(self._l0.stream, name)

    def __iter__(self) -> L0LiteLLMStream:
        if self._l0_bridge is None:
            raise TypeError("a litellm.acompletion stream is iterated with `async for`")
        return self

    def __next__(self) -> Any:
        return next(self._l0_chunks)

    def __aiter__(self) -> L0LiteLLMStream:
        if self._l0_bridge is not None:
            raise TypeError("a litellm.completion stream is iterated with `for`")
        return self

    async def __anext__(self) -> Any:
        return await self._l0_chunks.__anext__()

    def close(self) -> None:
        """End the l0 session and release the connection (sync streams)."""
        bridge = self._l0_bridge
        if bridge is None:
            raise TypeError("close a litellm.acompletion stream with `await stream.aclose()`")
        try:
            self._l0_chunks.close()
        finally:
            self._l0.close(bridge)

    async def aclose(self) -> None:
        """End the l0 session and release the connection."""
        if self._l0_bridge is not None:
            self.close()
            return
        try:
            await self._l0_chunks.aclose()
        finally:
            await self._l0.aclose()

    def __del__(self) -> None:
        # Not LiteLLM's finalizer (it restores its logging context); end a sync call's thread.
        try:
            bridge = self._l0_bridge
            if bridge is not None:
                self._l0.close(bridge)
        except Exception:
            pass
