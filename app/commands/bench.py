"""`voxdesk bench`: voice-to-voice latency of the real pipeline on this machine.

Questions are spoken by espeak-ng — a voice other than the reply voice, as a user's
is — and streamed into the engine at real-time pace exactly as a microphone would
deliver them. Voice-to-voice runs from the end of the question's speech to the
reply's first sample reaching the sink, and is reported apart for questions the local
skills answer and for open ones the LLM answers. The run is repeated with telemetry
off to show what telemetry costs. `--answers` runs the answers check instead
(app/commands/bench_answers.py), `--turn-taking` the turn-taking bench (bench_turns.py),
`--wake-word` the wake-word bench (bench_wake.py), `--stt` the speech-recognition accuracy
bench that picks the offline default (bench_stt.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from app.commands.bench_machine import cpu_seconds, load_average, machine
from app.commands.bench_questions import OPEN_QUESTIONS, SKILLS_QUESTIONS
from app.commands.bench_run import ask_spoken
from app.commands.bench_speech import QUESTION_VOICE, QUESTION_WPM, synthesise_questions
from app.commands.bench_stats import (
    KEY_STAGES,
    LOCAL,
    hit_rate,
    latency_summary,
    per_turn,
    percentile_ms,
    split_turns,
)
from app.engine.events import TurnFinished
from app.plugin.errors import ErrorCode, VoiceError
from app.store.paths import AppPaths
from app.store.settings import Settings

#: Issue 14's bars: p50/p95 voice-to-voice in ms per group (None: no bar).
BARS: dict[str, dict[str, float | None]] = {
    LOCAL: {"p50_ms": 550.0, "p95_ms": None},
    "llm": {"p50_ms": 800.0, "p95_ms": 1200.0},
}


def question_plan(turns: int) -> list[tuple[str, str]]:
    """(group, text) pairs: skills (LOCAL) and open questions taking turns, `turns` of each."""
    plan = []
    for i in range(max(1, turns)):
        plan.append((LOCAL, SKILLS_QUESTIONS[i % len(SKILLS_QUESTIONS)]))
        plan.append(("open", OPEN_QUESTIONS[i % len(OPEN_QUESTIONS)]))
    return plan


async def _measure(settings: Settings, paths: AppPaths, plan: list[tuple[str, Path]], label: str) -> dict[str, Any]:
    wavs = [w for _, w in plan]
    cpu0, t0 = cpu_seconds(), time.monotonic()
    limit = 60 + 30 * len(wavs)
    try:
        async with asyncio.timeout(limit):
            run = await ask_spoken(settings, paths, wavs)
    except TimeoutError:
        raise VoiceError(
            "bench",
            ErrorCode.TIMEOUT,
            f"the {label.replace('_', ' ')} run took over {limit} s — close other programs, or measure fewer --turns",
        ) from None
    wall = time.monotonic() - t0
    asked = [g for g, _ in plan]
    groups = split_turns(asked, run.turns, run.skills_name)
    v2v_all = [t.voice_to_voice_s for t in run.turns if t.voice_to_voice_s is not None]
    used, discarded = run.speculative or (None, None)
    return {
        "groups": {name: latency_summary(turns) for name, turns in groups.items() if name != "other"},
        "other": [
            {"asked": g, **_turn_row(t)} for g, t in zip(asked, run.turns, strict=True) if _is_in(t, groups["other"])
        ],
        "all_p50_ms": percentile_ms(v2v_all, 0.5),
        "speculative": {"used": used, "discarded": discarded, "hit_rate": hit_rate(used, discarded)},
        "errors": [t.error for t in run.turns if t.error],
        "turns": [_turn_row(t) for t in run.turns],
        "cpu_percent_of_one_core": round(100 * (cpu_seconds() - cpu0) / wall, 1) if wall else None,
        # Loading the models is in it too (a few CPU-seconds, spread over the run's turns).
        "cpu_seconds_per_turn": per_turn(cpu_seconds() - cpu0, len(run.turns)),
    }


def _is_in(turn: TurnFinished, turns: list[TurnFinished]) -> bool:
    return any(turn is t for t in turns)


def _turn_row(t: TurnFinished) -> dict[str, Any]:
    return {
        "user": t.user_text,
        "reply": t.reply_text,
        "by": t.providers.get("llm"),
        "voice_to_voice_ms": round(t.voice_to_voice_s * 1000, 1) if t.voice_to_voice_s is not None else None,
        "error": t.error,
        "stages_ms": {k: round(v * 1000, 1) for k, v in t.timings.items()},
        # Started at the pause before the endpoint (engines with speculative replies).
        "speculative": getattr(t, "speculative", None),
    }


async def run_bench(settings: Settings, paths: AppPaths, turns: int, compare: bool) -> dict[str, Any]:
    started_on = machine()
    with tempfile.TemporaryDirectory(prefix="voxdesk-bench-") as tmp:
        tmpdir = Path(tmp)
        # History of bench turns goes to a scratch data dir, not the user's.
        bench_paths = AppPaths(paths.config_dir, tmpdir / "data", paths.cache_dir)
        plan = question_plan(turns)
        wavs = await synthesise_questions([text for _, text in plan], tmpdir, prefix="q")
        asked = [(group, wav) for (group, _), wav in zip(plan, wavs, strict=True)]
        results: dict[str, Any] = {}
        runs = [("telemetry_on", True)] + ([("telemetry_off", False)] if compare else [])
        for label, enabled in runs:
            s = settings.model_copy(deep=True)
            s.telemetry.enabled = enabled
            s.telemetry.otlp_endpoint = None
            results[label] = await _measure(s, bench_paths, asked, label)
    on = results["telemetry_on"]["all_p50_ms"]
    off = results.get("telemetry_off", {}).get("all_p50_ms")
    return {
        "machine": started_on,
        "providers": {k: settings.stage(k).provider for k in ("vad", "stt", "llm", "tts")},
        "questions_voice": f"espeak-ng {QUESTION_VOICE} at {QUESTION_WPM} words a minute",
        "load_average_1m_after": load_average(),
        "bars": BARS,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_rss_children_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        **results,
        "telemetry_overhead_percent": round(100 * (on - off) / off, 1) if on and off else None,
    }


def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v:.0f}"


def _bar_note(group: str, v2v: dict[str, Any]) -> str:
    notes = []
    for key, label in (("p50_ms", "p50"), ("p95_ms", "p95")):
        bar, got = BARS[group][key], v2v[key]
        if bar is not None:
            ok = got is not None and got <= bar
            notes.append(f"{label} ≤ {bar:.0f} {'met' if ok else 'NOT met'}")
    return ", ".join(notes)


def voice_table(report: dict[str, Any]) -> list[str]:
    """The voice bench as a terminal table: one row per group, p50/p95 in ms per column."""
    m, on = report["machine"], report["telemetry_on"]
    lines = [
        f"{m['cpu']} ({m['cores']} cores, load {m['load_average_1m']} at the start, "
        f"{report.get('load_average_1m_after')} at the end)",
        f"questions spoken by {report['questions_voice']}; providers {report['providers']}",
        "",
        f"{'answered by':<12}{'turns':>6}  {'voice-to-voice':>15}"
        + "".join(f"  {label:>16}" for _, label in KEY_STAGES)
        + "   (p50/p95 ms)",
    ]
    for group, label in ((LOCAL, "skills"), ("llm", "LLM (open)")):
        g = on["groups"][group]
        v = g["voice_to_voice"]
        cells = [f"{_ms(v['p50_ms'])}/{_ms(v['p95_ms'])}"]
        for key, _ in KEY_STAGES:
            st = g["stages"].get(key, {})
            cells.append(f"{_ms(st.get('p50_ms'))}/{_ms(st.get('p95_ms'))}")
        lines.append(
            f"{label:<12}{g['turns']:>6}  {cells[0]:>15}"
            + "".join(f"  {c:>16}" for c in cells[1:])
            + f"   [{_bar_note(group, v)}]"
        )
    spec = on["speculative"]
    rate = "n/a (this engine does not count speculative replies)"
    if spec["used"] is not None:
        rate = f"{_pct(spec['hit_rate'])} ({spec['used']} used, {spec['discarded']} discarded)"
        flags = [t.get("speculative") for t in on.get("turns", [])]
        if any(f is not None for f in flags):
            rate += f"; {sum(bool(f) for f in flags)} of {len(flags)} replies started before the endpoint"
    lines += [
        "",
        f"speculative replies: {rate}",
        f"peak RSS {report['peak_rss_mb']} MB (workers {report['peak_rss_children_mb']} MB); "
        f"telemetry overhead {report['telemetry_overhead_percent']} %; "
        f"CPU {on.get('cpu_seconds_per_turn')} CPU-seconds per turn (loading included)",
    ]
    if on["other"]:
        fell_back = sum(t["asked"] == "open" and t["user"] != "" for t in on["other"])
        unheard = sum(t["user"] == "" for t in on["other"])
        lines.append(
            f"left out of both groups: {fell_back} open questions the skills answered (the LLM failed or timed out), "
            f"{len(on['other']) - fell_back - unheard} skills questions the LLM answered (misheard), {unheard} unheard:"
        )
        lines += [f"  {_turn_line(t)}" for t in on["other"]]
    if on["errors"]:
        lines.append("errors: " + "; ".join(on["errors"]))
    return lines


def _turn_line(t: dict[str, Any]) -> str:
    return f"{t['user']!r} → {t['by']}: {t['error'] or repr(t['reply'][:100])} ({_ms(t['voice_to_voice_ms'])} ms)"


def _pct(share: float | None) -> str:
    return "n/a" if share is None else f"{share:.0%}"


def bench_command(args: argparse.Namespace, paths: AppPaths, settings: Settings) -> int:
    from app.commands.converse import validate_stages

    validate_stages(settings)
    if args.answers:
        return _answers_command(args, paths, settings)
    if args.turn_taking:
        from app.commands.bench_turns import turn_taking_command

        return turn_taking_command(args, paths, settings)
    if getattr(args, "wake_word", False):
        from app.commands.bench_wake import wake_word_command

        return wake_word_command(args, paths, settings)
    if getattr(args, "stt", False):
        from app.commands.bench_stt import stt_command

        return stt_command(args, paths, settings)
    report = asyncio.run(run_bench(settings, paths, max(1, args.turns), not args.no_telemetry_compare))
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print("\n".join(voice_table(report)))
    return 0 if not report["telemetry_on"]["errors"] else 1


def _answers_command(args: argparse.Namespace, paths: AppPaths, settings: Settings) -> int:
    from app.commands.bench_answers import answers_text, run_answers

    async def run() -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="voxdesk-bench-") as tmp:
            # The check's conversations go to a scratch history, not the user's.
            return await run_answers(settings, AppPaths(paths.config_dir, Path(tmp) / "data", paths.cache_dir))

    started_on = machine()
    report = {
        "machine": started_on,
        "providers": {k: settings.stage(k).provider for k in ("llm", "tts")},
        **asyncio.run(run()),
    }
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        m = report["machine"]
        print(
            f"{m['cpu']} ({m['cores']} cores, load {m['load_average_1m']} at the start); "
            f"providers {report['providers']}; {report['wall_s']} s"
        )
        print("\n".join(answers_text(report)))
    errors = [r for r in report["rows"] if r["error"]] + [o for o in report["open"]["replies"] if o["error"]]
    return 0 if not errors else 1
