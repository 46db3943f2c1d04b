"""Drift detection: each signal fires when it should, once, and never on a clean answer."""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from collections.abc import Iterable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l0.config import ConfigError
from l0.guardrails.drift import DriftConfig, DriftDetector, DriftSignal, _entropy, drift_rule
from l0.guardrails.engine import GuardrailEngine
from l0.types import State

_VOCABULARY = (
    "the service reads configuration once at startup so a change to cache lifetime only takes "
    "effect after restart workers recycle every few hours which hides problem in staging we "
    "should log hits and misses with key prefix add metric for ratio dashboard shows regression "
    "when upstream latency grows requests queue behind slow calls timeouts fire retries pile up"
)
WORDS = _VOCABULARY.split(" ")


def prose(length: int, seed: int = 0) -> str:
    """Varied English-like prose: sentences of random words, paragraphs, no exact repeats."""
    rng = random.Random(seed)
    parts: list[str] = []
    size = 0
    while size < length:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 18)))
        sentence = sentence.capitalize() + rng.choice([". ", ". ", "? ", ", and then. "])
        if rng.random() < 0.15:
            sentence += "\n\n"
        parts.append(sentence)
        size += len(sentence)
    return "".join(parts)[:length]


def detect(
    text: str, config: DriftConfig | None = None, size: int | None = None
) -> list[DriftSignal]:
    detector = DriftDetector(config)
    chunks = [text] if size is None else [text[i : i + size] for i in range(0, len(text), size)]
    found: list[DriftSignal] = []
    for chunk in chunks:
        found.extend(detector.feed(chunk))
    found.extend(detector.finish())
    return found


def kinds(signals: Iterable[DriftSignal]) -> list[str]:
    return [s.kind for s in signals]


def test_clean_answers_raise_nothing() -> None:
    assert detect(prose(20_000), size=4) == []
    records = ", ".join(
        f'{{"id": {i}, "active": true, "role": "user", "score": null, "tags": ["a", "b"]}}'
        for i in range(300)
    )
    assert detect(f'{{"users": [{records}]}}', size=5) == []


def test_signal_is_a_frozen_record() -> None:
    signal = DriftSignal("repetition", 0.9, 12, "detail")
    with pytest.raises(dataclasses.FrozenInstanceError):
        signal.confidence = 1.0  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# repetition


class TestRepetition:
    def test_sentence_loop(self) -> None:
        text = prose(1500) + " I will now answer the question in detail." * 6
        found = detect(text, size=4)
        assert kinds(found) == ["repetition"]
        assert found[0].confidence == 0.95
        assert found[0].position == 1500  # where the loop starts
        assert found[0].detail.startswith("a 42-character passage repeated ")

    def test_word_loop_without_punctuation(self) -> None:
        found = detect(prose(600) + " the" * 40)
        assert kinds(found) == ["repetition"]

    def test_repeats_that_are_not_back_to_back_pass(self) -> None:
        # A phrase coming back now and then is style (repetition_rule counts sentences); drift
        # is the output turning periodic.
        phrase = " as shown in the table below "
        text = "".join(phrase + prose(100 + 37 * k, seed=k) for k in range(6))
        assert detect(text, DriftConfig(min_confidence=0)) == []

    def test_fires_once_while_the_loop_goes_on(self) -> None:
        detector = DriftDetector()
        found: list[DriftSignal] = []
        for _ in range(200):
            found.extend(detector.feed("Paris is the capital of France. "))
        found.extend(detector.finish())
        assert kinds(found) == ["repetition"]
        assert detector.fired == {"repetition"}

    def test_below_threshold_or_in_code_blocks_passes(self) -> None:
        assert detect(prose(800) + " I will now answer the question." * 2) == []
        assert detect(prose(800) + " ha" * 20) == []  # under 64 characters
        code = "```python\n" + "assert response.status_code == 200, response.text\n" * 10 + "```\n"
        assert detect(prose(500) + "\n" + code + prose(500, seed=1)) == []


# --------------------------------------------------------------------------------------------
# meta-commentary


class TestMetaCommentary:
    def test_mid_answer(self) -> None:
        text = prose(400) + " As an AI language model, I should add a caveat. " + prose(300, 2)
        found = detect(text, size=3)
        assert kinds(found) == ["meta_commentary"]
        assert found[0].position == 401
        assert found[0].confidence == 0.9

    def test_at_the_start_is_not_drift(self) -> None:
        assert detect("As an AI language model, I can explain. " + prose(500)) == []

    def test_fires_once(self) -> None:
        text = prose(300) + "".join(
            " As an AI, I must add this. " + prose(200, k) for k in range(3)
        )
        assert kinds(detect(text)) == ["meta_commentary"]


