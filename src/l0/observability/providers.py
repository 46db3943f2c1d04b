"""Which OpenTelemetry providers l0 reports to, and whether any of them is a real SDK.

By default l0 uses the global providers (``opentelemetry.trace.get_tracer_provider()`` and its
metrics and logs twins), resolved on every session so a provider installed after ``import l0``
is picked up. The ``set_*_provider`` functions point l0 alone at other providers — for tests,
which cannot reset the process-wide ones (OpenTelemetry lets them be set once), and for apps
that keep l0's telemetry apart. ``None`` goes back to the global provider.

"Real" means anything but the API's proxy and no-op providers: with none configured, l0 builds
no metric instruments and no attribute dictionaries at all.
"""

from __future__ import annotations

from opentelemetry import _logs, metrics, trace
from opentelemetry._logs import NoOpLoggerProvider
from opentelemetry._logs._internal import ProxyLoggerProvider
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.metrics._internal import _ProxyMeterProvider
from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider

__all__ = [
    "logger_provider",
    "logs_active",
    "meter_provider",
    "metrics_active",
    "set_logger_provider",
    "set_meter_provider",
    "set_tracer_provider",
    "tracer",
    "tracer_provider",
    "tracing_active",
]

_tracer_provider: trace.TracerProvider | None = None
_meter_provider: metrics.MeterProvider | None = None
_logger_provider: _logs.LoggerProvider | None = None
_tracer_cache: tuple[trace.TracerProvider, trace.Tracer] | None = None
_global_tracer: trace.Tracer | None = None


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


def tracer_provider() -> trace.TracerProvider:
    """The tracer provider l0 reports to."""
    return _tracer_provider if _tracer_provider is not None else trace.get_tracer_provider()


def meter_provider() -> metrics.MeterProvider:
    """The meter provider l0 reports to."""
    return _meter_provider if _meter_provider is not None else metrics.get_meter_provider()


def logger_provider() -> _logs.LoggerProvider:
    """The logger provider l0's GenAI events go to."""
    return _logger_provider if _logger_provider is not None else _logs.get_logger_provider()


def tracer() -> trace.Tracer:
    """l0's tracer from the current tracer provider (created once per provider)."""
    global _tracer_cache, _global_tracer
    provider = _tracer_provider
    if provider is None:
        # The global: a proxy tracer forwards to the SDK provider once one is set (which can
        # happen only once), so one lookup serves for good.
        if _global_tracer is None:
            _global_tracer = trace.get_tracer("l0", _version())
        return _global_tracer
    cached = _tracer_cache
    if cached is not None and cached[0] is provider:
        return cached[1]
    made = provider.get_tracer("l0", _version())
    _tracer_cache = (provider, made)
    return made


def _version() -> str:
    from l0 import __version__

    return __version__


def tracing_active() -> bool:
    """Whether spans go to a real SDK tracer provider."""
    return not isinstance(tracer_provider(), (ProxyTracerProvider, NoOpTracerProvider))


def metrics_active() -> bool:
    """Whether metrics go to a real SDK meter provider."""
    return not isinstance(meter_provider(), (_ProxyMeterProvider, NoOpMeterProvider))


def logs_active() -> bool:
    """Whether log events go to a real SDK logger provider."""
    return not isinstance(logger_provider(), (ProxyLoggerProvider, NoOpLoggerProvider))
