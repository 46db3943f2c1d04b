"""Benchmark: what l0 adds per chunk, end to end, over reading the same stream with the raw SDK.

    .venv/bin/python benchmarks/overhead.py                  # 2,000 chunks, 40 rounds
    .venv/bin/python benchmarks/overhead.py --quick          # a smoke run (small, few rounds)
    .venv/bin/python benchmarks/overhead.py --v2-python .venv-bench-v2/bin/python
    .venv/bin/python benchmarks/overhead.py --compare-src /tmp/before/src   # before/after

A chaos server (its own process) streams ``gpt-4o-mini+words=N,chunk=1w``: N content chunks
of one word (plus the role, finish and usage chunks), read with the real ``openai`` SDK
(``AsyncOpenAI``, ``stream_options.include_usage``). Every variant reads the same stream and
does the same with it (adds up the length of the content):

* ``raw``: the SDK alone — ``async for chunk in stream``;
* ``floor: one generator``: not l0, a reference — the least a wrapper that hands out its own
  event per chunk can add: one async generator reading ``choices[0].delta.content`` and
  yielding an ``l0.Event`` stamped with ``time.monotonic()``;
* ``l0 core``: ``l0.run(stream=lambda: client.chat.completions.create(...))`` with default
  retry and timeouts, no guardrails, no OpenTelemetry SDK;
* ``l0 full stack``: the same with ``guardrails=l0.Guardrails.recommended()`` (built per call,
  as the README writes it) and the OpenTelemetry SDK configured globally (see
  ``_common.SDK_SETUP``);
* ``L0Instrumentor``: the raw SDK code, unchanged, after
  ``L0Instrumentor().instrument(guardrails=l0.Guardrails.recommended())``, SDK configured;
* ``openai-v2 instrumentation``: the raw SDK code after the official
  ``OpenAIInstrumentor().instrument()`` (``opentelemetry-instrumentation-openai-v2``), SDK
  configured. It needs its own environment (``--v2-python``, see DESIGN §6); skipped with the
  reason when there is none.

OpenTelemetry lets a process set its providers once, so each variant lives in its own
long-lived worker process (this script, ``--worker NAME``). The driver sends each worker a
command over a pipe and waits for its timing, one worker at a time: round *r* runs every
variant once, in an order that alternates between rounds (ABC…, …CBA), after warm-up rounds.

Two processes running the very same code differ by up to ~1 µs per chunk here (memory
layout), which is as much as the differences to measure. So every worker also reads the
stream *raw* in every round — with the SDK's own ``create``, captured before any
instrumentation patched it — first on even rounds, second on odd ones, and a variant's
overhead is its run minus that raw run: same process, same round. The ``raw`` worker does the
same with two raw reads: its "overhead" is the A/A noise floor. Each worker also times a
batch of one-word streams per round, paired the same way: the fixed cost of a session.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

from _common import (
    SDK_SETUP,
    chaos_server,
    load,
    machine,
    markdown_table,
    median_ci,
    quartiles,
)

HERE = Path(__file__).resolve().parent
COMPARED = " (--compare-src)"
# Made by scripts/ensure-bench-v2.sh (`make bench`); see docs/performance.md.
DEFAULT_V2_PYTHON = str(HERE.parent / ".venv-bench-v2" / "bin" / "python")
MESSAGES = [{"role": "user", "content": "Tell me a long story."}]
PREFIX = "@@ "

# name -> what it runs
VARIANTS: dict[str, str] = {
    "raw": "the openai SDK alone",
    "floor: one generator": "an async generator yielding an l0.Event per content chunk",
    "l0 core": "l0.run, default retry/timeouts, no guardrails, no OTel SDK",
    "l0 full stack": "l0.run + Guardrails.recommended() + OTel SDK (spans, metrics)",
    "L0Instrumentor": "raw SDK code + L0Instrumentor(guardrails=recommended()) + OTel SDK",
    "openai-v2 instrumentation": "raw SDK code + OpenAIInstrumentor + OTel SDK",
}

Read = Callable[[str], Awaitable[int]]


# --- worker ----------------------------------------------------------------------------------


def _install_sdk() -> None:
    """Configure the OpenTelemetry SDK globally, as an application would."""
    from _common import sdk_providers
    from opentelemetry import metrics, trace

    tracer_provider, meter_provider = sdk_providers()
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)


def _setup(name: str, base_url: str) -> tuple[Read, Read]:
    """Prepare the variant's process; return its read function and the raw SDK's, each
    ``model -> content length``. The raw one calls the SDK's own ``create`` (captured before
    any instrumentation patches it), so every worker times the raw read next to its variant."""
    import openai
    from openai.resources.chat.completions import AsyncCompletions

    client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    original_create = AsyncCompletions.create
    options: dict[str, Any] = {
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }

    def create(model: str) -> Any:
        return client.chat.completions.create(model=model, **options)

    async def consume(stream: Any) -> int:
        length = 0
        async for chunk in stream:
            if chunk.choices:
                content = chunk.choices[0].delta.content
                if content:
                    length += len(content)
        return length

    async def read_raw(model: str) -> int:
        return await consume(await original_create(client.chat.completions, model=model, **options))

    async def read_sdk(model: str) -> int:
        return await consume(await create(model))

    if name == "raw":
        return read_raw, read_raw
    if name == "openai-v2 instrumentation":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        _install_sdk()
        OpenAIInstrumentor().instrument()
        return read_sdk, read_raw

    import l0

    token = l0.EventType.TOKEN
    if name == "L0Instrumentor":
        from opentelemetry.instrumentation.l0 import L0Instrumentor

        _install_sdk()
        L0Instrumentor().instrument(guardrails=l0.Guardrails.recommended())
        return read_sdk, read_raw

    if name == "floor: one generator":
        event_class = l0.Event
        monotonic = time.monotonic

        async def one_generator(stream: Any) -> Any:
            async for chunk in stream:
                choices = chunk.choices
                if choices:
                    text = choices[0].delta.content
                    if text:
                        yield event_class(token, text, None, None, None, monotonic())

        async def read_floor(model: str) -> int:
            length = 0
            async for event in one_generator(await create(model)):
                length += len(event.text)
            return length

        return read_floor, read_raw

    full = name == "l0 full stack"
    if full:
        _install_sdk()
    elif name != "l0 core":
        raise SystemExit(f"unknown variant {name!r}")

    async def read_l0(model: str) -> int:
        length = 0
        result = await l0.run(
            stream=lambda: create(model),
            guardrails=l0.Guardrails.recommended() if full else None,
        )
        async for event in result:
            if event.type is token:
                length += len(event.text or "")
        return length

    return read_l0, read_raw


def _send(out: TextIO, message: dict[str, Any]) -> None:
    out.write(PREFIX + json.dumps(message) + "\n")
    out.flush()


async def _timed(read: Read, model: str, runs: int) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, content length) per run; a GC pass first, not timed."""
    gc.collect()
    cpu = time.process_time()
    wall = time.perf_counter()
    length = 0
    for _ in range(runs):
        length += await read(model)
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    return wall / runs, cpu / runs, length // runs


