"""Span trees for a terminal: what ``l0 demo`` prints after each session.

Needs the ``otel`` extra (the OpenTelemetry SDK).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["SpanLine", "SpanRecorder"]

_SHOWN_ATTRIBUTES = (
    "l0.attempt.reason",
    "l0.error.code",
    "gen_ai.response.model",
    "gen_ai.usage.output_tokens",
)


@dataclass(frozen=True, slots=True)
class SpanLine:
    """One line of a rendered span tree."""

    depth: int
    name: str
    duration_ms: float
    outcome: str
    details: str


class SpanRecorder:
    """Installs an SDK tracer provider that keeps finished spans in memory (and optionally
    exports them over OTLP/HTTP), and renders the spans of one trace as a tree."""

    def __init__(self, *, otlp_endpoint: str | None = None, service_name: str = "l0-demo"):
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        resource = Resource.create({"service.name": service_name})
        self._exporter = InMemorySpanExporter()
        self.provider = TracerProvider(resource=resource)
        self.provider.add_span_processor(SimpleSpanProcessor(self._exporter))
        self.meter_provider: Any = None
        if otlp_endpoint:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter,
            )
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

            base = otlp_endpoint.rstrip("/").removesuffix("/v1/traces")
            self.provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces"))
            )
            # Every second: a demo lasts seconds, and rate() needs more than one sample.
            reader = PeriodicExportingMetricReader(
                OTLPMetricExporter(endpoint=f"{base}/v1/metrics"), export_interval_millis=1000
            )
            self.meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
            metrics.set_meter_provider(self.meter_provider)
        trace.set_tracer_provider(self.provider)

    def take(self) -> Sequence[Any]:
        """The spans finished since the last call."""
        spans = self._exporter.get_finished_spans()
        self._exporter.clear()
        return spans

    def shutdown(self) -> None:
        """Flush and stop the exporters."""
        self.provider.shutdown()
        if self.meter_provider is not None:
            self.meter_provider.shutdown()

    @staticmethod
    def tree(spans: Sequence[Any]) -> list[SpanLine]:
        """Depth-first lines, children in start order."""
        by_id = {span.context.span_id: span for span in spans}
        children: dict[int | None, list[Any]] = defaultdict(list)
        for span in spans:
            parent = span.parent.span_id if span.parent is not None else None
            children[parent if parent in by_id else None].append(span)
        lines: list[SpanLine] = []

        def walk(span: Any, depth: int) -> None:
            attributes = span.attributes or {}
            details = []
            number = attributes.get("l0.attempt.number")
            if number is not None:
                details.append(f"#{number}")
            for key in _SHOWN_ATTRIBUTES:
                value = attributes.get(key)
                if value is not None:
                    details.append(f"{key.rsplit('.', 1)[-1]}={value}")
            if "l0.error.code" not in attributes and attributes.get("error.type"):
                details.append(f"type={attributes['error.type']}")
            rules = {
                str((event.attributes or {}).get("l0.guardrail.rule"))
                for event in span.events
                if event.name == "gen_ai.guardrail.result"
            }
            details.extend(f"guardrail:{rule}" for rule in sorted(rules))
            duration = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
            lines.append(
                SpanLine(
                    depth,
                    span.name,
                    duration,
                    str(attributes.get("l0.outcome", "")),
                    " ".join(details),
                )
            )
            for child in sorted(children.get(span.context.span_id, []), key=_start):
                walk(child, depth + 1)

        for root in sorted(children.get(None, []), key=_start):
            walk(root, 0)
        return lines


def _start(span: Any) -> int:
    return int(span.start_time or 0)
