"""Benchmark: how many bytecodes l0 executes per chunk — a count, not a timing.

    .venv/bin/python benchmarks/bytecodes.py              # l0.run with and without guardrails
    .venv/bin/python benchmarks/bytecodes.py --lines run  # per line of the functions named

Timings on a shared 2-vCPU machine move by 10–20% from one run to the next; the number of
bytecodes l0 runs for a chunk does not. ``sys.settrace`` with opcode events counts every
instruction executed in l0's own code (``src/l0``) while ``l0.run`` reads a stream of pre-built
``ChatCompletionChunk`` objects; the count for 2N chunks minus the count for N chunks, over N,
is the cost of one chunk without the session's fixed cost. Fewer bytecodes is not always less
time (a C call counts as one), but on the hot path it has tracked the timings closely.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import FrameType
from typing import Any

from _common import chunk_objects, markdown_table

import l0

SOURCE = str(Path(l0.__file__).resolve().parent)

Counts = collections.Counter[Any]


def count(chunks: int, guardrails: bool, lines: bool) -> Counts:
    """Bytecodes executed in l0's code per function (and per line) reading ``chunks`` chunks."""
    stream_chunks = chunk_objects(chunks)
    counts: Counts = collections.Counter()

    def local(frame: FrameType, event: str, arg: Any) -> Callable[..., Any]:
        if event == "opcode":
            code = frame.f_code
            counts[code.co_name] += 1
            if lines:
                counts[(code.co_name, frame.f_lineno)] += 1
        return local

    def tracer(frame: FrameType, event: str, arg: Any) -> Callable[..., Any] | None:
        filename = frame.f_code.co_filename
        # Dataclass-generated methods (Event.__init__) are compiled from "<string>".
        if not (filename.startswith(SOURCE) or filename == "<string>"):
            return None
        frame.f_trace_opcodes = True
        return local

    async def stream() -> AsyncIterator[Any]:
        for chunk in stream_chunks:
            yield chunk

    async def read() -> None:
        rules = l0.Guardrails.recommended() if guardrails else None
        result = await l0.run(stream=stream, adapter="openai", guardrails=rules)
        sys.settrace(tracer)
        try:
            async for _ in result:
                pass
        finally:
            sys.settrace(None)

    asyncio.run(read())
    return counts


def per_chunk(n: int, guardrails: bool, lines: bool) -> dict[Any, float]:
    count(n, guardrails, lines)  # warm-up: imports, caches
    once = count(n, guardrails, lines)
    twice = count(2 * n, guardrails, lines)
    return {key: (twice[key] - once.get(key, 0)) / n for key in twice}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--lines", nargs="*", metavar="FUNCTION", help="per-line counts")
    parser.add_argument("--quick", action="store_true", help="50 chunks")
    args = parser.parse_args(argv)
    if args.quick:
        args.chunks = 50
    variants = {"l0.run, no guardrails": False, "l0.run + recommended()": True}
    results = {
        name: per_chunk(args.chunks, rules, bool(args.lines)) for name, rules in variants.items()
    }
    functions = sorted(
        {k for r in results.values() for k, v in r.items() if isinstance(k, str) and v >= 0.5},
        key=lambda k: -max(r.get(k, 0.0) for r in results.values()),
    )
    rows = [
        [
            "**total**",
            *(
                f"**{sum(v for k, v in r.items() if isinstance(k, str)):.0f}**"
                for r in results.values()
            ),
        ]
    ]
    rows += [[f"`{f}`", *(f"{r.get(f, 0.0):.1f}" for r in results.values())] for f in functions]
    n = args.chunks
    print(f"Bytecodes executed in l0's code per content chunk ({n} vs {2 * n} chunks):")
    print()
    print(markdown_table(["function", *variants], rows))
    if args.lines:
        for name, r in results.items():
            print(f"\n{name}, per line:")
            keys = (k for k in r if not isinstance(k, str) and k[0] in args.lines)
            for key in sorted(keys, key=lambda k: (k[0], k[1] or 0)):
                if r[key] >= 0.05:
                    print(f"  {r[key]:6.1f}  {key[0]}:{key[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
