"""Shared rate-limit cooldowns (the registry lives in :mod:`l0.runtime.cooldown`, where the
session runtime consults it before each attempt)."""

from l0.runtime.cooldown import (
    DEFAULT_COOLDOWN_CAP,
    Cooldowns,
    cooldown_remaining,
    cooldowns,
    current_rate_limit_key,
    note_failure,
    rate_limit_scope,
    rate_limited,
)

__all__ = [
    "DEFAULT_COOLDOWN_CAP",
    "Cooldowns",
    "cooldown_remaining",
    "cooldowns",
    "current_rate_limit_key",
    "note_failure",
    "rate_limit_scope",
    "rate_limited",
]
