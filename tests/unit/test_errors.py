"""The error categorizer: real openai, litellm, httpx and builtin exceptions in, categories out.

Every exception here is a real instance of the library's class, built the way the library
builds it (openai 3.x wants ``httpx2`` requests and responses, litellm wants ``httpx`` ones).
"""

from __future__ import annotations

import asyncio
import email.utils
import errno
import socket
import ssl
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import httpx
import httpx2
import litellm
import openai
import pytest
from openai.types.chat import ChatCompletion

from l0._classify import classify, is_retryable_provider
from l0.errors import (
    Classification,
    GuardrailError,
    InitialTokenTimeout,
    InterTokenTimeout,
    InvalidStreamError,
    L0Error,
    ModelRefusalError,
    ProviderStreamError,
    StreamError,
    ZeroOutputError,
    categorize_error,
    classify_error,
)
from l0.guardrails.base import GuardrailViolation
from l0.types import ErrorCategory, ErrorCode

NETWORK = ErrorCategory.NETWORK
TRANSIENT = ErrorCategory.TRANSIENT
MODEL = ErrorCategory.MODEL
CONTENT = ErrorCategory.CONTENT
PROVIDER = ErrorCategory.PROVIDER
FATAL = ErrorCategory.FATAL
INTERNAL = ErrorCategory.INTERNAL

le = litellm.exceptions

_REQUEST2 = httpx2.Request("POST", "https://api.openai.com/v1/chat/completions")
_REQUEST = httpx.Request("POST", "https://api.openai.com/v1/chat/completions")


def oa_response(status: int, headers: dict[str, str] | None = None) -> httpx2.Response:
    return httpx2.Response(status, request=_REQUEST2, headers=headers)


def hx_response(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, request=_REQUEST, headers=headers)


def oa_status(
    cls: type[openai.APIStatusError],
    status: int,
    body: object = None,
    message: str = "provider said no",
    headers: dict[str, str] | None = None,
) -> openai.APIStatusError:
    return cls(message, response=oa_response(status, headers), body=body)


Factory = Callable[[], BaseException]


def row(
    name: str,
    factory: Factory,
    category: ErrorCategory,
    code: ErrorCode,
    status: int | None = None,
) -> Any:
    return pytest.param(factory, category, code, status, id=name)


def assert_classified(
    error: BaseException, category: ErrorCategory, code: ErrorCode, status: int | None
) -> Classification:
    c = classify(error)
    assert (c.category, c.code) == (category, code), c
    assert c.status_code == status, c
    assert c.error_type == type(error).__name__
    return c


# --- openai ---------------------------------------------------------------------------------

