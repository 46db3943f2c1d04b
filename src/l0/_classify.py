"""The error categorizer behind :func:`l0.errors.classify_error`.

One question, asked once per failed attempt: what kind of failure is this, and how should the
retry engine treat it? The answer is found in this order, first hit wins:

1. l0's own errors: :class:`~l0.errors.L0Error` keeps its category and code; each
   :class:`~l0.errors.StreamError` carries them as class attributes, except
   :class:`~l0.errors.ProviderStreamError`, which is mapped from the provider's own code.
2. The exception *type*, looked up along its MRO in one table (the most specific class wins),
   the way ``httpx`` maps lower-level exceptions to its own: openai, litellm, httpx / httpx2,
   asyncio and the builtin network and programming errors.
3. An HTTP status carried by the exception (``status_code``, ``response.status_code``,
   ``status``).
4. The exception it was explicitly raised from (``raise ... from cause``).
5. Message phrases (the seed's network patterns and a few provider phrases), matched as whole
   words, never as substrings.
6. Otherwise the failure is a bug: ``INTERNAL``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import math
import re
import socket
import ssl
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import timezone
from typing import Any, NamedTuple, TypeAlias

from l0.errors import Classification, L0Error, ProviderStreamError, StreamError
from l0.types import ErrorCategory, ErrorCode

__all__ = ["classify", "is_retryable_provider"]

_Cat = ErrorCategory
_Code = ErrorCode


class _Verdict(NamedTuple):
    category: ErrorCategory
    code: ErrorCode
    # The exception the verdict was read from, when it is not the one being classified (a
    # ``__cause__``, litellm's ``original_exception``): status and Retry-After come from it.
    source: BaseException | None = None


# A rule returns ``None`` when it has no opinion; the MRO walk then goes on to the base class.
# It gets the nesting depth so a rule that looks into a wrapped exception stays bounded.
_Rule: TypeAlias = Callable[[BaseException, int], "_Verdict | None"]
_Entry: TypeAlias = "_Verdict | _Rule"

_MAX_CAUSE_DEPTH = 4


def classify(error: BaseException) -> Classification:
    """Classify any exception: category, stable code, HTTP status and ``Retry-After``.

    ``error_type`` is always the class name of ``error`` itself, even when the verdict was read
    from the exception it wraps.

    Example::

        >>> classify(ConnectionResetError()).category
        <ErrorCategory.NETWORK: 'network'>
    """
    verdict = _resolve(error, 0) or _INTERNAL
    source = verdict.source or error
    if isinstance(error, L0Error):
        status = error.status_code
    elif verdict.category is _Cat.NETWORK:
        # litellm stamps connection errors with a made-up status (500 for APIConnectionError,
        # 408 for Timeout): a connection-level failure has an HTTP status only if a response
        # actually arrived.
        status = _status(_attr(source, "response"))
    else:
        status = _status_of(source)
    return Classification(
        category=verdict.category,
        code=verdict.code,
        status_code=status,
        retry_after=_retry_after(source),
        error_type=type(error).__name__,
    )


def is_retryable_provider(c: Classification) -> bool:
    """Whether a ``PROVIDER`` failure is worth retrying on the same target.

    Only request timeouts (408, or code ``TIMEOUT``), conflicts (409) and "too early" (425) are;
    every other provider error (400, 404, 422, …) goes straight to the next fallback.
    """
    if c.category is not _Cat.PROVIDER:
        return False
    return c.status_code in (408, 409, 425) or c.code is _Code.TIMEOUT


def _resolve(error: BaseException, depth: int) -> _Verdict | None:
    rules = _TYPE_TABLE.rules()
    for cls in type(error).__mro__:
        entry = rules.get(cls)
        if entry is not None:
            verdict = entry if isinstance(entry, _Verdict) else entry(error, depth)
            if verdict is not None:
                return verdict
    # KeyboardInterrupt, SystemExit, CancelledError… are never a provider's doing.
    if not isinstance(error, Exception):
        return None
    verdict = _by_status(error)
    if verdict is not None:
        return verdict
    cause = error.__cause__
    if cause is not None and depth < _MAX_CAUSE_DEPTH:
        inner = _resolve(cause, depth + 1)
        if inner is not None:
            return inner if inner.source is not None else inner._replace(source=cause)
    return _by_message(_text(error))


# --- the type table -----------------------------------------------------------------------


# A table entry is either a fixed verdict or a rule for the classes that need a closer look.
_NETWORK = _Verdict(_Cat.NETWORK, _Code.NETWORK_ERROR)
_NETWORK_TIMEOUT = _Verdict(_Cat.NETWORK, _Code.TIMEOUT)
_RATE_LIMITED = _Verdict(_Cat.TRANSIENT, _Code.RATE_LIMITED)
_SERVER_ERROR = _Verdict(_Cat.TRANSIENT, _Code.SERVER_ERROR)
_AUTH = _Verdict(_Cat.FATAL, _Code.AUTH_ERROR)
# Quota and billing: waiting does not refill an account, so not retried; a fallback may work.
_NO_FUNDS = _Verdict(_Cat.FATAL, _Code.QUOTA_EXCEEDED)
_BAD_REQUEST = _Verdict(_Cat.PROVIDER, _Code.BAD_REQUEST)
_NOT_FOUND = _Verdict(_Cat.PROVIDER, _Code.NOT_FOUND)
_PROVIDER = _Verdict(_Cat.PROVIDER, _Code.PROVIDER_ERROR)
_PROVIDER_TIMEOUT = _Verdict(_Cat.PROVIDER, _Code.TIMEOUT)
_CONTEXT = _Verdict(_Cat.PROVIDER, _Code.CONTEXT_LENGTH_EXCEEDED)
# The *request* was rejected by a policy filter: a retry would send the same prompt again.
_REQUEST_FILTERED = _Verdict(_Cat.PROVIDER, _Code.CONTENT_FILTERED)
# The *output* was filtered: another sample may pass, so it counts toward ``attempts``.
_OUTPUT_FILTERED = _Verdict(_Cat.MODEL, _Code.CONTENT_FILTERED)
_INVALID_STREAM = _Verdict(_Cat.MODEL, _Code.INVALID_STREAM)
_MODEL_ERROR = _Verdict(_Cat.MODEL, _Code.MODEL_ERROR)
_PROVIDER_REPORTED = _Verdict(_Cat.MODEL, _Code.PROVIDER_ERROR)
_INTERNAL = _Verdict(_Cat.INTERNAL, _Code.INTERNAL_ERROR)


def _own_error(error: BaseException, depth: int = 0) -> _Verdict:
    # ``GuardrailError`` sets ``code`` per instance (drift), so read the instance.
    category: ErrorCategory = getattr(error, "category", _Cat.INTERNAL)
    code: ErrorCode = getattr(error, "code", _Code.INTERNAL_ERROR)
    return _Verdict(category, code)


def _status_rule(error: BaseException, depth: int = 0) -> _Verdict:
    return _by_status(error) or _PROVIDER


def _rate_limit_rule(error: BaseException, depth: int = 0) -> _Verdict:
    # OpenAI answers an empty account with 429 ``insufficient_quota``: not a rate limit.
    if any(code in _NO_FUNDS_CODES for code in _codes_of(error)):
        return _NO_FUNDS
    return _RATE_LIMITED


def _bad_request_rule(error: BaseException, depth: int = 0) -> _Verdict:
    if _mentions_context_length(error):
        return _CONTEXT
    if any(code in _FILTER_CODES for code in _codes_of(error)):
        return _REQUEST_FILTERED
    return _BAD_REQUEST


def _provider_reported(error: BaseException, depth: int = 0) -> _Verdict:
    """An error the provider reported without (or inside) an HTTP response: an SSE ``error``
    event, a Responses API ``response.failed``. Its own code says most."""
    for code in _codes_of(error):
        verdict = _PROVIDER_CODES.get(code)
        if verdict is not None:
            if verdict.code is _Code.BAD_REQUEST and _mentions_context_length(error):
                return _CONTEXT
            return verdict
    return _by_status(error) or _by_message(_text(error)) or _PROVIDER_REPORTED


def _original_exception_rule(error: BaseException, depth: int) -> _Verdict | None:
    # litellm's MidStreamFallbackError wraps whatever broke the stream; that decides.
    original = _attr(error, "original_exception")
    if isinstance(original, BaseException) and depth < _MAX_CAUSE_DEPTH:
        verdict = _resolve(original, depth + 1)
        if verdict is not None:
            return verdict if verdict.source is not None else verdict._replace(source=original)
    return None


_HTTPX_RULES: dict[str, _Entry] = {
    # Ordered base first; the MRO walk, not this order, makes the most specific class win.
    "RequestError": _NETWORK,
    "TransportError": _NETWORK,
    "TimeoutException": _NETWORK_TIMEOUT,
    "NetworkError": _NETWORK,
    "ProtocolError": _NETWORK,
    "RemoteProtocolError": _NETWORK,
    "ProxyError": _NETWORK,
    # The client built a request it cannot send (no Host header, an ``ftp://`` base URL):
    # deterministic, so no retry here, but another target may be configured right.
    "LocalProtocolError": _BAD_REQUEST,
    "UnsupportedProtocol": _BAD_REQUEST,
    "DecodingError": _INVALID_STREAM,
    "TooManyRedirects": _PROVIDER,
    "HTTPStatusError": _status_rule,
    # Misuse of the client (reading a closed or consumed stream, a bad URL): bugs.
    "InvalidURL": _INTERNAL,
    "CookieConflict": _INTERNAL,
    "StreamError": _INTERNAL,
}

# Keyed by the module the classes are looked up in. Only modules already in ``sys.modules``
# are consulted: an exception of a library nobody imported cannot exist, and importing litellm
# just to classify a ``KeyError`` would cost seconds (and a network fetch).
_LIBRARY_RULES: dict[str, dict[str, _Entry]] = {
    "httpx": _HTTPX_RULES,
    "httpx2": _HTTPX_RULES,  # openai 3.x sends its HTTP through httpx2
    "openai": {
        "APIError": _provider_reported,
        "APIConnectionError": _NETWORK,
        "APITimeoutError": _NETWORK_TIMEOUT,
        "APIResponseValidationError": _INVALID_STREAM,
        "APIStatusError": _status_rule,
        "BadRequestError": _bad_request_rule,
        "AuthenticationError": _AUTH,
        "PermissionDeniedError": _AUTH,
        "NotFoundError": _NOT_FOUND,
        "ConflictError": _PROVIDER,  # 409: retryable, see is_retryable_provider
        "UnprocessableEntityError": _bad_request_rule,
        "RateLimitError": _rate_limit_rule,
        "InternalServerError": _SERVER_ERROR,
        "LengthFinishReasonError": _MODEL_ERROR,
        "ContentFilterFinishReasonError": _OUTPUT_FILTERED,
        "WebSocketConnectionClosedError": _NETWORK,
    },
    "openai._exceptions": {"SubjectTokenProviderError": _AUTH},
    # Most litellm classes subclass openai's and inherit the right rule; these do not, or
    # subclass a class whose rule is wrong for them.
    "litellm.exceptions": {
        "Timeout": _NETWORK_TIMEOUT,
        "APIConnectionError": _NETWORK,
        "ServiceUnavailableError": _SERVER_ERROR,  # subclasses openai.APIStatusError
        "BadGatewayError": _SERVER_ERROR,  # subclasses openai.APIStatusError
        "MidStreamFallbackError": _original_exception_rule,  # else: ServiceUnavailableError
        "ContextWindowExceededError": _CONTEXT,  # subclasses BadRequestError
        "ContentPolicyViolationError": _REQUEST_FILTERED,  # subclasses BadRequestError
        "PaymentRequiredError": _NO_FUNDS,  # subclasses BadRequestError, status 402
        "BudgetExceededError": _NO_FUNDS,  # plain Exception, status 422 by default
        "JSONSchemaValidationError": _Verdict(_Cat.MODEL, _Code.SCHEMA_VALIDATION_FAILED),
        "GuardrailRaisedException": _REQUEST_FILTERED,  # plain Exception, status 400
        "BlockedPiiEntityError": _REQUEST_FILTERED,  # plain Exception, status 400
    },
}

_PROGRAMMING_ERRORS: tuple[type[BaseException], ...] = (
    TypeError,
    LookupError,
    AttributeError,
    ValueError,
    NameError,
    ArithmeticError,
    AssertionError,
    NotImplementedError,
    RecursionError,
    ImportError,
    SyntaxError,
    StopIteration,
    StopAsyncIteration,
    MemoryError,
    SystemError,
    BufferError,
    ReferenceError,
    # OSErrors that come from the file system, not the network (a prompt file that is not
    # there is not worth six retries).
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)


def _builtin_rules() -> dict[type[BaseException], _Entry]:
    rules: dict[type[BaseException], _Entry] = {
        L0Error: _own_error,
        StreamError: _own_error,
        ProviderStreamError: _provider_reported,
        OSError: _NETWORK,  # sockets, including ssl.SSLError and socket.gaierror
        ConnectionError: _NETWORK,  # reset, refused, aborted, BrokenPipeError
        ssl.SSLError: _NETWORK,
        socket.gaierror: _NETWORK,
        socket.herror: _NETWORK,
        asyncio.IncompleteReadError: _NETWORK,
        # Builtin TimeoutError is an OSError; on 3.10 the asyncio and futures ones are not.
        TimeoutError: _NETWORK_TIMEOUT,
        asyncio.TimeoutError: _NETWORK_TIMEOUT,
        concurrent.futures.TimeoutError: _NETWORK_TIMEOUT,
        # Not a failure at all; the runtime never retries it.
        asyncio.CancelledError: _INTERNAL,
    }
    for cls in _PROGRAMMING_ERRORS:
        rules[cls] = _INTERNAL
    return rules


class _TypeTable:
    """The type table, built on first use and rebuilt when a mapped library gets imported."""

    __slots__ = ("_loaded", "_rules")

    def __init__(self) -> None:
        self._loaded: tuple[bool, ...] | None = None
        self._rules: dict[type[BaseException], _Entry] = {}

    def rules(self) -> dict[type[BaseException], _Entry]:
        modules = sys.modules
        loaded = tuple(name in modules for name in _LIBRARY_RULES)
        if loaded != self._loaded:
            # Rebuilt into a fresh dict and swapped in whole, so a concurrent reader never
            # sees a half-filled table.
            self._rules = self._build()
            self._loaded = loaded
        return self._rules

    @staticmethod
    def _build() -> dict[type[BaseException], _Entry]:
        rules = _builtin_rules()
        for module_name, by_name in _LIBRARY_RULES.items():
            module = sys.modules.get(module_name)
            if module is None:
                continue
            for class_name, rule in by_name.items():
                cls = getattr(module, class_name, None)
                # Names come and go between versions (MidStreamFallbackError is recent).
                if isinstance(cls, type) and issubclass(cls, BaseException):
                    rules[cls] = rule
        return rules


_TYPE_TABLE = _TypeTable()


# --- HTTP status codes and the provider's own error codes ---------------------------------


def _by_status(error: BaseException) -> _Verdict | None:
    status = _status_of(error)
    if status is None:
        return None
    if status in (401, 403):
        return _AUTH
    if status == 402:
        return _NO_FUNDS
    if status == 429:
        return _rate_limit_rule(error)
    if status >= 500:
        return _SERVER_ERROR
    if status == 408:
        return _PROVIDER_TIMEOUT
    if status in (409, 425):
        return _PROVIDER
    if status in (400, 413, 422):
        return _bad_request_rule(error)
    if status == 404:
        return _NOT_FOUND
    if status >= 400:
        return _PROVIDER
    return None


def _status_of(error: BaseException) -> int | None:
    return (
        _status(error) or _status(_attr(error, "response")) or _http_status(_attr(error, "status"))
    )


def _status(obj: object) -> int | None:
    return None if obj is None else _http_status(_attr(obj, "status_code"))


def _http_status(value: object) -> int | None:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    return None


_TRANSIENT_CODES = {
    "rate_limit_exceeded": _Code.RATE_LIMITED,
    "rate_limit_error": _Code.RATE_LIMITED,
    "rate_limited": _Code.RATE_LIMITED,
    "too_many_requests": _Code.RATE_LIMITED,
    "resource_exhausted": _Code.RATE_LIMITED,
    "server_error": _Code.SERVER_ERROR,
    "internal_error": _Code.SERVER_ERROR,
    "internal_server_error": _Code.SERVER_ERROR,
    "api_error": _Code.SERVER_ERROR,  # Anthropic's type for its own 500s
    "overloaded": _Code.SERVER_ERROR,
    "overloaded_error": _Code.SERVER_ERROR,
    "service_unavailable": _Code.SERVER_ERROR,
}
_AUTH_CODES = frozenset(
    {
        "invalid_api_key",
        "authentication_error",
        "invalid_authentication",
        "unauthorized",
        "permission_error",
        "permission_denied",
        "account_deactivated",
    }
)
_NO_FUNDS_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})
_FILTER_CODES = frozenset({"content_filter", "content_policy_violation", "content_filtered"})

# A provider's own code, as reported inside a stream (``ProviderStreamError.provider_code``) or
# in an error body (``code``, then ``type``).
_PROVIDER_CODES: dict[str, _Verdict] = {
    **{name: _Verdict(_Cat.TRANSIENT, code) for name, code in _TRANSIENT_CODES.items()},
    **dict.fromkeys(_AUTH_CODES, _Verdict(_Cat.FATAL, _Code.AUTH_ERROR)),
    **dict.fromkeys(_NO_FUNDS_CODES, _Verdict(_Cat.FATAL, _Code.PROVIDER_ERROR)),
    **dict.fromkeys(_FILTER_CODES, _Verdict(_Cat.MODEL, _Code.CONTENT_FILTERED)),
    "context_length_exceeded": _Verdict(_Cat.PROVIDER, _Code.CONTEXT_LENGTH_EXCEEDED),
    "invalid_request_error": _Verdict(_Cat.PROVIDER, _Code.BAD_REQUEST),
    "not_found_error": _Verdict(_Cat.PROVIDER, _Code.NOT_FOUND),
    "model_not_found": _Verdict(_Cat.PROVIDER, _Code.NOT_FOUND),
    "timeout": _Verdict(_Cat.PROVIDER, _Code.TIMEOUT),
    "request_timeout": _Verdict(_Cat.PROVIDER, _Code.TIMEOUT),
}


def _codes_of(error: BaseException) -> Iterator[str]:
    """The provider's own error codes on an exception, lower-cased, most specific first."""
    for name in ("provider_code", "code", "type"):
        yield from _code(_attr(error, name))
    body = _attr(error, "body")
    if isinstance(body, Mapping):
        # OpenAI puts the fields at the top of the body; Anthropic nests them under "error".
        nested = body.get("error")
        for scope in (body, nested if isinstance(nested, Mapping) else None):
            if scope is not None:
                yield from _code(scope.get("code"))
                yield from _code(scope.get("type"))


