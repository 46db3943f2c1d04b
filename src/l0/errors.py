"""l0's error type and the one categorizer that maps any exception to an :class:`ErrorCategory`.

Categorization goes by exception *type* first (openai, litellm, httpx, asyncio and builtin
network classes), then by HTTP status code, and only then by message patterns — the way
``httpx`` maps lower-level exceptions to its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from l0.types import ErrorCategory, ErrorCode, ErrorRecord

if TYPE_CHECKING:
    from l0.guardrails.base import GuardrailViolation

__all__ = [
    "Classification",
    "GuardrailError",
    "InitialTokenTimeout",
    "InterTokenTimeout",
    "InvalidStreamError",
    "L0Error",
    "ModelRefusalError",
    "ProviderStreamError",
    "StreamError",
    "TruncatedStreamError",
    "ZeroOutputError",
    "categorize_error",
    "classify_error",
]


class L0Error(Exception):
    """A session failed for good.

    Attributes:
        code: the stable :class:`ErrorCode` of the failure that ended the session.
        category: its :class:`ErrorCategory`.
        errors: one :class:`ErrorRecord` per failed attempt, in order.
        checkpoint: the last text that passed guardrails (empty when nothing did).
        status_code: the provider's HTTP status of the last failure, when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode,
        category: ErrorCategory,
        errors: Sequence[ErrorRecord] = (),
        checkpoint: str = "",
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.category = category
        self.errors = list(errors)
        self.checkpoint = checkpoint
        self.status_code = status_code

    def __repr__(self) -> str:
        return f"L0Error(code={self.code.value}, category={self.category.value}, {self.message!r})"


# --- failures l0 detects in a stream ---------------------------------------------------------
# These travel inside ERROR events and ``ErrorRecord``s; a session that gives up raises
# ``L0Error`` with one of them as ``__cause__``. Each class knows its own category and code.


class StreamError(Exception):
    """Base of the failures l0 detects in a stream rather than receives from a client."""

    category: ErrorCategory = ErrorCategory.MODEL
    code: ErrorCode = ErrorCode.MODEL_ERROR


class InvalidStreamError(StreamError):
    """The provider sent a chunk l0 cannot understand (garbage, wrong shape, bad JSON)."""

    category = ErrorCategory.MODEL
    code = ErrorCode.INVALID_STREAM


class ModelRefusalError(StreamError):
    """The model refused (a refusal delta, or ``finish_reason="content_filter"``)."""

    category = ErrorCategory.MODEL
    code = ErrorCode.CONTENT_FILTERED


class ProviderStreamError(StreamError):
    """The provider reported an error inside the stream (e.g. a Responses API ``error`` or
    ``response.failed`` event). ``provider_code`` is the provider's own code, e.g.
    ``"rate_limit_exceeded"``; the categorizer maps it."""

    def __init__(
        self, message: str, *, provider_code: str | None = None, status_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.provider_code = provider_code
        self.status_code = status_code


class TruncatedStreamError(StreamError):
    """The stream ended without the provider's end marker (no ``finish_reason``, no
    ``response.completed``): the body was cut short, so the text may be incomplete."""

    category = ErrorCategory.NETWORK
    code = ErrorCode.STREAM_TRUNCATED


class InitialTokenTimeout(StreamError):
    """No first chunk within ``Timeout.initial_token`` seconds."""

    category = ErrorCategory.NETWORK
    code = ErrorCode.INITIAL_TOKEN_TIMEOUT


class InterTokenTimeout(StreamError):
    """The stream was silent for longer than ``Timeout.inter_token`` seconds."""

    category = ErrorCategory.NETWORK
    code = ErrorCode.INTER_TOKEN_TIMEOUT


class ZeroOutputError(StreamError):
    """The stream completed with no content and no tool call."""

    category = ErrorCategory.TRANSIENT
    code = ErrorCode.ZERO_OUTPUT


class GuardrailError(StreamError):
    """A guardrail (or drift detection) failed the attempt. ``violations`` lists what."""

    category = ErrorCategory.CONTENT
    code = ErrorCode.GUARDRAIL_VIOLATION

    def __init__(self, message: str, violations: Sequence[GuardrailViolation]) -> None:
        super().__init__(message)
        self.violations = list(violations)
        rules = {v.rule for v in self.violations}
        if "drift" in rules:
            self.code = ErrorCode.DRIFT_DETECTED
        elif rules == {"schema"}:
            self.code = ErrorCode.SCHEMA_VALIDATION_FAILED
        elif rules == {"zero_output"}:
            # Whitespace-only output is zero output: the retry table's transient row.
            self.code = ErrorCode.ZERO_OUTPUT
            self.category = ErrorCategory.TRANSIENT
        self.fatal = any(v.severity == "fatal" or not v.recoverable for v in self.violations)


@dataclass(frozen=True, slots=True)
class Classification:
    """What :func:`classify_error` learned about an exception.

    Attributes:
        category: how l0 treats it.
        code: the stable error code.
        status_code: the HTTP status, when the exception carried one.
        retry_after: seconds the provider asked to wait (``Retry-After``), when it did.
        error_type: the exception's class name (used as ``error.type``).
    """

    category: ErrorCategory
    code: ErrorCode
    status_code: int | None = None
    retry_after: float | None = None
    error_type: str | None = None


def classify_error(error: BaseException) -> Classification:
    """Classify any exception: category, stable code, status and ``Retry-After``."""
    from l0._classify import classify

    return classify(error)


def categorize_error(error: BaseException) -> ErrorCategory:
    """The :class:`ErrorCategory` of any exception (an :class:`L0Error` keeps its own).

    Example::

        try:
            text = await (await l0.run(stream=factory)).read()
        except Exception as error:
            if categorize_error(error) is ErrorCategory.FATAL:
                alert_on_call()
    """
    return classify_error(error).category
