"""Run the chaos app in-process: on a free loopback port, ready on entry, stopped on exit."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import threading
from collections.abc import AsyncIterator, Generator, Iterator
from typing import TYPE_CHECKING, Any

from l0.chaos.app import ChaosState, create_app

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["ChaosServer", "serve", "serve_in_thread", "uvicorn_server"]

LOOPBACK = "127.0.0.1"


class ChaosServer:
    """A chaos server running in the current event loop.

    Args:
        host: the interface to bind; loopback by default. Anything else exposes a server
            that answers anyone, so it has to be asked for explicitly.
        port: the port; ``0`` picks a free one.
        seed: default seed for generated content and ids.
        time_scale: multiplies every injected delay (``0.1`` runs scenarios 10× faster).

    Example::

        async with ChaosServer(time_scale=0.1) as server:
            client = openai.AsyncOpenAI(base_url=server.base_url, api_key="x")
            ...
            assert server.stats()["total"]["disconnected"] == 1
    """

    def __init__(
        self,
        *,
        host: str = LOOPBACK,
        port: int = 0,
        seed: int = 0,
        time_scale: float = 1.0,
    ) -> None:
        self.host = host
        self.port = port
        self.app: Starlette = create_app(seed=seed, time_scale=time_scale)
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None

    @property
    def state(self) -> ChaosState:
        """The app's counters and settings."""
        state: ChaosState = self.app.state.chaos
        return state

    @property
    def url(self) -> str:
        """The server's root URL, e.g. ``http://127.0.0.1:54321`` (stats live under it)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (``…/v1``) to hand to a client."""
        return self.url + "/v1"

    def stats(self) -> dict[str, Any]:
        """The same document as ``GET /_chaos/stats``."""
        return self.state.stats()

    def reset(self) -> None:
        """Zero the counters, as ``POST /_chaos/reset`` does."""
        self.state.reset()

    async def start(self) -> None:
        """Bind, start serving, and return once the server accepts connections."""
        import uvicorn

        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP explicitly: asyncio only turns Nagle off (TCP_NODELAY) on sockets that say
        # they are TCP; otherwise every short response waits ~40 ms for a delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        # Binding ourselves (rather than letting uvicorn do it) is what makes port=0 work:
        # we learn the port before serving, with no window for another process to take it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            http="h11",  # one HTTP implementation, so drops look the same everywhere
            lifespan="off",
            log_config=None,  # never reconfigure the host application's logging
            access_log=False,
            timeout_graceful_shutdown=2,
            date_header=False,  # wall-clock headers would break "same request, same bytes"
        )
        server = uvicorn_server(self.state, config, handle_signals=False)
        self._server = server
        self._task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if self._task.done():
                sock.close()
                self._task.result()  # re-raise the startup error
                raise RuntimeError("chaos server stopped during startup")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        """End open streams (stalls included) and shut the server down."""
        if self._task is None:
            return
        self.state.close()  # at once, not at uvicorn's next 0.1 s tick
        self._server.should_exit = True
        task, self._task = self._task, None
        await task

    async def __aenter__(self) -> ChaosServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


def uvicorn_server(state: ChaosState, config: Any, *, handle_signals: bool) -> Any:
    """A ``uvicorn.Server`` for the chaos app whose shutdown ends stalled streams first.

    ``handle_signals=False`` (in-process servers) leaves SIGINT/SIGTERM alone.
    """
    return _server_class(handle_signals)(config, state)


@functools.cache
def _server_class(handle_signals: bool) -> type[Any]:
    import uvicorn

    class Server(uvicorn.Server):
        def __init__(self, config: uvicorn.Config, state: ChaosState) -> None:
            super().__init__(config)
            self.chaos_state = state

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            # uvicorn's graceful shutdown waits for open responses, and a `stall@K` stream
            # never ends by itself: wake every chaos pause first.
            self.chaos_state.close()
            await super().shutdown(sockets=sockets)

    if handle_signals:
        return Server

    class QuietServer(Server):
        # uvicorn installs process-wide SIGINT/SIGTERM handlers while it serves. In-process
        # servers must not: two of them stopping out of order would leave a dead handler
        # installed and Ctrl-C would stop working for the host program.
        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            yield

    return QuietServer


@contextlib.asynccontextmanager
async def serve(
    *,
    host: str = LOOPBACK,
    port: int = 0,
    seed: int = 0,
    time_scale: float = 1.0,
) -> AsyncIterator[str]:
    """Run a chaos server for the duration of an ``async with`` block; yields its base URL.

    Example::

        async with l0.chaos.serve() as base_url:
            client = openai.AsyncOpenAI(base_url=base_url, api_key="x")
            stream = await client.chat.completions.create(
                model="gpt-4o-mini+drop@5", messages=[...], stream=True
            )
    """
    async with ChaosServer(host=host, port=port, seed=seed, time_scale=time_scale) as server:
        yield server.base_url


@contextlib.contextmanager
def serve_in_thread(
    *,
    host: str = LOOPBACK,
    port: int = 0,
    seed: int = 0,
    time_scale: float = 1.0,
) -> Iterator[str]:
    """Run a chaos server on its own thread and event loop; yields its base URL.

    For synchronous code, and for fixtures that outlive one test's event loop.

    Example::

        with l0.chaos.serve_in_thread() as base_url:
            client = openai.OpenAI(base_url=base_url, api_key="x")
    """
    server = ChaosServer(host=host, port=port, seed=seed, time_scale=time_scale)
    ready = threading.Event()
    failure: list[BaseException] = []
    loop_box: list[asyncio.AbstractEventLoop] = []
    stop: list[asyncio.Event] = []

    async def main() -> None:
        stop.append(asyncio.Event())
        loop_box.append(asyncio.get_running_loop())
        try:
            await server.start()
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            return
        ready.set()
        try:
            await stop[0].wait()
        finally:
            await server.stop()

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="l0-chaos", daemon=True)
    thread.start()
    ready.wait()
    if failure:
        thread.join()
        raise failure[0]
    try:
        yield server.base_url
    finally:
        loop_box[0].call_soon_threadsafe(stop[0].set)
        thread.join()
