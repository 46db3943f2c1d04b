"""The attempt watchdog: one timer per attempt, not one per chunk.

``asyncio.wait_for`` creates a task per read and ``asyncio.timeout`` a context per read
(3–10 µs a chunk). Instead the hot path only moves ``deadline`` forward (a float store); the
single timer re-arms itself when it fires early and, once the deadline has really passed while
a read is pending, cancels the reading task. The runtime turns that cancellation into a
timeout failure and absorbs it (see :meth:`Watchdog.absorb`).
"""

from __future__ import annotations

import asyncio
import sys

from l0.runtime.clock import Clock, TimerHandle

__all__ = ["Watchdog"]


class Watchdog:
    """Cancels the reading task when ``deadline`` passes during a read.

    ``fired`` is ``None`` until the watchdog (or :meth:`trip`) cancelled the task; then it names
    why (``"initial"``, ``"inter"``, ``"idle"`` or ``"abort"``).
    """

    __slots__ = ("_armed_for", "_clock", "_handle", "deadline", "fired", "kind", "reading", "task")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._handle: TimerHandle | None = None
        self._armed_for = 0.0
        self.deadline: float | None = None
        self.kind = "initial"
        self.fired: str | None = None
        self.reading = False
        self.task: asyncio.Task[object] | None = None

    def begin_read(self, deadline: float | None, kind: str) -> None:
        """Called before each read: the read must finish by ``deadline`` (None: no limit)."""
        self.deadline = deadline
        self.kind = kind
        self.reading = True
        self.task = asyncio.current_task()
        if deadline is not None:
            handle = self._handle
            if handle is None:
                self._arm(deadline)
            elif deadline < self._armed_for:
                # The limit got shorter (first chunk seen: initial -> inter-token timer).
                handle.cancel()
                self._arm(deadline)

    def _arm(self, deadline: float) -> None:
        self._armed_for = deadline
        self._handle = self._clock.call_later(
            max(0.0, deadline - self._clock.now()), self._on_timer
        )

    def end_read(self) -> None:
        self.reading = False

    def _on_timer(self) -> None:
        self._handle = None
        deadline = self.deadline
        if deadline is None or self.fired is not None:
            return
        remaining = deadline - self._clock.now()
        if remaining > 0:
            # The hot path moved the deadline forward since this timer was set.
            self._arm(deadline)
        elif self.reading:
            self.trip(self.kind)
        # Not reading: the consumer is busy with a chunk; the next read re-arms the timer.

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
        self.deadline = None
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
