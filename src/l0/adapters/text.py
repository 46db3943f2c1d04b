"""Text adapter: any async iterator of ``str``.

The last resort of auto-detection. Each non-empty string becomes one ``TOKEN`` event, exactly
as given; the stream's end becomes ``COMPLETE``. Only async iterables are accepted: wrap a
sync iterable in an async generator (l0 never iterates blocking sources on the event loop).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from l0.adapters._close import close_iteration
from l0.errors import InvalidStreamError
from l0.types import Event, EventType

__all__ = ["TextAdapter"]

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
        return _text_events(stream)


async def _text_events(stream: Any) -> AsyncGenerator[Event, None]:
    iterator: Any = None
    failure: BaseException | None = None
    try:
        if not hasattr(stream, "__aiter__"):
            raise InvalidStreamError(
                f"text adapter needs an async iterable of str, got {type(stream).__qualname__}"
            )
        iterator = stream.__aiter__()
        async for item in iterator:
            if item.__class__ is str or isinstance(item, str):
                if item:
                    yield Event(_TOKEN, item)
            else:
                cls = type(item)
                failure = InvalidStreamError(
                    f"text adapter got a {cls.__module__}.{cls.__qualname__} item, expected "
                    "str; for provider chunks pass the matching adapter (e.g. adapter='openai')"
                )
                break
    except Exception as error:
        failure = error
    finally:
        await close_iteration(stream, iterator)
    if failure is not None:
        yield Event(EventType.ERROR, error=failure)
        return
    data = {"finish_reason": None, "response_id": None, "model": None, "system_fingerprint": None}
    yield Event(EventType.COMPLETE, data=data)
