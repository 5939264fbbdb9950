"""The bench's verdicts and tables: right answers, failures listed, bars met or not, the plan."""

from __future__ import annotations

from typing import Any

from app.commands.bench import question_plan, voice_table
from app.commands.bench_answers import answers_text, judge_answers
from app.commands.bench_questions import OPEN_QUESTIONS, SKILLS_QUESTIONS, FactualQuestion
from app.commands.bench_stats import LOCAL, latency_summary
from app.engine.events import TurnFinished


def reply(text: str, by: str = "llama-cpp", error: str | None = None) -> TurnFinished:
    return TurnFinished(
        user_text="q",
        reply_text=text,
        interrupted=False,
        timings={},
        voice_to_voice_s=None,
        providers={"llm": by},
        error=error,
    )


PARIS = FactualQuestion("What is the capital of France?", r"\bparis\b")
SPIDER = FactualQuestion("How many legs does a spider have?", r"\beight\b|\b8\b")
SUM = FactualQuestion("What is twelve plus thirty?", r"\b42\b")


def test_answers_are_judged_and_the_failures_listed_with_their_reply() -> None:
    report = judge_answers(
        [
            (PARIS, reply("The capital of France is Paris.")),
            (SPIDER, reply("A spider has four legs.")),
            (SUM, reply("12 plus 30 is 42.", by="skills")),
        ],
        [("Tell me a joke.", reply("Why did the chicken cross the road? To get to the other side."))],
        "skills",
    )
    f = report["factual"]
    assert (f["asked"], f["right"], f["share_right"]) == (3, 2, 0.667)
    assert [r["question"] for r in f["failed"]] == [SPIDER.text]
    assert f["failed"][0]["reply"] == "A spider has four legs."
    assert [r["by"] for r in report["rows"]] == ["llm", "llm", LOCAL]
    assert report["bars"]["share_right"]["met"] is False
    assert report["open"]["length"]["mean_sentences"] == 2.0
    assert report["bars"]["open_mean_sentences"]["met"] is True
    text = "\n".join(answers_text(report))
    assert "2 of 3 right (67%)" in text and "NOT met" in text
    assert "How many legs does a spider have?" in text and "four legs" in text


def test_a_failed_turn_is_wrong_even_when_its_apology_names_the_answer() -> None:
    report = judge_answers([(PARIS, reply("Sorry, Paris is not reachable", error="llm: TIMEOUT"))], [], "skills")
    assert report["factual"]["right"] == 0
    assert report["factual"]["failed"][0]["error"] == "llm: TIMEOUT"
    assert report["open"]["length"]["mean_sentences"] is None
    assert report["bars"]["open_mean_sentences"]["met"] is False


def test_open_length_counts_the_model_s_replies_only() -> None:
    fallback = "I can tell the time and date. For anything else I need a language model. Open Settings."
    report = judge_answers(
        [],
        [
            ("Tell me a joke.", reply("Why not? Because.")),
            ("What should I cook tonight?", reply(fallback, by="skills")),
            ("Give me a tip.", reply("", error="llm.llama-cpp: TIMEOUT: the turn ran out of time")),
        ],
        "skills",
    )
    assert report["open"]["length"]["mean_sentences"] == 2.0
    text = "\n".join(answers_text(report))
    assert "(not the LLM's)" in text and "TIMEOUT" in text


def test_the_plan_alternates_skills_and_open_questions() -> None:
    plan = question_plan(len(OPEN_QUESTIONS) + 1)
    assert [g for g, _ in plan[:4]] == [LOCAL, "open", LOCAL, "open"]
    assert [t for g, t in plan if g == LOCAL][: len(SKILLS_QUESTIONS)] == list(SKILLS_QUESTIONS)
    assert [t for g, t in plan if g == "open"][-1] == OPEN_QUESTIONS[0]
    assert len(plan) == 2 * (len(OPEN_QUESTIONS) + 1)


def _group(v2v: list[float]) -> dict[str, object]:
    return latency_summary(
        [
            TurnFinished(
                user_text="q",
                reply_text="r",
                interrupted=False,
                timings={"vad_endpoint": 0.3, "stt": 0.1},
                voice_to_voice_s=v,
                providers={"llm": "x"},
            )
            for v in v2v
        ]
    )


def test_the_voice_table_shows_both_groups_against_their_bars_and_the_hit_rate() -> None:
    report: dict[str, Any] = {
        "machine": {"cpu": "AMD EPYC", "cores": 2, "load_average_1m": 1.5},
        "questions_voice": "espeak-ng en-us",
        "providers": {"llm": "llama-cpp"},
        "peak_rss_mb": 400.0,
        "peak_rss_children_mb": 600.0,
        "telemetry_overhead_percent": None,
        "telemetry_on": {
            "groups": {LOCAL: _group([0.5, 0.52]), "llm": _group([0.7, 1.5])},
            "speculative": {"used": None, "discarded": None, "hit_rate": None},
            "other": [
                {
                    "asked": LOCAL,
                    "user": "What is the name today?",
                    "by": "llama-cpp",
                    "reply": "Sorry.",
                    "error": None,
                    "voice_to_voice_ms": 900.0,
                }
            ],
            "errors": [],
        },
    }
    lines = voice_table(report)
    skills = next(line for line in lines if line.startswith("skills"))
    llm = next(line for line in lines if line.startswith("LLM"))
    assert "510/519" in skills and "p50 ≤ 550 met" in skills
    assert "1100/1460" in llm and "p50 ≤ 800 NOT met" in llm and "p95 ≤ 1200 NOT met" in llm
    assert "300/300" in llm  # the endpoint wait column
    assert any(line.startswith("speculative replies: n/a") for line in lines)
    assert any("What is the name today?" in line for line in lines)
    left_out = next(line for line in lines if line.startswith("left out"))
    assert "0 open questions the skills answered" in left_out and "1 skills questions the LLM" in left_out
    report["telemetry_on"]["speculative"] = {"used": 3, "discarded": 1, "hit_rate": 0.75}
    assert any(line == "speculative replies: 75% (3 used, 1 discarded)" for line in voice_table(report))
    report["telemetry_on"]["turns"] = [{"speculative": True}, {"speculative": False}, {"speculative": True}]
    assert "; 2 of 3 replies started before the endpoint" in "\n".join(voice_table(report))
