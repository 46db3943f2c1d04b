"""Benchmark: many sessions at once and many in a row — throughput, peak memory, leaks.

    .venv/bin/python benchmarks/concurrency.py            # 1,000 concurrent; 10,000 in a row
    .venv/bin/python benchmarks/concurrency.py --quick    # 50 concurrent; 300 in a row

Against a chaos server in its own process, with the real ``openai`` SDK:

* **concurrent, raw**: ``--sessions`` streams of ``--words`` one-word chunks at once through
  the SDK alone — the reference throughput;
* **concurrent, l0**: the same streams through ``l0.run`` with the full stack
  (``Guardrails.recommended()``, the OpenTelemetry SDK configured as in ``_common.SDK_SETUP``);
* **concurrent, l0 + faults**: the same again with faults in 40% of the sessions, each
  session its own chaos scenario so a fault hits its first request only: a connection dropped
  mid-stream, a 503 on the request, a malformed SSE line, a stall the inter-token timer cuts
  (``Timeout(inter_token=0.25)``). Retries use a short backoff (``Retry(base_delay=0.01,
  max_delay=0.05)``) so the figure is l0's work rather than its sleeping; every session must
  still end with the full text.
* **sequential**: ``--sequential`` l0 full-stack sessions one after the other. The resident
  set size (RSS, after a GC pass) is sampled every tenth of the way; after the run, spans
  started but not ended, live asyncio tasks and live l0 objects (sessions, attempts, phases,
  results) are counted: all must be zero, and RSS must stay flat.

Each scenario runs in a fresh process (this script, ``--mode``), so its peak RSS
(``ru_maxrss``) is its own; "peak − base" is the peak over the RSS measured just before the
run, after imports and a warm-up session.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import SDK_SETUP, chaos_server, load, machine, markdown_table

HERE = Path(__file__).resolve().parent
PREFIX = "@@ "
MESSAGES = [{"role": "user", "content": "Tell me a story."}]
MODES = ("concurrent-raw", "concurrent-l0", "concurrent-l0-faults", "sequential")


def rss_mib() -> float:
    """The resident set size now, in MiB."""
    with open("/proc/self/statm", encoding="ascii") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    """The process's peak resident set size so far, in MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- the scenarios (run in a worker process) -------------------------------------------------


class SpanCounter:
    """A span processor counting spans started and ended (a leak shows as a difference)."""

    def __init__(self) -> None:
        self.started = 0
        self.ended = 0

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.started += 1

    def on_end(self, span: Any) -> None:
        self.ended += 1

    def _on_ending(self, span: Any) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def _fault(index: int, words: int) -> str:
    """The chaos directives of session ``index``: 60% clean, 40% with one fault each."""
    scenario = f"scenario=s{index}"
    kind = index % 10
    if kind == 1:
        return f",drop@{words // 2}x1,{scenario}"
    if kind == 2:
        return f",status=503x1,{scenario}"
    if kind == 3:
        return f",badsse@{words // 3}x1,{scenario}"
    if kind == 4:
        return f",stall@{words // 2}=5x1,{scenario}"
    return ""


