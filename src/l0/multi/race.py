"""``l0.race``: start every candidate at once; the first to produce valid output wins.

Each candidate is a full l0 session (its own retries, timeouts and guardrails). One task per
candidate reads its events into a buffer until the first token or tool call that passed the
guardrails (or, with ``until="complete"``, until it completes validly). The winner is decided by
*when the streams produced that output* on the race's clock — not by which coroutine happens to
be scheduled first — and ties at the same instant go to the lower index. The losers are
stopped at once (their streams closed, their spans ended ``cancelled``) and the caller streams
the winner's events from its very first one.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

from l0.adapters.base import Adapter
from l0.config import ConfigError, Retry, Timeout
from l0.errors import L0Error
from l0.guardrails.base import GuardrailRule
from l0.multi._aio import settle
from l0.multi._operation import Operation, check_common
from l0.multi.cooldown import rate_limit_scope
from l0.observability.bus import Sink
from l0.observability.events import ObservabilityEventType as T
from l0.observability.phase import Outcome, PhaseKind
from l0.runtime.api import run
from l0.runtime.clock import Clock
from l0.runtime.fallback import StreamFactory
from l0.runtime.session import Result
from l0.types import ErrorCategory, ErrorCode, ErrorRecord, Event, EventType, State

__all__ = ["Candidate", "RaceError", "RaceResult", "RaceState", "Until", "race"]

Until = Literal["first_token", "complete"]

_OUTPUT = (EventType.TOKEN, EventType.TOOL_CALL_DELTA, EventType.TOOL_CALL)
# Keeps close tasks started from __del__ alive until they finish.
_closing: set[asyncio.Task[None]] = set()


@dataclass(slots=True, eq=False)
class RaceState(State):
    """The :class:`l0.State` of a race candidate, plus which candidate won.

    Attributes:
        winner_index: the index of the winning candidate (the same on every candidate's
            state); ``None`` until the race is decided.
    """

    winner_index: int | None = None


@dataclass(frozen=True, slots=True)
class Candidate:
    """How one candidate of a race ended.

    Attributes:
        index: its position in the list given to :func:`race`.
        outcome: ``"won"``; ``"lost"`` (stopped when another won); or ``"failed"`` (its
            session gave up before the race was decided).
        stream_id: its session's id (the ``l0.stream.id`` of its span).
        state: its session's state (the winner's keeps filling while you read it).
        error: why it failed (``outcome == "failed"``).
        decided_after: seconds from the race's start to its first valid output (or its
            completion, with ``until="complete"``); ``None`` if it never got there.
    """

    index: int
    outcome: Literal["won", "lost", "failed"]
    stream_id: str
    state: RaceState
    error: L0Error | None = None
    decided_after: float | None = None


class RaceError(L0Error):
    """Every candidate of a race failed.

    Attributes:
        failures: each candidate's :class:`l0.L0Error`, by candidate index.
        errors: every failed attempt of every candidate, candidate by candidate.
    """

    def __init__(self, failures: Sequence[L0Error]) -> None:
        categories = Counter(f.category for f in failures)
        # The most common category, the first candidate's on ties: deterministic.
        category = max(failures, key=lambda f: categories[f.category]).category
        details = "; ".join(f"[{i}] {f.code.value}: {f.message}" for i, f in enumerate(failures))
        records: list[ErrorRecord] = [r for f in failures for r in f.errors]
        super().__init__(
            f"all {len(failures)} race candidates failed: {details}",
            code=ErrorCode.ALL_ATTEMPTS_EXHAUSTED,
            category=category,
            errors=records,
        )
        self.failures = tuple(failures)


class _Contender:
    """One candidate while the race is undecided."""

    __slots__ = ("buffer", "decided_at", "error", "index", "result", "task")

    def __init__(self, index: int, result: Result) -> None:
        self.index = index
        self.result = result
        self.buffer: deque[Event] = deque()
        self.decided_at: float | None = None
        self.error: L0Error | None = None
        self.task: asyncio.Task[None] | None = None


async def _pull(contender: _Contender, until: Until, clock: Clock) -> None:
    """Read a candidate's events until it qualifies (or fails)."""
    result = contender.result
    buffer = contender.buffer
    try:
        while True:
            event = await result.__anext__()
            etype = event.type
            if etype is EventType.RESET:
                # A failed attempt's output the caller will never see: start over.
                buffer.clear()
                continue
            buffer.append(event)
            if etype is EventType.COMPLETE or (until == "first_token" and etype in _OUTPUT):
                contender.decided_at = clock.now()
                return
    except StopAsyncIteration:
        contender.error = L0Error(
            "the stream ended without output",
            code=ErrorCode.INTERNAL_ERROR,
            category=ErrorCategory.INTERNAL,
        )
    except L0Error as error:
        contender.error = error
    except Exception as error:  # not raised by a session today; typed all the same
        wrapped = L0Error(
            str(error), code=ErrorCode.INTERNAL_ERROR, category=ErrorCategory.INTERNAL
        )
        wrapped.__cause__ = error
        contender.error = wrapped