OPENAI_ROWS = [
    row(
        "APITimeoutError",
        lambda: openai.APITimeoutError(request=_REQUEST2),
        NETWORK,
        ErrorCode.TIMEOUT,
    ),
    row(
        "APIConnectionError",
        lambda: openai.APIConnectionError(request=_REQUEST2),
        NETWORK,
        ErrorCode.NETWORK_ERROR,
    ),
    row(
        "RateLimitError",
        lambda: oa_status(openai.RateLimitError, 429),
        TRANSIENT,
        ErrorCode.RATE_LIMITED,
        429,
    ),
    row(
        "RateLimitError-insufficient_quota",
        lambda: oa_status(
            openai.RateLimitError,
            429,
            body={"code": "insufficient_quota", "type": "insufficient_quota"},
            message="You exceeded your current quota, please check your plan and billing.",
        ),
        FATAL,
        ErrorCode.QUOTA_EXCEEDED,
        429,
    ),
    row(
        "InternalServerError-500",
        lambda: oa_status(openai.InternalServerError, 500),
        TRANSIENT,
        ErrorCode.SERVER_ERROR,
        500,
    ),
    row(
        "InternalServerError-503",
        lambda: oa_status(openai.InternalServerError, 503),
        TRANSIENT,
        ErrorCode.SERVER_ERROR,
        503,
    ),
    row(
        "AuthenticationError",
        lambda: oa_status(openai.AuthenticationError, 401),
        FATAL,
        ErrorCode.AUTH_ERROR,
        401,
    ),
    row(
        "OAuthError",
        lambda: openai.OAuthError(response=oa_response(401), body={"error": "invalid_grant"}),
        FATAL,
        ErrorCode.AUTH_ERROR,
        401,
    ),
    row(
        "PermissionDeniedError",
        lambda: oa_status(openai.PermissionDeniedError, 403),
        FATAL,
        ErrorCode.AUTH_ERROR,
        403,
    ),
    row(
        "BadRequestError",
        lambda: oa_status(openai.BadRequestError, 400, body={"type": "invalid_request_error"}),
        PROVIDER,
        ErrorCode.BAD_REQUEST,
        400,
    ),
    row(
        "BadRequestError-context-code",
        lambda: oa_status(
            openai.BadRequestError,
            400,
            body={"type": "invalid_request_error", "code": "context_length_exceeded"},
        ),
        PROVIDER,
        ErrorCode.CONTEXT_LENGTH_EXCEEDED,
        400,
    ),
    row(
        "BadRequestError-context-message",
        lambda: oa_status(
            openai.BadRequestError,
            400,
            message="This model's maximum context length is 8192 tokens.",
        ),
        PROVIDER,
        ErrorCode.CONTEXT_LENGTH_EXCEEDED,
        400,
    ),
    row(
        "BadRequestError-context-in-nested-body",
        lambda: oa_status(
            openai.BadRequestError,
            400,
            body={"error": {"type": "invalid_request_error", "message": "prompt is too long"}},
        ),
        PROVIDER,
        ErrorCode.CONTEXT_LENGTH_EXCEEDED,
        400,
    ),
    row(
        "BadRequestError-content_filter",
        lambda: oa_status(openai.BadRequestError, 400, body={"code": "content_filter"}),
        PROVIDER,
        ErrorCode.CONTENT_FILTERED,
        400,
    ),
    row(
        "NotFoundError",
        lambda: oa_status(openai.NotFoundError, 404),
        PROVIDER,
        ErrorCode.NOT_FOUND,
        404,
    ),
    row(
        "UnprocessableEntityError",
        lambda: oa_status(openai.UnprocessableEntityError, 422),
        PROVIDER,
        ErrorCode.BAD_REQUEST,
        422,
    ),
    row(
        "ConflictError",
        lambda: oa_status(openai.ConflictError, 409),
        PROVIDER,
        ErrorCode.PROVIDER_ERROR,
        409,
    ),
    row(
        "APIStatusError-418",
        lambda: oa_status(openai.APIStatusError, 418),
        PROVIDER,
        ErrorCode.PROVIDER_ERROR,
        418,
    ),
    row(
        "APIStatusError-529",
        lambda: oa_status(openai.APIStatusError, 529),
        TRANSIENT,
        ErrorCode.SERVER_ERROR,
        529,
    ),
    row(
        "APIStatusError-408",
        lambda: oa_status(openai.APIStatusError, 408),
        PROVIDER,
        ErrorCode.TIMEOUT,
        408,
    ),
    row(
        "APIResponseValidationError",
        lambda: openai.APIResponseValidationError(oa_response(200), body="<html>"),
        MODEL,
        ErrorCode.INVALID_STREAM,
        200,
    ),
    # openai's Stream raises a bare APIError for an SSE ``error`` event; the body is the error.
    row(
        "APIError-sse-server_error",
        lambda: openai.APIError("boom", _REQUEST2, body={"type": "server_error"}),
        TRANSIENT,
        ErrorCode.SERVER_ERROR,
    ),
    row(
        "APIError-sse-rate_limit",
        lambda: openai.APIError("slow down", _REQUEST2, body={"code": "rate_limit_exceeded"}),
        TRANSIENT,
        ErrorCode.RATE_LIMITED,
    ),
    row(
        "APIError-sse-anthropic-overloaded",
        lambda: openai.APIError(
            "Overloaded", _REQUEST2, body={"type": "error", "error": {"type": "overloaded_error"}}
        ),
        TRANSIENT,
        ErrorCode.SERVER_ERROR,
    ),
    row(
        "APIError-sse-unknown",
        lambda: openai.APIError(
            "An error occurred during streaming", _REQUEST2, body={"code": "weird"}
        ),
        MODEL,
        ErrorCode.PROVIDER_ERROR,
    ),
    row(
        "LengthFinishReasonError",
        lambda: openai.LengthFinishReasonError(
            completion=ChatCompletion.model_construct(usage=None)
        ),
        MODEL,
        ErrorCode.MODEL_ERROR,
    ),
    row(
        "ContentFilterFinishReasonError",
        lambda: openai.ContentFilterFinishReasonError(),
        MODEL,
        ErrorCode.CONTENT_FILTERED,
    ),
    row(
        "WebSocketConnectionClosedError",
        lambda: openai.WebSocketConnectionClosedError("closed", unsent_messages=[]),
        NETWORK,
        ErrorCode.NETWORK_ERROR,
    ),
    row(
        "SubjectTokenProviderError",
        lambda: openai._exceptions.SubjectTokenProviderError("token provider failed"),
        FATAL,
        ErrorCode.AUTH_ERROR,
    ),
]


@pytest.mark.parametrize(("factory", "category", "code", "status"), OPENAI_ROWS)
def test_openai_exceptions(
    factory: Factory, category: ErrorCategory, code: ErrorCode, status: int | None
) -> None:
    assert_classified(factory(), category, code, status)


# --- litellm --------------------------------------------------------------------------------

