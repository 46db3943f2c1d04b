"""The adapter seam: turns a provider's stream into l0 :class:`Event`s.

An adapter must preserve text exactly, never raise (a failure becomes an ``ERROR`` event whose
``error`` is the exception), and emit at most one ``COMPLETE`` event, at the end. The runtime
synthesizes ``COMPLETE`` when an adapter does not.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from typing import Any, ClassVar, Protocol, runtime_checkable

from l0.types import Event

__all__ = ["Adapter", "Adapters", "NoAdapterError"]


@runtime_checkable
class Adapter(Protocol):
    """What an adapter provides. ``name`` identifies it in errors and telemetry."""

    name: str

    def detect(self, stream: Any) -> bool:
        """Return True if this adapter can handle ``stream``."""
        ...

    def wrap(self, stream: Any) -> AsyncIterator[Event]:
        """Convert the provider stream to l0 events."""
        ...


class NoAdapterError(TypeError):
    """No registered adapter recognizes the stream."""


class Adapters:
    """The registry used for auto-detection. Custom adapters are tried before built-in ones,
    newest first."""

    _custom: ClassVar[list[Adapter]] = []
    _builtin: ClassVar[list[Adapter] | None] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def register(cls, adapter: Adapter) -> None:
        """Add ``adapter`` for auto-detection (re-registering a name replaces it)."""
        if not isinstance(adapter, Adapter):
            raise TypeError(
                f"{adapter!r} is not an adapter: it needs `name`, `detect(stream)` and "
                "`wrap(stream)`"
            )
        with cls._lock:
            cls._custom = [a for a in cls._custom if a.name != adapter.name]
            cls._custom.insert(0, adapter)

    @classmethod
    def unregister(cls, name: str) -> bool:
        """Remove a custom adapter by name; returns whether one was removed."""
        with cls._lock:
            before = len(cls._custom)
            cls._custom = [a for a in cls._custom if a.name != name]
            return len(cls._custom) != before

    @classmethod
    def registered(cls) -> list[Adapter]:
        """Every adapter in detection order."""
        return [*cls._custom, *cls._builtins()]

    @classmethod
    def get(cls, name: str) -> Adapter:
        """The adapter called ``name``."""
        for adapter in cls.registered():
            if adapter.name == name:
                return adapter
        raise KeyError(f"no adapter named {name!r}")

    @classmethod
    def detect(cls, stream: Any) -> Adapter:
        """The first adapter whose ``detect`` accepts ``stream``."""
        for adapter in cls.registered():
            try:
                if adapter.detect(stream):
                    return adapter
            except Exception:  # a broken custom detect must not hide the built-in ones
                continue
        raise NoAdapterError(
            f"no adapter recognizes a stream of type {type(stream).__module__}."
            f"{type(stream).__qualname__}; pass adapter=... or register one with "
            "l0.Adapters.register()"
        )

    @classmethod
    def _builtins(cls) -> list[Adapter]:
        if cls._builtin is None:
            from l0.adapters.litellm import LiteLLMAdapter
            from l0.adapters.openai import OpenAIAdapter, OpenAIResponsesAdapter
            from l0.adapters.text import TextAdapter

            # Most specific first: LiteLLM's wrapper also yields OpenAI-shaped chunks.
            cls._builtin = [
                LiteLLMAdapter(),
                OpenAIResponsesAdapter(),
                OpenAIAdapter(),
                TextAdapter(),
            ]
        return cls._builtin
