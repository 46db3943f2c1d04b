"""OpenAI adapters: Chat Completions chunks and Responses API stream events.

One interpreter serves every OpenAI-shaped stream: openai's ``AsyncStream`` (of
``ChatCompletionChunk`` or of Responses events), the SDK's ``chat.completions.stream()``
helper, LiteLLM's ``CustomStreamWrapper`` (see :mod:`l0.adapters.litellm`) and any async
iterator of equivalent objects or dicts. It decides per chunk class what it is looking at, so
an adapter picked for one shape still handles the other.

Chat Completions, what becomes what:

- ``choices[0].delta.content`` → ``TOKEN`` (empty content is skipped, text is never altered);
- each ``delta.tool_calls[i]`` fragment (and legacy ``delta.function_call``) →
  ``TOOL_CALL_DELTA``; fragments are merged by ``index`` and each merged call becomes one
  ``TOOL_CALL`` when the choice's ``finish_reason`` arrives (or at the end of the stream);
- ``delta.refusal`` text or ``finish_reason="content_filter"`` → ``ERROR`` with
  :class:`~l0.errors.ModelRefusalError` at the end of the stream;
- ``usage`` (the final chunk with ``stream_options={"include_usage": True}``) → the
  ``COMPLETE`` event's ``usage``.
- the end of the stream → ``COMPLETE``. A stream that ends without any ``finish_reason`` is
  a body cut short without an error (a proxy or server closing early): it becomes an
  ``ERROR`` with :class:`~l0.errors.TruncatedStreamError` (NETWORK, retried), because the text
  may be incomplete, and its unfinished tool calls are not emitted.

Only the choice with index 0 is read: with ``n > 1`` the other choices' chunks are skipped.

Responses API: ``response.output_text.delta`` → ``TOKEN``; function calls →
``TOOL_CALL_DELTA`` / ``TOOL_CALL`` (index = the item's ``output_index``, id = its
``call_id``); ``response.completed`` → ``COMPLETE`` with usage and a Chat-Completions
``finish_reason`` (``"stop"`` or ``"tool_calls"``); ``response.failed`` and ``error`` events →
``ERROR`` with :class:`~l0.errors.ProviderStreamError`; ``response.incomplete`` →
``COMPLETE`` with ``finish_reason="length"`` for ``max_output_tokens`` (as Chat Completions
reports a truncated answer), :class:`~l0.errors.ModelRefusalError` for ``content_filter``, and
:class:`~l0.errors.ProviderStreamError` otherwise. Other Responses events are ignored.
"""

from __future__ import annotations

import enum
import sys
import typing
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

import orjson

from l0._classify import classify
from l0.adapters._close import close_iteration
from l0.adapters.base import decoded_events, error_events, invalid_chunk
from l0.errors import (
    InvalidStreamError,
    ModelRefusalError,
    ProviderStreamError,
    TruncatedStreamError,
)
from l0.types import ErrorCategory, Event, EventType, ToolCall, Usage

__all__ = ["OpenAIAdapter", "OpenAIDecoder", "OpenAIResponsesAdapter", "openai_events"]

_TOKEN = EventType.TOKEN
_TOOL_CALL_DELTA = EventType.TOOL_CALL_DELTA
_TOOL_CALL = EventType.TOOL_CALL
_COMPLETE = EventType.COMPLETE
_ERROR = EventType.ERROR


