"""Wrappers for the OpenAI SDK: Chat Completions and Responses ``create`` and ``parse``.

After ``L0Instrumentor().instrument()``, ``client.chat.completions.create(...)`` and
``client.responses.create(...)`` (async and sync clients) run as l0 sessions (see
:mod:`.relay`) and return what the SDK returns: an :class:`~.openai_streams.L0AsyncStream` /
:class:`~.openai_streams.L0Stream` (SDK stream subclasses) for ``stream=True``, the winning
attempt's ``ChatCompletion`` / ``Response`` otherwise. The SDK's helpers built on ``create``
(``chat.completions.stream()``, ``responses.stream()``) are covered through it, and
``parse()`` (structured outputs) returns the winning attempt's ``ParsedChatCompletion`` /
``ParsedResponse``.

Passed through untouched (no l0 session, the SDK's behaviour exactly):

- calls made while l0 already runs the call (an attempt of an instrumented call, or a factory
  handed to ``l0.run``): one session per logical call, never two;
- ``with_raw_response`` streaming calls and ``with_streaming_response`` calls: the caller asked
  for the one HTTP response and reads its body itself, which l0 can neither replay nor
  retry. (``with_raw_response`` *non-streaming* calls do run through l0: the
  ``LegacyAPIResponse`` of the winning attempt is returned, ``.parse()`` and ``.headers``
  as usual);
- calls without ``model`` or with positional arguments: the SDK raises its own error.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import openai
from openai.resources.chat.completions import AsyncCompletions, Completions
from openai.resources.responses import AsyncResponses, Responses

from .exceptions import SdkErrors
from .openai_streams import L0AsyncStream, L0Stream
from .patching import Patch, Wrapper
from .policy import Policy
from .relay import (
    Api,
    Plan,
    build_targets,
    l0_owns_call,
    open_async,
    open_sync,
    run_sync,
    start,
)

__all__ = ["patches"]

_RAW_RESPONSE_HEADER = "X-Stainless-Raw-Response"

CHAT = Api("openai", "messages")
RESPONSES = Api("openai_responses", "input")

_PATHS = {CHAT: "chat/completions", RESPONSES: "responses"}


def patches(policy: Policy) -> list[tuple[Patch, Wrapper]]:
    """The OpenAI methods to wrap, each with its wrapper."""
    made: list[tuple[Patch, Wrapper]] = []
    for owner, api, is_async in (
        (AsyncCompletions, CHAT, True),
        (Completions, CHAT, False),
        (AsyncResponses, RESPONSES, True),
        (Responses, RESPONSES, False),
    ):
        factory = _async_wrapper if is_async else _sync_wrapper
        for name in ("create", "parse"):
            if name not in owner.__dict__:
                continue
            patch = Patch(owner, name)
            made.append((patch, factory(api, patch, policy)))
    return made


def _passes_through(patch: Patch, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    if not patch.enabled or args or "model" not in kwargs or l0_owns_call():
        return True
    if patch.name == "parse" and kwargs.get("stream") is True:
        return True  # parse() is for complete responses: a stream is the SDK's business
    headers = kwargs.get("extra_headers")
    if headers:
        marker = headers.get(_RAW_RESPONSE_HEADER)
        if marker is not None and (marker != "true" or kwargs.get("stream") is True):
            return True
    return False


def _async_wrapper(api: Api, patch: Patch, policy: Policy) -> Wrapper:
    async def create(
        wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if _passes_through(patch, args, kwargs):
            return await wrapped(*args, **kwargs)
        function = patch.target(wrapped, instance)
        plan = _plan(api, instance, kwargs, policy, lambda kw: open_async(function, kw))
        started = await start(plan, policy)
        return L0AsyncStream(started) if plan.streaming else started

    return create


def _sync_wrapper(api: Api, patch: Patch, policy: Policy) -> Wrapper:
    def create(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if _passes_through(patch, args, kwargs):
            return wrapped(*args, **kwargs)
        function = patch.target(wrapped, instance)
        streaming = kwargs.get("stream") is True
        plan = _plan(api, instance, kwargs, policy, lambda kw: open_sync(function, kw, streaming))
        return run_sync(plan, policy, L0Stream)

    return create


def _plan(
    api: Api,
    instance: Any,
    kwargs: dict[str, Any],
    policy: Policy,
    opener: Callable[[dict[str, Any]], Any],
) -> Plan:
    client = getattr(instance, "_client", None)
    address, port = _server(client)
    model = kwargs["model"]
    targets = build_targets(
        kwargs=kwargs,
        models=(model, *policy.fallback_models(model)),
        opener=opener,
        api=api,
        describe=lambda _model: ("openai", address, port),
    )
    return Plan(targets, kwargs.get("stream") is True, api, _errors(client, _PATHS[api]))


def _server(client: Any) -> tuple[str | None, int | None]:
    url = getattr(client, "base_url", None)
    host = getattr(url, "host", None) or None
    if host is None:
        return None, None
    port = getattr(url, "port", None)
    if port is None:
        port = {"https": 443, "http": 80}.get(getattr(url, "scheme", ""))
    return host, port


def _errors(client: Any, path: str) -> SdkErrors:
    def request() -> Any:
        # The exceptions want the request: rebuild it (method and URL) with the HTTP library
        # this openai version uses (httpx2 for 3.x, httpx before).
        url = client.base_url.join(path)
        http = sys.modules[type(url).__module__.partition(".")[0]]
        return http.Request("POST", url)

    return SdkErrors(
        timeout=lambda message: openai.APITimeoutError(request=request()),
        connection=lambda message: openai.APIConnectionError(message=message, request=request()),
    )
