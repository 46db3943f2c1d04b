"""l0's error type and the one categorizer that maps any exception to an :class:`ErrorCategory`.

Categorization goes by exception *type* first (openai, litellm, httpx, asyncio and builtin
network classes), then by HTTP status code, and only then by message patterns — the way
``httpx`` maps lower-level exceptions to its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from l0.types import ErrorCategory, ErrorCode, ErrorRecord

__all__ = [
    "Classification",
    "L0Error",
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