def worker(name: str, base_url: str, long_model: str, short_model: str, batch: int) -> int:
    out = sys.stdout
    try:
        read, read_raw = _setup(name, base_url)
    except Exception as exc:  # reported to the driver, which skips the variant
        _send(out, {"skip": f"{type(exc).__name__}: {exc}"})
        return 0

    async def serve() -> None:
        _send(out, {"ready": True, "python": sys.version.split()[0]})
        while True:
            # Blocking on purpose: nothing else should run while the driver times another
            # variant. A command is "long|short <parity>": which of the pair runs first.
            command = sys.stdin.readline().split()
            if not command or command[0] == "quit":
                return
            model, runs = (long_model, 1) if command[0] == "long" else (short_model, batch)
            if command[1] == "0":
                raw = await _timed(read_raw, model, runs)
                variant = await _timed(read, model, runs)
            else:
                variant = await _timed(read, model, runs)
                raw = await _timed(read_raw, model, runs)
            _send(
                out,
                {
                    "wall": variant[0],
                    "cpu": variant[1],
                    "length": variant[2],
                    "raw_wall": raw[0],
                    "raw_cpu": raw[1],
                },
            )

    asyncio.run(serve())
    return 0


# --- driver ----------------------------------------------------------------------------------


class Worker:
    """One variant's process and its pipe. ``src``: import l0 from this source tree instead
    (the ``--compare-src`` variants)."""

    def __init__(self, name: str, python: str, args: list[str], src: str | None = None) -> None:
        self.name = name
        env = None
        if src is not None:
            name = name.removesuffix(COMPARED)
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, str(HERE)])}
        self.proc = subprocess.Popen(
            [python, str(HERE / "overhead.py"), "--worker", name, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=env,
        )

    def receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"worker {self.name!r} exited (code {self.proc.wait()})")
            if line.startswith(PREFIX):
                message: dict[str, Any] = json.loads(line[len(PREFIX) :])
                return message

    def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.receive()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def _start_workers(
    names: list[str], v2_python: str | None, worker_args: list[str], compare_src: str | None
) -> tuple[list[Worker], dict[str, str]]:
    skipped: dict[str, str] = {}
    started: list[Worker] = []
    for name in names:
        if name.endswith(COMPARED):
            started.append(Worker(name, sys.executable, worker_args, compare_src))
            continue
        python = sys.executable
        if name == "openai-v2 instrumentation":
            if not v2_python or not Path(v2_python).exists():
                skipped[name] = (
                    f"no Python with opentelemetry-instrumentation-openai-v2 at {v2_python!r} "
                    "(see docs/performance.md to make one; pass --v2-python)"
                )
                continue
            python = v2_python
        started.append(Worker(name, python, worker_args))
    ready: list[Worker] = []
    for w in started:
        try:
            message = w.receive()
        except RuntimeError as exc:
            message = {"skip": str(exc)}
        if "skip" in message:
            skipped[w.name] = message["skip"]
            w.close()
        else:
            ready.append(w)
    return ready, skipped


