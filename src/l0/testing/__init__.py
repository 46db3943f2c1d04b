"""Deterministic testing for code that uses l0 (and for l0 itself).

- :class:`FakeClock`: virtual time. Waits on it complete as soon as every task is blocked, so
  a 60-second stall runs in microseconds and the same script gives the same events every run.
- :func:`scripted_stream` / :func:`scripted_factory`: streams that emit given chunks, wait
  given virtual delays, hang, or raise given exceptions at given positions.

Example::

    clock = FakeClock()
    factory = scripted_factory(
        ["Hel", "lo", fail(ConnectionResetError("reset"))],   # attempt 1 drops mid-stream
        ["Hello", " world"],                                  # attempt 2 works
        clock=clock,
    )
    result = await l0.run(stream=factory, clock=clock, retry=l0.Retry(rng=random.Random(0)))
    assert await result.read() == "Hello world"
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from l0.runtime.clock import TimerHandle

__all__ = [
    "Delay",
    "Fail",
    "FakeClock",
    "Hang",
    "ScriptedFactory",
    "ScriptedStream",
    "delay",
    "fail",
    "hang",
    "scripted_factory",
    "scripted_stream",
]


class _Timer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Virtual time for tests.

    ``now()`` starts at ``start`` and only moves when the clock advances: automatically to the
    next timer whenever the event loop has nothing else to run (``auto_advance=True``), or by
    ``await clock.advance(seconds)``.

    Args:
        start: the initial ``now()``, in seconds.
        wall_start: ``wall()`` at ``now() == start`` (seconds since the epoch).
        auto_advance: advance by itself when every task is waiting on the clock.
    """

    def __init__(
        self, start: float = 0.0, *, wall_start: float = 1_700_000_000.0, auto_advance: bool = True
    ) -> None:
        self._now = float(start)
        self._wall_offset = wall_start - start
        self._timers: list[tuple[float, int, _Timer]] = []
        self._seq = itertools.count()
        self._auto = auto_advance
        self._advancer: asyncio.Task[None] | None = None

    # --- the Clock protocol ---

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        timer = self._schedule(seconds, wake)
        try:
            await future
        finally:
            timer.cancel()

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        return self._schedule(delay, callback)

    # --- test controls ---

    async def hang(self) -> None:
        """Wait forever (until cancelled): a stream that stops answering."""
        await asyncio.get_running_loop().create_future()

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, firing every timer due on the way, in order."""
        target = self._now + seconds
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._now = max(self._now, when)
            timer.callback()
            await asyncio.sleep(0)
        self._now = max(self._now, target)
        await asyncio.sleep(0)

    # --- internals ---

    def _schedule(self, delay: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(self._now + max(0.0, delay), callback)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        if self._auto and (self._advancer is None or self._advancer.done()):
            self._advancer = asyncio.get_running_loop().create_task(self._advance_when_idle())
        return timer

    async def _advance_when_idle(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await _until_idle(loop)
            while self._timers and self._timers[0][2].cancelled:
                heapq.heappop(self._timers)
            if not self._timers:
                return
            when, _, timer = heapq.heappop(self._timers)
            self._now = max(self._now, when)
            timer.callback()


async def _until_idle(loop: asyncio.AbstractEventLoop) -> None:
    """Yield until no other callback is ready to run (two quiet turns in a row)."""
    ready = getattr(loop, "_ready", None)
    quiet = 0
    for _ in range(10_000):
        await asyncio.sleep(0)
        if ready is None:
            # An event loop without a visible ready queue (uvloop): settle for many turns.
            quiet += 1
            if quiet >= 50:
                return
        elif not ready:
            quiet += 1
            if quiet >= 2:
                return
        else:
            quiet = 0


# --- scripted streams ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delay:
    """Wait ``seconds`` of clock time before the next item."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Hang:
    """Stop answering: the read never completes (until cancelled)."""


@dataclass(frozen=True, slots=True)
class Fail:
    """Raise ``error`` from the stream at this position."""

    error: BaseException


def delay(seconds: float) -> Delay:
    """A script item: wait ``seconds`` (virtual, with a :class:`FakeClock`)."""
    return Delay(seconds)


def hang() -> Hang:
    """A script item: never produce another chunk."""
    return Hang()


def fail(error: BaseException) -> Fail:
    """A script item: raise ``error`` (any exception instance: openai, httpx, builtin...)."""
    return Fail(error)


class ScriptedStream:
    """An async iterator that plays a script. Records how far it got and whether it was closed.

    Items: a ``str`` or any other object is yielded as a chunk (``str`` for the text adapter,
    or real provider chunk objects); :func:`delay`, :func:`hang` and :func:`fail` act.
    """

    def __init__(self, items: Iterable[Any], *, clock: Any = None) -> None:
        self._items = list(items)
        self._clock = clock
        self._position = 0
        self.yielded = 0
        self.closed = False

    def __aiter__(self) -> ScriptedStream:
        return self

    async def __anext__(self) -> Any:
        while True:
            if self.closed or self._position >= len(self._items):
                raise StopAsyncIteration
            item = self._items[self._position]
            self._position += 1
            if isinstance(item, Delay):
                if self._clock is not None:
                    await self._clock.sleep(item.seconds)
                else:
                    await asyncio.sleep(item.seconds)
            elif isinstance(item, Hang):
                await asyncio.get_running_loop().create_future()
            elif isinstance(item, Fail):
                raise item.error
            else:
                self.yielded += 1
                return item

    async def aclose(self) -> None:
        self.closed = True


def scripted_stream(items: Iterable[Any], *, clock: Any = None) -> ScriptedStream:
    """A stream that plays ``items`` (see :class:`ScriptedStream`)."""
    return ScriptedStream(items, clock=clock)


class ScriptedFactory:
    """A stream factory whose n-th call plays the n-th script (the last one repeats).

    ``calls`` counts the calls; ``streams`` keeps every stream handed out; ``contexts`` the
    :class:`l0.AttemptContext` each call received.
    """

    def __init__(self, scripts: Sequence[Iterable[Any]], *, clock: Any = None) -> None:
        if not scripts:
            raise ValueError("scripted_factory needs at least one script")
        self._scripts = [list(s) for s in scripts]
        self._clock = clock
        self.calls = 0
        self.streams: list[ScriptedStream] = []
        self.contexts: list[Any] = []

    def __call__(self, context: Any) -> AsyncIterator[Any]:
        script = self._scripts[min(self.calls, len(self._scripts) - 1)]
        self.calls += 1
        self.contexts.append(context)
        stream = ScriptedStream(script, clock=self._clock)
        self.streams.append(stream)
        return stream


def scripted_factory(*scripts: Iterable[Any], clock: Any = None) -> ScriptedFactory:
    """A factory playing one script per attempt: ``scripted_factory(first, second, ...)``."""
    return ScriptedFactory(scripts, clock=clock)
