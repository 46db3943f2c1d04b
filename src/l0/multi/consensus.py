"""``l0.consensus``: run several generations and keep what they agree on.

Outputs are compared, never their string representations:

- **text** is normalized (Unicode NFKC, case-folded, whitespace collapsed) and two texts agree
  when the normalized forms are equal — or, with ``threshold < 1``, similar at least that much
  (``difflib`` ratio) *and* mentioning the same numbers, so "42" and "43" never agree;
- **structured** outputs (dicts, pydantic models, or text parsed with ``schema``) are voted
  **field by field**: each top-level field's value is decided by its own vote, values are
  compared by type and equality (strings as text above, ``True`` is not ``1``, ``{"b": 2}`` and
  ``{"b": 3}`` disagree), and a field one output lacks is a vote for leaving it out.

Votes are weighted (``weights``, default 1 each); only successful outputs vote. Similar
values are grouped in input order, each compared with the first value of a group.

``confidence`` is the rule of succession over the weighted votes for the result,
``(agreeing + u) / (total + 2u)`` with ``u`` the mean weight: the chance a further output would
agree. It is never 1: one surviving output gives 2/3, three agreeing 0.8, nine agreeing 0.91.
For structured outputs ``agreement`` and ``confidence`` are those of the least agreed field.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from l0.config import ConfigError, Retry, Timeout
from l0.errors import L0Error, classify_error
from l0.guardrails.base import GuardrailRule
from l0.multi._operation import Operation
from l0.multi._tasks import Job, Task, TaskOutcome, check_keys, check_limit, check_tasks
from l0.multi.parallel import make_options, run_operation
from l0.observability.bus import Sink
from l0.observability.events import ObservabilityEventType as T
from l0.observability.phase import Outcome, PhaseKind
from l0.runtime.clock import Clock
from l0.structured.repair import JSONRepairError, repair_json
from l0.types import ErrorCategory, ErrorCode, State

__all__ = [
    "MISSING",
    "ConsensusError",
    "ConsensusOutput",
    "ConsensusResult",
    "Disagreement",
    "FieldConsensus",
    "Strategy",
    "Vote",
    "consensus",
]

Strategy = Literal["majority", "unanimous", "best"]
_STRATEGIES = ("majority", "unanimous", "best")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


class _Missing:
    """The vote of an output that lacks a field."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""A :class:`Vote` value meaning "the output has no such field"."""


@dataclass(frozen=True, slots=True)
class Vote:
    """One distinct value and the outputs that voted for it.

    Attributes:
        value: the value (the heaviest voter's own, first on ties); :data:`MISSING` for
            outputs without the field.
        weight: the summed weight of its voters.
        share: ``weight`` over the weight of every successful output (0..1).
        indices: the task indices of its voters, ascending.
    """

    value: Any
    weight: float
    share: float
    indices: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Disagreement:
    """Outputs that did not agree.

    Attributes:
        field: the field they disagree on; ``None`` for whole (text) outputs.
        votes: every distinct value, heaviest first (first seen on ties).
    """

    field: str | None
    votes: tuple[Vote, ...]


@dataclass(frozen=True, slots=True)
class FieldConsensus:
    """The vote on one field of structured outputs.

    Attributes:
        value: the field's value in the result (:data:`MISSING`: left out).
        agreement: the share of weight behind that value.
        confidence: the rule-of-succession confidence in it (see the module docstring).
        votes: every distinct value, heaviest first.
    """

    value: Any
    agreement: float
    confidence: float
    votes: tuple[Vote, ...]


@dataclass(frozen=True, slots=True)
class ConsensusOutput:
    """One task's output as it entered the vote.

    Attributes:
        index: the task's index.
        value: its output (text, a dict, or a ``schema`` instance); ``None`` if it failed.
        weight: its vote's weight.
        error: why it has no vote (the task failed, or its output did not fit ``schema``).
        state: the l0 session's state, when the task ran one.
    """

    index: int
    value: Any
    weight: float
    error: BaseException | None = None
    state: State | None = None

    @property
    def ok(self) -> bool:
        """The output took part in the vote."""
        return self.error is None