LITELLM_ROWS = [
    # litellm stamps Timeout with 408 and APIConnectionError with 500 although no response
    # arrived: a connection-level failure reports no status.
    row("Timeout", lambda: le.Timeout("slow", "gpt-4o", "openai"), NETWORK, ErrorCode.TIMEOUT),
    row(
        "APIConnectionError",
        lambda: le.APIConnectionError("conn", "openai", "gpt-4o"),
        NETWORK,
        ErrorCode.NETWORK_ERROR,
    ),
    row(
        "RateLimitError",
        lambda: le.RateLimitError("rl", "openai", "gpt-4o"),
        TRANSIENT,
        ErrorCode.RATE_LIMITED,
        429,
    ),
    row(
        "CallerCredentialRateLimitError",
        lambda: le.CallerCredentialRateLimitError("rl", "openai", "gpt-4o"),
        TRANSIENT,
        ErrorCode.RATE_LIMITED,
        429,
    ),
    row(
        "ServiceUnavailableError",
        lambda: le.ServiceUnavailableError("down", "openai", "gpt-4o"),
        TRANSIENT,
        ErrorCode.SERVER_ERROR,
        503,
    ),
    row(
        "InternalServerError",
        lambda: le.InternalServerError("oops", "openai", "gpt-4o"),
        TRANSIENT,
        ErrorCode.SERVER_ERROR,
        500,
    ),
    row(
        "BadGatewayError",
        lambda: le.BadGatewayError("gw", "openai", "gpt-4o"),
        TRANSIENT,
        ErrorCode.SERVER_ERROR,
        502,
    ),
    row(
        "ContextWindowExceededError",
        lambda: le.ContextWindowExceededError("too big", "gpt-4o", "openai"),
        PROVIDER,
        ErrorCode.CONTEXT_LENGTH_EXCEEDED,
        400,
    ),
    row(
        "ContentPolicyViolationError",
        lambda: le.ContentPolicyViolationError("policy", "gpt-4o", "openai"),
        PROVIDER,
        ErrorCode.CONTENT_FILTERED,
        400,
    ),
    row(
        "AuthenticationError",
        lambda: le.AuthenticationError("auth", "openai", "gpt-4o"),
        FATAL,
        ErrorCode.AUTH_ERROR,
        401,
    ),
    row(
        "PermissionDeniedError",
        lambda: le.PermissionDeniedError("perm", "openai", "gpt-4o", response=hx_response(403)),
        FATAL,
        ErrorCode.AUTH_ERROR,
        403,
    ),
    row(
        "NotFoundError",
        lambda: le.NotFoundError("nf", "gpt-4o", "openai"),
        PROVIDER,
        ErrorCode.NOT_FOUND,
        404,
    ),
    row(
        "BadRequestError",
        lambda: le.BadRequestError("bad", "gpt-4o", "openai"),
        PROVIDER,
        ErrorCode.BAD_REQUEST,
        400,
    ),
    row(
        "UnsupportedParamsError",
        lambda: le.UnsupportedParamsError("unsupported param"),
        PROVIDER,
        ErrorCode.BAD_REQUEST,
        400,
    ),
    row(
        "UnprocessableEntityError",
        lambda: le.UnprocessableEntityError("x", "gpt-4o", "openai", response=hx_response(422)),
        PROVIDER,
        ErrorCode.BAD_REQUEST,
        422,
    ),
    row(
        "PaymentRequiredError",
        lambda: le.PaymentRequiredError("pay up", "gpt-4o", "openai"),
        FATAL,
        ErrorCode.QUOTA_EXCEEDED,
        402,
    ),
    row(
        "BudgetExceededError",
        lambda: le.BudgetExceededError(current_cost=2.0, max_budget=1.0),
        FATAL,
        ErrorCode.QUOTA_EXCEEDED,
        litellm.budget_exceeded_status_code,
    ),
    row(
        "APIError-503",
        lambda: le.APIError(503, "upstream", "openai", "gpt-4o"),
        TRANSIENT,
        ErrorCode.SERVER_ERROR,
        503,
    ),
    row(
        "APIError-400",
        lambda: le.APIError(400, "upstream", "openai", "gpt-4o"),
        PROVIDER,
        ErrorCode.BAD_REQUEST,
        400,
    ),
    row(
        "MockException-429",
        lambda: le.MockException(429, "mock", "openai", "gpt-4o"),
        TRANSIENT,
        ErrorCode.RATE_LIMITED,
        429,
    ),
    row(
        "APIResponseValidationError",
        lambda: le.APIResponseValidationError("bad shape", "openai", "gpt-4o"),
        MODEL,
        ErrorCode.INVALID_STREAM,
        500,
    ),
    row(
        "JSONSchemaValidationError",
        lambda: le.JSONSchemaValidationError("gpt-4o", "openai", "{}", '{"type": "object"}'),
        MODEL,
        ErrorCode.SCHEMA_VALIDATION_FAILED,
        500,
    ),
    row(
        "GuardrailRaisedException",
        lambda: le.GuardrailRaisedException("pii", "blocked"),
        PROVIDER,
        ErrorCode.CONTENT_FILTERED,
        400,
    ),
    row(
        "BlockedPiiEntityError",
        lambda: le.BlockedPiiEntityError("EMAIL"),
        PROVIDER,
        ErrorCode.CONTENT_FILTERED,
        400,
    ),
    row(
        "MidStreamFallbackError-bare",
        lambda: le.MidStreamFallbackError("stream broke", "gpt-4o", "openai"),
        TRANSIENT,
        ErrorCode.SERVER_ERROR,
        503,
    ),
    # The wrapped exception decides, status and all.
    row(
        "MidStreamFallbackError-of-context-window",
        lambda: le.MidStreamFallbackError(
            "stream broke",
            "gpt-4o",
            "openai",
            original_exception=le.ContextWindowExceededError("too big", "gpt-4o", "openai"),
        ),
        PROVIDER,
        ErrorCode.CONTEXT_LENGTH_EXCEEDED,
        400,
    ),
    row(
        "MidStreamFallbackError-of-connection-reset",
        lambda: le.MidStreamFallbackError(
            "stream broke", "gpt-4o", "openai", original_exception=ConnectionResetError()
        ),
        NETWORK,
        ErrorCode.NETWORK_ERROR,
    ),
]