async def _next_instant(clock: Clock) -> None:
    """Return once everything due at the clock's current instant has run.

    With a FakeClock this is a timer at ``now``: it fires after every timer already due at
    ``now``, so candidates whose output lands at the same virtual instant all get to record
    it. With the system clock it is one turn of the event loop.
    """
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def wake() -> None:
        if not future.done():
            future.set_result(None)

    handle = clock.call_later(0, wake)
    try:
        await future
    finally:
        handle.cancel()


def _adopt_state(result: Result) -> RaceState:
    # The session has not started, so nothing holds its first State yet: give it a RaceState
    # (a State subclass) so `winner_index` lives on the live state the caller reads.
    state = RaceState()
    result._session.state = state
    return state


async def race(
    factories: Sequence[StreamFactory],
    *,
    until: Until = "first_token",
    guardrails: Sequence[GuardrailRule] | None = None,
    retry: Retry | None = None,
    timeout: Timeout | None = None,
    on_event: Sink | None = None,
    meta: dict[str, Any] | None = None,
    adapter: Adapter | str | None = None,
    clock: Clock | None = None,
) -> RaceResult:
    """Run every factory at once as an l0 session; the fastest *valid* stream wins.

    Returns once the race is decided: the winner is the first candidate to deliver a token or
    tool call that passed the streaming guardrails (``until="first_token"``), or the first to
    complete with every guardrail passed (``until="complete"``). Candidates whose output lands
    at the same instant of the clock are tied; the lower index wins. The others are stopped at
    once: their streams closed, their spans ended with outcome ``cancelled``.

    Args:
        factories: stream factories, as ``l0.run(stream=...)`` takes them.
        until: what a candidate must do to win (see above).
        guardrails, retry, timeout, adapter: each candidate's session options.
        on_event: receives the race's events (``RACE_START``, ``RACE_WINNER``, ``RACE_END``)
            and every candidate session's.
        meta: attached to every event and span of the race and its sessions.
        clock: the time source (inject ``l0.testing.FakeClock`` in tests).

    Returns:
        a :class:`RaceResult`: iterate it for the winner's events from the first one, or
        ``await result.read()``; ``result.state.winner_index`` says who won.

    Raises:
        RaceError: every candidate failed (``failures`` holds each one's error).
        l0.ConfigError: an option is invalid.

    Example::

        result = await l0.race([
            lambda: client.chat.completions.create(model="gpt-4o", messages=m, stream=True),
            lambda: client.chat.completions.create(model="gpt-4o-mini", messages=m, stream=True),
        ])
        text = await result.read()
        print(result.state.winner_index)
    """
    if isinstance(factories, (str, bytes)) or not isinstance(factories, Sequence):
        raise ConfigError("race", "factories", "must be a list of stream factories", factories)
    if not factories:
        raise ConfigError("race", "factories", "needs at least one factory", factories)
    if until not in ("first_token", "complete"):
        raise ConfigError("race", "until", 'must be "first_token" or "complete"', until)
    meta_map, the_clock = check_common("race", on_event, meta, clock)

    op = Operation(
        PhaseKind.RACE,
        start_type=T.RACE_START,
        end_type=T.RACE_END,
        on_event=on_event,
        meta=meta_map,
        clock=the_clock,
        attributes={"l0.race.candidates": len(factories), "l0.race.until": until},
        start_data={"candidates": len(factories), "until": until},
    )
    contenders: list[_Contender] = []
    try:
        # Created with the race span current, so every session is its child; and with no
        # rate-limit key inherited from an enclosing task: candidates go to different targets
        # (wrap a factory with rate_limited() to give it one).
        with op.activate(), rate_limit_scope(None):
            for index, factory in enumerate(factories):
                result = await run(
                    stream=factory,
                    guardrails=guardrails,
                    retry=retry,
                    timeout=timeout,
                    on_event=on_event,
                    meta=dict(meta_map),
                    adapter=adapter,
                    clock=the_clock,
                )
                _adopt_state(result)
                contenders.append(_Contender(index, result))
        for contender in contenders:
            contender.task = asyncio.create_task(
                _pull(contender, until, the_clock), name=f"l0.race[{contender.index}]"
            )
        winner = await _decide(contenders, the_clock)
        if winner is not None:
            _announce(op, contenders, winner, until)
        await _stop(contenders, keep=winner)
    except BaseException as error:
        # Cancelled (or a bad option) before the winner was handed over: stop everyone.
        await _stop(contenders, keep=None)
        if isinstance(error, ConfigError):
            op.end(Outcome.ERROR, error_type="ConfigError", description=str(error))
        else:
            op.end(Outcome.CANCELLED)
        raise

    candidates = _candidates(contenders, winner, op)
    if winner is None:
        failures = [c.error for c in contenders if c.error is not None]
        all_failed = RaceError(failures)
        op.end(
            Outcome.ERROR,
            error_type=all_failed.code.value,
            description=all_failed.message[:200],
            data={"winner_index": None, "failed": len(failures)},
        )
        raise all_failed

    return RaceResult(_RaceCore(op, winner.result, winner.buffer, winner.index, candidates))


