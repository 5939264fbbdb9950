"""`voxdesk bench`: voice-to-voice latency of the real pipeline on this machine.

Spoken questions are synthesised once with the configured TTS voice, then streamed
into the engine at real-time pace exactly as a microphone would deliver them. The
reply's first sample reaching the sink ends the measurement. The run is repeated
with telemetry off to show what telemetry costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from app.audio.files import write_wav
from app.commands.converse import TimedOut, run_files
from app.engine.events import TurnFinished
from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import SAMPLE_RATE
from app.plugin.registry import get_registry
from app.store.paths import AppPaths
from app.store.settings import Settings

QUESTIONS = (
    "What time is it?",
    "What is seventeen times twenty three?",
    "What is the date today?",
    "What can you do?",
    "What is twelve plus thirty?",
)


async def synthesise_questions(settings: Settings, out_dir: Path, count: int) -> list[Path]:
    import soxr

    tts_cfg = settings.tts
    tts = get_registry().create("tts", tts_cfg.provider, tts_cfg.options)
    paths = []
    try:
        for i, text in enumerate(QUESTIONS[: min(count, len(QUESTIONS))]):
            chunks = [c async for c in tts.synthesize(text)]  # type: ignore[attr-defined]
            audio = np.concatenate([c.samples for c in chunks])
            audio = soxr.resample(audio, chunks[0].sample_rate, SAMPLE_RATE).astype(np.float32)
            lead, tail = np.zeros(int(0.4 * SAMPLE_RATE), np.float32), np.zeros(SAMPLE_RATE, np.float32)
            paths.append(write_wav(out_dir / f"q{i}.wav", np.concatenate([lead, audio * 0.8, tail]), SAMPLE_RATE))
    finally:
        await tts.aclose()
    return [paths[i % len(paths)] for i in range(count)]


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return round((s[lo] + (s[hi] - s[lo]) * (pos - lo)) * 1000, 1)


def summarise(turns: list[TurnFinished], wall_s: float, cpu_s: float) -> dict[str, Any]:
    v2v = [t.voice_to_voice_s for t in turns if t.voice_to_voice_s is not None]
    stages: dict[str, dict[str, float | None]] = {}
    keys = sorted({k for t in turns for k in t.timings})
    for k in keys:
        vals = [t.timings[k] for t in turns if k in t.timings]
        stages[k] = {"p50_ms": _pct(vals, 0.5), "p95_ms": _pct(vals, 0.95)}
    return {
        "turns": len(turns),
        "errors": [t.error for t in turns if t.error],
        "voice_to_voice": {
            "p50_ms": _pct(v2v, 0.5),
            "p95_ms": _pct(v2v, 0.95),
            "mean_ms": round(statistics.mean(v2v) * 1000, 1) if v2v else None,
        },
        "stages": stages,
        "cpu_percent_of_one_core": round(100 * cpu_s / wall_s, 1) if wall_s else None,
        "transcripts": [t.user_text for t in turns],
    }


def _cpu_seconds() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


async def run_bench(settings: Settings, paths: AppPaths, turns: int, compare: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="voxdesk-bench-") as tmp:
        tmpdir = Path(tmp)
        # History of bench turns goes to a scratch data dir, not the user's.
        bench_paths = AppPaths(paths.config_dir, tmpdir / "data", paths.cache_dir)
        wavs = await synthesise_questions(settings, tmpdir, turns)
        results: dict[str, Any] = {}
        runs = [("telemetry_on", True)] + ([("telemetry_off", False)] if compare else [])
        for label, enabled in runs:
            s = settings.model_copy(deep=True)
            s.telemetry.enabled = enabled
            s.telemetry.otlp_endpoint = None
            cpu0, t0 = _cpu_seconds(), time.monotonic()
            try:
                # No --output: the reply audio is timed, not kept (memory stays flat over turns).
                done = await run_files(
                    s, bench_paths, inputs=wavs, texts=[], output=None, realtime=True, timeout=60 + 30 * turns
                )
            except TimedOut as exc:
                raise VoiceError(
                    "bench",
                    ErrorCode.TIMEOUT,
                    f"the {label.replace('_', ' ')} run {exc} — close other programs, or measure fewer --turns",
                ) from None
            results[label] = summarise(done, time.monotonic() - t0, _cpu_seconds() - cpu0)
    on = results["telemetry_on"]["voice_to_voice"]["p50_ms"]
    off = results.get("telemetry_off", {}).get("voice_to_voice", {}).get("p50_ms")
    return {
        "machine": {
            "cpu": _cpu_name(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}",
        },
        "providers": {k: settings.stage(k).provider for k in ("vad", "stt", "llm", "tts")},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_rss_children_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        **results,
        "telemetry_overhead_percent": round(100 * (on - off) / off, 1) if on and off else None,
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def bench_command(args: argparse.Namespace, paths: AppPaths, settings: Settings) -> int:
    from app.commands.converse import validate_stages

    validate_stages(settings)
    report = asyncio.run(run_bench(settings, paths, max(1, args.turns), not args.no_telemetry_compare))
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        v = report["telemetry_on"]["voice_to_voice"]
        print(f"{report['machine']['cpu']} ({report['machine']['cores']} cores)")
        print(f"providers: {report['providers']}")
        turns = report["telemetry_on"]["turns"]
        print(f"voice-to-voice: p50 {v['p50_ms']} ms, p95 {v['p95_ms']} ms over {turns} turns")
        for k, st in report["telemetry_on"]["stages"].items():
            print(f"  {k:<16} p50 {st['p50_ms']} ms  p95 {st['p95_ms']} ms")
        print(f"peak RSS {report['peak_rss_mb']} MB; telemetry overhead {report['telemetry_overhead_percent']} %")
    return 0 if not report["telemetry_on"]["errors"] else 1