@pytest.mark.parametrize(("factory", "category", "code", "status"), LITELLM_ROWS)
def test_litellm_exceptions(
    factory: Factory, category: ErrorCategory, code: ErrorCode, status: int | None
) -> None:
    assert_classified(factory(), category, code, status)


# --- httpx and httpx2 (openai 3.x) ---------------------------------------------------------

HTTPX_ROWS = [
    ("ConnectTimeout", NETWORK, ErrorCode.TIMEOUT),
    ("ReadTimeout", NETWORK, ErrorCode.TIMEOUT),
    ("WriteTimeout", NETWORK, ErrorCode.TIMEOUT),
    ("PoolTimeout", NETWORK, ErrorCode.TIMEOUT),
    ("TimeoutException", NETWORK, ErrorCode.TIMEOUT),
    ("ConnectError", NETWORK, ErrorCode.NETWORK_ERROR),
    ("ReadError", NETWORK, ErrorCode.NETWORK_ERROR),
    ("WriteError", NETWORK, ErrorCode.NETWORK_ERROR),
    ("CloseError", NETWORK, ErrorCode.NETWORK_ERROR),
    ("NetworkError", NETWORK, ErrorCode.NETWORK_ERROR),
    ("RemoteProtocolError", NETWORK, ErrorCode.NETWORK_ERROR),
    ("ProxyError", NETWORK, ErrorCode.NETWORK_ERROR),
    ("TransportError", NETWORK, ErrorCode.NETWORK_ERROR),
    ("LocalProtocolError", PROVIDER, ErrorCode.BAD_REQUEST),
    ("UnsupportedProtocol", PROVIDER, ErrorCode.BAD_REQUEST),
    ("DecodingError", MODEL, ErrorCode.INVALID_STREAM),
    ("TooManyRedirects", PROVIDER, ErrorCode.PROVIDER_ERROR),
    ("InvalidURL", INTERNAL, ErrorCode.INTERNAL_ERROR),
]


@pytest.mark.parametrize("module", [httpx, httpx2], ids=lambda m: m.__name__)
@pytest.mark.parametrize(("name", "category", "code"), HTTPX_ROWS)
def test_httpx_exceptions(
    module: ModuleType, name: str, category: ErrorCategory, code: ErrorCode
) -> None:
    # Messages deliberately say nothing a phrase would catch: the type alone decides.
    error = getattr(module, name)("it went wrong")
    assert_classified(error, category, code, None)


@pytest.mark.parametrize("module", [httpx, httpx2], ids=lambda m: m.__name__)
def test_httpx_client_misuse_is_internal(module: ModuleType) -> None:
    for error in (module.StreamClosed(), module.StreamConsumed(), module.ResponseNotRead()):
        assert_classified(error, INTERNAL, ErrorCode.INTERNAL_ERROR, None)


@pytest.mark.parametrize(
    ("status", "category", "code"),
    [
        (503, TRANSIENT, ErrorCode.SERVER_ERROR),
        (429, TRANSIENT, ErrorCode.RATE_LIMITED),
        (401, FATAL, ErrorCode.AUTH_ERROR),
        (404, PROVIDER, ErrorCode.NOT_FOUND),
    ],
)
@pytest.mark.parametrize("module", [httpx, httpx2], ids=lambda m: m.__name__)
def test_httpx_status_error_goes_by_response_status(
    module: ModuleType, status: int, category: ErrorCategory, code: ErrorCode
) -> None:
    request = module.Request("GET", "https://example.test/")
    response = module.Response(status, request=request)
    error = module.HTTPStatusError("status", request=request, response=response)
    assert_classified(error, category, code, status)


# --- builtins and asyncio -------------------------------------------------------------------

BUILTIN_ROWS = [
    row("asyncio.TimeoutError", lambda: asyncio.TimeoutError(), NETWORK, ErrorCode.TIMEOUT),
    row("TimeoutError", lambda: TimeoutError(), NETWORK, ErrorCode.TIMEOUT),
    row("ConnectionResetError", ConnectionResetError, NETWORK, ErrorCode.NETWORK_ERROR),
    row("ConnectionRefusedError", ConnectionRefusedError, NETWORK, ErrorCode.NETWORK_ERROR),
    row("ConnectionAbortedError", ConnectionAbortedError, NETWORK, ErrorCode.NETWORK_ERROR),
    row("BrokenPipeError", BrokenPipeError, NETWORK, ErrorCode.NETWORK_ERROR),
    row("ssl.SSLError", ssl.SSLError, NETWORK, ErrorCode.NETWORK_ERROR),
    row(
        "ssl.SSLCertVerificationError",
        ssl.SSLCertVerificationError,
        NETWORK,
        ErrorCode.NETWORK_ERROR,
    ),
    row(
        "socket.gaierror",
        lambda: socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
        NETWORK,
        ErrorCode.NETWORK_ERROR,
    ),
    row(
        "OSError-ENETUNREACH",
        lambda: OSError(errno.ENETUNREACH, "Network is unreachable"),
        NETWORK,
        ErrorCode.NETWORK_ERROR,
    ),
    row(
        "asyncio.IncompleteReadError",
        lambda: asyncio.IncompleteReadError(b"par", 10),
        NETWORK,
        ErrorCode.NETWORK_ERROR,
    ),
    row("CancelledError", asyncio.CancelledError, INTERNAL, ErrorCode.INTERNAL_ERROR),
    row("KeyboardInterrupt", KeyboardInterrupt, INTERNAL, ErrorCode.INTERNAL_ERROR),
]


