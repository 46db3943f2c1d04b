"""Every Python example in README.md and docs/*.md runs.

Each ```python block runs in its own interpreter against a local chaos server: the OpenAI SDK
finds it through OPENAI_BASE_URL, and the docs' `http://127.0.0.1:8765` (the `l0 chaos`
default) points at it too. Top-level `await` is allowed, as in the docs. A block that cannot run
here (a signature, a snippet needing your Sentry DSN) is marked on the line before its fence
with `<!-- not-run: why -->` and reported as skipped, with the reason.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from l0.chaos import serve_in_thread

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python\s*$")
NOT_RUN = re.compile(r"<!--\s*not-run:\s*(.+?)\s*-->")

RUNNER = """
import ast, asyncio, sys, types
source = sys.stdin.read()
code = compile(source, sys.argv[1], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
namespace = {"__name__": "__main__"}
if code.co_flags & 0x80:  # CO_COROUTINE: the block awaits at top level
    asyncio.run(types.FunctionType(code, namespace)())
else:
    exec(code, namespace)
"""


def blocks() -> Iterator[tuple[str, str, str | None]]:
    for path in DOCS:
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if not FENCE.match(line):
                continue
            end = next(i for i in range(number + 1, len(lines)) if lines[i].startswith("```"))
            previous = lines[number - 1] if number else ""
            marker = NOT_RUN.search(previous)
            source = "\n".join(lines[number + 1 : end])
            label = f"{path.relative_to(ROOT)}:{number + 1}"
            yield label, source, marker.group(1) if marker else None


ALL = list(blocks())


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve_in_thread(seed=3) as url:
        yield url


def test_the_docs_have_examples() -> None:
    assert len(ALL) > 20
    assert any(label.startswith("README.md") for label, _, _ in ALL)


@pytest.mark.parametrize(("label", "source", "reason"), ALL, ids=[label for label, _, _ in ALL])
def test_example_runs(label: str, source: str, reason: str | None, base_url: str) -> None:
    if reason is not None:
        pytest.skip(f"not run: {reason}")
    origin = base_url.removesuffix("/v1")
    env = {
        **os.environ,
        "OPENAI_BASE_URL": base_url,
        "OPENAI_API_KEY": "docs-test",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "OTEL_SDK_DISABLED": os.environ.get("OTEL_SDK_DISABLED", ""),
    }
    code = source.replace("http://127.0.0.1:8765", origin)
    completed = subprocess.run(
        [sys.executable, "-c", RUNNER, label],
        input=code,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, (
        f"{label} failed:\n--- stdout\n{completed.stdout[-2000:]}\n"
        f"--- stderr\n{completed.stderr[-4000:]}"
    )
