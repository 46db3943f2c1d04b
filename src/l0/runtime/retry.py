"""The retry engine: given a classified failure, retry on this target, move to the next
target, or give up. Pure bookkeeping, no I/O; the session does the waiting.

The seed's retry table is the contract:

============================  =======  ======================  =========================
failure                       retries  counts toward attempts  counts toward max_retries
============================  =======  ======================  =========================
network, timeout, zero output  yes      no                      yes
429, 5xx                       yes      no                      yes
guardrail, drift, model        yes      yes                     yes
401/403 (fatal)                no       -                       -
============================  =======  ======================  =========================

``attempts`` is per target (each fallback gets the full retry logic); ``max_retries`` caps the
whole session. Moving to a fallback is not a retry.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from l0._classify import is_retryable_provider
from l0.config import Retry
from l0.errors import Classification, GuardrailError
from l0.types import ErrorCategory

__all__ = ["Action", "Decision", "RetryBudget"]


class Action(enum.Enum):
    RETRY = "retry"
    FALLBACK = "fallback"
    GIVE_UP = "give_up"


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do after a failed attempt.

    Attributes:
        action: retry on this target, move to the next target, or give up.
        delay: seconds to wait before the retry (0 for fallbacks and give-ups).
        counts_toward_attempts: the retry is a model/content retry.
        reason: a short, bounded-cardinality explanation (metrics and span attributes).
    """

    action: Action
    delay: float = 0.0
    counts_toward_attempts: bool = False
    reason: str = ""


_NETWORK_KINDS = (ErrorCategory.NETWORK, ErrorCategory.TRANSIENT)
_MODEL_KINDS = (ErrorCategory.MODEL, ErrorCategory.CONTENT)
# Jitter for sessions given no seeded rng. One shared generator: seeding a new one per session
# reads the OS entropy pool (~9 µs a session), and unseeded jitter needs no isolation.
_JITTER = random.Random()


class RetryBudget:
    """Counts retries for one session and decides each next step."""

    __slots__ = (
        "config",
        "model_retries",
        "network_retries",
        "rng",
        "session_retries",
        "target_model_retries",
        "target_network_retries",
    )

    def __init__(self, config: Retry, rng: random.Random | None = None) -> None:
        self.config = config
        self.rng = rng or config.rng or _JITTER
        self.session_retries = 0
        self.model_retries = 0
        self.network_retries = 0
        self.target_model_retries = 0
        self.target_network_retries = 0

    def next_target(self) -> None:
        """A fallback target starts: per-target counters reset."""
        self.target_model_retries = 0
        self.target_network_retries = 0

    def decide(
        self, failure: Classification, error: BaseException, has_next_target: bool
    ) -> Decision:
        category = failure.category
        fallback = Action.FALLBACK if has_next_target else Action.GIVE_UP
        if category is ErrorCategory.INTERNAL:
            return Decision(Action.GIVE_UP, reason="internal")
        if category is ErrorCategory.FATAL or (isinstance(error, GuardrailError) and error.fatal):
            return Decision(fallback, reason="fatal")
        if category is ErrorCategory.PROVIDER and not is_retryable_provider(failure):
            return Decision(fallback, reason="not_retryable")
        if self.session_retries >= self.config.max_retries:
            return Decision(fallback, reason="max_retries")

        if category in _MODEL_KINDS:
            if self.target_model_retries >= self.config.attempts:
                return Decision(fallback, reason="attempts")
            n = self.target_model_retries
            self.target_model_retries += 1
            self.model_retries += 1
            counts = True
        else:  # network, transient, retryable provider errors
            n = self.target_network_retries
            self.target_network_retries += 1
            self.network_retries += 1
            counts = False
        self.session_retries += 1

        delay = self.config.delay(n, self.rng)
        if failure.retry_after is not None:
            delay = min(max(0.0, failure.retry_after), self.config.retry_after_cap)
        return Decision(Action.RETRY, delay=delay, counts_toward_attempts=counts, reason="retry")
