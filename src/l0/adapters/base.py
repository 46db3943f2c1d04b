"""The adapter seam: turns a provider's stream into l0 :class:`Event`s.

An adapter must preserve text exactly, never raise (a failure becomes an ``ERROR`` event whose
``error`` is the exception), and emit at most one ``COMPLETE`` event, at the end. The runtime
synthesizes ``COMPLETE`` when an adapter does not.

Two ways to write one:

- ``wrap(stream)``: an async iterator of events. Simple, and enough for a custom adapter.
- ``decoder(stream)`` (optional, preferred by the runtime): a :class:`Decoder`, which reads
  one chunk at a time *synchronously*. The session then awaits the provider's own iterator
  and decodes each chunk in its loop: no generator stands between the provider and the
  consumer, which is most of what a layer costs per chunk. The built-in adapters provide
  both; :func:`decoded_events` turns a decoder into the ``wrap()`` iterator.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

from l0.adapters._close import close_stream
from l0.errors import InvalidStreamError, StreamError
from l0.types import Event, EventType

__all__ = [
    "Adapter",
    "Adapters",
    "Decoder",
    "EventsDecoder",
    "NoAdapterError",
    "decoded_events",
    "error_events",
    "open_decoder",
]

_TOKEN = EventType.TOKEN
_ERROR = EventType.ERROR


@runtime_checkable
class Adapter(Protocol):
    """What an adapter provides. ``name`` identifies it in errors and telemetry."""

    name: str

    def detect(self, stream: Any) -> bool:
        """Return True if this adapter can handle ``stream``."""
        ...

    def wrap(self, stream: Any) -> AsyncIterator[Event]:
        """Convert the provider stream to l0 events. (An adapter may also provide
        ``decoder(stream)`` returning a :class:`Decoder`; the runtime then uses that.)"""
        ...


@runtime_checkable
class Decoder(Protocol):
    """One attempt's reading of one provider stream, a chunk at a time.

    The runtime awaits ``chunks.__anext__()`` itself and, for each chunk, calls :meth:`text`
    first: the fast path for a chunk that carries nothing but content text. Only when it
    returns ``None`` does it call :meth:`events`. Neither method awaits; an exception from
    either becomes :meth:`invalid`'s event. When ``chunks`` is exhausted the runtime takes
    :meth:`finish`'s events; when it raises, :meth:`failed`'s. :meth:`aclose` is awaited once,
    however the attempt ends.

    A decoder may set ``keeps_chunks = True``: the events of chunks :meth:`text` answers then
    carry ``raw=(chunk,)``, as an integration that hands the provider's own chunks back needs
    (its :meth:`events` sets ``raw`` itself).
    """

    chunks: AsyncIterator[Any]
    """The provider's chunk iterator (what the runtime awaits)."""

    def text(self, chunk: Any) -> str | None:
        """The chunk's text when it is a plain content chunk (non-empty ``str``), else
        ``None``: it must return ``None`` for any object it does not recognize."""
        ...

    def events(self, chunk: Any) -> Sequence[Event]:
        """Everything ``chunk`` means, in order (empty when it means nothing yet). An
        ``ERROR`` event ends the stream."""
        ...

    def finish(self) -> Sequence[Event]:
        """The events due when the stream ends: ``COMPLETE`` or ``ERROR``, maybe after the
        tool calls still pending."""
        ...

    def failed(self, error: BaseException) -> Event:
        """The ``ERROR`` event for ``error``, raised by the provider's iterator."""
        ...

    def invalid(self, chunk: Any, error: Exception) -> Event:
        """The ``ERROR`` event for a chunk :meth:`text` or :meth:`events` could not read."""
        ...

    async def aclose(self) -> None:
        """Release the provider stream (never raises ``Exception``)."""
        ...


def open_decoder(adapter: Adapter, stream: Any) -> Decoder:
    """``adapter``'s decoder for ``stream``: its own, or one over its ``wrap()`` events."""
    make = getattr(adapter, "decoder", None)
    if make is not None:
        decoder: Decoder = make(stream)
        return decoder
    return EventsDecoder(adapter.wrap(stream))


class EventsDecoder:
    """A :class:`Decoder` over an async iterator of ready-made events (an adapter's
    ``wrap()``): each event is passed on unchanged."""

    __slots__ = ("chunks",)

    def __init__(self, events: AsyncIterator[Event]) -> None:
        self.chunks = events.__aiter__()

    def text(self, chunk: Any) -> str | None:
        return None

    def events(self, chunk: Any) -> Sequence[Event]:
        if not isinstance(chunk, Event):
            raise InvalidStreamError(
                f"adapter yielded a {type(chunk).__qualname__}, expected l0.Event"
            )
        return (chunk,)

    def finish(self) -> Sequence[Event]:
        return ()

    def failed(self, error: BaseException) -> Event:
        # The adapter broke its contract (it must not raise): still one classified failure.
        return Event(_ERROR, error=error)

    def invalid(self, chunk: Any, error: Exception) -> Event:
        return Event(_ERROR, error=invalid_chunk(error, chunk, "adapter"))

    async def aclose(self) -> None:
        await close_stream(self.chunks)


def invalid_chunk(error: Exception, chunk: Any, source: str) -> Exception:
    """``error``, raised while reading ``chunk``, as the stream failure it stands for."""
    if isinstance(error, StreamError):
        return error
    failure = InvalidStreamError(
        f"{source} adapter could not interpret a {type(chunk).__qualname__} chunk "
        f"({type(error).__name__}: {error})"
    )
    failure.__cause__ = error
    return failure


async def decoded_events(decoder: Decoder) -> AsyncGenerator[Event, None]:
    """A decoder's events as an async iterator (what an adapter's ``wrap()`` returns). Never
    raises ``Exception``: a failure is the last event, an ``ERROR``. Closes the stream
    however it ends."""
    try:
        chunks = decoder.chunks
        keeps_chunks = getattr(decoder, "keeps_chunks", False) is True
        while True:
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                break
            except Exception as error:
                yield decoder.failed(error)
                return
            try:
                text = decoder.text(chunk)
                if text is None:
                    events = decoder.events(chunk)
                else:
                    events = (Event(_TOKEN, text, raw=(chunk,) if keeps_chunks else None),)
            except Exception as error:
                yield decoder.invalid(chunk, error)
                return
            for event in events:
                yield event
                if event.type is _ERROR:
                    return
        for event in decoder.finish():
            yield event
    finally:
        await decoder.aclose()


async def error_events(error: Exception, stream: Any) -> AsyncGenerator[Event, None]:
    """What ``wrap()`` returns for a stream it cannot read at all: one ``ERROR`` event (the
    stream is closed first)."""
    await close_stream(stream)
    yield Event(_ERROR, error=error)


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
