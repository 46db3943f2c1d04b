"""Wrappers for LiteLLM: ``litellm.acompletion`` and ``litellm.completion``.

The module attributes are patched, so calls written ``litellm.acompletion(...)`` are
instrumented; a name imported before ``instrument()`` (``from litellm import acompletion``) keeps
the original. ``gen_ai.provider.name`` is LiteLLM's resolved provider for each model
(``litellm.get_llm_provider``), so a fallback to another provider's model is reported as such.
Streams come back as :class:`~.litellm_streams.L0LiteLLMStream`, other results as LiteLLM's
``ModelResponse`` of the winning attempt. LiteLLM's own ``num_retries`` / ``fallbacks`` still
run inside each l0 attempt: leave them unset to let l0 own the retries (the spans then show
every try).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import litellm
from litellm.exceptions import APIConnectionError, Timeout

from .exceptions import SdkErrors
from .litellm_streams import L0LiteLLMStream
from .patching import Patch, Wrapper
from .policy import Policy
from .relay import Api, Plan, build_targets, l0_owns_call, open_async, open_sync, run_sync, start

__all__ = ["patches"]

API = Api("litellm", "messages")


def patches(policy: Policy) -> list[tuple[Patch, Wrapper]]:
    """The LiteLLM functions to wrap, each with its wrapper."""
    acompletion = Patch(litellm, "acompletion")
    completion = Patch(litellm, "completion")
    return [
        (acompletion, _async_wrapper(acompletion, policy)),
        (completion, _sync_wrapper(completion, policy)),
    ]


def _keywords(function: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments by name (``litellm.completion("gpt-4o", messages)`` works too)."""
    if not args:
        return kwargs
    bound = inspect.signature(function).bind_partial(*args, **kwargs)
    return dict(bound.arguments)


def _passes_through(patch: Patch, kwargs: dict[str, Any]) -> bool:
    model = kwargs.get("model")
    return not patch.enabled or not isinstance(model, str) or not model or l0_owns_call()


def _async_wrapper(patch: Patch, policy: Policy) -> Wrapper:
    async def acompletion(
        wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if not patch.enabled:
            return await wrapped(*args, **kwargs)
        function = patch.target(wrapped, instance)
        try:
            named = _keywords(function, args, kwargs)
        except TypeError:
            return await wrapped(*args, **kwargs)  # let LiteLLM report the bad call
        if _passes_through(patch, named):
            return await wrapped(*args, **kwargs)
        plan = _plan(named, policy, lambda kw: open_async(function, kw))
        started = await start(plan, policy)
        return L0LiteLLMStream(started) if plan.streaming else started

    return acompletion


def _sync_wrapper(patch: Patch, policy: Policy) -> Wrapper:
    def completion(
        wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if not patch.enabled:
            return wrapped(*args, **kwargs)
        function = patch.target(wrapped, instance)
        try:
            named = _keywords(function, args, kwargs)
        except TypeError:
            return wrapped(*args, **kwargs)
        if _passes_through(patch, named):
            return wrapped(*args, **kwargs)
        streaming = named.get("stream") is True
        plan = _plan(named, policy, lambda kw: open_sync(function, kw, streaming))
        return run_sync(plan, policy, L0LiteLLMStream)

    return completion


def _plan(kwargs: dict[str, Any], policy: Policy, opener: Callable[[dict[str, Any]], Any]) -> Plan:
    model: str = kwargs["model"]
    api_base = kwargs.get("api_base") or kwargs.get("base_url")
    described: dict[str, tuple[str | None, str | None, int | None]] = {}

    def describe(name: str) -> tuple[str | None, str | None, int | None]:
        found = described.get(name)
        if found is None:
            found = described[name] = _describe(name, api_base, kwargs.get("custom_llm_provider"))
        return found

    targets = build_targets(
        kwargs=kwargs,
        models=(model, *policy.fallback_models(model)),
        opener=opener,
        api=API,
        describe=describe,
    )
    provider = describe(model)[0] or ""
    return Plan(targets, kwargs.get("stream") is True, API, _errors(model, provider))


def _describe(
    model: str, api_base: Any, custom_provider: Any
) -> tuple[str | None, str | None, int | None]:
    provider: str | None = None
    base = api_base if isinstance(api_base, str) else None
    try:
        _model, provider, _key, resolved_base = litellm.get_llm_provider(
            model=model,
            custom_llm_provider=custom_provider if isinstance(custom_provider, str) else None,
            api_base=base,
        )
        base = base or resolved_base
    except Exception:  # a model LiteLLM cannot place: it will say so when called
        pass
    if not base:
        return provider, None, None
    parts = urlsplit(base)
    if not parts.hostname:
        return provider, None, None
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = {"https": 443, "http": 80}.get(parts.scheme)
    return provider, parts.hostname, port


def _errors(model: str, provider: str) -> SdkErrors:
    return SdkErrors(
        timeout=lambda message: Timeout(message=message, model=model, llm_provider=provider),
        connection=lambda message: APIConnectionError(
            message=message, llm_provider=provider, model=model
        ),
    )
