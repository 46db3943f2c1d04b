"""Runs a set of guardrail rules over one attempt's output.

The runtime appends each content delta to the state, then calls :meth:`GuardrailRun.check`
(or :meth:`GuardrailRun.check_delta`) with it, and calls :meth:`GuardrailRun.check_final` once
at completion.

Cost: most built-in rules only take text in until a batch of characters is pending, then scan
it; they say so with ``batch`` (see :class:`~l0.guardrails.base.RuleChecker`). For those the run
calls nothing per delta: it compares the content length with the next length at which some
rule is due (:attr:`GuardrailRun.next_release`), and on that delta hands each due rule the
content it has not seen yet, sliced from the state's own parts. A rule's findings depend on the
text only, never on how it was split, so they are the same, reported on the same delta; only
the calls that could not find anything are saved. With ``recommended()`` a delta that releases
nothing costs an attribute read and a comparison.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Protocol, cast

from l0.config import ConfigError
from l0.guardrails.base import (
    NO_DELTAS,
    CheckResult,
    GuardrailRule,
    GuardrailViolation,
    RuleChecker,
)
from l0.types import State

__all__ = ["GuardrailEngine", "GuardrailRun"]

_NEVER = sys.maxsize


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


class _Batched(RuleChecker, Protocol):
    """A checker that declares ``batch`` (see :class:`~l0.guardrails.base.RuleChecker`)."""

    @property
    def batch(self) -> int | None: ...


def _content_from(state: State, start: int) -> str:
    """``state.content[start:]``, joined from the state's last parts only: O(the result), not
    O(the content), and the state's parts are left as they are."""
    need = state._length - start
    if need <= 0:
        return ""
    parts = state._parts
    k = len(parts)
    got = 0
    while got < need and k:
        k -= 1
        got += len(parts[k])
    if got < need:  # parts and length disagree (not the runtime's doing): the slow, sure way
        return state.content[start:]
    first = parts[k]
    if got > need:
        first = first[got - need :]
    if k == len(parts) - 1:
        return first
    return "".join([first, *parts[k + 1 :]])


