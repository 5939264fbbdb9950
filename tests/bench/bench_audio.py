"""Audio benchmarks on real PortAudio devices (PulseAudio null sinks from tests/audio_env.sh).

    .venv/bin/python -m tests.bench.bench_audio [--seconds 60]

Prints: capture-to-engine frame latency (bar ≤ 40 ms), flush-to-silence (≤ 50 ms),
dropped input frames over the capture (0), CPU of idle capture + Silero VAD as % of
one core (≤ 5 %). Figures depend on the machine and its load; quote them with both.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import time
from pathlib import Path

import numpy as np

from app.audio import devices as audio_devices
from app.audio.capture import DeviceAudioSource
from app.audio.playback import DeviceAudioSink
from app.plugin.provider_api import SAMPLE_RATE, AudioChunk, VADProvider
from app.plugin.registry import get_registry

ROOT = Path(__file__).resolve().parents[2]


def start_pulse() -> None:
    out = subprocess.run(
        [str(ROOT / "tests/audio_env.sh"), "start"], capture_output=True, text=True, check=True, timeout=30
    )
    for line in out.stdout.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        os.environ[key] = value
    audio_devices.load_sounddevice()
    audio_devices.rescan_devices(streams_open=False)


async def idle_capture(seconds: float, vad_name: str = "silero", room_dbfs: float = -60.0) -> dict[str, float]:
    """Listen on the virtual mic with the default (Silero) VAD, as the app does between turns.

    A null sink is digital silence; a real laptop mic in a quiet room hears a noise floor
    around -60 dBFS, so that much white noise is added to every frame before the VAD."""
    vad = get_registry().create("vad", vad_name, {})
    rng = np.random.default_rng(0)
    noise_rms = 10 ** (room_dbfs / 20)
    assert isinstance(vad, VADProvider)
    source = DeviceAudioSource("vox_mic")
    await source.start()
    latencies: list[float] = []
    frames = 0
    wall0, cpu0 = time.monotonic(), time.process_time()
    warm_until = wall0 + 3.0  # PortAudio's ALSA→PulseAudio start-up costs CPU for a second or two
    async for captured_at, frame in source.frames():
        if warm_until and time.monotonic() >= warm_until:
            wall0, cpu0, warm_until = time.monotonic(), time.process_time(), 0.0
        latencies.append(time.monotonic() - captured_at)
        vad.speech_probability(frame + rng.normal(0, noise_rms, len(frame)).astype(np.float32))
        frames += 0 if warm_until else 1
        if not warm_until and time.monotonic() - wall0 >= seconds:
            break
    wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
    await source.stop()
    lat = np.array(latencies[int(len(latencies) * 0.05) :]) * 1000  # skip stream start-up
    return {
        "frames": frames,
        "expected_frames": wall * SAMPLE_RATE / 512,
        "dropped_frames": source.dropped_frames,
        "backend_overflows": source.backend_overflows,
        "latency_p50_ms": float(np.percentile(lat, 50)),
        "latency_p95_ms": float(np.percentile(lat, 95)),
        "latency_max_ms": float(lat.max()),
        "cpu_pct_of_one_core": 100 * cpu / wall,
    }


async def flush_to_silence(rounds: int = 5) -> list[float]:
    """Play a tone, flush, and time the last loud sample on the speaker's monitor,
    minus the sink→monitor→capture delay measured at the tone's onset."""
    sink = DeviceAudioSink("vox_speaker")
    monitor = DeviceAudioSource("vox_speaker_monitor")
    await sink.start()
    await monitor.start()
    frames: list[tuple[float, np.ndarray]] = []

    async def collect() -> None:
        async for item in monitor.frames():
            frames.append(item)

    task = asyncio.create_task(collect())
    await asyncio.sleep(2.5)  # past the sound server's start-up pause
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(22_050 * 3) / 22_050)).astype(np.float32)
    results = []
    offsets = (np.arange(512) - 511) / SAMPLE_RATE
    for _ in range(rounds):
        start = len(frames)
        sink.mark()
        sink.play(AudioChunk(tone, 22_050))
        await asyncio.sleep(0.6)
        flushed_at = time.monotonic()
        sink.flush()
        await asyncio.sleep(0.5)
        got = frames[start:]
        audio = np.concatenate([f for _, f in got])
        times = np.concatenate([t + offsets for t, _ in got])
        loud = times[np.abs(audio) > 0.05]
        if not len(loud) or sink.first_sample_time is None:
            continue
        loopback = float(loud.min()) - sink.first_sample_time
        results.append((float(loud.max()) - flushed_at - loopback) * 1000)
    await monitor.stop()
    await task
    await sink.stop()
    return results


async def main(seconds: float) -> None:
    start_pulse()
    print(f"machine: {os.cpu_count()} CPUs (shared; figures are noisy under load)")
    cap = await idle_capture(seconds)
    print(
        f"capture {seconds:.0f} s: {cap['frames']} frames (expected ~{cap['expected_frames']:.0f}), "
        f"dropped {cap['dropped_frames']}, backend overflows {cap['backend_overflows']}"
    )
    print(
        f"capture-to-engine latency: p50 {cap['latency_p50_ms']:.1f} ms, "
        f"p95 {cap['latency_p95_ms']:.1f} ms, max {cap['latency_max_ms']:.1f} ms (bar ≤ 40 ms)"
    )
    print(
        f"idle capture + Silero VAD, quiet room (-60 dBFS): {cap['cpu_pct_of_one_core']:.2f} % of one core (bar ≤ 5 %)"
    )
    noisy = await idle_capture(min(seconds, 20.0), room_dbfs=-40.0)
    print(
        f"idle capture + Silero VAD, noisy room (-40 dBFS, the model runs on every frame): "
        f"{noisy['cpu_pct_of_one_core']:.2f} % of one core"
    )
    flush = await flush_to_silence()
    if flush:
        print(
            f"flush-to-silence: median {np.median(flush):.1f} ms, max {max(flush):.1f} ms "
            f"over {len(flush)} rounds (bar ≤ 50 ms)"
        )
    else:
        print("flush-to-silence: no measurement (tone never reached the monitor)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    asyncio.run(main(parser.parse_args().seconds))