@pytest.mark.parametrize(("factory", "category", "code", "status"), BUILTIN_ROWS)
def test_builtin_exceptions(
    factory: Factory, category: ErrorCategory, code: ErrorCode, status: int | None
) -> None:
    assert_classified(factory(), category, code, status)


@pytest.mark.parametrize(
    "error",
    [
        TypeError("'NoneType' object is not callable"),
        KeyError("messages"),
        AttributeError("'dict' object has no attribute 'choices'"),
        ValueError("invalid literal for int()"),
        IndexError("list index out of range"),
        NameError("name 'clinet' is not defined"),
        ZeroDivisionError("division by zero"),
        AssertionError(),
        NotImplementedError(),
        RecursionError(),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
        FileNotFoundError(errno.ENOENT, "No such file or directory", "prompt.txt"),
        # A programming error never reaches the message phrases, whatever it says.
        ValueError("connection reset by peer"),
        KeyError("rate limit"),
        AssertionError("request timed out"),
        TypeError("401 Unauthorized"),
    ],
    ids=repr,
)
def test_programming_errors_are_internal(error: BaseException) -> None:
    assert_classified(error, INTERNAL, ErrorCode.INTERNAL_ERROR, None)


# --- HTTP status codes on any exception -----------------------------------------------------


class StatusCodeError(Exception):
    def __init__(self, status: object, message: str = "upstream failed") -> None:
        super().__init__(message)
        self.status_code = status


class ResponseError(Exception):
    def __init__(self, status: int, message: str = "upstream failed") -> None:
        super().__init__(message)
        self.response = hx_response(status)


class StatusError(Exception):
    """Like aiohttp's ``ClientResponseError``: the status is ``.status``."""

    def __init__(self, status: int, message: str = "upstream failed") -> None:
        super().__init__(message)
        self.status = status


STATUS_ROWS = [
    (400, PROVIDER, ErrorCode.BAD_REQUEST),
    (401, FATAL, ErrorCode.AUTH_ERROR),
    (402, FATAL, ErrorCode.QUOTA_EXCEEDED),
    (403, FATAL, ErrorCode.AUTH_ERROR),
    (404, PROVIDER, ErrorCode.NOT_FOUND),
    (405, PROVIDER, ErrorCode.PROVIDER_ERROR),
    (408, PROVIDER, ErrorCode.TIMEOUT),
    (409, PROVIDER, ErrorCode.PROVIDER_ERROR),
    (413, PROVIDER, ErrorCode.BAD_REQUEST),
    (422, PROVIDER, ErrorCode.BAD_REQUEST),
    (425, PROVIDER, ErrorCode.PROVIDER_ERROR),
    (429, TRANSIENT, ErrorCode.RATE_LIMITED),
    (500, TRANSIENT, ErrorCode.SERVER_ERROR),
    (502, TRANSIENT, ErrorCode.SERVER_ERROR),
    (503, TRANSIENT, ErrorCode.SERVER_ERROR),
    (504, TRANSIENT, ErrorCode.SERVER_ERROR),
    (529, TRANSIENT, ErrorCode.SERVER_ERROR),
    (599, TRANSIENT, ErrorCode.SERVER_ERROR),
]


@pytest.mark.parametrize("carrier", [StatusCodeError, ResponseError, StatusError])
@pytest.mark.parametrize(("status", "category", "code"), STATUS_ROWS)
def test_status_codes(
    carrier: Callable[[int], Exception], status: int, category: ErrorCategory, code: ErrorCode
) -> None:
    assert_classified(carrier(status), category, code, status)


@pytest.mark.parametrize("status", [400, 413, 422])
def test_bad_request_that_exceeds_the_context_window(status: int) -> None:
    error = StatusCodeError(status, "input exceeds the context window of this model")
    assert_classified(error, PROVIDER, ErrorCode.CONTEXT_LENGTH_EXCEEDED, status)


@pytest.mark.parametrize("status", [True, 42, 700, "abc", 429.0, None])
def test_values_that_are_not_http_statuses_are_ignored(status: object) -> None:
    c = classify(StatusCodeError(status))
    assert c.status_code is None
    assert c.category is INTERNAL


def test_numeric_string_status_is_read() -> None:
    assert_classified(StatusCodeError("503"), TRANSIENT, ErrorCode.SERVER_ERROR, 503)


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(408, True), (409, True), (425, True), (400, False), (404, False), (422, False)],
)
def test_only_timeouts_and_conflicts_are_retryable_provider_errors(
    status: int, retryable: bool
) -> None:
    c = classify(StatusCodeError(status))
    assert c.category is PROVIDER
    assert is_retryable_provider(c) is retryable