@dataclass(frozen=True, slots=True)
class ConsensusResult:
    """What the outputs agreed on.

    Attributes:
        value: the consensus output: text, a dict, or a ``schema`` instance.
        confidence: 0..1, never 1 (see the module docstring); lower for fewer outputs.
        strategy: the strategy used.
        agreement: the share of (weighted) successful outputs that agree with ``value``; for
            structured outputs, that of the least agreed field.
        outputs: every task's output, in task order.
        disagreements: where outputs disagreed (one entry for text, one per field otherwise).
        fields: the vote on each field (structured outputs only).
    """

    value: Any
    confidence: float
    strategy: Strategy
    agreement: float
    outputs: tuple[ConsensusOutput, ...]
    disagreements: tuple[Disagreement, ...] = ()
    fields: Mapping[str, FieldConsensus] = field(default_factory=lambda: MappingProxyType({}))


class ConsensusError(L0Error):
    """No consensus: the outputs disagree (``unanimous``), no value has more than half the
    weight (``majority``), or no output survived.

    Attributes:
        reason: ``"disagreement"``, ``"no_majority"``, ``"no_outputs"`` or ``"invalid"``
            (the voted fields do not make a valid ``schema`` instance).
        strategy: the strategy that failed.
        disagreements: what the outputs disagreed on (for ``majority``: only the fields
            that lack a majority).
        outputs: every task's output.
    """

    def __init__(
        self,
        message: str,
        *,
        reason: Literal["disagreement", "no_majority", "no_outputs", "invalid"],
        strategy: Strategy,
        outputs: Sequence[ConsensusOutput],
        disagreements: Sequence[Disagreement] = (),
        code: ErrorCode = ErrorCode.CONSENSUS_FAILED,
        category: ErrorCategory = ErrorCategory.MODEL,
    ) -> None:
        super().__init__(message, code=code, category=category)
        self.reason = reason
        self.strategy = strategy
        self.outputs = tuple(outputs)
        self.disagreements = tuple(disagreements)


# --- comparing ----------------------------------------------------------------------------


def _normalize(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _texts_agree(a: str, b: str, threshold: float) -> bool:
    """``a`` and ``b`` are already normalized."""
    if a == b:
        return True
    if threshold >= 1.0 or _NUMBER.findall(a) != _NUMBER.findall(b):
        return False
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    return (
        matcher.real_quick_ratio() >= threshold
        and matcher.quick_ratio() >= threshold
        and matcher.ratio() >= threshold
    )


def _values_agree(a: Any, b: Any, threshold: float) -> bool:
    if a is MISSING or b is MISSING:
        return a is b
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, str) and isinstance(b, str):
        return _texts_agree(_normalize(a), _normalize(b), threshold)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_values_agree(a[k], b[k], threshold) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(
            _values_agree(x, y, threshold) for x, y in zip(a, b, strict=True)
        )
    if type(a) is not type(b):
        return False
    try:
        return bool(a == b)
    except Exception:
        return False


class _Group:
    """Outputs whose values agree with the group's first value."""

    __slots__ = ("key", "members", "weight")

    def __init__(self, key: Any, index: int, value: Any, weight: float) -> None:
        self.key = key
        self.members: list[tuple[int, Any, float]] = [(index, value, weight)]
        self.weight = weight

    def value(self) -> Any:
        # The heaviest member's own value (the first on ties): max keeps the first maximum.
        return max(self.members, key=lambda m: m[2])[1]

    def vote(self, total: float) -> Vote:
        share = self.weight / total if total else 0.0
        return Vote(self.value(), self.weight, share, tuple(m[0] for m in self.members))


def _tally(
    ballots: Sequence[tuple[int, Any, float]],
    key: Callable[[Any], Any],
    agree: Callable[[Any, Any], bool],
) -> list[_Group]:
    groups: list[_Group] = []
    for index, value, weight in ballots:
        k = key(value)
        for group in groups:
            if agree(group.key, k):
                group.members.append((index, value, weight))
                group.weight += weight
                break
        else:
            groups.append(_Group(k, index, value, weight))
    return groups


def _votes(groups: Sequence[_Group], total: float) -> tuple[Vote, ...]:
    return tuple(sorted((g.vote(total) for g in groups), key=lambda v: -v.weight))


def _group_of(groups: Sequence[_Group], index: int) -> _Group:
    return next(g for g in groups if any(m[0] == index for m in g.members))


def _confidence(agreeing: float, total: float, count: int) -> float:
    unit = total / count
    return (agreeing + unit) / (total + 2 * unit)


