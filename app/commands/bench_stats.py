"""Figures of `voxdesk bench`: percentiles, the skills/LLM split, spoken length, keyword checks.

Pure functions over finished turns and reply texts, so the arithmetic is tested on its
own (tests/unit/test_bench_stats.py) and the bench itself only runs and prints.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from typing import Any

from app.engine.events import TurnFinished

#: The stages a voice-to-voice time is made of, as the engine names them, with the
#: words the report uses. Every one but the endpoint wait is counted from the moment
#: the turn started, as the engine's timings are.
KEY_STAGES = (
    ("vad_endpoint", "endpoint wait"),
    ("stt", "STT wait"),
    ("llm_first_token", "LLM first token"),
    ("tts_first_audio", "TTS first audio"),
)

#: The group of questions the local skills answer (not "skills": that is a provider's
#: name, and app/ keys nothing by a provider's name).
LOCAL = "local_skills"

_SENTENCE_END = re.compile(r"[.!?…]+(?=\s|$)")
_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")


def percentile_ms(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) of values in seconds, in milliseconds (linear interpolation)."""
    if not values:
        return None
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return round((s[lo] + (s[hi] - s[lo]) * (pos - lo)) * 1000, 1)


def answered_by(turn: TurnFinished, skills_name: str | None) -> str:
    """LOCAL when the local skills gave the reply, else "llm" (also when the LLM failed)."""
    return LOCAL if skills_name is not None and turn.providers.get("llm") == skills_name else "llm"


def split_turns(
    asked: Sequence[str], turns: Sequence[TurnFinished], skills_name: str | None
) -> dict[str, list[TurnFinished]]:
    """Turns grouped by the question asked (LOCAL or "open", one per turn) and who answered.

    LOCAL: skills questions the skills answered; "llm": open questions the LLM
    answered; "other": the rest (a misheard skills question the LLM answered, an open
    question the skills answered because the LLM failed, a question nobody heard), kept
    out of the figures of both paths and listed instead."""
    if len(asked) != len(turns):
        raise ValueError(f"{len(asked)} questions asked but {len(turns)} turns")
    groups: dict[str, list[TurnFinished]] = {LOCAL: [], "llm": [], "other": []}
    for group, t in zip(asked, turns, strict=True):
        by = answered_by(t, skills_name) if t.user_text else None
        if group == LOCAL and by == LOCAL:
            groups[LOCAL].append(t)
        elif group == "open" and by == "llm":
            groups["llm"].append(t)
        else:
            groups["other"].append(t)
    return groups


def latency_summary(turns: Sequence[TurnFinished]) -> dict[str, Any]:
    """Voice-to-voice and per-stage p50/p95 over the turns of one group."""
    v2v = [t.voice_to_voice_s for t in turns if t.voice_to_voice_s is not None]
    stages: dict[str, dict[str, float | None]] = {}
    for key in sorted({k for t in turns for k in t.timings}):
        vals = [t.timings[key] for t in turns if key in t.timings]
        stages[key] = {"p50_ms": percentile_ms(vals, 0.5), "p95_ms": percentile_ms(vals, 0.95)}
    return {
        "turns": len(turns),
        "measured": len(v2v),
        "voice_to_voice": {
            "p50_ms": percentile_ms(v2v, 0.5),
            "p95_ms": percentile_ms(v2v, 0.95),
            "mean_ms": round(statistics.mean(v2v) * 1000, 1) if v2v else None,
        },
        "stages": stages,
        "errors": [t.error for t in turns if t.error],
    }


def per_turn(cpu_s: float, turns: int) -> float | None:
    """CPU-seconds per turn (self and worker processes), or None with no turns."""
    return round(cpu_s / turns, 2) if turns else None


def hit_rate(used: int | None, discarded: int | None) -> float | None:
    """Share of speculative replies that were played; None when not counted or none started."""
    if used is None or discarded is None or used + discarded == 0:
        return None
    return round(used / (used + discarded), 3)


# -- answers -------------------------------------------------------------------------
def sentence_count(text: str) -> int:
    """Spoken sentences: runs of . ! ? … followed by a space or the end; a trailing
    clause without a full stop counts too. Decimal points ("3.5") are not ends."""
    text = text.strip()
    if not text:
        return 0
    ends = list(_SENTENCE_END.finditer(text))
    tail = text[ends[-1].end() :].strip() if ends else text
    return len(ends) + (1 if _WORD.search(tail) else 0)


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


def is_right(reply: str, expect: str) -> bool:
    """The reply contains the expected words (a case-insensitive regular expression)."""
    return re.search(expect, reply, re.IGNORECASE) is not None


def median_or_none(values: Sequence[float]) -> float | None:
    return round(float(statistics.median(values)), 1) if values else None


def length_summary(replies: Sequence[str]) -> dict[str, float | None]:
    sentences = [sentence_count(r) for r in replies]
    words = [word_count(r) for r in replies]
    return {
        "median_sentences": median_or_none(sentences),
        "mean_sentences": round(statistics.mean(sentences), 2) if sentences else None,
        "median_words": median_or_none(words),
        "max_words": max(words) if words else None,
    }
