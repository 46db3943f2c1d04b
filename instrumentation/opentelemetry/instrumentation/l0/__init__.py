"""l0 instrumentation for the OpenAI SDK and LiteLLM: reliability and telemetry, no code changes.

After ``L0Instrumentor().instrument()``, the application's own calls —
``client.chat.completions.create(...)``, ``client.responses.create(...)`` (async and sync
clients, streaming or not), ``litellm.acompletion(...)`` / ``litellm.completion(...)`` — run
as l0 sessions: retries, model fallbacks, stream timeouts and guardrails, reported as
``l0.session`` → ``chat {model}`` → ``l0.attempt`` spans with the GenAI metrics. What the
caller gets back is what the SDK returns (its stream types and chunk objects, its response
objects, its exceptions); ``docs/instrumentation.md`` says exactly what changes and what not.

Usage::

    import l0
    from opentelemetry.instrumentation.l0 import L0Instrumentor

    L0Instrumentor().instrument(
        retry=l0.Retry(attempts=2, max_retries=4),
        fallbacks={"gpt-4o": ["gpt-4o-mini"]},
    )

or without code: ``opentelemetry-instrument python app.py`` (the ``l0`` entry point of the
``opentelemetry_instrumentor`` group; the default policy applies).

Options of :meth:`L0Instrumentor.instrument` (all optional):

- ``retry`` (:class:`l0.Retry`), ``timeout`` (:class:`l0.Timeout`, streaming calls only),
  ``guardrails`` (a list of :class:`l0.GuardrailRule`),
- ``fallbacks``: ``{model: [fallback model, ...]}``; the same call with ``model`` replaced,
- ``continuation``: after a failure mid-stream, continue the stream from the delivered text
  instead of raising the SDK's exception,
- ``capture_content``: record prompts and completions (``True``/``False`` or an
  :class:`l0.observability.ContentCapture` mode); default from
  ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``,
- ``on_event``: a sink receiving every l0 observability event of instrumented calls,
- ``tracer_provider``, ``meter_provider``, ``logger_provider``: where l0's telemetry goes
  (default: the global providers).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from collections.abc import Callable, Collection
from typing import Any

import wrapt
from opentelemetry.instrumentation.dependencies import get_dependency_conflicts
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)

from l0.observability import providers, settings

from .package import _instruments_litellm, _instruments_openai
from .patching import Patch, Wrapper, install, restore
from .policy import Policy
from .version import __version__

__all__ = ["L0Instrumentor", "__version__"]

_log = logging.getLogger("l0.instrumentation")

Patcher = Callable[[Policy], list[tuple[Patch, Wrapper]]]


def _openai_patches(policy: Policy) -> list[tuple[Patch, Wrapper]]:
    from .patch_openai import patches

    return patches(policy)


def _litellm_patches(policy: Policy) -> list[tuple[Patch, Wrapper]]:
    from .patch_litellm import patches

    return patches(policy)


# library, requirement, patcher: each is patched when (and if) the application imports it.
_LIBRARIES: tuple[tuple[str, str, Patcher], ...] = (
    ("openai", _instruments_openai, _openai_patches),
    ("litellm", _instruments_litellm, _litellm_patches),
)


class _Instrumentation:
    """The live state of one ``instrument()``: its policy and what it patched."""

    __slots__ = ("active", "capture", "patches", "policy", "providers")

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.active = True
        self.patches: list[Patch] = []
        self.providers: list[Callable[[None], None]] = []
        # The content-capture setting to put back on uninstrument, when instrument set one.
        self.capture: tuple[settings.ContentCapture | None] | None = None

    def on_import(self, library: str, patcher: Patcher, module: Any) -> None:
        # A post-import hook: an exception here would fail the application's import.
        if not self.active:
            return
        try:
            for patch, wrapper in patcher(self.policy):
                if install(patch, wrapper):
                    self.patches.append(patch)
        except Exception:
            _log.exception("l0: instrumenting %s failed; its calls run without l0", library)


class L0Instrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Runs OpenAI SDK and LiteLLM calls through l0 (see the module docstring).

    Instrumenting twice is harmless (the second call is ignored with a warning, as for every
    OpenTelemetry instrumentor); :meth:`uninstrument` puts the original methods back.
    """

    _state: _Instrumentation | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        """Nothing: l0 patches whichever of ``openai`` and ``litellm`` is installed, and
        checks each against :mod:`.package` itself. (Listing ``openai`` here would make
        ``instrument()`` refuse for an application that only uses LiteLLM.)"""
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        policy = Policy.from_options(
            retry=kwargs.get("retry"),
            timeout=kwargs.get("timeout"),
            guardrails=kwargs.get("guardrails"),
            fallbacks=kwargs.get("fallbacks"),
            continuation=kwargs.get("continuation", False),
            on_event=kwargs.get("on_event"),
        )
        state = _Instrumentation(policy)
        capture = kwargs.get("capture_content")
        if capture is not None:
            if isinstance(capture, bool):
                capture = "SPAN_AND_EVENT" if capture else "NO_CONTENT"
            # l0's capture setting is process-wide: remember the one in force to restore it.
            previous = settings.configured_capture()
            settings.configure(capture_content=capture)
            state.capture = (previous,)
        for key, setter in (
            ("tracer_provider", providers.set_tracer_provider),
            ("meter_provider", providers.set_meter_provider),
            ("logger_provider", providers.set_logger_provider),
        ):
            provider = kwargs.get(key)
            if provider is not None:
                setter(provider)
                state.providers.append(setter)
        self._state = state
        for library, requirement, patcher in _LIBRARIES:
            if importlib.util.find_spec(library) is None:
                continue
            conflict = get_dependency_conflicts([requirement])
            if conflict is not None:
                _log.warning("l0: not instrumenting %s: %s", library, conflict)
                continue
            # Patch on import: an application that never imports LiteLLM never pays for it
            # (its import takes seconds). Already imported: patched right now.
            wrapt.register_post_import_hook(
                functools.partial(state.on_import, library, patcher), library
            )

    def _uninstrument(self, **kwargs: Any) -> None:
        state = self._state
        if state is None:
            return
        self._state = None
        state.active = False  # import hooks still pending do nothing
        for patch in reversed(state.patches):
            restore(patch)
        for setter in state.providers:
            setter(None)
        if state.capture is not None:
            settings.restore_capture(state.capture[0])