class OpenAIAdapter:
    """Adapter for OpenAI Chat Completions streams.

    Detects openai's ``AsyncStream`` and the ``chat.completions.stream()`` helper stream.
    Pass ``adapter="openai"`` to use it for any async iterator of ``ChatCompletionChunk``
    objects or of equivalent dicts (auto-detection cannot look inside a plain generator).
    Responses API events met on the way are handled too.
    """

    name = "openai"

    def detect(self, stream: Any) -> bool:
        """True for openai's ``AsyncStream`` and ``AsyncChatCompletionStream``."""
        openai = sys.modules.get("openai")
        if openai is None:
            return False
        if isinstance(stream, openai.AsyncStream):
            return True
        helpers = sys.modules.get("openai.lib.streaming.chat")
        return helpers is not None and isinstance(stream, helpers.AsyncChatCompletionStream)

    def wrap(self, stream: Any) -> AsyncGenerator[Event, None]:
        """Turn the stream's chunks into events; never raises (see the module docstring)."""
        return openai_events(stream, source=self.name)

    def decoder(self, stream: Any) -> OpenAIDecoder:
        """The runtime's per-chunk reader of the stream (see :class:`OpenAIDecoder`)."""
        return OpenAIDecoder(stream, source=self.name)


class OpenAIResponsesAdapter:
    """Adapter for OpenAI Responses API streams (``client.responses.create(stream=True)``
    and the ``client.responses.stream()`` helper)."""

    name = "openai_responses"

    def detect(self, stream: Any) -> bool:
        """True for an ``AsyncStream`` of Responses events and for ``AsyncResponseStream``."""
        openai = sys.modules.get("openai")
        if openai is None:
            return False
        if isinstance(stream, openai.AsyncStream):
            return _is_responses_type(getattr(stream, "_cast_to", None))
        helpers = sys.modules.get("openai.lib.streaming.responses")
        return helpers is not None and isinstance(stream, helpers.AsyncResponseStream)

    def wrap(self, stream: Any) -> AsyncGenerator[Event, None]:
        """Turn the stream's events into l0 events; never raises."""
        return openai_events(stream, source=self.name)

    def decoder(self, stream: Any) -> OpenAIDecoder:
        """The runtime's per-chunk reader of the stream (see :class:`OpenAIDecoder`)."""
        return OpenAIDecoder(stream, source=self.name)


def _is_responses_type(tp: Any, depth: int = 0) -> bool:
    # openai types a Responses stream as AsyncStream[Annotated[Union[...events], ...]]:
    # the union's members live in openai.types.responses.
    if isinstance(tp, type):
        return tp.__module__.startswith("openai.types.responses")
    if depth > 3:
        return False
    return any(_is_responses_type(arg, depth + 1) for arg in typing.get_args(tp))


# --- the shared interpreter ------------------------------------------------------------------


class _Kind(enum.Enum):
    CHAT = 1  # a ChatCompletionChunk-shaped object
    WRAPPED = 2  # the chat helper's ChunkEvent: the chunk is in ``.chunk``
    RESPONSES = 3  # a Responses API stream event
    SKIP = 4  # the chat helper's derived events, which repeat what the chunks said


def openai_events(stream: Any, *, source: str) -> AsyncGenerator[Event, None]:
    """The events of an OpenAI-shaped stream; ``source`` names the adapter in error messages.

    Shared by the OpenAI and LiteLLM adapters. Never raises ``Exception``: a failure of the
    stream becomes one final ``ERROR`` event carrying that exception, a chunk of the wrong
    shape one carrying :class:`~l0.errors.InvalidStreamError`. The provider stream is closed
    when the generator ends, however it ends (exhausted, failed, ``aclose()``, cancelled).
    """
    try:
        decoder = OpenAIDecoder(stream, source=source)
    except InvalidStreamError as error:
        return error_events(error, stream)
    return decoded_events(decoder)


