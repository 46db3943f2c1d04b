"""Running tasks: one callable at a time (:class:`TaskRunner`), and many under a limit
(:func:`run_all`). Shared by parallel, batched, pool and consensus, so a task means the same
thing everywhere.

What a task's call returns decides how it runs:

- an :class:`l0.Result` (or a race result), directly or from an awaitable such as
  ``l0.run(...)``: it is read to its text; the session does its own retries;
- a stream (an async iterator), directly or from an awaitable such as
  ``client.chat.completions.create(..., stream=True)``: it is read through a new l0 session
  whose later attempts call the task again;
- anything else is the task's value.

A task that *raises* is retried like an attempt (network, 429, 5xx: see :class:`l0.Retry`),
except when it raises :class:`l0.L0Error`: that is a session that already retried.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from l0.config import ConfigError, Retry, Timeout
from l0.errors import L0Error, classify_error
from l0.guardrails.base import GuardrailRule
from l0.multi._aio import settle
from l0.multi.cooldown import cooldowns, rate_limit_scope
from l0.multi.race import RaceResult
from l0.observability.bus import Sink
from l0.runtime.api import run
from l0.runtime.clock import Clock
from l0.runtime.retry import Action, RetryBudget
from l0.runtime.session import Result
from l0.types import State

__all__ = ["Progress", "Task", "TaskOutcome", "TaskRunner", "TaskStatus", "run_all"]

_log = logging.getLogger("l0")

Task = Callable[[], Any]
"""A zero-argument callable, sync or async (see the module docstring for what it may return)."""

TaskStatus = Literal["succeeded", "failed", "cancelled"]


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    """What one task came to.

    Attributes:
        index: the task's position in the input (or its submission number in a pool).
        status: ``"succeeded"``, ``"failed"``, or ``"cancelled"`` (stopped, or never started
            because of ``fail_fast`` or a closing pool).
        value: the task's value; for a task that returned a session or a stream, its text.
        error: why it failed (an :class:`l0.L0Error` when an l0 session gave up).
        state: the l0 session's :class:`l0.State`, when the task ran one (tool calls, usage).
        calls: how many times the task was called (task-level retries + 1; 0 if never started).
        waited: seconds spent waiting for a shared rate-limit cooldown before calls.
        duration: seconds from the task's start to its end (0 if never started).
    """

    index: int
    status: TaskStatus
    value: Any = None
    error: BaseException | None = None
    state: State | None = None
    calls: int = 0
    waited: float = 0.0
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        """The task succeeded."""
        return self.status == "succeeded"


@dataclass(frozen=True, slots=True)
class Progress:
    """Passed to ``on_progress`` after each task ends.

    Attributes:
        total: tasks in the call.
        finished: tasks ended so far (succeeded + failed).
        succeeded: tasks that succeeded so far.
        failed: tasks that failed so far.
        running: tasks still in flight.
        outcome: the task that just ended.
    """

    total: int
    finished: int
    succeeded: int
    failed: int
    running: int
    outcome: TaskOutcome


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How tasks run: the retry policy, and the session options for tasks returning streams."""

    retry: Retry
    guardrails: Sequence[GuardrailRule] | None
    timeout: Timeout | None
    on_event: Sink | None
    meta: Mapping[str, Any]
    clock: Clock


def check_retry(owner: str, retry: Retry | None) -> Retry:
    if retry is None:
        return Retry()
    if not isinstance(retry, Retry):
        raise ConfigError(owner, "retry", "must be an l0.Retry", retry)
    return retry


def check_tasks(owner: str, name: str, tasks: Any) -> list[Task]:
    if isinstance(tasks, (str, bytes, Mapping)) or not isinstance(tasks, Iterable):
        raise ConfigError(owner, name, "must be a list of callables", tasks)
    checked: list[Task] = []
    for task in tasks:
        if not callable(task):
            raise ConfigError(
                owner, name, "every task must be callable (a zero-arg function)", task
            )
        checked.append(task)
    return checked


def check_limit(owner: str, name: str, value: Any, *, optional: bool) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(owner, name, "must be a whole number >= 1", value)
    return value


def check_keys(owner: str, key: Any, count: int) -> list[str | None]:
    """``rate_limit_key``: one key for every task, or one per task."""
    if key is None or isinstance(key, str):
        return [key] * count
    if isinstance(key, Sequence) and all(k is None or isinstance(k, str) for k in key):
        if len(key) != count:
            raise ConfigError(owner, "rate_limit_key", f"needs one key per task ({count})", key)
        return list(key)
    raise ConfigError(owner, "rate_limit_key", "must be a string or a list of strings", key)


class _Recall:
    """The stream factory of a task that returned a stream: the first attempt reads the stream
    already in hand; each later attempt calls the task again (behind the cooldown gate)."""

    __slots__ = ("_first", "_key", "_options", "_task")

    def __init__(self, first: Any, task: Task, key: str | None, options: RunOptions) -> None:
        self._first = first
        self._task = task
        self._key = key
        self._options = options

    def __call__(self) -> Any:
        first, self._first = self._first, None
        if first is not None:
            return first
        return self._again()

    async def _again(self) -> Any:
        options = self._options
        await cooldowns.wait(self._key, options.clock)
        try:
            raw = self._task()
            if inspect.isawaitable(raw):
                raw = await raw
        except Exception as error:
            cooldowns.note_failure(self._key, error, options.clock, options.retry.retry_after_cap)
            raise
        return raw


def _is_stream(value: Any) -> bool:
    return hasattr(value, "__aiter__") or hasattr(value, "__anext__")