# --- preparing outputs --------------------------------------------------------------------


def _check_schema(schema: Any) -> type[BaseModel] | None:
    if schema is None:
        return None
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return schema
    raise ConfigError("consensus", "schema", "must be a pydantic model class", schema)


def _check_weights(weights: Any, count: int) -> list[float]:
    if weights is None:
        return [1.0] * count
    if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence):
        raise ConfigError("consensus", "weights", "must be a list of numbers", weights)
    if len(weights) != count:
        raise ConfigError("consensus", "weights", f"needs one weight per task ({count})", weights)
    out: list[float] = []
    for w in weights:
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise ConfigError("consensus", "weights", "each weight must be a finite number >= 0", w)
        out.append(float(w))
    if count and not any(out):
        raise ConfigError("consensus", "weights", "at least one weight must be > 0", weights)
    return out


def _parse(value: Any, schema: type[BaseModel] | None) -> Any:
    """A task's value as it enters the vote (raises when it does not fit ``schema``)."""
    if schema is None:
        return value
    if isinstance(value, schema):
        return value
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        value = repair_json(value).value
    return schema.model_validate(value)


def _document(value: Any) -> Mapping[str, Any] | None:
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, Mapping):
        return value
    return None


def _outputs(
    outcomes: Sequence[TaskOutcome], weights: Sequence[float], schema: type[BaseModel] | None
) -> list[ConsensusOutput]:
    out: list[ConsensusOutput] = []
    for outcome, weight in zip(outcomes, weights, strict=True):
        if not outcome.ok:
            error = outcome.error or RuntimeError("task did not run")
            out.append(ConsensusOutput(outcome.index, None, weight, error, outcome.state))
            continue
        try:
            value = _parse(outcome.value, schema)
        except (ValidationError, JSONRepairError, ValueError, TypeError) as error:
            out.append(ConsensusOutput(outcome.index, None, weight, error, outcome.state))
            continue
        out.append(ConsensusOutput(outcome.index, value, weight, None, outcome.state))
    return out


# --- voting -------------------------------------------------------------------------------


def _no_outputs(strategy: Strategy, outputs: Sequence[ConsensusOutput]) -> ConsensusError:
    failed = [o.error for o in outputs if o.error is not None]
    categories = Counter(
        e.category if isinstance(e, L0Error) else classify_error(e).category for e in failed
    )
    category = categories.most_common(1)[0][0] if categories else ErrorCategory.INTERNAL
    details = "; ".join(f"[{o.index}] {type(o.error).__name__}: {o.error}" for o in outputs)
    return ConsensusError(
        f"no output to vote on ({len(failed)} of {len(outputs)} failed): {details}"[:2000],
        reason="no_outputs",
        strategy=strategy,
        outputs=outputs,
        code=ErrorCode.ALL_ATTEMPTS_EXHAUSTED,
        category=category,
    )


def _vote_text(
    strategy: Strategy, outputs: Sequence[ConsensusOutput], threshold: float
) -> ConsensusResult:
    voters = [o for o in outputs if o.ok]
    total = sum(o.weight for o in voters)
    ballots = [(o.index, o.value, o.weight) for o in voters]
    groups = _tally(
        ballots,
        key=lambda v: _normalize(v) if isinstance(v, str) else v,
        agree=lambda a, b: (
            _texts_agree(a, b, threshold)
            if isinstance(a, str) and isinstance(b, str)
            else _values_agree(a, b, threshold)
        ),
    )
    votes = _votes(groups, total)
    disagreements = (Disagreement(None, votes),) if len(groups) > 1 else ()
    top = max(groups, key=lambda g: g.weight)
    if strategy == "unanimous" and len(groups) > 1:
        raise ConsensusError(
            f"outputs disagree: {len(groups)} different answers",
            reason="disagreement",
            strategy=strategy,
            outputs=outputs,
            disagreements=disagreements,
        )
    if strategy == "majority" and top.weight * 2 <= total:
        raise ConsensusError(
            f"no answer has more than half the weight (best: {top.weight / total:.0%})",
            reason="no_majority",
            strategy=strategy,
            outputs=outputs,
            disagreements=disagreements,
        )
    if strategy == "best":
        best = max(voters, key=lambda o: o.weight)
        group, value = _group_of(groups, best.index), best.value
    else:
        group, value = top, top.value()
    return ConsensusResult(
        value=value,
        confidence=_confidence(group.weight, total, len(voters)),
        strategy=strategy,
        agreement=group.weight / total,
        outputs=tuple(outputs),
        disagreements=disagreements,
    )


