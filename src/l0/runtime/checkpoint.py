"""Continuation de-duplication: splice a new attempt's output after the checkpoint.

A model asked to continue often repeats the end of what it already wrote. The trimmer buffers
the new attempt's first chunks until it can tell the longest overlap between the end of the
checkpoint and the start of the new output, drops it, and releases the rest. Buffering stops
as soon as the new text can no longer be part of a longer overlap, so it usually costs a chunk
or two of latency, once per continued attempt.
"""

from __future__ import annotations

__all__ = ["OverlapTrimmer", "longest_overlap"]


def longest_overlap(checkpoint: str, text: str) -> int:
    """Length of the longest suffix of ``checkpoint`` that is a prefix of ``text``."""
    limit = min(len(checkpoint), len(text))
    for k in range(limit, 0, -1):
        if checkpoint.endswith(text[:k]):
            return k
    return 0


class OverlapTrimmer:
    """Feed the new attempt's text; get back what the consumer should see (possibly "")."""

    __slots__ = ("_buffer", "_checkpoint", "done", "trimmed")

    def __init__(self, checkpoint: str) -> None:
        self._checkpoint = checkpoint
        self._buffer = ""
        self.done = not checkpoint
        self.trimmed = 0
        """How many characters of overlap were removed."""

    def feed(self, text: str) -> str:
        if self.done:
            return text
        buffered = self._buffer + text
        # Keep waiting while the new text could still be the start of a longer overlap: it
        # occurs in the checkpoint somewhere other than as its very end.
        position = self._checkpoint.find(buffered)
        if position != -1 and position + len(buffered) < len(self._checkpoint):
            self._buffer = buffered
            return ""
        return self._release(buffered)

    def flush(self) -> str:
        """The stream ended: release whatever is buffered."""
        if self.done:
            return ""
        return self._release(self._buffer)

    def _release(self, buffered: str) -> str:
        self.done = True
        self._buffer = ""
        self.trimmed = longest_overlap(self._checkpoint, buffered)
        return buffered[self.trimmed :]
