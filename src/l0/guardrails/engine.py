"""Runs a set of guardrail rules over one attempt's output.

The runtime calls :meth:`GuardrailRun.check_delta` for every content delta (sync fast path
when no rule is async) and :meth:`GuardrailRun.check_final` once at completion.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Iterable, Sequence

from l0.config import ConfigError
from l0.guardrails.base import CheckResult, GuardrailRule, GuardrailViolation, RuleChecker
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


class GuardrailRun:
    """The rules' state for one attempt."""

    __slots__ = ("checkers", "max_gap", "names", "streaming")

    def __init__(self, rules: Sequence[GuardrailRule]) -> None:
        self.checkers: list[RuleChecker] = [rule.new_checker() for rule in rules]
        self.names: list[str] = [rule.name for rule in rules]
        self.streaming = any(rule.streaming for rule in rules)
        gaps = [c.max_gap for c in self.checkers if getattr(c, "max_gap", None)]
        self.max_gap: float | None = min(g for g in gaps if g is not None) if gaps else None

    def check_delta(
        self, state: State, delta: str
    ) -> list[GuardrailViolation] | Awaitable[list[GuardrailViolation]]:
        """Violations found in ``delta``: a list (the sync fast path), or an awaitable of one
        when some rule's check is async. An empty list means nothing was found."""
        found: list[GuardrailViolation] = []
        pending: list[Awaitable[Sequence[GuardrailViolation]]] = []
        for checker in self.checkers:
            result = checker.check_delta(state, delta)
            if result:
                if inspect.isawaitable(result):
                    pending.append(result)
                else:
                    found.extend(result)
        if pending:
            return _gather(found, pending)
        return found

    async def check_final(self, state: State) -> list[GuardrailViolation]:
        """Violations found once the stream completed."""
        found: list[GuardrailViolation] = []
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


async def _gather(
    found: list[GuardrailViolation], pending: list[Awaitable[Sequence[GuardrailViolation]]]
) -> list[GuardrailViolation]:
    for awaitable in pending:
        found.extend(await awaitable)
    return found
