"""Adapters that keep the SDK's own objects on l0's events, so the caller can get them back.

An instrumented call must hand the caller exactly what the SDK would have: its chunk objects,
its ``ChatCompletion``. l0's adapters turn those objects into events and drop them; the two
adapters here put them on ``Event.raw`` instead, always as a tuple:

- :class:`RawChunkAdapter` (streams) reads with l0's OpenAI decoder
  (:class:`l0.adapters.openai.OpenAIDecoder`). When an
  event comes out, the chunks read since the previous event are its ``raw``: chunks
  that make no event of their own (the role chunk, the finish chunk, the usage chunk, most
  Responses API events) ride on the next event, and whatever is left on ``COMPLETE``, which the
  session passes on. The caller therefore receives every chunk, in order, and none of a
  failed attempt's chunks that were not delivered.
- :class:`ResponseAdapter` (non-streaming calls) turns a ``ChatCompletion``, a LiteLLM
  ``ModelResponse``, a Responses API ``Response`` or an openai ``LegacyAPIResponse`` of one into
  the equivalent stream chunks (dicts) for the same interpreter, and puts the object itself on
  ``COMPLETE``: guardrails, tool calls, refusals, usage work as for a stream.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Sequence
from typing import Any

from l0.adapters.base import decoded_events
from l0.adapters.openai import OpenAIDecoder, openai_events
from l0.errors import InvalidStreamError
from l0.types import Event, EventType

__all__ = ["RawChunkAdapter", "RawChunkDecoder", "ResponseAdapter", "response_chunks"]

_COMPLETE = EventType.COMPLETE
_ERROR = EventType.ERROR
_NO_RAW: tuple[Any, ...] = ()
_text = OpenAIDecoder.text


class RawChunkDecoder(OpenAIDecoder):
    """l0's OpenAI decoder, putting the chunks read since the previous event on each event's
    ``raw``: the caller must get each one back. A plain content chunk with nothing pending
    takes the text fast path, and the runtime sets its event's ``raw`` to ``(chunk,)``
    (``keeps_chunks``)."""

    __slots__ = ("_pending",)

    keeps_chunks = True
    """The runtime puts ``(chunk,)`` on the events of chunks :meth:`text` answers."""

    def __init__(self, stream: Any, *, source: str) -> None:
        super().__init__(stream, source=source)
        self._pending: list[Any] = []

    def text(self, chunk: Any) -> str | None:
        # The fast path only when no chunk is waiting to ride on the next event: its event
        # then carries exactly this chunk, which the runtime attaches.
        if self._pending:
            return None
        return _text(self, chunk)

    def events(self, chunk: Any) -> Sequence[Event]:
        self._pending.append(chunk)
        return self._attach(super().events(chunk))

    def finish(self) -> Sequence[Event]:
        return self._attach(super().finish())

    def failed(self, error: BaseException) -> Event:
        return self._attach((super().failed(error),))[0]

    def invalid(self, chunk: Any, error: Exception) -> Event:
        return self._attach((super().invalid(chunk, error),))[0]

    def _attach(self, events: Sequence[Event]) -> Sequence[Event]:
        # Events are fresh objects of this decoder: setting raw is safe.
        for event in events:
            pending = self._pending
            if pending:
                event.raw = tuple(pending)
                pending.clear()
            else:
                event.raw = _NO_RAW
        return events


class RawChunkAdapter:
    """l0's OpenAI-shaped stream adapter, keeping the SDK's chunks on ``Event.raw``.

    One instance serves one instrumented call (all its attempts): :attr:`stream` is the
    provider stream of the latest attempt, for the SDK attributes the caller may read
    (``response``).

    Args:
        name: ``"openai"``, ``"openai_responses"`` or ``"litellm"``: the adapter name that
            telemetry reports, as for l0's own adapters.
    """

    __slots__ = ("_stream", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._stream: Any = None

    @property
    def stream(self) -> Any:
        """The latest attempt's provider stream (``None`` before the first one opened)."""
        return self._stream

    def detect(self, stream: Any) -> bool:
        return hasattr(stream, "__aiter__")

    def decoder(self, stream: Any) -> RawChunkDecoder:
        self._stream = stream
        return RawChunkDecoder(stream, source=self.name)

    def wrap(self, stream: Any) -> AsyncIterator[Event]:
        return decoded_events(self.decoder(stream))


