"""Text adapter: any async iterator of ``str``.

The last resort of auto-detection. Each non-empty string becomes one ``TOKEN`` event, exactly
as given; the stream's end becomes ``COMPLETE``. Only async iterables are accepted: wrap a
sync iterable in an async generator (l0 never iterates blocking sources on the event loop).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

from l0.adapters._close import close_iteration
from l0.adapters.base import decoded_events, error_events, invalid_chunk
from l0.errors import InvalidStreamError
from l0.types import Event, EventType

__all__ = ["TextAdapter", "TextDecoder"]

_TOKEN = EventType.TOKEN


class TextAdapter:
    """Adapter for async iterators of ``str``.

    Example::

        async def words():
            yield "Hello"
            yield ", world"

        result = await l0.run(stream=words)
    """

    name = "text"

    def detect(self, stream: Any) -> bool:
        """True for anything async-iterable (so it must stay last in detection order)."""
        return hasattr(stream, "__aiter__")

    def wrap(self, stream: Any) -> AsyncGenerator[Event, None]:
        """Turn the strings into events; never raises. Anything but a ``str`` in the stream
        ends it with an ``ERROR`` event carrying :class:`~l0.errors.InvalidStreamError`."""
        try:
            decoder = self.decoder(stream)
        except InvalidStreamError as error:
            return error_events(error, stream)
        return decoded_events(decoder)

    def decoder(self, stream: Any) -> TextDecoder:
        """The runtime's per-chunk reader of the stream."""
        return TextDecoder(stream)


class TextDecoder:
    """The :class:`~l0.adapters.base.Decoder` of an async iterator of ``str``."""

    __slots__ = ("chunks", "stream")

    def __init__(self, stream: Any) -> None:
        if not hasattr(stream, "__aiter__"):
            raise InvalidStreamError(
                f"text adapter needs an async iterable of str, got {type(stream).__qualname__}"
            )
        self.stream = stream
        self.chunks: AsyncIterator[Any] = stream.__aiter__()

    def text(self, chunk: Any) -> str | None:
        if chunk.__class__ is str and chunk:
            return chunk
        return None

    def events(self, chunk: Any) -> Sequence[Event]:
        if isinstance(chunk, str):
            return (Event(_TOKEN, str(chunk)),) if chunk else ()
        cls = type(chunk)
        raise InvalidStreamError(
            f"text adapter got a {cls.__module__}.{cls.__qualname__} item, expected "
            "str; for provider chunks pass the matching adapter (e.g. adapter='openai')"
        )

    def finish(self) -> Sequence[Event]:
        data = {
            "finish_reason": None,
            "response_id": None,
            "model": None,
            "system_fingerprint": None,
        }
        return (Event(EventType.COMPLETE, data=data),)

    def failed(self, error: BaseException) -> Event:
        return Event(EventType.ERROR, error=error)

    def invalid(self, chunk: Any, error: Exception) -> Event:
        return Event(EventType.ERROR, error=invalid_chunk(error, chunk, "text"))

    async def aclose(self) -> None:
        await close_iteration(self.stream, self.chunks)