class OpenAIDecoder:
    """The :class:`~l0.adapters.base.Decoder` of an OpenAI-shaped stream (one attempt).

    ``text`` is the per-chunk fast path: once a ``ChatCompletionChunk``-like class has been
    seen (and the response's id read from it), a chunk of that class whose only news is one
    piece of content for choice 0 is answered with a few attribute reads. Anything else —
    the first chunk, tool calls, finish reasons, usage, refusals, dicts, Responses events —
    goes through ``events``.
    """

    __slots__ = (
        "_chat_cls",
        "_delta_cls",
        "_fast",
        "_kinds",
        "_responses",
        "chat",
        "chunks",
        "source",
        "stream",
    )

    def __init__(self, stream: Any, *, source: str) -> None:
        if not hasattr(stream, "__aiter__"):
            raise InvalidStreamError(
                f"{source} adapter needs an async iterable, got {type(stream).__qualname__}"
            )
        self.stream = stream
        self.source = source
        self.chunks: AsyncIterator[Any] = stream.__aiter__()
        self.chat = _ChatState()
        self._responses: _ResponsesState | None = None
        self._kinds: dict[type[Any], _Kind] = {}
        # _chat_cls: the chat chunk class read without classifying; _fast: the same class once
        # its chunks may take the text fast path; _delta_cls: the Responses text-delta class.
        self._chat_cls: type[Any] | None = None
        self._fast: type[Any] | None = None
        self._delta_cls: type[Any] | None = None

    def text(self, chunk: Any) -> str | None:
        cls = chunk.__class__
        if cls is self._fast:
            # Field values are read from the models' ``__dict__``: pydantic models define
            # ``__getattr__``, which keeps CPython from specializing attribute reads on them
            # (~35 ns each), while a dict subscript is a few ns. Three ``__dict__`` reads
            # replace eight attribute reads. Anything unexpected falls to ``events``.
            try:
                fields = chunk.__dict__
                (choice,) = fields["choices"]
                if fields["usage"] is not None:
                    return None
                choice_fields = choice.__dict__
                if choice_fields["index"] or choice_fields["finish_reason"] is not None:
                    return None
                delta = choice_fields["delta"].__dict__
                content = delta["content"]
                if (
                    content.__class__ is str
                    and content
                    and not delta["tool_calls"]
                    and delta["function_call"] is None
                ):
                    return content
            except (KeyError, ValueError, TypeError, AttributeError):
                pass  # no choice (a usage chunk), several, none at all, another layout
            return None
        if cls is self._delta_cls:
            text = chunk.delta
            if text.__class__ is str and text:
                return text
        return None

    def events(self, chunk: Any) -> Sequence[Event]:
        source = self.source
        view = chunk
        if chunk.__class__ is not self._chat_cls:
            kind, view = _classify(chunk, self._kinds, source)
            if kind is _Kind.CHAT:
                if view is chunk:
                    self._chat_cls = chunk.__class__
            elif kind is _Kind.WRAPPED:
                view = chunk.chunk
            elif kind is _Kind.RESPONSES:
                return self._responses_event(view)
            else:
                return ()
        out: list[Event] = []
        chat = self.chat
        choices = view.choices
        if choices:
            choice = choices[0]
            if choice.index:
                choice = _choice_zero(choices, source)
            if choice is not None:
                delta = choice.delta
                if delta is not None:
                    content = delta.content
                    if content:
                        if content.__class__ is not str and not isinstance(content, str):
                            raise _not_text(content, source)
                        out.append(Event(_TOKEN, content))
                    else:
                        # A refusal streams instead of content, never beside it; reading it
                        # only here spares content chunks a slow miss on LiteLLM objects.
                        refusal = getattr(delta, "refusal", None)
                        if refusal:
                            chat.refusal.append(refusal)
                    tool_calls = delta.tool_calls
                    if tool_calls:
                        for call in tool_calls:
                            out.append(chat.tool_call_delta(call))
                    function_call = delta.function_call
                    if function_call is not None:
                        out.append(chat.function_call_delta(function_call))
                finish_reason = choice.finish_reason
                if finish_reason is not None:
                    chat.finish_reason = finish_reason
                    if chat.calls:
                        out.extend(chat.take_tool_calls())
        usage = getattr(view, "usage", None)
        if usage is not None:
            chat.usage = _usage(usage)
        if chat.response_id is None:
            chat.capture(view)
        if (
            chat.response_id is not None
            and view is chunk
            and self._fast is None
            and chunk.__class__ is self._chat_cls
            and _keeps_fields(chunk)
        ):
            self._fast = chunk.__class__
        return out

    def _responses_event(self, view: Any) -> Sequence[Event]:
        responses = self._responses
        if responses is None:
            responses = self._responses = _ResponsesState()
        event_type = view.type
        if event_type == "response.output_text.delta":
            text = view.delta
            if view.__class__ is not _MappingView:
                self._delta_cls = view.__class__
            if not text:
                return ()
            if not isinstance(text, str):
                raise _not_text(text, self.source)
            return (Event(_TOKEN, text),)
        event = responses.feed(view, event_type)
        if responses.failure is not None:
            failure = responses.failure
            error = Event(_ERROR, error=failure, data=responses.error_data(), usage=responses.usage)
            return (error,) if event is None else (event, error)
        return () if event is None else (event,)

    def _meta(self) -> _ChatState | _ResponsesState:
        return self._responses if self._responses is not None else self.chat

    def finish(self) -> Sequence[Event]:
        return list(self._meta().finish())

    def failed(self, error: BaseException) -> Event:
        failure = error
        if isinstance(error, Exception) and classify(error).category is ErrorCategory.INTERNAL:
            # Raised by the SDK while reading the stream (e.g. a JSONDecodeError on a malformed
            # SSE line, or LiteLLM's MidStreamFallbackError wrapping one): provider garbage,
            # not a bug in the caller's code.
            failure = InvalidStreamError(
                f"{self.source} stream could not be read ({type(error).__name__}: {error})"
            )
            failure.__cause__ = error
        meta = self._meta()
        return Event(_ERROR, error=failure, data=meta.error_data(), usage=meta.usage)

    def invalid(self, chunk: Any, error: Exception) -> Event:
        meta = self._meta()
        return Event(
            _ERROR,
            error=invalid_chunk(error, chunk, self.source),
            data=meta.error_data(),
            usage=meta.usage,
        )

    async def aclose(self) -> None:
        await close_iteration(self.stream, self.chunks)


