"""The phase: l0's one instrumentation primitive.

A phase opens a span, emits its ``*_START`` event, and on ``end`` sets the outcome, status and
``*_END`` event, and hands itself to the metrics recorder. The runtime speaks phases and events
only; it never sees OpenTelemetry.

Phases are ended explicitly (``end`` is idempotent) rather than by ``with`` blocks, because
a session's phases live across the ``yield``s of an async generator and must end on every
path: completion, error, the consumer's ``break``, cancellation, garbage collection.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from contextvars import Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, Span, SpanKind, Status, StatusCode

from l0.observability import content as content_capture
from l0.observability import semconv as sc
from l0.observability.bus import Bus
from l0.observability.events import ObservabilityEventType as T
from l0.observability.redaction import redact

__all__ = ["Outcome", "Phase", "PhaseKind", "current_context"]

_log = logging.getLogger("l0")
_recorder_failed = False


class Outcome(str, enum.Enum):
    """How a phase ended: the ``l0.outcome`` attribute of every l0 span."""

    COMPLETED = "completed"
    ERROR = "error"
    CANCELLED = "cancelled"
    """The consumer stopped (``break``, ``abort()``, leaving ``async with``) or was cancelled."""
    ABANDONED = "abandoned"
    """The stream was garbage-collected without ever being read."""

    def __str__(self) -> str:
        return self.value


class PhaseKind(enum.Enum):
    """The kinds of phase: span name, span kind, and the START/END event types."""

    SESSION = (sc.SPAN_SESSION, SpanKind.INTERNAL, T.SESSION_START, T.SESSION_END)
    TARGET = (sc.OPERATION_CHAT, SpanKind.CLIENT, None, None)
    ATTEMPT = (sc.SPAN_ATTEMPT, SpanKind.INTERNAL, T.ATTEMPT_START, T.ATTEMPT_END)
    GUARDRAILS = (
        sc.SPAN_GUARDRAILS,
        SpanKind.INTERNAL,
        T.GUARDRAIL_PHASE_START,
        T.GUARDRAIL_PHASE_END,
    )
    GUARDRAILS_FINAL = (
        sc.SPAN_GUARDRAILS_FINAL,
        SpanKind.INTERNAL,
        T.GUARDRAIL_PHASE_START,
        T.GUARDRAIL_PHASE_END,
    )
    RACE = ("l0.race", SpanKind.INTERNAL, None, None)
    PARALLEL = ("l0.parallel", SpanKind.INTERNAL, None, None)
    CONSENSUS = ("l0.consensus", SpanKind.INTERNAL, None, None)
    STRUCTURED = ("l0.structured", SpanKind.INTERNAL, None, None)

    def __init__(
        self, span_name: str, span_kind: SpanKind, start_event: T | None, end_event: T | None
    ) -> None:
        self.span_name = span_name
        self.span_kind = span_kind
        self.start_event = start_event
        self.end_event = end_event


def current_context() -> otel_context.Context:
    """The caller's OpenTelemetry context (captured where a session is created)."""
    return otel_context.get_current()


