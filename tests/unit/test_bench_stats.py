"""The bench's arithmetic: percentiles, the skills/LLM split, spoken length, keyword checks."""

from __future__ import annotations

import re

import pytest

from app.commands.bench_questions import FACTUAL_QUESTIONS, OPEN_QUESTIONS, SKILLS_QUESTIONS
from app.commands.bench_stats import (
    LOCAL,
    answered_by,
    hit_rate,
    is_right,
    latency_summary,
    length_summary,
    percentile_ms,
    sentence_count,
    split_turns,
    word_count,
)
from app.engine.events import TurnFinished


def turn(user: str = "q", by: str = "llama-cpp", v2v: float | None = 0.5, **timings: float) -> TurnFinished:
    return TurnFinished(
        user_text=user,
        reply_text="r",
        interrupted=False,
        timings=dict(timings),
        voice_to_voice_s=v2v,
        providers={"llm": by, "tts": "piper"},
    )


def test_percentiles_interpolate_between_samples_in_ms() -> None:
    vals = [0.1, 0.2, 0.3, 0.4, 1.0]
    assert percentile_ms(vals, 0.5) == 300.0
    assert percentile_ms(vals, 0.95) == pytest.approx(880.0)
    assert percentile_ms([0.25], 0.95) == 250.0
    assert percentile_ms([], 0.5) is None


def test_a_turn_is_the_skills_only_when_the_skills_gave_the_reply() -> None:
    assert answered_by(turn(by="skills"), "skills") == LOCAL
    assert answered_by(turn(by="llama-cpp"), "skills") == "llm"
    # No skills in this session: every reply came from the LLM.
    assert answered_by(turn(by="skills"), None) == "llm"


def test_split_keeps_each_path_to_its_own_questions_and_lists_the_rest() -> None:
    asked = [LOCAL, "open", LOCAL, "open", "open"]
    turns = [
        turn(by="skills", v2v=0.3),
        turn(by="llama-cpp", v2v=0.7),
        turn(by="llama-cpp", v2v=2.0),  # a misheard sum the LLM answered
        turn(by="skills", v2v=0.2),  # the LLM failed and the skills fell in
        turn(user="", v2v=None),  # nobody heard it
    ]
    groups = split_turns(asked, turns, "skills")
    assert groups[LOCAL] == [turns[0]]
    assert groups["llm"] == [turns[1]]
    assert groups["other"] == turns[2:]


def test_split_refuses_questions_and_turns_that_do_not_pair() -> None:
    with pytest.raises(ValueError, match="2 questions asked but 1 turns"):
        split_turns([LOCAL, "open"], [turn()], "skills")


def test_latency_summary_reports_each_stage_and_only_measured_turns() -> None:
    turns = [
        turn(v2v=0.6, vad_endpoint=0.3, stt=0.1, llm_first_token=0.2),
        turn(v2v=0.8, vad_endpoint=0.3, stt=0.3, llm_first_token=0.4, tts_first_audio=0.5),
        turn(v2v=None),
    ]
    s = latency_summary(turns)
    assert (s["turns"], s["measured"]) == (3, 2)
    assert s["voice_to_voice"]["p50_ms"] == 700.0
    assert s["stages"]["stt"]["p50_ms"] == 200.0
    assert s["stages"]["tts_first_audio"] == {"p50_ms": 500.0, "p95_ms": 500.0}
    assert set(s["stages"]) == {"vad_endpoint", "stt", "llm_first_token", "tts_first_audio"}


def test_hit_rate_is_unknown_until_counted() -> None:
    assert hit_rate(None, None) is None
    assert hit_rate(0, 0) is None
    assert hit_rate(3, 1) == 0.75


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("", 0),
        ("Paris.", 1),
        ("The capital of France is Paris. It is on the Seine!", 2),
        ("Why don't scientists trust atoms? Because they make up everything.", 2),
        ("It is about 384,400 kilometres, or 3.8 times ten to the fifth", 1),
        ("Try pasta... or a curry?", 2),
        ("Well", 1),
        ("Done. ", 1),
    ],
)
def test_sentences_are_counted_as_they_are_heard(text: str, sentences: int) -> None:
    assert sentence_count(text) == sentences


def test_words_keep_contractions_and_numbers_whole() -> None:
    assert word_count("Don't worry, it's 42 — twenty-four hours.") == 6
    assert word_count("") == 0


def test_length_summary_medians() -> None:
    s = length_summary(["Paris.", "It is Tokyo. Nice city.", "Eight legs"])
    assert s["median_sentences"] == 1.0
    assert s["mean_sentences"] == pytest.approx(1.33, abs=0.01)
    assert s["median_words"] == 2.0
    assert s["max_words"] == 5
    assert length_summary([])["median_words"] is None


@pytest.mark.parametrize(
    ("reply", "expect", "right"),
    [
        ("The capital of France is Paris.", r"\bparis\b", True),
        ("PARIS", r"\bparis\b", True),
        ("Comparison shopping.", r"\bparis\b", False),
        ("A spider has eight legs.", r"\beight\b|\b8\b", True),
        ("A spider has 8 legs.", r"\beight\b|\b8\b", True),
        ("A spider has 18 legs.", r"\beight\b|\b8\b", False),
        ("It was written by William Shakespeare.", "shakespeare", True),
    ],
)
def test_a_reply_is_right_when_it_holds_the_expected_words(reply: str, expect: str, right: bool) -> None:
    assert is_right(reply, expect) is right


def test_the_question_sets_are_big_enough_and_their_patterns_compile() -> None:
    assert len(FACTUAL_QUESTIONS) >= 30
    assert len({q.text for q in FACTUAL_QUESTIONS}) == len(FACTUAL_QUESTIONS)
    for q in FACTUAL_QUESTIONS:
        re.compile(q.expect)
        # A pattern matching its own question would pass a reply that only repeats it.
        assert not is_right(q.text, q.expect), q.text
    assert SKILLS_QUESTIONS and OPEN_QUESTIONS