def _keeps_fields(chunk: Any) -> bool:
    """Whether ``chunk`` keeps its fields in its ``__dict__`` (pydantic models do), as the
    text fast path reads them."""
    fields = getattr(chunk, "__dict__", None)
    return isinstance(fields, dict) and "choices" in fields and "usage" in fields


def _classify(chunk: Any, kinds: dict[type[Any], _Kind], source: str) -> tuple[_Kind, Any]:
    """What ``chunk`` is, and the object to read it through (a view for dicts)."""
    cls = chunk.__class__
    kind = kinds.get(cls)
    if kind is not None:
        return kind, chunk
    if cls is dict or isinstance(chunk, Mapping):
        # Dicts are classified one by one: any shape can come next in the same dict class.
        if "choices" in chunk or "usage" in chunk:
            return _Kind.CHAT, _MappingView(chunk)
        event_type = chunk.get("type")
        if isinstance(event_type, str) and _is_responses_event(event_type):
            return _Kind.RESPONSES, _MappingView(chunk)
        raise InvalidStreamError(
            f"{source} adapter got a dict chunk with neither 'choices', 'usage' nor a "
            "Responses event 'type'"
        )
    if hasattr(chunk, "choices"):
        kind = _Kind.CHAT
    else:
        event_type = getattr(chunk, "type", None)
        if not isinstance(event_type, str):
            raise InvalidStreamError(
                f"{source} adapter got a chunk of type {cls.__module__}.{cls.__qualname__}; "
                "expected an OpenAI ChatCompletionChunk, a Responses stream event or an "
                "equivalent dict"
            )
        if _is_responses_event(event_type):
            kind = _Kind.RESPONSES
        elif event_type == "chunk" and hasattr(chunk, "chunk"):
            kind = _Kind.WRAPPED
        elif event_type.startswith(_HELPER_EVENTS):
            kind = _Kind.SKIP
        else:
            raise InvalidStreamError(
                f"{source} adapter got an unsupported stream event of type {event_type!r}"
            )
    kinds[cls] = kind
    return kind, chunk


