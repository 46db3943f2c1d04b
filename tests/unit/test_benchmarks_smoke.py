"""The benchmark scripts still run: each one, at tiny sizes, exits 0 and prints a table.

No figure is checked — timings belong in ``benchmarks/``, never in assertions. The scripts
that start the chaos server (in a process of their own) are integration tests.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run(script: str, *args: str, timeout: float = 120) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{script} exited {done.returncode}:\n{done.stderr[-3000:]}"
    assert "|---" in done.stdout, f"{script} printed no table:\n{done.stdout[-3000:]}"
    return done.stdout


def test_hotpath() -> None:
    out = run("hotpath.py", "--chunks", "40", "--rounds", "2", "--batch", "2")
    assert "l0 full stack" in out


def test_bytecodes() -> None:
    out = run("bytecodes.py", "--quick")
    assert "**total**" in out


def test_guardrails_scaling() -> None:
    run("guardrails_scaling.py", "--quick", "--repeat", "1")


def test_json_repair() -> None:
    run("json_repair.py", "--n", "5", "--repeat", "1")


def test_run_all_writes_the_results_file(tmp_path: Path) -> None:
    output = tmp_path / "RESULTS.md"
    out = run("run_all.py", "--quick", "--only", "guardrails_scaling", f"--output={output}")
    text = output.read_text(encoding="utf-8")
    assert text.startswith("# l0 benchmark results")
    assert "## guardrails_scaling" in text
    assert "|---" in out


@pytest.mark.integration
def test_overhead() -> None:
    out = run(
        "overhead.py",
        *("--chunks", "40", "--rounds", "2", "--warmup", "1", "--batch", "2"),
        *("--no-inprocess", "--quiet", "--v2-python", "/nonexistent/python"),
    )
    assert "l0 full stack" in out
    assert "openai-v2 instrumentation skipped" in out


@pytest.mark.integration
def test_concurrency() -> None:
    out = run(
        "concurrency.py",
        *("--sessions", "8", "--sequential", "20", "--words", "8", "--seq-words", "4"),
    )
    assert "l0-faults" in out
    assert "sequential" in out
