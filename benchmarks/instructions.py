"""Benchmark: what l0 adds per chunk end to end, counted by a simulated CPU — no noise.

    .venv/bin/python benchmarks/instructions.py                  # 2,000 chunks, every variant
    .venv/bin/python benchmarks/instructions.py --variants "l0 core"
    .venv/bin/python benchmarks/instructions.py --src /tmp/before/src   # l0 from another tree

Wall-clock timings on a shared 2-vCPU machine move by several µs per chunk from one run to the
next (``overhead.py`` reports the spread), which is as much as the differences to measure. This
script runs the same reads as ``overhead.py`` (same worker code, same chaos-server stream, the
real ``openai`` SDK) under Valgrind's cachegrind, which executes the process on a simulated CPU
and counts what it did: instructions executed, first-level data-cache misses and last-level
cache misses (simulated caches of this machine's sizes). Those counts are the same from run to
run.

Each variant runs in two processes under cachegrind: one reads the stream once after a warm-up
read, the other three times; the difference over two reads is the cost of one read, without
imports, set-up and warm-up. Overhead = variant − raw, per content chunk (the session's fixed
cost included, as in ``overhead.py``). A CPU executes roughly 1–3 instructions per cycle on
this code; a last-level miss costs ~100 cycles, a D1 miss that hits the last level ~10–40.

Needs ``valgrind`` (Debian package; ``make bench`` installs it); about 4 minutes per
variant (two processes at a time), ~25 minutes in all.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import chaos_server, load, machine, markdown_table
from overhead import DEFAULT_V2_PYTHON

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

VARIANTS = (
    "raw",
    "floor: one generator",
    "l0 core",
    "l0 full stack",
    "L0Instrumentor",
    "openai-v2 instrumentation",
)
# cachegrind's summary lines: "==pid== I   refs:      1,234,567"
_SUMMARY = {
    "instructions": re.compile(r"I\s+refs:\s+([\d,]+)"),
    "i1_misses": re.compile(r"I1\s+misses:\s+([\d,]+)"),
    "d1_misses": re.compile(r"D1\s+misses:\s+([\d,]+)"),
    "ll_misses": re.compile(r"LL misses:\s+([\d,]+)"),
}


def worker(name: str, base_url: str, model: str, reads: int) -> int:
    import asyncio

    from overhead import _setup

    read, _ = _setup(name, base_url)

    async def main() -> None:
        await read(model)  # warm-up: first calls, caches, lazy imports
        for _ in range(reads):
            await read(model)

    asyncio.run(main())
    return 0


def _python_for(name: str, v2_python: str) -> str | None:
    if name == "openai-v2 instrumentation":
        return v2_python if Path(v2_python).exists() else None
    return sys.executable


def _cache_sizes() -> list[str]:
    """cachegrind options simulating this machine's L1i, L1d and *L2* (as the last level):
    the real last level here is far larger than anything a stream touches, while a miss in
    L2 is what costs the ~100 cycles a chunk's code and data pay when they went cold."""
    options = []
    for flag, prefix in (
        ("--I1", "LEVEL1_ICACHE"),
        ("--D1", "LEVEL1_DCACHE"),
        ("--LL", "LEVEL2_CACHE"),
    ):
        values = []
        for field in ("SIZE", "ASSOC", "LINESIZE"):
            done = subprocess.run(
                ["getconf", f"{prefix}_{field}"], capture_output=True, text=True, check=False
            )
            value = done.stdout.strip()
            values.append(value if value.isdigit() and int(value) > 0 else "")
        if all(values):
            options.append(f"{flag}={','.join(values)}")
    return options


def _count(
    python: str,
    name: str,
    base_url: str,
    model: str,
    reads: int,
    src: str | None,
    caches: list[str],
) -> dict[str, int]:
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=yes",
            *caches,
            f"--cachegrind-out-file={tmp}/cg.out",
            python,
            str(HERE / "instructions.py"),
            "--worker",
            name,
            "--base-url",
            base_url,
            "--model",
            model,
            "--reads",
            str(reads),
        ]
        path = [str(HERE)] if src is None else [src, str(HERE)]
        env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": os.pathsep.join(path)}
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{name}: cachegrind run failed:\n{done.stderr[-2000:]}")
    counts = {}
    for key, pattern in _SUMMARY.items():
        match = pattern.search(done.stderr)
        if match is None:
            raise RuntimeError(f"{name}: no {key} in cachegrind's output")
        counts[key] = int(match.group(1).replace(",", ""))
    return counts


