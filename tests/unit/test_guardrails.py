"""Built-in guardrail rules and presets.

Each rule is fed the way the runtime feeds it: ``state.append(delta)`` then
``checker.check_delta(state, delta)`` for every delta, ``check_final(state)`` at the end.
"""

from __future__ import annotations

import inspect
import itertools
import re
import sys
from collections.abc import Iterable, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l0.config import ConfigError
from l0.guardrails.base import NO_DELTAS, GuardrailRule, GuardrailViolation, RuleChecker
from l0.guardrails.drift import DriftConfig, drift_rule
from l0.guardrails.engine import GuardrailEngine
from l0.guardrails.presets import Guardrails
from l0.guardrails.rules import (
    _CATEGORIES,
    INSTRUCTION_LEAK_PATTERNS,
    META_COMMENTARY_PATTERNS,
    PLACEHOLDER_PATTERNS,
    REFUSAL_PATTERNS,
    _builtin_patterns,
    _factored,
    custom_pattern_rule,
    json_rule,
    markdown_rule,
    pattern_rule,
    repetition_rule,
    stall_rule,
    strict_json_rule,
    zero_output_rule,
)
from l0.types import State, ToolCall

Finding = tuple[str, str, int | None]


def stream(
    rule: GuardrailRule, chunks: Iterable[str], state: State | None = None
) -> tuple[list[GuardrailViolation], list[GuardrailViolation]]:
    """Run one fresh checker over ``chunks``: (violations while streaming, at completion)."""
    checker = rule.new_checker()
    state = state if state is not None else State()
    during: list[GuardrailViolation] = []
    for delta in chunks:
        state.append(delta)
        result = checker.check_delta(state, delta)
        assert isinstance(result, Sequence)
        during.extend(result)
    final = checker.check_final(state)
    assert isinstance(final, Sequence)
    return during, list(final)


def violations(rule: GuardrailRule, text: str, size: int | None = None) -> list[GuardrailViolation]:
    chunks = [text] if size is None else [text[i : i + size] for i in range(0, len(text), size)]
    during, final = stream(rule, chunks)
    return during + final


def findings(found: Iterable[GuardrailViolation]) -> set[Finding]:
    return {(v.rule, v.message, v.position) for v in found}


