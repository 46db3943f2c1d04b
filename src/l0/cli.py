"""The ``l0`` command: ``l0 chaos`` runs the fault-injecting server, ``l0 demo`` the demo."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import ipaddress
import socket
import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``l0`` command line; returns the process exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["demo"]:
        # The demo parses its own options (argparse's REMAINDER cannot pass `--only 5` on).
        return _demo(arguments[1:])
    parser = _parser()
    args = parser.parse_args(arguments)
    if args.command == "chaos":
        return _chaos(args)
    if args.command == "demo":
        return _demo(list(args.rest))
    parser.print_help()
    return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="l0", description="Reliable, observable LLM token streams."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    chaos = commands.add_parser(
        "chaos",
        help="run an OpenAI-compatible server that injects faults on request",
        description=(
            "Serve /v1/chat/completions, /v1/responses and /v1/models with faults chosen "
            "per request in the model name (gpt-4o-mini+drop@12) or the X-L0-Chaos header. "
            "Counters: GET /_chaos/stats. Grammar: docs/chaos.md."
        ),
    )
    chaos.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback)")
    chaos.add_argument("--port", type=int, default=8765, help="port (default: 8765; 0 = any)")
    chaos.add_argument("--seed", type=int, default=0, help="seed for content and ids")
    chaos.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="multiply every injected delay (0.1 = ten times faster)",
    )

    demo = commands.add_parser("demo", help="watch l0 recover from injected faults")
    demo.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for the demo")
    return parser


def _chaos(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from l0.chaos import create_app
        from l0.chaos.server import uvicorn_server
    except ImportError as exc:
        print(f"l0 chaos needs the 'chaos' extra: pip install 'l0[chaos]' ({exc})", file=sys.stderr)
        return 2
    if args.time_scale < 0:
        print("--time-scale must be >= 0", file=sys.stderr)
        return 2
    if not _is_loopback(args.host):
        print(
            f"warning: binding {args.host}: the chaos server will answer anyone who can reach it",
            file=sys.stderr,
        )
    app = create_app(seed=args.seed, time_scale=args.time_scale)
    # Bind before printing so `--port 0` can report the port it got.
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    # IPPROTO_TCP: asyncio then disables Nagle, so short responses are not held ~40 ms.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        sock.close()
        print(f"l0 chaos: cannot bind {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, http="h11", lifespan="off", date_header=False, timeout_graceful_shutdown=2
    )
    server = uvicorn_server(app.state.chaos, config, handle_signals=True)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"l0 chaos: OpenAI-compatible base URL http://{host}:{port}/v1", file=sys.stderr)
    print(f"          counters at http://{host}:{port}/_chaos/stats", file=sys.stderr)
    # uvicorn re-raises the SIGINT it handled once shutdown is done: that is the normal exit.
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _demo(rest: list[str]) -> int:
    try:
        demo = importlib.import_module("l0.demo")
    except ModuleNotFoundError as exc:
        if exc.name != "l0.demo":
            raise
        print(
            "l0 demo is not available in this version of l0 (no l0.demo module).", file=sys.stderr
        )
        return 2
    result = demo.main(rest)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