# --------------------------------------------------------------------------------------------
# format collapse


class TestFormatCollapse:
    def test_prose_inside_json(self) -> None:
        text = '{"name": "report", "rows": [1, 2, 3], Sure, here is the rest of the data'
        found = detect(text, size=2)
        assert [(s.kind, s.position, s.detail) for s in found] == [
            ("format_collapse", 44, "prose inside the JSON structure")
        ]

    def test_prose_after_json(self) -> None:
        found = detect('{"name": "report"}\n\nThis object holds the name you asked for.')
        assert [(s.kind, s.detail) for s in found] == [
            ("format_collapse", "prose after the JSON document")
        ]

    def test_fires_once(self) -> None:
        text = '{"a": 1, Sure thing here, "b": [2, and then more prose]} Thanks for asking!'
        assert kinds(detect(text, size=3)) == ["format_collapse"]

    def test_json_literals_and_long_strings_pass(self) -> None:
        text = '[true, false, null, 1e10, {"text": "Long prose inside a string is fine here."}]'
        assert detect(text) == []

    def test_prose_paragraphs_inside_a_code_block(self) -> None:
        text = (
            "Here is the fix:\n```python\nvalue = compute(x)\nprint(value)\n"
            "Now that the function returns the right value, we can look at the caller.\n\n"
            "The caller also needs a change, because it still expects the old return type.\n"
        )
        found = detect(text, size=7)
        assert [(s.kind, s.confidence, s.position) for s in found] == [("format_collapse", 0.7, 59)]

    @pytest.mark.parametrize(
        "block",
        [
            # a docstring is prose inside code on purpose
            '```python\ndef f():\n    """Summary.\n\nThis module does many things for the '
            "whole application and for all its users.\nIt also explains them at some length "
            'here, for the benefit of every reader.\n"""\n```\n',
            # text blocks hold prose
            "```text\nThis paragraph is quoted text and it is long enough to look like prose.\n"
            "This second paragraph is also quoted text and it is as long as the first one.\n```\n",
            # one prose line is a comment-like slip, not a collapse
            "```python\nx = 1\nThis single line reads like prose and has more than twelve words.\n"
            "y = 2\n```\n",
        ],
    )
    def test_legitimate_code_blocks_pass(self, block: str) -> None:
        assert detect("Intro.\n" + block) == []


# --------------------------------------------------------------------------------------------
# entropy shift


class TestEntropyShift:
    def test_degenerate_output(self) -> None:
        found = detect(prose(3000) + "!" * 600, size=4)
        assert [(s.kind, s.confidence) for s in found] == [("entropy_shift", 1.0)]
        assert found[0].detail.startswith("character entropy dropped from 4.")
        assert found[0].position == 3072  # the window that shifted

    def test_change_of_script(self) -> None:
        rng = random.Random(3)
        cjk = "".join(chr(0x4E00 + rng.randint(0, 3000)) for _ in range(800))
        found = detect(prose(3000) + cjk)
        assert kinds(found) == ["entropy_shift"]
        assert "rose" in found[0].detail

    def test_needs_a_baseline(self) -> None:
        assert detect(prose(500) + "!" * 600) == []

    def test_fires_once(self) -> None:
        text = prose(3000) + "!" * 600 + prose(3000, seed=4) + "?" * 600
        assert kinds(detect(text)) == ["entropy_shift"]

    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_baseline_kept_incrementally_is_exactly_the_recomputed_one(self, seed: int) -> None:
        # The detector keeps c*log2(c) per character instead of summing over every character
        # at each frame: the same terms in the same order, so the very same float.
        rng = random.Random(seed)
        cjk = "".join(chr(0x4E00 + rng.randint(0, 300)) for _ in range(700))
        detector = DriftDetector(DriftConfig(kinds=frozenset({"entropy_shift"})))
        for piece in (prose(2000, seed), cjk, prose(1500, seed + 1), "!?" * 400):
            detector.feed(piece)
            counts = detector._base_counts
            total = sum(counts.values())
            old = math.log2(total) - sum(c * math.log2(c) for c in counts.values()) / total
            assert detector._base_entropy == old
            assert _entropy(counts, total) == old