# What ``chat.completions.stream()`` derives from each chunk; l0 reads the chunk itself.
_HELPER_EVENTS = ("content.", "refusal.", "tool_calls.", "logprobs.")


def _is_responses_event(event_type: str) -> bool:
    return event_type.startswith("response.") or event_type == "error"


def _choice_zero(choices: Any, source: str) -> Any:
    """The choice with index 0 (``n > 1`` streams send each choice in its own chunks)."""
    for choice in choices:
        index = choice.index
        if not index:
            return choice
        if not isinstance(index, int):
            raise InvalidStreamError(
                f"{source} adapter got a choice index of type {type(index).__qualname__}"
            )
    return None


def _not_text(value: Any, source: str) -> InvalidStreamError:
    return InvalidStreamError(
        f"{source} adapter got content of type {type(value).__qualname__}, expected str"
    )


class _MappingView:
    """Attribute access over a dict chunk, so one interpreter reads objects and dicts.
    Missing keys read as ``None``, like the SDK's optional fields."""

    __slots__ = ("_raw",)

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self._raw = raw

    def __getattr__(self, name: str) -> Any:
        return _view(self._raw.get(name))


def _field(name: str) -> property:
    def read(self: _MappingView) -> Any:
        return _view(self._raw.get(name))

    return property(read)


# The fields read on every chunk become properties: a plain ``__getattr__`` only runs after
# the normal lookup has failed and built an AttributeError, which costs more than the read.
for _name in (
    "choices",
    "index",
    "delta",
    "content",
    "tool_calls",
    "function_call",
    "finish_reason",
    "usage",
    "id",
    "type",
):
    setattr(_MappingView, _name, _field(_name))
del _name


def _view(value: Any) -> Any:
    # Exact-type checks first: an ABC isinstance check on every field read would triple the
    # cost of a dict chunk.
    cls = value.__class__
    if value is None or cls is str:
        return value
    if cls is dict:
        return _MappingView(value)
    if cls is list:
        return [_view(item) for item in value]
    if isinstance(value, Mapping):
        return _MappingView(value)
    return value


_USAGE_KEYS = (
    "prompt_tokens",
    "completion_tokens",
    "input_tokens",
    "output_tokens",
    "total_tokens",
)


def _usage(raw: Any) -> Usage:
    if isinstance(raw, _MappingView):
        raw = raw._raw
    if isinstance(raw, Mapping):
        return Usage.from_mapping(raw)
    if getattr(raw.__class__, "__pydantic_fields__", None) is not None:
        # A pydantic model keeps its fields in __dict__ and its extras apart: getattr for an
        # absent key raises (and formats) an AttributeError, ~2 µs a key.
        extra = raw.__pydantic_extra__
        return Usage.from_mapping({**raw.__dict__, **extra} if extra else raw.__dict__)
    return Usage.from_mapping({key: getattr(raw, key, None) for key in _USAGE_KEYS})


def _parse_arguments(arguments: str) -> Any:
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return None


class _PartialCall:
    """A tool call whose fragments are still arriving."""

    __slots__ = ("done", "id", "index", "name", "parts")

    def __init__(self, index: int) -> None:
        self.index = index
        self.id: str | None = None
        self.name: str | None = None
        self.parts: list[str] = []
        self.done = False

    def complete(self, arguments: str | None = None) -> Event:
        """The ``TOOL_CALL`` event; ``arguments`` (when the provider sent the full text)
        wins over the concatenated fragments."""
        self.done = True
        text = arguments if isinstance(arguments, str) else "".join(self.parts)
        call = ToolCall(self.index, self.id, self.name, text, _parse_arguments(text))
        return Event(_TOOL_CALL, data=call.as_dict())