@pytest.mark.parametrize(
    ("classification", "retryable"),
    [
        (Classification(PROVIDER, ErrorCode.TIMEOUT), True),
        (Classification(PROVIDER, ErrorCode.BAD_REQUEST, status_code=409), True),
        (Classification(PROVIDER, ErrorCode.BAD_REQUEST, status_code=400), False),
        (Classification(PROVIDER, ErrorCode.CONTEXT_LENGTH_EXCEEDED), False),
        (Classification(TRANSIENT, ErrorCode.SERVER_ERROR, status_code=503), False),
        (Classification(NETWORK, ErrorCode.TIMEOUT), False),
    ],
)
def test_is_retryable_provider(classification: Classification, retryable: bool) -> None:
    assert is_retryable_provider(classification) is retryable


def test_conflict_error_is_a_retryable_provider_error() -> None:
    assert is_retryable_provider(classify(oa_status(openai.ConflictError, 409)))


# --- Retry-After ----------------------------------------------------------------------------

NOW = 1_700_000_000.0


@pytest.fixture
def frozen_time(monkeypatch: pytest.MonkeyPatch) -> float:
    monkeypatch.setattr("l0._classify.time.time", lambda: NOW)
    return NOW


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "3"}, 0.25),  # ms wins
        ({"retry-after-ms": "soon", "retry-after": "3"}, 3.0),  # unreadable ms: seconds
        ({"retry-after": email.utils.formatdate(NOW + 30, usegmt=True)}, 30.0),
        ({"retry-after": email.utils.formatdate(NOW - 30, usegmt=True)}, 0.0),  # never < 0
        ({"retry-after": "-5"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "tomorrow-ish"}, None),
        ({}, None),
    ],
    ids=repr,
)
def test_retry_after_from_openai_response(
    frozen_time: float, headers: dict[str, str], expected: float | None
) -> None:
    error = oa_status(openai.RateLimitError, 429, headers=headers)
    assert classify(error).retry_after == expected


def test_retry_after_from_httpx_status_error(frozen_time: float) -> None:
    response = hx_response(503, {"Retry-After": email.utils.formatdate(NOW + 90, usegmt=True)})
    error = httpx.HTTPStatusError("unavailable", request=_REQUEST, response=response)
    assert classify(error).retry_after == 90.0


def test_retry_after_from_litellm_response_and_headers() -> None:
    via_response = le.RateLimitError(
        "rl", "openai", "gpt-4o", response=hx_response(429, {"retry-after": "7"})
    )
    assert classify(via_response).retry_after == 7.0
    # litellm's proxy-side limiter puts the headers on the exception, as a plain dict.
    via_headers = le.RateLimitError("rl", "openai", "gpt-4o", headers={"Retry-After": "4"})
    assert classify(via_headers).retry_after == 4.0
    timeout = le.Timeout("slow", "gpt-4o", "openai", headers={"retry-after-ms": "1500"})
    assert classify(timeout).retry_after == 1.5


def test_retry_after_of_the_exception_litellm_wrapped() -> None:
    original = le.RateLimitError(
        "rl", "openai", "gpt-4o", response=hx_response(429, {"retry-after": "5"})
    )
    error = le.MidStreamFallbackError("broke", "gpt-4o", "openai", original_exception=original)
    c = classify(error)
    assert (c.category, c.code, c.retry_after) == (TRANSIENT, ErrorCode.RATE_LIMITED, 5.0)
    assert c.error_type == "MidStreamFallbackError"


# --- message phrases, the fallback ----------------------------------------------------------


class VendorError(Exception):
    """An exception class l0 has never heard of."""


@pytest.mark.parametrize(
    ("message", "category", "code"),
    [
        ("Connection reset by peer", NETWORK, ErrorCode.NETWORK_ERROR),
        ("connection refused", NETWORK, ErrorCode.NETWORK_ERROR),
        ("Connection timeout after 10s", NETWORK, ErrorCode.TIMEOUT),
        ("Request timed out", NETWORK, ErrorCode.TIMEOUT),
        ("read timeout", NETWORK, ErrorCode.TIMEOUT),
        ("DNS lookup failed for api.example.test", NETWORK, ErrorCode.NETWORK_ERROR),
        ("Temporary failure in name resolution", NETWORK, ErrorCode.NETWORK_ERROR),
        ("socket error while reading", NETWORK, ErrorCode.NETWORK_ERROR),
        ("SSL error: handshake failed", NETWORK, ErrorCode.NETWORK_ERROR),
        (
            "HTTPSConnectionPool: Max retries (Caused by SSLError(...))",
            NETWORK,
            ErrorCode.NETWORK_ERROR,
        ),
        ("EOF occurred in violation of protocol", NETWORK, ErrorCode.NETWORK_ERROR),
        ("[Errno 32] Broken pipe", NETWORK, ErrorCode.NETWORK_ERROR),
        ("Network is unreachable", NETWORK, ErrorCode.NETWORK_ERROR),
        ("host unreachable", NETWORK, ErrorCode.NETWORK_ERROR),
        ("Server disconnected", NETWORK, ErrorCode.NETWORK_ERROR),
        ("Rate limit reached for gpt-4o", TRANSIENT, ErrorCode.RATE_LIMITED),
        ("429 Too Many Requests", TRANSIENT, ErrorCode.RATE_LIMITED),
        ("RESOURCE_EXHAUSTED: quota", TRANSIENT, ErrorCode.RATE_LIMITED),
        ("The engine is currently overloaded", TRANSIENT, ErrorCode.SERVER_ERROR),
        ("503 Service Unavailable", TRANSIENT, ErrorCode.SERVER_ERROR),
        ("maximum context length is 4097 tokens", PROVIDER, ErrorCode.CONTEXT_LENGTH_EXCEEDED),
        ("context_length_exceeded", PROVIDER, ErrorCode.CONTEXT_LENGTH_EXCEEDED),
        ("401 Unauthorized", FATAL, ErrorCode.AUTH_ERROR),
        ("Incorrect API key provided: sk-...", FATAL, ErrorCode.AUTH_ERROR),
        ("invalid_api_key", FATAL, ErrorCode.AUTH_ERROR),
    ],
)
@pytest.mark.parametrize("cls", [Exception, RuntimeError, VendorError])
def test_message_phrases(
    cls: type[Exception], message: str, category: ErrorCategory, code: ErrorCode
) -> None:
    assert_classified(cls(message), category, code, None)