def _vote_fields(
    strategy: Strategy,
    outputs: Sequence[ConsensusOutput],
    documents: Sequence[tuple[ConsensusOutput, Mapping[str, Any]]],
    threshold: float,
    schema: type[BaseModel] | None,
) -> ConsensusResult:
    total = sum(o.weight for o, _ in documents)
    count = len(documents)
    names: dict[str, None] = {}
    for _, doc in documents:
        names.update(dict.fromkeys(doc))
    best = max(documents, key=lambda d: d[0].weight)
    tallies: dict[str, list[_Group]] = {}
    for name in names:
        ballots = [(o.index, doc.get(name, MISSING), o.weight) for o, doc in documents]
        tallies[name] = _tally(
            ballots, key=lambda v: v, agree=lambda a, b: _values_agree(a, b, threshold)
        )
    disagreements = tuple(
        Disagreement(name, _votes(groups, total))
        for name, groups in tallies.items()
        if len(groups) > 1
    )
    if strategy == "unanimous" and disagreements:
        listed = ", ".join(str(d.field) for d in disagreements)
        raise ConsensusError(
            f"outputs disagree on {len(disagreements)} field(s): {listed}",
            reason="disagreement",
            strategy=strategy,
            outputs=outputs,
            disagreements=disagreements,
        )
    if strategy == "majority":
        lacking = [
            name for name, groups in tallies.items() if max(g.weight for g in groups) * 2 <= total
        ]
        if lacking:
            raise ConsensusError(
                f"no majority on field(s): {', '.join(lacking)}",
                reason="no_majority",
                strategy=strategy,
                outputs=outputs,
                disagreements=tuple(d for d in disagreements if d.field in lacking),
            )
    fields: dict[str, FieldConsensus] = {}
    voted: dict[str, Any] = {}
    for name, groups in tallies.items():
        if strategy == "best":
            group = _group_of(groups, best[0].index)
            value = best[1].get(name, MISSING)
        else:
            group = max(groups, key=lambda g: g.weight)
            value = group.value()
        fields[name] = FieldConsensus(
            value=value,
            agreement=group.weight / total,
            confidence=_confidence(group.weight, total, count),
            votes=_votes(groups, total),
        )
        if value is not MISSING:
            voted[name] = value
    result_value: Any
    if strategy == "best":
        result_value = best[0].value
    elif schema is not None:
        try:
            result_value = schema.model_validate(voted)
        except ValidationError as error:
            raise ConsensusError(
                f"the voted fields do not make a valid {schema.__name__}: {error}",
                reason="invalid",
                strategy=strategy,
                outputs=outputs,
                disagreements=disagreements,
                code=ErrorCode.SCHEMA_VALIDATION_FAILED,
            ) from error
    else:
        result_value = voted
    return ConsensusResult(
        value=result_value,
        confidence=min((f.confidence for f in fields.values()), default=_confidence(1, 1, 1)),
        strategy=strategy,
        agreement=min((f.agreement for f in fields.values()), default=1.0),
        outputs=tuple(outputs),
        disagreements=disagreements,
        fields=MappingProxyType(fields),
    )


def vote(
    outputs: Sequence[ConsensusOutput],
    *,
    strategy: Strategy,
    threshold: float,
    schema: type[BaseModel] | None,
) -> ConsensusResult:
    """Decide the consensus of ``outputs`` (raises :class:`ConsensusError`)."""
    voters = [o for o in outputs if o.ok]
    if not voters or not any(o.weight > 0 for o in voters):
        raise _no_outputs(strategy, outputs)
    documents = [(o, _document(o.value)) for o in voters]
    if schema is not None or all(doc is not None for _, doc in documents):
        return _vote_fields(
            strategy,
            outputs,
            [(o, doc) for o, doc in documents if doc is not None],
            threshold,
            schema,
        )
    return _vote_text(strategy, outputs, threshold)


# --- the public call ----------------------------------------------------------------------


