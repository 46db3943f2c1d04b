"""JSON helpers under the import path the README uses (``from l0._utils import ...``)."""

from l0.structured.repair import auto_correct_json, extract_json_from_markdown

__all__ = ["auto_correct_json", "extract_json_from_markdown"]