class GuardrailRun:
    """The rules' state for one attempt.

    The caller appends each delta to ``state`` before passing it, and the content only grows by
    those deltas during the attempt (a continuation's checkpoint may come before the first).

    Attributes:
        next_release: while ``state.content_length`` is below it, :meth:`check` would return
            ``None`` without doing anything, so a caller may skip the call; 0 when some rule
            runs on every delta, ``sys.maxsize`` when none runs on deltas. It changes only in
            :meth:`check`, :meth:`check_delta` and :meth:`check_final`.
    """

    __slots__ = (
        "_batched",
        "_checks",
        "_due",
        "_every_delta",
        "_given",
        "_marks",
        "_plan",
        "checkers",
        "max_gap",
        "names",
        "next_release",
        "streaming",
    )

    def __init__(self, rules: Sequence[GuardrailRule]) -> None:
        self.checkers: list[RuleChecker] = [rule.new_checker() for rule in rules]
        self.names: list[str] = [rule.name for rule in rules]
        self.streaming = any(rule.streaming for rule in rules)
        # Per delta only the streaming rules run (the others check once, at completion), minus
        # those that need no deltas; their bound methods are looked up once per attempt.
        streaming = [
            c
            for r, c in zip(rules, self.checkers, strict=True)
            if r.streaming and getattr(c, "batch", None) != NO_DELTAS
        ]
        self._checks: tuple[Callable[[State, str], CheckResult], ...] = tuple(
            c.check_delta for c in streaming
        )
        # The batched checkers, by position in _checks (None: runs on every delta).
        self._batched: tuple[_Batched | None, ...] = tuple(
            cast(_Batched, c) if getattr(c, "batch", None) is not None else None for c in streaming
        )
        self._every_delta = tuple(
            check for check, b in zip(self._checks, self._batched, strict=True) if b is None
        )
        pairs = zip(self._checks, self._batched, strict=True)
        self._plan = tuple((i, check, b) for i, (check, b) in enumerate(pairs))
        # Per position in _checks: how far (in characters of the content) a batched rule has
        # been handed the text, None until the first delta; how many parts the state had then;
        # the content length at which the rule is due next (never, for an unbatched one; 0:
        # on the first delta).
        self._given: list[int] | None = None
        self._marks: list[int] = []
        self._due = [0 if b is not None else _NEVER for b in self._batched]
        self.next_release = 0 if self._checks else _NEVER
        gaps = [c.max_gap for c in self.checkers if getattr(c, "max_gap", None)]
        self.max_gap: float | None = min(g for g in gaps if g is not None) if gaps else None

    def check_delta(
        self, state: State, delta: str
    ) -> list[GuardrailViolation] | Awaitable[list[GuardrailViolation]]:
        """Violations found in ``delta`` by the streaming rules: a list (the sync fast path),
        or an awaitable of one when some rule's check is async. An empty list means nothing
        was found. ``state`` must already hold ``delta``."""
        if state._length < self.next_release:
            return []
        found = self._release(state, delta)
        return [] if found is None else found

    def check(
        self, state: State, delta: str
    ) -> list[GuardrailViolation] | Awaitable[list[GuardrailViolation]] | None:
        """:meth:`check_delta` as the runtime calls it for every delta: ``None`` when no rule
        reported anything, so the common case allocates nothing. ``state`` must already hold
        ``delta``."""
        if state._length < self.next_release:
            return None
        return self._release(state, delta)

    def _release(
        self, state: State, delta: str
    ) -> list[GuardrailViolation] | Awaitable[list[GuardrailViolation]] | None:
        length = state._length
        given = self._given
        if given is not None and length < min(self._due):
            # No batched rule is due: the rules that run on every delta do, in order.
            checks = self._every_delta
            for index, check in enumerate(checks):
                result = check(state, delta)
                if result:
                    return _combine([result, *(c(state, delta) for c in checks[index + 1 :])])
            return None
        # Some batched rule is due (on the first delta: all of them): every streaming rule
        # runs, in rule order, the due ones on the text they have not been given, the
        # unbatched ones on the delta (a batched rule that is not due would only buffer).
        parts = state._parts
        if given is None:
            given = self._given = [length - len(delta)] * len(self._checks)
            self._marks = [len(parts) - 1] * len(self._checks)
        marks = self._marks
        due = self._due
        results: list[CheckResult] = []
        text = delta
        text_start = length - len(delta)
        for i, check, checker in self._plan:
            if checker is None:
                result = check(state, delta)
            elif due[i] <= length:
                start = given[i]
                if start != text_start:
                    text = "".join(parts[marks[i] :])
                    if len(text) != length - start:
                        text = _content_from(state, start)
                    text_start = start
                result = check(state, text)
                given[i] = length
                marks[i] = len(parts)
                need = checker.batch
                due[i] = length + (need if type(need) is int and need > 0 else 1)
            else:
                continue
            if result:
                results.append(result)
        self.next_release = 0 if self._every_delta else min(due)
        return _combine(results) if results else None

    def _settle(self) -> None:
        self.next_release = 0 if self._every_delta else min(self._due, default=_NEVER)

    def _flush_batched(self, state: State) -> list[CheckResult]:
        # Before completion checks: hand every batched rule the rest of its text (below its
        # batch, so it only takes it in).
        given = self._given
        if given is None:
            return []  # no delta arrived: nothing was handed, nothing is pending
        length = state._length
        results: list[CheckResult] = []
        text = ""
        text_start = -1
        for i, checker in enumerate(self._batched):
            start = given[i]
            if checker is None or start >= length:
                continue
            if start != text_start:
                text = "".join(state._parts[self._marks[i] :])
                if len(text) != length - start:
                    text = _content_from(state, start)
                text_start = start
            results.append(self._checks[i](state, text))
            given[i] = length
            self._marks[i] = len(state._parts)
            need = checker.batch
            self._due[i] = length + (need if type(need) is int and need > 0 else 1)
        self._settle()
        return results

    async def check_final(self, state: State) -> list[GuardrailViolation]:
        """Violations found once the stream completed."""
        found: list[GuardrailViolation] = []
        for early in self._flush_batched(state):
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
