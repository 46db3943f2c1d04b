"""l0's observability: the event bus, phases (spans), metrics and content capture.

Every name l0 emits is in :mod:`l0.observability.semconv`; ``docs/observability.md`` lists them
with their types, units and meaning.

Example::

    import l0.observability

    l0.observability.configure(per_chunk_metrics=True)
"""

from __future__ import annotations

from l0.observability.providers import (
    set_logger_provider,
    set_meter_provider,
    set_tracer_provider,
)
from l0.observability.settings import ContentCapture, configure

__all__ = [
    "ContentCapture",
    "configure",
    "set_logger_provider",
    "set_meter_provider",
    "set_tracer_provider",
]
