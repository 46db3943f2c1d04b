"""Shared test setup."""

import os

# litellm fetches its model-cost map from the internet at import unless told otherwise; tests
# never reach the network. Set before any test module imports litellm.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


# --- OpenTelemetry SDK for l0's telemetry tests ----------------------------------------------
# OpenTelemetry lets the global providers be set once per process, so tests point l0 alone at
# fresh SDK providers (l0.observability.set_*_provider) and put the globals back afterwards.

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest


@dataclass
class OTel:
    """In-memory SDK providers that l0 reports to during one test."""

    spans: Any
    metrics: Any
    logs: Any
    tracer_provider: Any
    meter_provider: Any
    logger_provider: Any
    started: list[Any] = field(default_factory=list)
    ended: list[Any] = field(default_factory=list)

    def finished(self) -> list[Any]:
        """Every ended span, in the order they ended."""
        return list(self.spans.get_finished_spans())

    def named(self, name: str) -> list[Any]:
        return [s for s in self.finished() if s.name == name]

    def metric_points(self) -> dict[str, tuple[Any, list[Any]]]:
        """``{metric name: (metric, data points)}`` from one collection."""
        found: dict[str, tuple[Any, list[Any]]] = {}
        data = self.metrics.get_metrics_data()
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found[metric.name] = (metric, list(metric.data.data_points))
        return found


@pytest.fixture
def otel() -> Iterator[OTel]:
    """Point l0 at in-memory SDK tracer, meter and logger providers for one test."""
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import l0.observability
    from l0.observability import settings

    spans = InMemorySpanExporter()
    reader = InMemoryMetricReader()
    logs = InMemoryLogRecordExporter()
    tracer_provider = TracerProvider()
    meter_provider = MeterProvider(metric_readers=[reader])
    logger_provider = LoggerProvider()
    handle = OTel(spans, reader, logs, tracer_provider, meter_provider, logger_provider)

    class Lifecycle(SpanProcessor):
        # Records every span that starts and ends: "every started span ends" is checkable.
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            handle.started.append(span)

        def on_end(self, span: Any) -> None:
            handle.ended.append(span)

    tracer_provider.add_span_processor(Lifecycle())
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    l0.observability.set_tracer_provider(tracer_provider)
    l0.observability.set_meter_provider(meter_provider)
    l0.observability.set_logger_provider(logger_provider)
    try:
        yield handle
    finally:
        l0.observability.set_tracer_provider(None)
        l0.observability.set_meter_provider(None)
        l0.observability.set_logger_provider(None)
        settings.reset()
        tracer_provider.shutdown()
        meter_provider.shutdown()
        logger_provider.shutdown()
