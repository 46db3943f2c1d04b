"""Configuration objects. Each validates on construction and names the field that is wrong."""

from __future__ import annotations

import enum
import math
import random
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BackoffStrategy", "ConfigError", "Retry", "Timeout"]


class ConfigError(ValueError):
    """A configuration value is invalid. ``field`` names it; the message says why."""

    def __init__(self, owner: str, field_name: str, reason: str, value: Any = None) -> None:
        self.owner = owner
        self.field = field_name
        self.reason = reason
        self.value = value
        super().__init__(f"{owner}.{field_name}: {reason} (got {value!r})")


class BackoffStrategy(str, enum.Enum):
    """How the delay before a retry grows with ``n``, the retry number of that kind (from 0).

    Every strategy is capped at ``Retry.max_delay``.
    """

    EXPONENTIAL = "exponential"
    """``base_delay * 2**n``."""
    LINEAR = "linear"
    """``base_delay * (n + 1)``."""
    FIXED = "fixed"
    """``base_delay``."""
    FULL_JITTER = "full_jitter"
    """``uniform(0, base_delay * 2**n)``."""
    FIXED_JITTER = "fixed_jitter"
    """``t/2 + uniform(0, t/2)`` with ``t = base_delay * 2**n`` (AWS-style; the default)."""

    def __str__(self) -> str:
        return self.value


def _number(owner: str, name: str, value: Any, *, minimum: float, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(owner, name, "must be a number of seconds", value)
    if math.isnan(value) or math.isinf(value):
        raise ConfigError(owner, name, "must be finite", value)
    if strict and value <= minimum:
        raise ConfigError(owner, name, f"must be > {minimum:g}", value)
    if not strict and value < minimum:
        raise ConfigError(owner, name, f"must be >= {minimum:g}", value)
    return float(value)


def _count(owner: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(owner, name, "must be a whole number", value)
    if value < 0:
        raise ConfigError(owner, name, "must be >= 0", value)
    return value


@dataclass(frozen=True, slots=True)
class Retry:
    """How l0 retries a failed attempt. All times in seconds.

    Attributes:
        attempts: how many retries model and content failures (guardrail violations, drift,
            malformed streams) may cause, per target.
        max_retries: how many retries of any kind the whole session may make, fallbacks
            included. Network and transient failures (disconnects, timeouts, zero output,
            429, 5xx) count only here.
        base_delay: the backoff base.
        max_delay: no computed delay exceeds this.
        strategy: a :class:`BackoffStrategy` (or its name).
        retry_after_cap: a provider's ``Retry-After`` replaces the computed delay, up to this.
        rng: the source of jitter; pass a seeded ``random.Random`` for reproducible delays.

    Example::

        l0.Retry(attempts=2, max_retries=4, base_delay=0.5, strategy="exponential")
    """

    attempts: int = 3
    max_retries: int = 6
    base_delay: float = 1.0
    max_delay: float = 10.0
    strategy: BackoffStrategy = BackoffStrategy.FIXED_JITTER
    retry_after_cap: float = 60.0
    rng: random.Random | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        _count("Retry", "attempts", self.attempts)
        _count("Retry", "max_retries", self.max_retries)
        _number("Retry", "base_delay", self.base_delay, minimum=0)
        _number("Retry", "max_delay", self.max_delay, minimum=0)
        _number("Retry", "retry_after_cap", self.retry_after_cap, minimum=0)
        if self.max_delay < self.base_delay:
            raise ConfigError("Retry", "max_delay", "must be >= base_delay", self.max_delay)
        strategy = self.strategy
        if not isinstance(strategy, BackoffStrategy):
            try:
                strategy = BackoffStrategy(str(strategy).lower())
            except ValueError:
                names = ", ".join(s.name for s in BackoffStrategy)
                raise ConfigError(
                    "Retry", "strategy", f"unknown strategy; expected one of {names}", strategy
                ) from None
            object.__setattr__(self, "strategy", strategy)
        if self.rng is not None and not isinstance(self.rng, random.Random):
            raise ConfigError("Retry", "rng", "must be a random.Random", self.rng)

    def delay(self, n: int, rng: random.Random | None = None) -> float:
        """The backoff before retry number ``n`` (from 0) of one kind, in seconds."""
        source = rng or self.rng or random
        base = self.base_delay
        cap = self.max_delay
        strategy = self.strategy
        if strategy is BackoffStrategy.FIXED:
            value = base
        elif strategy is BackoffStrategy.LINEAR:
            value = base * (n + 1)
        else:
            # Cap the exponent so 2**n cannot overflow a float on absurd retry counts.
            exp = base * (2.0 ** min(n, 1000)) if base else 0.0
            if strategy is BackoffStrategy.EXPONENTIAL:
                value = exp
            elif strategy is BackoffStrategy.FULL_JITTER:
                value = source.uniform(0.0, min(exp, cap))
            else:
                t = min(exp, cap)
                value = t / 2 + source.uniform(0.0, t / 2)
        return min(value, cap)


@dataclass(frozen=True, slots=True)
class Timeout:
    """Stream timers, in seconds; ``None`` disables a timer.

    Attributes:
        initial_token: how long an attempt may take to produce its first content or tool-call
            activity (the request itself included).
        inter_token: how long the stream may be silent between two chunks.
    """

    initial_token: float | None = 5.0
    inter_token: float | None = 10.0

    def __post_init__(self) -> None:
        if self.initial_token is not None:
            _number("Timeout", "initial_token", self.initial_token, minimum=0, strict=True)
        if self.inter_token is not None:
            _number("Timeout", "inter_token", self.inter_token, minimum=0, strict=True)