# --------------------------------------------------------------------------------------------
# configuration, the rule, chunking


def test_config_validation() -> None:
    with pytest.raises(ConfigError):
        DriftConfig(repeat_threshold=1)
    with pytest.raises(ConfigError):
        DriftConfig(max_period=10_000)
    with pytest.raises(ConfigError):
        DriftConfig(kinds=frozenset({"vibes"}))
    with pytest.raises(ConfigError):
        DriftConfig(min_confidence=1.5)
    with pytest.raises(ConfigError):
        DriftConfig(entropy_threshold=0)
    with pytest.raises(ConfigError):
        drift_rule(config="strict")  # type: ignore[arg-type]


def test_kinds_and_min_confidence_filter_signals() -> None:
    text = prose(3000) + "!" * 600
    assert detect(text, DriftConfig(kinds=frozenset({"repetition"}))) == []
    code_prose = (
        "```python\nx = 1\nThis line reads like ordinary prose and has more than twelve words.\n"
        "This line also reads like ordinary prose and has more than twelve words too.\n```\n"
    )
    assert kinds(detect(code_prose)) == ["format_collapse"]
    assert detect(code_prose, DriftConfig(min_confidence=0.8)) == []


def drift_violations(checker_rule: object, text: str, size: int) -> list[tuple[str, str]]:
    assert hasattr(checker_rule, "new_checker")
    checker = checker_rule.new_checker()
    state = State()
    out: list[tuple[str, str]] = []
    for i in range(0, len(text), size):
        delta = text[i : i + size]
        state.append(delta)
        out.extend((v.rule, v.message) for v in checker.check_delta(state, delta))
    out.extend((v.rule, v.message) for v in checker.check_final(state))
    return out


def test_rule_reports_drift_as_errors() -> None:
    rule = drift_rule()
    assert rule.name == "drift"
    text = prose(1500) + " I will now answer the question in detail." * 30
    found = drift_violations(rule, text, 4)
    assert found == [
        ("drift", "repetition: a 42-character passage repeated 3 times in a row (confidence 0.95)")
    ]
    warning = drift_rule(severity="warning").new_checker()
    state = State()
    state.append(text)
    assert [v.severity for v in warning.check_delta(state, text)] == ["warning"]


def test_each_attempt_starts_clean() -> None:
    rule = drift_rule()
    text = prose(1500) + " I will now answer the question in detail." * 30
    assert len(drift_violations(rule, text, 9)) == 1
    assert len(drift_violations(rule, text, 9)) == 1  # a fresh checker fires again


async def test_through_the_engine() -> None:
    run = GuardrailEngine([drift_rule()]).start()
    state = State()
    text = '{"a": [1, 2], and then the model started to chat about it'
    found = []
    for i in range(0, len(text), 4):
        delta = text[i : i + 4]
        state.append(delta)
        result = run.check_delta(state, delta)
        assert isinstance(result, list)
        found.extend(result)
    found.extend(await run.check_final(state))
    assert [(v.rule, v.position) for v in found] == [("drift", 14)]


SMALL = DriftConfig(
    repeat_threshold=2,
    meta_after=20,
    entropy_window=128,
    entropy_baseline=256,
    min_confidence=0,
)
fragments = st.sampled_from(
    [
        "the loop again ",
        "Paris. ",
        "As an AI model ",
        "!!!!!!!!",
        "{",
        "}",
        '"',
        ",",
        "```python\n",
        "```\n",
        "\n",
        "This line reads like ordinary prose and has more than twelve words in it.\n",
        '"""\n',
        "x = 1\n",
        "的是不了人",
    ]
)


@given(
    text=st.one_of(
        st.lists(fragments, max_size=150).map("".join),
        st.builds(lambda n, s: prose(n, s), st.integers(0, 3000), st.integers(0, 5)),
    ),
    cuts=st.lists(st.integers(0, 4000), max_size=60),
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_signals_do_not_depend_on_chunking(text: str, cuts: list[int]) -> None:
    whole = detect(text, SMALL)
    points = sorted({c for c in cuts if 0 < c < len(text)})
    bounds = [0, *points, len(text)]
    detector = DriftDetector(SMALL)
    found: list[DriftSignal] = []
    for a, b in itertools.pairwise(bounds):
        found.extend(detector.feed(text[a:b]))
    found.extend(detector.finish())
    assert found == whole
