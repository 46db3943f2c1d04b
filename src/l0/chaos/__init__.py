"""An OpenAI-compatible local server that injects faults on request — toxiproxy for LLM streams.

Pick a fault in the model name (or the ``X-L0-Chaos`` header) and point any OpenAI client at
the server::

    async with l0.chaos.serve() as base_url:
        client = openai.AsyncOpenAI(base_url=base_url, api_key="x")
        await client.chat.completions.create(
            model="gpt-4o-mini+drop@12", messages=[{"role": "user", "content": "hi"}],
            stream=True,
        )  # the connection drops after 12 content chunks

From a shell: ``l0 chaos --port 8765``. The grammar and every fault: ``docs/chaos.md``.
The server needs the ``chaos`` extra (starlette, uvicorn); importing this package does not.
"""

from __future__ import annotations

from l0.chaos.app import CHAOS_HEADER, SCENARIO_HEADER, ChaosState, ScenarioStats, create_app
from l0.chaos.grammar import (
    ChaosGrammarError,
    Chunking,
    Content,
    Fault,
    FaultKind,
    Plan,
    Scenario,
    parse_scenario,
)
from l0.chaos.server import ChaosServer, serve, serve_in_thread

__all__ = [
    "CHAOS_HEADER",
    "SCENARIO_HEADER",
    "ChaosGrammarError",
    "ChaosServer",
    "ChaosState",
    "Chunking",
    "Content",
    "Fault",
    "FaultKind",
    "Plan",
    "Scenario",
    "ScenarioStats",
    "create_app",
    "parse_scenario",
    "serve",
    "serve_in_thread",
]