def chunked(text: str, cuts: Iterable[int]) -> list[str]:
    points = sorted({c for c in cuts if 0 < c < len(text)})
    bounds = [0, *points, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


# A realistic answer: headings, a list, a code block, prose. No rule should fire on it.
CLEAN_ANSWER = """\
## Why the cache misses

The service reads its configuration once at startup, so a change to the TTL only takes effect
after a restart. Three things interact here:

1. The loader caches parsed files for the lifetime of the process.
2. The HTTP layer adds its own cache in front of the upstream API.
3. Workers are recycled every few hours, which hides the problem in staging.

Here is a minimal reproduction:

```python
import time

def fetch(cache, key):
    value = cache.get(key)
    if value is None:
        value = cache[key] = expensive(key)
    return value

for _ in range(3):
    print(fetch({}, "user:42"))
    time.sleep(1)
```

Notice that `fetch` builds a new dictionary on every call, so nothing is ever reused. Move the
dictionary out of the loop, or better, give it a bounded size with `functools.lru_cache`.

### What to change

- Read the TTL on every request instead of at import time.
- Log cache hits and misses with the key prefix (never the full key).
- Add a metric for the hit ratio, so a regression shows up on the dashboard.

If you want, I can sketch the metric and the dashboard panel next.
"""


# --------------------------------------------------------------------------------------------
# json_rule


class TestJsonRule:
    def test_valid_document_passes(self) -> None:
        text = '{"name": "Ada", "tags": ["a", "b"], "nested": {"x": [1, 2, {"y": null}]}}'
        assert violations(json_rule(), text, size=3) == []

    def test_brackets_and_escapes_inside_strings_do_not_count(self) -> None:
        text = r'{"a": "he said \"}]\" and left", "b": "\\", "c": "[{"}'
        assert violations(json_rule(), text, size=1) == []

    def test_mismatched_closer_is_reported_while_streaming(self) -> None:
        text = '{"items": [1, 2}, "more": "' + "x" * 200 + '"}'
        during, final = stream(json_rule(), [text[i : i + 4] for i in range(0, len(text), 4)])
        assert [(v.rule, v.severity, v.position) for v in during] == [("json", "error", 15)]
        assert "'}' does not close '['" in during[0].message
        assert final == []  # reported once: nothing more at completion

    def test_closer_with_nothing_open(self) -> None:
        found = violations(json_rule(), '{"a": 1}}')
        assert [(v.message, v.position) for v in found] == [
            ("JSON: unexpected '}' with no open bracket", 8)
        ]

    def test_unclosed_at_completion(self) -> None:
        during, final = stream(json_rule(), ['{"a": [1, ', "2"])
        assert during == []
        assert [(v.message, v.position) for v in final] == [
            ("JSON: unbalanced: 2 unclosed brackets (innermost '[')", 6)
        ]

    def test_unterminated_string_at_completion(self) -> None:
        found = violations(json_rule(), '  {"a": "abc')
        assert [(v.message, v.position) for v in found] == [("JSON: unterminated string", 8)]

    def test_lone_opener_is_a_cut_off_document(self) -> None:
        assert [v.position for v in violations(json_rule(), "\n {")] == [2]

    def test_one_violation_per_document(self) -> None:
        assert len(violations(json_rule(), '{"a": ]]]]}}}} "', size=2)) == 1

    @pytest.mark.parametrize(
        "text",
        [
            "Hello } world ]",
            '[Verse 1]\nShe said "wait',
            "[Click here](https://example.com) to see the {broken",
            "The set {1, 2, 3 is not closed. And ] neither.",
            "I think ] is a bracket and } too\n",
            "",
            "   \n\t",
        ],
    )
    def test_prose_never_violates(self, text: str) -> None:
        assert violations(json_rule(), text) == []

    @given(st.text(alphabet='{}[]"\\ abc\n:,`'))
    @settings(max_examples=200)
    def test_prose_property(self, text: str) -> None:
        # Anything that does not start like JSON and has no ```json fence is prose.
        stripped = text.lstrip()
        if stripped[:1] in ("{", "[") or "```" in text:
            return
        assert violations(json_rule(), text) == []

    def test_fenced_json_block_is_checked(self) -> None:
        text = 'Here it is:\n```json\n{"a": [1}\n```\nAnd a good one:\n```json\n{"b": 2}\n```\n'
        found = violations(json_rule(), text, size=5)
        assert [(v.message, v.position) for v in found] == [
            ("JSON code block: '}' does not close '[' opened at 26", 28)
        ]

    def test_fenced_json_block_unbalanced_at_its_closing_fence(self) -> None:
        text = 'Result:\n```json\n{"a": {"b": 1}\n```\nDone.'
        found = violations(json_rule(), text)
        assert [(v.message, v.position) for v in found] == [
            ("JSON code block: unbalanced: 1 unclosed bracket (innermost '{')", 16)
        ]

    def test_unclosed_fenced_block_at_completion(self) -> None:
        found = violations(json_rule(), 'Result:\n```json\n{"a": [1, 2')
        assert [v.position for v in found] == [22]

    def test_other_fences_are_not_json(self) -> None:
        text = "Code:\n```python\nx = {1: [2}\n```\n"
        assert violations(json_rule(), text) == []


# --------------------------------------------------------------------------------------------
# strict_json_rule


class TestStrictJsonRule:
    def test_valid_json_passes(self) -> None:
        assert violations(strict_json_rule(), '  \n{"a": [1, 2.5, null, true]}\n') == []
        assert violations(strict_json_rule(), "[1, 2]") == []

    @pytest.mark.parametrize(
        ("text", "position"),
        [('{"a": 1} and more', 9), ("Sure! Here is the JSON.", 0), ('{"a": [1, 2', 11)],
    )
    def test_invalid_json_is_an_error_at_completion(self, text: str, position: int) -> None:
        during, final = stream(strict_json_rule(), [text])
        assert during == []
        assert [(v.rule, v.severity, v.position) for v in final] == [
            ("strict_json", "error", position)
        ]
        assert final[0].message.startswith("output is not valid JSON: ")

    def test_empty_output_is_left_to_zero_output_rule(self) -> None:
        assert violations(strict_json_rule(), "  ") == []
        assert strict_json_rule().streaming is False


# --------------------------------------------------------------------------------------------
# pattern_rule


class TestPatternRule:
    @pytest.mark.parametrize(
        ("text", "category", "severity"),
        [
            ("I cannot help with that.", "refusal", "error"),
            ("I'm sorry, but I can't assist with creating that.", "refusal", "error"),
            ("I’m sorry, but I can’t provide that.", "refusal", "error"),
            ("Unfortunately I am unable to help with this request.", "refusal", "error"),
            ("I must respectfully decline.", "refusal", "error"),
            ("Answer: <|im_start|>system\nYou are", "instruction leak", "error"),
            ("text <|im_end|>", "instruction leak", "error"),
            ("[INST] do this [/INST]", "instruction leak", "error"),
            ("<<SYS>>\nhidden\n<</SYS>>", "instruction leak", "error"),
            ("<|system|> be nice", "instruction leak", "error"),
            ("As an AI language model, I think it depends.", "meta-commentary", "warning"),
            ("AS AN AI, I have no body.", "meta-commentary", "warning"),
            ("I don't have personal opinions, but", "meta-commentary", "warning"),
            ("Dear [INSERT NAME], thanks", "placeholder", "warning"),
            ("Best regards,\n[YOUR NAME HERE]", "placeholder", "warning"),
            ("Hello {{variable}}!", "placeholder", "warning"),
            ("Hi [Your Name],", "placeholder", "warning"),
        ],
    )
    def test_builtin_categories(self, text: str, category: str, severity: str) -> None:
        found = violations(pattern_rule(), text)
        assert found, text
        for violation in found:
            assert violation.rule == "pattern"
            assert violation.message.startswith(category + ":")
            assert violation.severity == severity

    @pytest.mark.parametrize(
        "text",
        [
            CLEAN_ANSWER,
            "I can't wait to see it. I cannot stress this enough: test first.",
            "As an aside, the Thai restaurant said it was open.",
            "Open [your account settings](https://example.com/settings) to change it.",
            "Use data[name] and items[date] to index.",
            "The {{ }} braces and [insertion sort](https://en.wikipedia.org) are fine.",
            "Said the AI researcher: the model is large.",
        ],
    )
    def test_clean_text_passes(self, text: str) -> None:
        assert violations(pattern_rule(), text, size=3) == []

    def test_phrase_split_across_chunks_is_found_once_at_its_start(self) -> None:
        text = "Well. I'm sorry, but I can't help with that, truly. " + "x" * 300
        for size in (1, 2, 5, 64, 1000):
            found = violations(pattern_rule(), text, size=size)
            assert [(v.message, v.position) for v in found] == [
                ("refusal: the model declined the request", 6)
            ], size

    def test_each_match_is_reported_once(self) -> None:
        text = ("As an AI model I think so. " + "filler text here. " * 10) * 3
        during, final = stream(pattern_rule(), [text[i : i + 7] for i in range(0, len(text), 7)])
        positions = [v.position for v in during + final]
        assert positions == sorted(set(positions))
        assert len(positions) == 3

    def test_found_while_streaming(self) -> None:
        text = "<|im_start|>assistant " + "more text " * 30
        during, final = stream(pattern_rule(), [text[i : i + 4] for i in range(0, len(text), 4)])
        assert [v.position for v in during] == [0]
        assert final == []

    def test_severity_overrides_every_category(self) -> None:
        found = violations(pattern_rule(severity="fatal"), "As an AI, I cannot help with that.")
        assert {v.severity for v in found} == {"fatal"}
        assert len(found) == 2

    def test_custom_patterns_replace_the_builtins(self) -> None:
        rule = pattern_rule(patterns=[r"foo\s{1,3}bar", re.compile("BAZ")])
        found = violations(rule, "As an AI: Foo  bar and baz and BAZ", size=2)
        assert [(v.message, v.severity, v.position) for v in found] == [
            ("matched custom pattern #0", "error", 10),
            ("matched custom pattern #1", "error", 31),
        ]

    @pytest.mark.parametrize("bad", [[""], ["a*"], ["("], [b"x"], 42, []])
    def test_invalid_patterns_are_config_errors(self, bad: object) -> None:
        with pytest.raises(ConfigError):
            pattern_rule(patterns=bad)  # type: ignore[arg-type]

    def test_invalid_severity(self) -> None:
        with pytest.raises(ConfigError):
            pattern_rule(severity="loud")  # type: ignore[arg-type]

    def test_checkpoint_prefix_is_context_not_rechecked(self) -> None:
        # A continuation starts with the checkpoint already in the content.
        state = State()
        state.reset_content("As an AI model, ")
        during, final = stream(pattern_rule(), ["I cannot ", "help with that."], state)
        assert [(v.message.split(":")[0], v.position) for v in during + final] == [("refusal", 16)]


ADVERSARIAL = [
    "As an " * 170_000,
    "as a large " * 100_000,
    "[" * 1_000_000,
    "[your " * 170_000,
    "{{" * 500_000,
    "{{ a" * 250_000,
    "<|" * 500_000,
    "I'm sorry, but " * 70_000,
    "I " * 500_000,
    "i am not able to " * 60_000,
]


@pytest.mark.parametrize(
    "pattern",
    [
        *META_COMMENTARY_PATTERNS,
        *REFUSAL_PATTERNS,
        *INSTRUCTION_LEAK_PATTERNS,
        *PLACEHOLDER_PATTERNS,
    ],
)
def test_builtin_patterns_are_linear_on_adversarial_input(pattern: str) -> None:
    # Bounded repetitions only: each must get through 1 MB of near-misses (no timing assert;
    # a catastrophic backtracker would simply not finish).
    regex = re.compile(pattern)
    for text in ADVERSARIAL:
        for _ in regex.finditer(text.lower()):
            pass


def test_pattern_rule_streams_adversarial_input() -> None:
    rule = pattern_rule()
    for text in ADVERSARIAL[:4]:
        stream(rule, [text[i : i + 4096] for i in range(0, len(text), 4096)])


# --------------------------------------------------------------------------------------------
# custom_pattern_rule


def test_custom_pattern_rule() -> None:
    rule = custom_pattern_rule("competitors", [r"\bacme\s{1,3}corp\b"], severity="warning")
    assert rule.name == "competitors"
    found = violations(rule, "Try ACME Corp or acme  corp.", size=3)
    assert [(v.rule, v.message, v.severity, v.position) for v in found] == [
        ("competitors", "matched competitors pattern #0", "warning", 4),
        ("competitors", "matched competitors pattern #0", "warning", 17),
    ]
    custom = custom_pattern_rule("secret", "sk-[a-z0-9]{8}", message="API key in the output")
    assert [v.message for v in violations(custom, "key: sk-abcd1234")] == ["API key in the output"]
    with pytest.raises(ConfigError):
        custom_pattern_rule("", ["x"])


# --------------------------------------------------------------------------------------------
# zero_output_rule, stall_rule


class TestZeroOutputRule:
    @pytest.mark.parametrize("text", ["", " \n\t "])
    def test_empty_is_an_error(self, text: str) -> None:
        found = violations(zero_output_rule(), text)
        assert [(v.rule, v.severity) for v in found] == [("zero_output", "error")]

    def test_content_passes(self) -> None:
        assert violations(zero_output_rule(), " ok ") == []

    def test_tool_calls_only_pass(self) -> None:
        state = State()
        state.tool_calls.append(ToolCall(index=0, id="c1", name="f", arguments="{}"))
        assert stream(zero_output_rule(), [], state) == ([], [])


class TestStallRule:
    def test_idle_checker_reports_a_silence_once(self) -> None:
        checker = stall_rule(max_gap=2.0).new_checker()
        assert checker.max_gap == 2.0
        state = State()
        first = checker.check_idle(state, 2.5)
        assert [(v.rule, v.severity, v.position) for v in first] == [("stall", "error", 0)]
        assert checker.check_idle(state, 4.0) == ()  # the same silence, asked again
        state.append("token")
        assert checker.check_delta(state, "token") == ()
        again = checker.check_idle(state, 3.0)
        assert [v.position for v in again] == [5]

    def test_engine_watches_the_smallest_gap(self) -> None:
        run = GuardrailEngine([stall_rule(5.0), stall_rule(1.5), json_rule()]).start()
        assert run.max_gap == 1.5
        state = State()
        assert len(run.check_idle(state, 2.0)) == 1  # only the 1.5 s rule is over its limit
        assert len(run.check_idle(state, 6.0)) == 1  # the 5 s one now; the 1.5 s already said so

    @pytest.mark.parametrize("bad", [0, -1, "5", True, float("nan")])
    def test_invalid_gap(self, bad: object) -> None:
        with pytest.raises(ConfigError):
            stall_rule(bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# repetition_rule, markdown_rule


class TestRepetitionRule:
    def test_loop_is_reported_once(self) -> None:
        text = "Intro. " + "The answer is forty two, as I said. " * 8
        during, final = stream(repetition_rule(), [text[i : i + 4] for i in range(0, len(text), 4)])
        found = during + final
        assert [(v.rule, v.severity, v.position) for v in found] == [("repetition", "error", 79)]
        assert found[0].message == "the same sentence appeared 3 times within 2000 characters"

    def test_two_occurrences_or_short_sentences_pass(self) -> None:
        text = "The answer is forty two, as I said. " * 2 + "Yes. " * 20 + "}\n" * 20
        assert violations(repetition_rule(), text) == []

    def test_repeats_outside_the_window_pass(self) -> None:
        sentence = "The answer is forty two, as I said. "
        text = "".join(
            sentence + "".join(f"Filler sentence number {k}-{i} keeps us busy. " for i in range(30))
            for k in range(3)
        )
        assert violations(repetition_rule(window=500), text) == []
        assert len(violations(repetition_rule(window=5000), text)) == 1

    def test_case_and_whitespace_are_normalized(self) -> None:
        text = "The answer is forty two.\nTHE ANSWER IS  FORTY TWO.\nthe answer is forty two."
        assert len(violations(repetition_rule(), text)) == 1

    def test_numbered_steps_are_different_sentences(self) -> None:
        steps = "\n".join(f"{i}. Click Next and wait for the page to load." for i in range(1, 8))
        assert violations(repetition_rule(), "Steps:\n" + steps, size=3) == []
        looping = "\n".join("1. Click Next and wait for the page to load." for _ in range(3))
        assert len(violations(repetition_rule(), looping)) == 1

    def test_code_blocks_are_skipped(self) -> None:
        code = "```python\n" + "    self.assertEqual(result, expected)\n" * 5 + "```\n"
        assert violations(repetition_rule(), "Tests:\n" + code) == []

    def test_invalid_parameters(self) -> None:
        with pytest.raises(ConfigError):
            repetition_rule(threshold=1)
        with pytest.raises(ConfigError):
            repetition_rule(window=0)


class TestMarkdownRule:
    def test_closed_fences_pass(self) -> None:
        text = "a\n```python\nx = 1\n```\n~~~\nraw\n~~~\n````md\n```\nnested\n```\n````"
        assert violations(markdown_rule(), text, size=3) == []

    def test_unclosed_fence_is_reported_at_its_opening(self) -> None:
        text = "Intro\n```python\nprint(1)\n``` not a close\n"
        found = violations(markdown_rule(), text, size=2)
        assert [(v.rule, v.severity, v.position, v.message) for v in found] == [
            ("markdown", "error", 6, "unclosed code fence (```)")
        ]

    def test_shorter_or_other_fences_do_not_close(self) -> None:
        assert len(violations(markdown_rule(), "````\ncode\n```\n~~~~\n")) == 1

    def test_indented_code_is_not_a_fence(self) -> None:
        assert violations(markdown_rule(), "Example:\n\n    ```\n    code\n") == []


# --------------------------------------------------------------------------------------------
# Chunking never changes what is found


FRAGMENTS = [
    "{",
    "}",
    "[",
    "]",
    '"',
    "\\",
    " ",
    "\n",
    ",",
    ": ",
    "1",
    "true",
    "```",
    "```json\n",
    "~~~\n",
    "As an AI language model",
    "I'm sorry, but I can't help",
    "I cannot help with that.",
    "<|im_start|>",
    "[INST]",
    "{{ name }}",
    "[Your Name]",
    "hello world. ",
    "The same sentence repeats right here. ",
    "the the the ",
    "Zebra",
    "!",
]

RULES = {
    "json": json_rule,
    "strict_json": strict_json_rule,
    "pattern": pattern_rule,
    "markdown": markdown_rule,
    "repetition": lambda: repetition_rule(window=300, threshold=2, min_length=5),
    "zero_output": zero_output_rule,
    "drift": lambda: drift_rule(DriftConfig(repeat_threshold=2, meta_after=10, min_confidence=0)),
}

texts = st.one_of(
    st.lists(st.sampled_from(FRAGMENTS), max_size=80).map("".join),
    st.text(max_size=300),
)


@pytest.mark.parametrize("name", sorted(RULES))
@given(data=st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_findings_do_not_depend_on_chunking(name: str, data: st.DataObject) -> None:
    rule = RULES[name]()
    text = data.draw(texts, label="text")
    cuts = data.draw(st.lists(st.integers(0, max(len(text), 1)), max_size=40), label="cuts")
    whole = findings(violations(rule, text))
    during, final = stream(rule, chunked(text, cuts))
    assert findings(during + final) == whole


@pytest.mark.parametrize("name", sorted(RULES))
def test_findings_do_not_depend_on_chunking_for_long_texts(name: str) -> None:
    rule = RULES[name]()
    text = "".join(FRAGMENTS[(i * 7) % len(FRAGMENTS)] for i in range(2000))
    whole = findings(violations(rule, text))
    for size in (1, 3, 17, 64, 500):
        assert findings(violations(rule, text, size=size)) == whole, size


# --------------------------------------------------------------------------------------------
# Presets and the engine


def names(rules: list[GuardrailRule]) -> list[str]:
    return [rule.name for rule in rules]


def test_presets() -> None:
    assert names(Guardrails.recommended()) == ["json", "pattern", "zero_output"]
    assert names(Guardrails.strict()) == [
        "json",
        "pattern",
        "zero_output",
        "markdown",
        "repetition",
        "stall",
        "drift",
    ]
    assert names(Guardrails.json_only()) == ["json", "strict_json", "zero_output"]
    assert Guardrails.none() == []


def test_presets_return_fresh_lists() -> None:
    first = Guardrails.recommended()
    first.append(markdown_rule())
    assert len(Guardrails.recommended()) == 3
    assert Guardrails.strict() is not Guardrails.strict()


@pytest.mark.parametrize("preset", ["recommended", "strict"])
async def test_presets_pass_a_clean_answer(preset: str) -> None:
    run = GuardrailEngine(getattr(Guardrails, preset)()).start()
    state = State()
    found: list[GuardrailViolation] = []
    for i in range(0, len(CLEAN_ANSWER), 4):
        delta = CLEAN_ANSWER[i : i + 4]
        state.append(delta)
        result = run.check_delta(state, delta)
        assert isinstance(result, list)
        found.extend(result)
    found.extend(await run.check_final(state))
    assert found == []


async def test_json_only_through_the_engine() -> None:
    run = GuardrailEngine(Guardrails.json_only()).start()
    state = State()
    for delta in ['{"a": ', "[1, 2", "]} trailing"]:
        state.append(delta)
        assert run.check_delta(state, delta) == []
    final = await run.check_final(state)
    assert [v.rule for v in final] == ["strict_json"]


def test_every_attempt_gets_fresh_state() -> None:
    rule = pattern_rule()
    text = "I cannot help with that."
    assert len(violations(rule, text)) == 1
    assert len(violations(rule, text)) == 1  # a second checker is not muted by the first


# --------------------------------------------------------------------------------------------
# The engine's batching: the same findings, on the same delta, as a call per delta


def _bang(state: State, delta: str) -> list[GuardrailViolation]:
    # A custom streaming rule: runs on every delta, with that delta.
    if "!" in delta:
        return [GuardrailViolation(rule="bang", message="!", position=state.content_length)]
    return []


def _reads_content(state: State) -> list[GuardrailViolation]:
    # Reading the content joins the state's parts: the engine must still slice the right text.
    content = state.content
    if content.count("Zebra") >= 3:
        return [GuardrailViolation(rule="zebras", message="3 zebras", position=len(content))]
    return []


def engine_rules() -> list[GuardrailRule]:
    return [
        *Guardrails.strict(),
        RULES["repetition"](),
        RULES["drift"](),
        drift_rule(DriftConfig(entropy_window=128, entropy_baseline=256, min_confidence=0)),
        custom_pattern_rule("zebra", [r"zebra", r"the\s{1,3}the"]),
        GuardrailRule("bang", _bang),
        strict_json_rule(),
    ]


Step = list[tuple[str, str, str, int | None]]


def _key(found: Iterable[GuardrailViolation]) -> Step:
    return [(v.rule, v.message, v.severity, v.position) for v in found]


def per_delta_direct(
    rules: list[GuardrailRule], chunks: list[str], prefix: str = ""
) -> tuple[list[Step], Step]:
    """Each rule's checker called on every delta, as a runtime without the engine would."""
    state = State()
    state.reset_content(prefix)
    checkers = [(rule.streaming, rule.new_checker()) for rule in rules]
    steps: list[Step] = []
    for delta in chunks:
        state.append(delta)
        step: Step = []
        for streaming, checker in checkers:
            if streaming:
                result = checker.check_delta(state, delta)
                assert isinstance(result, Sequence)
                step.extend(_key(result))
        steps.append(step)
    final: Step = []
    for _, checker in checkers:
        result = checker.check_final(state)
        assert isinstance(result, Sequence)
        final.extend(_key(result))
    return steps, sorted(final, key=repr)


def per_delta_engine(
    rules: list[GuardrailRule], chunks: list[str], prefix: str = "", *, skip: bool = False
) -> tuple[list[Step], Step]:
    """Through a GuardrailRun; ``skip``: only call it when ``next_release`` says so."""
    state = State()
    state.reset_content(prefix)
    run = GuardrailEngine(rules).start()
    steps: list[Step] = []
    for delta in chunks:
        state.append(delta)
        if skip and state.content_length < run.next_release:
            steps.append([])
            continue
        result = run.check(state, delta)
        assert not inspect.isawaitable(result)
        steps.append(_key(result or []))
    final = run.check_final(state)
    try:
        final.send(None)
    except StopIteration as done:
        return steps, sorted(_key(done.value), key=repr)
    raise AssertionError("check_final awaited something")


@given(data=st.data())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_engine_reports_what_each_rule_does_on_the_same_delta(data: st.DataObject) -> None:
    rules = engine_rules()
    chosen = data.draw(st.lists(st.sampled_from(range(len(rules))), min_size=1), label="rules")
    subset = [rules[i] for i in sorted(set(chosen))]
    text = data.draw(
        st.one_of(st.lists(st.sampled_from(FRAGMENTS), max_size=150).map("".join), texts),
        label="text",
    )
    cuts = data.draw(st.lists(st.integers(0, max(len(text), 1)), max_size=60), label="cuts")
    prefix = data.draw(st.sampled_from(["", "As an AI model, ", "{", "```json\n", "x" * 300]))
    chunks = chunked(text, cuts)
    direct = per_delta_direct(subset, chunks, prefix)
    assert per_delta_engine(subset, chunks, prefix) == direct
    assert per_delta_engine(subset, chunks, prefix, skip=True) == direct


@pytest.mark.parametrize("size", [1, 4, 7, 127, 128, 129, 1000])
def test_engine_matches_a_call_per_delta_on_long_streams(size: int) -> None:
    text = "".join(FRAGMENTS[(i * 7) % len(FRAGMENTS)] for i in range(1500)) + CLEAN_ANSWER * 3
    chunks = [text[i : i + size] for i in range(0, len(text), size)]
    rules = engine_rules()
    direct = per_delta_direct(rules, chunks)
    assert any(direct[0])  # the stream does trip rules mid-stream
    assert per_delta_engine(rules, chunks) == direct
    assert per_delta_engine(rules, chunks, skip=True) == direct
    # A rule that joins the state's parts on every delta does not throw the slicing off.
    rules.append(GuardrailRule("zebras", _reads_content))
    assert per_delta_engine(rules, chunks) == per_delta_direct(rules, chunks)


def test_next_release_lets_a_caller_skip_most_deltas() -> None:
    run = GuardrailEngine(Guardrails.recommended()).start()
    state = State()
    calls = 0
    for word in ["alpha "] * 1000:
        state.append(word)
        if state.content_length >= run.next_release:
            calls += 1
            assert run.check(state, word) is None
    assert 1 < calls <= 1 + 6000 // 128
    # Every rule that runs on deltas batches them, except a custom rule: that one runs always.
    assert (
        GuardrailEngine([*Guardrails.strict(), GuardrailRule("bang", _bang)]).start().next_release
        == 0
    )


def test_rules_that_need_no_deltas_are_never_called() -> None:
    calls: list[str] = []

    class Idle:
        batch = NO_DELTAS
        max_gap: float | None = None

        def check_delta(self, state: State, delta: str) -> list[GuardrailViolation]:
            calls.append(delta)
            return []

        def check_final(self, state: State) -> list[GuardrailViolation]:
            return []

        def check_idle(self, state: State, gap: float) -> list[GuardrailViolation]:
            return []

    class IdleRule(GuardrailRule):
        def new_checker(self) -> RuleChecker:
            return Idle()

    run = GuardrailEngine([stall_rule(), IdleRule("idle")]).start()
    assert run.streaming and run.next_release == sys.maxsize
    state = State()
    for delta in ["a", "b"]:
        state.append(delta)
        assert run.check(state, delta) is None
    assert calls == []


async def test_engine_with_an_async_custom_rule() -> None:
    async def late(state: State, delta: str) -> list[GuardrailViolation]:
        return [GuardrailViolation(rule="late", message="x")] if "x" in delta else []

    run = GuardrailEngine([json_rule(), GuardrailRule("late", late), pattern_rule()]).start()
    state = State()
    found: list[str] = []
    for delta in ["I cannot ", "help with that. " * 10, "x", "{]"]:
        state.append(delta)
        result = run.check_delta(state, delta)
        found += [v.rule for v in (result if isinstance(result, list) else await result)]
    found += [v.rule for v in await run.check_final(state)]
    assert found == ["pattern", "late"]


class TestZeroOutputReadsNoMoreThanItMust:
    def test_whitespace_over_many_parts(self) -> None:
        assert [v.rule for v in violations(zero_output_rule(), " \n\t " * 50, size=3)] == [
            "zero_output"
        ]

    def test_text_in_a_late_part_or_after_empty_parts(self) -> None:
        assert stream(zero_output_rule(), ["", "  ", "", "\n", "ok"]) == ([], [])

    def test_the_content_is_not_joined(self) -> None:
        state = State()
        for delta in ["a", "b", "c"]:
            state.append(delta)
        assert zero_output_rule().new_checker().check_final(state) == ()
        assert state._parts == ["a", "b", "c"]


# --------------------------------------------------------------------------------------------
# The built-in patterns' factored alternation


def test_factoring_keeps_what_cannot_be_shared() -> None:
    assert _factored(["a(?<!x)b", "d", "a(?<!x)c"]) == "a(?<!x)(?:b|c)|d"
    assert _factored(["ab|c", "ad"]) == "ab|c|ad"  # a top-level bar: left alone
    assert _factored(["x{2}", "xb"]) == "x{2}|xb"  # no literal first character
    assert _factored([r"\<a", "<b"]) == r"\<a|<b"  # spelled differently: nothing shared
    assert _factored(["ab", "a"]) == "ab|a"  # nothing may be left empty
    assert _factored(["ab", "c", "ad"]) == "a(?:b|d)|c"


factor_texts = st.one_of(
    st.lists(
        st.sampled_from(
            [
                *FRAGMENTS,
                "i'm sorry, but i can't help",
                "i will not comply with the request",
                "i have to respectfully decline",
                "as a large language model",
                "i am just an ai",
                "i do not have feelings",
                "my training data",
                "<<sys>>",
                "<end_of_turn>",
                "[/inst]",
                "[insert name]",
                "[name]",
                "{{ a.b }}",
                "i",
                "as",
                "my",
                "’",
                "  ",
            ]
        ),
        max_size=40,
    ).map(lambda parts: "".join(parts).lower()),
    st.text(alphabet="iasmy<[{}]|’' \n\t.aio", max_size=200),
)


@given(text=factor_texts)
@settings(max_examples=300, deadline=None)
def test_factored_builtins_match_like_the_flat_alternation(text: str) -> None:
    for categories in (None, ("meta",), ("leak", "placeholder")):
        factored = _builtin_patterns(categories=categories).regex
        flat = re.compile(
            "|".join(
                pattern
                for name, patterns, _, _ in _CATEGORIES
                if categories is None or name in categories
                for pattern in patterns
            )
        )
        assert factored.pattern != flat.pattern
        for start in (0, len(text) // 2):
            assert [m.span() for m in factored.finditer(text, start)] == [
                m.span() for m in flat.finditer(text, start)
            ]
