"""Run every benchmark and collect their tables into ``benchmarks/RESULTS.md`` (``make bench``).

    .venv/bin/python benchmarks/run_all.py                 # full sizes (~10 minutes)
    .venv/bin/python benchmarks/run_all.py --quick         # a smoke run (~1 minute)
    .venv/bin/python benchmarks/run_all.py --only overhead,concurrency

Each benchmark runs in its own process with its default sizes (``--quick`` passes ``--quick``
to each); its stdout — markdown — becomes one section of the results file, under the command
that produced it. The file starts with the machine, the date and the load average before and
after each benchmark: these machines are shared, and a loaded one makes every figure noisier.
The file is written even if a benchmark fails (its section then holds the error); the exit
code says whether all of them succeeded. The results are printed as well.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import time
from pathlib import Path

from _common import load, machine

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# name, script, what it shows
BENCHMARKS: tuple[tuple[str, str, str], ...] = (
    (
        "overhead",
        "overhead.py",
        "What l0 adds per chunk over the raw openai SDK, end to end through the chaos server "
        "and in-process over pre-built chunk objects.",
    ),
    (
        "instructions",
        "instructions.py",
        "What l0 adds per chunk end to end, counted on a simulated CPU (cachegrind): "
        "instructions and cache misses, the same from run to run.",
    ),
    (
        "bytecodes",
        "bytecodes.py",
        "Bytecodes l0 executes per chunk: a count, the same from run to run, for judging "
        "changes to the hot path.",
    ),
    (
        "concurrency",
        "concurrency.py",
        "1,000 concurrent sessions (clean and with faults) vs the raw SDK; memory over 10,000 "
        "sequential sessions.",
    ),
    (
        "guardrails_scaling",
        "guardrails_scaling.py",
        "The per-chunk cost of the guardrail presets at 10k, 100k and 1M characters of output.",
    ),
    (
        "json_repair",
        "json_repair.py",
        "l0's JSON repair per kind of breakage, against the json_repair library.",
    ),
)


def run(script: str, extra: list[str]) -> tuple[int, str, str, float]:
    command = [sys.executable, str(HERE / script), *extra]
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    return done.returncode, done.stdout, done.stderr, time.monotonic() - start


def _sections(path: Path) -> dict[str, list[str]]:
    """The ``## name`` sections of an earlier results file, by name (none if it is absent)."""
    if not path.exists():
        return {}
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line[3:].strip(), [])
        if current is not None:
            current.append(line)
    for lines in sections.values():
        lines.append("")
    return sections


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--only", help="comma-separated benchmark names")
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--v2-python", help="passed to overhead.py")
    args = parser.parse_args(argv)
    chosen = BENCHMARKS
    if args.only:
        wanted = {name.strip() for name in args.only.split(",")}
        unknown = wanted - {name for name, _, _ in BENCHMARKS}
        if unknown:
            parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
        chosen = tuple(b for b in BENCHMARKS if b[0] in wanted)

    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    invocation = "python benchmarks/run_all.py" + (" --quick" if args.quick else "")
    if args.only:
        invocation += f" --only {args.only}"
    header = [
        "# l0 benchmark results",
        "",
        f"- machine: {machine()}",
        f"- run: {started}, `{invocation}`" + (" (quick: smoke-test sizes)" if args.quick else ""),
        "",
    ]
    # With --only, the other benchmarks' sections of the existing file are kept.
    kept = _sections(Path(args.output)) if args.only else {}
    results: dict[str, list[str]] = {}
    failed: list[str] = []
    for name, script, about in chosen:
        extra = ["--quick"] if args.quick else []
        if name == "overhead" and args.v2_python:
            extra.append(f"--v2-python={args.v2_python}")
        if name == "overhead":
            extra.append("--quiet")
        before = load()
        print(f"running {name} ({before}) ...", file=sys.stderr, flush=True)
        code, out, err, seconds = run(script, extra)
        command = " ".join(["python", f"benchmarks/{script}", *extra])
        section = [
            f"## {name}",
            "",
            about,
            "",
            f"`{command}` — {started}, {seconds:.0f} s; {before} before, {load()} after.",
            "",
            out.strip().split("\nMachine:")[0].strip(),
            "",
        ]
        if code != 0:
            failed.append(name)
            error = err.strip()[-3000:]
            section += [f"**{name} exited with {code}:**", "", "```", error, "```", ""]
        results[name] = section
    sections = list(header)
    for name, _, _ in BENCHMARKS:
        if name in results:
            sections += results[name]
        elif name in kept:
            sections += kept[name]
    text = "\n".join(sections).rstrip() + "\n"
    Path(args.output).write_text(text, encoding="utf-8")
    print(text)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