class _ChatState:
    """What a Chat Completions stream has said so far beyond its tokens."""

    __slots__ = (
        "calls",
        "finish_reason",
        "last_index",
        "model",
        "refusal",
        "response_id",
        "system_fingerprint",
        "usage",
    )

    def __init__(self) -> None:
        self.response_id: str | None = None
        self.model: str | None = None
        self.system_fingerprint: str | None = None
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.calls: dict[int, _PartialCall] = {}
        self.last_index: int | None = None
        self.refusal: list[str] = []

    def capture(self, chunk: Any) -> None:
        # Azure's first chunk has an empty id and model (it carries only filter results).
        response_id = getattr(chunk, "id", None)
        if response_id:
            self.response_id = response_id
            self.model = getattr(chunk, "model", None) or self.model
            self.system_fingerprint = getattr(chunk, "system_fingerprint", None)

    def tool_call_delta(self, fragment: Any) -> Event:
        function = getattr(fragment, "function", None)
        name = arguments = None
        if function is not None:
            name = function.name
            arguments = function.arguments
        call_id = fragment.id
        index = fragment.index
        if not isinstance(index, int):
            # Some OpenAI-compatible servers omit the index: a new id starts a new call.
            known = self.last_index
            new_call = known is None or (call_id and call_id != self.calls[known].id)
            index = len(self.calls) if new_call else known
        return self._merge(index, call_id, name, arguments)

    def function_call_delta(self, fragment: Any) -> Event:
        return self._merge(0, None, fragment.name, fragment.arguments)

    def _merge(self, index: int, call_id: Any, name: Any, arguments: Any) -> Event:
        call = self.calls.get(index)
        if call is None:
            call = self.calls[index] = _PartialCall(index)
        self.last_index = index
        if call.id is None and call_id:
            call.id = call_id
        if call.name is None and name:
            call.name = name
        if arguments:
            call.parts.append(arguments)
        else:
            arguments = ""
        return Event(
            _TOOL_CALL_DELTA,
            data={"index": index, "id": call_id, "name": name, "arguments": arguments},
        )

    def take_tool_calls(self) -> list[Event]:
        events = [self.calls[index].complete() for index in sorted(self.calls)]
        self.calls = {}
        self.last_index = None
        return events

    def error_data(self) -> dict[str, Any] | None:
        if self.response_id is None and self.model is None:
            return None
        return {"response_id": self.response_id, "model": self.model}

    def finish(self) -> Iterator[Event]:
        if self.finish_reason is None and not self.refusal:
            error = TruncatedStreamError("the stream ended without a finish_reason")
            yield Event(_ERROR, error=error, data=self.error_data(), usage=self.usage)
            return
        yield from self.take_tool_calls()
        if self.refusal or self.finish_reason == "content_filter":
            message = "".join(self.refusal) or (
                "the provider's content filter stopped the response "
                "(finish_reason='content_filter')"
            )
            yield Event(
                _ERROR, error=ModelRefusalError(message), data=self.error_data(), usage=self.usage
            )
            return
        yield Event(
            _COMPLETE,
            usage=self.usage,
            data={
                "finish_reason": self.finish_reason,
                "response_id": self.response_id,
                "model": self.model,
                "system_fingerprint": self.system_fingerprint,
            },
        )


