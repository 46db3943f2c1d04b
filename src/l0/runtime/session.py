"""A session: one call of ``l0.run``/``l0.wrap``, from the first attempt to the final event.

The session walks its targets (primary, then fallbacks); on each it makes attempts until one
succeeds or the retry budget sends it on. Everything the consumer sees flows through one async
generator, so there is no producer task and no queue per chunk. The phases (spans) of the
session live across its ``yield``s and are ended on every exit path.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import math
import sys
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from types import MappingProxyType, TracebackType
from typing import Any

from l0._classify import classify
from l0.adapters._close import close_stream
from l0.adapters.base import Adapter, Adapters, Decoder, open_decoder
from l0.config import ConfigError, Retry, Timeout
from l0.errors import (
    Classification,
    GuardrailError,
    InitialTokenTimeout,
    InterTokenTimeout,
    L0Error,
    ZeroOutputError,
)
from l0.guardrails.base import GuardrailViolation
from l0.guardrails.engine import GuardrailEngine, GuardrailRun
from l0.observability import content as content_capture
from l0.observability import semconv as sc
from l0.observability.bus import Bus, Sink
from l0.observability.events import ObservabilityEventType as T
from l0.observability.ids import new_id
from l0.observability.phase import Outcome, Phase, PhaseKind, current_context
from l0.runtime import cooldown
from l0.runtime.checkpoint import OverlapTrimmer
from l0.runtime.clock import SYSTEM_CLOCK, Clock
from l0.runtime.fallback import Target
from l0.runtime.retry import Action, Decision, RetryBudget
from l0.runtime.timeouts import Watchdog, task_getter
from l0.types import (
    AttemptContext,
    AttemptReason,
    ErrorCategory,
    ErrorCode,
    ErrorRecord,
    Event,
    EventType,
    State,
    ToolCall,
    Usage,
)

__all__ = ["Result", "Session"]

_TOKEN = EventType.TOKEN
_TOOL_CALL = EventType.TOOL_CALL
_TOOL_CALL_DELTA = EventType.TOOL_CALL_DELTA
_COMPLETE = EventType.COMPLETE
_ERROR = EventType.ERROR
_NETWORK_KINDS = (ErrorCategory.NETWORK, ErrorCategory.TRANSIENT)
_PRIMITIVES = (str, bool, int, float)
# The defaults are frozen: one instance serves every session (validation costs ~2 µs).
_DEFAULT_RETRY = Retry()
_DEFAULT_TIMEOUT = Timeout()
# Shared by every session without meta (read-only).
_NO_META: Mapping[str, Any] = MappingProxyType({})


class _AttemptFailed(Exception):
    """Internal: one attempt failed; carries the classified cause."""

    def __init__(self, error: BaseException, classification: Classification) -> None:
        super().__init__(str(error))
        self.error = error
        self.classification = classification


class _Aborted(Exception):
    """Internal: the consumer called ``abort()`` while the session was waiting."""


class _Decoded:
    """Internal: events already decoded for a chunk slot (a failure of the stream or of the
    decoder), handed through the session's loop where a chunk would be."""

    __slots__ = ("events",)

    def __init__(self, events: Sequence[Event]) -> None:
        self.events = events


# Internal: the chunk slot's value once the provider's iterator is exhausted.
_END: Any = object()