class TaskRunner:
    """Runs one task to a :class:`TaskOutcome`; never raises but ``CancelledError``."""

    __slots__ = ("options",)

    def __init__(self, options: RunOptions) -> None:
        self.options = options

    async def run(self, index: int, task: Task, key: str | None) -> TaskOutcome:
        options = self.options
        clock = options.clock
        started = clock.now()
        budget = RetryBudget(options.retry)
        waited = 0.0
        calls = 0
        holder: list[State] = []
        with rate_limit_scope(key):
            while True:
                waited += await cooldowns.wait(key, clock)
                calls += 1
                holder.clear()
                try:
                    value = task()
                    if inspect.isawaitable(value):
                        value = await value
                    value = await self._settle(value, task, key, budget, holder)
                except L0Error as error:
                    # A session gave up after its own retries: retrying here would multiply them.
                    return TaskOutcome(
                        index,
                        "failed",
                        error=error,
                        state=holder[0] if holder else None,
                        calls=calls,
                        waited=waited,
                        duration=clock.now() - started,
                    )
                except Exception as error:
                    classification = classify_error(error)
                    cooldowns.note_failure(
                        key, classification, clock, options.retry.retry_after_cap
                    )
                    decision = budget.decide(classification, error, has_next_target=False)
                    if decision.action is Action.RETRY:
                        await clock.sleep(decision.delay)
                        continue
                    return TaskOutcome(
                        index,
                        "failed",
                        error=error,
                        calls=calls,
                        waited=waited,
                        duration=clock.now() - started,
                    )
                return TaskOutcome(
                    index,
                    "succeeded",
                    value=value,
                    state=holder[0] if holder else None,
                    calls=calls,
                    waited=waited,
                    duration=clock.now() - started,
                )

    async def _settle(
        self, value: Any, task: Task, key: str | None, budget: RetryBudget, holder: list[State]
    ) -> Any:
        """Turn what a task returned into its value (reading sessions and streams)."""
        if isinstance(value, (Result, RaceResult)):
            holder.append(value.state)
            return await value.read()
        if not _is_stream(value):
            return value
        options = self.options
        # The pre-stream retries already spent count against the session's budget.
        left = max(0, options.retry.max_retries - budget.session_retries)
        # The session gets no rate-limit key: its first attempt reads a stream that is already
        # open (holding it back for a cooldown would only keep a connection idle), and
        # _Recall gates every later attempt itself.
        with rate_limit_scope(None):
            result = await run(
                stream=_Recall(value, task, key, options),
                guardrails=options.guardrails,
                retry=dataclasses.replace(options.retry, max_retries=left),
                timeout=options.timeout,
                on_event=options.on_event,
                meta=dict(options.meta),
                clock=options.clock,
            )
        holder.append(result.state)
        return await result.read()


# --- many tasks under a limit --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Job:
    index: int
    task: Task
    key: str | None


def _cancelled(index: int) -> TaskOutcome:
    return TaskOutcome(index, "cancelled", error=asyncio.CancelledError())


def call_progress(on_progress: Callable[[Progress], Any] | None, progress: Progress) -> None:
    if on_progress is None:
        return
    try:
        on_progress(progress)
    except Exception:
        # Like an event sink: a broken progress bar must not fail the work it reports on.
        _log.exception("l0: on_progress callback %r raised", on_progress)


async def run_all(
    runner: TaskRunner,
    jobs: Sequence[Job],
    *,
    limit: int | None,
    batched: bool = False,
    fail_fast: bool = False,
    on_progress: Callable[[Progress], Any] | None = None,
    spawn: Callable[[Job], asyncio.Task[TaskOutcome]],
) -> tuple[list[TaskOutcome], TaskOutcome | None]:
    """Run ``jobs`` with at most ``limit`` in flight (``batched``: start the next ``limit``
    only when the previous ones have all ended). Returns the outcomes in input order and,
    with ``fail_fast``, the failure that stopped the run.

    ``spawn`` creates each job's task (so the caller decides its OTel context).
    """
    total = len(jobs)
    window = limit or max(total, 1)
    outcomes: list[TaskOutcome | None] = [None] * total
    position = {job.index: n for n, job in enumerate(jobs)}
    waiting = deque(jobs)
    running: dict[asyncio.Task[TaskOutcome], Job] = {}
    succeeded = failed = 0
    stopped_by: TaskOutcome | None = None
    try:
        while waiting or running:
            if not (batched and running):
                while waiting and len(running) < window:
                    job = waiting.popleft()
                    running[spawn(job)] = job
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            # In input order, so progress callbacks and fail-fast are deterministic.
            for finished in sorted(done, key=lambda t: running[t].index):
                job = running.pop(finished)
                outcome = _cancelled(job.index) if finished.cancelled() else finished.result()
                outcomes[position[job.index]] = outcome
                if outcome.ok:
                    succeeded += 1
                elif outcome.status == "failed":
                    failed += 1
                call_progress(
                    on_progress,
                    Progress(total, succeeded + failed, succeeded, failed, len(running), outcome),
                )
                if fail_fast and outcome.status == "failed":
                    stopped_by = outcome
                    break
            if stopped_by is not None:
                break
    finally:
        if running:
            for t in running:
                t.cancel()
            await settle(list(running))
            for t, job in running.items():
                if t.cancelled() or t.exception() is not None:
                    outcomes[position[job.index]] = _cancelled(job.index)
                else:
                    outcomes[position[job.index]] = t.result()
    for job in waiting:
        outcomes[position[job.index]] = _cancelled(job.index)
    final = [o if o is not None else _cancelled(jobs[n].index) for n, o in enumerate(outcomes)]
    return final, stopped_by
