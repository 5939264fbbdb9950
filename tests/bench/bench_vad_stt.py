"""Benchmark: VAD cost per 32 ms frame, STT final latency for 2 s and 5 s utterances, peak RSS.

Run: `.venv/bin/python -m tests.bench.bench_vad_stt [--json] [--runs N]`.
Bars (issue 3, 2-core CI-class machine): Silero ≤ 2 ms per frame, STT final for
2 s ≤ 0.5 s; issue 16: STT wait after the endpoint p50 ≤ 60 ms. Figures depend on
what else the machine is doing; quote them with it.

STT rows, interleaved run by run so both see the same machine:
- `full 30 s window`: faster-whisper's `transcribe()` as the provider called it
  before the fast path (always a 30 s encoder window) — the "before" figure;
- `provider`: `FasterWhisperSTT.transcribe()`, the short-window fast path;
- `provider, partial in flight`: the same, issued while a streamed partial of the
  same utterance decodes (the engine's speculative final at silence start).
`cpu_s` is process CPU time per decode (CTranslate2's threads included).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import numpy as np

from app.plugin.provider_api import FRAME_SAMPLES, SAMPLE_RATE, VADProvider
from app.plugin.registry import get_registry
from providers.stt.faster_whisper import FasterWhisperSTT
from tests.support.speech import speak


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": statistics.median(ordered),
        "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
        "mean": statistics.fmean(ordered),
    }


UTTERANCES = {
    2: "Please turn on the kitchen lights.",
    5: "Remind me to buy milk, eggs and coffee on the way home from work tonight.",
}


def _utterance(seconds: int) -> np.ndarray:
    """Speech trimmed to its loud part, cut or padded with silence to `seconds`."""
    speech = speak(UTTERANCES[seconds])
    loud = np.nonzero(np.abs(speech) > 0.01)[0]
    speech = speech[loud[0] : loud[-1] + 1][: seconds * SAMPLE_RATE]
    pad = seconds * SAMPLE_RATE - len(speech)
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


def _full_window(stt: FasterWhisperSTT, audio: np.ndarray) -> str:
    """The provider's decode before the fast path: faster-whisper's own 30 s window."""
    segments, _info = stt._ensure_model().transcribe(
        audio,
        language="en",
        beam_size=1,
        best_of=1,
        temperature=0.0,
        without_timestamps=True,
        condition_on_previous_text=False,
        vad_filter=False,
    )
    return " ".join(seg.text.strip() for seg in segments).strip()


async def _timed(call: Awaitable[str]) -> tuple[str, float]:
    t = time.perf_counter()
    text = await call
    return text, time.perf_counter() - t


async def _behind_a_partial(stt: FasterWhisperSTT, audio: np.ndarray) -> tuple[str, float]:
    """Only the final is timed, from the moment it is asked for."""

    async def microphone() -> AsyncIterator[np.ndarray]:
        yield audio
        await asyncio.Event().wait()  # the input stays open: the engine stops it at silence

    stream = stt.stream(microphone())
    partial = asyncio.ensure_future(anext(stream, None))
    await asyncio.sleep(0.01)  # the partial is decoding
    try:
        return await _timed(stt.transcribe(audio))
    finally:
        partial.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await partial
        await stream.aclose()


async def bench_stt(audio: np.ndarray, runs: int) -> dict[str, object]:
    stt = get_registry().create("stt", "faster-whisper", {})
    assert isinstance(stt, FasterWhisperSTT)
    t = time.perf_counter()
    await stt.warmup()
    load_s = time.perf_counter() - t
    ways: dict[str, Callable[[], Awaitable[tuple[str, float]]]] = {
        "full 30 s window": lambda: _timed(asyncio.to_thread(_full_window, stt, audio)),
        "provider": lambda: _timed(stt.transcribe(audio)),
        "provider, partial in flight": lambda: _behind_a_partial(stt, audio),
    }
    for way in ways.values():  # the first decode of each allocates buffers
        await way()
    times: dict[str, list[float]] = {name: [] for name in ways}
    cpu: dict[str, list[float]] = {name: [] for name in ways}
    texts: dict[str, str] = {}
    for _ in range(runs):
        for name, way in ways.items():
            c = time.process_time()
            texts[name], seconds = await way()
            times[name].append(seconds)
            cpu[name].append(time.process_time() - c)
    await stt.aclose()
    return {
        "load_s": round(load_s, 3),
        "ways": {
            name: {
                **{f"final_{k}_s": round(v, 3) for k, v in _percentiles(times[name]).items()},
                "min_s": round(min(times[name]), 3),
                "cpu_s": round(statistics.median(cpu[name]), 3),
                "text": texts[name],
            }
            for name in ways
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--frames", type=int, default=2000)
    args = parser.parse_args()

    audio = _utterance(2)
    long_audio = np.tile(audio, 4)
    report: dict[str, object] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}",
        "vad_ms_per_frame": {name: bench_vad(name, long_audio, args.frames) for name in ("silero", "energy")},
        "stt": {f"{seconds} s": asyncio.run(bench_stt(_utterance(seconds), args.runs)) for seconds in UTTERANCES},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    report["load_average_after"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"machine: {report['machine']} (after: {report['load_average_after']})")
    for name, figures in report["vad_ms_per_frame"].items():  # type: ignore[attr-defined]
        print(f"VAD {name:7} per 32 ms frame: p50 {figures['p50']:.3f} ms  p95 {figures['p95']:.3f} ms")
    for length, rows in report["stt"].items():  # type: ignore[attr-defined]
        for name, row in rows["ways"].items():
            print(
                f"STT final, {length} utterance, {name:28}: p50 {row['final_p50_s'] * 1000:4.0f} ms  "
                f"p95 {row['final_p95_s'] * 1000:4.0f} ms  min {row['min_s'] * 1000:4.0f} ms  "
                f"CPU {row['cpu_s']:.2f} s  -> {row['text']!r}"
            )
    print(f"peak RSS (Silero + energy + faster-whisper tiny.en): {report['peak_rss_mb']} MB")


if __name__ == "__main__":
    main()
