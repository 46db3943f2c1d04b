"""asyncio helpers shared by the multi-stream operations."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any


async def settle(tasks: Sequence[asyncio.Task[Any]]) -> None:
    """Wait until every task is done, even if the caller is cancelled meanwhile (the
    cancellation is re-raised once they are): no task is left behind."""
    interrupted = False
    pending = [t for t in tasks if not t.done()]
    while pending:
        try:
            await asyncio.wait(pending)
        except asyncio.CancelledError:
            interrupted = True
            for t in pending:
                t.cancel()
        pending = [t for t in pending if not t.done()]
    if interrupted:
        raise asyncio.CancelledError()