def measure(
    workers: list[Worker], rounds: int, warmup: int, progress: bool
) -> dict[str, dict[str, list[float]]]:
    """Per variant, one value per round: ``long``/``long_cpu`` (a long run, wall and CPU
    seconds), ``raw``/``raw_cpu`` (the raw read in the same worker, same round), ``short`` /
    ``short_raw`` (per one-word session), ``length`` (content characters read)."""
    keys = ("long", "long_cpu", "raw", "raw_cpu", "short", "short_raw", "length")
    results = {w.name: {key: [] for key in keys} for w in workers}
    for round_ in range(warmup + rounds):
        parity = round_ % 2
        order = workers if parity == 0 else list(reversed(workers))
        for w in order:
            long_run = w.ask(f"long {parity}")
            short_run = w.ask(f"short {1 - parity}")
            if round_ >= warmup:
                r = results[w.name]
                r["long"].append(long_run["wall"])
                r["long_cpu"].append(long_run["cpu"])
                r["raw"].append(long_run["raw_wall"])
                r["raw_cpu"].append(long_run["raw_cpu"])
                r["short"].append(short_run["wall"])
                r["short_raw"].append(short_run["raw_wall"])
                r["length"].append(long_run["length"])
        if progress:
            done = round_ + 1
            print(f"  round {done}/{warmup + rounds} ({load()})", file=sys.stderr, flush=True)
    return results


def _per_round(values: list[float], base: list[float], scale: float) -> list[float]:
    return [(v - b) * scale for v, b in zip(values, base, strict=True)]


def _paired(values: list[float], base: list[float], scale: float) -> tuple[float, float, float]:
    return quartiles(_per_round(values, base, scale))


def per_chunk_overheads(r: dict[str, list[float]], chunks: int) -> list[float]:
    """A variant's per-round overhead (µs per chunk) over the raw read beside it."""
    return _per_round(r["long"], r["raw"], 1e6 / chunks)


def overhead(r: dict[str, list[float]], chunks: int) -> float:
    """The median paired per-chunk overhead (µs) of a variant over the raw read beside it."""
    return quartiles(per_chunk_overheads(r, chunks))[1]


