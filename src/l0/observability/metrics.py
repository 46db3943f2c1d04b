"""l0's metrics: the GenAI client metrics and l0's own, recorded when phases end.

Nothing here runs per chunk. A phase hands itself to :meth:`MetricsRecorder.phase_ended` when
it ends (with its span current, so histogram exemplars link to the trace), and the recorder is
also a bus sink for the point events that are not phases (retries, fallbacks, guardrail
violations, stalls). Running aggregates (chunk count, first-chunk time, largest gap) are kept
by the session in plain attributes and recorded here once per attempt.

With no SDK meter provider configured, :func:`recorder` returns ``None`` and no instrument is
ever created. Metric attributes are filtered through :data:`semconv.METRIC_ATTRIBUTES`: model,
provider, server, outcome, reason, rule, category, code — never ids, prompts or user ``meta``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from opentelemetry.metrics import Counter, Histogram, Meter, MeterProvider

from l0.observability import providers
from l0.observability import semconv as sc
from l0.observability.events import ObservabilityEvent
from l0.observability.events import ObservabilityEventType as T
from l0.observability.settings import per_chunk_metrics

if TYPE_CHECKING:
    from l0.observability.phase import Outcome, Phase

__all__ = ["DURATION_BUCKETS", "TOKEN_BUCKETS", "MetricsRecorder", "recorder"]

DURATION_BUCKETS: Final = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
"""The GenAI conventions' boundaries for every duration histogram (seconds)."""

TOKEN_BUCKETS: Final = (
    1,
    4,
    16,
    64,
    256,
    1024,
    4096,
    16384,
    65536,
    262144,
    1048576,
    4194304,
    16777216,
    67108864,
)
"""The GenAI conventions' boundaries for ``gen_ai.client.token.usage`` (tokens)."""

