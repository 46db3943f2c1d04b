"""Shared rate-limit cooldowns: one 429 slows every task going to the same target.

When a provider answers ``429`` with ``Retry-After``, every other request to that target sent
before the wait is over will most likely be refused too, and each refusal burns a retry. So the
first task to be told to wait publishes a *cooldown* for its target, and every other task in the
process that goes to the same target waits for it before its next request.

A target is named by a *key*, a string the caller picks (``"openai:gpt-4o"``): l0 cannot see
which endpoint a stream factory calls. Keys are given to :func:`l0.parallel`,
:func:`l0.batched`, :func:`l0.consensus` and :func:`l0.pool` (``rate_limit_key=``), or to a
single factory with :func:`rate_limited`.

Only a rate limit that says how long to wait (``Retry-After`` / ``retry-after-ms``) publishes a
cooldown: without it there is nothing better to share than each task's own backoff.

This module depends on nothing else in :mod:`l0.multi`, so the session runtime can call it
before each attempt (see :func:`cooldown_remaining` and :func:`note_failure`).
"""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from l0.errors import Classification, classify_error
from l0.runtime.clock import SYSTEM_CLOCK, Clock
from l0.runtime.fallback import StreamFactory, make_targets
from l0.types import AttemptContext, ErrorCode

__all__ = [
    "DEFAULT_COOLDOWN_CAP",
    "Cooldowns",
    "cooldown_remaining",
    "cooldowns",
    "current_rate_limit_key",
    "note_failure",
    "rate_limit_scope",
    "rate_limited",
]

DEFAULT_COOLDOWN_CAP = 60.0
"""The longest cooldown one ``Retry-After`` can publish, in seconds (``Retry.retry_after_cap``)."""

# The key of the target the current task goes to. Set by parallel/pool around each task, so a
# session created inside the task (``lambda: l0.run(...)``) can find its key without the user
# threading it through.
_KEY: ContextVar[str | None] = ContextVar("l0_rate_limit_key", default=None)


@dataclass(frozen=True, slots=True)
class _Entry:
    # The clock the deadline was read from: a FakeClock's deadline is in virtual time.
    clock: Clock
    until: float


class Cooldowns:
    """Per-target cooldown deadlines shared inside the process.

    Use the process-wide instance :data:`cooldowns`; create your own only to isolate a test.
    All methods are meant for one event loop (they take no locks).

    Example::

        cooldowns.publish("openai:gpt-4o", 2.0)      # a 429 said "Retry-After: 2"
        await cooldowns.wait("openai:gpt-4o")        # any other task: waits the 2 s out
    """

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def publish(self, key: str, seconds: float, clock: Clock = SYSTEM_CLOCK) -> None:
        """Hold back requests to ``key`` for ``seconds`` from now (a longer cooldown already
        in force is kept)."""
        if not (isinstance(seconds, (int, float)) and math.isfinite(seconds)) or seconds <= 0:
            return
        if self.remaining(key) >= seconds:
            return
        self._entries[key] = _Entry(clock, clock.now() + seconds)

    def remaining(self, key: str | None) -> float:
        """Seconds left of ``key``'s cooldown (0 when there is none)."""
        if key is None:
            return 0.0
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        left = entry.until - entry.clock.now()
        if left <= 0:
            del self._entries[key]
            return 0.0
        return left

    async def wait(self, key: str | None, clock: Clock = SYSTEM_CLOCK) -> float:
        """Wait until ``key``'s cooldown is over; returns the seconds waited (on ``clock``).

        The cooldown is read again after each sleep: another 429 may have extended it.
        """
        waited = 0.0
        while True:
            left = self.remaining(key)
            if left <= 0:
                return waited
            started = clock.now()
            await clock.sleep(left)
            waited += clock.now() - started

    def note_failure(
        self,
        key: str | None,
        failure: BaseException | Classification,
        clock: Clock = SYSTEM_CLOCK,
        cap: float = DEFAULT_COOLDOWN_CAP,
    ) -> float:
        """Publish a cooldown for ``key`` if ``failure`` is a rate limit that said how long to
        wait. Returns the seconds published (0 when nothing was)."""
        if key is None:
            return 0.0
        c = failure if isinstance(failure, Classification) else classify_error(failure)
        if c.retry_after is None or not (c.code is ErrorCode.RATE_LIMITED or c.status_code == 429):
            return 0.0
        seconds = min(max(0.0, c.retry_after), cap)
        self.publish(key, seconds, clock)
        return seconds

    def active(self) -> dict[str, float]:
        """Every key with a cooldown in force, with its seconds left."""
        left = {key: self.remaining(key) for key in list(self._entries)}
        return {key: seconds for key, seconds in left.items() if seconds > 0}

    def clear(self, key: str | None = None) -> None:
        """Forget ``key``'s cooldown, or every cooldown when ``key`` is ``None``."""
        if key is None:
            self._entries.clear()
        else:
            self._entries.pop(key, None)


cooldowns = Cooldowns()
"""The process-wide registry every l0 task consults."""


# --- the current task's key ----------------------------------------------------------------


def current_rate_limit_key() -> str | None:
    """The rate-limit key of the task running now (set by parallel, batched, consensus and
    pool, or by :func:`rate_limit_scope`), or ``None``."""
    return _KEY.get()


@contextlib.contextmanager
def rate_limit_scope(key: str | None) -> Iterator[None]:
    """Make ``key`` the rate-limit key of sessions created inside the block.

    Example::

        with rate_limit_scope("openai:gpt-4o"):
            result = await l0.run(stream=lambda: client.chat.completions.create(...))
    """
    token = _KEY.set(key)
    try:
        yield
    finally:
        _KEY.reset(token)


# --- the runtime hook ----------------------------------------------------------------------


def cooldown_remaining(key: str | None, clock: Clock = SYSTEM_CLOCK) -> float:
    """For the retry engine: seconds to hold the next attempt of a session whose key is
    ``key`` (0 without a key or a cooldown). ``clock`` is unused today; it is part of the
    signature so a per-clock registry can be added without touching the caller."""
    del clock
    if key is None:  # the common case, checked before the registry is asked
        return 0.0
    return cooldowns.remaining(key)


def note_failure(
    key: str | None,
    failure: BaseException | Classification,
    clock: Clock = SYSTEM_CLOCK,
    cap: float = DEFAULT_COOLDOWN_CAP,
) -> float:
    """For the retry engine: an attempt of a session whose key is ``key`` failed with
    ``failure``; publish the cooldown it calls for, if any (see :meth:`Cooldowns.note_failure`)."""
    return cooldowns.note_failure(key, failure, clock, cap)


# --- a gate around one stream factory ------------------------------------------------------


def rate_limited(
    key: str,
    factory: StreamFactory,
    *,
    clock: Clock = SYSTEM_CLOCK,
    cap: float = DEFAULT_COOLDOWN_CAP,
) -> Callable[[AttemptContext], Any]:
    """Wrap a stream factory so each attempt waits out ``key``'s cooldown before its request,
    and a ``429`` with ``Retry-After`` on the request publishes one for every other task.

    The wait happens inside the attempt, so it counts toward ``Timeout.initial_token``.

    Example::

        factory = rate_limited("openai:gpt-4o", lambda: client.chat.completions.create(...))
        result = await l0.run(stream=factory)
    """
    target = make_targets(factory, None)[0]

    async def gated(context: AttemptContext) -> Any:
        await cooldowns.wait(key, clock)
        try:
            raw = target.open(context)
            if inspect.isawaitable(raw):
                raw = await raw
        except Exception as error:
            cooldowns.note_failure(key, error, clock, cap)
            raise
        return raw

    return gated