class Session:
    """The state machine behind a :class:`Result`. Not constructed directly: use ``l0.run``."""

    def __init__(
        self,
        targets: Sequence[Target],
        *,
        guardrails: GuardrailEngine,
        retry: Retry,
        timeout: Timeout,
        on_event: Sink | None,
        meta: Mapping[str, Any],
        continue_from_checkpoint: bool,
        adapter: Adapter | None,
        clock: Clock,
        sinks: tuple[Sink, ...] = (),
        retry_after_output: bool = True,
    ) -> None:
        self.targets = list(targets)
        self.guardrails = guardrails
        self.retry = retry
        self.timeout = timeout
        self.continuation = continue_from_checkpoint
        self.retry_after_output = retry_after_output
        self.adapter = adapter
        self.clock = clock
        self.stream_id = new_id()
        self.meta = MappingProxyType(dict(meta)) if meta else _NO_META
        self.state = State()
        self.bus = Bus(self.stream_id, self.meta, clock, on_event, sinks)
        # A session started inside a parallel/pool task shares that task's rate-limit key.
        self.rate_limit_key = cooldown.current_rate_limit_key()
        self.budget = RetryBudget(retry)
        self.watchdog = Watchdog(clock)
        self.started_at = clock.now()
        self.abort_requested = False
        self.iterated = False
        self.finished = False
        attributes: dict[str, Any] | None = None
        if self.bus.observed:
            attributes = {sc.L0_STREAM_ID: self.stream_id}
            for key, value in self.meta.items():
                if isinstance(value, _PRIMITIVES):
                    attributes[f"{sc.L0_META_PREFIX}{key}"] = value
        # The backoff waited before the next attempt (its span's `l0.backoff.seconds`).
        self.backoff = 0.0
        self.phase = Phase(
            PhaseKind.SESSION,
            self.bus,
            parent_context=current_context(),
            attributes=attributes,
            start_data={"targets": len(self.targets), "continuation": self.continuation}
            if self.bus.sinks
            else None,
        )
        self._open: list[Phase] = [self.phase]
        # The event generator. Until an ``async for`` takes it (hand_out) the session owns it;
        # from then on the loop does, and the session keeps only a weak reference.
        self._generator: AsyncGenerator[Event, None] | None = self._events()
        self._handed_out: weakref.ReferenceType[AsyncGenerator[Event, None]] | None = None
        self.started = False  # the generator began running
        # Set by Result.read() before the first step: nobody takes token events, so the
        # steady path does not build them (the text still goes to the state).
        self.silent_tokens = False
        self.released = False  # ... and has run its cleanup (the provider stream is closed)
        self._release_waiters: list[asyncio.Future[None]] | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def events(self) -> AsyncGenerator[Event, None] | None:
        """The event generator, whoever owns it (``None``: a loop that owned it dropped it)."""
        generator = self._generator
        if generator is None and self._handed_out is not None:
            generator = self._handed_out()
        return generator

    def hand_out(self) -> AsyncIterator[Event]:
        """The iterator for an ``async for``: the event generator itself, with no wrapper
        between it and the loop (a wrapper's ``__anext__`` is one more Python call per chunk).

        The loop owns it from here on: the session keeps a weak reference, so a loop left
        early (``break``, ``return``, an exception in its body) drops the last reference.
        Then :func:`_loop_dropped` ends the session at once, and asyncio's async-generator
        finalizer closes the generator in a task, which releases the provider stream.
        """
        generator = self._generator
        if generator is None:
            return self.events() or _finished()
        self._generator = None
        self._handed_out = weakref.ref(generator, functools.partial(_loop_dropped, self))
        return generator

    async def wait_released(self) -> None:
        """Wait until the generator has run its cleanup, if it started and has not yet (the
        close asyncio schedules for a dropped generator)."""
        if not self.started or self.released:
            return
        waiter = asyncio.get_running_loop().create_future()
        if self._release_waiters is None:
            self._release_waiters = []
        self._release_waiters.append(waiter)
        await waiter

    def _mark_released(self) -> None:
        self.released = True
        waiters = self._release_waiters
        if waiters:
            self._release_waiters = None
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def end_abandoned(self) -> None:
        """Called when the result is garbage-collected: end whatever is still open."""
        if self.finished:
            return
        outcome = Outcome.CANCELLED if self.iterated else Outcome.ABANDONED
        self._finish_phases(outcome)

    def _finish_phases(
        self,
        outcome: Outcome,
        *,
        error_type: str | None = None,
        description: str | None = None,
        **session_end: Any,
    ) -> None:
        self.finished = True
        self.watchdog.stop()
        state = self.state
        state.duration = self.clock.now() - self.started_at
        for phase in reversed(self._open[1:]):
            phase.end(outcome)
        self._open = [self.phase]
        self.phase.end(
            outcome,
            error_type=error_type,
            description=description,
            attributes={
                sc.L0_ATTEMPTS: state.attempt,
                sc.L0_FALLBACK_INDEX: state.fallback_index,
            },
            end_data={
                "duration": state.duration,
                "attempts": state.attempt,
                "fallback_index": state.fallback_index,
                "time_to_first_token": state.time_to_first_token,
                "token_count": state.token_count,
                **session_end,
            }
            if self.bus.sinks or self.bus.metrics is not None
            else None,
        )

    def abort(self) -> None:
        if self.finished or self.abort_requested:
            return
        self.abort_requested = True
        self.watchdog.attention = True  # checked before every read
        self.state.aborted = True
        self.bus.emit(T.ABORT, {"attempt": self.state.attempt})
        self.watchdog.trip("abort")

    # --- the event stream -------------------------------------------------------------------

    async def _events(self) -> AsyncGenerator[Event, None]:
        self.started = True
        silent = self.silent_tokens
        state = self.state
        clock = self.clock
        watchdog = self.watchdog
        last_failure: _AttemptFailed | None = None
        gave_up_reason = ""
        outcome = Outcome.CANCELLED
        try:
            for target in self.targets:
                if self.abort_requested:
                    break
                if target.index > 0:
                    self.budget.next_target()
                    self.bus.emit(
                        T.FALLBACK_START,
                        {
                            "from_index": target.index - 1,
                            "to_index": target.index,
                            "from_model": self.targets[target.index - 1].model,
                            "to_model": target.model,
                        },
                    )
                state.fallback_index = target.index
                target_phase = self._open_target(target)
                target_attempt = 0
                reason = AttemptReason.INITIAL if target.index == 0 else AttemptReason.FALLBACK
                while True:
                    # Wait out a 429 cooldown published by another session on this key.
                    wait = cooldown.cooldown_remaining(self.rate_limit_key, clock)
                    if wait > 0:
                        await self._backoff(wait)
                    target_attempt += 1
                    state.attempt += 1
                    context = AttemptContext(
                        attempt=state.attempt,
                        target_attempt=target_attempt,
                        fallback_index=target.index,
                        reason=reason,
                        checkpoint=state.checkpoint if self.continuation else "",
                        continuation=self.continuation and bool(state.checkpoint),
                        last_error=state.errors[-1] if state.errors else None,
                    )
                    attempt = _Attempt(self, target, target_phase, context)
                    # The attempt's per-chunk loop runs here, in the generator the consumer
                    # iterates: between the provider's iterator and the consumer there is no
                    # other layer (each one costs per chunk). The counters live in locals while
                    # it runs and are stored on the attempt when it ends.
                    received = undelivered = 0
                    max_gap = 0.0
                    try:
                        try:
                            decoder = await attempt.open()
                            guards = attempt.guards
                            # Guardrails are called only once the content reaches the
                            # length the run asks for (GuardrailRun.next_release): below it
                            # a call would do nothing. Without streaming rules: never.
                            guard_next = (
                                guards.next_release
                                if guards is not None and attempt.streaming_guards
                                else sys.maxsize
                            )
                            trimmer = attempt.trimmer
                            trimming = trimmer is not None and not trimmer.done
                            steady_step = attempt.steady_step
                            steady_kind = attempt.steady_kind
                            read = decoder.chunks.__anext__
                            text_of = decoder.text
                            # A decoder that keeps the provider's chunks on its events (the
                            # instrumentor's) gets the chunk on fast-path events too.
                            keeps_chunks = getattr(decoder, "keeps_chunks", False) is True
                            now_fn = clock.now
                            current_task = task_getter()
                            append_part = state._parts.append  # State.append, inlined below
                            new_event = object.__new__
                            # steady: the first event is in and no overlap is being trimmed, so
                            # a plain content chunk takes the short path.
                            steady = False
                            done = False
                            last = math.inf  # the previous chunk's arrival (no gap before one)
                            while True:
                                if watchdog.attention:
                                    if self.abort_requested:
                                        raise _Aborted()
                                    watchdog.attention = False
                                    watchdog.rearm()
                                watchdog.task = current_task()
                                watchdog.reading = True
                                try:
                                    chunk = await read()
                                except StopAsyncIteration:
                                    chunk = _END
                                except asyncio.CancelledError:
                                    if not watchdog.owns_cancellation():
                                        raise
                                    if watchdog.fired == "abort":
                                        raise _Aborted() from None
                                    why = watchdog.fired or watchdog.kind
                                    raise attempt.timeout(why, now_fn()) from None
                                except Exception as problem:
                                    chunk = _Decoded((decoder.failed(problem),))
                                finally:
                                    watchdog.reading = False
                                if watchdog.fired is not None:
                                    # The chunk arrived as the timer fired: keep it, drop the
                                    # cancellation.
                                    await watchdog.absorb()
                                    if watchdog.fired == "abort":
                                        raise _Aborted()
                                    watchdog.fired = None
                                now = now_fn()
                                try:
                                    text = text_of(chunk)
                                except Exception as problem:
                                    text = None
                                    chunk = _Decoded((decoder.invalid(chunk, problem),))
                                if text is not None and steady:
                                    # The short path: one more piece of content.
                                    received += 1
                                    if now - last > max_gap:
                                        max_gap = now - last
                                    last = now
                                    watchdog.since = now
                                    append_part(text)
                                    state._length += len(text)
                                    state.token_count += 1
                                    if state._length >= guard_next:
                                        guard_next = await attempt.check_guardrails(text)
                                    if silent:
                                        continue
                                    # Event(_TOKEN, text, ts=now) without the call to a
                                    # Python __init__ (~50 ns of the ~160 an event costs);
                                    # test_runtime checks that every field is set.
                                    event = new_event(Event)
                                    event.type = _TOKEN
                                    event.text = text
                                    event.data = event.usage = event.error = None
                                    event.raw = (chunk,) if keeps_chunks else None
                                    event.ts = now
                                    yield event
                                    continue

                                # Everything else, as events.
                                events: Sequence[Event]
                                if text is not None:
                                    events = (Event(_TOKEN, text),)
                                elif chunk.__class__ is _Decoded:
                                    events = chunk.events
                                elif chunk is _END:
                                    done = True
                                    try:
                                        events = decoder.finish()
                                    except Exception as problem:
                                        events = (decoder.invalid(None, problem),)
                                else:
                                    try:
                                        events = decoder.events(chunk)
                                    except Exception as problem:
                                        events = (decoder.invalid(chunk, problem),)
                                for event in events:
                                    event.ts = now
                                    etype = event.type
                                    if etype is _TOKEN:
                                        text = event.text
                                        if not text:
                                            continue
                                        received += 1
                                        if now - last > max_gap:
                                            max_gap = now - last
                                        last = now
                                        if attempt.first_at is None:
                                            attempt.first_at = now
                                            if state.time_to_first_token is None:
                                                state.time_to_first_token = now - self.started_at
                                            watchdog.expect(now, steady_step, steady_kind)
                                        else:
                                            watchdog.since = now
                                        if trimming:
                                            assert trimmer is not None
                                            trimmed = trimmer.feed(text)
                                            trimming = not trimmer.done
                                            if not trimmed:
                                                undelivered += 1
                                                continue
                                            if trimmed is not text:
                                                event = Event(_TOKEN, trimmed, ts=now)
                                                text = trimmed
                                        steady = not trimming
                                        append_part(text)
                                        state._length += len(text)
                                        state.token_count += 1
                                        if state._length >= guard_next:
                                            guard_next = await attempt.check_guardrails(text)
                                        yield event
                                    elif etype is _TOOL_CALL_DELTA or etype is _TOOL_CALL:
                                        received += 1
                                        last = now
                                        if attempt.first_at is None:
                                            attempt.first_at = now
                                            watchdog.expect(now, steady_step, steady_kind)
                                        else:
                                            watchdog.since = now
                                        steady = not trimming
                                        if etype is _TOOL_CALL:
                                            attempt.tool_call(event)
                                        yield event
                                    elif etype is _COMPLETE:
                                        attempt.complete(event)
                                        done = True
                                        break
                                    elif etype is _ERROR:
                                        attempt.metadata(event.data)
                                        raise attempt.failure(
                                            event.error or RuntimeError("adapter reported an error")
                                        )
                                    # Other event types (e.g. an adapter's RESET) carry nothing
                                    # for the consumer.
                                if done:
                                    break

                            watchdog.stop()
                            if trimmer is not None and not trimmer.done:
                                rest = trimmer.flush()
                                if rest:
                                    state.append(rest)
                                    state.token_count += 1
                                    if guards is not None and attempt.streaming_guards:
                                        pending = guards.check_delta(state, rest)
                                        found = (
                                            pending if isinstance(pending, list) else await pending
                                        )
                                        if found:
                                            attempt.violations(found, len(rest))
                                    undelivered -= 1
                                    yield Event(_TOKEN, rest, ts=clock.now())
                            if received == 0:
                                raise attempt.failure(
                                    ZeroOutputError("the stream completed with no output")
                                )
                            if guards is not None and guards.checkers:
                                await attempt.final_checks(guards)
                            attempt.store_counters(received, undelivered, max_gap)
                            attempt.end_phase(Outcome.COMPLETED)
                        finally:
                            attempt.store_counters(received, undelivered, max_gap)
                            await attempt.close()
                    except _AttemptFailed as failure:
                        last_failure = failure
                        attempt.fail(failure)
                        cooldown.note_failure(
                            self.rate_limit_key,
                            failure.classification,
                            clock,
                            self.retry.retry_after_cap,
                        )
                        if attempt.delivered and not (self.retry_after_output or self.continuation):
                            # The consumer cannot take a RESET: output already delivered
                            # makes this failure terminal.
                            decision = Decision(Action.GIVE_UP, reason="output_delivered")
                        else:
                            decision = self.budget.decide(
                                failure.classification,
                                failure.error,
                                has_next_target=target.index + 1 < len(self.targets),
                            )
                        state.model_retry_count = self.budget.model_retries
                        state.network_retry_count = self.budget.network_retries
                        if decision.action is Action.RETRY:
                            reset = self._prepare_next_attempt(attempt, failure)
                            if reset is not None:
                                yield reset
                            self._emit_retry(failure, decision.delay, state.attempt + 1)
                            await self._backoff(decision.delay)
                            reason = AttemptReason.RETRY
                            continue
                        target_phase.end(
                            Outcome.ERROR,
                            error_type=failure.classification.error_type,
                            attributes=attempt.target_attributes(),
                        )
                        self._open.remove(target_phase)
                        if decision.action is Action.FALLBACK:
                            reset = self._prepare_next_attempt(attempt, failure)
                            if reset is not None:
                                yield reset
                            self.bus.emit(
                                T.FALLBACK_END,
                                {"from_index": target.index, "reason": decision.reason},
                            )
                            break
                        gave_up_reason = decision.reason
                        break
                    else:
                        # Success: the synthesized COMPLETE is the session's last event.
                        target_phase.end(
                            Outcome.COMPLETED,
                            attributes=attempt.target_attributes(),
                            content=attempt.content(),
                        )
                        self._open.remove(target_phase)
                        if state.errors:
                            self._emit_recovery(last_failure)
                        state.completed = True
                        state.checkpoint = state.content
                        complete = Event(
                            _COMPLETE,
                            raw=attempt.complete_raw,
                            usage=state.usage,
                            data={
                                "finish_reason": state.finish_reason,
                                "response_id": state.response_id,
                                "model": state.response_model,
                                "fallback_index": state.fallback_index,
                                "attempts": state.attempt,
                            },
                            ts=clock.now(),
                        )
                        outcome = Outcome.COMPLETED
                        self._finish_phases(outcome)
                        if self.bus.sinks:
                            self.bus.emit(
                                T.COMPLETE,
                                {"token_count": state.token_count, "attempts": state.attempt},
                            )
                        yield complete
                        return
                    if gave_up_reason:
                        break
                if gave_up_reason or self.abort_requested:
                    break
            if self.abort_requested:
                return
            # Every target failed (or the budget gave up): terminal, never silent.
            error = self._terminal_error(last_failure, gave_up_reason)
            state.error = error
            outcome = Outcome.ERROR
            self.bus.emit(
                T.RETRY_GIVE_UP if state.attempt > 1 else T.ERROR,
                {"code": error.code.value, "category": error.category.value},
            )
            if state.attempt > 1:
                self.bus.emit(T.ERROR, {"code": error.code.value, "category": error.category.value})
            tried = self.targets[state.fallback_index] if self.targets else None
            self._finish_phases(
                outcome,
                error_type=error.code.value,
                description=error.message[:200],
                error_code=error.code.value,
                error_category=error.category.value,
                # For error-reporting sinks (Sentry): the exception and what was called.
                error=error,
                model=tried.model if tried else None,
                provider=tried.provider if tried else None,
                response_model=state.response_model,
            )
            yield Event(_ERROR, error=error, ts=clock.now())
            raise error
        except _Aborted:
            return
        except (GeneratorExit, asyncio.CancelledError):
            raise
        except L0Error:
            raise
        except BaseException as unexpected:
            outcome = Outcome.ERROR
            self._finish_phases(
                outcome,
                error_type=type(unexpected).__qualname__,
                description=str(unexpected),
                error=unexpected,
            )
            raise
        finally:
            if not self.finished:
                self._finish_phases(outcome)
            self._mark_released()

    # --- helpers ----------------------------------------------------------------------------

    def _open_target(self, target: Target) -> Phase:
        # Set at span start: the conventions mark these as used for sampling decisions.
        attributes: dict[str, Any] | None = None
        if self.bus.observed:
            attributes = {
                sc.GEN_AI_OPERATION_NAME: sc.OPERATION_CHAT,
                sc.GEN_AI_REQUEST_STREAM: bool(target.request.get("stream", True)),
                sc.L0_FALLBACK_INDEX: target.index,
                sc.GEN_AI_REQUEST_MODEL: target.model,
                sc.GEN_AI_PROVIDER_NAME: target.provider,
                sc.SERVER_ADDRESS: target.server_address,
                sc.SERVER_PORT: target.server_port,
                **sc.request_attributes(target.request),
            }
            attributes = {k: v for k, v in attributes.items() if v is not None}
        phase = Phase(
            PhaseKind.TARGET,
            self.bus,
            parent=self.phase,
            name=f"{sc.OPERATION_CHAT} {target.model}" if target.model else sc.OPERATION_CHAT,
            attributes=attributes,
            start_data={"fallback_index": target.index, "model": target.model}
            if self.bus.sinks
            else None,
        )
        self._open.append(phase)
        return phase

    def _prepare_next_attempt(self, attempt: _Attempt, failure: _AttemptFailed) -> Event | None:
        """Settle the checkpoint and tell the consumer to discard text when it must."""
        state = self.state
        state.checkpoint = attempt.checkpoint_text()
        if state.checkpoint:
            self.bus.emit(T.CHECKPOINT_SAVED, {"length": len(state.checkpoint)})
        if not attempt.delivered:
            state.reset_content(state.checkpoint if self.continuation else "")
            return None
        if self.continuation:
            # The next attempt continues after the checkpoint: the consumer keeps its text.
            state.reset_content(state.checkpoint)
            self.bus.emit(
                T.CONTINUATION_START,
                {"checkpoint_length": len(state.checkpoint), "attempt": state.attempt + 1},
            )
            return None
        discarded = state.content_length
        state.reset_content()
        state.tool_calls = []
        self.bus.emit(T.RESET, {"discarded_chars": discarded, "attempt": state.attempt})
        return Event(
            EventType.RESET,
            data={"reason": failure.classification.code.value, "discarded_chars": discarded},
            ts=self.clock.now(),
        )

    def _emit_retry(self, failure: _AttemptFailed, delay: float, next_attempt: int) -> None:
        classification = failure.classification
        data = {
            "attempt": next_attempt,
            "delay": delay,
            "category": classification.category.value,
            "code": classification.code.value,
        }
        self.backoff = delay
        if self.budget.session_retries == 1:
            self.bus.emit(T.RETRY_START, data)
        self.bus.emit(T.RETRY_ATTEMPT, data)

    def _emit_recovery(self, last_failure: _AttemptFailed | None) -> None:
        data = {"attempts": self.state.attempt, "fallback_index": self.state.fallback_index}
        self.bus.emit(T.RETRY_END, data)
        if last_failure is not None and last_failure.classification.category in _NETWORK_KINDS:
            self.bus.emit(T.NETWORK_RECOVERY, data)

    async def _backoff(self, delay: float) -> None:
        if delay <= 0:
            return
        watchdog = self.watchdog
        watchdog.reset()
        watchdog.begin_read(None, "backoff")
        try:
            await self.clock.sleep(delay)
        except asyncio.CancelledError:
            if watchdog.fired == "abort" and watchdog.owns_cancellation():
                raise _Aborted() from None
            raise
        finally:
            watchdog.end_read()

    def _terminal_error(self, failure: _AttemptFailed | None, reason: str) -> L0Error:
        state = self.state
        if failure is None:
            return L0Error(
                "no target could be tried",
                code=ErrorCode.INTERNAL_ERROR,
                category=ErrorCategory.INTERNAL,
            )
        classification = failure.classification
        several = len(state.errors) > 1
        code = ErrorCode.ALL_ATTEMPTS_EXHAUSTED if several else classification.code
        tried = f"{len(state.errors)} attempt(s) on {state.fallback_index + 1} target(s)"
        message = f"{classification.code.value}: {failure.error}"
        if several:
            message = f"all attempts failed ({tried}); last: {message}"
        error = L0Error(
            message,
            code=code,
            category=classification.category,
            errors=state.errors,
            checkpoint=state.checkpoint,
            status_code=classification.status_code,
        )
        error.__cause__ = failure.error
        return error


