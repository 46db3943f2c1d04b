"""Structured output: JSON repair and schema-validated results."""

from l0.structured.output import Partial, StructuredResult, structured, structured_stream
from l0.structured.repair import (
    JSONRepairError,
    RepairResult,
    auto_correct_json,
    extract_json_from_markdown,
    parse_partial_json,
    repair_json,
)

__all__ = [
    "JSONRepairError",
    "Partial",
    "RepairResult",
    "StructuredResult",
    "auto_correct_json",
    "extract_json_from_markdown",
    "parse_partial_json",
    "repair_json",
    "structured",
    "structured_stream",
]