class _ResponsesState:
    """What a Responses API stream has said so far beyond its text deltas."""

    __slots__ = (
        "calls",
        "completed",
        "failure",
        "finish_reason",
        "model",
        "refusal",
        "response_id",
        "usage",
    )

    def __init__(self) -> None:
        self.response_id: str | None = None
        self.model: str | None = None
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.completed = False
        self.calls: dict[int, _PartialCall] = {}
        self.refusal: list[str] = []
        self.failure: Exception | None = None

    def feed(self, event: Any, event_type: str) -> Event | None:
        """Apply one event (other than a text delta); return the l0 event it makes, if any.
        A failure is left in ``self.failure`` for the caller to end the stream with."""
        if event_type == "response.function_call_arguments.delta":
            call = self._call(event.output_index)
            arguments = event.delta or ""
            if arguments:
                call.parts.append(arguments)
            data = {"index": call.index, "id": None, "name": None, "arguments": arguments}
            return Event(_TOOL_CALL_DELTA, data=data)
        if event_type == "response.output_item.added":
            item = event.item
            if item is None or item.type != "function_call":
                return None
            call = self._call(event.output_index)
            call.id = item.call_id
            call.name = item.name
            arguments = item.arguments or ""
            if arguments:
                call.parts.append(arguments)
            data = {"index": call.index, "id": call.id, "name": call.name, "arguments": arguments}
            return Event(_TOOL_CALL_DELTA, data=data)
        if event_type == "response.function_call_arguments.done":
            call = self._call(event.output_index)
            if call.done:
                return None
            call.name = call.name or getattr(event, "name", None)
            return call.complete(event.arguments)
        if event_type == "response.output_item.done":
            item = event.item
            if item is None or item.type != "function_call":
                return None
            call = self._call(event.output_index)
            if call.done:
                return None
            call.id = call.id or item.call_id
            call.name = call.name or item.name
            return call.complete(item.arguments)
        if event_type == "response.refusal.delta":
            if event.delta:
                self.refusal.append(event.delta)
            return None
        if event_type in ("response.created", "response.in_progress"):
            self._capture(event.response)
            return None
        if event_type == "response.completed":
            self._capture(event.response)
            self.completed = True
            return None
        if event_type == "response.failed":
            self._capture(event.response)
            error = event.response.error if event.response is not None else None
            if error is None:
                self.failure = ProviderStreamError("the response failed without an error object")
            else:
                self.failure = ProviderStreamError(
                    error.message or "the response failed", provider_code=error.code
                )
            return None
        if event_type == "response.incomplete":
            self._incomplete(event.response)
            return None
        if event_type == "error":
            self.failure = ProviderStreamError(
                event.message or "the provider reported an error in the stream",
                provider_code=event.code,
            )
        return None

    def _call(self, index: int) -> _PartialCall:
        call = self.calls.get(index)
        if call is None:
            call = self.calls[index] = _PartialCall(index)
        return call

    def _capture(self, response: Any) -> None:
        if response is None:
            return
        self.response_id = response.id or self.response_id
        self.model = response.model or self.model
        usage = response.usage
        if usage is not None:
            self.usage = _usage(usage)

    def _incomplete(self, response: Any) -> None:
        self._capture(response)
        details = response.incomplete_details if response is not None else None
        reason = details.reason if details is not None else None
        if reason == "steered":
            return  # WebSocket steering: a successor response follows in the same stream
        if reason == "max_output_tokens":
            self.completed = True
            self.finish_reason = "length"
        elif reason == "content_filter":
            self.failure = ModelRefusalError(
                "the provider's content filter stopped the response (incomplete: content_filter)"
            )
        else:
            self.failure = ProviderStreamError(
                f"the response is incomplete ({reason or 'no reason given'})",
                provider_code=reason,
            )

    def error_data(self) -> dict[str, Any] | None:
        if self.response_id is None and self.model is None:
            return None
        return {"response_id": self.response_id, "model": self.model}

    def finish(self) -> Iterator[Event]:
        finish_reason = self.finish_reason
        if finish_reason is None and self.completed:
            finish_reason = "tool_calls" if self.calls else "stop"
        if finish_reason is None and not self.refusal:
            truncated = TruncatedStreamError("the stream ended without response.completed")
            yield Event(_ERROR, error=truncated, data=self.error_data(), usage=self.usage)
            return
        for index in sorted(self.calls):
            call = self.calls[index]
            if not call.done:
                yield call.complete()
        if self.refusal:
            error = ModelRefusalError("".join(self.refusal))
            yield Event(_ERROR, error=error, data=self.error_data(), usage=self.usage)
            return
        yield Event(
            _COMPLETE,
            usage=self.usage,
            data={
                "finish_reason": finish_reason,
                "response_id": self.response_id,
                "model": self.model,
                "system_fingerprint": None,
            },
        )
