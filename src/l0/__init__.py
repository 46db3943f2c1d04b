"""l0: reliable, observable LLM token streams.

Retries, model fallbacks, timeouts, zero-token and stall protection, guardrails, drift
detection and structured output over any LLM stream — every phase an OpenTelemetry span.

Example::

    result = await l0.run(
        stream=lambda: client.chat.completions.create(model="gpt-4o", messages=..., stream=True),
        fallbacks=[lambda: client.chat.completions.create(model="gpt-4o-mini", ...)],
        guardrails=l0.Guardrails.recommended(),
    )
    async for event in result:
        if event.is_token:
            print(event.text, end="")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from l0.adapters.base import Adapter, Adapters
from l0.config import BackoffStrategy, ConfigError, Retry, Timeout
from l0.errors import L0Error, categorize_error, classify_error
from l0.guardrails.base import GuardrailRule, GuardrailViolation
from l0.guardrails.drift import DriftConfig, DriftDetector, DriftSignal, drift_rule
from l0.guardrails.presets import Guardrails
from l0.guardrails.rules import (
    custom_pattern_rule,
    json_rule,
    markdown_rule,
    pattern_rule,
    repetition_rule,
    stall_rule,
    strict_json_rule,
    zero_output_rule,
)
from l0.multi import (
    ConsensusError,
    ConsensusResult,
    ParallelError,
    ParallelResult,
    Pool,
    RaceError,
    RaceResult,
    RaceState,
    TaskOutcome,
    batched,
    consensus,
    parallel,
    pool,
    race,
)
from l0.observability.bus import add_sink, remove_sink
from l0.observability.events import ObservabilityEvent, ObservabilityEventType
from l0.runtime.api import run, wrap
from l0.runtime.session import Result
from l0.structured import (
    JSONRepairError,
    Partial,
    RepairResult,
    StructuredResult,
    auto_correct_json,
    extract_json_from_markdown,
    repair_json,
    structured,
    structured_stream,
)
from l0.types import (
    AttemptContext,
    AttemptReason,
    ErrorCategory,
    ErrorCode,
    ErrorRecord,
    Event,
    EventType,
    State,
    ToolCall,
    Usage,
)

if TYPE_CHECKING:
    from opentelemetry.instrumentation.l0 import L0Instrumentor

__all__ = [
    "Adapter",
    "Adapters",
    "AttemptContext",
    "AttemptReason",
    "BackoffStrategy",
    "ConfigError",
    "ConsensusError",
    "ConsensusResult",
    "DriftConfig",
    "DriftDetector",
    "DriftSignal",
    "ErrorCategory",
    "ErrorCode",
    "ErrorRecord",
    "Event",
    "EventType",
    "GuardrailRule",
    "GuardrailViolation",
    "Guardrails",
    "JSONRepairError",
    "L0Error",
    "L0Instrumentor",
    "ObservabilityEvent",
    "ObservabilityEventType",
    "ParallelError",
    "ParallelResult",
    "Partial",
    "Pool",
    "RaceError",
    "RaceResult",
    "RaceState",
    "RepairResult",
    "Result",
    "Retry",
    "State",
    "StructuredResult",
    "TaskOutcome",
    "Timeout",
    "ToolCall",
    "Usage",
    "__version__",
    "add_sink",
    "auto_correct_json",
    "batched",
    "categorize_error",
    "classify_error",
    "consensus",
    "custom_pattern_rule",
    "drift_rule",
    "extract_json_from_markdown",
    "json_rule",
    "markdown_rule",
    "parallel",
    "pattern_rule",
    "pool",
    "race",
    "remove_sink",
    "repair_json",
    "repetition_rule",
    "run",
    "stall_rule",
    "strict_json_rule",
    "structured",
    "structured_stream",
    "wrap",
    "zero_output_rule",
]


def __getattr__(name: str) -> Any:
    # The instrumentor needs the `otel` extra; import it only when asked for.
    if name == "L0Instrumentor":
        from opentelemetry.instrumentation.l0 import L0Instrumentor

        return L0Instrumentor
    raise AttributeError(f"module 'l0' has no attribute {name!r}")
