"""Targets: the primary stream factory and each fallback, in the order they are tried.

Each target is one ``chat {model}`` span (the GenAI call, covering all retries on it).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from types import FunctionType
from typing import Any

from l0.config import ConfigError
from l0.types import AttemptContext

__all__ = ["StreamFactory", "Target", "inside_attempt", "make_targets"]

_OPENING: ContextVar[bool] = ContextVar("l0_opening_stream", default=False)


def inside_attempt() -> bool:
    """True while l0 is calling a stream factory for an attempt.

    Integrations that route SDK calls through l0 (the instrumentor) check it so that the call a
    user's own ``l0.run(lambda: client...create())`` makes is not wrapped in a second session.
    """
    return _OPENING.get()


StreamFactory = Callable[..., Any]
"""``() -> stream`` or ``(AttemptContext) -> stream``; the stream may be an awaitable of one."""


@dataclass(frozen=True, slots=True)
class Target:
    """One way to produce the stream, with what is known about the call up front.

    ``model``/``provider``/``server_*``/``request`` are filled by integrations that see the
    request (the instrumentor); for a plain factory they stay empty and the span learns the
    model from the response.
    """

    factory: StreamFactory
    index: int
    takes_context: bool
    model: str | None = None
    provider: str | None = None
    server_address: str | None = None
    server_port: int | None = None
    request: Mapping[str, Any] = field(default_factory=dict)

    def open(self, context: AttemptContext) -> Any:
        """Call the factory (the caller awaits the result if it is awaitable, inside
        :meth:`opening`)."""
        if self.takes_context:
            return self.factory(context)
        return self.factory()

    @staticmethod
    def opening() -> AbstractContextManager[None]:
        """Marks the enclosed factory call (and its await) for :func:`inside_attempt`."""
        return _Opening()


class _Opening:
    """``Target.opening``'s context manager (a class: a generator-based one costs ~1.5 µs
    more per attempt)."""

    __slots__ = ("_token",)

    def __init__(self) -> None:
        self._token: Token[bool] | None = None

    def __enter__(self) -> None:
        self._token = _OPENING.set(True)

    def __exit__(self, *_: object) -> None:
        if self._token is not None:
            _OPENING.reset(self._token)
            self._token = None


def _required_positional(factory: StreamFactory) -> int:
    """How many positional parameters ``factory`` requires (-1: no signature to read)."""
    if type(factory) is FunctionType and not factory.__dict__:
        # A plain function or lambda (no ``__wrapped__``/``__signature__``): the code object
        # says it all, in a fraction of inspect.signature's ~4 µs per session.
        return factory.__code__.co_argcount - len(factory.__defaults__ or ())
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return -1
    return sum(
        1
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    )


def _takes_context(factory: StreamFactory) -> bool:
    required = _required_positional(factory)
    if required > 1:
        raise ConfigError(
            "run",
            "stream",
            "a stream factory takes no parameter or one (an AttemptContext)",
            factory,
        )
    return required == 1


def make_targets(stream: Any, fallbacks: Sequence[Any] | None) -> list[Target]:
    """Validate the factories and wrap them as targets (primary first)."""
    if isinstance(stream, Target):
        targets = [stream]
    elif callable(stream):
        targets = [Target(stream, 0, _takes_context(stream))]
    else:
        hint = (
            "; to wrap an existing stream use l0.wrap(stream)"
            if hasattr(stream, "__aiter__") or inspect.isawaitable(stream)
            else ""
        )
        raise ConfigError(
            "run", "stream", f"must be a callable returning a stream (a factory){hint}", stream
        )
    if fallbacks is not None:
        if isinstance(fallbacks, (str, bytes)) or not isinstance(fallbacks, Sequence):
            raise ConfigError("run", "fallbacks", "must be a list of stream factories", fallbacks)
        for offset, item in enumerate(fallbacks, start=1):
            if isinstance(item, Target):
                targets.append(
                    Target(
                        item.factory,
                        offset,
                        item.takes_context,
                        item.model,
                        item.provider,
                        item.server_address,
                        item.server_port,
                        item.request,
                    )
                )
            elif callable(item):
                targets.append(Target(item, offset, _takes_context(item)))
            else:
                raise ConfigError(
                    "run", f"fallbacks[{offset - 1}]", "must be a callable returning a stream", item
                )
    return targets