def report(
    results: dict[str, dict[str, list[float]]],
    skipped: dict[str, str],
    chunks: int,
    rounds: int,
    batch: int,
    loads: tuple[str, str],
) -> str:
    rows: list[list[Any]] = []
    for name, r in results.items():
        median = quartiles(r["long"])[1]
        per_round = per_chunk_overheads(r, chunks)
        q1, q2, q3 = quartiles(per_round)
        low, high = median_ci(per_round)
        ratios = [v / b - 1 for v, b in zip(r["long"], r["raw"], strict=True)]
        percent = quartiles(ratios)[1] * 100
        cpu = _paired(r["long_cpu"], r["raw_cpu"], 1e6 / chunks)[1]
        fixed = _paired(r["short"], r["short_raw"], 1e6)[1]
        label = f"{name} (A/A: raw vs raw)" if name == "raw" else name
        rows.append(
            [
                label,
                f"{median * 1e3:.1f}",
                f"{median / chunks * 1e6:.2f}",
                f"{q2:+.2f}",
                f"{low:+.2f} … {high:+.2f}",
                f"{q1:+.2f} … {q3:+.2f}",
                f"{percent:+.1f}%",
                f"{cpu:+.2f}",
                f"{fixed:+.0f}",
            ]
        )
    for name in skipped:
        rows.append([name, "skipped", "", "", "", "", "", "", ""])
    header = [
        "variant",
        "ms/run",
        "µs/chunk",
        "overhead µs/chunk",
        "95% CI of the median",
        "IQR of rounds",
        "vs raw",
        "CPU overhead µs/chunk",
        "fixed µs/session",
    ]
    lengths = {name: set(r["length"]) for name, r in results.items()}
    same = len({frozenset(v) for v in lengths.values()}) == 1
    lines = [
        f"End to end: the openai SDK reading {chunks:,} one-word chunks from the chaos server "
        f"(its own process), {rounds} interleaved rounds. Each variant's worker process also "
        f"reads the stream raw in every round (first or second, alternately): overhead = "
        f"variant − that raw read, per content chunk (the session's fixed cost included), "
        f"median over rounds; its 95% confidence interval (bootstrap: how well the median is "
        f"known) and the inter-quartile range of the rounds (how much one round varies); "
        f"CPU = the worker's process time. Fixed cost: {batch} one-word streams per round, per "
        f"session, same pairing. Load before: {loads[0]}; after: {loads[1]}.",
        "",
        markdown_table(header, rows),
        "",
    ]
    if not same:
        lines.append(f"WARNING: the variants read different content lengths: {lengths}")
    for name, reason in skipped.items():
        lines.append(f"- {name} skipped: {reason}")
    lines.append(f"- OTel SDK where configured: {SDK_SETUP}.")
    lines.extend(verdict(results, chunks))
    return "\n".join(lines)


def _against(ci: tuple[float, float], limit: float) -> str:
    """Whether a median whose 95% interval is ``ci`` is within ``limit``: a claim only when
    the whole interval is on one side."""
    low, high = ci
    if high <= limit:
        return "met"
    if low > limit:
        return "NOT met"
    return "not decided on this run (the interval holds the limit; add rounds)"


