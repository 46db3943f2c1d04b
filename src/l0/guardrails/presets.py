"""Ready-made rule sets: ``Guardrails.recommended()``, ``strict()``, ``json_only()``, ``none()``.

Each call returns a fresh list, so adding a rule to one session's list never changes another's.
"""

from __future__ import annotations

from l0.guardrails.base import GuardrailRule
from l0.guardrails.drift import drift_rule
from l0.guardrails.rules import (
    json_rule,
    markdown_rule,
    pattern_rule,
    repetition_rule,
    stall_rule,
    strict_json_rule,
    zero_output_rule,
)

__all__ = ["Guardrails"]


class Guardrails:
    """Preset lists of guardrail rules.

    ============== =================================================================
    preset         rules
    ============== =================================================================
    recommended()  json_rule, pattern_rule, zero_output_rule
    strict()       recommended + markdown_rule, repetition_rule, stall_rule, drift_rule
    json_only()    json_rule, strict_json_rule, zero_output_rule
    none()         (no rules)
    ============== =================================================================

    ``strict()`` is strict about *any* answer, so it holds only rules that cannot fail a
    well-formed answer of some other kind: the JSON and markdown checks apply only to output
    that is JSON or has code fences. ``strict_json_rule`` would fail every prose answer, so it
    is in ``json_only()``, for calls whose answer must be JSON.

    Example::

        rules = Guardrails.strict()
        rules.append(custom_pattern_rule("secrets", [r"sk-[a-z0-9]{20,64}"], severity="fatal"))
    """

    @staticmethod
    def recommended() -> list[GuardrailRule]:
        """Structure of JSON output, refusals and leaks, empty output: cheap and safe for any
        answer."""
        return [json_rule(), pattern_rule(), zero_output_rule()]

    @staticmethod
    def strict() -> list[GuardrailRule]:
        """Everything that is safe for any kind of answer: ``recommended()`` plus unclosed code
        fences, looping, 5-second stalls and drift."""
        return [
            json_rule(),
            pattern_rule(),
            zero_output_rule(),
            markdown_rule(),
            repetition_rule(),
            stall_rule(),
            drift_rule(),
        ]

    @staticmethod
    def json_only() -> list[GuardrailRule]:
        """For answers that must be JSON: balanced while streaming, parseable at the end,
        not empty."""
        return [json_rule(), strict_json_rule(), zero_output_rule()]

    @staticmethod
    def none() -> list[GuardrailRule]:
        """No rules."""
        return []
