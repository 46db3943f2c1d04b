"""l0.structured through the real OpenAI client against the chaos server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import openai
import pytest
from pydantic import BaseModel

import l0
from l0.chaos import ChaosServer

pytestmark = pytest.mark.integration


class Link(BaseModel):
    title: str
    url: str
    tags: list[str]


@pytest.fixture
async def server() -> AsyncIterator[ChaosServer]:
    async with ChaosServer(seed=1) as chaos:
        yield chaos


def client_for(server: ChaosServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0)


def answering(client: openai.AsyncOpenAI, model: str, text: str) -> Any:
    return lambda: client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": f"echo: {text}"}],
        stream=True,
    )


FAST = l0.Retry(base_delay=0.01, max_delay=0.02)


async def test_broken_json_is_repaired_and_a_url_in_a_string_survives(server: ChaosServer) -> None:
    client = client_for(server)
    broken = (
        'Here you go:\n```json\n{"title": "l0", "url": "https://example.com/a//b?x=1", '
        '// the docs\n "tags": ["ai", "otel",],\n```'
    )
    result = await l0.structured(
        schema=Link,
        stream=answering(client, "gpt-4o-mini+scenario=repair", broken),
        return_result=True,
    )
    assert result.value == Link(title="l0", url="https://example.com/a//b?x=1", tags=["ai", "otel"])
    assert result.state.attempt == 1
    assert {"extracted_from_markdown", "trailing_comma", "removed_comments"} <= set(
        result.corrections
    )
    await client.close()


async def test_invalid_output_is_retried_on_the_same_model(server: ChaosServer) -> None:
    client = client_for(server)
    attempts: list[str] = [
        json.dumps({"title": "x", "url": 5, "tags": "none"}),  # wrong types
        json.dumps({"title": "ok", "url": "https://ok", "tags": []}),
    ]
    calls = 0

    def factory() -> Any:
        nonlocal calls
        text = attempts[min(calls, 1)]
        calls += 1
        return answering(client, "gpt-4o-mini+scenario=retry", text)()

    result = await l0.structured(schema=Link, stream=factory, retry=FAST, return_result=True)
    assert result.value.title == "ok"
    assert result.state.model_retry_count == 1
    assert result.state.errors[0].code is l0.ErrorCode.SCHEMA_VALIDATION_FAILED
    stats = server.stats()["scenarios"]["retry"]
    assert stats["requests"] == 2
    await client.close()


async def test_invalid_everywhere_falls_back_then_fails_with_every_attempt(
    server: ChaosServer,
) -> None:
    client = client_for(server)
    good = json.dumps({"title": "from backup", "url": "https://b", "tags": ["x"]})
    result = await l0.structured(
        schema=Link,
        stream=answering(client, "gpt-4o+scenario=bad", "no json here"),
        fallbacks=[answering(client, "gpt-4o-mini+scenario=backup", good)],
        retry=l0.Retry(attempts=1, base_delay=0.01, max_delay=0.02),
        return_result=True,
    )
    assert result.value.title == "from backup"
    assert result.state.fallback_index == 1
    assert server.stats()["scenarios"]["bad"]["requests"] == 2

    with pytest.raises(l0.L0Error) as raised:
        await l0.structured(
            schema=Link,
            stream=answering(client, "gpt-4o+scenario=bad2", '{"title": 1}'),
            retry=l0.Retry(attempts=1, base_delay=0.01, max_delay=0.02),
        )
    assert [e.code for e in raised.value.errors] == [l0.ErrorCode.SCHEMA_VALIDATION_FAILED] * 2
    assert "url" in raised.value.errors[0].message
    await client.close()


async def test_truncated_json_from_the_server_is_completed(server: ChaosServer) -> None:
    client = client_for(server)
    text = '{"title": "cut", "url": "https://c", "tags": ["a", "b"]}'
    # The chaos `truncate` fault cuts the JSON text short (the stream itself ends cleanly).
    model = "gpt-4o-mini+text=" + quote(text, safe="") + ",truncate,scenario=trunc"
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    result = await l0.structured(schema=dict[str, Any], stream=lambda: stream, return_result=True)
    assert result.raw != text and text.startswith(result.raw)  # the server really cut it
    assert result.value["title"] == "cut"
    assert result.corrections  # and l0 completed what was missing
    await client.close()
