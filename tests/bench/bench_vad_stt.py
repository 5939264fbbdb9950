"""Benchmark: VAD cost per 32 ms frame, STT final latency for a 2 s utterance, peak RSS.

Run: `.venv/bin/python -m tests.bench.bench_vad_stt [--json] [--runs N]`.
Bars (issue 3, 2-core CI-class machine): Silero ≤ 2 ms per frame, STT final for
2 s ≤ 0.5 s. Figures depend on what else the machine is doing; quote them with it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import time

import numpy as np

from app.plugin.provider_api import FRAME_SAMPLES, SAMPLE_RATE, STTProvider, VADProvider
from app.plugin.registry import get_registry
from tests.support.speech import speak


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": statistics.median(ordered),
        "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
        "mean": statistics.fmean(ordered),
    }


def _two_second_utterance() -> np.ndarray:
    speech = speak("Please turn on the kitchen lights.")
    loud = np.nonzero(np.abs(speech) > 0.01)[0]
    speech = speech[loud[0] : loud[-1] + 1][: 2 * SAMPLE_RATE]
    pad = 2 * SAMPLE_RATE - len(speech)
    return np.concatenate([speech, np.zeros(pad, np.float32)])


def bench_vad(name: str, audio: np.ndarray, frames: int) -> dict[str, float]:
    vad = get_registry().create("vad", name, {})
    assert isinstance(vad, VADProvider)
    vad.speech_probability(np.zeros(FRAME_SAMPLES, np.float32))  # load
    chunks = [audio[i : i + FRAME_SAMPLES] for i in range(0, len(audio) - FRAME_SAMPLES, FRAME_SAMPLES)]
    times = []
    for i in range(frames):
        t = time.perf_counter()
        vad.speech_probability(chunks[i % len(chunks)])
        times.append((time.perf_counter() - t) * 1000)
    return {k: round(v, 3) for k, v in _percentiles(times).items()}


async def bench_stt(audio: np.ndarray, runs: int, options: dict[str, object]) -> dict[str, object]:
    stt = get_registry().create("stt", "faster-whisper", options)
    assert isinstance(stt, STTProvider)
    t = time.perf_counter()
    await stt.warmup()
    load_s = time.perf_counter() - t
    await stt.transcribe(audio)  # first decode allocates buffers
    times, text = [], ""
    for _ in range(runs):
        t = time.perf_counter()
        text = await stt.transcribe(audio)
        times.append(time.perf_counter() - t)
    await stt.aclose()
    return {
        "options": options,
        "load_s": round(load_s, 3),
        **{f"final_{k}_s": round(v, 3) for k, v in _percentiles(times).items()},
        "min_s": round(min(times), 3),
        "text": text,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--frames", type=int, default=2000)
    args = parser.parse_args()

    audio = _two_second_utterance()
    long_audio = np.tile(audio, 4)
    report: dict[str, object] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}",
        "vad_ms_per_frame": {name: bench_vad(name, long_audio, args.frames) for name in ("silero", "energy")},
        "stt_2s_utterance": [
            asyncio.run(bench_stt(audio, args.runs, {})),
            asyncio.run(bench_stt(audio, args.runs, {"window_s": 10})),
        ],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"machine: {report['machine']}")
    for name, figures in report["vad_ms_per_frame"].items():  # type: ignore[attr-defined]
        print(f"VAD {name:7} per 32 ms frame: p50 {figures['p50']:.3f} ms  p95 {figures['p95']:.3f} ms")
    for row in report["stt_2s_utterance"]:  # type: ignore[attr-defined]
        print(
            f"STT final, 2 s utterance {row['options'] or 'defaults'}: p50 {row['final_p50_s']:.3f} s  "
            f"p95 {row['final_p95_s']:.3f} s  min {row['min_s']:.3f} s  (load {row['load_s']:.2f} s) "
            f"-> {row['text']!r}"
        )
    print(f"peak RSS (Silero + energy + faster-whisper tiny.en): {report['peak_rss_mb']} MB")


if __name__ == "__main__":
    main()