def _code(value: object) -> Iterator[str]:
    # l0's own ``StreamError.code`` is a str enum too; it is not the provider's code.
    if isinstance(value, str) and not isinstance(value, ErrorCode):
        yield value.strip().lower()


def _mentions_context_length(error: BaseException) -> bool:
    if "context_length_exceeded" in _codes_of(error):
        return True
    if _CONTEXT_RE.search(_text(error)):
        return True
    body = _attr(error, "body")
    if isinstance(body, Mapping):
        nested = body.get("error")
        for scope in (body, nested if isinstance(nested, Mapping) else None):
            message = scope.get("message") if scope is not None else None
            if isinstance(message, str) and _CONTEXT_RE.search(message):
                return True
    return False


# --- message phrases: the last resort -----------------------------------------------------


def _phrases(*phrases: str) -> re.Pattern[str]:
    # Whole words only: the seed's ``ssl.*error`` finds "SSL" in "classless error". Every
    # phrase is a run of literals and single-class repeats, so matching stays linear.
    return re.compile(r"\b(?:" + "|".join(phrases) + r")\b", re.IGNORECASE)


_SEP = r"[\s_-]"
_CONTEXT_RE = _phrases(
    rf"context{_SEP}+(?:length|window)(?:{_SEP}+exceeded)?",
    r"maximum\s+context",
    r"prompt\s+is\s+too\s+long",
)
_AUTH_RE = _phrases(
    r"unauthori[sz]ed",
    rf"(?:invalid|incorrect){_SEP}+api{_SEP}?key",
)
_RATE_LIMIT_RE = _phrases(
    rf"rate{_SEP}?limit(?:ed|s|{_SEP}+exceeded|{_SEP}+reached)?",
    r"too\s+many\s+requests",
    rf"resource{_SEP}+exhausted",
)
_SERVER_RE = _phrases(
    r"overloaded",
    r"service\s+(?:is\s+)?(?:temporarily\s+)?unavailable",
    r"bad\s+gateway",
    r"gateway\s+time-?out",
)
_TIMEOUT_RE = _phrases(
    r"timed?[\s-]?out",  # timeout, timed out, time-out
    r"connection\s+timeout",
)
_NETWORK_RE = _phrases(
    r"connection\s+(?:was\s+|has\s+been\s+)?(?:reset|refused|aborted|closed)",
    r"dns\s+(?:resolution\s+|lookup\s+|query\s+)?fail(?:ed|ure)",
    r"name\s+resolution",
    r"name\s+or\s+service\s+not\s+known",
    r"nodename\s+nor\s+servname",
    r"getaddrinfo\s+failed",
    r"socket\s+(?:error|closed)",
    r"ssl\s*error",
    r"(?:ssl|tls)\s+handshake",
    r"certificate\s+verify\s+failed",
    r"eof\s+occurred",
    r"unexpected\s+eof",
    r"broken\s+pipe",
    r"(?:network|host)\s+(?:is\s+)?unreachable",
    r"no\s+route\s+to\s+host",
    r"server\s+disconnected",
    r"peer\s+closed\s+connection",
    r"remote\s+end\s+closed\s+connection",
    r"incomplete\s+chunked\s+read",
)

