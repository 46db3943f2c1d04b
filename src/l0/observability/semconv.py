"""Every telemetry name l0 emits: span, attribute, event and metric names, in one place.

GenAI names come from ``opentelemetry-semantic-conventions`` when it is installed (the ``otel``
extra); the literal beside each is the same string, used when it is not (l0's core depends on
the OpenTelemetry API only). ``tests/unit/test_spans.py`` checks that the two agree.

The GenAI conventions are still "Development". l0 emits the **v1.41.0** names by default — the
last release published in open-telemetry/semantic-conventions, the names the installed
``opentelemetry-semantic-conventions`` carries (all marked "moved to semantic-conventions-genai"
there) — and the **latest experimental** names of the semantic-conventions-genai repository when
``OTEL_SEMCONV_STABILITY_OPT_IN`` contains ``gen_ai_latest_experimental``. What differs
(semantic-conventions-genai ``docs/gen-ai/non-normative/migration.md``):

- duration: ``gen_ai.client.operation.duration`` → ``gen_ai.client.inference.duration``;
- streaming: ``gen_ai.client.operation.time_to_first_chunk`` /
  ``…operation.time_per_output_chunk`` → ``gen_ai.client.inference.time_to_first_chunk`` /
  ``…inference.time_per_output_chunk``;
- tokens: the ``gen_ai.client.token.usage`` histogram (by ``gen_ai.token.type``) → the
  counters ``gen_ai.client.inference.usage.input_tokens`` / ``…usage.output_tokens`` (by
  ``gen_ai.token.modality``);
- guardrails: ``gen_ai.guardrail.result`` events gain the ``gen_ai.guardrail.*`` attributes
  (v1.41.0 defines none);
- ``gen_ai.usage.cache_creation.input_tokens`` → ``gen_ai.usage.cache_write.input_tokens``
  (l0 sets neither: the adapters do not report cache usage).

``gen_ai.system`` → ``gen_ai.provider.name`` is *not* among the differences: that rename came in
v1.37.0, so both modes emit ``gen_ai.provider.name`` and neither emits ``gen_ai.system``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import Any, Final

from l0.observability._env import EnvSetting

__all__ = [
    "Conventions",
    "conventions",
    "guardrail_event_attributes",
    "provider_for_adapter",
    "request_attributes",
]


def _package(module: str) -> ModuleType | None:
    try:
        return importlib.import_module(module)
    except ImportError:  # the `otel` extra is not installed
        return None


_GEN_AI = _package("opentelemetry.semconv._incubating.attributes.gen_ai_attributes")
_GEN_AI_METRICS = _package("opentelemetry.semconv._incubating.metrics.gen_ai_metrics")
_ERROR = _package("opentelemetry.semconv.attributes.error_attributes")
_SERVER = _package("opentelemetry.semconv.attributes.server_attributes")


def _name(module: ModuleType | None, constant: str, literal: str) -> str:
    value = getattr(module, constant, None)
    return value if isinstance(value, str) else literal


# --- span names ---------------------------------------------------------------------------

SPAN_SESSION: Final = "l0.session"
SPAN_ATTEMPT: Final = "l0.attempt"
SPAN_GUARDRAILS: Final = "l0.guardrails"
SPAN_GUARDRAILS_FINAL: Final = "l0.guardrails.final"

# --- GenAI attributes (semantic conventions) ------------------------------------------------

GEN_AI_OPERATION_NAME: Final = _name(_GEN_AI, "GEN_AI_OPERATION_NAME", "gen_ai.operation.name")
GEN_AI_PROVIDER_NAME: Final = _name(_GEN_AI, "GEN_AI_PROVIDER_NAME", "gen_ai.provider.name")
GEN_AI_REQUEST_MODEL: Final = _name(_GEN_AI, "GEN_AI_REQUEST_MODEL", "gen_ai.request.model")
GEN_AI_REQUEST_STREAM: Final = _name(_GEN_AI, "GEN_AI_REQUEST_STREAM", "gen_ai.request.stream")
GEN_AI_REQUEST_TEMPERATURE: Final = _name(
    _GEN_AI, "GEN_AI_REQUEST_TEMPERATURE", "gen_ai.request.temperature"
)
GEN_AI_REQUEST_MAX_TOKENS: Final = _name(
    _GEN_AI, "GEN_AI_REQUEST_MAX_TOKENS", "gen_ai.request.max_tokens"
)
GEN_AI_REQUEST_TOP_P: Final = _name(_GEN_AI, "GEN_AI_REQUEST_TOP_P", "gen_ai.request.top_p")
GEN_AI_REQUEST_TOP_K: Final = _name(_GEN_AI, "GEN_AI_REQUEST_TOP_K", "gen_ai.request.top_k")
GEN_AI_REQUEST_FREQUENCY_PENALTY: Final = _name(
    _GEN_AI, "GEN_AI_REQUEST_FREQUENCY_PENALTY", "gen_ai.request.frequency_penalty"
)
GEN_AI_REQUEST_PRESENCE_PENALTY: Final = _name(
    _GEN_AI, "GEN_AI_REQUEST_PRESENCE_PENALTY", "gen_ai.request.presence_penalty"
)
GEN_AI_REQUEST_STOP_SEQUENCES: Final = _name(
    _GEN_AI, "GEN_AI_REQUEST_STOP_SEQUENCES", "gen_ai.request.stop_sequences"
)
GEN_AI_REQUEST_SEED: Final = _name(_GEN_AI, "GEN_AI_REQUEST_SEED", "gen_ai.request.seed")
GEN_AI_REQUEST_CHOICE_COUNT: Final = _name(
    _GEN_AI, "GEN_AI_REQUEST_CHOICE_COUNT", "gen_ai.request.choice.count"
)
GEN_AI_RESPONSE_ID: Final = _name(_GEN_AI, "GEN_AI_RESPONSE_ID", "gen_ai.response.id")
GEN_AI_RESPONSE_MODEL: Final = _name(_GEN_AI, "GEN_AI_RESPONSE_MODEL", "gen_ai.response.model")
GEN_AI_RESPONSE_FINISH_REASONS: Final = _name(
    _GEN_AI, "GEN_AI_RESPONSE_FINISH_REASONS", "gen_ai.response.finish_reasons"
)
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: Final = _name(
    _GEN_AI, "GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK", "gen_ai.response.time_to_first_chunk"
)
GEN_AI_USAGE_INPUT_TOKENS: Final = _name(
    _GEN_AI, "GEN_AI_USAGE_INPUT_TOKENS", "gen_ai.usage.input_tokens"
)
GEN_AI_USAGE_OUTPUT_TOKENS: Final = _name(
    _GEN_AI, "GEN_AI_USAGE_OUTPUT_TOKENS", "gen_ai.usage.output_tokens"
)
GEN_AI_TOKEN_TYPE: Final = _name(_GEN_AI, "GEN_AI_TOKEN_TYPE", "gen_ai.token.type")
GEN_AI_INPUT_MESSAGES: Final = _name(_GEN_AI, "GEN_AI_INPUT_MESSAGES", "gen_ai.input.messages")
GEN_AI_OUTPUT_MESSAGES: Final = _name(_GEN_AI, "GEN_AI_OUTPUT_MESSAGES", "gen_ai.output.messages")
GEN_AI_SYSTEM_INSTRUCTIONS: Final = _name(
    _GEN_AI, "GEN_AI_SYSTEM_INSTRUCTIONS", "gen_ai.system_instructions"
)
ERROR_TYPE: Final = _name(_ERROR, "ERROR_TYPE", "error.type")
SERVER_ADDRESS: Final = _name(_SERVER, "SERVER_ADDRESS", "server.address")
SERVER_PORT: Final = _name(_SERVER, "SERVER_PORT", "server.port")

# Names the installed package does not carry (newer than v1.41.0): spelled out.
GEN_AI_TOKEN_MODALITY: Final = "gen_ai.token.modality"
GEN_AI_GUARDRAIL_COMPONENT_NAME: Final = "gen_ai.guardrail.component.name"
GEN_AI_GUARDRAIL_POLICY_RULE_ID: Final = "gen_ai.guardrail.policy.rule.id"
GEN_AI_GUARDRAIL_RESULT_TYPE: Final = "gen_ai.guardrail.result.type"
GEN_AI_GUARDRAIL_RESULT_VALUE: Final = "gen_ai.guardrail.result.value"
GEN_AI_GUARDRAIL_RESULT_REASON: Final = "gen_ai.guardrail.result.reason"
GEN_AI_GUARDRAIL_SOURCE: Final = "gen_ai.guardrail.source"

OPERATION_CHAT: Final = "chat"
TOKEN_INPUT: Final = "input"
TOKEN_OUTPUT: Final = "output"

# --- GenAI events ---------------------------------------------------------------------------

EVENT_GUARDRAIL_RESULT: Final = "gen_ai.guardrail.result"
EVENT_INFERENCE_DETAILS: Final = "gen_ai.client.inference.operation.details"

# --- l0's own attributes --------------------------------------------------------------------

L0_STREAM_ID: Final = "l0.stream.id"
L0_META_PREFIX: Final = "l0.meta."
L0_OUTCOME: Final = "l0.outcome"
L0_ATTEMPTS: Final = "l0.attempts"
L0_ATTEMPT_NUMBER: Final = "l0.attempt.number"
L0_ATTEMPT_REASON: Final = "l0.attempt.reason"
L0_BACKOFF_SECONDS: Final = "l0.backoff.seconds"
L0_FALLBACK_INDEX: Final = "l0.fallback.index"
L0_FALLBACK_FROM_MODEL: Final = "l0.fallback.from_model"
L0_FALLBACK_TO_MODEL: Final = "l0.fallback.to_model"
L0_RETRY_REASON: Final = "l0.retry.reason"
L0_ERROR_CATEGORY: Final = "l0.error.category"
L0_ERROR_CODE: Final = "l0.error.code"
L0_STREAM_CHUNKS: Final = "l0.stream.chunks"
L0_STREAM_CHUNK_GAP_MAX: Final = "l0.stream.chunk_gap.max"
L0_GUARDRAIL_RULE: Final = "l0.guardrail.rule"
L0_GUARDRAIL_SEVERITY: Final = "l0.guardrail.severity"
L0_GUARDRAIL_RESULT: Final = "l0.guardrail.result"
L0_GUARDRAIL_REASON: Final = "l0.guardrail.reason"
L0_GUARDRAIL_VIOLATIONS: Final = "l0.guardrail.violations"

# --- metrics --------------------------------------------------------------------------------

METRIC_OPERATION_DURATION: Final = _name(
    _GEN_AI_METRICS, "GEN_AI_CLIENT_OPERATION_DURATION", "gen_ai.client.operation.duration"
)
METRIC_TIME_TO_FIRST_CHUNK: Final = _name(
    _GEN_AI_METRICS,
    "GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK",
    "gen_ai.client.operation.time_to_first_chunk",
)
METRIC_TIME_PER_OUTPUT_CHUNK: Final = _name(
    _GEN_AI_METRICS,
    "GEN_AI_CLIENT_OPERATION_TIME_PER_OUTPUT_CHUNK",
    "gen_ai.client.operation.time_per_output_chunk",
)
METRIC_TOKEN_USAGE: Final = _name(
    _GEN_AI_METRICS, "GEN_AI_CLIENT_TOKEN_USAGE", "gen_ai.client.token.usage"
)
METRIC_INFERENCE_DURATION: Final = "gen_ai.client.inference.duration"
METRIC_INFERENCE_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.inference.time_to_first_chunk"
METRIC_INFERENCE_TIME_PER_OUTPUT_CHUNK: Final = "gen_ai.client.inference.time_per_output_chunk"
METRIC_INFERENCE_INPUT_TOKENS: Final = "gen_ai.client.inference.usage.input_tokens"
METRIC_INFERENCE_OUTPUT_TOKENS: Final = "gen_ai.client.inference.usage.output_tokens"

METRIC_SESSIONS: Final = "l0.sessions"
METRIC_SESSION_DURATION: Final = "l0.session.duration"
METRIC_ATTEMPTS: Final = "l0.attempts"
METRIC_RETRIES: Final = "l0.retries"
METRIC_FALLBACKS: Final = "l0.fallbacks"
METRIC_GUARDRAIL_VIOLATIONS: Final = "l0.guardrail.violations"
METRIC_ERRORS: Final = "l0.errors"
METRIC_STREAM_STALLS: Final = "l0.stream.stalls"
METRIC_CHUNK_GAP_MAX: Final = "l0.stream.chunk_gap.max"

METRIC_ATTRIBUTES: Final = frozenset(
    {
        GEN_AI_OPERATION_NAME,
        GEN_AI_PROVIDER_NAME,
        GEN_AI_REQUEST_MODEL,
        GEN_AI_RESPONSE_MODEL,
        GEN_AI_TOKEN_TYPE,
        GEN_AI_TOKEN_MODALITY,
        SERVER_ADDRESS,
        SERVER_PORT,
        ERROR_TYPE,
        L0_OUTCOME,
        L0_ATTEMPT_REASON,
        L0_RETRY_REASON,
        L0_FALLBACK_FROM_MODEL,
        L0_FALLBACK_TO_MODEL,
        L0_GUARDRAIL_RULE,
        L0_GUARDRAIL_SEVERITY,
        L0_ERROR_CATEGORY,
        L0_ERROR_CODE,
    }
)
"""The only attribute keys a metric may carry: bounded cardinality (model, provider, outcome,
reason, rule, category, code, server) — never stream ids, prompts or user ``meta``."""

# --- the v1.41 / latest-experimental switch -------------------------------------------------

OPT_IN_ENV: Final = "OTEL_SEMCONV_STABILITY_OPT_IN"
LATEST_EXPERIMENTAL: Final = "gen_ai_latest_experimental"


class Conventions:
    """The names that differ between GenAI semconv v1.41.0 and the latest experimental ones.

    Attributes:
        latest: ``True`` when ``OTEL_SEMCONV_STABILITY_OPT_IN`` asks for the latest names.
        operation_duration: the client duration histogram's name.
        time_to_first_chunk: the time-to-first-chunk histogram's name.
        time_per_output_chunk: the (opt-in) time-per-output-chunk histogram's name.
        token_usage: the v1.41 token histogram's name, ``None`` in latest mode.
        input_tokens: the latest input-token counter's name, ``None`` in v1.41 mode.
        output_tokens: the latest output-token counter's name, ``None`` in v1.41 mode.
        guardrail_attributes: whether guardrail events carry ``gen_ai.guardrail.*``.
    """

    __slots__ = (
        "guardrail_attributes",
        "input_tokens",
        "latest",
        "operation_duration",
        "output_tokens",
        "time_per_output_chunk",
        "time_to_first_chunk",
        "token_usage",
    )

    def __init__(self, latest: bool) -> None:
        self.latest = latest
        self.guardrail_attributes = latest
        if latest:
            self.operation_duration = METRIC_INFERENCE_DURATION
            self.time_to_first_chunk = METRIC_INFERENCE_TIME_TO_FIRST_CHUNK
            self.time_per_output_chunk = METRIC_INFERENCE_TIME_PER_OUTPUT_CHUNK
            self.token_usage: str | None = None
            self.input_tokens: str | None = METRIC_INFERENCE_INPUT_TOKENS
            self.output_tokens: str | None = METRIC_INFERENCE_OUTPUT_TOKENS
        else:
            self.operation_duration = METRIC_OPERATION_DURATION
            self.time_to_first_chunk = METRIC_TIME_TO_FIRST_CHUNK
            self.time_per_output_chunk = METRIC_TIME_PER_OUTPUT_CHUNK
            self.token_usage = METRIC_TOKEN_USAGE
            self.input_tokens = None
            self.output_tokens = None


_V1_41 = Conventions(latest=False)
_LATEST = Conventions(latest=True)


def _parse_opt_in(opt_in: str | None) -> Conventions:
    if opt_in and LATEST_EXPERIMENTAL in (part.strip() for part in opt_in.split(",")):
        return _LATEST
    return _V1_41


_OPT_IN: Final = EnvSetting(OPT_IN_ENV, _parse_opt_in)


def conventions() -> Conventions:
    """The conventions in force, read from ``OTEL_SEMCONV_STABILITY_OPT_IN`` (a comma-separated
    list, as for the other OpenTelemetry stability opt-ins). Cheap: the variable is parsed
    again only when it changes."""
    return _OPT_IN.get()


# --- attribute builders ---------------------------------------------------------------------

# Request parameter -> attribute, for the `Target.request` an integration fills. An allow-list:
# nothing else of the request (messages, headers, api_key, ...) is ever read here.
_REQUEST_PARAMETERS: Final = (
    ("temperature", GEN_AI_REQUEST_TEMPERATURE, float),
    ("max_tokens", GEN_AI_REQUEST_MAX_TOKENS, int),
    ("max_completion_tokens", GEN_AI_REQUEST_MAX_TOKENS, int),
    ("max_output_tokens", GEN_AI_REQUEST_MAX_TOKENS, int),
    ("top_p", GEN_AI_REQUEST_TOP_P, float),
    ("top_k", GEN_AI_REQUEST_TOP_K, int),
    ("frequency_penalty", GEN_AI_REQUEST_FREQUENCY_PENALTY, float),
    ("presence_penalty", GEN_AI_REQUEST_PRESENCE_PENALTY, float),
    ("seed", GEN_AI_REQUEST_SEED, int),
)


def request_attributes(request: Mapping[str, Any]) -> dict[str, Any]:
    """The ``gen_ai.request.*`` attributes of a chat request (only allow-listed parameters)."""
    if not request:
        return {}
    attributes: dict[str, Any] = {}
    for key, name, kind in _REQUEST_PARAMETERS:
        value = request.get(key)
        # bool is an int: a stray True must not become max_tokens=1.
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            attributes.setdefault(name, kind(value))
    stop = request.get("stop")
    if isinstance(stop, str):
        attributes[GEN_AI_REQUEST_STOP_SEQUENCES] = (stop,)
    elif isinstance(stop, (list, tuple)) and all(isinstance(s, str) for s in stop):
        attributes[GEN_AI_REQUEST_STOP_SEQUENCES] = tuple(stop)
    choices = request.get("n")
    if isinstance(choices, int) and not isinstance(choices, bool) and choices != 1:
        attributes[GEN_AI_REQUEST_CHOICE_COUNT] = choices
    return attributes


_ADAPTER_PROVIDERS: Final = {"openai": "openai", "openai_responses": "openai"}


def provider_for_adapter(adapter: str) -> str | None:
    """``gen_ai.provider.name`` as far as the stream's adapter tells: OpenAI SDK streams are
    ``openai`` (what the official OpenAI instrumentation reports for them, whatever the base
    URL); LiteLLM's and plain text streams do not say."""
    return _ADAPTER_PROVIDERS.get(adapter)