class ResponseAdapter:
    """Events from one complete (non-streaming) response; ``COMPLETE.raw`` is ``(response,)``.

    Args:
        name: the adapter name telemetry reports.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def detect(self, stream: Any) -> bool:
        return True

    def wrap(self, stream: Any) -> AsyncIterator[Event]:
        return _response_events(stream, self.name)


async def _replay(chunks: Iterable[Any]) -> AsyncGenerator[Any, None]:
    for chunk in chunks:
        yield chunk


async def _response_events(response: Any, source: str) -> AsyncGenerator[Event, None]:
    try:
        chunks = response_chunks(response)
    except Exception as error:  # an adapter never raises: the session retries this attempt
        failure = InvalidStreamError(
            f"{source} adapter could not read a {type(response).__qualname__} response "
            f"({type(error).__name__}: {error})"
        )
        failure.__cause__ = error
        yield Event(_ERROR, error=failure)
        return
    whole = (response,)
    async for event in openai_events(_replay(chunks), source=source):
        event.raw = whole if event.type is _COMPLETE else _NO_RAW
        yield event


# --- complete responses as stream chunks ----------------------------------------------------


def response_chunks(response: Any) -> list[dict[str, Any]]:
    """The stream chunks (as dicts) equivalent to one complete response.

    Accepts a Chat Completions ``ChatCompletion`` (or LiteLLM's ``ModelResponse``), a
    Responses API ``Response``, or an openai ``LegacyAPIResponse`` wrapping either.

    Raises:
        TypeError: ``response`` is none of these.
    """
    if hasattr(response, "parse") and hasattr(response, "http_response"):
        # with_raw_response: the body was read already, parse() is synchronous and cached.
        response = response.parse()
    if getattr(response, "choices", None) is not None:
        return [_chat_chunk(response)]
    if getattr(response, "output", None) is not None and hasattr(response, "status"):
        return _responses_events(response)
    raise TypeError(f"not a chat completion or a response: {type(response).__qualname__}")


def _usage(usage: Any) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {
        key: getattr(usage, key, None)
        for key in (
            "prompt_tokens",
            "completion_tokens",
            "input_tokens",
            "output_tokens",
            "total_tokens",
        )
    }


def _chat_chunk(completion: Any) -> dict[str, Any]:
    choices = []
    for position, choice in enumerate(completion.choices):
        message = choice.message
        delta: dict[str, Any] = {
            "role": getattr(message, "role", None),
            "content": getattr(message, "content", None),
            "refusal": getattr(message, "refusal", None),
        }
        calls = getattr(message, "tool_calls", None)
        if calls:
            delta["tool_calls"] = [_tool_call(index, call) for index, call in enumerate(calls)]
        function_call = getattr(message, "function_call", None)
        if function_call is not None:
            delta["function_call"] = {
                "name": getattr(function_call, "name", None),
                "arguments": getattr(function_call, "arguments", None),
            }
        index = getattr(choice, "index", None)
        choices.append(
            {
                "index": index if isinstance(index, int) else position,
                "delta": delta,
                "finish_reason": getattr(choice, "finish_reason", None),
            }
        )
    return {
        "id": getattr(completion, "id", None),
        "model": getattr(completion, "model", None),
        "system_fingerprint": getattr(completion, "system_fingerprint", None),
        "choices": choices,
        "usage": _usage(getattr(completion, "usage", None)),
    }


def _tool_call(index: int, call: Any) -> dict[str, Any]:
    function = getattr(call, "function", None)
    if function is None:  # a custom tool: free-form input instead of JSON arguments
        custom = getattr(call, "custom", None)
        name = getattr(custom, "name", None)
        arguments = getattr(custom, "input", None)
    else:
        name = getattr(function, "name", None)
        arguments = getattr(function, "arguments", None)
    return {
        "index": index,
        "id": getattr(call, "id", None),
        "function": {"name": name, "arguments": arguments},
    }


def _responses_events(response: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    text: list[str] = []
    refusal: list[str] = []
    calls: list[dict[str, Any]] = []
    for index, item in enumerate(response.output or ()):
        kind = getattr(item, "type", None)
        if kind == "message":
            for part in getattr(item, "content", None) or ():
                part_type = getattr(part, "type", None)
                if part_type == "output_text":
                    text.append(getattr(part, "text", "") or "")
                elif part_type == "refusal":
                    refusal.append(getattr(part, "refusal", "") or "")
        elif kind == "function_call":
            calls.append(
                {
                    "type": "response.output_item.done",
                    "output_index": index,
                    "item": {
                        "type": "function_call",
                        "call_id": getattr(item, "call_id", None),
                        "name": getattr(item, "name", None),
                        "arguments": getattr(item, "arguments", None),
                    },
                }
            )
    joined = "".join(text)
    if joined:
        events.append({"type": "response.output_text.delta", "delta": joined})
    if refusal:
        events.append({"type": "response.refusal.delta", "delta": "".join(refusal)})
    events.extend(calls)
    details = getattr(response, "incomplete_details", None)
    error = getattr(response, "error", None)
    summary = {
        "id": getattr(response, "id", None),
        "model": getattr(response, "model", None),
        "usage": _usage(getattr(response, "usage", None)),
        "incomplete_details": (
            {"reason": getattr(details, "reason", None)} if details is not None else None
        ),
        "error": (
            {"message": getattr(error, "message", None), "code": getattr(error, "code", None)}
            if error is not None
            else None
        ),
    }
    status = getattr(response, "status", None)
    if status == "incomplete":
        events.append({"type": "response.incomplete", "response": summary})
    elif status == "failed":
        events.append({"type": "response.failed", "response": summary})
    else:
        events.append({"type": "response.completed", "response": summary})
    return events
