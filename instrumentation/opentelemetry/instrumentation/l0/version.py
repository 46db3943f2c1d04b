"""The instrumentation's version: l0's own (they ship in one distribution)."""

from __future__ import annotations

from l0 import __version__

__all__ = ["__version__"]
