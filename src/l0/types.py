"""The data l0 hands to its users: stream events, session state, error taxonomy.

Everything here is plain data. The runtime fills it; adapters, guardrails and users read it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from l0.errors import L0Error
    from l0.guardrails.base import GuardrailViolation

__all__ = [
    "AttemptContext",
    "AttemptReason",
    "ErrorCategory",
    "ErrorCode",
    "ErrorRecord",
    "Event",
    "EventType",
    "State",
    "ToolCall",
    "Usage",
]


class EventType(str, enum.Enum):
    """What one :class:`Event` carries."""

    TOKEN = "token"
    """A piece of content text (``event.text``)."""
    TOOL_CALL_DELTA = "tool_call_delta"
    """A fragment of a tool call still streaming (``event.data``: index, id, name,
    arguments)."""
    TOOL_CALL = "tool_call"
    """A complete tool call (``event.data``: id, name, arguments, parsed_arguments,
    index)."""
    RESET = "reset"
    """The text delivered so far belongs to a failed attempt: discard it."""
    COMPLETE = "complete"
    """The stream finished (``event.usage``, ``event.data``: finish_reason, response_id, model)."""
    ERROR = "error"
    """A failure (``event.error``): from an adapter, an attempt failure; from a session,
    terminal."""

    def __str__(self) -> str:
        return self.value


@dataclass(slots=True)
class Event:
    """One normalized stream event.

    Adapters create events; the runtime passes them on unchanged (it only stamps ``ts``), so
    treat an event you receive as read-only.

    Attributes:
        type: what the event carries.
        text: the content text of a ``TOKEN`` event (exactly as the provider sent it).
        data: the payload of tool-call, reset and complete events.
        usage: token usage on a ``COMPLETE`` event when the provider reported it.
        error: the exception of an ``ERROR`` event (an :class:`l0.L0Error` when terminal).
        ts: when the runtime received the event, in seconds on the session clock
            (``time.monotonic()`` unless a test clock is injected).
        raw: the provider object(s) behind the event, when an adapter keeps them (used by
            integrations that must hand the SDK's own chunks back to their caller).
    """

    type: EventType
    text: str | None = None
    data: Any = None
    usage: Usage | None = None
    error: BaseException | None = None
    ts: float = 0.0
    raw: Any = None

    @property
    def is_token(self) -> bool:
        return self.type is EventType.TOKEN

    @property
    def is_tool_call(self) -> bool:
        return self.type is EventType.TOOL_CALL

    @property
    def is_tool_call_delta(self) -> bool:
        return self.type is EventType.TOOL_CALL_DELTA

    @property
    def is_reset(self) -> bool:
        return self.type is EventType.RESET

    @property
    def is_complete(self) -> bool:
        return self.type is EventType.COMPLETE

    @property
    def is_error(self) -> bool:
        return self.type is EventType.ERROR


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage reported by the provider, in tokens."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Usage:
        """Build from an OpenAI-style (``prompt_tokens``) or GenAI-style (``input_tokens``) dict."""

        def pick(*keys: str) -> int | None:
            for key in keys:
                value = raw.get(key)
                if isinstance(value, int):
                    return value
            return None

        return cls(
            input_tokens=pick("input_tokens", "prompt_tokens"),
            output_tokens=pick("output_tokens", "completion_tokens"),
            total_tokens=pick("total_tokens"),
        )

    def __getitem__(self, key: str) -> int | None:
        # Lets the seed's dict-style usage (``usage["input_tokens"]``) keep working.
        if key not in ("input_tokens", "output_tokens", "total_tokens"):
            raise KeyError(key)
        value: int | None = getattr(self, key)
        return value


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A complete tool call, merged from its streamed deltas.

    Attributes:
        index: the provider's index of the call within the message.
        id: the provider's call id.
        name: the function name.
        arguments: the raw argument text, concatenated exactly as streamed.
        parsed_arguments: ``arguments`` parsed as JSON, or ``None`` when it is not valid JSON.
    """

    index: int
    id: str | None
    name: str | None
    arguments: str
    parsed_arguments: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "id": self.id,
            "name": self.name,
            "arguments": self.arguments,
            "parsed_arguments": self.parsed_arguments,
        }


class ErrorCategory(str, enum.Enum):
    """What kind of failure an error is; decides how l0 retries it (see ``docs/API.md``)."""

    NETWORK = "network"
    """Connection drops, DNS, TLS, timeouts: retried, counts only toward ``max_retries``."""
    TRANSIENT = "transient"
    """429 rate limits, 5xx, zero output: retried, counts only toward ``max_retries``."""
    MODEL = "model"
    """The model misbehaved (malformed stream, refusal): retried, counts toward ``attempts``."""
    CONTENT = "content"
    """A guardrail or drift violation: retried, counts toward ``attempts``."""
    PROVIDER = "provider"
    """Other API errors: 408/409 are retried; 400/404/422 go straight to the next fallback."""
    FATAL = "fatal"
    """Auth errors (401/403): never retried on that target; fallbacks are still tried."""
    INTERNAL = "internal"
    """A bug (in l0 or in the caller's factory): never retried, ends the session."""

    def __str__(self) -> str:
        return self.value


