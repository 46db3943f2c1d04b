"""Running l0's asyncio session behind a synchronous SDK call.

l0's session is async; ``client.chat.completions.create()`` on a sync client, or
``litellm.completion()``, must block and return. Each such call gets:

- a :class:`LoopThread`: a private event loop on its own daemon thread, which runs the session.
  The caller's thread drives it one step at a time (:meth:`LoopThread.run`), so the caller
  pulls chunks at its own pace and a caller that already runs an event loop is not disturbed;
- per attempt, a :class:`BlockingWorker`: one daemon thread that makes the SDK's blocking calls
  (the request, then each ``next()`` of its stream), so l0's timers keep running on the loop
  while a read blocks. A read l0 gave up on (timeout, abort) cannot be interrupted: its thread
  stays blocked until the SDK's own read timeout or the server ends it, then exits. Being a
  daemon, it never holds up interpreter exit.

Both end when the call ends: stream exhausted or failed, ``close()``, the caller's ``break``
(the chunk generator is closed), or garbage collection.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import logging
import queue
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["END", "BlockingWorker", "LoopThread", "SyncStreamReader"]

T = TypeVar("T")

_log = logging.getLogger("l0.instrumentation")

END: Any = object()
"""What :func:`_next_or_end` returns for an exhausted iterator (a ``StopIteration`` cannot
cross a future)."""

# How long closing a call waits for its loop thread to finish, in seconds. Closing a session
# only closes streams (no network round trip), so this is a safety net, not a wait.
_JOIN_TIMEOUT = 5.0


class LoopThread:
    """A private event loop running on its own daemon thread, for one synchronous call."""

    __slots__ = ("_closing", "_lock", "_running", "_stopped", "_thread", "loop")

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._lock = threading.Lock()
        self._stopped = False
        # Tasks are held here: the loop itself keeps only weak references to them.
        self._closing: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[Any]] = set()
        self._thread = threading.Thread(target=self._main, name="l0-sync-call", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    @property
    def in_loop_thread(self) -> bool:
        return threading.get_ident() == self._thread.ident

    def run(
        self,
        coroutine: Coroutine[Any, Any, T],
        context: contextvars.Context | None = None,
    ) -> T:
        """Run ``coroutine`` on the loop and block until it is done; its result or exception
        comes back to the calling thread. ``context``: the contextvars it runs in (the caller's,
        for the step that starts the session, so its spans get the caller's parent)."""
        if self._stopped:
            coroutine.close()
            raise RuntimeError("the call's event loop has already stopped")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def start() -> None:
            task = self.loop.create_task(coroutine)
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            task.add_done_callback(lambda done: _copy_outcome(done, future))

        self.loop.call_soon_threadsafe(start, context=context)
        return future.result()

    def close(self, finish: Callable[[], Coroutine[Any, Any, None]] | None = None) -> None:
        """Run ``finish()`` on the loop (e.g. close the session), then stop the loop and its
        thread. Idempotent. From the loop thread itself (a garbage collection there) it only
        schedules the same and returns."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        loop = self.loop

        async def shutdown() -> None:
            try:
                if finish is not None:
                    await finish()
            except Exception as error:  # closing must not fail the caller's cleanup
                _log.debug("closing an instrumented call failed: %r", error)
            finally:
                loop.stop()

        def begin() -> None:
            self._closing = loop.create_task(shutdown())

        try:
            loop.call_soon_threadsafe(begin)
        except RuntimeError:  # the loop is closed already
            return
        if not self.in_loop_thread:
            self._thread.join(_JOIN_TIMEOUT)


def _copy_outcome(task: asyncio.Task[T], future: concurrent.futures.Future[T]) -> None:
    if task.cancelled():
        future.cancel()
        return
    error = task.exception()
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(task.result())


class BlockingWorker:
    """One daemon thread that runs blocking SDK calls, one at a time, for one attempt.

    :meth:`run` awaits a call's result on the loop. When the awaiting side was cancelled (a
    timeout fired) and the call later returns a stream or response, that object is closed
    instead of leaked.
    """

    __slots__ = ("_jobs", "_thread")

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._main, name="l0-sync-io", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            loop, future, context, function, args = job
            try:
                value = context.run(function, *args)
            except BaseException as error:
                _deliver(loop, future, None, error)
            else:
                _deliver(loop, future, value, None)

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` on the worker thread, in a copy of the current context."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((loop, future, contextvars.copy_context(), function, args))
        return await future

    def stop(self) -> None:
        """Let the thread exit once its current call (if any) returns. Idempotent."""
        self._jobs.put(None)


def _deliver(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    value: Any,
    error: BaseException | None,
) -> None:
    def settle() -> None:
        if future.done():
            # Nobody waits any more (a timeout or an abort cancelled the wait).
            if error is None:
                _discard(value)
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the loop closed while the call ran
        if error is None:
            _discard(value)


def _discard(value: Any) -> None:
    close = getattr(value, "close", None)
    if callable(close):
        try:
            close()
        except Exception as error:
            _log.debug("closing an abandoned %s failed: %r", type(value).__qualname__, error)


def _next_or_end(iterator: Any) -> Any:
    try:
        return next(iterator)
    except StopIteration:
        return END


class SyncStreamReader:
    """An async iterator over a synchronous SDK stream, each ``next()`` made on the worker.

    Attributes:
        stream: the SDK's stream (``openai.Stream``, LiteLLM's ``CustomStreamWrapper``).
    """

    __slots__ = ("_iterator", "_worker", "stream")

    def __init__(self, stream: Any, worker: BlockingWorker) -> None:
        self.stream = stream
        self._worker = worker
        self._iterator: Any = None

    def __aiter__(self) -> SyncStreamReader:
        return self

    async def __anext__(self) -> Any:
        iterator = self._iterator
        if iterator is None:
            iterator = self._iterator = iter(self.stream)
        chunk = await self._worker.run(_next_or_end, iterator)
        if chunk is END:
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        """Close the SDK stream (releasing its connection) and let the worker exit."""
        try:
            _discard(self.stream)
        finally:
            self._worker.stop()
