"""Structured output: validated results, repair, retries on invalid output, partial streaming."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest
from pydantic import BaseModel

import l0
from l0.structured import Partial, StructuredResult, structured, structured_stream
from l0.testing import FakeClock, scripted_factory


class User(BaseModel):
    name: str
    age: int
    email: str


@dataclasses.dataclass
class Point:
    x: int
    y: int


def fast_retry(**kwargs: Any) -> l0.Retry:
    return l0.Retry(base_delay=0, max_delay=0, **kwargs)


async def test_returns_the_validated_instance() -> None:
    clock = FakeClock()
    factory = scripted_factory(['{"name": "Ada", ', '"age": 36, "email": "ada@example.com"}'])
    user = await structured(schema=User, stream=factory, clock=clock)
    assert isinstance(user, User)
    assert (user.name, user.age, user.email) == ("Ada", 36, "ada@example.com")


async def test_broken_json_is_repaired_and_reported() -> None:
    clock = FakeClock()
    text = 'Here you go:\n```json\n{"name": "Ada", "age": 36, "email": "a@b.c",}\n```'
    result = await structured(
        schema=User, stream=scripted_factory([text]), clock=clock, return_result=True
    )
    assert isinstance(result, StructuredResult)
    assert result.value.age == 36
    assert "trailing_comma" in result.corrections
    assert result.raw == text
    assert result.state.attempt == 1


async def test_a_url_in_a_string_survives_repair() -> None:
    clock = FakeClock()
    text = '{"name": "Ada", "age": 1, "email": "https://example.com/a//b" // comment\n}'
    user = await structured(schema=User, stream=scripted_factory([text]), clock=clock)
    assert user.email == "https://example.com/a//b"


async def test_invalid_output_is_retried_counting_toward_attempts() -> None:
    clock = FakeClock()
    factory = scripted_factory(
        ['{"name": "Ada", "age": "old", "email": "x"}'],
        ['{"name": "Ada", "age": 36, "email": "x"}'],
        clock=clock,
    )
    result = await structured(
        schema=User, stream=factory, retry=fast_retry(), clock=clock, return_result=True
    )
    assert result.value.age == 36
    assert factory.calls == 2
    assert result.state.model_retry_count == 1
    assert result.state.errors[0].code is l0.ErrorCode.SCHEMA_VALIDATION_FAILED
    assert "age" in result.state.errors[0].message


async def test_invalid_everywhere_falls_back_then_lists_every_attempt() -> None:
    clock = FakeClock()
    primary = scripted_factory(['{"name": 1}'], clock=clock)
    backup = scripted_factory(["not json at all"], clock=clock)
    with pytest.raises(l0.L0Error) as raised:
        await structured(
            schema=User,
            stream=primary,
            fallbacks=[backup],
            retry=fast_retry(attempts=1),
            clock=clock,
        )
    error = raised.value
    assert error.category is l0.ErrorCategory.CONTENT
    assert (primary.calls, backup.calls) == (2, 2)
    assert [e.fallback_index for e in error.errors] == [0, 0, 1, 1]
    assert all(e.code is l0.ErrorCode.SCHEMA_VALIDATION_FAILED for e in error.errors)
    assert "age" in error.errors[0].message
    assert "not valid JSON" in error.errors[-1].message


async def test_auto_correct_off_rejects_broken_json() -> None:
    clock = FakeClock()
    factory = scripted_factory(['{"name": "A", "age": 1, "email": "e",}'], clock=clock)
    with pytest.raises(l0.L0Error):
        await structured(
            schema=User,
            stream=factory,
            auto_correct=False,
            retry=fast_retry(attempts=0),
            clock=clock,
        )


@pytest.mark.parametrize(
    ("schema", "text", "expected"),
    [
        (list[User], '[{"name": "a", "age": 1, "email": "e"}]', [User(name="a", age=1, email="e")]),
        (Point, '{"x": 1, "y": 2}', Point(1, 2)),
        (dict[str, int], "{'a': 1, 'b': 2}", {"a": 1, "b": 2}),
    ],
)
async def test_type_adapter_schemas(schema: Any, text: str, expected: Any) -> None:
    value = await structured(schema=schema, stream=scripted_factory([text]), clock=FakeClock())
    assert value == expected


async def test_structured_events_are_emitted() -> None:
    seen: list[l0.ObservabilityEventType] = []
    await structured(
        schema=User,
        stream=scripted_factory(['{"name": "A", "age": 1, "email": "e",}']),
        clock=FakeClock(),
        on_event=lambda e: seen.append(e.type),
    )
    T = l0.ObservabilityEventType
    for kind in (
        T.STRUCTURED_PARSE_START,
        T.STRUCTURED_PARSE_END,
        T.STRUCTURED_AUTO_CORRECT,
        T.STRUCTURED_VALIDATION_START,
        T.STRUCTURED_VALIDATION_END,
    ):
        assert kind in seen


def test_unusable_schema_is_a_config_error() -> None:
    class NotASchema:
        def __init__(self, handle: object) -> None: ...

    with pytest.raises(l0.ConfigError) as raised:
        import asyncio

        asyncio.run(structured(schema=NotASchema, stream=scripted_factory(["{}"])))
    assert raised.value.field == "schema"


async def test_structured_stream_yields_partials_then_the_validated_object() -> None:
    clock = FakeClock()
    chunks = ['{"name": "Ad', 'a", "age"', ": 36, ", '"email": "a@b.c"', "}"]
    snapshots: list[Partial[Any]] = []
    async for partial in structured_stream(
        schema=User, stream=scripted_factory(chunks), clock=clock
    ):
        snapshots.append(partial)
    assert snapshots[-1].done
    assert snapshots[-1].value == User(name="Ada", age=36, email="a@b.c")
    partials = [s for s in snapshots if not s.done]
    assert partials, "at least one partial snapshot before the end"
    assert all(not s.done for s in partials)
    # A string streams in as it grows: "Ad", then "Ada".
    assert partials[0].value.name == "Ad"
    assert partials[-1].value.name == "Ada"
    # Snapshots only grow: each data dict is a superset of the previous one's keys.
    keys = [set(s.data) for s in partials]
    assert all(a <= b for a, b in itertools.pairwise(keys))


async def test_structured_stream_starts_over_after_a_retry() -> None:
    clock = FakeClock()
    factory = scripted_factory(
        ['{"name": "Bad", ', '"age": "x", "email": "e"}'],
        ['{"name": "Good", ', '"age": 2, "email": "e"}'],
        clock=clock,
    )
    snapshots = [
        p
        async for p in structured_stream(
            schema=User, stream=factory, retry=fast_retry(), clock=clock
        )
    ]
    assert snapshots[-1].value.name == "Good"
    assert factory.calls == 2
