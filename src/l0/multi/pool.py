"""``l0.pool``: a long-lived worker pool for tasks submitted over time.

A pool has no span of its own: it may live as long as the process, and one trace per pool
would grow without end. Each submitted task runs in the OpenTelemetry context of the code that
submitted it, so its sessions belong to that caller's trace.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from l0.config import ConfigError, Retry, Timeout
from l0.guardrails.base import GuardrailRule
from l0.multi._aio import settle
from l0.multi._operation import check_common
from l0.multi._tasks import RunOptions, Task, TaskOutcome, TaskRunner, check_limit, check_retry
from l0.observability.bus import Sink
from l0.runtime.clock import Clock

__all__ = ["Pool", "PoolClosedError", "PoolStats", "pool"]

_POOL_KEY = object()


class PoolClosedError(RuntimeError):
    """``submit()`` was called on a pool that is closing or closed."""


@dataclass(frozen=True, slots=True)
class PoolStats:
    """A snapshot of a pool's counters.

    Attributes:
        workers: the most tasks that run at once.
        submitted: tasks submitted since the pool was created.
        queued: tasks waiting for a worker.
        running: tasks running now.
        succeeded: tasks that ended successfully.
        failed: tasks that ended with an error.
        cancelled: tasks cancelled (by ``close(cancel=True)`` or by the caller).
    """

    workers: int
    submitted: int
    queued: int
    running: int
    succeeded: int
    failed: int
    cancelled: int


class _Slots:
    """A FIFO-fair semaphore: a freed slot goes straight to the longest waiter, so tasks
    start in submission order."""

    __slots__ = ("_free", "_waiters")

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # Handed a slot in the same instant we were cancelled: pass it on.
                self.release()
            elif waiter in self._waiters:  # release() may have dropped it already
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1


class Pool:
    """A pool of ``workers`` concurrent task slots. Create it with :func:`pool`.

    ``submit()`` returns the task's ``asyncio.Task``: awaiting it gives the
    :class:`TaskOutcome` (failures are outcomes, not exceptions). ``drain()`` waits for
    everything submitted and returns the outcomes not drained before; ``close()`` stops
    accepting work and waits (or cancels, with ``cancel=True``).

    Example::

        async with l0.pool(workers=4, rate_limit_key="openai:gpt-4o") as p:
            for doc in docs:
                p.submit(lambda doc=doc: l0.run(stream=lambda: ask(doc)))
            outcomes = await p.drain()
    """

    def __init__(self, workers: int, options: RunOptions, key: str | None) -> None:
        self._workers = workers
        self._runner = TaskRunner(options)
        self._key = key
        self._slots = _Slots(workers)
        self._live: dict[asyncio.Task[TaskOutcome], int] = {}
        self._finished: list[TaskOutcome] = []
        self._closed = False
        self._submitted = 0
        self._running = 0
        self._succeeded = 0
        self._failed = 0
        self._cancelled = 0

    @property
    def stats(self) -> PoolStats:
        """The pool's counters now."""
        return PoolStats(
            workers=self._workers,
            submitted=self._submitted,
            queued=len(self._live) - self._running,
            running=self._running,
            succeeded=self._succeeded,
            failed=self._failed,
            cancelled=self._cancelled,
        )

    @property
    def closed(self) -> bool:
        """``close()`` was called: ``submit()`` refuses new work."""
        return self._closed

    def submit(self, task: Task, *, key: Any = _POOL_KEY) -> asyncio.Task[TaskOutcome]:
        """Queue ``task`` (a zero-argument callable, as for :func:`l0.parallel`).

        Args:
            task: the callable.
            key: this task's rate-limit key (default: the pool's ``rate_limit_key``).

        Raises:
            PoolClosedError: the pool is closing or closed.
        """
        if self._closed:
            raise PoolClosedError("the pool is closed; create another one")
        if not callable(task):
            raise ConfigError("pool.submit", "task", "must be callable", task)
        if key is _POOL_KEY:
            key = self._key
        elif key is not None and not isinstance(key, str):
            raise ConfigError("pool.submit", "key", "must be a string or None", key)
        index = self._submitted
        self._submitted += 1
        # create_task copies the caller's context: the task's spans join the caller's trace.
        handle = asyncio.create_task(self._run(index, task, key), name=f"l0.pool[{index}]")
        self._live[handle] = index
        handle.add_done_callback(self._record)
        return handle

    async def _run(self, index: int, task: Task, key: str | None) -> TaskOutcome:
        await self._slots.acquire()
        self._running += 1
        try:
            return await self._runner.run(index, task, key)
        finally:
            self._running -= 1
            self._slots.release()

    def _record(self, handle: asyncio.Task[TaskOutcome]) -> None:
        index = self._live.pop(handle)
        if handle.cancelled():
            outcome = TaskOutcome(index, "cancelled", error=asyncio.CancelledError())
        else:
            error = handle.exception()
            if error is not None:  # the runner never raises; a bug would surface here
                outcome = TaskOutcome(index, "failed", error=error)
            else:
                outcome = handle.result()
        if outcome.ok:
            self._succeeded += 1
        elif outcome.status == "failed":
            self._failed += 1
        else:
            self._cancelled += 1
        self._finished.append(outcome)

    async def drain(self) -> list[TaskOutcome]:
        """Wait until every task submitted so far (and any submitted meanwhile) has ended;
        return the outcomes not returned by an earlier ``drain()``, in submission order."""
        while self._live:
            await asyncio.wait(list(self._live))
            # Done callbacks run on the next turn: let them record the outcomes.
            await asyncio.sleep(0)
        finished, self._finished = self._finished, []
        return sorted(finished, key=lambda o: o.index)

    async def close(self, *, cancel: bool = False) -> None:
        """Stop accepting work, then wait for the queued and running tasks to end — or, with
        ``cancel=True``, cancel them. Outcomes stay available to ``drain()``. If the wait is
        cancelled, the pool's tasks are cancelled too and waited for. Idempotent."""
        self._closed = True
        if cancel:
            await self._cancel_all()
            return
        try:
            while self._live:
                await asyncio.wait(list(self._live))
        except asyncio.CancelledError:
            await self._cancel_all()
            raise

    async def _cancel_all(self) -> None:
        live = list(self._live)
        for handle in live:
            handle.cancel()
        await settle(live)
        await asyncio.sleep(0)

    async def __aenter__(self) -> Pool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close(cancel=exc is not None)