def measure(
    variants: list[str],
    base_url: str,
    model: str,
    v2_python: str,
    src: str | None = None,
    caches: list[str] | None = None,
) -> dict[str, dict[str, float] | str]:
    """Per variant: counts for one read (or the reason it was skipped)."""
    jobs: dict[tuple[str, int], concurrent.futures.Future[dict[str, int]]] = {}
    results: dict[str, dict[str, float] | str] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for name in variants:
            python = _python_for(name, v2_python)
            if python is None:
                results[name] = f"skipped: no {v2_python}"
                continue
            for reads in (1, 3):
                tree = None if name == "raw" else src
                jobs[name, reads] = pool.submit(
                    _count, python, name, base_url, model, reads, tree, caches or []
                )
        for name in variants:
            if name in results:
                continue
            once, thrice = jobs[name, 1].result(), jobs[name, 3].result()
            results[name] = {key: (thrice[key] - once[key]) / 2 for key in once}
    return results


def report(results: dict[str, dict[str, float] | str], chunks: int, last_level: str) -> str:
    raw = results["raw"]
    assert isinstance(raw, dict)
    rows: list[list[Any]] = []
    for name, counts in results.items():
        if isinstance(counts, str):
            rows.append([name, counts, "", "", "", "", "", ""])
            continue
        per = {key: value / chunks for key, value in counts.items()}
        if name == "raw":
            rows.append(
                [
                    name,
                    f"{per['instructions']:,.0f}",
                    "—",
                    "—",
                    f"({per['i1_misses']:,.0f})",
                    f"{per['d1_misses']:.1f}",
                    "—",
                    f"{per['ll_misses']:.2f}",
                ]
            )
            continue
        extra = {key: (counts[key] - raw[key]) / chunks for key in counts}
        share = extra["instructions"] / (raw["instructions"] / chunks) * 100
        rows.append(
            [
                name,
                f"{per['instructions']:,.0f}",
                f"{extra['instructions']:+,.0f}",
                f"{share:+.2f}%",
                f"{extra['i1_misses']:+.1f}",
                f"{per['d1_misses']:.1f}",
                f"{extra['d1_misses']:+.1f}",
                f"{extra['ll_misses']:+.2f}",
            ]
        )
    header = [
        "variant",
        "instructions/chunk",
        "added instructions/chunk",
        "vs raw",
        "added I1 misses/chunk",
        "D1 misses/chunk",
        "added D1 misses/chunk",
        f"added {last_level} misses/chunk",
    ]
    simulated = "this machine's L2" if last_level == "L2" else "cachegrind's default"
    return "\n".join(
        [
            f"Counted by cachegrind (simulated CPU): the openai SDK reading {chunks:,} one-word "
            "chunks from the chaos server, per content chunk, one read (the session's fixed "
            f"cost included); 'added' = variant − raw (in brackets: the raw read's own "
            f"I1 misses). Last level simulated: {simulated}. {load()}.",
            "",
            markdown_table(header, rows),
            "",
            f"Machine: {machine()}.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="200 chunks")
    parser.add_argument("--variants", help="comma-separated subset (raw always runs)")
    parser.add_argument("--v2-python", default=DEFAULT_V2_PYTHON)
    parser.add_argument(
        "--src", help="import l0 from this source tree (e.g. a checkout of an earlier commit)"
    )
    parser.add_argument(
        "--l2",
        action="store_true",
        help="simulate this machine's L1i, L1d and L2 (as the last level) instead of "
        "cachegrind's defaults: the LL column then counts L2 misses",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--reads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.base_url, args.model, args.reads)
    if shutil.which("valgrind") is None:
        # Not a failure of the benchmarks: `make bench` installs it where it can.
        print("Skipped: instructions.py needs valgrind (apt-get install valgrind).")
        print()
        print("| variant | status |\n|---|---|\n| all | skipped: no valgrind |")
        return 0
    variants = list(VARIANTS)
    if args.variants:
        chosen = {v.strip() for v in args.variants.split(",")}
        variants = ["raw", *(v for v in VARIANTS if v in chosen and v != "raw")]
    chunks = 200 if args.quick else args.chunks
    model = f"gpt-4o-mini+words={chunks},chunk=1w"
    with chaos_server() as base_url:
        caches = _cache_sizes() if args.l2 else []
        results = measure(variants, base_url, model, args.v2_python, args.src, caches)
    print(report(results, chunks, "L2" if args.l2 else "LL"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
