"""LiteLLM adapter: ``litellm.acompletion(..., stream=True)`` streams.

LiteLLM's ``CustomStreamWrapper`` yields ``ModelResponseStream`` chunks in the OpenAI Chat
Completions shape, so they go through the OpenAI interpreter
(:func:`l0.adapters.openai.openai_events`). Detection looks at the stream's module only:
importing ``litellm`` takes seconds, and a stream from LiteLLM means it is imported already.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from l0.adapters.openai import OpenAIDecoder, openai_events
from l0.types import Event

__all__ = ["LiteLLMAdapter"]


class LiteLLMAdapter:
    """Adapter for LiteLLM streams (``CustomStreamWrapper``), any of its 100+ providers.

    LiteLLM chunks keep most fields in pydantic "extra" storage, which makes each field read
    slower than on openai's own chunks; the adapter's cost is still small next to LiteLLM's.
    """

    name = "litellm"

    def detect(self, stream: Any) -> bool:
        """True for an async-iterable object defined in a ``litellm`` module."""
        module = type(stream).__module__
        return (module == "litellm" or module.startswith("litellm.")) and hasattr(
            stream, "__aiter__"
        )

    def wrap(self, stream: Any) -> AsyncGenerator[Event, None]:
        """Turn LiteLLM's chunks into events; never raises (see :mod:`l0.adapters.openai`)."""
        return openai_events(stream, source=self.name)

    def decoder(self, stream: Any) -> OpenAIDecoder:
        """The runtime's per-chunk reader of the stream (the OpenAI one)."""
        return OpenAIDecoder(stream, source=self.name)
