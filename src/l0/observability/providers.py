"""Which OpenTelemetry providers l0 reports to, and whether any of them is a real SDK.

By default l0 uses the global providers (``opentelemetry.trace.get_tracer_provider()`` and its
metrics and logs twins), checked on every session so a provider installed after ``import l0``
is picked up. The ``set_*_provider`` functions point l0 alone at other providers — for tests,
which cannot reset the process-wide ones (OpenTelemetry lets them be set once), and for apps
that keep l0's telemetry apart. ``None`` goes back to the global provider.

"Real" means anything but the API's proxy and no-op providers: with none configured, l0 builds
no metric instruments and no attribute dictionaries at all.

What a set of providers gives l0 (its tracer, which signals are real) is resolved once per
provider change into a :class:`Telemetry` and reused while the providers stay the same: a
session asks :func:`telemetry` once (~0.3 µs: a few identity checks) instead of looking the
providers up, and testing their types, for every span.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import opentelemetry._logs._internal as _logs_api
import opentelemetry.metrics._internal as _metrics_api
from opentelemetry import _logs, metrics, trace
from opentelemetry._logs import NoOpLoggerProvider
from opentelemetry._logs._internal import ProxyLoggerProvider
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.metrics._internal import _ProxyMeterProvider
from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider

from l0.observability import _env

__all__ = [
    "Telemetry",
    "logger_provider",
    "logs_active",
    "meter_provider",
    "metrics_active",
    "set_logger_provider",
    "set_meter_provider",
    "set_tracer_provider",
    "telemetry",
    "tracer",
    "tracer_provider",
    "tracing_active",
]

_tracer_provider: trace.TracerProvider | None = None
_meter_provider: metrics.MeterProvider | None = None
_logger_provider: _logs.LoggerProvider | None = None


def set_tracer_provider(provider: trace.TracerProvider | None) -> None:
    """Send l0's spans to ``provider`` instead of the global one (``None``: the global one)."""
    global _tracer_provider
    _tracer_provider = provider


def set_meter_provider(provider: metrics.MeterProvider | None) -> None:
    """Send l0's metrics to ``provider`` instead of the global one (``None``: the global one)."""
    global _meter_provider
    _meter_provider = provider


def set_logger_provider(provider: _logs.LoggerProvider | None) -> None:
    """Send l0's GenAI content events to ``provider`` instead of the global one."""
    global _logger_provider
    _logger_provider = provider