def pool(
    workers: int,
    *,
    rate_limit_key: str | None = None,
    retry: Retry | None = None,
    guardrails: Sequence[GuardrailRule] | None = None,
    timeout: Timeout | None = None,
    on_event: Sink | None = None,
    meta: dict[str, Any] | None = None,
    clock: Clock | None = None,
) -> Pool:
    """Create a :class:`Pool` running at most ``workers`` tasks at once.

    Tasks are run as :func:`l0.parallel` runs them (the options mean the same);
    ``rate_limit_key`` is the default key of submitted tasks.

    Example::

        p = l0.pool(workers=2)
        first = p.submit(lambda: l0.run(stream=factory))
        outcome = await first
        await p.close()
    """
    size = check_limit("pool", "workers", workers, optional=False)
    assert size is not None
    if rate_limit_key is not None and not isinstance(rate_limit_key, str):
        raise ConfigError("pool", "rate_limit_key", "must be a string or None", rate_limit_key)
    if timeout is not None and not isinstance(timeout, Timeout):
        raise ConfigError("pool", "timeout", "must be an l0.Timeout", timeout)
    meta_map, the_clock = check_common("pool", on_event, meta, clock)
    options = RunOptions(
        retry=check_retry("pool", retry),
        guardrails=guardrails,
        timeout=timeout,
        on_event=on_event,
        meta=meta_map,
        clock=the_clock,
    )
    return Pool(size, options, rate_limit_key)
