"""What the observability layer records beyond its defaults: content capture, per-chunk metrics.

Both are off by default and read from the environment (so an app can switch them on without a
code change), unless :func:`configure` set them. They are read when a phase ends, never per chunk.
"""

from __future__ import annotations

import enum
import logging
from typing import Final

from l0.observability._env import EnvSetting

__all__ = ["ContentCapture", "configure", "content_capture", "per_chunk_metrics"]

CAPTURE_CONTENT_ENV: Final = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
PER_CHUNK_ENV: Final = "L0_METRICS_PER_CHUNK"

_log = logging.getLogger("l0")


class ContentCapture(str, enum.Enum):
    """Where message content (prompts, completions) may be recorded.

    The values of ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (case-insensitive);
    the legacy ``true`` means ``SPAN_AND_EVENT`` and ``false`` means ``NO_CONTENT``.
    """

    NO_CONTENT = "NO_CONTENT"
    """Never (the default)."""
    SPAN_ONLY = "SPAN_ONLY"
    """As ``gen_ai.input.messages`` / ``gen_ai.output.messages`` on the ``chat`` span."""
    EVENT_ONLY = "EVENT_ONLY"
    """As a ``gen_ai.client.inference.operation.details`` log event."""
    SPAN_AND_EVENT = "SPAN_AND_EVENT"
    """Both."""

    @property
    def on_span(self) -> bool:
        return self in (ContentCapture.SPAN_ONLY, ContentCapture.SPAN_AND_EVENT)

    @property
    def as_event(self) -> bool:
        return self in (ContentCapture.EVENT_ONLY, ContentCapture.SPAN_AND_EVENT)


_LEGACY: Final = {"TRUE": ContentCapture.SPAN_AND_EVENT, "FALSE": ContentCapture.NO_CONTENT}

_configured_capture: ContentCapture | None = None
_configured_per_chunk: bool | None = None
_warned: set[str] = set()


def configure(
    *,
    per_chunk_metrics: bool | None = None,
    capture_content: ContentCapture | str | None = None,
) -> None:
    """Set what l0 records, overriding the environment (``None`` leaves a setting as it is).

    Args:
        per_chunk_metrics: record ``gen_ai.client.operation.time_per_output_chunk`` (default
            off, or ``L0_METRICS_PER_CHUNK=true``). l0 records it once per stream, as the mean
            gap between chunks, never once per chunk: see ``docs/observability.md``.
        capture_content: a :class:`ContentCapture` mode (default from
            ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``, else ``NO_CONTENT``).

    Example::

        l0.observability.configure(per_chunk_metrics=True, capture_content="SPAN_ONLY")
    """
    global _configured_capture, _configured_per_chunk
    if per_chunk_metrics is not None:
        _configured_per_chunk = bool(per_chunk_metrics)
    if capture_content is not None:
        mode = _parse_capture(str(getattr(capture_content, "value", capture_content)))
        if mode is None:
            raise ValueError(
                f"capture_content must be one of {', '.join(m.value for m in ContentCapture)}"
                f" (or true/false), not {capture_content!r}"
            )
        _configured_capture = mode


def configured_capture() -> ContentCapture | None:
    """The capture mode set with :func:`configure` (``None``: the environment decides)."""
    return _configured_capture


def restore_capture(mode: ContentCapture | None) -> None:
    """Put back a value returned by :func:`configured_capture` (``None`` included)."""
    global _configured_capture
    _configured_capture = mode


def reset() -> None:
    """Forget :func:`configure`'s settings: back to the environment (for tests)."""
    global _configured_capture, _configured_per_chunk
    _configured_capture = None
    _configured_per_chunk = None


def _parse_capture(raw: str) -> ContentCapture | None:
    value = raw.strip().upper()
    if value in _LEGACY:
        return _LEGACY[value]
    try:
        return ContentCapture(value)
    except ValueError:
        return None


def _capture_from_env(raw: str | None) -> ContentCapture:
    if not raw:
        return ContentCapture.NO_CONTENT
    mode = _parse_capture(raw)
    if mode is None:
        if raw not in _warned:
            _warned.add(raw)
            _log.warning(
                "l0: %s=%r is not one of %s; recording no content",
                CAPTURE_CONTENT_ENV,
                raw,
                ", ".join(m.value for m in ContentCapture),
            )
        return ContentCapture.NO_CONTENT
    return mode


def _per_chunk_from_env(raw: str | None) -> bool:
    return (raw or "").strip().lower() in ("1", "true", "yes", "on")


# Parsed again only when the variable changes (see l0.observability._env).
_CAPTURE_ENV: Final = EnvSetting(CAPTURE_CONTENT_ENV, _capture_from_env)
_PER_CHUNK_ENV: Final = EnvSetting(PER_CHUNK_ENV, _per_chunk_from_env)


def content_capture() -> ContentCapture:
    """The content capture mode in force."""
    if _configured_capture is not None:
        return _configured_capture
    return _CAPTURE_ENV.get()


def per_chunk_metrics() -> bool:
    """Whether the time-per-output-chunk histogram is recorded."""
    if _configured_per_chunk is not None:
        return _configured_per_chunk
    return _PER_CHUNK_ENV.get()
