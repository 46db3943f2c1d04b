"""Helpers shared by the benchmark scripts: machine facts, statistics, markdown, chunks, OTel.

Not a benchmark itself. The scripts run as ``python benchmarks/<name>.py``, so this module is
importable as ``_common`` from them.
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from importlib import metadata
from typing import Any

__all__ = [
    "chaos_server",
    "chunk_objects",
    "load",
    "machine",
    "markdown_table",
    "median_ci",
    "quartiles",
    "sdk_providers",
]


# --- the machine -----------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


def load() -> str:
    """The 1/5/15-minute load averages, e.g. ``"load 0.31 0.52 0.60"`` (``uptime``'s)."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "load ?"
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def machine() -> str:
    """One line naming the machine and the versions that matter for the figures."""
    cores = os.cpu_count() or 0
    python = platform.python_version()
    versions = ", ".join(
        f"{name} {_version(name)}" for name in ("openai", "opentelemetry-sdk", "pydantic")
    )
    return (
        f"{_cpu_model()}, {cores} vCPU, {platform.system()} {platform.release()}, "
        f"CPython {python}; {versions}"
    )


# --- statistics ------------------------------------------------------------------------------


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(first quartile, median, third quartile) of ``values``."""
    if len(values) == 1:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def median_ci(
    values: Sequence[float], confidence: float = 0.95, resamples: int = 4000, seed: int = 0
) -> tuple[float, float]:
    """A bootstrap confidence interval for the median of ``values``: the range the median of
    the rounds would fall in, ``confidence`` of the time, if the benchmark were run again.

    The inter-quartile range says how much single rounds vary; this says how well their
    median is known (it narrows with the number of rounds). Seeded: the same values give the
    same interval.
    """
    if len(values) < 2:
        return values[0], values[0]
    rng = random.Random(seed)
    n = len(values)
    medians = sorted(statistics.median(rng.choices(values, k=n)) for _ in range(resamples))
    tail = (1 - confidence) / 2
    return medians[int(tail * resamples)], medians[int((1 - tail) * resamples) - 1]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], right: int = 1) -> str:
    """A markdown table; columns from index ``right`` on are right-aligned."""
    align = ["---" if i < right else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


# --- streams ---------------------------------------------------------------------------------


def chunk_objects(count: int, *, usage: bool = True) -> list[Any]:
    """``count`` content ``ChatCompletionChunk`` objects (one word each, the last with
    ``finish_reason="stop"``), plus a usage chunk: what the SDK hands out for a stream, built
    once so that timing them measures only what reads them."""
    from openai.types.chat import ChatCompletionChunk

    def chunk(choices: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> Any:
        body: dict[str, Any] = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "gpt-4o-mini",
            "choices": choices,
            **(extra or {}),
        }
        return ChatCompletionChunk.model_validate(body)

    words = ("alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta")
    chunks = [
        chunk(
            [
                {
                    "index": 0,
                    "delta": {"content": f" {words[i % len(words)]}"},
                    "finish_reason": "stop" if i == count - 1 else None,
                }
            ]
        )
        for i in range(count)
    ]
    if usage:
        chunks.append(
            chunk(
                [],
                {
                    "usage": {
                        "prompt_tokens": 20,
                        "completion_tokens": count,
                        "total_tokens": count + 20,
                    }
                },
            )
        )
    return chunks


# --- OpenTelemetry SDK -----------------------------------------------------------------------

SDK_SETUP = (
    "TracerProvider with a BatchSpanProcessor (default queue and 5 s schedule) exporting to an "
    "exporter that drops every batch; MeterProvider with a PeriodicExportingMetricReader "
    "(60 s interval) exporting to a metric exporter that drops"
)
"""How ``sdk_providers`` configures the SDK, for the reports."""


def sdk_providers() -> tuple[Any, Any]:
    """(tracer provider, meter provider) of the OpenTelemetry SDK, configured as a production
    app would be but with exporters that drop what they get (see :data:`SDK_SETUP`)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        MetricExporter,
        MetricExportResult,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class DropSpans(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    class DropMetrics(MetricExporter):
        def __init__(self) -> None:
            super().__init__(preferred_temporality={}, preferred_aggregation={})

        def export(self, metrics_data: Any, timeout_millis: float = 10_000, **_: Any) -> Any:
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **_: Any) -> None:
            return None

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(DropSpans()))
    reader = PeriodicExportingMetricReader(DropMetrics(), export_interval_millis=60_000)
    meter_provider = MeterProvider(metric_readers=[reader])
    return tracer_provider, meter_provider


# --- the chaos server ------------------------------------------------------------------------


@contextlib.contextmanager
def chaos_server(python: str = sys.executable, timeout: float = 60.0) -> Iterator[str]:
    """Run the chaos server (``_server.py``) in its own process, so that its CPU is not the
    client's, and yield its OpenAI base URL; the server is stopped on exit."""
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            [python, os.path.join(os.path.dirname(os.path.abspath(__file__)), "_server.py")],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + timeout
            base_url = None
            while base_url is None:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"the chaos server did not start:\n{log.read()[-2000:]}")
                time.sleep(0.05)
                log.seek(0)
                found = re.search(r"base URL (http://\S+/v1)", log.read())
                base_url = found.group(1) if found else None
            yield base_url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
