"""`voxdesk bench --answers`: are everyday questions answered right, and briefly enough to hear?

Typed questions go through the engine's text path (skills in front, the configured LLM
behind, the reply spoken by the TTS as in the window), each in a new conversation. A
factual reply is right when it contains the expected words; open prompts have no right
answer and are judged for spoken length only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from app.commands.bench_questions import FACTUAL_QUESTIONS, OPEN_PROMPTS, FactualQuestion
from app.commands.bench_run import ask_typed
from app.commands.bench_stats import answered_by, is_right, length_summary, sentence_count, word_count
from app.engine.events import TurnFinished
from app.store.paths import AppPaths
from app.store.settings import Settings

#: The bars of issue 14 the answers check is judged against.
RIGHT_BAR = 0.80
SENTENCES_BAR = 2.0


def judge_answers(
    factual: Sequence[tuple[FactualQuestion, TurnFinished]],
    open_prompts: Sequence[tuple[str, TurnFinished]],
    skills_name: str | None,
) -> dict[str, Any]:
    """The answers check's figures from the finished turns (pure: tested on its own)."""
    rows: list[dict[str, Any]] = []
    for q, t in factual:
        reply = t.reply_text
        rows.append(
            {
                "question": q.text,
                "expect": q.expect,
                "reply": reply,
                "right": bool(reply) and not t.error and is_right(reply, q.expect),
                "by": answered_by(t, skills_name),
                "error": t.error,
                "sentences": sentence_count(reply),
                "words": word_count(reply),
            }
        )
    right = sum(r["right"] for r in rows)
    opens: list[dict[str, Any]] = [
        {
            "prompt": p,
            "reply": t.reply_text,
            "by": answered_by(t, skills_name),
            "error": t.error,
            "sentences": sentence_count(t.reply_text),
        }
        for p, t in open_prompts
    ]
    # The model's length only: a failed turn's apology or the skills' fallback text
    # (the LLM timed out) says nothing about how long the model talks.
    open_length = length_summary([o["reply"] for o in opens if not o["error"] and o["by"] == "llm"])
    mean_open = open_length["mean_sentences"]
    return {
        "factual": {
            "asked": len(rows),
            "right": right,
            "share_right": round(right / len(rows), 3) if rows else None,
            "length": length_summary([r["reply"] for r in rows if not r["error"]]),
            "failed": [r for r in rows if not r["right"]],
        },
        "open": {"asked": len(opens), "length": open_length, "replies": opens},
        "bars": {
            "share_right": {"bar": RIGHT_BAR, "met": bool(rows) and right / len(rows) >= RIGHT_BAR},
            "open_mean_sentences": {
                "bar": SENTENCES_BAR,
                "met": mean_open is not None and mean_open <= SENTENCES_BAR,
            },
        },
        "rows": rows,
    }


async def run_answers(settings: Settings, paths: AppPaths) -> dict[str, Any]:
    factual = list(FACTUAL_QUESTIONS)
    t0 = time.monotonic()
    run = await ask_typed(settings, paths, [q.text for q in factual] + list(OPEN_PROMPTS))
    turns = run.turns
    report = judge_answers(
        list(zip(factual, turns[: len(factual)], strict=True)),
        list(zip(OPEN_PROMPTS, turns[len(factual) :], strict=True)),
        run.skills_name,
    )
    report["wall_s"] = round(time.monotonic() - t0, 1)
    return report


def answers_text(report: dict[str, Any]) -> list[str]:
    """The answers check as lines for a terminal."""
    f, o, bars = report["factual"], report["open"], report["bars"]
    fl, ol = f["length"], o["length"]
    mark = {True: "met", False: "NOT met"}
    lines = [
        f"factual questions: {f['right']} of {f['asked']} right ({_pct(f['share_right'])})"
        f"  [bar ≥ {RIGHT_BAR:.0%}: {mark[bars['share_right']['met']]}]",
        f"  spoken length: median {fl['median_sentences']} sentences, {fl['median_words']} words"
        f" (longest {fl['max_words']} words)",
        f"open prompts: {o['asked']}, mean {ol['mean_sentences']} sentences, median {ol['median_sentences']},"
        f" median {ol['median_words']} words  [bar ≤ {SENTENCES_BAR:g} sentences on average:"
        f" {mark[bars['open_mean_sentences']['met']]}]",
    ]
    if f["failed"]:
        lines.append("failed:")
        lines += [f"  {r['question']}  (want /{r['expect']}/)  → {r['error'] or repr(r['reply'])}" for r in f["failed"]]
    lines.append("open replies:")
    lines += [
        f"  {x['prompt']}  → {x['error'] or repr(x['reply'])}" + ("" if x["by"] == "llm" else "  (not the LLM's)")
        for x in o["replies"]
    ]
    return lines


def _pct(share: float | None) -> str:
    return "n/a" if share is None else f"{share:.0%}"
