"""The parent span of a multi-stream operation (``l0.race``, ``l0.parallel``, ``l0.consensus``).

An operation is a phase like a session's, with its own id and bus: its ``*_START``/``*_END``
events go to the caller's ``on_event`` and to the global sinks, and the sessions it starts are
created with its span current, so they become its children.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

from uuid6 import uuid7

from l0.config import ConfigError
from l0.observability.bus import Bus, Sink
from l0.observability.events import ObservabilityEventType
from l0.observability.phase import Outcome, Phase, PhaseKind, current_context
from l0.runtime.clock import SYSTEM_CLOCK, Clock

_PRIMITIVES = (str, bool, int, float)


def check_common(
    owner: str, on_event: Sink | None, meta: Any, clock: Clock | None
) -> tuple[Mapping[str, Any], Clock]:
    """Validate the options every operation takes (raising :class:`l0.ConfigError`)."""
    if on_event is not None and not callable(on_event):
        raise ConfigError(owner, "on_event", "must be callable", on_event)
    if meta is None:
        meta = {}
    elif not isinstance(meta, Mapping) or not all(isinstance(k, str) for k in meta):
        raise ConfigError(owner, "meta", "must be a mapping with string keys", meta)
    if clock is None:
        clock = SYSTEM_CLOCK
    elif not isinstance(clock, Clock):
        raise ConfigError(
            owner, "clock", "must provide now(), wall(), sleep(), call_later()", clock
        )
    return MappingProxyType(dict(meta)), clock


class Operation:
    """One multi-stream operation: a span, a bus, and the events that open and close it."""

    __slots__ = ("bus", "clock", "end_type", "id", "phase", "started_at")

    def __init__(
        self,
        kind: PhaseKind,
        *,
        start_type: ObservabilityEventType,
        end_type: ObservabilityEventType,
        on_event: Sink | None,
        meta: Mapping[str, Any],
        clock: Clock,
        attributes: Mapping[str, Any],
        start_data: Mapping[str, Any],
    ) -> None:
        self.id = str(uuid7())
        self.clock = clock
        self.end_type = end_type
        self.started_at = clock.now()
        self.bus = Bus(self.id, meta, clock, on_event)
        span_attributes: dict[str, Any] = {"l0.operation.id": self.id}
        span_attributes.update({k: v for k, v in attributes.items() if v is not None})
        for key, value in meta.items():
            if isinstance(value, _PRIMITIVES):
                span_attributes[f"l0.meta.{key}"] = value
        self.phase = Phase(
            kind,
            self.bus,
            parent_context=current_context(),
            attributes=span_attributes,
            emit_start=False,
        )
        with self.phase.activate():
            self.bus.emit(start_type, start_data)

    @property
    def ended(self) -> bool:
        return self.phase.ended

    def elapsed(self) -> float:
        return self.clock.now() - self.started_at

    @contextmanager
    def activate(self) -> Iterator[None]:
        """Make the operation's span current: sessions created inside become its children."""
        with self.phase.activate():
            yield

    def emit(self, type: ObservabilityEventType, data: Mapping[str, Any]) -> None:
        with self.phase.activate():
            self.bus.emit(type, data)

    def end(
        self,
        outcome: Outcome,
        *,
        error_type: str | None = None,
        description: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """Emit the ``*_END`` event and end the span (idempotent)."""
        if self.phase.ended:
            return
        end_data: dict[str, Any] = {"outcome": outcome.value, "duration": self.elapsed()}
        if data:
            end_data.update(data)
        self.emit(self.end_type, end_data)
        self.phase.end(
            outcome, error_type=error_type, description=description, attributes=attributes
        )
