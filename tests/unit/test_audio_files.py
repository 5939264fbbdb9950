"""WAV file source/sink: what `converse --input/--output` and the benchmarks rely on."""

from __future__ import annotations

import time
import wave
from pathlib import Path

import numpy as np
import pytest

from app.audio.files import WavFileSink, WavFileSource, read_wav, write_wav
from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import FRAME_SAMPLES, SAMPLE_RATE, AudioChunk


def tone(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def write_stereo_44k(path: Path, left: np.ndarray) -> None:
    pcm = (np.stack([left, left], axis=1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(44_100)
        w.writeframes(pcm.tobytes())


async def collect(src: WavFileSource) -> list[tuple[float, np.ndarray]]:
    await src.start()
    try:
        return [item async for item in src.frames()]
    finally:
        await src.stop()


async def test_source_resamples_any_wav_to_16k_frames(tmp_path: Path) -> None:
    path = tmp_path / "q.wav"
    write_stereo_44k(path, tone(440, 1.0, 44_100))
    frames = await collect(WavFileSource(path, realtime=False, trailing_silence_s=0.5))
    assert all(f.dtype == np.float32 and f.shape == (FRAME_SAMPLES,) for _, f in frames)
    audio = np.concatenate([f for _, f in frames])
    assert len(frames) == -(-int(1.5 * SAMPLE_RATE) // FRAME_SAMPLES)
    assert abs(dominant_hz(audio[:SAMPLE_RATE], SAMPLE_RATE) - 440) < 5
    assert np.max(np.abs(audio[-int(0.4 * SAMPLE_RATE) :])) < 1e-3  # the silence tail is silent
    times = [t for t, _ in frames]
    assert times == sorted(times)


async def test_realtime_source_paces_frames_like_a_microphone(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "q.wav", tone(300, 0.64, SAMPLE_RATE), SAMPLE_RATE)
    start = time.monotonic()
    frames = await collect(WavFileSource(path, realtime=True))
    elapsed = time.monotonic() - start
    assert len(frames) == 20
    assert elapsed >= 0.6  # 20 frames × 32 ms cannot arrive sooner at real-time pace
    gaps = np.diff([t for t, _ in frames])
    assert np.allclose(gaps, FRAME_SAMPLES / SAMPLE_RATE, atol=1e-6)


async def test_stop_ends_a_realtime_source_early(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "long.wav", tone(300, 30.0, SAMPLE_RATE), SAMPLE_RATE)
    src = WavFileSource(path, realtime=True)
    await src.start()
    got = 0
    async for _ in src.frames():
        got += 1
        if got == 3:
            await src.stop()
    assert got == 3


async def test_missing_and_broken_files_are_voice_errors(tmp_path: Path) -> None:
    with pytest.raises(VoiceError) as missing:
        await WavFileSource(tmp_path / "nope.wav").start()
    assert missing.value.code is ErrorCode.NOT_FOUND
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wav at all")
    with pytest.raises(VoiceError) as broken:
        read_wav(bad)
    assert broken.value.code is ErrorCode.INVALID_CONFIG and "sox" in broken.value.message


async def test_sink_round_trip_resamples_chunks_to_one_rate(tmp_path: Path) -> None:
    out = tmp_path / "reply.wav"
    sink = WavFileSink(out)
    await sink.start()
    sink.mark()
    before = time.monotonic()
    for piece in np.array_split(tone(500, 1.0, 22_050), 10):
        sink.play(AudioChunk(piece, 22_050))
    sink.play(AudioChunk(tone(500, 0.5, 44_100), 44_100))  # another voice rate, same file
    await sink.drain()
    assert sink.first_sample_time is not None and sink.first_sample_time >= before
    await sink.stop()
    samples, rate = read_wav(out)
    assert rate == 22_050
    assert abs(len(samples) / rate - 1.5) < 0.02
    assert abs(dominant_hz(samples, rate) - 500) < 5
    # and the file round-trips through the source as 16 kHz frames of the same tone
    frames = await collect(WavFileSource(out, realtime=False))
    assert abs(dominant_hz(np.concatenate([f for _, f in frames]), SAMPLE_RATE) - 500) < 5


async def test_realtime_sink_flush_cuts_the_rest_of_the_reply(tmp_path: Path) -> None:
    sink = WavFileSink(tmp_path / "r.wav", realtime=True)
    await sink.start()
    sink.mark()
    sink.play(AudioChunk(tone(400, 5.0, 16_000), 16_000))
    assert sink.is_playing
    while len(sink.samples) < 3200:  # ~0.2 s handed over
        await sink_tick()
    sink.flush()
    await sink.drain()
    assert not sink.is_playing
    await sink.stop()
    assert len(sink.samples) / 16_000 < 1.0  # not the whole 5 s


async def sink_tick() -> None:
    import asyncio

    await asyncio.sleep(0.02)


async def test_mark_resets_first_sample_time(tmp_path: Path) -> None:
    sink = WavFileSink(None, sample_rate=16_000)
    await sink.start()
    sink.mark()
    assert sink.first_sample_time is None
    sink.play(AudioChunk(tone(400, 0.1, 16_000), 16_000))
    first = sink.first_sample_time
    sink.mark()
    assert sink.first_sample_time is None
    sink.play(AudioChunk(tone(400, 0.1, 16_000), 16_000))
    assert sink.first_sample_time is not None and first is not None and sink.first_sample_time >= first
    await sink.stop()
