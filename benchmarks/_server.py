"""The chaos server for the benchmarks, in its own process: ``python benchmarks/_server.py``.

Prints its OpenAI base URL on stdout, then serves until SIGTERM/SIGINT. It is ``l0 chaos``
with two differences that matter for timing: no access log, and the listening socket is
created with ``IPPROTO_TCP``. asyncio sets ``TCP_NODELAY`` only on sockets whose ``proto`` says
TCP; on a socket made with ``socket.socket(family, SOCK_STREAM)`` (proto 0) Nagle stays on, and
the last small write of every response waits for the client's delayed ACK — 40 ms per
request on Linux, which would swamp every per-session figure.
"""

from __future__ import annotations

import socket
import sys

import uvicorn

from l0.chaos import create_app
from l0.chaos.server import uvicorn_server


def main() -> int:
    app = create_app(seed=0)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        http="h11",
        lifespan="off",
        date_header=False,
        access_log=False,
        log_level="warning",
        backlog=4096,
    )
    server = uvicorn_server(app.state.chaos, config, handle_signals=True)
    print(f"base URL http://127.0.0.1:{port}/v1", flush=True)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
