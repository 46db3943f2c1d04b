"""``l0.parallel`` and ``l0.batched``: fan out many tasks, collect every outcome in order.

One ``l0.parallel`` span covers the call; every task runs in its own asyncio task with that
span current, so the sessions it starts (and the caller's own spans inside it) are its children.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

from l0.config import ConfigError, Retry, Timeout
from l0.errors import L0Error, classify_error
from l0.guardrails.base import GuardrailRule
from l0.multi._operation import Operation, check_common
from l0.multi._tasks import (
    Job,
    Progress,
    RunOptions,
    Task,
    TaskOutcome,
    TaskRunner,
    check_keys,
    check_limit,
    check_retry,
    check_tasks,
    run_all,
)
from l0.observability.bus import Sink
from l0.observability.events import ObservabilityEventType as T
from l0.observability.phase import Outcome, PhaseKind
from l0.runtime.clock import Clock
from l0.types import ErrorRecord

__all__ = ["ParallelError", "ParallelResult", "batched", "parallel"]


@dataclass(frozen=True, slots=True)
class ParallelResult:
    """Every task's outcome, in input order.

    Iterating (and indexing) gives :class:`TaskOutcome` objects; ``values`` gives the values.

    Attributes:
        outcomes: one :class:`TaskOutcome` per task, in input order.
        duration: seconds the whole call took.

    Example::

        results = await l0.parallel(tasks, concurrency=4)
        for outcome in results:
            print(outcome.index, outcome.value if outcome.ok else outcome.error)
    """

    outcomes: tuple[TaskOutcome, ...]
    duration: float

    @property
    def values(self) -> list[Any]:
        """Each task's value in input order (``None`` where it did not succeed)."""
        return [o.value if o.ok else None for o in self.outcomes]

    @property
    def errors(self) -> list[BaseException | None]:
        """Each task's error in input order (``None`` where it succeeded)."""
        return [o.error for o in self.outcomes]

    @property
    def failures(self) -> tuple[TaskOutcome, ...]:
        """The outcomes of the tasks that failed or were cancelled."""
        return tuple(o for o in self.outcomes if not o.ok)

    @property
    def succeeded(self) -> int:
        return sum(1 for o in self.outcomes if o.ok)

    @property
    def failed(self) -> int:
        return sum(1 for o in self.outcomes if o.status == "failed")

    @property
    def ok(self) -> bool:
        """Every task succeeded."""
        return all(o.ok for o in self.outcomes)

    def __len__(self) -> int:
        return len(self.outcomes)

    @overload
    def __getitem__(self, index: int) -> TaskOutcome: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[TaskOutcome, ...]: ...

    def __getitem__(self, index: int | slice) -> TaskOutcome | tuple[TaskOutcome, ...]:
        return self.outcomes[index]

    def __iter__(self) -> Iterator[TaskOutcome]:
        return iter(self.outcomes)


class ParallelError(L0Error):
    """A task failed and ``fail_fast`` stopped the rest.

    Attributes:
        index: the failed task's index.
        error: its exception (also the ``__cause__``).
        result: every outcome at the moment of stopping (the others ``cancelled``).
    """

    def __init__(self, outcome: TaskOutcome, result: ParallelResult) -> None:
        error = outcome.error
        assert error is not None
        if isinstance(error, L0Error):
            code, category, records = error.code, error.category, error.errors
            status = error.status_code
        else:
            c = classify_error(error)
            code, category, status = c.code, c.category, c.status_code
            records = [
                ErrorRecord(
                    category=c.category,
                    code=c.code,
                    message=str(error)[:500] or type(error).__name__,
                    attempt=outcome.calls,
                    fallback_index=0,
                    status_code=c.status_code,
                    error_type=c.error_type,
                )
            ]
        super().__init__(
            f"task {outcome.index} failed ({code.value}): {error}",
            code=code,
            category=category,
            errors=records,
            status_code=status,
        )
        self.__cause__ = error
        self.index = outcome.index
        self.error = error
        self.result = result


