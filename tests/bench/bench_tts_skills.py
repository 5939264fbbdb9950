"""Piper first-chunk latency and real-time factor; skills answer time.

Run: `.venv/bin/python -m tests.bench.bench_tts_skills [--runs N] [--threads T] [--json]`.

Bars (issue 3, 2-core CI-class machine): Piper first audio chunk for a short
sentence ≤ 150 ms, real-time factor ≤ 0.25; skills answer ≤ 50 ms. Figures on a
machine shared with other work are noisy: quote them with the machine and load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from typing import Any

from app.plugin.provider_api import ChatMessage
from providers.llm.skills import SkillsLLM
from providers.tts.piper import PiperSettings, PiperTTS

SHORT = "The weather is nice today."
LONG = (
    "Tomorrow will be sunny in the morning, with clouds later in the afternoon. "
    "The high will be twenty one degrees and the wind will stay light. "
    "In the evening there is a small chance of rain, so take an umbrella if you go out. "
    "The weekend looks warmer, and Sunday should be the best day for a walk."
)
SKILL_QUESTIONS = [
    "what time is it",
    "what's the date today",
    "what is 17 times 23",
    "what's 15% of 80",
    "what is seventeen times twenty three",
    "repeat after me the quick brown fox",
    "what can you do",
    "hello",
    "thank you",
    "tell me about the history of Rome",
]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def bench_piper(runs: int, threads: int) -> dict[str, Any]:
    tts = PiperTTS(PiperSettings.model_validate({"threads": threads}))
    t0 = time.perf_counter()
    await tts.warmup()
    load_s = time.perf_counter() - t0

    first_ms: list[float] = []
    for _ in range(runs):
        t0 = time.perf_counter()
        async for _chunk in tts.synthesize(SHORT):
            first_ms.append((time.perf_counter() - t0) * 1000)
            break

    rtfs: list[float] = []
    long_first_ms: list[float] = []
    for _ in range(max(1, runs // 4)):
        t0 = time.perf_counter()
        audio_s = 0.0
        first: float | None = None
        async for chunk in tts.synthesize(LONG):
            first = first if first is not None else time.perf_counter() - t0
            audio_s += chunk.duration_s
        rtfs.append((time.perf_counter() - t0) / audio_s)
        long_first_ms.append((first or 0.0) * 1000)
    await tts.aclose()
    return {
        "piper_load_s": round(load_s, 2),
        "piper_first_chunk_short_ms_p50": round(statistics.median(first_ms), 1),
        "piper_first_chunk_short_ms_p95": round(_pct(first_ms, 0.95), 1),
        "piper_first_chunk_paragraph_ms_p50": round(statistics.median(long_first_ms), 1),
        "piper_rtf_p50": round(statistics.median(rtfs), 3),
        "piper_rtf_max": round(max(rtfs), 3),
    }


async def bench_skills(runs: int) -> dict[str, Any]:
    skills = SkillsLLM()
    times_ms: list[float] = []
    for _ in range(runs):
        for question in SKILL_QUESTIONS:
            t0 = time.perf_counter()
            reply = "".join([d async for d in skills.chat([ChatMessage("user", question)])])
            times_ms.append((time.perf_counter() - t0) * 1000)
            assert reply
    await skills.aclose()
    return {
        "skills_answer_ms_p50": round(statistics.median(times_ms), 3),
        "skills_answer_ms_p95": round(_pct(times_ms, 0.95), 3),
        "skills_answer_ms_max": round(max(times_ms), 3),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    result = {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)}
    result.update(await bench_skills(args.runs * 5))
    result.update(await bench_piper(args.runs, args.threads))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="Piper ONNX threads (0 = automatic)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(result))
        return
    bars = {
        "piper_first_chunk_short_ms_p50": ("≤ 150 ms", 150),
        "piper_rtf_p50": ("≤ 0.25", 0.25),
        "skills_answer_ms_p95": ("≤ 50 ms", 50),
    }
    for key, value in result.items():
        bar = bars.get(key)
        verdict = "" if bar is None else f"   bar {bar[0]}: {'PASS' if value <= bar[1] else 'MISS'}"
        print(f"{key:40s} {value}{verdict}")


if __name__ == "__main__":
    main()
