"""Installing and removing l0's wrappers, and stepping past other GenAI instrumentations.

**Restoring exactly.** ``opentelemetry.instrumentation.utils.unwrap`` replaces whatever wrapper
is on top with its ``__wrapped__``; if another instrumentation wrapped the method after l0 did,
that removes *its* wrapper and leaves l0's. :func:`restore` instead puts back the very object
l0 found, and only when l0's wrapper is still the one installed; otherwise it leaves the chain
alone and l0's wrapper, disabled, passes every call straight through.

**Duplicate spans.** When l0 owns a call, a per-request ``chat`` span from another OpenAI
instrumentation under it would duplicate l0's ``chat`` span (and its GenAI metrics). The
OpenTelemetry suppression key cannot help: the official instrumentation does not read it, and
it would also silence the HTTP client spans that belong under ``l0.attempt``. So when l0 wraps
a method that a known GenAI instrumentation wrapped before it (the official
``opentelemetry-instrumentation-openai-v2``, other ``opentelemetry.instrumentation.openai*``
packages, Sentry's OpenAI integration), l0's attempts call the method *underneath* those
wrappers: their spans are not produced for calls l0 runs. An instrumentation that wraps *after*
l0 sits outside it and sees the whole logical call: its span then becomes the parent of
``l0.session`` (nesting, documented in ``docs/instrumentation.md``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import wrapt

__all__ = ["Patch", "install", "restore", "skip_telemetry_wrappers"]

_log = logging.getLogger("l0.instrumentation")

# Module prefixes of GenAI instrumentations whose wrappers l0 steps past (see the module doc).
_TELEMETRY_MODULES = (
    "opentelemetry.instrumentation.openai",
    "opentelemetry.instrumentation.genai",
    "sentry_sdk.integrations.openai",
)

Wrapper = Callable[[Any, Any, tuple[Any, ...], dict[str, Any]], Any]


@dataclass(slots=True, eq=False)
class Patch:
    """One patched attribute.

    Attributes:
        owner: the class or module holding the attribute.
        name: the attribute's name.
        original: exactly what ``owner`` held before l0 patched it.
        inner: ``original`` with known GenAI instrumentation wrappers stepped past, or ``None``
            when there were none (then the ``wrapped`` l0's wrapper receives is called).
        wrapper: the wrapper l0 installed.
        enabled: ``False`` after :func:`restore`: the wrapper, if still reachable, passes calls
            through untouched.
    """

    owner: Any
    name: str
    original: Any = None
    inner: Any = None
    wrapper: Any = None
    enabled: bool = field(default=True)

    def target(self, wrapped: Any, instance: Any) -> Any:
        """The callable an l0 attempt invokes: ``inner`` bound to ``instance``, or
        ``wrapped``."""
        inner = self.inner
        if inner is None:
            return wrapped
        if instance is None:
            return inner
        return inner.__get__(instance, type(instance))


def _lookup(owner: Any, name: str) -> Any:
    if isinstance(owner, type):
        # The class's own __dict__: getattr would bind, and would find inherited attributes.
        return owner.__dict__.get(name)
    return getattr(owner, name, None)


def _is_telemetry(obj: Any) -> bool:
    # functools.wraps copies the wrapped function's __module__ onto the wrapper (Sentry's
    # does): the module whose globals the function runs in says where it really lives.
    defined_in = getattr(obj, "__globals__", {}).get("__name__")
    for module in (defined_in, getattr(obj, "__module__", None)):
        if isinstance(module, str) and module.startswith(_TELEMETRY_MODULES):
            return True
    return False


def skip_telemetry_wrappers(function: Any) -> Any:
    """``function`` without the known GenAI instrumentation wrappers around it, or ``None``
    when it has none."""
    current = function
    skipped = False
    for _ in range(16):  # a bounded walk: wrappers can form odd chains
        wrapper = getattr(current, "_self_wrapper", None) if _is_wrapt(current) else None
        if wrapper is not None:
            if not _is_telemetry(wrapper):
                break
        elif not (_is_telemetry(current) and hasattr(current, "__wrapped__")):
            break
        current = current.__wrapped__
        skipped = True
    return current if skipped else None


def _is_wrapt(obj: Any) -> bool:
    # wrapt 2's FunctionWrapper derives from BaseObjectProxy, wrapt 1's from ObjectProxy.
    return isinstance(obj, getattr(wrapt, "BaseObjectProxy", wrapt.ObjectProxy))


def install(patch: Patch, wrapper: Wrapper) -> bool:
    """Wrap ``patch.owner.<patch.name>`` with ``wrapper``; False when there is nothing to wrap."""
    original = _lookup(patch.owner, patch.name)
    if original is None:
        _log.debug("l0: %r has no attribute %r to instrument", patch.owner, patch.name)
        return False
    patch.original = original
    patch.inner = skip_telemetry_wrappers(original)
    if patch.inner is not None:
        _log.info(
            "l0: %s.%s is already instrumented by %s; calls l0 runs step past it "
            "(l0's chat span replaces its span)",
            getattr(patch.owner, "__qualname__", patch.owner),
            patch.name,
            getattr(getattr(original, "_self_wrapper", original), "__module__", "?"),
        )
    wrapt.wrap_function_wrapper(patch.owner, patch.name, wrapper)
    patch.wrapper = _lookup(patch.owner, patch.name)
    patch.enabled = True
    return True


def restore(patch: Patch) -> bool:
    """Put back the original, if l0's wrapper is still the installed one (see the module
    doc); always disables the wrapper. Returns whether the original is back in place."""
    patch.enabled = False
    if patch.wrapper is None:
        return True
    if _lookup(patch.owner, patch.name) is not patch.wrapper:
        _log.warning(
            "l0: %s.%s was wrapped again after l0 instrumented it; l0's wrapper stays in the "
            "chain but passes calls through",
            getattr(patch.owner, "__qualname__", patch.owner),
            patch.name,
        )
        return False
    setattr(patch.owner, patch.name, patch.original)
    return True
