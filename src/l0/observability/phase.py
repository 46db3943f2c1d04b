"""The phase: l0's one instrumentation primitive.

A phase opens a span, emits its ``*_START`` event, and on ``end`` sets the outcome, status and
``*_END`` event. The runtime speaks phases and events only; it never sees OpenTelemetry.

Phases are ended explicitly (``end`` is idempotent) rather than by ``with`` blocks, because
a session's phases live across the ``yield``s of an async generator and must end on every
path: completion, error, the consumer's ``break``, cancellation, garbage collection.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from l0.observability.bus import Bus
from l0.observability.events import ObservabilityEventType as T
from opentelemetry import context as otel_context
from opentelemetry import trace

__all__ = ["Outcome", "Phase", "PhaseKind", "current_context"]


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
    SESSION = ("l0.session", SpanKind.INTERNAL, T.SESSION_START, T.SESSION_END)
    TARGET = ("chat", SpanKind.CLIENT, None, None)
    ATTEMPT = ("l0.attempt", SpanKind.INTERNAL, T.ATTEMPT_START, T.ATTEMPT_END)
    GUARDRAILS = (
        "l0.guardrails",
        SpanKind.INTERNAL,
        T.GUARDRAIL_PHASE_START,
        T.GUARDRAIL_PHASE_END,
    )
    GUARDRAILS_FINAL = (
        "l0.guardrails.final",
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


_tracer: trace.Tracer | None = None


def _get_tracer() -> trace.Tracer:
    # Resolved per call until an SDK provider is set, so a provider installed after import
    # still receives l0's spans (the API's proxy handles that; caching it is safe).
    global _tracer
    if _tracer is None:
        from l0 import __version__

        _tracer = trace.get_tracer("l0", __version__)
    return _tracer


def current_context() -> otel_context.Context:
    """The caller's OpenTelemetry context (captured where a session is created)."""
    return otel_context.get_current()


class Phase:
    """One instrumented phase of a session. See the module docstring."""

    __slots__ = ("bus", "ended", "kind", "outcome", "span", "start_data")

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
        self.ended = False
        self.outcome: Outcome | None = None
        self.start_data = start_data
        if parent is not None:
            ctx: otel_context.Context | None = trace.set_span_in_context(parent.span)
        else:
            ctx = parent_context
        self.span: Span = _get_tracer().start_span(
            name or kind.span_name,
            context=ctx,
            kind=kind.span_kind,
            attributes=dict(attributes) if attributes else None,
        )
        if emit_start and kind.start_event is not None:
            bus.emit(kind.start_event, start_data)

    @property
    def recording(self) -> bool:
        return self.span.is_recording()

    def set(self, key: str, value: Any) -> None:
        """Set a span attribute (``None`` values are skipped)."""
        if value is not None:
            self.span.set_attribute(key, value)

    def set_many(self, attributes: Mapping[str, Any]) -> None:
        for key, value in attributes.items():
            if value is not None:
                self.span.set_attribute(key, value)

    def rename(self, name: str) -> None:
        self.span.update_name(name)

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None) -> None:
        self.span.add_event(name, dict(attributes) if attributes else None)

    @contextmanager
    def activate(self) -> Iterator[None]:
        """Make this phase's span current for the enclosed (non-yielding) work, so provider
        HTTP spans nest under it. Never hold it across a ``yield``."""
        token = otel_context.attach(trace.set_span_in_context(self.span))
        try:
            yield
        finally:
            otel_context.detach(token)

    def end(
        self,
        outcome: Outcome,
        *,
        error_type: str | None = None,
        description: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        end_data: Mapping[str, Any] | None = None,
        emit_end: bool = True,
    ) -> None:
        """End the span with ``outcome`` (idempotent: only the first call counts)."""
        if self.ended:
            return
        self.ended = True
        self.outcome = outcome
        span = self.span
        if span.is_recording():
            span.set_attribute("l0.outcome", outcome.value)
            if attributes:
                for key, value in attributes.items():
                    if value is not None:
                        span.set_attribute(key, value)
            if outcome is Outcome.ERROR:
                if error_type:
                    span.set_attribute("error.type", error_type)
                span.set_status(Status(StatusCode.ERROR, description))
            # Success and cancellation leave the status UNSET, as instrumentations should:
            # OK is the application's to set, and a consumer's `break` is not an error.
        span.end()
        if emit_end and self.kind.end_event is not None and self.bus:
            data: dict[str, Any] = {"outcome": outcome.value}
            if end_data:
                data.update(end_data)
            # Sinks run with this phase's span current: metric exemplars and error reports
            # (Sentry) link to the right trace.
            token = otel_context.attach(trace.set_span_in_context(span))
            try:
                self.bus.emit(self.kind.end_event, data)
            finally:
                otel_context.detach(token)