class Telemetry:
    """What one set of providers gives l0, resolved once per provider change.

    Attributes:
        tracer_provider: the tracer provider l0 reports to.
        meter_provider: the meter provider l0 reports to.
        logger_provider: the logger provider l0's GenAI events go to.
        tracer: l0's tracer from ``tracer_provider``.
        tracing: whether spans go to a real SDK tracer provider.
        metrics: whether metrics go to a real SDK meter provider.
        logs: whether log events go to a real SDK logger provider.
        observed: any of the three.
    """

    __slots__ = (
        "_globals",
        "_overrides",
        "_pending",
        "logger_provider",
        "logs",
        "meter_provider",
        "metrics",
        "observed",
        "tracer",
        "tracer_provider",
        "tracing",
    )

    def __init__(
        self,
        tracer_provider: trace.TracerProvider,
        meter_provider: metrics.MeterProvider,
        logger_provider: _logs.LoggerProvider,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.logger_provider = logger_provider
        self.tracer: trace.Tracer = (
            tracer if tracer is not None else tracer_provider.get_tracer("l0", _version())
        )
        self.tracing = not isinstance(tracer_provider, (ProxyTracerProvider, NoOpTracerProvider))
        self.metrics = not isinstance(meter_provider, (_ProxyMeterProvider, NoOpMeterProvider))
        self.logs = not isinstance(logger_provider, (ProxyLoggerProvider, NoOpLoggerProvider))
        self.observed = self.tracing or self.metrics or self.logs
        # What the snapshot was taken under (see telemetry()).
        self._overrides: tuple[object, object, object] = (None, None, None)
        self._globals: tuple[object, object, object] = (None, None, None)
        # The environment probes of the global providers used while unset.
        self._pending: tuple[Callable[[], object], ...] = ()


def _version() -> str:
    from l0 import __version__

    return __version__


# --- the snapshot -----------------------------------------------------------------------------
#
# A snapshot holds while l0's own settings (set_*_provider) and the API's global providers are
# the same objects. The globals are read from the API modules' own variables, which is what
# get_*_provider() return once set: those functions, while no global is set, also test the
# environment for an OTEL_PYTHON_*_PROVIDER entry point to load, by a `name in os.environ` that
# raises and catches a KeyError (~0.6 µs each). While a global is unset, the check here looks
# for that variable cheaply and, when it appears, resolves through the API (which loads it).

_FAST = (
    hasattr(trace, "_TRACER_PROVIDER")
    and hasattr(_metrics_api, "_METER_PROVIDER")
    and hasattr(_logs_api, "_LOGGER_PROVIDER")
)
_TRACER_ENV = _env.probe("OTEL_PYTHON_TRACER_PROVIDER")
_METER_ENV = _env.probe("OTEL_PYTHON_METER_PROVIDER")
_LOGGER_ENV = _env.probe("OTEL_PYTHON_LOGGER_PROVIDER")

_snapshot: Telemetry | None = None
_lock = threading.Lock()


def _globals() -> tuple[object, object, object]:
    """The API's global providers as set (``None``: not set, the proxy serves)."""
    if _FAST:
        return (
            trace._TRACER_PROVIDER,
            _metrics_api._METER_PROVIDER,
            _logs_api._LOGGER_PROVIDER,
        )
    return (trace.get_tracer_provider(), metrics.get_meter_provider(), _logs.get_logger_provider())


def _env_pending(probes: tuple[Callable[[], object], ...]) -> bool:
    """Whether a global provider l0 uses unset would now be loaded from the environment."""
    # A loop, not any(<generator>): this runs on every session, and the generator costs more.
    for probe in probes:  # noqa: SIM110
        if probe() is not None:
            return True
    return False


def telemetry() -> Telemetry:
    """What the current providers give l0 (the same object while they stay the same)."""
    snapshot = _snapshot
    if (
        snapshot is not None
        and snapshot._overrides[0] is _tracer_provider
        and snapshot._overrides[1] is _meter_provider
        and snapshot._overrides[2] is _logger_provider
    ):
        if _FAST:
            seen = snapshot._globals
            if (
                seen[0] is trace._TRACER_PROVIDER
                and seen[1] is _metrics_api._METER_PROVIDER
                and seen[2] is _logs_api._LOGGER_PROVIDER
                and not (snapshot._pending and _env_pending(snapshot._pending))
            ):
                return snapshot
        elif snapshot._globals == _globals():
            return snapshot
    return _refresh()


def _refresh() -> Telemetry:
    global _snapshot
    with _lock:
        overrides = (_tracer_provider, _meter_provider, _logger_provider)
        # The effective providers, through the API (which loads an environment entry point).
        provider = _tracer_provider if _tracer_provider is not None else trace.get_tracer_provider()
        cached = _snapshot
        made = Telemetry(
            provider,
            _meter_provider if _meter_provider is not None else metrics.get_meter_provider(),
            _logger_provider if _logger_provider is not None else _logs.get_logger_provider(),
            # One tracer per tracer provider, kept while the provider stays.
            cached.tracer if cached is not None and cached.tracer_provider is provider else None,
        )
        made._overrides = overrides
        made._globals = _globals()
        made._pending = tuple(
            probe
            for override, current, probe in zip(
                overrides, made._globals, (_TRACER_ENV, _METER_ENV, _LOGGER_ENV), strict=True
            )
            if override is None and current is None
        )
        _snapshot = made
        return made


# --- the providers, one at a time -------------------------------------------------------------


def tracer_provider() -> trace.TracerProvider:
    """The tracer provider l0 reports to."""
    return telemetry().tracer_provider


def meter_provider() -> metrics.MeterProvider:
    """The meter provider l0 reports to."""
    return telemetry().meter_provider


def logger_provider() -> _logs.LoggerProvider:
    """The logger provider l0's GenAI events go to."""
    return telemetry().logger_provider


def tracer() -> trace.Tracer:
    """l0's tracer from the current tracer provider (created once per provider)."""
    return telemetry().tracer


def tracing_active() -> bool:
    """Whether spans go to a real SDK tracer provider."""
    return telemetry().tracing


def metrics_active() -> bool:
    """Whether metrics go to a real SDK meter provider."""
    return telemetry().metrics


def logs_active() -> bool:
    """Whether log events go to a real SDK logger provider."""
    return telemetry().logs