def make_options(
    owner: str,
    retry: Retry | None,
    guardrails: Sequence[GuardrailRule] | None,
    timeout: Timeout | None,
    on_event: Sink | None,
    meta: Any,
    clock: Clock | None,
) -> RunOptions:
    """Validate the options tasks run with (raising :class:`l0.ConfigError`)."""
    meta_map, the_clock = check_common(owner, on_event, meta, clock)
    if timeout is not None and not isinstance(timeout, Timeout):
        raise ConfigError(owner, "timeout", "must be an l0.Timeout", timeout)
    return RunOptions(
        retry=check_retry(owner, retry),
        guardrails=guardrails,
        timeout=timeout,
        on_event=on_event,
        meta=meta_map,
        clock=the_clock,
    )


async def run_operation(
    op: Operation,
    options: RunOptions,
    jobs: list[Job],
    *,
    limit: int | None,
    batched: bool,
    fail_fast: bool,
    on_progress: Callable[[Progress], Any] | None,
) -> tuple[ParallelResult, TaskOutcome | None]:
    """Run jobs under ``op``'s span; ends the span on cancellation (the caller ends it
    otherwise, knowing what the outcomes mean)."""
    runner = TaskRunner(options)

    def spawn(job: Job) -> asyncio.Task[TaskOutcome]:
        # The task copies the current context: with the operation's span current, everything
        # the task starts is the operation's child.
        with op.activate():
            return asyncio.create_task(
                runner.run(job.index, job.task, job.key), name=f"l0.multi[{job.index}]"
            )

    try:
        outcomes, stopped_by = await run_all(
            runner,
            jobs,
            limit=limit,
            batched=batched,
            fail_fast=fail_fast,
            on_progress=on_progress,
            spawn=spawn,
        )
    except BaseException:
        op.end(Outcome.CANCELLED)
        raise
    return ParallelResult(tuple(outcomes), op.elapsed()), stopped_by


async def _run_jobs(
    jobs: list[Job],
    options: RunOptions,
    on_event: Sink | None,
    *,
    limit: int | None,
    batched: bool,
    fail_fast: bool,
    on_progress: Callable[[Progress], Any] | None,
    shape: dict[str, int | None],
) -> ParallelResult:
    """The ``l0.parallel`` operation both entry points run (``shape``: its concurrency or
    batch size, for the span and the start event)."""
    op = Operation(
        PhaseKind.PARALLEL,
        start_type=T.PARALLEL_START,
        end_type=T.PARALLEL_END,
        on_event=on_event,
        meta=options.meta,
        clock=options.clock,
        attributes={
            "l0.parallel.tasks": len(jobs),
            **{f"l0.parallel.{key}": value for key, value in shape.items()},
        },
        start_data={"tasks": len(jobs), **shape, "fail_fast": fail_fast},
    )
    result, stopped_by = await run_operation(
        op,
        options,
        jobs,
        limit=limit,
        batched=batched,
        fail_fast=fail_fast,
        on_progress=on_progress,
    )
    _finish(op, result, stopped_by)
    return result


def _finish(op: Operation, result: ParallelResult, stopped_by: TaskOutcome | None) -> None:
    cancelled = sum(1 for o in result.outcomes if o.status == "cancelled")
    data = {"succeeded": result.succeeded, "failed": result.failed, "cancelled": cancelled}
    attributes = {f"l0.parallel.{k}": v for k, v in data.items()}
    if stopped_by is not None:
        error = ParallelError(stopped_by, result)
        op.end(
            Outcome.ERROR,
            error_type=error.code.value,
            description=error.message[:200],
            attributes=attributes,
            data=data,
        )
        raise error
    # Failed tasks are reported, not raised: the call itself completed.
    op.end(Outcome.COMPLETED, attributes=attributes, data=data)


