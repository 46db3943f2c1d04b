"""Guaranteed-valid structured output: ``l0.structured`` and ``l0.structured_stream``.

Validation is a completion-time guardrail rule named ``"schema"``: an attempt whose output does
not parse (after auto-correction) or does not validate fails as CONTENT, so it is retried
(counting toward ``Retry.attempts``) and then falls back — the same engine as every other
failure, with the same spans and events.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar, overload

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError
from uuid6 import uuid7

from l0.adapters.base import Adapter
from l0.config import Retry, Timeout
from l0.errors import L0Error
from l0.guardrails.base import GuardrailRule, GuardrailViolation
from l0.observability.bus import Bus, Sink
from l0.observability.events import ObservabilityEventType as T
from l0.observability.phase import Outcome, Phase, PhaseKind
from l0.runtime.api import run
from l0.runtime.clock import SYSTEM_CLOCK, Clock
from l0.runtime.fallback import StreamFactory
from l0.runtime.session import Result
from l0.structured.repair import (
    JSONRepairError,
    extract_json_from_markdown,
    parse_partial_json,
    repair_json,
)
from l0.types import State

__all__ = ["Partial", "StructuredResult", "structured", "structured_stream"]

ModelT = TypeVar("ModelT")
SCHEMA_RULE = "schema"


@dataclass(frozen=True, slots=True)
class StructuredResult(Generic[ModelT]):
    """The validated value with the run's details (``l0.structured(..., return_result=True)``).

    Attributes:
        value: the validated instance.
        raw: the text the model produced (the winning attempt).
        json_text: the JSON text that was validated (after extraction and repair).
        corrections: what auto-correction fixed (e.g. ``("trailing_comma",)``); empty if none.
        state: the session's :class:`l0.State` (attempts, errors, usage, ...).
    """

    value: ModelT
    raw: str
    json_text: str
    corrections: tuple[str, ...]
    state: State


@dataclass(frozen=True, slots=True)
class Partial(Generic[ModelT]):
    """One snapshot from :func:`structured_stream`.

    Attributes:
        value: while streaming, a partial object (a pydantic model built without validation
            from the fields seen so far, or the raw dict/list for other schemas); when ``done``,
            the validated instance.
        data: the parsed JSON prefix the snapshot was built from.
        done: ``True`` for the final, validated snapshot.
    """

    value: Any
    data: Any
    done: bool = False


class _Outcome:
    """Shared between the schema rule's per-attempt checkers and the caller: the last attempt
    that validated wins (attempts run one after another)."""

    __slots__ = ("bus", "corrections", "json_text", "value")

    def __init__(self) -> None:
        self.bus: Bus | None = None
        self.value: Any = None
        self.json_text = ""
        self.corrections: tuple[str, ...] = ()


class _SchemaChecker:
    __slots__ = ("_adapter", "_auto_correct", "_outcome", "max_gap")

    def __init__(self, adapter: TypeAdapter[Any], auto_correct: bool, outcome: _Outcome) -> None:
        self._adapter = adapter
        self._auto_correct = auto_correct
        self._outcome = outcome
        self.max_gap: float | None = None

    def check_delta(self, state: State, delta: str) -> Sequence[GuardrailViolation]:
        return ()

    def check_idle(self, state: State, gap: float) -> Sequence[GuardrailViolation]:
        return ()

    def check_final(self, state: State) -> Sequence[GuardrailViolation]:
        outcome = self._outcome
        bus = outcome.bus
        text = state.content
        if bus is not None:
            bus.emit(T.STRUCTURED_PARSE_START, {"length": len(text)})
        try:
            value, json_text, corrections = self._parse(text)
        except (JSONRepairError, orjson.JSONDecodeError) as error:
            if bus is not None:
                bus.emit(T.STRUCTURED_PARSE_END, {"ok": False, "reason": str(error)[:200]})
            return [_violation(f"output is not valid JSON: {error}")]
        if bus is not None:
            bus.emit(T.STRUCTURED_PARSE_END, {"ok": True, "corrections": list(corrections)})
            if corrections:
                bus.emit(T.STRUCTURED_AUTO_CORRECT, {"corrections": list(corrections)})
            bus.emit(T.STRUCTURED_VALIDATION_START, {})
        try:
            validated = self._adapter.validate_python(value)
        except ValidationError as error:
            summary = _summarize(error)
            if bus is not None:
                bus.emit(
                    T.STRUCTURED_VALIDATION_END,
                    {"ok": False, "error_count": error.error_count(), "errors": summary},
                )
            return [_violation(f"schema validation failed: {summary}")]
        if bus is not None:
            bus.emit(T.STRUCTURED_VALIDATION_END, {"ok": True, "error_count": 0})
        outcome.value = validated
        outcome.json_text = json_text
        outcome.corrections = corrections
        return ()

    def _parse(self, text: str) -> tuple[Any, str, tuple[str, ...]]:
        if self._auto_correct:
            repaired = repair_json(text)
            return repaired.value, repaired.text, tuple(repaired.corrections)
        json_text = extract_json_from_markdown(text)
        return orjson.loads(json_text), json_text, ()


class _SchemaRule(GuardrailRule):
    def __init__(self, adapter: TypeAdapter[Any], auto_correct: bool, outcome: _Outcome) -> None:
        super().__init__(SCHEMA_RULE, streaming=False, description="output matches the schema")
        self._adapter = adapter
        self._auto_correct = auto_correct
        self._outcome = outcome

    def new_checker(self) -> _SchemaChecker:
        return _SchemaChecker(self._adapter, self._auto_correct, self._outcome)


def _violation(message: str) -> GuardrailViolation:
    return GuardrailViolation(rule=SCHEMA_RULE, message=message, severity="error")


def _summarize(error: ValidationError, limit: int = 5) -> str:
    parts = []
    for item in error.errors()[:limit]:
        location = ".".join(str(p) for p in item.get("loc", ())) or "(root)"
        parts.append(f"{location}: {item.get('msg', 'invalid')}")
    more = error.error_count() - limit
    if more > 0:
        parts.append(f"... and {more} more")
    return "; ".join(parts)


def _type_adapter(schema: Any) -> TypeAdapter[Any]:
    try:
        return TypeAdapter(schema)
    except Exception as error:  # pydantic raises several types for unusable schemas
        from l0.config import ConfigError

        raise ConfigError(
            "structured", "schema", f"cannot validate against it ({error})", schema
        ) from error


def _partial(schema: Any, data: Any) -> Any:
    """A best-effort object from a JSON prefix, never raising."""
    if isinstance(data, dict) and isinstance(schema, type):
        if issubclass(schema, BaseModel):
            known = {k: v for k, v in data.items() if k in schema.model_fields}
            return schema.model_construct(**known)
        if dataclasses.is_dataclass(schema):
            return data
    return data


async def _start(
    schema: Any,
    stream: StreamFactory,
    *,
    fallbacks: Sequence[StreamFactory] | None,
    auto_correct: bool,
    guardrails: Sequence[GuardrailRule] | None,
    retry: Retry | None,
    timeout: Timeout | None,
    on_event: Sink | None,
    meta: dict[str, Any] | None,
    adapter: Adapter | str | None,
    clock: Clock | None,
) -> tuple[Phase, Result, _Outcome]:
    type_adapter = _type_adapter(schema)
    outcome = _Outcome()
    rules = [*(guardrails or ()), _SchemaRule(type_adapter, auto_correct, outcome)]
    # The l0.structured span is the parent of the session it starts.
    phase = Phase(
        PhaseKind.STRUCTURED,
        Bus(str(uuid7()), meta or {}, clock or SYSTEM_CLOCK),
        parent_context=None,
        attributes={"l0.structured.schema": getattr(schema, "__name__", str(schema))},
    )
    try:
        with phase.activate():
            result = await run(
                stream,
                fallbacks=fallbacks,
                guardrails=rules,
                retry=retry,
                timeout=timeout,
                on_event=on_event,
                meta=meta,
                adapter=adapter,
                clock=clock,
            )
    except BaseException:
        phase.end(Outcome.ERROR, error_type="ConfigError")
        raise
    outcome.bus = result._session.bus
    phase.set("l0.stream.id", result.stream_id)
    return phase, result, outcome


@overload
async def structured(
    schema: type[ModelT],
    stream: StreamFactory,
    *,
    fallbacks: Sequence[StreamFactory] | None = ...,
    auto_correct: bool = ...,
    guardrails: Sequence[GuardrailRule] | None = ...,
    retry: Retry | None = ...,
    timeout: Timeout | None = ...,
    on_event: Sink | None = ...,
    meta: dict[str, Any] | None = ...,
    adapter: Adapter | str | None = ...,
    clock: Clock | None = ...,
    return_result: Literal[False] = ...,
) -> ModelT: ...


@overload
async def structured(
    schema: type[ModelT],
    stream: StreamFactory,
    *,
    fallbacks: Sequence[StreamFactory] | None = ...,
    auto_correct: bool = ...,
    guardrails: Sequence[GuardrailRule] | None = ...,
    retry: Retry | None = ...,
    timeout: Timeout | None = ...,
    on_event: Sink | None = ...,
    meta: dict[str, Any] | None = ...,
    adapter: Adapter | str | None = ...,
    clock: Clock | None = ...,
    return_result: Literal[True],
) -> StructuredResult[ModelT]: ...


async def structured(
    schema: Any,
    stream: StreamFactory,
    *,
    fallbacks: Sequence[StreamFactory] | None = None,
    auto_correct: bool = True,
    guardrails: Sequence[GuardrailRule] | None = None,
    retry: Retry | None = None,
    timeout: Timeout | None = None,
    on_event: Sink | None = None,
    meta: dict[str, Any] | None = None,
    adapter: Adapter | str | None = None,
    clock: Clock | None = None,
    return_result: bool = False,
) -> Any:
    """Run a stream and return its output validated against ``schema``.

    ``schema`` is a pydantic model, a dataclass, or any type pydantic's ``TypeAdapter``
    accepts (``list[Model]``, ``dict[str, int]``, a ``TypedDict``...). The output is taken out
    of markdown fences and prose and, with ``auto_correct`` (the default), repaired (trailing
    commas, unclosed brackets, comments, Python literals...) before validation. An attempt whose
    output does not validate is retried (counting toward ``Retry.attempts``), then falls back;
    the final :class:`l0.L0Error` lists each attempt's validation errors.

    Returns the validated instance, or a :class:`StructuredResult` with
    ``return_result=True``.

    Example::

        class User(BaseModel):
            name: str
            age: int

        user = await l0.structured(schema=User, stream=lambda: client.chat.completions.create(...))
        print(user.name)
    """
    phase, result, outcome = await _start(
        schema,
        stream,
        fallbacks=fallbacks,
        auto_correct=auto_correct,
        guardrails=guardrails,
        retry=retry,
        timeout=timeout,
        on_event=on_event,
        meta=meta,
        adapter=adapter,
        clock=clock,
    )
    try:
        raw = await result.read()
    except L0Error as error:
        phase.end(Outcome.ERROR, error_type=error.code.value, description=error.message[:200])
        raise
    except BaseException:
        phase.end(Outcome.CANCELLED)
        raise
    phase.end(
        Outcome.COMPLETED,
        attributes={"l0.structured.corrections": ",".join(outcome.corrections) or None},
    )
    if return_result:
        return StructuredResult(
            value=outcome.value,
            raw=raw,
            json_text=outcome.json_text,
            corrections=outcome.corrections,
            state=result.state,
        )
    return outcome.value


async def structured_stream(
    schema: Any,
    stream: StreamFactory,
    *,
    fallbacks: Sequence[StreamFactory] | None = None,
    auto_correct: bool = True,
    guardrails: Sequence[GuardrailRule] | None = None,
    retry: Retry | None = None,
    timeout: Timeout | None = None,
    on_event: Sink | None = None,
    meta: dict[str, Any] | None = None,
    adapter: Adapter | str | None = None,
    clock: Clock | None = None,
) -> AsyncIterator[Partial[Any]]:
    """Like :func:`structured`, but yields :class:`Partial` snapshots as the JSON streams in,
    then one final snapshot (``done=True``) holding the validated instance.

    A snapshot is produced when a chunk completes a value (it contains ``,``, ``}``, ``]`` or a
    closing quote) and the parsed prefix changed. After a retry the snapshots start over.

    Example::

        async for partial in l0.structured_stream(schema=User, stream=factory):
            render(partial.value)          # fields fill in as they arrive
        user = partial.value               # the last one is validated
    """
    phase, result, outcome = await _start(
        schema,
        stream,
        fallbacks=fallbacks,
        auto_correct=auto_correct,
        guardrails=guardrails,
        retry=retry,
        timeout=timeout,
        on_event=on_event,
        meta=meta,
        adapter=adapter,
        clock=clock,
    )
    last: Any = None
    ended = False
    try:
        async for event in result:
            if event.is_reset:
                last = None
                continue
            if not event.is_token or not event.text:
                continue
            text = event.text
            if not any(c in text for c in ',}]"'):
                continue
            data = parse_partial_json(result.state.content)
            if data is None or data == last:
                continue
            last = data
            yield Partial(value=_partial(schema, data), data=data)
        phase.end(Outcome.COMPLETED)
        ended = True
        yield Partial(value=outcome.value, data=orjson.loads(outcome.json_text), done=True)
    except L0Error as error:
        phase.end(Outcome.ERROR, error_type=error.code.value, description=error.message[:200])
        raise
    finally:
        if not ended:
            phase.end(Outcome.CANCELLED)
            await result.aclose()
