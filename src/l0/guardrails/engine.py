"""Runs a set of guardrail rules over one attempt's output.

The runtime calls :meth:`GuardrailRun.check` (or :meth:`GuardrailRun.check_delta`) for every
content delta (sync fast path when no rule is async) and :meth:`GuardrailRun.check_final` once
at completion.

Cost: most built-in rules only buffer a delta until a batch of characters is pending, then
scan the batch (see :mod:`l0.guardrails.rules`). For those the run does the buffering itself —
an append and an addition per delta — and hands a rule the concatenated deltas on the delta
where its own buffer would have reached its batch. The rule's findings depend on the text only,
never on how it was split, so they are the same, reported on the same delta; only the calls
that could not find anything are saved (~100 bytecodes per delta for ``recommended()``).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence

from l0.config import ConfigError
from l0.guardrails.base import CheckResult, GuardrailRule, GuardrailViolation, RuleChecker
from l0.guardrails.rules import _BatchedChecker
from l0.types import State

__all__ = ["GuardrailEngine", "GuardrailRun"]


class GuardrailEngine:
    """A validated, ordered set of rules. Immutable; safe to share across sessions."""

    __slots__ = ("rules",)

    def __init__(self, rules: Iterable[GuardrailRule] | None) -> None:
        checked: list[GuardrailRule] = []
        for index, rule in enumerate(rules or ()):
            if not isinstance(rule, GuardrailRule):
                raise ConfigError(
                    "run",
                    f"guardrails[{index}]",
                    "must be a GuardrailRule (e.g. l0.json_rule())",
                    rule,
                )
            checked.append(rule)
        self.rules: tuple[GuardrailRule, ...] = tuple(checked)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def start(self) -> GuardrailRun:
        """Fresh per-attempt state for every rule."""
        return GuardrailRun(self.rules)


def _batch_size(checker: RuleChecker) -> int | None:
    """The batch of a checker whose ``check_delta`` only buffers below it (None: any other)."""
    if isinstance(checker, _BatchedChecker) and (
        type(checker).check_delta is _BatchedChecker.check_delta
    ):
        return checker._batch
    return None


class GuardrailRun:
    """The rules' state for one attempt."""

    __slots__ = (
        "_batched",
        "_buffer",
        "_buffer_start",
        "_delta_checks",
        "_every_delta",
        "_given",
        "_next_release",
        "_received",
        "checkers",
        "max_gap",
        "names",
        "streaming",
    )

    def __init__(self, rules: Sequence[GuardrailRule]) -> None:
        self.checkers: list[RuleChecker] = [rule.new_checker() for rule in rules]
        self.names: list[str] = [rule.name for rule in rules]
        self.streaming = any(rule.streaming for rule in rules)
        # Per delta only the streaming rules run (the others check once, at completion), and
        # their bound methods are looked up once per attempt rather than once per chunk.
        streaming = [c for r, c in zip(rules, self.checkers, strict=True) if r.streaming]
        self._delta_checks: tuple[Callable[[State, str], CheckResult], ...] = tuple(
            c.check_delta for c in streaming
        )
        # (position in _delta_checks, batch) of the rules whose deltas the run buffers.
        self._batched: tuple[tuple[int, int], ...] = tuple(
            (i, size) for i, c in enumerate(streaming) if (size := _batch_size(c)) is not None
        )
        buffered = {i for i, _ in self._batched}
        self._every_delta = tuple(
            check for i, check in enumerate(self._delta_checks) if i not in buffered
        )
        # The buffer: the deltas since the oldest character not yet handed to every buffered
        # rule (``_buffer_start``, in characters of the attempt); ``_given[i]``: how far rule
        # ``i`` has been handed the text; ``_next_release``: the first character count at which
        # some buffered rule's batch is full.
        self._buffer: list[str] = []
        self._buffer_start = 0
        self._received = 0
        self._given = dict.fromkeys(buffered, 0)
        self._next_release = min((size for _, size in self._batched), default=0)
        gaps = [c.max_gap for c in self.checkers if getattr(c, "max_gap", None)]
        self.max_gap: float | None = min(g for g in gaps if g is not None) if gaps else None

    def check_delta(
        self, state: State, delta: str
    ) -> list[GuardrailViolation] | Awaitable[list[GuardrailViolation]]:
        """Violations found in ``delta`` by the streaming rules: a list (the sync fast path),
        or an awaitable of one when some rule's check is async. An empty list means nothing
        was found."""
        found = self.check(state, delta)
        return [] if found is None else found

    def check(
        self, state: State, delta: str
    ) -> list[GuardrailViolation] | Awaitable[list[GuardrailViolation]] | None:
        """:meth:`check_delta` as the runtime calls it for every delta: ``None`` when no rule
        reported anything, so the common case allocates nothing."""
        if self._batched:
            self._buffer.append(delta)
            self._received += len(delta)
            if self._received >= self._next_release:
                return self._run_all(state, delta, self._take_full())
        for check in self._every_delta:
            result = check(state, delta)
            if result:
                return self._run_rest(state, delta, check, result)
        return None

    def _run_all(
        self, state: State, delta: str, texts: dict[int, str]
    ) -> list[GuardrailViolation] | Awaitable[list[GuardrailViolation]] | None:
        # Some buffered rule's batch is full: every streaming rule runs, in rule order — the
        # full ones on their pending text, the unbuffered ones on the delta (a buffered rule
        # with less pending would only have buffered it).
        results: list[CheckResult] = []
        for i, check in enumerate(self._delta_checks):
            if i in self._given:
                text = texts.get(i)
                if text is not None:
                    results.append(check(state, text))
            else:
                results.append(check(state, delta))
        return _combine(results)

    def _run_rest(
        self,
        state: State,
        delta: str,
        first: Callable[[State, str], CheckResult],
        result: CheckResult,
    ) -> list[GuardrailViolation] | Awaitable[list[GuardrailViolation]] | None:
        # An unbuffered rule reported something (no buffered one is due): the unbuffered
        # rules after it run too.
        checks = self._every_delta
        rest = checks[checks.index(first) + 1 :]
        return _combine([result, *(check(state, delta) for check in rest)])

    def _take_full(self, every: bool = False) -> dict[int, str]:
        """The pending text of each buffered rule whose batch is full (``every``: of each one
        with anything pending), marked as handed over."""
        received = self._received
        start = self._buffer_start
        given = self._given
        chosen = {
            i: given[i]
            for i, size in self._batched
            if received - given[i] >= (1 if every else size)
        }
        if not chosen:
            return {}
        joined = "".join(self._buffer)
        texts = {i: joined[offset - start :] for i, offset in chosen.items()}
        for i in chosen:
            given[i] = received
        oldest = min(given.values())
        self._buffer[:] = (joined[oldest - start :],) if oldest < received else ()
        self._buffer_start = oldest
        self._next_release = min(given[i] + size for i, size in self._batched)
        return texts

    def _flush_buffered(self, state: State) -> list[CheckResult]:
        # Before completion checks: hand every buffered rule the rest of its text (below its
        # batch, so it only buffers it).
        if not self._batched:
            return []
        texts = self._take_full(every=True)
        return [self._delta_checks[i](state, text) for i, text in sorted(texts.items())]

    async def check_final(self, state: State) -> list[GuardrailViolation]:
        """Violations found once the stream completed."""
        found: list[GuardrailViolation] = []
        for early in self._flush_buffered(state):
            if early:
                found.extend(await _resolve(early))
        for checker in self.checkers:
            result = checker.check_final(state)
            if result:
                found.extend(await _resolve(result))
        return found

    def check_idle(self, state: State, gap: float) -> list[GuardrailViolation]:
        """Violations of rules that watch for silence (``stall_rule``)."""
        found: list[GuardrailViolation] = []
        for checker in self.checkers:
            limit = getattr(checker, "max_gap", None)
            if limit is not None and gap >= limit:
                found.extend(checker.check_idle(state, gap))
        return found


async def _resolve(result: CheckResult) -> Sequence[GuardrailViolation]:
    if inspect.isawaitable(result):
        return await result
    return result


def _combine(
    results: list[CheckResult],
) -> list[GuardrailViolation] | Awaitable[list[GuardrailViolation]] | None:
    """The violations of several checks, sync ones first, then the awaitables in order."""
    found: list[GuardrailViolation] = []
    pending: list[Awaitable[Sequence[GuardrailViolation]]] = []
    for result in results:
        if result:
            if inspect.isawaitable(result):
                pending.append(result)
            else:
                found.extend(result)
    if pending:
        return _gather(found, pending)
    return found or None


async def _gather(
    found: list[GuardrailViolation], pending: list[Awaitable[Sequence[GuardrailViolation]]]
) -> list[GuardrailViolation]:
    for awaitable in pending:
        found.extend(await awaitable)
    return found
