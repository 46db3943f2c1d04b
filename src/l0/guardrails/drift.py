"""Drift detection: signs that a model has left the answer it was giving.

:class:`DriftDetector` watches a stream for four signals, each with a confidence:

- ``repetition``: the output has become periodic, the same passage (up to ``max_period``
  characters) repeated ``repeat_threshold`` times back to back: the model is looping, with or
  without punctuation ("the the the …" as much as a paragraph over and over);
- ``meta_commentary``: "As an AI language model…" after ``meta_after`` characters of answer;
- ``format_collapse``: a JSON answer turning into prose (letters outside strings where JSON
  allows only ``true``/``false``/``null``), or prose paragraphs written inside a code block;
- ``entropy_shift``: the character entropy of the latest window differs from the earlier
  content by ``entropy_threshold`` bits (degenerate output, garbage, a sudden change of script).

The text is processed in blocks of 128 characters at fixed offsets, so signals (and their
positions) do not depend on how the stream was chunked, and a chunk costs O(its length)
amortized with bounded memory. Each kind fires at most once per detector: a loop that started
at character 500 is one finding, not one per chunk until the end. :func:`drift_rule` wraps a
fresh detector per attempt as the guardrail rule ``"drift"`` (the runtime reports its
violations as ``DRIFT_DETECTED``).
"""

from __future__ import annotations

import math
import operator
import re
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from l0.config import ConfigError
from l0.guardrails.base import GuardrailRule, GuardrailViolation, Severity
from l0.guardrails.rules import (
    _JSON_IN_STRING,
    _builtin_patterns,
    _BuiltinRule,
    _check_severity,
    _Checker,
    _FenceTracker,
    _JsonStart,
    _line_pieces,
    _PatternScan,
)
from l0.types import State

__all__ = ["DriftConfig", "DriftDetector", "DriftKind", "DriftSignal", "drift_rule"]

DriftKind = Literal["repetition", "meta_commentary", "format_collapse", "entropy_shift"]
_KINDS: frozenset[str] = frozenset(
    ("repetition", "meta_commentary", "format_collapse", "entropy_shift")
)

# Text is analysed in blocks at fixed offsets (0, 128, 256, …): chunking cannot change a result,
# and the per-block work (regex scans, counters) is paid once per 128 characters.
_BLOCK = 128
# Letters in a row outside JSON strings, with no JSON punctuation between them, that only prose
# produces: the longest bare JSON word is "false" (5).
_BARE_LETTERS = 12
# A prose line in a code block: starts with a capital, ends a sentence, has this many words,
# and none of the characters code lines are made of.
_PROSE_WORDS = 12
_CODE_CHARS = re.compile(r"[;{}=<>\[\]|\\$`]")
# Code-block languages whose content may legitimately be prose.
_TEXT_BLOCKS = frozenset(("", "text", "txt", "plaintext", "markdown", "md", "output", "console"))
_JSON_PUNCT = re.compile(r'[\[\]{}",:]')
# A loop must span at least this many characters ("ha ha" is not a loop; 16 of them are).
_MIN_LOOP = 64
# The probe that finds a loop's period: the last characters, looked up further back.
_PROBE = 16
# Text outside code blocks kept for loop detection (trimmed to this when it doubles).
_LOOP_KEEP = 4096


@dataclass(frozen=True, slots=True)
class DriftSignal:
    """One sign of drift.

    Attributes:
        kind: ``"repetition"``, ``"meta_commentary"``, ``"format_collapse"`` or
            ``"entropy_shift"``.
        confidence: how sure the detector is, from 0 to 1.
        position: the character offset in the output where the drift starts (for
            ``entropy_shift``: the start of the window that shifted).
        detail: a short description (never quotes the output).
    """

    kind: DriftKind
    confidence: float
    position: int
    detail: str