def verdict(results: dict[str, dict[str, list[float]]], chunks: int) -> list[str]:
    """The budget of issue 8, judged on the 95% intervals of the medians."""
    if "l0 full stack" not in results:
        return ["- Budget: not evaluated (no full-stack run)."]
    full_r = results["l0 full stack"]
    full = per_chunk_overheads(full_r, chunks)
    raw_per_chunk = quartiles(full_r["raw"])[1] / chunks * 1e6
    median = quartiles(full)[1]
    ci = median_ci(full)
    share = [value / raw_per_chunk * 100 for value in ci]
    lines = [
        f"- Budget, full stack ≤ 4 µs/chunk: median {median:+.2f} (95% CI {ci[0]:+.2f} … "
        f"{ci[1]:+.2f}) — {_against(ci, 4.0)}; ≤ 5% of the raw read: "
        f"{share[0]:.1f} … {share[1]:.1f}% — {_against((share[0], share[1]), 5.0)}."
    ]
    if "openai-v2 instrumentation" in results:
        # Both workers read in the same round: compare their overheads round by round.
        v2 = per_chunk_overheads(results["openai-v2 instrumentation"], chunks)
        difference = [a - b for a, b in zip(full, v2, strict=True)]
        d_median = quartiles(difference)[1]
        low, high = median_ci(difference)
        if high < 0:
            outcome = "below it — met"
        elif low > 0:
            outcome = "above it — NOT met"
        else:
            outcome = "not distinguishable on this run"
        lines.append(
            f"- Full stack vs the official openai-v2 instrumentation on the same rounds: "
            f"{d_median:+.2f} µs/chunk (95% CI {low:+.2f} … {high:+.2f}): {outcome}."
        )
    if "l0 core" in results:
        core = per_chunk_overheads(results["l0 core"], chunks)
        ci = median_ci(core)
        lines.append(
            f"- Core without an SDK < 1.5 µs/chunk end to end: median {quartiles(core)[1]:+.2f} "
            f"(95% CI {ci[0]:+.2f} … {ci[1]:+.2f}) — {_against(ci, 1.5)} (the in-process "
            "figure is below)."
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=2000, help="content chunks per stream")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=20, help="one-word streams per round")
    parser.add_argument("--v2-python", default=DEFAULT_V2_PYTHON)
    parser.add_argument("--variants", help="comma-separated subset (raw always runs)")
    parser.add_argument(
        "--compare-src",
        metavar="DIR",
        help="also run the l0 variants with l0 imported from DIR (the src/ of another "
        "checkout, e.g. `git archive <rev> src | tar -x -C /tmp/before`): a before/after "
        "measured in the same rounds",
    )
    parser.add_argument("--no-inprocess", action="store_true", help="skip the micro-benchmark")
    parser.add_argument("--quick", action="store_true", help="200 chunks, 4 rounds")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument(
        "--save", metavar="FILE", help="also write every round's timings to FILE (JSON)"
    )
    parser.add_argument(
        "--load",
        metavar="FILE",
        help="report the rounds saved in FILE (by --save) instead of measuring",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--long-model", help=argparse.SUPPRESS)
    parser.add_argument("--short-model", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.base_url, args.long_model, args.short_model, args.batch)
    if args.quick:
        args.chunks, args.rounds, args.warmup, args.batch = 200, 4, 1, 3
    names = list(VARIANTS)
    if args.variants:
        wanted = {"raw", *(v.strip() for v in args.variants.split(","))}
        names = [n for n in names if n in wanted]
    if args.compare_src:
        names += [f"{n}{COMPARED}" for n in names if n.startswith("l0 ")]
    if args.load:
        saved = json.loads(Path(args.load).read_text(encoding="utf-8"))
        print(report(saved["results"], saved["skipped"], *saved["settings"], saved["loads"]))
        return 0
    long_model = f"gpt-4o-mini+words={args.chunks},chunk=1w"
    short_model = "gpt-4o-mini+words=1"
    before = load()
    with chaos_server() as base_url:
        worker_args = [
            f"--base-url={base_url}",
            f"--long-model={long_model}",
            f"--short-model={short_model}",
            f"--batch={args.batch}",
        ]
        workers, skipped = _start_workers(names, args.v2_python, worker_args, args.compare_src)
        try:
            if not any(w.name == "raw" for w in workers):
                print(f"the raw variant could not run: {skipped.get('raw')}", file=sys.stderr)
                return 1
            results = measure(workers, args.rounds, args.warmup, not args.quiet)
        finally:
            for w in workers:
                w.close()
    loads = (before, load())
    if args.save:
        settings = [args.chunks, args.rounds, args.batch]
        saved = {"results": results, "skipped": skipped, "settings": settings, "loads": loads}
        Path(args.save).write_text(json.dumps(saved), encoding="utf-8")
    print(report(results, skipped, args.chunks, args.rounds, args.batch, loads))
    if not args.no_inprocess:
        print()
        command = [sys.executable, str(HERE / "hotpath.py")] + (["--quick"] if args.quick else [])
        inprocess = subprocess.run(command, capture_output=True, text=True, check=False)
        sys.stdout.write(inprocess.stdout.split("\nMachine:")[0].rstrip() + "\n")
        if inprocess.returncode:
            sys.stderr.write(inprocess.stderr)
            return inprocess.returncode
    print(f"\nMachine: {machine()}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