def _announce(
    op: Operation, contenders: list[_Contender], winner: _Contender, until: Until
) -> None:
    for contender in contenders:
        state = contender.result.state
        assert isinstance(state, RaceState)
        state.winner_index = winner.index
    decided_after = (winner.decided_at or op.started_at) - op.started_at
    op.phase.set_many(
        {
            "l0.race.winner_index": winner.index,
            "l0.race.winner_stream_id": winner.result.stream_id,
            "l0.race.decided_after": decided_after,
        }
    )
    op.emit(
        T.RACE_WINNER,
        {
            "winner_index": winner.index,
            "stream_id": winner.result.stream_id,
            "decided_after": decided_after,
            "until": until,
            "failed": sum(1 for c in contenders if c.error is not None),
        },
    )


async def _decide(contenders: list[_Contender], clock: Clock) -> _Contender | None:
    """Wait for the first candidate to qualify; the winner is the earliest on the clock."""
    pending: set[asyncio.Task[None]] = {c.task for c in contenders if c.task is not None}
    while pending:
        _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if any(c.decided_at is not None for c in contenders):
            await _next_instant(clock)
            break
    qualified = [c for c in contenders if c.decided_at is not None]
    if not qualified:
        return None
    return min(qualified, key=lambda c: (c.decided_at, c.index))


async def _stop(contenders: list[_Contender], keep: _Contender | None) -> None:
    """Stop every candidate but ``keep``: cancel its reader, close its session (and stream)."""
    losers = [c for c in contenders if c is not keep]
    for contender in losers:
        if contender.error is None:
            contender.result.abort()
        if contender.task is not None:
            contender.task.cancel()
    try:
        await settle([c.task for c in losers if c.task is not None])
    finally:
        for contender in losers:
            try:
                await contender.result.aclose()
            except Exception:  # a session that already failed has nothing left to close
                pass


def _candidates(
    contenders: list[_Contender], winner: _Contender | None, op: Operation
) -> tuple[Candidate, ...]:
    out: list[Candidate] = []
    for c in contenders:
        outcome: Literal["won", "lost", "failed"]
        if c is winner:
            outcome = "won"
        elif c.error is not None:
            outcome = "failed"
        else:
            outcome = "lost"
        state = c.result.state
        assert isinstance(state, RaceState)
        after = c.decided_at - op.started_at if c.decided_at is not None else None
        out.append(Candidate(c.index, outcome, c.result.stream_id, state, c.error, after))
        op.phase.add_event(
            "l0.race.candidate",
            {
                "l0.race.candidate.index": c.index,
                "l0.race.candidate.outcome": outcome,
                "l0.stream.id": c.result.stream_id,
                **({"l0.error.code": c.error.code.value} if c.error is not None else {}),
            },
        )
    return tuple(out)


