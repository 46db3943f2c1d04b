"""Environment settings read on every use, parsed only when they change.

l0 reads a few variables (the semconv opt-in, content capture, per-chunk metrics) when it
needs them, so an app or a test can change them at run time. ``os.environ.get`` costs
~0.3 µs (the key is encoded and the value decoded each time); :class:`EnvSetting` looks the
stored value up in ``os.environ``'s own table (~0.05 µs) and parses it again only when that
is another object than the one it parsed (each assignment through ``os.environ`` stores one).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["EnvSetting", "probe"]

V = TypeVar("V")

_UNREAD: Any = object()


def probe(name: str) -> Callable[[], object]:
    """A function returning the object ``os.environ`` stores for ``name`` (``None`` when it
    is unset). Stored values are immutable, and each assignment stores a new object (or the
    interpreter's one object for that value): the same object means the same value.

    Falls back to ``os.environ.get`` where ``os.environ`` is not CPython's ``_Environ``.
    """
    env = os.environ
    data = getattr(env, "_data", None)
    encodekey = getattr(env, "encodekey", None)
    if isinstance(env, os._Environ) and isinstance(data, dict) and callable(encodekey):
        get: Callable[[object], object] = data.get
        key = encodekey(name)
        return lambda: get(key)
    return lambda: os.environ.get(name)


class EnvSetting(Generic[V]):
    """One environment variable and its parsed value, parsed again only when it changes.

    ``parse`` receives ``os.environ.get(name)`` (a ``str`` or ``None``).
    """

    __slots__ = ("_lock", "_parse", "_probe", "_seen", "name")

    def __init__(self, name: str, parse: Callable[[str | None], V]) -> None:
        self.name = name
        self._parse = parse
        self._probe = probe(name)
        # (the stored object the value was parsed from, the value): one tuple, swapped whole.
        self._seen: tuple[object, V] = (_UNREAD, _UNREAD)
        self._lock = threading.Lock()

    def get(self) -> V:
        """The parsed value of the variable as it is now."""
        raw = self._probe()
        seen = self._seen
        if seen[0] is raw:
            return seen[1]
        with self._lock:
            raw = self._probe()
            value = self._parse(os.environ.get(self.name))
            self._seen = (raw, value)
            return value
