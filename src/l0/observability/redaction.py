"""Keeps credentials out of telemetry text.

Error messages become span status descriptions. A provider or proxy error can echo the API key
or the ``Authorization`` header it was sent (some do, partly masked or not); those never leave
the process through l0's spans.
"""

from __future__ import annotations

import re

__all__ = ["redact"]

_SECRET = re.compile(
    r"""
    (?P<bearer>\b(?:Bearer|Basic)\s+)[A-Za-z0-9._~+/=-]{8,}        # Authorization values
    | (?P<key>\b(?:api[_-]?key|x-api-key|authorization|access[_-]?token|secret)
        ["']?\s*[:=]\s*["']?)[^\s"',;}]{4,}                       # key=..., "api_key": "..."
    | \b(?:sk|rk|pk)-[A-Za-z0-9_-]{8,}                              # OpenAI-style keys
    | \bsk-ant-[A-Za-z0-9_-]{8,}                                    # Anthropic keys
    | \bAIza[0-9A-Za-z_-]{20,}                                      # Google API keys
    """,
    re.IGNORECASE | re.VERBOSE,
)


def _mask(match: re.Match[str]) -> str:
    prefix = match.group("bearer") or match.group("key") or ""
    return f"{prefix}[REDACTED]"


def redact(text: str) -> str:
    """``text`` with anything that looks like a credential replaced by ``[REDACTED]``."""
    return _SECRET.sub(_mask, text)