class _Attempt:
    """One try on one target: open the stream, read it under the watchdog, check it."""

    __slots__ = (
        "complete_raw",
        "context",
        "decoder",
        "delivered",
        "first_at",
        "guard_phase",
        "guards",
        "max_gap",
        "passed_length",
        "phase",
        "raw",
        "received",
        "session",
        "started_at",
        "steady_kind",
        "steady_step",
        "streaming_guards",
        "target",
        "target_phase",
        "trimmer",
    )

    def __init__(
        self, session: Session, target: Target, target_phase: Phase, context: AttemptContext
    ) -> None:
        self.session = session
        self.target = target
        self.target_phase = target_phase
        self.context = context
        self.delivered = 0
        self.received = 0
        self.complete_raw: Any = None
        self.first_at: float | None = None
        self.max_gap = 0.0
        # Where the checkpoint ends: None while every appended character passed the guardrails
        # (the common case, kept without a store per chunk); set when a violation fails them.
        self.passed_length: int | None = None
        self.started_at = session.clock.now()
        self.guards: GuardrailRun | None = None
        self.streaming_guards = False
        self.guard_phase: Phase | None = None
        self.trimmer: OverlapTrimmer | None = None
        self.raw: Any = None
        self.decoder: Decoder | None = None
        self.steady_step: float | None = None
        self.steady_kind = "inter"
        attributes: dict[str, Any] | None = None
        if session.bus.observed:
            attributes = {
                sc.L0_ATTEMPT_NUMBER: context.attempt,
                sc.L0_ATTEMPT_REASON: context.reason.value,
                sc.L0_FALLBACK_INDEX: context.fallback_index,
            }
            if context.reason is AttemptReason.RETRY:
                attributes[sc.L0_BACKOFF_SECONDS] = session.backoff
        self.phase = Phase(
            PhaseKind.ATTEMPT,
            session.bus,
            parent=target_phase,
            attributes=attributes,
            start_data={
                "attempt": context.attempt,
                "fallback_index": context.fallback_index,
                "reason": context.reason.value,
            }
            if session.bus.sinks
            else None,
        )
        session._open.append(self.phase)

    def checkpoint_text(self) -> str:
        content = self.session.state.content
        return content if self.passed_length is None else content[: self.passed_length]

    def target_attributes(self) -> dict[str, Any] | None:
        """The ``chat`` span's response attributes, from this (its last) attempt."""
        if not self.target_phase.observed:
            return None
        state = self.session.state
        usage = state.usage
        first = self.first_at
        return {
            sc.GEN_AI_RESPONSE_ID: state.response_id,
            sc.GEN_AI_RESPONSE_MODEL: state.response_model,
            sc.GEN_AI_RESPONSE_FINISH_REASONS: (state.finish_reason,)
            if state.finish_reason
            else None,
            sc.GEN_AI_USAGE_INPUT_TOKENS: usage.input_tokens if usage else None,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: usage.output_tokens if usage else None,
            sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: first - self.started_at
            if first is not None
            else None,
        }

    def content(self) -> content_capture.Messages | None:
        """The completed call's messages, when the user opted in to content capture."""
        if not self.target_phase.observed or not content_capture.capturing():
            return None
        return content_capture.messages(self.target.request, self.session.state)

    def end_phase(self, outcome: Outcome, error: _AttemptFailed | None = None) -> None:
        session = self.session
        now = session.clock.now()
        first = self.first_at
        ttfc = first - self.started_at if first is not None else None
        classification = error.classification if error else None
        if self.guard_phase is not None:
            self.guard_phase.end(Outcome.COMPLETED if outcome is Outcome.COMPLETED else outcome)
            session._open.remove(self.guard_phase)
            self.guard_phase = None
        self.phase.end(
            outcome,
            error_type=classification.error_type if classification else None,
            description=str(error.error)[:200] if error else None,
            attributes={
                sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: ttfc,
                sc.L0_STREAM_CHUNKS: self.received,
                sc.L0_STREAM_CHUNK_GAP_MAX: self.max_gap if self.received > 1 else None,
                sc.L0_ERROR_CATEGORY: classification.category.value if classification else None,
                sc.L0_ERROR_CODE: classification.code.value if classification else None,
            }
            if self.phase.observed
            else None,
            end_data={
                "attempt": self.context.attempt,
                "fallback_index": self.context.fallback_index,
                "reason": self.context.reason.value,
                "duration": now - self.started_at,
                "time_to_first_chunk": ttfc,
                "chunks": self.received,
                "max_chunk_gap": self.max_gap,
                "category": classification.category.value if classification else None,
                "code": classification.code.value if classification else None,
                "response_model": session.state.response_model,
            }
            if session.bus.sinks or session.bus.metrics is not None
            else None,
        )
        if self.phase in session._open:
            session._open.remove(self.phase)

    def fail(self, failure: _AttemptFailed) -> None:
        session = self.session
        state = session.state
        classification = failure.classification
        state.errors.append(
            ErrorRecord(
                category=classification.category,
                code=classification.code,
                message=str(failure.error)[:500] or type(failure.error).__name__,
                attempt=self.context.attempt,
                fallback_index=self.context.fallback_index,
                status_code=classification.status_code,
                error_type=classification.error_type,
            )
        )
        data = {
            "attempt": self.context.attempt,
            "category": classification.category.value,
            "code": classification.code.value,
            "error_type": classification.error_type,
        }
        if classification.code in (ErrorCode.INITIAL_TOKEN_TIMEOUT, ErrorCode.INTER_TOKEN_TIMEOUT):
            session.bus.emit(T.TIMEOUT_TRIGGERED, data)
        if classification.category in _NETWORK_KINDS:
            session.bus.emit(T.NETWORK_ERROR, data)
        self.end_phase(Outcome.ERROR, failure)

    def failure(self, error: BaseException) -> _AttemptFailed:
        return _AttemptFailed(error, classify(error))

    def violations(self, found: list[GuardrailViolation], pending: int = 0) -> None:
        """Record violations; raise when one of them fails the attempt. ``pending``: how many
        characters at the end of the content are the delta being checked (not yet passed)."""
        session = self.session
        state = session.state
        blocking: list[GuardrailViolation] = []
        phase = self.guard_phase or self.phase
        for violation in found:
            state.violations.append(violation)
            session.bus.emit(
                T.GUARDRAIL_RULE_RESULT,
                {
                    "rule": violation.rule,
                    "severity": violation.severity,
                    "message": violation.message,
                    "position": violation.position,
                    "recoverable": violation.recoverable,
                },
            )
            if phase.recording:
                phase.add_event(
                    sc.EVENT_GUARDRAIL_RESULT,
                    sc.guardrail_event_attributes(
                        violation.rule,
                        violation.severity,
                        violation.message,
                        streaming=phase.kind is not PhaseKind.GUARDRAILS_FINAL,
                    ),
                )
            if violation.severity != "warning":
                blocking.append(violation)
        if phase.observed and found:
            worst = blocking[0] if blocking else found[-1]
            seen = (phase.attributes or {}).get(sc.L0_GUARDRAIL_VIOLATIONS, 0)
            phase.set_many(
                {
                    sc.L0_GUARDRAIL_VIOLATIONS: seen + len(found),
                    sc.L0_GUARDRAIL_RULE: worst.rule,
                    sc.L0_GUARDRAIL_SEVERITY: worst.severity,
                }
            )
        if blocking:
            # Rules scan in small batches, so the offending text may already have been
            # delivered: the checkpoint stops where the violation starts.
            passed = self.passed_length
            if passed is None:
                passed = state.content_length - pending
            positions = [v.position for v in blocking if v.position is not None]
            if positions:
                passed = max(0, min(passed, *positions))
            self.passed_length = passed
            rules = ", ".join(sorted({v.rule for v in blocking}))
            error = GuardrailError(
                f"guardrail violation ({rules}): {blocking[0].message}", blocking
            )
            if error.code is ErrorCode.DRIFT_DETECTED:
                session.bus.emit(
                    T.DRIFT_DETECTED,
                    {"message": blocking[0].message, "attempt": self.context.attempt},
                )
            raise self.failure(error)

    def timeout(self, why: str, now: float) -> _AttemptFailed:
        timeout = self.session.timeout
        if why == "idle" and self.guards is not None:
            gap = now - (self.first_at or self.started_at)
            found = self.guards.check_idle(self.session.state, self.guards.max_gap or gap)
            if not found:
                found = [GuardrailViolation("stall", f"stream silent for {gap:.3g}s")]
            try:
                self.violations(found)
            except _AttemptFailed as failure:
                return failure
        if why == "initial":
            return self.failure(
                InitialTokenTimeout(f"no first chunk within {timeout.initial_token:g}s")
            )
        return self.failure(
            InterTokenTimeout(f"stream silent for more than {timeout.inter_token:g}s")
        )

    async def open(self) -> Decoder:
        """Start the attempt: its guardrails, the provider stream (opened under the initial
        deadline, with the attempt span current so the provider's own spans nest under it)
        and the decoder the session's loop reads it with. Raises :class:`_AttemptFailed`."""
        session = self.session
        state = session.state
        clock = session.clock
        watchdog = session.watchdog
        timeout = session.timeout
        initial = timeout.initial_token
        inter = timeout.inter_token
        engine = session.guardrails
        guards = engine.start() if engine else None
        self.guards = guards
        self.streaming_guards = guards is not None and guards.streaming
        idle = guards.max_gap if guards is not None else None
        if self.streaming_guards:
            self.guard_phase = Phase(
                PhaseKind.GUARDRAILS,
                session.bus,
                parent=self.phase,
                start_data={"phase": "streaming", "attempt": self.context.attempt},
            )
            session._open.append(self.guard_phase)
        if self.context.continuation:
            self.trimmer = OverlapTrimmer(self.context.checkpoint)
        else:
            # A continued attempt extends the delivered text; anything else starts over.
            state.token_count = 0
        state.tool_calls = []
        state.usage = None
        state.finish_reason = state.response_id = state.response_model = None
        watchdog.reset()
        if session.bus.sinks:
            session.bus.emit(
                T.STREAM_INIT,
                {"attempt": self.context.attempt, "fallback_index": self.target.index},
            )
        watchdog.begin_read(self.started_at + initial if initial else None, "initial")
        try:
            with self.phase.activate(), Target.opening():
                raw = self.target.open(self.context)
                if inspect.isawaitable(raw):
                    raw = await raw
                self.raw = raw
        except asyncio.CancelledError:
            if not watchdog.owns_cancellation():
                raise
            if watchdog.fired == "abort":
                raise _Aborted() from None
            raise self.timeout(watchdog.fired or "initial", clock.now()) from None
        except Exception as error:
            raise self.failure(error) from error
        finally:
            watchdog.end_read()
        if watchdog.fired is not None:
            await watchdog.absorb()
            if watchdog.fired == "abort":
                raise _Aborted()
            watchdog.fired = None
        try:
            adapter = session.adapter or Adapters.detect(raw)
            decoder = self.decoder = open_decoder(adapter, raw)
        except Exception as error:
            raise self.failure(error) from error
        if session.bus.sinks:
            session.bus.emit(
                T.STREAM_READY, {"attempt": self.context.attempt, "adapter": adapter.name}
            )
        if self.target.provider is None and self.target_phase.observed:
            self.target_phase.set(sc.GEN_AI_PROVIDER_NAME, sc.provider_for_adapter(adapter.name))

        # The limits before and after the first chunk (an idle limit from the guardrails
        # applies when it is the shorter one).
        first_step = initial or None
        first_kind = "initial"
        if idle is not None and (first_step is None or idle < first_step):
            first_step, first_kind = idle, "idle"
        steady_step = inter or None
        steady_kind = "inter"
        if idle is not None and (steady_step is None or idle < steady_step):
            steady_step, steady_kind = idle, "idle"
        self.steady_step = steady_step
        self.steady_kind = steady_kind
        watchdog.expect(self.started_at, first_step, first_kind)
        return decoder

    async def close(self) -> None:
        """Release the provider stream, however the attempt ended."""
        self.session.watchdog.stop()
        decoder = self.decoder
        if decoder is not None:
            try:
                await decoder.aclose()
            except Exception:  # the decoder must not raise; a broken one still closes
                pass
        if self.raw is not None:
            await close_stream(self.raw)

    def store_counters(self, received: int, undelivered: int, max_gap: float) -> None:
        self.received = received
        self.delivered = received - undelivered
        self.max_gap = max_gap

    async def final_checks(self, guards: GuardrailRun) -> None:
        session = self.session
        if self.guard_phase is not None:
            self.guard_phase.end(Outcome.COMPLETED)
            session._open.remove(self.guard_phase)
            self.guard_phase = None
        phase = Phase(
            PhaseKind.GUARDRAILS_FINAL,
            session.bus,
            parent=self.phase,
            start_data={"phase": "final", "attempt": self.context.attempt},
        )
        session._open.append(phase)
        self.guard_phase = phase
        found = await guards.check_final(session.state)
        if found:
            self.violations(found)

    def complete(self, event: Event) -> None:
        """The stream's ``COMPLETE``: its usage and metadata."""
        state = self.session.state
        if event.usage is not None:
            usage = event.usage
            state.usage = usage if isinstance(usage, Usage) else Usage.from_mapping(usage)
        self.metadata(event.data)
        self.complete_raw = event.raw

    async def check_guardrails(self, delta: str) -> int:
        """Run the streaming guardrails on ``delta`` (due: the content reached the run's
        ``next_release``); record what they found, raising when it fails the attempt. Returns
        the content length at which they are due next."""
        run = self.guards
        assert run is not None
        checked = run.check(self.session.state, delta)
        if checked:
            found = checked if isinstance(checked, list) else await checked
            if found:
                self.violations(found, len(delta))
        return run.next_release

    def tool_call(self, event: Event) -> None:
        """A complete tool call: into ``state.tool_calls``."""
        session = self.session
        tool_calls = session.state.tool_calls
        call = _tool_call(event.data, len(tool_calls))
        tool_calls.append(call)
        session.bus.emit(T.TOOL_CALL, {"name": call.name, "id": call.id, "index": call.index})

    def metadata(self, data: Any) -> None:
        if not isinstance(data, Mapping):
            return
        state = self.session.state
        state.finish_reason = data.get("finish_reason") or state.finish_reason
        state.response_id = data.get("response_id") or state.response_id
        state.response_model = data.get("model") or state.response_model