class Phase:
    """One instrumented phase of a session. See the module docstring.

    Attributes:
        kind: what phase this is.
        parent: the enclosing phase, if any.
        span: the phase's span (a non-recording one when no SDK is configured).
        started: ``bus.clock.now()`` when the phase began, in seconds.
        attributes: the span's attributes as set through this phase, kept only when something
            reads them back (metrics, content events); ``None`` otherwise.
        outcome: how the phase ended (``None`` while it runs).
    """

    __slots__ = (
        "attributes",
        "bus",
        "ended",
        "kind",
        "outcome",
        "parent",
        "span",
        "start_data",
        "started",
    )

    def __init__(
        self,
        kind: PhaseKind,
        bus: Bus,
        *,
        parent: Phase | None = None,
        parent_context: otel_context.Context | None = None,
        name: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        start_data: Mapping[str, Any] | None = None,
        emit_start: bool = True,
    ) -> None:
        self.kind = kind
        self.bus = bus
        self.parent = parent
        self.ended = False
        self.outcome: Outcome | None = None
        self.start_data = start_data
        self.started = bus.clock.now()
        if bus.observed:
            start_attributes = dict(attributes) if attributes else None
            self.attributes: dict[str, Any] | None = start_attributes or {}
        else:
            # No SDK: nothing reads attributes (the no-op tracer drops them).
            start_attributes = None
            self.attributes = None
        telemetry = bus.telemetry
        if parent is not None:
            parent_span = parent.span
            if not telemetry.tracing and isinstance(parent_span, NonRecordingSpan):
                # What the API's no-op tracer returns for a child of a non-recording span:
                # that span itself (without building a context to tell it so).
                self.span: Span = parent_span
            else:
                self.span = telemetry.tracer.start_span(
                    name or kind.span_name,
                    context=trace.set_span_in_context(parent_span),
                    kind=kind.span_kind,
                    attributes=start_attributes,
                )
        else:
            self.span = telemetry.tracer.start_span(
                name or kind.span_name,
                context=parent_context,
                kind=kind.span_kind,
                attributes=start_attributes,
            )
        if emit_start and kind.start_event is not None:
            bus.emit(kind.start_event, start_data)

    @property
    def recording(self) -> bool:
        """Whether the span records (an SDK is configured and the span is sampled)."""
        return self.span.is_recording()

    @property
    def observed(self) -> bool:
        """Whether anything reads this phase's attributes: build them only then."""
        return self.attributes is not None

    def set(self, key: str, value: Any) -> None:
        """Set a span attribute (``None`` values are skipped)."""
        if value is not None:
            self.span.set_attribute(key, value)
            if self.attributes is not None:
                self.attributes[key] = value

    def set_many(self, attributes: Mapping[str, Any]) -> None:
        """Set several span attributes (``None`` values are skipped)."""
        present = {key: value for key, value in attributes.items() if value is not None}
        if present:
            self.span.set_attributes(present)
            if self.attributes is not None:
                self.attributes.update(present)

    def rename(self, name: str) -> None:
        """Rename the span."""
        self.span.update_name(name)

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None) -> None:
        """Add a span event (a handful per attempt at most: never per chunk)."""
        self.span.add_event(name, dict(attributes) if attributes else None)

    def activate(self) -> AbstractContextManager[None]:
        """Make this phase's span current for the enclosed (non-yielding) work, so provider
        HTTP spans nest under it. Never hold it across a ``yield``."""
        if trace.get_current_span() is self.span:
            # Already current (e.g. no SDK: the phase's span is the caller's own).
            return _ALREADY_CURRENT
        return _Activation(self.span)

    def end(
        self,
        outcome: Outcome,
        *,
        error_type: str | None = None,
        description: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        end_data: Mapping[str, Any] | None = None,
        emit_end: bool = True,
        content: content_capture.Messages | None = None,
    ) -> None:
        """End the span with ``outcome`` (idempotent: only the first call counts).

        ``content`` (message content of a ``chat`` phase) is recorded only as the content
        capture setting allows.
        """
        if self.ended:
            return
        self.ended = True
        self.outcome = outcome
        span = self.span
        kept = self.attributes
        recording = span.is_recording()
        if kept is not None or recording:
            # The outcome, the end attributes and the error type, in that order, set at once.
            changes: dict[str, Any] = {sc.L0_OUTCOME: outcome._value_}
            if attributes:
                for key, value in attributes.items():
                    if value is not None:
                        changes[key] = value
            error = outcome is Outcome.ERROR
            if error and error_type:
                changes[sc.ERROR_TYPE] = error_type
            if kept is not None:
                kept.update(changes)
            if recording:
                span.set_attributes(changes)
                if error:
                    span.set_status(
                        Status(StatusCode.ERROR, redact(description) if description else None)
                    )
                # Success and cancellation leave the status UNSET, as instrumentations should:
                # OK is the application's to set, and a consumer's `break` is not an error.
        if content:
            content_capture.record(self, content)
        span.end()
        bus = self.bus
        end_event = self.kind.end_event
        emit = emit_end and end_event is not None and bool(bus.sinks)
        recorder = bus.metrics
        if not emit and recorder is None:
            return
        # Sinks and metrics run with this phase's span current: metric exemplars and error
        # reports (Sentry) link to the right trace.
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            if emit:
                assert end_event is not None
                data: dict[str, Any] = {"outcome": outcome._value_}
                if end_data:
                    data.update(end_data)
                bus.emit(end_event, data)
            if recorder is not None:
                _record(recorder, self, outcome, end_data)
        finally:
            otel_context.detach(token)


class _Activation:
    """``Phase.activate``'s context manager (a class: cheaper than a generator's)."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: Span) -> None:
        self._span = span
        self._token: Token[otel_context.Context] | None = None

    def __enter__(self) -> None:
        self._token = otel_context.attach(trace.set_span_in_context(self._span))

    def __exit__(self, *_: object) -> None:
        if self._token is not None:
            otel_context.detach(self._token)
            self._token = None


_ALREADY_CURRENT: AbstractContextManager[None] = nullcontext()


def _record(recorder: Any, phase: Phase, outcome: Outcome, end_data: Any) -> None:
    # Isolated like a sink: a metrics failure must not break the stream; say so once.
    global _recorder_failed
    try:
        recorder.phase_ended(phase, outcome, end_data or {})
    except Exception:
        if not _recorder_failed:
            _recorder_failed = True
            _log.exception("l0: recording metrics failed; further failures are not logged")
