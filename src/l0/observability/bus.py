"""The event bus: one per session, fanning each :class:`ObservabilityEvent` out to the sinks.

A sink is any callable taking one event. Sinks are isolated: one that raises is logged once
and the stream goes on. When no sink listens, ``emit`` builds no event at all.

The bus also tells the session's phases what is watching: ``telemetry`` the providers (resolved
once per session, from a snapshot kept per provider change), ``metrics`` the metrics recorder
when an SDK meter provider is configured (it also counts a few point events), ``observed``
whether any OpenTelemetry SDK is, so that nothing builds attribute dictionaries for nobody.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from l0.observability import providers
from l0.observability.events import ObservabilityEvent, ObservabilityEventType
from l0.observability.metrics import MetricsRecorder, recorder
from l0.runtime.clock import Clock

__all__ = ["Bus", "Sink", "add_sink", "remove_sink"]

Sink = Callable[[ObservabilityEvent], None]

_log = logging.getLogger("l0")
_global_sinks: tuple[Sink, ...] = ()
_global_lock = threading.Lock()
_failed_sinks: set[int] = set()


def add_sink(sink: Sink) -> None:
    """Send every session's events to ``sink`` (process-wide; e.g. an audit log)."""
    global _global_sinks
    with _global_lock:
        if sink not in _global_sinks:
            _global_sinks = (*_global_sinks, sink)


def remove_sink(sink: Sink) -> None:
    """Stop sending events to a sink added with :func:`add_sink`."""
    global _global_sinks
    with _global_lock:
        _global_sinks = tuple(s for s in _global_sinks if s is not sink)


def _logging_sink(event: ObservabilityEvent) -> None:
    _log.debug(
        "%s stream=%s %s",
        event.type.value,
        event.stream_id,
        dict(event.data),
        extra={"l0_event": event.type.value, "l0_stream_id": event.stream_id},
    )


# The point events the metrics recorder counts (see MetricsRecorder.on_event): with no other
# sink, the bus builds an event for these types only.
_COUNTED: frozenset[ObservabilityEventType] = frozenset(
    {
        ObservabilityEventType.RETRY_ATTEMPT,
        ObservabilityEventType.FALLBACK_START,
        ObservabilityEventType.GUARDRAIL_RULE_RESULT,
        ObservabilityEventType.TIMEOUT_TRIGGERED,
    }
)


class Bus:
    """Delivers a session's events to its sinks.

    Attributes:
        telemetry: the providers the session reports to, resolved when the bus is made.
        metrics: the metrics recorder (an SDK meter provider is configured), else ``None``.
        observed: whether any OpenTelemetry SDK is configured (build attributes only then).
        sinks: the sinks every event goes to (the metrics recorder among them only when
            there are others: alone, it gets only the events it counts).
    """

    __slots__ = (
        "_counter",
        "clock",
        "meta",
        "metrics",
        "observed",
        "sinks",
        "stream_id",
        "telemetry",
    )

    def __init__(
        self,
        stream_id: str,
        meta: Mapping[str, Any],
        clock: Clock,
        on_event: Sink | None = None,
        extra_sinks: tuple[Sink, ...] = (),
    ) -> None:
        self.stream_id = stream_id
        self.meta = meta
        self.clock = clock
        # Resolved per session (cheaply: cached per provider change), so an SDK configured
        # after `import l0` is picked up.
        telemetry = providers.telemetry()
        self.telemetry = telemetry
        self.observed: bool = telemetry.observed
        self.metrics: MetricsRecorder | None = recorder(telemetry) if telemetry.metrics else None
        self._counter: Sink | None = None
        debug = _log.isEnabledFor(logging.DEBUG)
        if _global_sinks or extra_sinks or on_event is not None or debug:
            sinks: list[Sink] = [*_global_sinks, *extra_sinks]
            if on_event is not None:
                sinks.append(on_event)
            if debug:
                sinks.append(_logging_sink)
            if self.metrics is not None:
                sinks.append(self.metrics.on_event)
            self.sinks: tuple[Sink, ...] = tuple(sinks)
        else:
            self.sinks = ()
            if self.metrics is not None:
                self._counter = self.metrics.on_event

    def __bool__(self) -> bool:
        """Whether any sink takes every event (so that building an event's data pays)."""
        return bool(self.sinks)

    def emit(self, type: ObservabilityEventType, data: Mapping[str, Any] | None = None) -> None:
        """Build the event and hand it to every sink (nothing is built when none listens)."""
        sinks = self.sinks
        if not sinks:
            if self._counter is None or type not in _COUNTED:
                return
            sinks = (self._counter,)
        event = ObservabilityEvent(
            type=type,
            ts=self.clock.wall(),
            stream_id=self.stream_id,
            meta=self.meta,
            data=data if data is not None else {},
        )
        for sink in sinks:
            try:
                sink(event)
            except Exception:
                # Isolated: a broken handler must not break the stream; say so once per sink.
                key = id(sink)
                if key not in _failed_sinks:
                    _failed_sinks.add(key)
                    _log.exception("l0: event sink %r raised; its errors are now ignored", sink)