def _tool_call(data: Any, position: int) -> ToolCall:
    if isinstance(data, ToolCall):
        return data
    if not isinstance(data, Mapping):
        return ToolCall(index=position, id=None, name=None, arguments=str(data))
    arguments = data.get("arguments", "")
    parsed = data.get("parsed_arguments")
    if not isinstance(arguments, str):
        parsed = arguments
        arguments = ""
    index = data.get("index")
    return ToolCall(
        index=index if isinstance(index, int) else position,
        id=data.get("id"),
        name=data.get("name"),
        arguments=arguments,
        parsed_arguments=parsed,
    )


def _loop_dropped(session: Session, _: object) -> None:
    # The handed-out generator is gone (weakref callback). Left early, the session ends now
    # (outcome cancelled); the close asyncio scheduled for the generator releases the stream.
    if session.finished:
        return
    session.abort_requested = True
    session.watchdog.attention = True
    session.state.aborted = True
    session.end_abandoned()


async def _finished() -> AsyncGenerator[Event, None]:
    """An iterator with nothing left (a second loop over a result a first loop let go)."""
    return
    yield  # pragma: no cover - makes this an async generator


def _finalize(session: Session) -> None:
    # weakref.finalize callback: must not reference the Result. A generator a loop took is
    # the loop's: its own end (or _loop_dropped) ends the session, not the Result's.
    if not session.finished and session._generator is not None:
        session.end_abandoned()


