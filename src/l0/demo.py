"""``l0 demo``: l0's main job on embedded defaults.

Starts the chaos server in-process and runs a tour of real failure scenarios through the real
OpenAI SDK: each streams its text live, then prints a one-line outcome and the session's span
tree. No network, no API key.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

__all__ = ["main"]

PROMPT = [{"role": "user", "content": "Tell me about reliable streaming."}]


@dataclass
class Scenario:
    title: str
    explain: str
    model: str
    fallbacks: Sequence[str] = ()
    retry: dict[str, Any] = field(default_factory=dict)
    timeout: dict[str, Any] = field(default_factory=dict)
    guardrails: bool = False
    continuation: bool = False
    structured: bool = False


def scenarios() -> list[Scenario]:
    broken_json = '```json\n{"name": "Ada Lovelace", "born": 1815, "languages": ["en", "fr",],'
    return [
        Scenario("Clean stream", "a healthy model, streamed as it arrives", "gpt-4o-mini+words=18"),
        Scenario(
            "429 storm",
            "two 429s with Retry-After: 0.2s, then success",
            "gpt-4o-mini+words=12,status=429x2,retry=0.2,scenario=storm",
        ),
        Scenario(
            "Dropped connection",
            "the connection drops after 6 chunks: reset, retry",
            "gpt-4o-mini+words=16,drop@6x1,scenario=drop",
        ),
        Scenario(
            "Dropped connection, continued",
            "same drop; continue from the checkpoint, overlap removed",
            "gpt-4o-mini+words=16,drop@6x1,scenario=drop-continue",
            continuation=True,
        ),
        Scenario(
            "Hung stream",
            "stalls forever after 4 chunks; the 0.5s inter-token timer cuts it",
            "gpt-4o-mini+words=12,stall@4x1,scenario=hang",
            timeout={"inter_token": 0.5},
        ),
        Scenario(
            "Dead primary",
            "gpt-4o always 503; after 2 retries, fall back to gpt-4o-mini",
            "gpt-4o+status=503,scenario=dead",
            fallbacks=["gpt-4o-mini+words=12"],
            retry={"max_retries": 2},
        ),
        Scenario(
            "Guardrail violation",
            '"As an AI language model..." rejected by pattern_rule, retried',
            "gpt-4o-mini+words=12,asai x1,scenario=asai".replace(" ", ""),
            guardrails=True,
        ),
        Scenario(
            "Structured output",
            "truncated JSON, trailing comma: repaired, validated",
            "gpt-4o-mini+text=" + quote(broken_json, safe=""),
            structured=True,
        ),
    ]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="l0 demo",
        description=(
            "Run l0 through real failure scenarios: a local chaos server (OpenAI-compatible, "
            "fault injection), the real OpenAI SDK, l0's retries/fallbacks/timeouts/guardrails, "
            "and the OpenTelemetry span tree of every session. No network or API key needed."
        ),
    )
    parser.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        default=os.environ.get("L0_DEMO_OTLP_ENDPOINT"),
        help="also export spans over OTLP/HTTP, e.g. http://localhost:4318 (a Collector, "
        "Jaeger or Tempo)",
    )
    parser.add_argument(
        "--only",
        metavar="N",
        type=int,
        action="append",
        help="run only scenario N (1-based; repeatable)",
    )
    parser.add_argument("--no-spans", action="store_true", help="do not print span trees")
    parser.add_argument("--seed", type=int, default=7, help="seed for the server and jitter")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        import openai  # noqa: F401
        import rich  # noqa: F401
        import starlette  # noqa: F401
    except ImportError as error:
        print(f"l0 demo needs the extras: pip install 'l0[openai,chaos,otel]' ({error})")
        return 2
    return asyncio.run(_tour(args))


async def _tour(args: argparse.Namespace) -> int:
    import openai
    from rich.console import Console

    from l0.chaos import serve
    from l0.observability.console import SpanRecorder

    console = Console(width=min(100, Console().width), highlight=False)
    recorder = None if args.no_spans else SpanRecorder(otlp_endpoint=args.otlp_endpoint)
    chosen = list(enumerate(scenarios(), 1))
    if args.only:
        chosen = [(i, s) for i, s in chosen if i in args.only]
    started = time.perf_counter()
    failures = 0
    async with serve(seed=args.seed) as base_url:
        console.print(f"[bold]l0 demo[/bold] · chaos server at {base_url} · real OpenAI SDK\n")
        client = openai.AsyncOpenAI(base_url=base_url, api_key="demo-key", max_retries=0)
        for number, scenario in chosen:
            ok = await _run_one(console, client, number, scenario, args.seed)
            failures += not ok
            if recorder is not None:
                _print_tree(console, recorder)
            console.print()
        await client.close()
    if recorder is not None:
        recorder.shutdown()
    console.print(
        f"[bold]{len(chosen) - failures}/{len(chosen)} scenarios recovered[/bold] "
        f"in {time.perf_counter() - started:.1f}s"
    )
    return 0 if failures == 0 else 1


def _factory(client: Any, model: str) -> Callable[..., Any]:
    def create(context: Any) -> Any:
        messages = list(PROMPT)
        if context.continuation:
            messages += [
                {"role": "assistant", "content": context.checkpoint},
                {"role": "user", "content": "Continue exactly where you stopped."},
            ]
        return client.chat.completions.create(
            model=model,
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )

    return create


async def _run_one(console: Any, client: Any, number: int, scenario: Scenario, seed: int) -> bool:
    import l0
    from l0.guardrails.rules import pattern_rule

    console.print(f"[bold cyan]{number}. {scenario.title}[/bold cyan] — {scenario.explain}")
    retry = l0.Retry(base_delay=0.05, max_delay=0.2, rng=random.Random(seed), **scenario.retry)
    timeout = l0.Timeout(initial_token=2.0, **({"inter_token": 2.0} | scenario.timeout))
    fallbacks = [_factory(client, m) for m in scenario.fallbacks]
    started = time.perf_counter()
    if scenario.structured:
        return await _run_structured(console, client, scenario, retry, timeout, started)
    result = await l0.run(
        stream=_factory(client, scenario.model),
        fallbacks=fallbacks,
        retry=retry,
        timeout=timeout,
        # Meta-commentary is only a warning by default; the demo makes every match an error.
        guardrails=[pattern_rule(severity="error")] if scenario.guardrails else None,
        continue_from_checkpoint=scenario.continuation,
        meta={"demo.scenario": scenario.title},
    )
    console.print("   ", end="")
    try:
        async for event in result:
            if event.is_token:
                console.print(event.text, end="", style="green", markup=False)
            elif event.is_reset:
                console.print(" [red]⟲ reset[/red]\n   ", end="")
    except l0.L0Error as error:
        console.print(f"\n   [red]✗ {error.code.value}[/red] {error.message}")
        return False
    console.print()
    _outcome(console, result.state, time.perf_counter() - started)
    return True


async def _run_structured(
    console: Any, client: Any, scenario: Scenario, retry: Any, timeout: Any, started: float
) -> bool:
    from pydantic import BaseModel

    import l0
    from l0.structured import structured

    class Person(BaseModel):
        name: str
        born: int
        languages: list[str]

    try:
        result = await structured(
            schema=Person,
            stream=_factory(client, scenario.model),
            retry=retry,
            timeout=timeout,
            return_result=True,
        )
    except l0.L0Error as error:
        console.print(f"   [red]✗ {error.code.value}[/red] {error.message}")
        return False
    console.print(f"    raw:   [dim]{result.raw!r}[/dim]", markup=True)
    console.print(f"    fixed: {', '.join(result.corrections)}")
    console.print(f"    value: [green]{result.value!r}[/green]")
    _outcome(console, result.state, time.perf_counter() - started)
    return True


def _outcome(console: Any, state: Any, elapsed: float) -> None:
    ttft = f"{state.time_to_first_token:.2f}s" if state.time_to_first_token is not None else "-"
    retries = state.model_retry_count + state.network_retry_count
    console.print(
        f"   [bold green]✓[/bold green] attempts {state.attempt} · retries {retries} · "
        f"fallback {state.fallback_index} · ttft {ttft} · tokens {state.token_count} · "
        f"{elapsed:.2f}s"
    )


def _print_tree(console: Any, recorder: Any) -> None:
    lines = recorder.tree(recorder.take())
    for line in lines:
        indent = "   " + "  " * line.depth + ("└ " if line.depth else "")
        colour = {"completed": "green", "error": "red", "cancelled": "yellow"}.get(
            line.outcome, "white"
        )
        console.print(
            f"[dim]{indent}[/dim]{line.name} [{colour}]{line.outcome}[/{colour}] "
            f"[dim]{line.duration_ms:.0f}ms {line.details}[/dim]"
        )


if __name__ == "__main__":
    sys.exit(main())