@pytest.mark.parametrize(
    "message",
    [
        "classless error in subclasses",  # the seed's ssl.*error would see "SSL" here
        "the word classes is not an SSL problem",  # "an SSL problem" is no "ssl error"
        "assert failed: parser state",  # no stream abort
        "assertion error in reassembler",
        "timeout_ms must be positive",  # a config key, not a timeout
        "timeouts configured: 3",
        "rate limiter misconfigured",
        "reconnection logic reset the counter",
        "websocket errors are counted",
        "overloadedness metric",
        "unauthorizedly",
        "stream finished",
        "",
    ],
)
def test_phrases_match_whole_words_only(message: str) -> None:
    assert_classified(RuntimeError(message), INTERNAL, ErrorCode.INTERNAL_ERROR, None)


def test_type_beats_message() -> None:
    # An httpx timeout that talks about rate limits is still a timeout.
    assert classify(httpx.ReadTimeout("rate limit")).code is ErrorCode.TIMEOUT


def test_status_beats_message() -> None:
    error = StatusCodeError(401, "connection reset while rate limited")
    assert classify(error).category is FATAL


# --- wrapped exceptions ---------------------------------------------------------------------


def test_an_explicit_cause_decides_for_an_unknown_wrapper() -> None:
    cause = oa_status(openai.RateLimitError, 429, headers={"retry-after": "3"})
    with pytest.raises(VendorError) as raised:
        raise VendorError("call failed") from cause
    c = classify(raised.value)
    assert (c.category, c.code, c.status_code, c.retry_after) == (
        TRANSIENT,
        ErrorCode.RATE_LIMITED,
        429,
        3.0,
    )
    assert c.error_type == "VendorError"


def test_a_known_type_is_not_overridden_by_its_cause() -> None:
    with pytest.raises(KeyError) as raised:
        raise KeyError("choices") from ConnectionResetError()
    assert classify(raised.value).category is INTERNAL


def test_an_unknown_exception_without_clues_is_internal() -> None:
    c = classify(VendorError("something odd"))
    assert c == Classification(
        INTERNAL, ErrorCode.INTERNAL_ERROR, status_code=None, error_type="VendorError"
    )


# --- l0's own errors ------------------------------------------------------------------------


def test_l0_error_keeps_its_category_code_and_status() -> None:
    error = L0Error(
        "all attempts failed",
        code=ErrorCode.ALL_ATTEMPTS_EXHAUSTED,
        category=TRANSIENT,
        status_code=503,
    )
    c = classify(error)
    assert (c.category, c.code, c.status_code, c.error_type) == (
        TRANSIENT,
        ErrorCode.ALL_ATTEMPTS_EXHAUSTED,
        503,
        "L0Error",
    )


def test_l0_error_wins_over_its_message() -> None:
    error = L0Error("connection reset", code=ErrorCode.AUTH_ERROR, category=FATAL)
    assert categorize_error(error) is FATAL