class _RaceCore:
    """Everything a :class:`RaceResult` holds; the GC finalizer may reference it."""

    __slots__ = ("aborted", "buffer", "candidates", "iterated", "op", "winner", "winner_index")

    def __init__(
        self,
        op: Operation,
        winner: Result,
        buffer: deque[Event],
        winner_index: int,
        candidates: tuple[Candidate, ...],
    ) -> None:
        self.op = op
        self.winner = winner
        self.buffer = buffer
        self.winner_index = winner_index
        self.candidates = candidates
        self.iterated = False
        self.aborted = False

    def end(self, outcome: Outcome, error: L0Error | None = None) -> None:
        op = self.op
        if op.ended:
            return
        data = {"winner_index": self.winner_index}
        if error is not None:
            op.end(
                outcome,
                error_type=error.code.value,
                description=error.message[:200],
                data=data,
            )
        else:
            op.end(outcome, data=data)

    async def next(self) -> Event:
        self.iterated = True
        if self.aborted:
            self.buffer.clear()
        if self.buffer:
            event = self.buffer.popleft()
        else:
            try:
                event = await self.winner.__anext__()
            except StopAsyncIteration:
                state = self.winner.state
                self.end(Outcome.COMPLETED if state.completed else Outcome.CANCELLED)
                raise
            except L0Error as error:
                self.end(Outcome.ERROR, error)
                raise
            except BaseException:
                self.end(Outcome.CANCELLED)
                raise
        if event.type is EventType.COMPLETE:
            self.end(Outcome.COMPLETED)
        elif event.type is EventType.ERROR:
            failure = event.error if isinstance(event.error, L0Error) else None
            self.end(Outcome.ERROR, failure)
        return event

    async def close(self) -> None:
        self.buffer.clear()
        try:
            await self.winner.aclose()
        finally:
            self.end(Outcome.COMPLETED if self.winner.state.completed else Outcome.CANCELLED)


def _finalize(core: _RaceCore) -> None:
    # weakref.finalize callback for a race result dropped without being closed.
    core.end(Outcome.CANCELLED if core.iterated else Outcome.ABANDONED)


class _RaceIteration:
    """The iterator ``async for`` gets: leaving the loop early closes the winner's session."""

    __slots__ = ("__weakref__", "_core")

    def __init__(self, core: _RaceCore) -> None:
        self._core = core

    def __aiter__(self) -> _RaceIteration:
        return self

    def __anext__(self) -> Any:
        return self._core.next()

    def __del__(self) -> None:
        core = self._core
        if core.op.ended:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            core.end(Outcome.CANCELLED)
            return
        task = loop.create_task(core.close())
        _closing.add(task)
        task.add_done_callback(_closing.discard)


class RaceResult:
    """The winner of a race, read like an :class:`l0.Result`: ``async for`` yields its events
    from the first one (the ones read while deciding are replayed), ``read()`` returns its
    text, ``state`` is its :class:`RaceState` (``state.winner_index``).

    The race's span (``l0.race``) ends with the winner's stream: ``completed``, ``error``,
    or ``cancelled`` when you stop early.
    """

    __slots__ = ("__weakref__", "_core", "_finalizer")

    def __init__(self, core: _RaceCore) -> None:
        self._core = core
        self._finalizer = weakref.finalize(self, _finalize, core)

    @property
    def state(self) -> RaceState:
        """The winner's live state (with ``winner_index``)."""
        state = self._core.winner.state
        assert isinstance(state, RaceState)
        return state

    @property
    def winner_index(self) -> int:
        """The index of the winning factory."""
        return self._core.winner_index

    @property
    def candidates(self) -> tuple[Candidate, ...]:
        """How every candidate ended, by index."""
        return self._core.candidates

    @property
    def stream_id(self) -> str:
        """The winner's session id."""
        return self._core.winner.stream_id

    @property
    def race_id(self) -> str:
        """The race's own id (the ``stream_id`` of its RACE_* events)."""
        return self._core.op.id

    def __aiter__(self) -> _RaceIteration:
        self._core.iterated = True
        return _RaceIteration(self._core)

    async def __anext__(self) -> Event:
        return await self._core.next()

    async def read(self) -> str:
        """Consume the winner's stream and return its text (raises :class:`l0.L0Error`)."""
        core = self._core
        while True:
            try:
                await core.next()
            except StopAsyncIteration:
                break
        state = core.winner.state
        if state.error is not None:
            raise state.error
        return state.content

    def abort(self) -> None:
        """Stop the winner's session now; iteration ends (outcome ``cancelled``)."""
        self._core.aborted = True
        self._core.winner.abort()

    async def aclose(self) -> None:
        """Close the winner's session and end the race's span (idempotent)."""
        await self._core.close()

    async def __aenter__(self) -> RaceResult:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