class Result:
    """The stream of a session: iterate it for :class:`Event`s, or ``await result.read()``.

    ``async for`` yields every event (tokens, tool calls, resets, then one ``COMPLETE``; on
    terminal failure one ``ERROR`` event, then the :class:`l0.L0Error` is raised). Leaving the
    loop early ends the session (outcome ``cancelled``) and closes the provider stream.

    Example::

        result = await l0.run(stream=lambda: client.chat.completions.create(...))
        async for event in result:
            if event.is_token:
                print(event.text, end="")
        print(result.state.token_count)
    """

    __slots__ = ("__weakref__", "_finalizer", "_session")

    def __init__(self, session: Session) -> None:
        self._session = session
        self._finalizer = weakref.finalize(self, _finalize, session)

    @property
    def state(self) -> State:
        """The live :class:`State` of the session."""
        return self._session.state

    @property
    def stream_id(self) -> str:
        """The session's id (UUIDv7), shared by all its observability events and spans."""
        return self._session.stream_id

    def __aiter__(self) -> AsyncIterator[Event]:
        self._session.iterated = True
        return self._session.hand_out()

    async def __anext__(self) -> Event:
        session = self._session
        session.iterated = True
        generator = session.events()
        if generator is None:
            raise StopAsyncIteration
        return await generator.__anext__()

    async def read(self) -> str:
        """Consume the stream and return the final text (raises :class:`l0.L0Error`)."""
        session = self._session
        session.iterated = True
        generator = session.events()
        if generator is not None:
            if not session.started:
                session.silent_tokens = True  # only the text is wanted: no token events
            async for _ in generator:
                pass
        if session.state.error is not None:
            raise session.state.error
        return session.state.content

    def abort(self) -> None:
        """Stop the session now: a pending read is cancelled, the provider stream closed, and
        iteration ends (outcome ``cancelled``, ``state.aborted``)."""
        self._session.abort()

    async def aclose(self) -> None:
        """Close the session and release the provider stream (idempotent)."""
        session = self._session
        if not session.finished:
            session.abort_requested = True
            session.watchdog.attention = True
            session.state.aborted = True
        generator = session.events()
        if generator is not None:
            await generator.aclose()
        else:
            await session.wait_released()
        if not session.finished:
            session.end_abandoned()

    async def __aenter__(self) -> Result:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def validate_meta(meta: Any) -> Mapping[str, Any]:
    if meta is None:
        return {}
    if not isinstance(meta, Mapping) or not all(isinstance(k, str) for k in meta):
        raise ConfigError("run", "meta", "must be a mapping with string keys", meta)
    return meta