async def parallel(
    tasks: Iterable[Task],
    *,
    concurrency: int | None = None,
    fail_fast: bool = False,
    on_progress: Callable[[Progress], Any] | None = None,
    rate_limit_key: str | Sequence[str | None] | None = None,
    retry: Retry | None = None,
    guardrails: Sequence[GuardrailRule] | None = None,
    timeout: Timeout | None = None,
    on_event: Sink | None = None,
    meta: dict[str, Any] | None = None,
    clock: Clock | None = None,
) -> ParallelResult:
    """Run tasks concurrently, at most ``concurrency`` at a time; outcomes in input order.

    A task is a zero-argument callable. If it returns an :class:`l0.Result` (e.g.
    ``lambda: l0.run(stream=...)``) the session is read to its text; if it returns a stream
    (e.g. ``lambda: client.chat.completions.create(..., stream=True)``) the stream is read
    through an l0 session with ``guardrails``/``timeout``/``retry``; anything else is the
    task's value. A task that raises is retried per ``retry`` when the failure is transient
    (network, 429, 5xx); a session that gave up (:class:`l0.L0Error`) is not retried again.

    Args:
        tasks: the callables.
        concurrency: the most tasks in flight at once (``None``: all).
        fail_fast: on the first failure, cancel the rest and raise :class:`ParallelError`;
            otherwise failures are collected in the result.
        on_progress: called with a :class:`Progress` after each task ends.
        rate_limit_key: the target the tasks go to (one key, or one per task): a 429 with
            ``Retry-After`` on one task makes the others with the same key wait it out.
        retry: task-level retries, and the retry policy of sessions built for streams.
        guardrails, timeout: options of the sessions built for tasks that return streams.
        on_event: receives ``PARALLEL_START``/``PARALLEL_END`` and the events of sessions
            built here.
        meta: attached to the span and events.
        clock: the time source (inject ``l0.testing.FakeClock`` in tests).

    Returns:
        a :class:`ParallelResult`.

    Raises:
        ParallelError: with ``fail_fast``, the first failure.
        l0.ConfigError: an option is invalid.

    Cancelling the call cancels every task in flight and waits until they have all ended.

    Example::

        results = await l0.parallel(
            [lambda p=p: l0.run(stream=lambda: ask(p)) for p in prompts], concurrency=4
        )
        print(results.values)
    """
    task_list = check_tasks("parallel", "tasks", tasks)
    limit = check_limit("parallel", "concurrency", concurrency, optional=True)
    keys = check_keys("parallel", rate_limit_key, len(task_list))
    options = make_options("parallel", retry, guardrails, timeout, on_event, meta, clock)
    jobs = [Job(i, task, keys[i]) for i, task in enumerate(task_list)]
    return await _run_jobs(
        jobs,
        options,
        on_event,
        limit=limit,
        batched=False,
        fail_fast=bool(fail_fast),
        on_progress=on_progress,
        shape={"concurrency": limit},
    )


async def batched(
    items: Iterable[Any],
    handler: Callable[[Any], Any],
    *,
    batch_size: int,
    fail_fast: bool = False,
    on_progress: Callable[[Progress], Any] | None = None,
    rate_limit_key: str | Sequence[str | None] | None = None,
    retry: Retry | None = None,
    guardrails: Sequence[GuardrailRule] | None = None,
    timeout: Timeout | None = None,
    on_event: Sink | None = None,
    meta: dict[str, Any] | None = None,
    clock: Clock | None = None,
) -> ParallelResult:
    """Call ``handler(item)`` for every item, ``batch_size`` items at a time: a batch starts
    when the previous one has ended. Outcomes in item order.

    For a sliding window (a new task as soon as one ends) use :func:`parallel` with
    ``concurrency``. ``handler`` returns what a :func:`parallel` task returns; the other
    options are :func:`parallel`'s. The span is ``l0.parallel`` with ``l0.parallel.batch_size``.

    Example::

        async def summarize(doc: str) -> str:
            return await (await l0.run(stream=lambda: ask(doc))).read()

        results = await l0.batched(items=docs, handler=summarize, batch_size=2)
    """
    if not callable(handler):
        raise ConfigError("batched", "handler", "must be callable", handler)
    if isinstance(items, (str, bytes)):
        raise ConfigError("batched", "items", "must be an iterable of items, not a string", items)
    item_list = list(items)
    size = check_limit("batched", "batch_size", batch_size, optional=False)
    keys = check_keys("batched", rate_limit_key, len(item_list))
    options = make_options("batched", retry, guardrails, timeout, on_event, meta, clock)
    jobs = [Job(i, _bind(handler, item), keys[i]) for i, item in enumerate(item_list)]
    return await _run_jobs(
        jobs,
        options,
        on_event,
        limit=size,
        batched=True,
        fail_fast=bool(fail_fast),
        on_progress=on_progress,
        shape={"batch_size": size},
    )


def _bind(handler: Callable[[Any], Any], item: Any) -> Task:
    def task() -> Any:
        return handler(item)

    return task
