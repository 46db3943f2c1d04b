"""A chaos workload through l0, exposed on ``/metrics`` by the OTel SDK's Prometheus exporter.

``test_dashboards.py`` runs this as a subprocess: OpenTelemetry's global providers can be set
once per process, and a process of its own keeps the test independent of every other test's
providers. It is also runnable by hand (``python tests/integration/dashboard_workload.py``, then
type ``round`` and look at the printed ``/metrics`` URL).

Protocol, one line each way:

- on start it serves ``/metrics`` on a free loopback port and prints ``METRICS <port>``;
- each ``round`` line on stdin runs one round of the workload (every scenario below, at once)
  and prints ``ROUND <n> <sessions>``; Prometheus must scrape between rounds, so every counter
  has a sample before its increase (``rate()`` does not count a series' first value);
- ``stop`` or end of input exits.

Every scenario's faults go in the ``X-L0-Chaos`` header, so the request model stays a real
model name (``gpt-4o``, ``gpt-4o-mini``), and the targets carry model, provider and server as
the ``L0Instrumentor`` fills them. One session in each round is a plain factory, as in
``l0 demo``: no request model on its metrics.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlsplit

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

SERVICE = "l0-dashboards-test"
"""``service.name`` of the workload: Prometheus' ``job`` label is set to it as well."""

PROMPT = [{"role": "user", "content": "Tell me about reliable streaming."}]
BROKEN_JSON = '```json\n{"name": "Ada Lovelace", "born": 1815, "languages": ["en", "fr",],'


def _configure() -> int:
    """Install the SDK with the Prometheus reader; serve ``/metrics``; return its port."""
    from opentelemetry import metrics, trace
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from prometheus_client import start_http_server

    resource = Resource.create({"service.name": SERVICE})
    # Spans are recorded (no exporter): metric exemplars then carry trace ids, as in production.
    trace.set_tracer_provider(TracerProvider(resource=resource))
    metrics.set_meter_provider(
        MeterProvider(metric_readers=[PrometheusMetricReader()], resource=resource)
    )
    server, _thread = start_http_server(0, addr="127.0.0.1")
    return int(server.server_port)