async def consensus(
    tasks: Iterable[Task],
    *,
    strategy: Strategy = "majority",
    threshold: float = 1.0,
    schema: type[BaseModel] | None = None,
    weights: Sequence[float] | None = None,
    concurrency: int | None = None,
    rate_limit_key: str | Sequence[str | None] | None = None,
    retry: Retry | None = None,
    guardrails: Sequence[GuardrailRule] | None = None,
    timeout: Timeout | None = None,
    on_event: Sink | None = None,
    meta: dict[str, Any] | None = None,
    clock: Clock | None = None,
) -> ConsensusResult:
    """Run every task (as :func:`l0.parallel` does) and vote on their outputs.

    Args:
        tasks: zero-argument callables; each returns an :class:`l0.Result`, a stream, text,
            a dict or a pydantic model (see :func:`l0.parallel`).
        strategy: ``"majority"``: the value with more than half the weight wins (each
            field separately for structured outputs); ``"unanimous"``: every successful
            output must agree; ``"best"``: the highest-weighted successful output (the first
            on ties), with agreement measured against it.
        threshold: how similar two texts must be to agree, 0..1 (``difflib`` ratio of the
            normalized texts); ``1.0`` (the default) means equal once normalized.
        schema: a pydantic model: text outputs are parsed as JSON (repaired) and validated;
            outputs that do not fit lose their vote; fields are voted one by one.
        weights: one weight (>= 0) per task.
        concurrency, rate_limit_key, retry, guardrails, timeout: as for :func:`l0.parallel`.
        on_event: receives ``CONSENSUS_START``/``CONSENSUS_END`` (and the events of sessions
            built here).
        meta: attached to the span and events.
        clock: the time source.

    Returns:
        a :class:`ConsensusResult`.

    Raises:
        ConsensusError: no consensus (``reason`` says why; ``disagreements`` lists them).
        l0.ConfigError: an option is invalid.

    Example::

        result = await l0.consensus(
            tasks=[lambda: l0.run(stream=lambda: ask(model)) for model in models],
            strategy="majority",
        )
        print(result.value, result.confidence)
    """
    task_list = check_tasks("consensus", "tasks", tasks)
    if not task_list:
        raise ConfigError("consensus", "tasks", "needs at least one task", tasks)
    if strategy not in _STRATEGIES:
        raise ConfigError("consensus", "strategy", f"must be one of {_STRATEGIES}", strategy)
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, (int, float))
        or not 0 < threshold <= 1
    ):
        raise ConfigError("consensus", "threshold", "must be a number in (0, 1]", threshold)
    model = _check_schema(schema)
    weight_list = _check_weights(weights, len(task_list))
    limit = check_limit("consensus", "concurrency", concurrency, optional=True)
    keys = check_keys("consensus", rate_limit_key, len(task_list))
    options = make_options("consensus", retry, guardrails, timeout, on_event, meta, clock)
    op = Operation(
        PhaseKind.CONSENSUS,
        start_type=T.CONSENSUS_START,
        end_type=T.CONSENSUS_END,
        on_event=on_event,
        meta=options.meta,
        clock=options.clock,
        attributes={
            "l0.consensus.strategy": strategy,
            "l0.consensus.tasks": len(task_list),
            "l0.consensus.schema": model.__name__ if model else None,
        },
        start_data={"tasks": len(task_list), "strategy": strategy, "threshold": threshold},
    )
    jobs = [Job(i, task, keys[i]) for i, task in enumerate(task_list)]
    parallel_result, _ = await run_operation(
        op, options, jobs, limit=limit, batched=False, fail_fast=False, on_progress=None
    )
    outputs = _outputs(parallel_result.outcomes, weight_list, model)
    voters = sum(1 for o in outputs if o.ok)
    try:
        result = vote(outputs, strategy=strategy, threshold=float(threshold), schema=model)
    except ConsensusError as error:
        op.end(
            Outcome.ERROR,
            error_type=error.code.value,
            description=error.message[:200],
            attributes={
                "l0.consensus.outputs": voters,
                "l0.consensus.disagreements": len(error.disagreements),
            },
            data={
                "reason": error.reason,
                "outputs": voters,
                "disagreements": len(error.disagreements),
            },
        )
        raise
    summary = {
        "outputs": voters,
        "confidence": result.confidence,
        "agreement": result.agreement,
        "disagreements": len(result.disagreements),
    }
    op.end(
        Outcome.COMPLETED,
        attributes={f"l0.consensus.{k}": v for k, v in summary.items()},
        data=summary,
    )
    return result
