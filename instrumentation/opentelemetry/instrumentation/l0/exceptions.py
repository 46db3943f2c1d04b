"""What an instrumented call raises: the SDK's own exceptions, so existing handlers still work.

When l0 gives up it raises :class:`l0.L0Error`, whose ``__cause__`` is the last attempt's
failure. The caller of an instrumented SDK method wrote ``except openai.APIError`` (or
LiteLLM's equivalents) and must not need to change it, so:

- a failure the SDK raised (``APIStatusError``, ``APIConnectionError``, ``RateLimitError`` …) is
  re-raised as is: the same object, its own ``__cause__`` intact, the ``L0Error`` (with every
  attempt's record) attached as its ``__context__``;
- a failure l0 detected that the SDK reports as a connection problem — a timeout l0's watchdog
  fired, a stream cut short without its end marker — becomes the SDK's class for it
  (``openai.APITimeoutError`` / ``openai.APIConnectionError``, ``litellm.Timeout`` /
  ``litellm.APIConnectionError``), caused by the ``L0Error``;
- anything else l0 detected (a guardrail violation, zero output, a refusal, an unreadable
  stream) has no SDK equivalent: the ``L0Error`` itself is raised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from l0.errors import InitialTokenTimeout, InterTokenTimeout, L0Error, StreamError
from l0.types import ErrorCategory

__all__ = ["SdkErrors", "sdk_exception"]


@dataclass(frozen=True, slots=True)
class SdkErrors:
    """How to build the SDK's connection exceptions for one call.

    Attributes:
        timeout: builds the SDK's timeout exception from a message.
        connection: builds the SDK's connection exception from a message.
    """

    timeout: Callable[[str], BaseException]
    connection: Callable[[str], BaseException]


def sdk_exception(error: L0Error, errors: SdkErrors | None) -> BaseException:
    """The exception the caller of the SDK method gets for ``error`` (see the module doc)."""
    cause = error.__cause__
    if cause is None:
        return error
    if not isinstance(cause, StreamError):
        return cause
    if errors is None or cause.category is not ErrorCategory.NETWORK:
        return error
    message = f"{cause} (l0: {error.message})"
    try:
        if isinstance(cause, (InitialTokenTimeout, InterTokenTimeout)):
            mapped = errors.timeout(message)
        else:
            mapped = errors.connection(message)
    except Exception:  # an SDK whose constructor changed: still raise something meaningful
        return error
    mapped.__cause__ = error
    return mapped