@dataclass(frozen=True, slots=True)
class DriftConfig:
    """What :class:`DriftDetector` looks for, and how hard.

    Attributes:
        repeat_threshold: back-to-back repetitions of one passage that make a loop (a short
            passage must also repeat over at least 64 characters).
        max_period: the longest repeated passage looked for, in characters.
        meta_after: meta-commentary before this many characters is the start of the answer
            (``pattern_rule``'s business), not drift.
        entropy_window: the latest window compared for ``entropy_shift``, in characters
            (rounded up to a multiple of 128).
        entropy_baseline: characters of earlier content needed before comparing.
        entropy_threshold: the shift, in bits per character, that counts as drift.
        min_confidence: signals below this confidence are not reported (and do not use up
            their kind's single firing).
        kinds: the signals to look for (default: all four).

    Example::

        DriftConfig(kinds=frozenset({"repetition", "format_collapse"}), min_confidence=0.8)
    """

    repeat_threshold: int = 3
    max_period: int = 512
    meta_after: int = 100
    entropy_window: int = 512
    entropy_baseline: int = 1024
    entropy_threshold: float = 1.5
    min_confidence: float = 0.7
    kinds: frozenset[str] = field(default=_KINDS)

    def __post_init__(self) -> None:
        for name, minimum in (
            ("repeat_threshold", 2),
            ("max_period", 1),
            ("meta_after", 0),
            ("entropy_window", 1),
            ("entropy_baseline", 1),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigError(
                    "DriftConfig", name, f"must be a whole number >= {minimum}", value
                )
        if self.max_period * self.repeat_threshold > _LOOP_KEEP // 2:
            reason = f"max_period * repeat_threshold must be <= {_LOOP_KEEP // 2}"
            raise ConfigError("DriftConfig", "max_period", reason, self.max_period)
        for name, low, high in (("entropy_threshold", 0.0, 64.0), ("min_confidence", 0.0, 1.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError("DriftConfig", name, "must be a number", value)
            if not low <= value <= high or (name == "entropy_threshold" and value == 0):
                raise ConfigError("DriftConfig", name, f"must be in ({low:g}, {high:g}]", value)
        kinds = frozenset(self.kinds)
        unknown = kinds - _KINDS
        if unknown:
            raise ConfigError(
                "DriftConfig", "kinds", f"unknown kinds; expected {sorted(_KINDS)}", sorted(unknown)
            )
        object.__setattr__(self, "kinds", kinds)


def _entropy(counts: Counter[str], total: int) -> float:
    """Shannon entropy of a character distribution (positive counts), in bits per character."""
    if total <= 0:
        return 0.0
    values = counts.values()
    log2 = math.log2
    weighted: float = sum(map(operator.mul, values, map(log2, values)))
    return log2(total) - weighted / total


def _shift_confidence(shift: float, threshold: float) -> float:
    # 0.7 at the threshold, 1.0 at twice the threshold.
    return round(min(1.0, 0.7 + 0.3 * (shift - threshold) / threshold), 3)


class DriftDetector:
    """Watches a text stream for drift; feed it deltas, read back signals.

    Example::

        detector = DriftDetector()
        signals = []
        for delta in ["Paris is the capital. "] * 20:
            signals += detector.feed(delta)
        signals += detector.finish()
        assert [s.kind for s in signals] == ["repetition"]
    """

    __slots__ = (
        "_bare",
        "_bare_start",
        "_base_counts",
        "_base_entropy",
        "_base_size",
        "_base_terms",
        "_config",
        "_depth",
        "_docstring",
        "_escape",
        "_fence",
        "_fired",
        "_frame",
        "_frame_blocks",
        "_frame_start",
        "_in_string",
        "_json",
        "_loop_anchors",
        "_loop_base",
        "_loop_text",
        "_meta",
        "_offset",
        "_outside",
        "_parts",
        "_pending",
        "_prose_lines",
        "_prose_start",
    )

    def __init__(self, config: DriftConfig | None = None) -> None:
        self._config = config if config is not None else DriftConfig()
        self._fired: set[str] = set()
        self._parts: list[str] = []
        self._pending = 0
        self._offset = 0  # where the next block starts
        self._json = _JsonStart()
        # JSON collapse
        self._in_string = False
        self._escape = False
        self._depth = 0
        self._bare = 0
        self._bare_start = 0
        # meta-commentary
        self._meta = _PatternScan([_builtin_patterns(categories=("meta",))])
        # fences and prose inside code blocks
        self._fence = _FenceTracker()
        self._docstring = False
        self._prose_lines = 0
        self._prose_start = 0
        # repetition
        self._loop_text = ""  # the latest text outside code blocks
        self._loop_base = 0  # how much outside text came before _loop_text
        self._outside = 0  # outside text seen so far
        # (outside offset, content offset) where each contiguous run of outside text starts
        self._loop_anchors: deque[tuple[int, int]] = deque()
        # entropy
        self._frame: list[str] = []
        self._frame_blocks = 0
        self._frame_start = 0
        self._base_counts: Counter[str] = Counter()
        self._base_terms: dict[str, float] = {}
        self._base_size = 0
        self._base_entropy = 0.0

    @property
    def config(self) -> DriftConfig:
        """The detector's configuration."""
        return self._config

    @property
    def fired(self) -> frozenset[str]:
        """The kinds that have fired (each fires at most once)."""
        return frozenset(self._fired)

    def feed(self, delta: str) -> list[DriftSignal]:
        """Take the next piece of output; return the signals it completed.

        Text is analysed in 128-character blocks, so a signal arrives up to one block late.
        """
        if not delta:
            return []
        self._parts.append(delta)
        self._pending += len(delta)
        if self._pending < _BLOCK:
            return []
        text = "".join(self._parts)
        self._parts.clear()
        found: list[DriftSignal] = []
        usable = len(text) - len(text) % _BLOCK
        for start in range(0, usable, _BLOCK):
            found.extend(self._block(text[start : start + _BLOCK], final=False))
        rest = text[usable:]
        if rest:
            self._parts.append(rest)
        self._pending = len(rest)
        return found

    def finish(self) -> list[DriftSignal]:
        """The stream ended: analyse the last partial block and return its signals."""
        text = "".join(self._parts)
        self._parts.clear()
        self._pending = 0
        return self._block(text, final=True)

    # ---------------------------------------------------------------------------------------

    def _block(self, text: str, final: bool) -> list[DriftSignal]:
        base = self._offset
        self._offset += len(text)
        found: list[DriftSignal] = []
        kinds = self._config.kinds
        undecided = self._json.verdict is None
        start = self._json.feed(text, base) if undecided else 0
        if final and self._json.verdict is None:
            self._json.finish()
        if "meta_commentary" in kinds and "meta_commentary" not in self._fired:
            self._meta_commentary(text, final, found)
        if self._json.verdict:
            if "format_collapse" in kinds and "format_collapse" not in self._fired:
                if undecided:
                    # Decided in this block: the document starts at its first character, which
                    # may sit in an earlier block; what lies between is blank.
                    self._json_collapse(self._json.first, self._json.first_pos, found)
                    self._json_collapse(text[start:], base + start, found)
                else:
                    self._json_collapse(text, base, found)
            return found
        # Prose (or not yet decided): lines, code blocks, words and characters.
        self._text(text, base, final, found)
        return found

    def _emit(self, found: list[DriftSignal], signal: DriftSignal) -> None:
        if signal.confidence < self._config.min_confidence or signal.kind in self._fired:
            return
        self._fired.add(signal.kind)
        found.append(signal)

    def _meta_commentary(self, text: str, final: bool, found: list[DriftSignal]) -> None:
        for position, _message, _severity in self._meta.feed(text, final):
            if position >= self._config.meta_after:
                self._emit(
                    found,
                    DriftSignal(
                        "meta_commentary",
                        0.9,
                        position,
                        "meta-commentary in mid-answer",
                    ),
                )
                return

    def _json_collapse(self, text: str, base: int, found: list[DriftSignal]) -> None:
        i = 0
        n = len(text)
        if self._escape and n:
            self._escape = False
            i = 1
        while i < n:
            if self._in_string:
                m = _JSON_IN_STRING.search(text, i)
                if m is None:
                    return
                j = m.start()
                if text[j] == '"':
                    self._in_string = False
                    i = j + 1
                elif j + 1 < n:
                    i = j + 2
                else:
                    self._escape = True
                    return
                continue
            m = _JSON_PUNCT.search(text, i)
            j = n if m is None else m.start()
            if j > i and self._bare_run(text, i, j, base, found):
                return
            if m is None:
                return
            char = text[j]
            self._bare = 0
            if char == '"':
                self._in_string = True
            elif char == "{" or char == "[":
                self._depth += 1
            elif char == "}" or char == "]":
                self._depth -= 1
            i = j + 1

    def _bare_run(self, text: str, i: int, j: int, base: int, found: list[DriftSignal]) -> bool:
        span = text[i:j]
        letters = sum(map(str.isalpha, span))
        if not letters:
            return False
        if not self._bare:
            first = next(k for k, c in enumerate(span) if c.isalpha())
            self._bare_start = base + i + first
        self._bare += letters
        if self._bare < _BARE_LETTERS:
            return False
        where = "inside the JSON structure" if self._depth > 0 else "after the JSON document"
        self._emit(found, DriftSignal("format_collapse", 0.9, self._bare_start, f"prose {where}"))
        return True

    def _text(self, text: str, base: int, final: bool, found: list[DriftSignal]) -> None:
        kinds = self._config.kinds
        fired = self._fired
        repetition = "repetition" in kinds and "repetition" not in fired
        collapse = "format_collapse" in kinds and "format_collapse" not in fired
        entropy = "entropy_shift" in kinds and "entropy_shift" not in fired
        fence = self._fence
        outside: list[str] = []
        keep = repetition or entropy
        for start, end in _line_pieces(text):
            piece = text[start:end]
            pos = base + start
            inside = fence.in_fence
            line_start = fence.line_start
            event = fence.feed(piece, pos)
            if event:
                self._prose_lines = 0
                self._docstring = False
            if inside:
                if collapse and not event and piece.endswith("\n"):
                    self._code_line(line_start, found)
                continue
            if keep:
                if repetition:
                    self._anchor(pos, len(piece))
                outside.append(piece)
        if final and collapse and fence.in_fence and fence.partial_line:
            line_start = fence.line_start
            if not fence.finish():
                self._code_line(line_start, found)
        joined = "".join(outside)
        if repetition and joined:
            self._loop(joined, found)
        if entropy:
            self._entropy(joined, base, final, found)

    def _code_line(self, line_start: int, found: list[DriftSignal]) -> None:
        """A completed line inside a code block: count prose paragraphs in a row."""
        head = self._fence.last_head
        if head.count('"""') % 2 or head.count("'''") % 2:
            self._docstring = not self._docstring
            self._prose_lines = 0
            return
        if not head.strip():
            return  # blank lines separate paragraphs; they neither count nor reset
        prose = (
            not self._docstring
            and self._fence.info not in _TEXT_BLOCKS
            and head[0].isupper()
            and self._fence.last_char in ".!?:"
            and len(head.split()) >= _PROSE_WORDS
            and _CODE_CHARS.search(head) is None
        )
        if not prose:
            self._prose_lines = 0
            return
        if not self._prose_lines:
            self._prose_start = line_start
        self._prose_lines += 1
        if self._prose_lines >= 2:
            self._emit(
                found,
                DriftSignal(
                    "format_collapse",
                    0.7,
                    self._prose_start,
                    "prose paragraphs in a code block",
                ),
            )

    def _anchor(self, pos: int, size: int) -> None:
        """Record where outside text at content offset ``pos`` sits in the outside stream."""
        anchors = self._loop_anchors
        if anchors:
            outside, content = anchors[-1]
            if content + (self._outside - outside) != pos:
                anchors.append((self._outside, pos))  # a code block was skipped
        else:
            anchors.append((self._outside, pos))
        self._outside += size

    def _content_offset(self, index: int) -> int:
        """The content offset of ``_loop_text[index]``."""
        outside = self._loop_base + index
        best = self._loop_anchors[0]
        for anchor in self._loop_anchors:
            if anchor[0] > outside:
                break
            best = anchor
        return best[1] + (outside - best[0])

    def _loop(self, text: str, found: list[DriftSignal]) -> None:
        """Is the text outside code blocks now periodic? Found with C-speed string search.

        The last ``_PROBE`` characters are looked up further back; the distance to an earlier
        occurrence is a candidate period ``d``, confirmed when the text ends with its last
        ``d`` characters repeated ``repeat_threshold`` times (and over ``_MIN_LOOP`` chars).
        """
        loop = self._loop_text + text
        if len(loop) > 2 * _LOOP_KEEP:
            cut = len(loop) - _LOOP_KEEP
            loop = loop[cut:]
            self._loop_base += cut
            anchors = self._loop_anchors
            while len(anchors) > 1 and anchors[1][0] <= self._loop_base:
                anchors.popleft()
        self._loop_text = loop
        n = len(loop)
        if n < _MIN_LOOP:
            return
        config = self._config
        probe = loop[-_PROBE:]
        low = max(0, n - _PROBE - config.max_period)
        high = n - 1
        for _ in range(3):  # the nearest few candidates; a loop's period is the nearest
            j = loop.rfind(probe, low, high)
            if j < 0:
                return
            period = n - _PROBE - j
            repeats = max(config.repeat_threshold, -(-_MIN_LOOP // period))
            unit = loop[-period:]
            if repeats * period <= n and loop.endswith(unit * repeats):
                if any(c.isalpha() for c in unit):
                    self._looping(loop, period, found)
                return
            high = j + _PROBE - 1

    def _looping(self, loop: str, period: int, found: list[DriftSignal]) -> None:
        # Walk back to where the periodic run began: whole periods, then single characters.
        start = len(loop) - period
        while start >= period and loop[start - period : start] == loop[start : start + period]:
            start -= period
        while start > 0 and loop[start - 1] == loop[start - 1 + period]:
            start -= 1
        repeats = (len(loop) - start) // period
        detail = f"a {period}-character passage repeated {repeats} times in a row"
        self._emit(found, DriftSignal("repetition", 0.95, self._content_offset(start), detail))

    def _entropy(self, text: str, base: int, final: bool, found: list[DriftSignal]) -> None:
        if not self._frame_blocks:
            self._frame_start = base
        if text:
            self._frame.append(text)
        self._frame_blocks += 1
        config = self._config
        frame_blocks = -(-config.entropy_window // _BLOCK)
        if self._frame_blocks < frame_blocks and not final:
            return
        frame = "".join(self._frame)
        self._frame.clear()
        self._frame_blocks = 0
        if not frame:
            return
        counts = Counter(frame)
        size = len(frame)
        # A short last frame says little about a distribution: compare only full-ish frames.
        if self._base_size >= config.entropy_baseline and size * 2 >= config.entropy_window:
            current = _entropy(counts, size)
            shift = current - self._base_entropy
            if abs(shift) >= config.entropy_threshold:
                direction = "dropped" if shift < 0 else "rose"
                self._emit(
                    found,
                    DriftSignal(
                        "entropy_shift",
                        _shift_confidence(abs(shift), config.entropy_threshold),
                        self._frame_start,
                        f"character entropy {direction} from {self._base_entropy:.2f} "
                        f"to {current:.2f} bits",
                    ),
                )
        # The baseline's entropy, from its terms c*log2(c) kept per character: only the
        # characters of this frame change (same terms, same order, so the same sum as
        # recomputing them all).
        base_counts = self._base_counts
        terms = self._base_terms
        known = base_counts.get
        log2 = math.log2
        for char, count in counts.items():
            count += known(char, 0)
            base_counts[char] = count
            terms[char] = count * log2(count)
        self._base_size += size
        total = self._base_size
        self._base_entropy = log2(total) - sum(terms.values()) / total


class _DriftChecker(_Checker):
    __slots__ = ("_config", "_detector", "_seen", "_severity")

    def __init__(self, config: DriftConfig, severity: Severity) -> None:
        self._config = config
        self._severity = severity
        self._detector = DriftDetector(config)
        self._seen = 0

    @property
    def batch(self) -> int | None:  # type: ignore[override]
        # The detector analyses whole blocks, at fixed offsets: until the current one is
        # complete, a delta is only buffered.
        return _BLOCK - self._detector._pending

    def check_delta(self, state: State, delta: str) -> Sequence[GuardrailViolation]:
        size = len(delta)
        start = state.content_length - size
        if start != self._seen:
            self._resync(state, start)
        self._seen += size
        signals = self._detector.feed(delta)
        return self._violations(signals) if signals else ()

    def check_final(self, state: State) -> Sequence[GuardrailViolation]:
        if state.content_length != self._seen:
            self._resync(state, state.content_length)
        return self._violations(self._detector.finish())

    def _resync(self, state: State, start: int) -> None:
        # Text that reached the content without passing through check_delta (a continuation's
        # checkpoint) is taken in as context; its signals were the earlier attempt's business.
        if start < self._seen:
            self._detector = DriftDetector(self._config)
            self._seen = 0
        gap = state.content[self._seen : start]
        if gap:
            self._detector.feed(gap)
        self._seen = start

    def _violations(self, signals: Iterable[DriftSignal]) -> list[GuardrailViolation]:
        return [
            GuardrailViolation(
                rule="drift",
                message=f"{s.kind}: {s.detail} (confidence {s.confidence:.2f})",
                severity=self._severity,
                position=s.position,
            )
            for s in signals
        ]


def drift_rule(config: DriftConfig | None = None, *, severity: Severity = "error") -> GuardrailRule:
    """Fails an attempt whose output drifts (rule ``"drift"``; the runtime reports it as
    ``DRIFT_DETECTED``, a CONTENT error that is retried and counts toward ``attempts``).

    Each attempt gets a fresh :class:`DriftDetector`; each signal kind is reported at most
    once per attempt. Cost: O(len(delta)) amortized, bounded memory.

    Args:
        config: what to detect and the thresholds (default :class:`DriftConfig()`).
        severity: of each violation.
    """
    config = config if config is not None else DriftConfig()
    if not isinstance(config, DriftConfig):
        raise ConfigError("drift_rule", "config", "must be a DriftConfig", config)
    severity = _check_severity("drift_rule", severity)
    return _BuiltinRule(
        "drift",
        lambda: _DriftChecker(config, severity),
        streaming=True,
        severity=severity,
        description="repetition, meta-commentary, format collapse, entropy shift",
    )
