"""The attempt watchdog: one timer per attempt, not one per chunk.

``asyncio.wait_for`` creates a task per read and ``asyncio.timeout`` a context per read
(3–10 µs a chunk). Instead the deadline is ``since + step``: the hot path only moves ``since``
to the arrival of each chunk (one float store); the single timer re-arms itself when it fires
early and, once the deadline has really passed while a read is pending, cancels the reading
task. The runtime turns that cancellation into a timeout failure and absorbs it (see
:meth:`Watchdog.absorb`).

The read protocol, as the session's per-chunk loop runs it (inlined: a method call per chunk
is a noticeable share of what l0 adds)::

    watchdog.expect(started_at, initial, "initial")   # once per attempt (arms the timer)
    loop:
        if watchdog.attention: abort, or watchdog.rearm()
        watchdog.task = current_task(); watchdog.reading = True
        ... await the read ...
        watchdog.reading = False
        first chunk: watchdog.expect(now, inter, "inter")   # a shorter limit re-arms
        later chunks: watchdog.since = now

``attention`` is the one flag the loop checks before a read: an abort was requested, or the
timer fired while the consumer had the chunk (not reading) and so is not set for the next
read — which :meth:`Watchdog.rearm` sets, for the deadline that may already have passed.
"""

from __future__ import annotations

import asyncio
import functools
import math
import sys
import types
from collections.abc import Callable
from typing import Any

from l0.runtime.clock import Clock, TimerHandle

__all__ = ["Watchdog", "task_getter"]


def task_getter() -> Callable[[], asyncio.Task[Any] | None]:
    """A function returning the task running now, as cheap as this Python allows; call it
    inside the loop it will be used in.

    From Python 3.12 ``asyncio.current_task`` is C code. Before, it is Python (the running loop,
    then a dict lookup: ~0.17 µs, a tenth of what l0 adds per chunk); asyncio's own
    ``{loop: task}`` table read for this loop gives the same answer in ~0.02 µs.
    """
    global _getter
    current = asyncio.current_task
    if isinstance(current, types.BuiltinFunctionType):
        return current
    loop = asyncio.get_running_loop()
    cached = _getter
    if cached is not None and cached[0] is loop:
        return cached[1]
    table = getattr(asyncio.tasks, "_current_tasks", None)
    if isinstance(table, dict):
        getter: Callable[[], asyncio.Task[Any] | None] = functools.partial(table.get, loop)
        _getter = (loop, getter)
        return getter
    return current


# The getter made for the last loop (one partial per loop, not per attempt).
_getter: tuple[Any, Callable[[], Any]] | None = None


class Watchdog:
    """Cancels the reading task when the deadline passes during a read.

    The deadline is ``since + step`` (``step`` ``None``: no limit), in seconds on the clock;
    ``kind`` names the limit (``"initial"``, ``"inter"``, ``"idle"``). ``fired`` is ``None``
    until the watchdog (or :meth:`trip`) cancelled the task; then it names why (a kind, or
    ``"abort"``). ``armed_for`` is the deadline the timer is set for (``inf``: no timer).
    """

    __slots__ = (
        "_clock",
        "_handle",
        "armed_for",
        "attention",
        "fired",
        "kind",
        "reading",
        "since",
        "step",
        "task",
    )

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._handle: TimerHandle | None = None
        self.armed_for = math.inf
        self.attention = False
        self.since = 0.0
        self.step: float | None = None
        self.kind = "initial"
        self.fired: str | None = None
        self.reading = False
        self.task: asyncio.Task[Any] | None = None

    @property
    def deadline(self) -> float | None:
        """When the pending read must be done (``None``: no limit)."""
        step = self.step
        return None if step is None else self.since + step

    def expect(self, since: float, step: float | None, kind: str) -> None:
        """Reads must now finish within ``step`` seconds of ``since`` (then of each chunk's
        arrival, as the runtime moves ``since``). Arms the timer when that is earlier than the
        deadline it is set for."""
        self.since = since
        self.step = step
        self.kind = kind
        if step is not None and since + step < self.armed_for:
            self.arm(since + step)

    def rearm(self) -> None:
        """Set the timer for the current deadline if none is set for it (after the timer fired
        between reads)."""
        deadline = self.deadline
        if deadline is not None and deadline < self.armed_for:
            self.arm(deadline)

    def begin_read(self, deadline: float | None, kind: str) -> None:
        """A read that must finish by ``deadline`` (None: no limit) starts now (for the reads
        outside the per-chunk loop: opening the stream, a backoff)."""
        if deadline is None:
            self.expect(0.0, None, kind)
        else:
            self.expect(deadline, 0.0, kind)
        self.task = asyncio.current_task()
        self.reading = True

    def arm(self, deadline: float) -> None:
        """Set the timer for ``deadline``: the first one, or one earlier than the timer's. A
        later deadline needs no call: the timer re-arms itself when it finds it moved."""
        if self._handle is not None:
            self._handle.cancel()
        self.armed_for = deadline
        self._handle = self._clock.call_later(
            max(0.0, deadline - self._clock.now()), self._on_timer
        )

    def end_read(self) -> None:
        self.reading = False

    def _on_timer(self) -> None:
        self._handle = None
        self.armed_for = math.inf
        deadline = self.deadline
        if deadline is None or self.fired is not None:
            return
        remaining = deadline - self._clock.now()
        if remaining > 0:
            # The hot path moved the deadline forward since this timer was set.
            self.arm(deadline)
        elif self.reading:
            self.trip(self.kind)
        else:
            # The consumer is busy with a chunk: the next read re-arms the timer (and times
            # out at once if it has to wait for the stream).
            self.attention = True

    def trip(self, why: str) -> None:
        """Cancel the pending read now (used by the timer and by ``Result.abort()``)."""
        if self.fired is not None:
            return
        self.fired = why
        # Only a pending read is ours to interrupt; between reads the task runs the
        # consumer's code, and the session checks its flags before the next read.
        if self.reading and self.task is not None and not self.task.done():
            self.task.cancel()

    def reset(self) -> None:
        """Forget a previous attempt's timer and trip."""
        self.stop()
        self.fired = None

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.armed_for = math.inf
        self.step = None
        self.reading = False

    def owns_cancellation(self) -> bool:
        """After a ``CancelledError``: was it ours alone (not also the caller cancelling)?"""
        if self.fired is None:
            return False
        task = self.task
        if task is not None and sys.version_info >= (3, 11):
            # Undo our own cancel request; anything left is someone else's.
            if task.uncancel() > 0:
                return False
        return True

    async def absorb(self) -> None:
        """The read finished just as the watchdog fired: swallow the pending cancellation so
        it cannot surface later in the consumer's code."""
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            if not self.owns_cancellation():
                raise
        else:
            if self.task is not None and sys.version_info >= (3, 11):
                self.task.uncancel()
