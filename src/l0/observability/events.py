"""The observability event: one typed, immutable record per thing that happened in a session.

Every sink (the user's ``on_event``, OpenTelemetry, logging, Sentry) receives the same record.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["ObservabilityEvent", "ObservabilityEventType"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class ObservabilityEventType(str, enum.Enum):
    """Every observability event l0 emits. ``docs/observability.md`` lists each one's data."""

    SESSION_START = "SESSION_START"
    SESSION_END = "SESSION_END"
    STREAM_INIT = "STREAM_INIT"
    STREAM_READY = "STREAM_READY"
    RETRY_START = "RETRY_START"
    RETRY_ATTEMPT = "RETRY_ATTEMPT"
    RETRY_END = "RETRY_END"
    RETRY_GIVE_UP = "RETRY_GIVE_UP"
    FALLBACK_START = "FALLBACK_START"
    FALLBACK_END = "FALLBACK_END"
    ATTEMPT_START = "ATTEMPT_START"
    ATTEMPT_END = "ATTEMPT_END"
    GUARDRAIL_PHASE_START = "GUARDRAIL_PHASE_START"
    GUARDRAIL_RULE_RESULT = "GUARDRAIL_RULE_RESULT"
    GUARDRAIL_PHASE_END = "GUARDRAIL_PHASE_END"
    NETWORK_ERROR = "NETWORK_ERROR"
    NETWORK_RECOVERY = "NETWORK_RECOVERY"
    TIMEOUT_TRIGGERED = "TIMEOUT_TRIGGERED"
    RESET = "RESET"
    CHECKPOINT_SAVED = "CHECKPOINT_SAVED"
    CONTINUATION_START = "CONTINUATION_START"
    TOOL_CALL = "TOOL_CALL"
    DRIFT_DETECTED = "DRIFT_DETECTED"
    ABORT = "ABORT"
    COMPLETE = "COMPLETE"
    ERROR = "ERROR"
    STRUCTURED_PARSE_START = "STRUCTURED_PARSE_START"
    STRUCTURED_PARSE_END = "STRUCTURED_PARSE_END"
    STRUCTURED_AUTO_CORRECT = "STRUCTURED_AUTO_CORRECT"
    STRUCTURED_VALIDATION_START = "STRUCTURED_VALIDATION_START"
    STRUCTURED_VALIDATION_END = "STRUCTURED_VALIDATION_END"
    RACE_START = "RACE_START"
    RACE_WINNER = "RACE_WINNER"
    RACE_END = "RACE_END"
    PARALLEL_START = "PARALLEL_START"
    PARALLEL_END = "PARALLEL_END"
    CONSENSUS_START = "CONSENSUS_START"
    CONSENSUS_END = "CONSENSUS_END"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class ObservabilityEvent:
    """One observability record.

    Attributes:
        type: what happened.
        ts: wall-clock time in seconds since the Unix epoch (from the session clock).
        stream_id: the session's id (UUIDv7 string): every event of one session shares it.
        meta: the user's ``meta`` mapping passed to ``l0.run``.
        data: the event's own fields (see ``docs/observability.md``).
    """

    type: ObservabilityEventType
    ts: float
    stream_id: str
    meta: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    data: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
