"""The chaos grammar: model strings and X-L0-Chaos headers parsed into scenarios and plans."""

from __future__ import annotations

import pytest

from l0.chaos import ChaosGrammarError, Chunking, Content, Fault, Scenario, parse_scenario
from l0.chaos.content import SeededRandom, chunk_text, compose_reply, seeded_text


def test_plain_model_has_no_faults() -> None:
    s = parse_scenario("gpt-4o-mini")
    assert s == Scenario(model="gpt-4o-mini")
    assert s.plan(0).status is None
    assert s.plan(0).end is None


def test_faults_after_plus_and_header_compose_in_order() -> None:
    s = parse_scenario("gpt-4o-mini+drop@12", "ttfb=0.2, stall@3=0.5")
    assert s.model == "gpt-4o-mini"
    assert s.faults == (
        Fault("drop", at=12),
        Fault("ttfb", value=0.2),
        Fault("stall", at=3, value=0.5),
    )
    assert s.spec == "drop@12,ttfb=0.2, stall@3=0.5"
    plan = s.plan(0)
    assert plan.end == ("drop", 12)
    assert plan.ttfb == 0.2
    assert plan.stalls == ((3, 0.5),)


def test_header_alone_applies_to_a_plain_model() -> None:
    s = parse_scenario("gpt-4o", "status=503")
    assert s.model == "gpt-4o"
    assert s.plan(0).status == 503


def test_directives_only_default_the_base_model() -> None:
    assert parse_scenario("+empty").model == "chaos"


def test_times_suffix_limits_a_fault_to_the_first_requests() -> None:
    s = parse_scenario("m+status=503x2,delay=0.01")
    assert [s.plan(i).status for i in range(4)] == [503, 503, None, None]
    assert all(s.plan(i).delay == 0.01 for i in range(4))


def test_first_sets_the_default_window_for_every_fault_without_one() -> None:
    s = parse_scenario("m+drop@3,ttfb=0.1x5,first=1")
    assert s.faults == (Fault("drop", at=3, first=1), Fault("ttfb", value=0.1, first=5))


def test_first_listed_fault_of_a_kind_wins_which_makes_schedules() -> None:
    s = parse_scenario("m+status=503x2,status=429")
    assert [s.plan(i).status for i in range(4)] == [503, 503, 429, 429]


def test_earliest_ending_wins() -> None:
    assert parse_scenario("m+cut@9,drop@4,fail@6").plan(0).end == ("drop", 4)


def test_positions_default_to_zero_except_truncate() -> None:
    s = parse_scenario("m+stall,drop,truncate")
    plan = s.plan(0)
    assert plan.stalls == ((0, None),)
    assert plan.end == ("drop", 0)
    assert plan.truncate
    assert plan.truncate_at is None


def test_stall_without_seconds_never_ends() -> None:
    assert parse_scenario("m+stall@5").plan(0).stalls == ((5, None),)


def test_drip_means_char_chunks_with_a_delay() -> None:
    plan = parse_scenario("m+drip=0.05").plan(0)
    assert plan.char_chunks
    assert plan.delay == 0.05


def test_content_settings() -> None:
    assert parse_scenario("m+words=40").content == Content(kind="words", words=40)
    assert parse_scenario("m+json").content == Content(kind="json", json_keys=3)
    assert parse_scenario("m+json=5").content == Content(kind="json", json_keys=5)
    assert parse_scenario("m+tool").content == Content(kind="tool", tool=None)
    assert parse_scenario("m+tool=get_weather").content.tool == "get_weather"


def test_text_is_percent_decoded_and_may_end_like_a_times_suffix() -> None:
    s = parse_scenario("m+text=Hello%2C%20world%2B1x2")
    assert s.content == Content(kind="text", text="Hello, world+1x2")
    assert s.faults == ()


def test_the_same_content_directive_twice_is_an_override() -> None:
    assert parse_scenario("m+words=5", "words=9").content.words == 9