class Workload:
    """One chaos server and OpenAI client; :meth:`round` runs every scenario once."""

    def __init__(self, client: Any, base_url: str) -> None:
        self.client = client
        where = urlsplit(base_url)
        self.host = where.hostname
        self.port = where.port
        self.number = 0
        self.made = 0

    def target(self, model: str, chaos: str, *, plain: bool = False) -> Any:
        """A stream factory for ``model`` with ``chaos`` faults (its own scenario counter)."""
        from l0.runtime.fallback import Target

        self.made += 1
        # A counter of its own per target: `xN` windows count requests per scenario.
        scenario = f"s{self.made}"
        directives = f"{chaos},scenario={scenario}" if chaos else f"scenario={scenario}"
        client = self.client

        def factory(context: Any) -> Any:
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
                extra_headers={"X-L0-Chaos": directives},
            )

        if plain:
            return factory
        # What an integration (the instrumentor) knows up front: model, provider, server.
        return Target(
            factory,
            0,
            True,
            model=model,
            provider="openai",
            server_address=self.host,
            server_port=self.port,
        )

    async def session(self, primary: Any, *fallbacks: Any, **options: Any) -> str:
        """Run one session to its end; return its outcome (errors are expected)."""
        import l0

        result = await l0.run(stream=primary, fallbacks=list(fallbacks) or None, **options)
        try:
            await result.read()
        except l0.L0Error:
            return "error"
        return "completed"

    async def cancelled(self, primary: Any) -> str:
        """A consumer that stops after the first token: the session is ``cancelled``."""
        import l0

        result = await l0.run(stream=primary, retry=_retry())
        async for event in result:
            if event.is_token:
                break
        await result.aclose()
        return "cancelled"

    async def abandoned(self, primary: Any) -> str:
        """A result never read: the session is ``abandoned`` when it is garbage-collected."""
        import l0

        result = await l0.run(stream=primary, retry=_retry())
        del result
        gc.collect()
        return "abandoned"

    async def structured(self, primary: Any) -> str:
        """Broken JSON, repaired and validated by ``l0.structured``."""
        from pydantic import BaseModel

        from l0.structured import structured

        class Person(BaseModel):
            name: str
            born: int
            languages: list[str]

        await structured(schema=Person, stream=primary, retry=_retry())
        return "completed"

    def scenarios(self) -> list[Awaitable[str]]:
        import l0
        from l0.guardrails.drift import drift_rule
        from l0.guardrails.rules import pattern_rule

        t = self.target
        mini, big = "gpt-4o-mini", "gpt-4o"
        stalls = l0.Timeout(initial_token=5.0, inter_token=0.25)
        return [
            # healthy traffic
            *(self.session(t(mini, "words=24"), retry=_retry()) for _ in range(6)),
            *(self.session(t(big, "words=30"), retry=_retry()) for _ in range(2)),
            self.session(t(mini, "words=12", plain=True), retry=_retry()),
            # provider storms: 503s and a 429 with Retry-After, then success
            self.session(t(mini, "status=503x2"), retry=_retry()),
            self.session(t(big, "status=503x1"), retry=_retry()),
            self.session(t(mini, "status=429x1,retry=0.05"), retry=_retry()),
            # a connection dropped mid-stream: reset, retry; once more with continuation
            self.session(t(mini, "words=16,drop@5x1"), retry=_retry()),
            self.session(
                t(big, "words=16,drop@6x1"), retry=_retry(), continue_from_checkpoint=True
            ),
            # stalls: cut by the inter-token timer, and one by the initial-token timer
            *(
                self.session(t(mini, "words=12,stall@3x1"), retry=_retry(), timeout=stalls)
                for _ in range(3)
            ),
            self.session(
                t(big, "ttfb=2x1"),
                retry=_retry(),
                timeout=l0.Timeout(initial_token=0.3, inter_token=1.0),
            ),
            # slow first chunks (the TTFC panels and alert): 3 s before the first byte
            *(
                self.session(
                    t(big, "words=8,ttfb=3"),
                    retry=_retry(),
                    timeout=l0.Timeout(initial_token=6.0, inter_token=2.0),
                )
                for _ in range(2)
            ),
            # dead primaries: always 503; after the retries, fall back to gpt-4o-mini
            *(
                self.session(t(big, "status=503"), t(mini, "words=12"), retry=_retry(max_retries=1))
                for _ in range(3)
            ),
            # guardrails: meta-commentary made an error, retried; drift (a loop), retried
            self.session(
                t(mini, "words=12,asai x1".replace(" ", "")),
                retry=_retry(),
                guardrails=[pattern_rule(severity="error")],
            ),
            self.session(t(big, "words=40,repeat=30x1"), retry=_retry(), guardrails=[drift_rule()]),
            # structured output: truncated JSON with a trailing comma, repaired
            self.structured(t(mini, "text=" + quote(BROKEN_JSON, safe=""))),
            # terminal failures: retries exhausted, and a fatal auth error
            *(self.session(t(big, "status=503"), retry=_retry(max_retries=1)) for _ in range(4)),
            self.session(t(mini, "status=401"), retry=_retry()),
            self.session(t(mini, "status=500"), retry=_retry(max_retries=1)),
            # consumers that stop early, or never read
            self.cancelled(t(mini, "words=40,delay=0.02")),
            self.abandoned(t(mini, "words=12")),
        ]

    async def round(self) -> int:
        self.number += 1
        outcomes = await asyncio.gather(*self.scenarios())
        return len(outcomes)


def _retry(max_retries: int = 3) -> Any:
    import random

    import l0

    return l0.Retry(
        attempts=2,
        max_retries=max_retries,
        base_delay=0.01,
        max_delay=0.05,
        rng=random.Random(7),
    )


async def _serve(port: int, read_line: Callable[[], Awaitable[str]]) -> None:
    import openai

    from l0.chaos import serve

    async with serve(seed=7) as base_url:
        client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=10)
        workload = Workload(client, base_url)
        print(f"METRICS {port}", flush=True)
        while True:
            command = (await read_line()).strip()
            if command == "round":
                sessions = await workload.round()
                print(f"ROUND {workload.number} {sessions}", flush=True)
            elif command in ("stop", ""):
                break
        await client.close()


def main() -> int:
    port = _configure()
    loop_input = asyncio.to_thread

    async def read_line() -> str:
        return await loop_input(sys.stdin.readline)

    asyncio.run(_serve(port, read_line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