GAP_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Boundaries for ``l0.stream.chunk_gap.max`` (seconds): from a fast token stream to a stall."""

# Outcomes with a GenAI operation to report: a consumer that stopped early (or a stream never
# read) did not finish the call, and its partial duration would skew latency percentiles.
_REPORTED = frozenset({"completed", "error"})

# The chat span's attributes that GenAI client metrics carry (the conventions' metric set).
_GEN_AI_KEYS: Final = (
    sc.GEN_AI_OPERATION_NAME,
    sc.GEN_AI_PROVIDER_NAME,
    sc.GEN_AI_REQUEST_MODEL,
    sc.GEN_AI_RESPONSE_MODEL,
    sc.SERVER_ADDRESS,
    sc.SERVER_PORT,
)
# What l0's own per-attempt metrics carry from the chat span: which model, where.
_TARGET_KEYS: Final = (sc.GEN_AI_PROVIDER_NAME, sc.GEN_AI_REQUEST_MODEL, sc.SERVER_ADDRESS)


def allowed(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """``attributes`` restricted to the metric allow-list, without ``None`` values."""
    return {k: v for k, v in attributes.items() if v is not None and k in sc.METRIC_ATTRIBUTES}


def _pick(attributes: Mapping[str, Any] | None, keys: tuple[str, ...]) -> dict[str, Any]:
    if not attributes:
        return {}
    return {k: attributes[k] for k in keys if attributes.get(k) is not None}


class MetricsRecorder:
    """Records l0's metrics on one meter. One per meter provider and conventions mode."""

    def __init__(self, meter: Meter, conventions: sc.Conventions) -> None:
        self.conventions = conventions
        self._meter = meter
        self._lock = threading.Lock()
        self._time_per_chunk: Histogram | None = None
        self.operation_duration = meter.create_histogram(
            conventions.operation_duration,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.time_to_first_chunk = meter.create_histogram(
            conventions.time_to_first_chunk,
            unit="s",
            description="Time to receive the first chunk, measured from when the client issues "
            "the generation request to when the first chunk is received in the response stream.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.token_usage: Histogram | None = None
        self.input_tokens: Counter | None = None
        self.output_tokens: Counter | None = None
        if conventions.token_usage is not None:
            self.token_usage = meter.create_histogram(
                conventions.token_usage,
                unit="{token}",
                description="Number of input and output tokens used.",
                explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
            )
        if conventions.input_tokens is not None and conventions.output_tokens is not None:
            self.input_tokens = meter.create_counter(
                conventions.input_tokens,
                unit="{token}",
                description="The number of input (prompt) tokens used, including cached tokens.",
            )
            self.output_tokens = meter.create_counter(
                conventions.output_tokens,
                unit="{token}",
                description="The number of output (completion) tokens used.",
            )
        self.sessions = meter.create_counter(
            sc.METRIC_SESSIONS, unit="{session}", description="l0 sessions, by outcome."
        )
        self.session_duration = meter.create_histogram(
            sc.METRIC_SESSION_DURATION,
            unit="s",
            description="Duration of an l0 session, first attempt to final event.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.attempts = meter.create_counter(
            sc.METRIC_ATTEMPTS,
            unit="{attempt}",
            description="Attempts (one provider stream each), by reason and outcome.",
        )
        self.retries = meter.create_counter(
            sc.METRIC_RETRIES, unit="{retry}", description="Retries, by the failure's category."
        )
        self.fallbacks = meter.create_counter(
            sc.METRIC_FALLBACKS, unit="{fallback}", description="Moves to a fallback target."
        )
        self.violations = meter.create_counter(
            sc.METRIC_GUARDRAIL_VIOLATIONS,
            unit="{violation}",
            description="Guardrail violations, by rule and severity.",
        )
        self.errors = meter.create_counter(
            sc.METRIC_ERRORS,
            unit="{error}",
            description="Failed attempts, by error category and code.",
        )
        self.stalls = meter.create_counter(
            sc.METRIC_STREAM_STALLS,
            unit="{stall}",
            description="Streams cut by the initial-token or inter-token timeout.",
        )
        self.chunk_gap_max = meter.create_histogram(
            sc.METRIC_CHUNK_GAP_MAX,
            unit="s",
            description="The largest gap between two chunks of one stream (once per stream).",
            explicit_bucket_boundaries_advisory=GAP_BUCKETS,
        )

    def time_per_output_chunk(self) -> Histogram:
        """The opt-in histogram, created on first use (so it never appears unless enabled)."""
        histogram = self._time_per_chunk
        if histogram is None:
            with self._lock:
                if self._time_per_chunk is None:
                    self._time_per_chunk = self._meter.create_histogram(
                        self.conventions.time_per_output_chunk,
                        unit="s",
                        description="Time per output chunk after the first one. l0 records one "
                        "value per stream: the mean gap between its chunks.",
                        explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
                    )
                histogram = self._time_per_chunk
        return histogram

    # --- phases -------------------------------------------------------------------------

    def phase_ended(self, phase: Phase, outcome: Outcome, data: Mapping[str, Any]) -> None:
        """Record what ``phase`` measured (called by :meth:`Phase.end`, span current)."""
        # By span name and member value (plain attributes: an enum's `name` and `value` are
        # descriptors, ~0.3 µs a read).
        span_name = phase.kind.span_name
        if span_name == sc.SPAN_SESSION:
            self._session(outcome._value_, data)
        elif span_name == sc.OPERATION_CHAT:
            self._target(phase, outcome._value_)
        elif span_name == sc.SPAN_ATTEMPT:
            self._attempt(phase, outcome._value_, data)

    def _session(self, outcome: str, data: Mapping[str, Any]) -> None:
        attributes = {sc.L0_OUTCOME: outcome}
        if outcome == "error" and data.get("error_code"):
            # The terminal code tells exhausted sessions (ALL_ATTEMPTS_EXHAUSTED) from fatal ones.
            attributes = allowed({**attributes, sc.ERROR_TYPE: data["error_code"]})
        self.sessions.add(1, attributes)
        duration = data.get("duration")
        if isinstance(duration, (int, float)):
            self.session_duration.record(duration, attributes)

    # The attribute dictionaries below are built from allow-listed keys and non-None values
    # only, so each is what `allowed` would make of it, without the filtering pass (`_pick`
    # drops None values; the keys added are all in METRIC_ATTRIBUTES). No dictionary is passed
    # to two records, and none is changed once passed.

    def _target(self, phase: Phase, outcome: str) -> None:
        if outcome not in _REPORTED:
            return
        span_attributes = phase.attributes or {}
        attributes = _pick(span_attributes, _GEN_AI_KEYS)
        error_type = span_attributes.get(sc.ERROR_TYPE) if outcome == "error" else None
        self.operation_duration.record(
            phase.bus.clock.now() - phase.started,
            {**attributes, sc.ERROR_TYPE: error_type} if error_type else attributes,
        )
        input_tokens = span_attributes.get(sc.GEN_AI_USAGE_INPUT_TOKENS)
        output_tokens = span_attributes.get(sc.GEN_AI_USAGE_OUTPUT_TOKENS)
        for token_type, count in ((sc.TOKEN_INPUT, input_tokens), (sc.TOKEN_OUTPUT, output_tokens)):
            if not isinstance(count, int):
                continue
            if self.token_usage is not None:
                self.token_usage.record(count, {**attributes, sc.GEN_AI_TOKEN_TYPE: token_type})
            else:
                counter = self.input_tokens if token_type == sc.TOKEN_INPUT else self.output_tokens
                assert counter is not None
                # The provider does not break chat usage down by modality.
                counter.add(count, {**attributes, sc.GEN_AI_TOKEN_MODALITY: "unknown"})

    def _attempt(self, phase: Phase, outcome: str, data: Mapping[str, Any]) -> None:
        target = phase.parent.attributes if phase.parent is not None else None
        where = _pick(target, _TARGET_KEYS)
        # A cancelled attempt ends without end data: its span still knows why it ran.
        reason = data.get("reason") or (phase.attributes or {}).get(sc.L0_ATTEMPT_REASON)
        counted = dict(where)
        if reason is not None:
            counted[sc.L0_ATTEMPT_REASON] = reason
        counted[sc.L0_OUTCOME] = outcome
        self.attempts.add(1, counted)
        if outcome == "error" and data.get("category"):
            self.errors.add(
                1,
                allowed(
                    {
                        **where,
                        sc.L0_ERROR_CATEGORY: data.get("category"),
                        sc.L0_ERROR_CODE: data.get("code"),
                    }
                ),
            )
        chunks = data.get("chunks") or 0
        if chunks > 1:
            self.chunk_gap_max.record(data.get("max_chunk_gap") or 0.0, where)
        ttfc = data.get("time_to_first_chunk")
        if ttfc is None or outcome not in _REPORTED:
            return
        gen_ai = _pick(target, _GEN_AI_KEYS)
        response_model = data.get("response_model")
        if response_model:
            gen_ai[sc.GEN_AI_RESPONSE_MODEL] = response_model
        self.time_to_first_chunk.record(ttfc, gen_ai)
        duration = data.get("duration")
        if chunks > 1 and isinstance(duration, (int, float)) and per_chunk_metrics():
            # One value per stream, the mean gap after the first chunk: the per-chunk record
            # the convention describes costs ~6 µs per chunk, more than all of l0 (see docs).
            self.time_per_output_chunk().record(
                max(0.0, duration - ttfc) / (chunks - 1), dict(gen_ai)
            )

    # --- point events -------------------------------------------------------------------

    def on_event(self, event: ObservabilityEvent) -> None:
        """The bus sink: counts retries, fallbacks, guardrail violations and stalls."""
        kind = event.type
        data = event.data
        if kind is T.RETRY_ATTEMPT:
            self.retries.add(
                1,
                allowed(
                    {
                        sc.L0_RETRY_REASON: data.get("category"),
                        sc.L0_ERROR_CODE: data.get("code"),
                    }
                ),
            )
        elif kind is T.FALLBACK_START:
            self.fallbacks.add(
                1,
                allowed(
                    {
                        sc.L0_FALLBACK_FROM_MODEL: data.get("from_model"),
                        sc.L0_FALLBACK_TO_MODEL: data.get("to_model"),
                    }
                ),
            )
        elif kind is T.GUARDRAIL_RULE_RESULT:
            self.violations.add(
                1,
                allowed(
                    {
                        sc.L0_GUARDRAIL_RULE: data.get("rule"),
                        sc.L0_GUARDRAIL_SEVERITY: data.get("severity"),
                    }
                ),
            )
        elif kind is T.TIMEOUT_TRIGGERED:
            self.stalls.add(1, allowed({sc.L0_ERROR_CODE: data.get("code")}))


_cache: tuple[MeterProvider, sc.Conventions, MetricsRecorder] | None = None
_cache_lock = threading.Lock()


def recorder(telemetry: providers.Telemetry | None = None) -> MetricsRecorder | None:
    """The recorder for the current meter provider (or ``telemetry``'s), or ``None`` when no
    SDK is configured (then no instrument is created and nothing is recorded). One recorder
    per meter provider and conventions mode, made on first use."""
    global _cache
    if telemetry is None:
        telemetry = providers.telemetry()
    if not telemetry.metrics:
        return None
    provider = telemetry.meter_provider
    conventions = sc.conventions()
    cached = _cache
    if cached is not None and cached[0] is provider and cached[1] is conventions:
        return cached[2]
    with _cache_lock:
        from l0 import __version__

        made = MetricsRecorder(provider.get_meter("l0", __version__), conventions)
        _cache = (provider, conventions, made)
        return made