def build_session(
    targets: Sequence[Target],
    *,
    guardrails: Any,
    retry: Retry | None,
    timeout: Timeout | None,
    on_event: Sink | None,
    meta: Any,
    continue_from_checkpoint: bool,
    adapter: Adapter | str | None,
    clock: Clock | None,
    retry_after_output: bool = True,
) -> Session:
    """Validate every option (raising :class:`l0.ConfigError`) and build the session."""
    if retry is None:
        retry = _DEFAULT_RETRY
    elif not isinstance(retry, Retry):
        raise ConfigError("run", "retry", "must be an l0.Retry", retry)
    if timeout is None:
        timeout = _DEFAULT_TIMEOUT
    elif not isinstance(timeout, Timeout):
        raise ConfigError("run", "timeout", "must be an l0.Timeout", timeout)
    if on_event is not None and not callable(on_event):
        raise ConfigError("run", "on_event", "must be callable", on_event)
    if isinstance(adapter, str):
        try:
            adapter = Adapters.get(adapter)
        except KeyError:
            raise ConfigError("run", "adapter", "no adapter with that name", adapter) from None
    elif adapter is not None and not isinstance(adapter, Adapter):
        raise ConfigError("run", "adapter", "must be an Adapter or an adapter name", adapter)
    if clock is None:
        clock = SYSTEM_CLOCK
    elif not isinstance(clock, Clock):
        raise ConfigError(
            "run", "clock", "must provide now(), wall(), sleep(), call_later()", clock
        )
    engine = guardrails if isinstance(guardrails, GuardrailEngine) else GuardrailEngine(guardrails)
    return Session(
        targets,
        guardrails=engine,
        retry=retry,
        timeout=timeout,
        on_event=on_event,
        meta=validate_meta(meta),
        continue_from_checkpoint=bool(continue_from_checkpoint),
        adapter=adapter,
        clock=clock,
        retry_after_output=bool(retry_after_output),
    )