@pytest.mark.parametrize(
    ("error", "category", "code"),
    [
        (StreamError("?"), MODEL, ErrorCode.MODEL_ERROR),
        (InvalidStreamError("garbage chunk"), MODEL, ErrorCode.INVALID_STREAM),
        (ModelRefusalError("refused"), MODEL, ErrorCode.CONTENT_FILTERED),
        (InitialTokenTimeout("no first token"), NETWORK, ErrorCode.INITIAL_TOKEN_TIMEOUT),
        (InterTokenTimeout("stalled"), NETWORK, ErrorCode.INTER_TOKEN_TIMEOUT),
        (ZeroOutputError("empty"), TRANSIENT, ErrorCode.ZERO_OUTPUT),
        (
            GuardrailError("bad json", [GuardrailViolation(rule="json", message="unbalanced")]),
            CONTENT,
            ErrorCode.GUARDRAIL_VIOLATION,
        ),
        (
            GuardrailError("drifted", [GuardrailViolation(rule="drift", message="tone shift")]),
            CONTENT,
            ErrorCode.DRIFT_DETECTED,
        ),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else None,
)
def test_stream_errors_carry_their_own_category(
    error: StreamError, category: ErrorCategory, code: ErrorCode
) -> None:
    assert_classified(error, category, code, None)


@pytest.mark.parametrize(
    ("provider_code", "category", "code"),
    [
        ("rate_limit_exceeded", TRANSIENT, ErrorCode.RATE_LIMITED),
        ("rate_limit_error", TRANSIENT, ErrorCode.RATE_LIMITED),
        ("server_error", TRANSIENT, ErrorCode.SERVER_ERROR),
        ("overloaded", TRANSIENT, ErrorCode.SERVER_ERROR),
        ("overloaded_error", TRANSIENT, ErrorCode.SERVER_ERROR),
        ("internal_error", TRANSIENT, ErrorCode.SERVER_ERROR),
        ("context_length_exceeded", PROVIDER, ErrorCode.CONTEXT_LENGTH_EXCEEDED),
        ("invalid_api_key", FATAL, ErrorCode.AUTH_ERROR),
        ("authentication_error", FATAL, ErrorCode.AUTH_ERROR),
        ("permission_error", FATAL, ErrorCode.AUTH_ERROR),
        ("insufficient_quota", FATAL, ErrorCode.PROVIDER_ERROR),
        ("content_filter", MODEL, ErrorCode.CONTENT_FILTERED),
        ("Rate_Limit_Exceeded ", TRANSIENT, ErrorCode.RATE_LIMITED),  # case and spacing
        ("something_new", MODEL, ErrorCode.PROVIDER_ERROR),
        (None, MODEL, ErrorCode.PROVIDER_ERROR),
    ],
)
def test_provider_stream_error_codes(
    provider_code: str | None, category: ErrorCategory, code: ErrorCode
) -> None:
    error = ProviderStreamError("the provider failed the response", provider_code=provider_code)
    assert_classified(error, category, code, None)


@pytest.mark.parametrize(
    ("status", "category", "code"),
    [
        (429, TRANSIENT, ErrorCode.RATE_LIMITED),
        (500, TRANSIENT, ErrorCode.SERVER_ERROR),
        (401, FATAL, ErrorCode.AUTH_ERROR),
        (400, PROVIDER, ErrorCode.BAD_REQUEST),
    ],
)
def test_provider_stream_error_without_a_known_code_goes_by_status(
    status: int, category: ErrorCategory, code: ErrorCode
) -> None:
    error = ProviderStreamError("failed", provider_code="mystery", status_code=status)
    assert_classified(error, category, code, status)


def test_provider_stream_error_code_beats_status() -> None:
    error = ProviderStreamError("x", provider_code="context_length_exceeded", status_code=500)
    assert classify(error).code is ErrorCode.CONTEXT_LENGTH_EXCEEDED


def test_provider_stream_error_invalid_request_about_context_length() -> None:
    error = ProviderStreamError(
        "Your input exceeds the context window of this model.",
        provider_code="invalid_request_error",
    )
    assert classify(error).code is ErrorCode.CONTEXT_LENGTH_EXCEEDED


def test_provider_stream_error_without_code_reads_its_message() -> None:
    error = ProviderStreamError("The server is overloaded, try again later.")
    assert classify(error).category is TRANSIENT


# --- the public face and robustness ---------------------------------------------------------


def test_errors_module_delegates() -> None:
    error = oa_status(openai.AuthenticationError, 401)
    assert classify_error(error) == classify(error)
    assert categorize_error(error) is FATAL


def test_the_table_follows_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    error = le.ContextWindowExceededError("too big", "gpt-4o", "openai")
    assert classify(error).code is ErrorCode.CONTEXT_LENGTH_EXCEEDED
    # Without litellm's module the class is just an openai.BadRequestError (with a message
    # that names no context window); the table rebuilds when the module set changes.
    monkeypatch.delitem(sys.modules, "litellm.exceptions")
    assert classify(error).code is ErrorCode.BAD_REQUEST
    monkeypatch.undo()
    assert classify(error).code is ErrorCode.CONTEXT_LENGTH_EXCEEDED


class HostileError(Exception):
    """Attributes that raise or lie, as foreign exceptions sometimes do."""

    @property
    def response(self) -> object:
        raise RuntimeError("response not available")

    @property
    def status_code(self) -> int:
        raise RuntimeError("no status")

    headers = "retry-after: 5"
    body = ("not", "a", "mapping")
    code = 42

    def __str__(self) -> str:
        raise RuntimeError("unprintable")


def test_hostile_attributes_never_break_classification() -> None:
    c = classify(HostileError())
    assert (c.category, c.status_code, c.retry_after) == (INTERNAL, None, None)


def test_cyclic_wrapping_terminates() -> None:
    first, second = VendorError("a"), VendorError("b")
    first.__cause__, second.__cause__ = second, first
    assert classify(first).category is INTERNAL

    outer = le.MidStreamFallbackError("broke", "gpt-4o", "openai")
    inner = le.MidStreamFallbackError("broke", "gpt-4o", "openai", original_exception=outer)
    outer.original_exception = inner
    assert classify(outer).code is ErrorCode.SERVER_ERROR
