"""Guardrails: rules that check streamed output, presets, drift detection."""

from l0.guardrails.base import GuardrailRule, GuardrailViolation, RuleChecker, Severity
from l0.guardrails.drift import DriftConfig, DriftDetector, DriftKind, DriftSignal, drift_rule
from l0.guardrails.engine import GuardrailEngine, GuardrailRun
from l0.guardrails.presets import Guardrails
from l0.guardrails.rules import (
    INSTRUCTION_LEAK_PATTERNS,
    META_COMMENTARY_PATTERNS,
    PLACEHOLDER_PATTERNS,
    REFUSAL_PATTERNS,
    custom_pattern_rule,
    json_rule,
    markdown_rule,
    pattern_rule,
    repetition_rule,
    stall_rule,
    strict_json_rule,
    zero_output_rule,
)

__all__ = [
    "INSTRUCTION_LEAK_PATTERNS",
    "META_COMMENTARY_PATTERNS",
    "PLACEHOLDER_PATTERNS",
    "REFUSAL_PATTERNS",
    "DriftConfig",
    "DriftDetector",
    "DriftKind",
    "DriftSignal",
    "GuardrailEngine",
    "GuardrailRule",
    "GuardrailRun",
    "GuardrailViolation",
    "Guardrails",
    "RuleChecker",
    "Severity",
    "custom_pattern_rule",
    "drift_rule",
    "json_rule",
    "markdown_rule",
    "pattern_rule",
    "repetition_rule",
    "stall_rule",
    "strict_json_rule",
    "zero_output_rule",
]
