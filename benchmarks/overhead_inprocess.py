"""Benchmark: what ``l0.run`` costs per chunk over an in-process stream, with and without an
OpenTelemetry SDK.

    .venv/bin/python benchmarks/overhead_inprocess.py              # 2000 chunks, best of 15
    .venv/bin/python benchmarks/overhead_inprocess.py --chunks 500 --repeat 5

The stream is a pre-built list of ``ChatCompletionChunk`` objects handed out by an async
generator, so no HTTP and no SSE parsing is timed: only what l0 adds. Three ways to read it:

* ``raw``: ``async for chunk in stream`` — the floor;
* ``l0, no SDK``: ``l0.run(stream=factory, adapter="openai")`` with the OpenTelemetry API's
  default (proxy) providers — the no-op path;
* ``l0, SDK``: the same with an SDK tracer provider (spans to an in-memory exporter through a
  ``SimpleSpanProcessor``, i.e. exported synchronously at span end) and an SDK meter provider
  (an in-memory reader), pointed at with ``l0.observability.set_*_provider``.

Variants run interleaved, one run each per round, best round kept. "overhead µs/chunk" is
(variant − ``raw``) / chunks, so it includes the session's fixed cost spread over the stream;
that fixed cost (a session over a one-chunk stream, minus raw) is printed separately.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from openai.types.chat import ChatCompletionChunk

import l0
import l0.observability


def make_chunks(count: int) -> list[ChatCompletionChunk]:
    chunks = [
        ChatCompletionChunk.model_validate(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "gpt-4o-mini",
                "choices": [
                    {
                        "index": 0,
                        "delta": {"content": f"tok{i % 10} "},
                        "finish_reason": "stop" if i == count - 1 else None,
                    }
                ],
            }
        )
        for i in range(count)
    ]
    chunks.append(
        ChatCompletionChunk.model_validate(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "gpt-4o-mini",
                "choices": [],
                "usage": {
                    "prompt_tokens": 20,
                    "completion_tokens": count,
                    "total_tokens": count + 20,
                },
            }
        )
    )
    return chunks


def factory(chunks: list[ChatCompletionChunk]) -> Callable[[], AsyncIterator[Any]]:
    async def stream() -> AsyncIterator[Any]:
        for chunk in chunks:
            yield chunk

    return stream


async def read_raw(chunks: list[ChatCompletionChunk]) -> None:
    async for _ in factory(chunks)():
        pass


async def read_l0(chunks: list[ChatCompletionChunk]) -> None:
    result = await l0.run(stream=factory(chunks), adapter="openai")
    async for _ in result:
        pass


async def timed(
    read: Callable[[list[ChatCompletionChunk]], Awaitable[None]], chunks: list[ChatCompletionChunk]
) -> float:
    gc.collect()
    start = time.perf_counter()
    await read(chunks)
    return time.perf_counter() - start


class Sdk:
    """SDK tracer and meter providers, switched on and off around each timed run."""

    def __init__(self) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def on(self) -> None:
        l0.observability.set_tracer_provider(self.tracer_provider)
        l0.observability.set_meter_provider(self.meter_provider)

    def off(self) -> None:
        self.exporter.clear()
        self.reader.get_metrics_data()
        l0.observability.set_tracer_provider(None)
        l0.observability.set_meter_provider(None)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    sdk = Sdk()
    streams = {"long": make_chunks(args.chunks), "one": make_chunks(1)}
    variants: dict[str, Callable[[list[ChatCompletionChunk]], Awaitable[None]]] = {
        "raw": read_raw,
        "l0, no SDK": read_l0,
        "l0, SDK (spans + metrics)": read_l0,
    }
    best: dict[tuple[str, str], float] = {}
    # Interleaved (one run of each variant per round), so drift in the machine's speed hits
    # every variant alike; the best round of each is kept.
    for round_ in range(args.repeat + 1):
        for length, chunks in streams.items():
            for name, read in variants.items():
                if "SDK (" in name:
                    sdk.on()
                runs = 1 if length == "long" else 20
                elapsed = min([await timed(read, chunks) for _ in range(runs)])
                sdk.off()
                if round_:  # round 0 warms up: imports, caches, instruments
                    key = (name, length)
                    best[key] = min(best.get(key, elapsed), elapsed)

    n = args.chunks
    raw, raw_one = best[("raw", "long")], best[("raw", "one")]
    print(f"{n} ChatCompletionChunk objects, in-process; best of {args.repeat} interleaved rounds")
    print(
        f"{'variant':<28}{'total ms':>10}{'µs/chunk':>10}{'overhead µs/chunk':>19}"
        f"{'fixed µs/session':>18}"
    )
    for name in variants:
        total, single = best[(name, "long")], best[(name, "one")]
        overhead = "—" if name == "raw" else f"{(total - raw) / n * 1e6:.3f}"
        fixed = "—" if name == "raw" else f"{(single - raw_one) * 1e6:.1f}"
        print(f"{name:<28}{total * 1e3:>10.2f}{total / n * 1e6:>10.3f}{overhead:>19}{fixed:>18}")


if __name__ == "__main__":
    asyncio.run(main())
