"""Benchmark: what l0 adds per chunk and per session, in-process, over pre-built chunk objects.

    .venv/bin/python benchmarks/hotpath.py                 # 2,000 chunks, 41 rounds
    .venv/bin/python benchmarks/hotpath.py --quick         # a smoke run
    .venv/bin/python benchmarks/hotpath.py --only "l0 core" --profile   # loop one variant

The stream is a list of ``ChatCompletionChunk`` objects built once and handed out by an async
generator: no HTTP, no SSE parsing, no SDK object building is timed, only what reads them.
That isolates l0's own per-chunk work, which end to end (``overhead.py``) hides under the
SDK's ~80 µs per chunk and the machine's noise.

Variants (one run each per round, in an order that alternates between rounds, after a
warm-up round):

* ``raw``: ``async for chunk in stream: pass`` — the floor (~0.06 µs/chunk);
* ``l0 core``: ``l0.run(stream=factory, adapter="openai")``, default retry and timeouts, no
  guardrails, no OpenTelemetry SDK (the API's no-op path);
* ``l0 + recommended()``: the same with ``guardrails=l0.Guardrails.recommended()``;
* ``l0 core + OTel SDK``: no guardrails, SDK tracer and meter providers configured;
* ``l0 full stack``: ``recommended()`` and the SDK.

The SDK variants point l0 at SDK providers with ``l0.observability.set_*_provider`` for their
runs only (see ``_common.SDK_SETUP``): one process can then time all variants side by side.

Figures: the median time of a run; the median over rounds of the *paired* difference
(variant − raw of the same round) per chunk, with its inter-quartile range; and the fixed
cost of a session (``l0.run`` + reading a one-chunk stream, minus the raw read of it), as the
median over rounds of a batch of sessions.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from _common import (
    SDK_SETUP,
    chunk_objects,
    load,
    machine,
    markdown_table,
    quartiles,
    sdk_providers,
)

import l0
import l0.observability

Reader = Callable[[list[Any]], Awaitable[None]]


def _factory(chunks: list[Any]) -> Callable[[], AsyncIterator[Any]]:
    async def stream() -> AsyncIterator[Any]:
        for chunk in chunks:
            yield chunk

    return stream


async def read_raw(chunks: list[Any]) -> None:
    async for _ in _factory(chunks)():
        pass


async def read_l0(chunks: list[Any]) -> None:
    result = await l0.run(stream=_factory(chunks), adapter="openai")
    async for _ in result:
        pass


async def read_l0_text(chunks: list[Any]) -> None:
    # read(): only the text is wanted, so the steady path builds no token events.
    await (await l0.run(stream=_factory(chunks), adapter="openai")).read()


async def read_l0_recommended(chunks: list[Any]) -> None:
    result = await l0.run(
        stream=_factory(chunks), adapter="openai", guardrails=l0.Guardrails.recommended()
    )
    async for _ in result:
        pass


class Variant:
    def __init__(self, name: str, read: Reader, sdk: bool) -> None:
        self.name = name
        self.read = read
        self.sdk = sdk


VARIANTS = (
    Variant("raw", read_raw, sdk=False),
    Variant("l0 core", read_l0, sdk=False),
    Variant("l0 core, read()", read_l0_text, sdk=False),
    Variant("l0 + recommended()", read_l0_recommended, sdk=False),
    Variant("l0 core + OTel SDK", read_l0, sdk=True),
    Variant("l0 full stack", read_l0_recommended, sdk=True),
)


class Sdk:
    """SDK providers switched on around the runs of the SDK variants only."""

    def __init__(self) -> None:
        self.tracer_provider, self.meter_provider = sdk_providers()

    def on(self) -> None:
        l0.observability.set_tracer_provider(self.tracer_provider)
        l0.observability.set_meter_provider(self.meter_provider)

    def off(self) -> None:
        l0.observability.set_tracer_provider(None)
        l0.observability.set_meter_provider(None)

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


async def _time(variant: Variant, chunks: list[Any], sessions: int, sdk: Sdk) -> float:
    """Seconds for ``sessions`` reads of ``chunks`` (a GC pass first, not timed)."""
    if variant.sdk:
        sdk.on()
    try:
        read = variant.read
        gc.collect()
        start = time.perf_counter()
        for _ in range(sessions):
            await read(chunks)
        return time.perf_counter() - start
    finally:
        sdk.off()


async def measure(
    variants: tuple[Variant, ...], chunks: int, rounds: int, batch: int
) -> dict[str, dict[str, list[float]]]:
    """Per variant: ``long`` (seconds per run of the long stream) and ``one`` (seconds per
    session over a one-chunk stream), one value per round; round 0 (warm-up) is dropped."""
    sdk = Sdk()
    long_stream = chunk_objects(chunks)
    one_chunk = chunk_objects(1)
    results: dict[str, dict[str, list[float]]] = {v.name: {"long": [], "one": []} for v in variants}
    try:
        for round_ in range(rounds + 1):
            order = variants if round_ % 2 == 0 else tuple(reversed(variants))
            for variant in order:
                long_time = await _time(variant, long_stream, 1, sdk)
                one_time = await _time(variant, one_chunk, batch, sdk) / batch
                if round_:
                    results[variant.name]["long"].append(long_time)
                    results[variant.name]["one"].append(one_time)
    finally:
        sdk.shutdown()
    return results


def report(results: dict[str, dict[str, list[float]]], chunks: int, rounds: int) -> str:
    raw = results["raw"]
    rows = []
    for name, times in results.items():
        _, median, _ = quartiles(times["long"])
        row: list[Any] = [name, f"{median * 1e3:.2f}", f"{median / chunks * 1e6:.3f}"]
        if name == "raw":
            row += ["—", "—", "—"]
        else:
            pairs = zip(times["long"], raw["long"], strict=True)
            paired = [(t - r) / chunks * 1e6 for t, r in pairs]
            q1, q2, q3 = quartiles(paired)
            fixed = [(t - r) * 1e6 for t, r in zip(times["one"], raw["one"], strict=True)]
            row += [f"{q2:.3f}", f"{q1:.3f} – {q3:.3f}", f"{quartiles(fixed)[1]:.0f}"]
        rows.append(row)
    header = [
        "variant",
        "ms/run",
        "µs/chunk",
        "overhead µs/chunk",
        "IQR",
        "fixed µs/session",
    ]
    lines = [
        f"In-process: {chunks:,} pre-built ChatCompletionChunk objects, {rounds} interleaved "
        f"rounds (medians; overhead = paired per-round difference vs raw, per chunk, fixed cost "
        f"of the session included). {load()}.",
        "",
        markdown_table(header, rows),
        "",
        f"OTel SDK: {SDK_SETUP}.",
    ]
    return "\n".join(lines)


async def profile_loop(variant: Variant, chunks: int, seconds: float) -> None:
    """Run one variant over and over (for py-spy / pyinstrument attached from outside)."""
    sdk = Sdk()
    stream = chunk_objects(chunks)
    deadline = time.monotonic() + seconds
    runs = 0
    while time.monotonic() < deadline:
        await _time(variant, stream, 1, sdk)
        runs += 1
    sdk.shutdown()
    print(f"{variant.name}: {runs} runs of {chunks} chunks", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=41)
    parser.add_argument("--batch", type=int, default=50, help="one-chunk sessions per timing")
    parser.add_argument("--quick", action="store_true", help="200 chunks, 5 rounds")
    parser.add_argument("--only", help="variants whose name contains this (raw always runs)")
    parser.add_argument("--profile", type=float, metavar="SECONDS", help="loop one variant")
    args = parser.parse_args(argv)
    if args.quick:
        args.chunks, args.rounds, args.batch = 200, 5, 10
    variants = VARIANTS
    if args.only:
        variants = tuple(v for v in VARIANTS if v.name == "raw" or args.only in v.name)
    if args.profile:
        asyncio.run(profile_loop(variants[-1], args.chunks, args.profile))
        return 0
    results = asyncio.run(measure(variants, args.chunks, args.rounds, args.batch))
    print(report(results, args.chunks, args.rounds))
    print(f"\nMachine: {machine()}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