# Most specific first: "429 Too Many Requests: connection closed" is a rate limit.
_MESSAGE_RULES: tuple[tuple[re.Pattern[str], _Verdict], ...] = (
    (_CONTEXT_RE, _Verdict(_Cat.PROVIDER, _Code.CONTEXT_LENGTH_EXCEEDED)),
    (_AUTH_RE, _Verdict(_Cat.FATAL, _Code.AUTH_ERROR)),
    (_RATE_LIMIT_RE, _Verdict(_Cat.TRANSIENT, _Code.RATE_LIMITED)),
    (_SERVER_RE, _Verdict(_Cat.TRANSIENT, _Code.SERVER_ERROR)),
    (_TIMEOUT_RE, _Verdict(_Cat.NETWORK, _Code.TIMEOUT)),
    (_NETWORK_RE, _Verdict(_Cat.NETWORK, _Code.NETWORK_ERROR)),
)


def _by_message(message: str) -> _Verdict | None:
    if not message:
        return None
    for pattern, verdict in _MESSAGE_RULES:
        if pattern.search(message):
            return verdict
    return None


# --- Retry-After --------------------------------------------------------------------------


def _retry_after(error: BaseException) -> float | None:
    """Seconds the provider asked to wait, from ``retry-after-ms`` or ``retry-after``."""
    for headers in _header_maps(error):
        millis = _seconds(_header(headers, "retry-after-ms"))
        if millis is not None:
            return millis / 1000.0
        value = _header(headers, "retry-after")
        if value is not None:
            seconds = _seconds(value)
            return seconds if seconds is not None else _seconds_until(value)
    return None


def _header_maps(error: BaseException) -> Iterator[Any]:
    # openai and httpx keep headers on ``.response``; litellm also copies the ones it chose to
    # forward to ``.headers`` and the upstream ones to ``.litellm_response_headers``.
    response = _attr(error, "response")
    for headers in (
        _attr(response, "headers") if response is not None else None,
        _attr(error, "headers"),
        _attr(error, "litellm_response_headers"),
    ):
        if headers is not None and callable(getattr(headers, "get", None)):
            yield headers


def _header(headers: Any, name: str) -> str | None:
    try:
        value = headers.get(name)
        if value is None and isinstance(headers, Mapping):
            # A plain dict is case-sensitive; httpx.Headers is not.
            value = next(
                (v for k, v in headers.items() if isinstance(k, str) and k.lower() == name),
                None,
            )
    except Exception:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value.strip() if isinstance(value, str) else None


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _seconds_until(http_date: str) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC with no claim about the local zone
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - time.time())


# --- safe access to foreign objects -------------------------------------------------------


def _attr(obj: object, name: str) -> Any:
    # Properties on foreign exceptions can raise (httpx's ``.request`` does when unset).
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _text(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:
        return ""
