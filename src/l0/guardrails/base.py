"""Guardrail rules and violations: the types a custom rule is written with.

A :class:`GuardrailRule` is a stateless description. For every attempt the engine asks it for a
fresh :class:`RuleChecker` (``rule.new_checker()``), which holds that attempt's incremental
state, so concurrent sessions never share state and a retry starts clean.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from l0.config import ConfigError
from l0.types import State

__all__ = [
    "NO_DELTAS",
    "CheckResult",
    "GuardrailRule",
    "GuardrailViolation",
    "RuleChecker",
    "Severity",
]

Severity = Literal["error", "warning", "fatal"]
_SEVERITIES = ("error", "warning", "fatal")


@dataclass(frozen=True, slots=True)
class GuardrailViolation:
    """One thing a guardrail found wrong.

    Attributes:
        rule: the name of the rule that found it.
        message: what is wrong (never quotes model output at length).
        severity: ``"error"`` fails the attempt (retried, counts toward ``attempts``);
            ``"fatal"`` fails it and stops retries on that target; ``"warning"`` is recorded in
            ``state.violations`` only.
        recoverable: ``False`` means a retry cannot help; treated like ``"fatal"``.
        position: the character offset in the content where it was found, when known.
    """

    rule: str
    message: str
    severity: Severity = "error"
    recoverable: bool = True
    position: int | None = None


CheckResult = Sequence[GuardrailViolation] | Awaitable[Sequence[GuardrailViolation]]


NO_DELTAS = -1
"""The ``batch`` of a checker that needs no deltas (it works in ``check_final`` or
``check_idle`` only): the engine never calls its ``check_delta``."""


class RuleChecker(Protocol):
    """The per-attempt state of one rule.

    ``check_delta`` runs on every content delta and must cost O(len(delta)); ``check_final``
    runs once when the stream completes. Either may return an awaitable. ``max_gap`` (seconds)
    asks the runtime to call ``check_idle`` when the stream is silent that long.

    A checker may also declare ``batch`` (optional; read with ``getattr``, default ``None``),
    which lets the engine skip the calls that could not find anything:

    - ``None``: ``check_delta`` runs on every delta, with that delta.
    - ``n >= 1``: ``check_delta`` only takes text in until ``n`` more characters have arrived,
      and what it finds depends on the text, never on how it is split. The engine may then
      hand it the concatenation of the deltas since its last call, on the first delta where
      ``n`` or more characters are pending, and whatever is still pending (less than ``n``)
      just before ``check_final``. ``batch`` is read again as each call returns (it is how
      many characters the *next* call needs), so it may be a property.
    - :data:`NO_DELTAS`: ``check_delta`` finds nothing and keeps no state: never called.

    The first delta of an attempt is always handed over as it is, so a checker sees where its
    text starts in the content (a continuation's checkpoint may come before it). Findings
    are then the same, on the same delta, as with a call per delta.
    """

    max_gap: float | None

    def check_delta(self, state: State, delta: str) -> CheckResult: ...

    def check_final(self, state: State) -> CheckResult: ...

    def check_idle(self, state: State, gap: float) -> Sequence[GuardrailViolation]: ...


_NO_VIOLATIONS: tuple[GuardrailViolation, ...] = ()


class _FunctionChecker:
    """Runs a user's ``check`` function: on every delta when streaming, else at completion."""

    __slots__ = ("_check", "_pass_delta", "_streaming", "max_gap")

    def __init__(self, check: Callable[..., CheckResult], pass_delta: bool, streaming: bool):
        self._check = check
        self._pass_delta = pass_delta
        self._streaming = streaming
        self.max_gap: float | None = None

    def check_delta(self, state: State, delta: str) -> CheckResult:
        if not self._streaming:
            return _NO_VIOLATIONS
        return self._check(state, delta) if self._pass_delta else self._check(state)

    def check_final(self, state: State) -> CheckResult:
        # A streaming rule has already seen every delta; running it again at the end would
        # report the same violation twice.
        if self._streaming:
            return _NO_VIOLATIONS
        return self._check(state, "") if self._pass_delta else self._check(state)

    def check_idle(self, state: State, gap: float) -> Sequence[GuardrailViolation]:
        return _NO_VIOLATIONS


class GuardrailRule:
    """A named check over the streamed output.

    Args:
        name: identifies the rule in violations, events and span attributes.
        check: ``check(state)`` or ``check(state, delta)``, sync or async, returning a list of
            :class:`GuardrailViolation`. With ``streaming=True`` it runs on every delta (keep it
            O(delta): ``state.content_length`` is O(1), ``state.content`` is O(content));
            otherwise once at completion.
        streaming: run during the stream rather than at the end.
        severity: the default severity of this rule's violations (informational for rules
            whose check builds its own violations).
        recoverable: whether a retry can fix what this rule finds.
        description: one line for docs and span attributes.

    Example::

        def max_length_rule(limit: int = 1000) -> GuardrailRule:
            def check(state: State) -> list[GuardrailViolation]:
                if state.content_length > limit:
                    return [GuardrailViolation(rule="max_length", message=f"over {limit} chars")]
                return []
            return GuardrailRule(name="max_length", check=check, streaming=True)
    """

    def __init__(
        self,
        name: str,
        check: Callable[..., CheckResult] | None = None,
        *,
        streaming: bool = True,
        severity: Severity = "error",
        recoverable: bool = True,
        description: str = "",
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError("GuardrailRule", "name", "must be a non-empty string", name)
        if severity not in _SEVERITIES:
            raise ConfigError(
                "GuardrailRule", "severity", f"must be one of {', '.join(_SEVERITIES)}", severity
            )
        if check is not None and not callable(check):
            raise ConfigError("GuardrailRule", "check", "must be callable", check)
        self.name = name
        self.check = check
        self.streaming = bool(streaming)
        self.severity: Severity = severity
        self.recoverable = bool(recoverable)
        self.description = description
        self._pass_delta = _takes_delta(check) if check is not None else False

    def new_checker(self) -> RuleChecker:
        """Fresh per-attempt state. Built-in rules override this."""
        if self.check is None:
            raise ConfigError("GuardrailRule", "check", "is required for a custom rule", None)
        return _FunctionChecker(self.check, self._pass_delta, self.streaming)

    def __repr__(self) -> str:
        return f"GuardrailRule(name={self.name!r}, streaming={self.streaming})"


def _takes_delta(check: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(check).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    varargs = any(p.kind is p.VAR_POSITIONAL for p in params)
    return len(positional) >= 2 or (len(positional) == 1 and varargs)