_REASON_LIMIT: Final = 200


def guardrail_event_attributes(
    rule: str, severity: str, message: str, *, streaming: bool
) -> dict[str, Any]:
    """The attributes of one ``gen_ai.guardrail.result`` span event: rule, result and reason,
    never the content that was checked."""
    result = "warn" if severity == "warning" else "fail"
    attributes: dict[str, Any] = {
        L0_GUARDRAIL_RULE: rule,
        L0_GUARDRAIL_SEVERITY: severity,
        L0_GUARDRAIL_RESULT: result,
        L0_GUARDRAIL_REASON: message[:_REASON_LIMIT],
    }
    if conventions().guardrail_attributes:
        # Provider-native values, as the convention asks: l0's own result is the severity.
        attributes[GEN_AI_GUARDRAIL_COMPONENT_NAME] = "l0"
        attributes[GEN_AI_GUARDRAIL_POLICY_RULE_ID] = rule
        attributes[GEN_AI_GUARDRAIL_RESULT_TYPE] = "severity"
        attributes[GEN_AI_GUARDRAIL_RESULT_VALUE] = severity
        attributes[GEN_AI_GUARDRAIL_RESULT_REASON] = message[:_REASON_LIMIT]
        attributes[GEN_AI_GUARDRAIL_SOURCE] = "output" if streaming else "final_output"
    return attributes