async def scenario(mode: str, base_url: str, sessions: int, words: int) -> dict[str, Any]:
    import openai

    import l0

    full = mode != "concurrent-raw"
    counter = SpanCounter()
    if full:
        from _common import sdk_providers
        from opentelemetry import metrics, trace

        tracer_provider, meter_provider = sdk_providers()
        tracer_provider.add_span_processor(counter)
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
    client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    base_model = f"gpt-4o-mini+words={words},chunk=1w"
    token = l0.EventType.TOKEN
    retry = l0.Retry(base_delay=0.01, max_delay=0.05)
    faults = mode == "concurrent-l0-faults"
    timeout = l0.Timeout(initial_token=5.0, inter_token=0.25) if faults else None

    def create(model: str) -> Any:
        return client.chat.completions.create(
            model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )

    async def raw_session(index: int) -> tuple[int, int]:
        length = 0
        stream = await create(base_model)
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                length += len(chunk.choices[0].delta.content)
        return length, 0

    async def l0_session(index: int) -> tuple[int, int]:
        model = base_model + (_fault(index, words) if faults else "")
        result = await l0.run(
            stream=lambda: create(model),
            guardrails=l0.Guardrails.recommended(),
            retry=retry,
            timeout=timeout,
        )
        length = 0
        async for event in result:
            if event.type is token:
                length += len(event.text or "")
            elif event.is_reset:
                length = 0
        return length, result.state.attempt - 1

    one = raw_session if mode == "concurrent-raw" else l0_session
    expected, _ = await one(-1)  # warm-up: imports, connection, caches
    gc.collect()
    base = rss_mib()
    report: dict[str, Any] = {"mode": mode, "base_rss": base, "words": words}
    if mode == "sequential":
        samples: list[tuple[int, float]] = []
        step = max(1, sessions // 10)
        start = time.perf_counter()
        for index in range(sessions):
            await one(index)
            if (index + 1) % step == 0:
                gc.collect()
                samples.append((index + 1, rss_mib()))
        elapsed = time.perf_counter() - start
        ok = sessions
        retries = 0
        report["samples"] = samples
    else:
        start = time.perf_counter()
        outcomes = await asyncio.gather(
            *(one(index) for index in range(sessions)), return_exceptions=True
        )
        elapsed = time.perf_counter() - start
        good = [o for o in outcomes if isinstance(o, tuple) and o[0] == expected]
        ok = len(good)
        retries = sum(o[1] for o in good)
        errors = [repr(o)[:200] for o in outcomes if not isinstance(o, tuple)]
        report["errors"] = errors[:3]
    await client.close()
    await asyncio.sleep(0.1)  # let closing tasks finish
    gc.collect()
    report.update(
        elapsed=elapsed,
        sessions=sessions,
        ok=ok,
        retries=retries,
        chunks=sessions * words,
        peak_rss=peak_rss_mib(),
        end_rss=rss_mib(),
        open_spans=counter.started - counter.ended,
        spans=counter.started,
        tasks=len(asyncio.all_tasks()) - 1,
        live=_live_l0_objects(),
    )
    return report


def _live_l0_objects() -> int:
    from l0.observability.phase import Phase
    from l0.runtime.session import Result, Session, _Attempt

    kinds = (Phase, Result, Session, _Attempt)
    return sum(1 for o in gc.get_objects() if isinstance(o, kinds))


def worker(mode: str, base_url: str, sessions: int, words: int) -> int:
    report = asyncio.run(scenario(mode, base_url, sessions, words))
    print(PREFIX + json.dumps(report), flush=True)
    return 0


# --- driver ----------------------------------------------------------------------------------


def run_mode(mode: str, base_url: str, sessions: int, words: int) -> dict[str, Any]:
    command = [
        sys.executable,
        str(HERE / "concurrency.py"),
        f"--mode={mode}",
        f"--base-url={base_url}",
        f"--n={sessions}",
        f"--words={words}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith(PREFIX):
            report: dict[str, Any] = json.loads(line[len(PREFIX) :])
            return report
    raise RuntimeError(f"{mode} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")


def report(results: list[dict[str, Any]], words: int, loads: tuple[str, str]) -> str:
    concurrent = [r for r in results if r["mode"] != "sequential"]
    raw = next((r for r in concurrent if r["mode"] == "concurrent-raw"), None)
    rows = []
    for r in concurrent:
        rate = r["sessions"] / r["elapsed"]
        ratio = f"{rate / (raw['sessions'] / raw['elapsed']):.2f}×" if raw else "—"
        rows.append(
            [
                r["mode"].replace("concurrent-", ""),
                f"{r['ok']}/{r['sessions']}",
                r["retries"],
                f"{r['elapsed']:.2f}",
                f"{rate:.0f}",
                f"{r['chunks'] / r['elapsed']:,.0f}",
                ratio,
                f"{r['base_rss']:.0f}",
                f"{r['peak_rss']:.0f}",
                f"{r['peak_rss'] - r['base_rss']:.0f}",
                r["open_spans"],
                r["tasks"],
            ]
        )
    header = [
        "concurrent",
        "complete",
        "retries",
        "s",
        "sessions/s",
        "chunks/s",
        "vs raw",
        "base RSS MiB",
        "peak RSS MiB",
        "peak − base",
        "open spans",
        "tasks left",
    ]
    lines = [
        f"{concurrent[0]['sessions'] if concurrent else 0:,} sessions at once, {words} one-word "
        f"chunks each, through the chaos server (own process). Load before: {loads[0]}; "
        f"after: {loads[1]}.",
        "",
        markdown_table(header, rows),
    ]
    for r in concurrent:
        if r.get("errors"):
            lines.append(f"- {r['mode']} failures (first ones): {r['errors']}")
    sequential = next((r for r in results if r["mode"] == "sequential"), None)
    if sequential is not None:
        samples = sequential["samples"]
        # The first tenth warms up (caches, the span queue filling to its batch size): growth
        # is measured from the second sample on.
        first_n, first = samples[1] if len(samples) > 2 else samples[0]
        last_n, last = samples[-1]
        growth = last - first
        per_1000 = growth / max(1, last_n - first_n) * 1000 * 1024
        flat = (
            growth < 2.0
            and sequential["open_spans"] == 0
            and sequential["tasks"] == 0
            and sequential["live"] == 0
        )
        lines += [
            "",
            f"{sequential['sessions']:,} sequential l0 full-stack sessions "
            f"({sequential['words']} chunks each, "
            f"{sequential['elapsed']:.1f} s, {sequential['sessions'] / sequential['elapsed']:.0f}"
            "/s). RSS after a GC pass, MiB:",
            "",
            markdown_table(
                ["after sessions", *(f"{n:,}" for n, _ in samples)],
                [["RSS MiB", *(f"{v:.1f}" for _, v in samples)]],
            ),
            "",
            f"- growth from {first_n:,} to {last_n:,} sessions: {growth:+.2f} MiB "
            f"({per_1000:+.0f} KiB per 1,000 sessions); spans started {sequential['spans']:,}, "
            f"not ended {sequential['open_spans']}; asyncio tasks left "
            f"{sequential['tasks']}; live l0 sessions/attempts/phases/results "
            f"{sequential['live']} — {'no growth, no leak' if flat else 'CHECK: growth or leak'}.",
        ]
    lines.append(f"- OTel SDK for the l0 runs: {SDK_SETUP}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000, help="concurrent sessions")
    parser.add_argument("--sequential", type=int, default=10_000, help="sessions in a row")
    parser.add_argument("--words", type=int, default=64, help="chunks per concurrent stream")
    parser.add_argument("--seq-words", type=int, default=16, help="chunks per sequential stream")
    parser.add_argument("--quick", action="store_true", help="50 concurrent, 300 in a row")
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mode:
        return worker(args.mode, args.base_url, args.n, args.words)
    if args.quick:
        args.sessions, args.sequential, args.words = 50, 300, 16
    before = load()
    results = []
    with chaos_server() as base_url:
        for mode in MODES:
            if mode == "sequential":
                n, words = args.sequential, args.seq_words
            else:
                n, words = args.sessions, args.words
            print(f"  {mode}: {n} sessions ({load()})", file=sys.stderr, flush=True)
            results.append(run_mode(mode, base_url, n, words))
    print(report(results, args.words, (before, load())))
    print(f"\nMachine: {machine()}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