class ErrorCode(str, enum.Enum):
    """A stable code for each failure l0 knows; safe to group on."""

    INITIAL_TOKEN_TIMEOUT = "INITIAL_TOKEN_TIMEOUT"
    INTER_TOKEN_TIMEOUT = "INTER_TOKEN_TIMEOUT"
    ZERO_OUTPUT = "ZERO_OUTPUT"
    NETWORK_ERROR = "NETWORK_ERROR"
    STREAM_TRUNCATED = "STREAM_TRUNCATED"
    TIMEOUT = "TIMEOUT"
    RATE_LIMITED = "RATE_LIMITED"
    SERVER_ERROR = "SERVER_ERROR"
    AUTH_ERROR = "AUTH_ERROR"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    BAD_REQUEST = "BAD_REQUEST"
    CONTEXT_LENGTH_EXCEEDED = "CONTEXT_LENGTH_EXCEEDED"
    CONTENT_FILTERED = "CONTENT_FILTERED"
    NOT_FOUND = "NOT_FOUND"
    PROVIDER_ERROR = "PROVIDER_ERROR"
    MODEL_ERROR = "MODEL_ERROR"
    INVALID_STREAM = "INVALID_STREAM"
    GUARDRAIL_VIOLATION = "GUARDRAIL_VIOLATION"
    DRIFT_DETECTED = "DRIFT_DETECTED"
    SCHEMA_VALIDATION_FAILED = "SCHEMA_VALIDATION_FAILED"
    CONSENSUS_FAILED = "CONSENSUS_FAILED"
    ALL_ATTEMPTS_EXHAUSTED = "ALL_ATTEMPTS_EXHAUSTED"
    INTERNAL_ERROR = "INTERNAL_ERROR"

    def __str__(self) -> str:
        return self.value


class AttemptReason(str, enum.Enum):
    """Why an attempt was started."""

    INITIAL = "initial"
    RETRY = "retry"
    FALLBACK = "fallback"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """One failed attempt, as kept in ``state.errors`` and ``L0Error.errors``.

    Attributes:
        category: how the failure was classified.
        code: the stable error code.
        message: a human-readable description (never message content).
        attempt: the 1-based attempt number within the session.
        fallback_index: 0 for the primary target, 1+ for fallbacks.
        status_code: the provider's HTTP status, when there was one.
        error_type: the exception's class name (the ``error.type`` span attribute).
    """

    category: ErrorCategory
    code: ErrorCode
    message: str
    attempt: int
    fallback_index: int
    status_code: int | None = None
    error_type: str | None = None


@dataclass(frozen=True, slots=True)
class AttemptContext:
    """What a stream factory that takes one parameter receives for each attempt.

    Attributes:
        attempt: the 1-based attempt number within the session.
        target_attempt: the 1-based attempt number on this target (primary or one fallback).
        fallback_index: 0 for the primary target, 1+ for fallbacks.
        reason: why this attempt runs.
        checkpoint: the text that passed guardrails before the previous attempt failed
            (empty on the first attempt, or when continuation is off).
        continuation: ``True`` when l0 will splice this attempt's output after ``checkpoint``;
            build a continuation prompt from it.
        last_error: the failure that caused this attempt, if any.
    """

    attempt: int
    target_attempt: int
    fallback_index: int
    reason: AttemptReason
    checkpoint: str = ""
    continuation: bool = False
    last_error: ErrorRecord | None = None


@dataclass(slots=True, eq=False)
class State:
    """The live state of one session, readable at any time as ``result.state``.

    Content is kept as a list of parts so appending a token is O(1); ``content`` joins them on
    demand and keeps the joined text as the only part until the next token.

    Attributes:
        token_count: content events received in the current attempt (a continued attempt
            adds to the previous one's count, since its text extends the same content).
        checkpoint: the last content that passed guardrails.
        duration: seconds from session start to its end, time to first token included;
            ``None`` while the session is running.
        time_to_first_token: seconds from session start to the first token the consumer saw.
        fallback_index: which target is (or was last) running: 0 primary, 1+ fallbacks.
        attempt: the 1-based number of the current attempt within the session.
        model_retry_count: retries caused by model/content failures (count toward ``attempts``).
        network_retry_count: retries caused by network/transient failures.
        violations: guardrail violations seen in the session (warnings included).
        usage: token usage reported by the provider for the winning attempt.
        tool_calls: complete tool calls of the current attempt.
        errors: one record per failed attempt.
        completed: the session finished successfully.
        aborted: the consumer stopped the session early.
        finish_reason: the provider's finish reason of the winning attempt.
        response_id: the provider's response id of the winning attempt.
        response_model: the model the provider reported.
    """

    token_count: int = 0
    checkpoint: str = ""
    duration: float | None = None
    time_to_first_token: float | None = None
    fallback_index: int = 0
    attempt: int = 0
    model_retry_count: int = 0
    network_retry_count: int = 0
    violations: list[GuardrailViolation] = field(default_factory=list)
    usage: Usage | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    errors: list[ErrorRecord] = field(default_factory=list)
    completed: bool = False
    aborted: bool = False
    finish_reason: str | None = None
    response_id: str | None = None
    response_model: str | None = None
    error: L0Error | None = None
    _parts: list[str] = field(default_factory=list, repr=False)
    _length: int = field(default=0, repr=False)

    @property
    def content(self) -> str:
        """The text of the current (after success: the winning) attempt."""
        parts = self._parts
        if len(parts) == 1:
            return parts[0]
        joined = "".join(parts)
        if joined:
            parts[:] = (joined,)
        return joined

    @property
    def content_length(self) -> int:
        """``len(state.content)`` in O(1): use it in streaming guardrails."""
        return self._length

    def append(self, text: str) -> None:
        """Append delivered text (runtime use)."""
        self._parts.append(text)
        self._length += len(text)

    def reset_content(self, text: str = "") -> None:
        """Replace the content, e.g. on a reset or a continuation (runtime use)."""
        # In place: the runtime holds ``_parts.append`` for the length of an attempt.
        self._parts[:] = (text,) if text else ()
        self._length = len(text)
