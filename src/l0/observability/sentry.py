"""Sentry: one event per failed l0 session, grouped by failure mode and linked to its trace.

Enable it the usual Sentry way (it needs the ``sentry`` extra, ``pip install 'l0[sentry]'``)::

    import sentry_sdk
    from l0.observability.sentry import L0Integration

    sentry_sdk.init(dsn="https://...", integrations=[L0Integration()])

What it sends (``docs/sentry.md`` has the whole story):

- exactly one event for a session that fails for good, captured when the session ends; never
  one per failed attempt, and nothing for a session that recovered, was cancelled or was
  garbage-collected unread;
- a fingerprint from l0's error taxonomy (``["l0", category, code, provider]``; guardrails
  ``["l0", "guardrail", rule]``; drift ``["l0", "drift"]``), so Sentry groups by failure mode,
  not by the stack trace of whichever attempt happened to fail last;
- that session's failed attempts, retries, fallbacks and guardrail results as breadcrumbs;
- the session span's OpenTelemetry trace and span id as the event's trace context;
- no prompt or completion text unless ``capture_content=True`` *and* Sentry lets GenAI
  outputs through (``data_collection={"gen_ai": {"outputs": True}}``, the default once
  ``data_collection`` is set, or the older ``send_default_pii=True``): the same double opt-in
  as Sentry's own AI integrations.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import SpanContext, format_span_id, format_trace_id, get_current_span

from l0.config import ConfigError
from l0.errors import GuardrailError, L0Error
from l0.observability.bus import add_sink
from l0.observability.events import ObservabilityEvent
from l0.observability.events import ObservabilityEventType as T
from l0.observability.redaction import redact
from l0.types import ErrorCode

try:
    import sentry_sdk
    from sentry_sdk.integrations import Integration
    from sentry_sdk.utils import capture_internal_exceptions, event_from_exception
except ImportError as missing:  # pragma: no cover - depends on the environment
    raise ImportError(
        "l0.observability.sentry needs sentry-sdk: pip install 'l0[sentry]'"
    ) from missing

if TYPE_CHECKING:
    from sentry_sdk.types import Event, Hint

__all__ = ["L0Integration"]

CONTENT_LIMIT = 4096
"""With content capture on, the checkpoint text sent to Sentry is cut to this many characters."""

# Sessions with something worth a breadcrumb whose SESSION_END has not arrived yet. Every
# session emits SESSION_END on every path, so this only guards against a leak if one never does.
_MAX_OPEN_TRAILS = 1024
# A session with a huge retry budget must not grow one event without bound.
_MAX_CRUMBS_PER_SESSION = 100

# Failure codes whose exception messages can quote model output (a guardrail's message, the
# model's own refusal text): withheld unless content capture is on.
_MODEL_OUTPUT_CODES = frozenset(
    {
        ErrorCode.GUARDRAIL_VIOLATION.value,
        ErrorCode.DRIFT_DETECTED.value,
        ErrorCode.CONTENT_FILTERED.value,
    }
)
_PRIMITIVES = (str, bool, int, float)


class L0Integration(Integration):
    """Report l0 sessions that fail for good to Sentry, one event each.

    Args:
        capture_content: send the session's checkpoint (the last text that passed guardrails,
            cut to :data:`CONTENT_LIMIT` characters), guardrail messages and exception
            messages that may quote model output, and leave stack-frame local variables to
            Sentry's own settings (without it, l0 strips them). Takes effect only
            when Sentry allows GenAI outputs too (``data_collection``'s ``gen_ai.outputs``, or
            ``send_default_pii`` before that option existed). Off by default.
        handled: the ``mechanism.handled`` flag of the events. ``True`` by default: l0 has
            already handled the failure (retries, fallbacks) and hands it to the caller as a
            typed :class:`l0.L0Error`, an expected outcome of calling an unreliable service
            rather than a crash, so it must not mark Sentry release-health sessions as crashed.
            Set ``False`` if your application treats any failed LLM call as a crash. An exception
            that escapes l0 without being turned into an ``L0Error`` (a bug) is always
            reported with ``handled=False``.

    Example::

        sentry_sdk.init(dsn=..., integrations=[L0Integration(capture_content=False)])
    """

    identifier = "l0"

    def __init__(self, *, capture_content: bool = False, handled: bool = True) -> None:
        if not isinstance(capture_content, bool):
            raise ConfigError("L0Integration", "capture_content", "must be a bool", capture_content)
        if not isinstance(handled, bool):
            raise ConfigError("L0Integration", "handled", "must be a bool", handled)
        self.capture_content = capture_content
        self.handled = handled

    @staticmethod
    def setup_once() -> None:
        # Sentry calls this once per process, whatever the number of `init`s; the sink then
        # looks up the current client's instance on every event, so re-initialising Sentry
        # (new options, or without this integration) takes effect at once.
        add_sink(_recorder)


class _Trail:
    """The breadcrumbs of one session, kept until its SESSION_END."""

    __slots__ = ("crumbs", "fallback_reason")

    def __init__(self) -> None:
        self.crumbs: deque[dict[str, Any]] = deque(maxlen=_MAX_CRUMBS_PER_SESSION)
        self.fallback_reason: Any = None


class _Recorder:
    """The process-wide sink behind :class:`L0Integration`."""

    def __init__(self, max_sessions: int = _MAX_OPEN_TRAILS) -> None:
        self._lock = threading.Lock()
        self._trails: OrderedDict[str, _Trail] = OrderedDict()
        self._max_sessions = max_sessions

    def __len__(self) -> int:
        return len(self._trails)

    def __call__(self, event: ObservabilityEvent) -> None:
        kind = event.type
        if kind not in _WATCHED:
            return
        trail: _Trail | None = None
        if kind is T.SESSION_END:
            # Dropped even when Sentry was switched off meanwhile: no trail outlives its session.
            with self._lock:
                trail = self._trails.pop(event.stream_id, None)
        integration = sentry_sdk.get_client().get_integration(L0Integration)
        if integration is None:
            return
        # Sentry's own guard: a failure in here (a broken transport, a before_send that
        # raises) goes to Sentry's internal-error log and never reaches the stream.
        with capture_internal_exceptions():
            if kind is T.SESSION_END:
                _session_end(integration, event, trail)
            else:
                self._record(integration, event)

    def _record(self, integration: L0Integration, event: ObservabilityEvent) -> None:
        kind = event.type
        data = event.data
        if kind is T.ATTEMPT_END and data.get("outcome") != "error":
            return
        with self._lock:
            trail = self._trails.get(event.stream_id)
            if trail is None:
                while len(self._trails) >= self._max_sessions:
                    self._trails.popitem(last=False)
                trail = self._trails[event.stream_id] = _Trail()
        if kind is T.FALLBACK_END:
            # Its reason belongs on the FALLBACK_START breadcrumb that follows.
            trail.fallback_reason = data.get("reason")
            return
        crumb = _breadcrumb(event, trail, _content_allowed(integration))
        before = sentry_sdk.get_client().options.get("before_breadcrumb")
        if before is not None:
            kept = before(crumb, {"l0_event": event})
            if kept is None:
                return
            crumb = kept
        trail.crumbs.append(crumb)


_WATCHED = frozenset(
    {
        T.ATTEMPT_END,
        T.RETRY_ATTEMPT,
        T.FALLBACK_END,
        T.FALLBACK_START,
        T.GUARDRAIL_RULE_RESULT,
        T.SESSION_END,
    }
)
_recorder = _Recorder()


def _content_allowed(integration: L0Integration) -> bool:
    """Content goes out only with l0's opt-in *and* Sentry's permission for GenAI outputs."""
    if not integration.capture_content:
        return False
    options = sentry_sdk.get_client().options
    # sentry-sdk 2.x since the `data_collection` option: its resolved `gen_ai.outputs` (which
    # mirrors `send_default_pii` when the user did not set `data_collection`). Older 2.x:
    # `send_default_pii`, as Sentry's own AI integrations check.
    collection = options.get("data_collection")
    if isinstance(collection, Mapping):
        gen_ai = collection.get("gen_ai")
        if isinstance(gen_ai, Mapping):
            return bool(gen_ai.get("outputs"))
    return bool(options.get("send_default_pii"))


def _breadcrumb(event: ObservabilityEvent, trail: _Trail, content: bool) -> dict[str, Any]:
    data = event.data
    kind = event.type
    if kind is T.ATTEMPT_END:
        # One crumb per failed attempt covers every failure kind (network, timeout, model,
        # guardrail, zero output); NETWORK_ERROR and TIMEOUT_TRIGGERED would repeat it.
        category, level = "l0.attempt", "warning"
        message = f"attempt {data.get('attempt')} failed: {data.get('code')}"
        fields = _pick(
            data, "attempt", "fallback_index", "reason", "category", "code", "duration", "chunks"
        )
    elif kind is T.RETRY_ATTEMPT:
        category, level = "l0.retry", "info"
        message = f"retry: attempt {data.get('attempt')} after {data.get('code')}"
        fields = _pick(data, "attempt", "delay", "category", "code")
    elif kind is T.FALLBACK_START:
        category, level = "l0.fallback", "warning"
        message = f"fallback: target {data.get('from_index')} -> {data.get('to_index')}"
        fields = _pick(data, "from_index", "to_index")
        if trail.fallback_reason is not None:
            fields["reason"] = trail.fallback_reason
            trail.fallback_reason = None
    else:  # GUARDRAIL_RULE_RESULT
        severity = data.get("severity")
        category = "l0.guardrail"
        level = "warning" if severity == "warning" else "error"
        message = f"guardrail {data.get('rule')}: {severity}"
        fields = _pick(data, "rule", "severity", "recoverable", "position")
        if content:
            fields["message"] = data.get("message")
    return {
        "type": "default",
        "category": category,
        "level": level,
        "message": message,
        "data": fields,
        "timestamp": datetime.fromtimestamp(event.ts, timezone.utc),
    }


def _pick(data: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {key: data[key] for key in keys if data.get(key) is not None}


def _session_end(
    integration: L0Integration, event: ObservabilityEvent, trail: _Trail | None
) -> None:
    data = event.data
    outcome = data.get("outcome")
    if outcome == "completed":
        attempts = data.get("attempts") or 0
        if trail is not None and attempts > 1:
            # Not an error, but context for whatever the application reports next.
            sentry_sdk.add_breadcrumb(
                type="default",
                category="l0.session",
                level="info",
                message=f"l0 session recovered after {attempts} attempts",
                data={
                    "stream_id": event.stream_id,
                    "attempts": attempts,
                    "fallback_index": data.get("fallback_index"),
                },
                timestamp=datetime.fromtimestamp(event.ts, timezone.utc),
            )
        return
    # "cancelled" and "abandoned" are the consumer's decisions, not failures.
    if outcome != "error":
        return
    sentry_event, hint = _build_event(integration, event, trail)
    sentry_sdk.capture_event(sentry_event, hint=hint)


def _build_event(
    integration: L0Integration, event: ObservabilityEvent, trail: _Trail | None
) -> tuple[Event, Hint]:
    data = event.data
    client = sentry_sdk.get_client()
    content = _content_allowed(integration)
    error = data.get("error")
    provider = data.get("provider")
    model = data.get("model") or data.get("response_model")

    if isinstance(error, L0Error):
        category = error.category.value
        code = error.code.value
        # The code of the failure that ended the session: "ALL_ATTEMPTS_EXHAUSTED" alone
        # would put a rate limit and an outage of the same category in one issue.
        last_code = error.errors[-1].code.value if error.errors else code
    else:
        category = str(data.get("error_category") or "internal")
        code = str(data.get("error_code") or "INTERNAL_ERROR")
        last_code = code

    sentry_event: Event
    hint: Hint
    if isinstance(error, BaseException):
        # l0 turned the failure into an L0Error after its own handling; anything else got
        # past l0's error handling, which is a bug and reported as such.
        handled = integration.handled if isinstance(error, L0Error) else False
        sentry_event, hint = event_from_exception(
            error, client_options=client.options, mechanism={"type": "l0", "handled": handled}
        )
        if not content:
            _withhold_content(sentry_event, error, last_code)
        # Secrets never, content opt-in or not: a provider error can echo the API key.
        for exception in sentry_event.get("exception", {}).get("values", []):
            if isinstance(exception.get("value"), str):
                exception["value"] = redact(exception["value"])
    else:
        # A session end without the exception (nothing in l0 does that today): still report.
        sentry_event = {"level": "error", "message": f"l0 session failed: {code}"}
        hint = {}

    fingerprint = _fingerprint(category, last_code, provider, error)
    if fingerprint is not None:
        sentry_event["fingerprint"] = fingerprint
    sentry_event["logger"] = "l0"

    tags = sentry_event.setdefault("tags", {})
    for key, value in (
        ("gen_ai.request.model", model),
        ("gen_ai.provider.name", provider),
        ("l0.fallback.index", data.get("fallback_index")),
        ("l0.attempts", data.get("attempts")),
        ("l0.error.category", category),
        ("l0.error.code", code),
        ("l0.error.last_code", last_code),
        ("l0.stream.id", event.stream_id),
    ):
        if value is not None:
            tags[key] = str(value)

    details: dict[str, object] = {"stream_id": event.stream_id}
    for key in ("attempts", "fallback_index", "duration", "time_to_first_token", "token_count"):
        if data.get(key) is not None:
            details[key] = data[key]
    meta = {k: v for k, v in event.meta.items() if isinstance(v, _PRIMITIVES)}
    if meta:
        details["meta"] = meta
    if content and isinstance(error, L0Error) and error.checkpoint:
        details["checkpoint"] = error.checkpoint[:CONTENT_LIMIT]
    contexts = sentry_event.setdefault("contexts", {})
    contexts["l0"] = details
    trace_context = _otel_trace_context()
    if trace_context is not None:
        contexts["trace"] = trace_context

    limit = client.options.get("max_breadcrumbs", _MAX_CRUMBS_PER_SESSION)
    if trail is not None and trail.crumbs and isinstance(limit, int) and limit > 0:
        sentry_event["breadcrumbs"] = {"values": list(trail.crumbs)[-limit:]}
    return sentry_event, hint


def _fingerprint(category: str, last_code: str, provider: Any, error: object) -> list[str] | None:
    if last_code == ErrorCode.DRIFT_DETECTED.value:
        return ["l0", "drift"]
    if last_code == ErrorCode.GUARDRAIL_VIOLATION.value:
        return ["l0", "guardrail", _rules(error) or "unknown"]
    if category == "internal":
        # A bug (in l0 or in the caller's stream factory): Sentry's default grouping by stack
        # trace separates one bug from another; a taxonomy key would lump them together.
        return None
    return ["l0", category, last_code, str(provider) if provider else "unknown"]


def _rules(error: object) -> str:
    """The rules that failed the last attempt (``a+b`` when several did)."""
    cause = error.__cause__ if isinstance(error, L0Error) else None
    if not isinstance(cause, GuardrailError):
        return ""
    return "+".join(sorted({violation.rule for violation in cause.violations}))


def _withhold_content(sentry_event: Event, error: BaseException, last_code: str) -> None:
    """Strip what can carry prompt or completion text from an exception event."""
    values = sentry_event.get("exception", {}).get("values", [])
    for value in values:
        stacktrace = value.get("stacktrace") or {}
        for frame in stacktrace.get("frames") or ():
            # Local variables of the frames that read the stream hold its text.
            frame.pop("vars", None)
    if last_code not in _MODEL_OUTPUT_CODES:
        return
    rules = _rules(error)
    summary = f"{last_code} ({rules})" if rules else last_code
    for value in values:
        if value.get("type") == "L0Error" and isinstance(error, L0Error):
            attempts = len(error.errors) or 1
            value["value"] = (
                f"{error.code.value} after {attempts} attempt(s); last failure: {summary} "
                "[message withheld: it may quote model output]"
            )
        else:
            value["value"] = f"{summary} [message withheld: it may quote model output]"


def _otel_trace_context() -> dict[str, object] | None:
    """The current OpenTelemetry span as Sentry's trace context, or ``None`` without one.

    SESSION_END is emitted with the session span current, so this is the session's span.
    With no valid OTel span (no SDK, no propagated parent) Sentry keeps its own trace context.
    Sentry's ``OTLPIntegration`` reads the same current span for every event; setting it here
    makes the link independent of which Sentry integrations are on.
    """
    span = get_current_span()
    span_context = span.get_span_context()
    if not span_context.is_valid:
        return None
    context: dict[str, object] = {
        "trace_id": format_trace_id(span_context.trace_id),
        "span_id": format_span_id(span_context.span_id),
        "op": "l0.session",
        "status": "internal_error",
    }
    # SDK spans know their parent; the API's non-recording spans do not.
    parent = getattr(span, "parent", None)
    if isinstance(parent, SpanContext) and parent.is_valid:
        context["parent_span_id"] = format_span_id(parent.span_id)
    return context