def test_different_content_directives_conflict() -> None:
    with pytest.raises(ChaosGrammarError, match="conflicting content directives"):
        parse_scenario("m+text=hi,json")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", Chunking("words", 3, 3)),
        ("1-4", Chunking("words", 1, 4)),
        ("2w", Chunking("words", 2, 2)),
        ("8c", Chunking("chars", 8, 8)),
        ("2-5c", Chunking("chars", 2, 5)),
    ],
)
def test_chunk_setting(value: str, expected: Chunking) -> None:
    assert parse_scenario(f"m+chunk={value}").chunking == expected


def test_other_settings() -> None:
    s = parse_scenario("m+seed=7,scenario=my%20test,retry=2.5")
    assert (s.seed, s.scenario_id, s.retry_after) == (7, "my test", 2.5)


def test_content_faults_in_the_plan() -> None:
    plan = parse_scenario("m+empty,repeat=4,asai,badsse@2,badsse@1").plan(0)
    assert (plan.empty, plan.repeat, plan.asai, plan.badsse) == (True, 4, True, (1, 2))
    assert parse_scenario("m+repeat").plan(0).repeat == 12


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        ("m+dorp@3", "unknown chaos directive 'dorp'"),
        ("m+", "no directives"),
        ("m+drop@3,,ttfb=1", "empty directive"),
        ("m+drop@x", "whole number"),
        ("m+ttfb=soon", "seconds"),
        ("m+ttfb=-1", "seconds"),
        ("m+ttfb=nan", "seconds"),
        ("m+ttfb@3=1", "takes no @K"),
        ("m+empty=1", "takes no value"),
        ("m+status=200", "outside 400..599"),
        ("m+status", "whole number"),
        ("m+status=503x0", "N >= 1"),
        ("m+words=-1", "whole number"),
        ("m+chunk=0", "1 <= N <= M"),
        ("m+chunk=4-2", "1 <= N <= M"),
        ("m+chunk=big", "chunk is"),
        ("m+text", "needs a value"),
        ("m+tool=no spaces", "tool name"),
        ("m+scenario=", "needs a name"),
    ],
)
def test_bad_directives_say_why(model: str, reason: str) -> None:
    with pytest.raises(ChaosGrammarError, match=reason):
        parse_scenario(model)


def test_unknown_directive_error_lists_the_known_ones() -> None:
    with pytest.raises(ChaosGrammarError) as info:
        parse_scenario("m", "explode")
    assert "drop" in str(info.value)
    assert "words" in str(info.value)


# --- content ----------------------------------------------------------------------------


def test_chunks_join_back_to_the_exact_text() -> None:
    text = "  Hello,\n\nworld!  tabs\there and trailing space "
    for chunking in (Chunking(), Chunking("chars", 1, 3), Chunking("words", 2, 2)):
        assert "".join(chunk_text(text, chunking, SeededRandom(1))) == text


def test_seeded_text_is_deterministic_and_has_the_requested_length() -> None:
    a = seeded_text(SeededRandom(42), 30)
    assert a == seeded_text(SeededRandom(42), 30)
    assert a != seeded_text(SeededRandom(43), 30)
    assert len(a.split()) == 30


def _reply(model: str, prompt: str = "hi") -> str:
    s = parse_scenario(model)
    r = compose_reply(
        s, s.plan(0), seed=0, prompt=[prompt], last_user=prompt, tools=[], max_tokens=None
    )
    return r.text


def test_same_prompt_same_text_whatever_the_faults() -> None:
    assert _reply("m") == _reply("m+drop@3,ttfb=1") != _reply("m", prompt="other")


def test_echo_prefix_replies_verbatim() -> None:
    assert _reply("m", prompt="echo: exact, text") == "exact, text"


def test_asai_and_repeat_change_the_text() -> None:
    assert _reply("m+asai").startswith("As an AI language model")
    looped = _reply("m+repeat=3,words=8")
    phrase = " ".join(looped.split()[:8])
    assert looped == " ".join([phrase] * 3)
