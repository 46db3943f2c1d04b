"""The reliability policy an instrumented call runs under: what ``instrument(...)`` was given.

One immutable :class:`Policy` per ``instrument()``; every patched call reads it. Options are
validated when ``instrument()`` is called, so a typo fails there and not in the middle of a
request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from l0.config import ConfigError, Retry, Timeout
from l0.guardrails.base import GuardrailRule
from l0.observability.bus import Sink

__all__ = ["DEFAULT_STREAMING_TIMEOUT", "NON_STREAMING_TIMEOUT", "Policy"]

DEFAULT_STREAMING_TIMEOUT = Timeout(initial_token=60.0, inter_token=30.0)
"""The l0 timers for instrumented streaming calls unless ``instrument(timeout=...)`` says
otherwise. Far more lenient than ``l0.Timeout()``'s 5 s / 10 s: zero-code instrumentation must
not cut off a reasoning model or a long prompt that the application's code was happy to wait
for; these catch streams that have really hung."""

NON_STREAMING_TIMEOUT = Timeout(initial_token=None, inter_token=None)
"""The l0 timers for a non-streaming call: none. Its "first chunk" is the whole answer, so a
time-to-first-token budget would cap the length of every answer; the SDK's own request
``timeout`` bounds such a call (a timeout it raises is retried like any network failure)."""


@dataclass(frozen=True, slots=True)
class Policy:
    """How l0 runs the calls it instruments.

    Attributes:
        retry: the retry policy (``None``: ``l0.Retry()``).
        timeout: the stream timers for streaming calls (``None``:
            :data:`DEFAULT_STREAMING_TIMEOUT`, 60 s to the first token, 30 s between chunks).
            Non-streaming calls use :data:`NON_STREAMING_TIMEOUT`.
        guardrails: rules checked over every answer; a violation is retried before any output
            reached the caller.
        fallbacks: requested model → models to try, in order, when it fails for good
            (the same call with ``model`` replaced).
        continuation: after a failure mid-stream, continue from the delivered text (the
            caller sees one continuous stream) instead of raising the SDK's exception.
        on_event: receives every l0 observability event of instrumented calls.
    """

    retry: Retry | None = None
    timeout: Timeout | None = None
    guardrails: tuple[GuardrailRule, ...] = ()
    fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    continuation: bool = False
    on_event: Sink | None = None

    @classmethod
    def from_options(
        cls,
        *,
        retry: Any = None,
        timeout: Any = None,
        guardrails: Any = None,
        fallbacks: Any = None,
        continuation: Any = False,
        on_event: Any = None,
    ) -> Policy:
        """Validate ``instrument()``'s options; raise :class:`l0.ConfigError` naming the bad one."""
        if retry is not None and not isinstance(retry, Retry):
            raise ConfigError("L0Instrumentor", "retry", "must be an l0.Retry", retry)
        if timeout is not None and not isinstance(timeout, Timeout):
            raise ConfigError("L0Instrumentor", "timeout", "must be an l0.Timeout", timeout)
        if on_event is not None and not callable(on_event):
            raise ConfigError("L0Instrumentor", "on_event", "must be callable", on_event)
        return cls(
            retry=retry,
            timeout=timeout,
            guardrails=_rules(guardrails),
            fallbacks=_fallbacks(fallbacks),
            continuation=bool(continuation),
            on_event=on_event,
        )

    def fallback_models(self, model: Any) -> tuple[str, ...]:
        """The models to fall back to from ``model``, in order (empty when none)."""
        if not isinstance(model, str):
            return ()
        return self.fallbacks.get(model, ())


def _rules(value: Any) -> tuple[GuardrailRule, ...]:
    if value is None:
        return ()
    if isinstance(value, GuardrailRule):
        return (value,)
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ConfigError(
            "L0Instrumentor", "guardrails", "must be a list of GuardrailRule objects", value
        )
    for index, rule in enumerate(value):
        if not isinstance(rule, GuardrailRule):
            raise ConfigError(
                "L0Instrumentor", f"guardrails[{index}]", "must be a GuardrailRule", rule
            )
    return tuple(value)


def _fallbacks(value: Any) -> dict[str, tuple[str, ...]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(
            "L0Instrumentor",
            "fallbacks",
            'must map a model to its fallback models, e.g. {"gpt-4o": ["gpt-4o-mini"]}',
            value,
        )
    mapping: dict[str, tuple[str, ...]] = {}
    for model, targets in value.items():
        if not isinstance(model, str) or not model:
            raise ConfigError("L0Instrumentor", "fallbacks", "keys must be model names", model)
        if isinstance(targets, str):
            targets = (targets,)
        if not isinstance(targets, Sequence) or not all(isinstance(t, str) and t for t in targets):
            raise ConfigError(
                "L0Instrumentor",
                f"fallbacks[{model!r}]",
                "must be a model name or a list of model names",
                targets,
            )
        mapping[model] = tuple(targets)
    return mapping
