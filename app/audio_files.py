"""The audio interfaces over WAV files: `converse --input/--output`, `bench` and tests.

A file source behaves like a microphone (same 16 kHz 512-sample frames, same capture
timestamps) so the engine cannot tell the difference; real-time pace reproduces what a
user would experience, "as fast as possible" makes tests and batch runs quick.
The file sink keeps what would have been played and writes one WAV on `stop()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import soxr

from app.audio_io import AudioSink, AudioSource
from app.errors import ErrorCode, VoiceError
from app.provider_api import FRAME_SAMPLES, SAMPLE_RATE, AudioChunk, validate_audio


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples and the file's rate; 8/16/24/32-bit PCM, any channel count."""
    op = "audio.file"
    try:
        with wave.open(str(path), "rb") as w:
            rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
            raw = w.readframes(w.getnframes())
    except FileNotFoundError:
        raise VoiceError(op, ErrorCode.NOT_FOUND, f"audio file {path} does not exist") from None
    except (wave.Error, EOFError, OSError) as exc:
        raise VoiceError(op, ErrorCode.INVALID_CONFIG,
                         f"{path} is not a PCM WAV file ({exc}) — convert it, e.g. `sox in.x -b 16 out.wav`"
                         ) from None
    if width == 1:
        data = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        data = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        ints = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16))
        ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
        data = ints.astype(np.float32) / float(1 << 23)
    elif width == 4:
        data = np.frombuffer(raw, "<i4").astype(np.float32) / 2147483648.0
    else:
        raise VoiceError(op, ErrorCode.INVALID_CONFIG, f"{path}: {width * 8}-bit samples are not supported")
    if channels > 1:
        data = data[: len(data) // channels * channels].reshape(-1, channels).mean(axis=1)
    return np.ascontiguousarray(data, dtype=np.float32), rate


def write_wav(path: str | Path, samples: np.ndarray, rate: int) -> Path:
    """16-bit mono PCM — what every player and `sox` reads."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def to_frames(samples: np.ndarray) -> list[np.ndarray]:
    """Split 16 kHz audio into 512-sample frames; the last one is padded with silence."""
    n = -(-len(samples) // FRAME_SAMPLES)
    padded = np.zeros(n * FRAME_SAMPLES, np.float32)
    padded[: len(samples)] = samples
    return [padded[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES] for i in range(n)]


class WavFileSource(AudioSource):
    """Frames from one WAV file (any rate/channels), optionally followed by silence so
    the VAD can see the end of the last utterance, as a microphone would."""

    def __init__(self, path: str | Path, *, realtime: bool = True, trailing_silence_s: float = 0.0) -> None:
        self.path = Path(path)
        self.realtime = realtime
        self.trailing_silence_s = trailing_silence_s
        self._frames: list[np.ndarray] | None = None
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        samples, rate = await asyncio.to_thread(read_wav, self.path)
        if rate != SAMPLE_RATE and len(samples):
            samples = soxr.resample(samples, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
        tail = np.zeros(int(self.trailing_silence_s * SAMPLE_RATE), np.float32)
        self._frames = to_frames(np.concatenate([samples, tail]))
        self._stopped.clear()

    @property
    def duration_s(self) -> float:
        return len(self._frames or []) * FRAME_SAMPLES / SAMPLE_RATE

    async def frames(self) -> AsyncIterator[tuple[float, np.ndarray]]:
        if self._frames is None:
            await self.start()
        assert self._frames is not None
        frame_s = FRAME_SAMPLES / SAMPLE_RATE
        t0 = time.monotonic()
        for k, frame in enumerate(self._frames):
            if self._stopped.is_set():
                return
            if self.realtime:
                # A microphone delivers a frame once its last sample has been spoken.
                due = t0 + (k + 1) * frame_s
                delay = due - time.monotonic()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopped.wait(), delay)
                    if self._stopped.is_set():
                        return
                yield due, frame
            else:
                yield time.monotonic(), frame
                await asyncio.sleep(0)  # let the engine run between frames

    async def stop(self) -> None:
        self._stopped.set()


class WavFileSink(AudioSink):
    """Collects reply audio at one rate (`sample_rate`, else the first chunk's) and
    writes `path` on `stop()`.

    Not real-time: a chunk counts as played when queued, so `first_sample_time` is the
    time the first chunk after `mark()` arrived. Real-time: a pump hands audio over at
    playback pace, so `drain()` takes as long as a speaker would and `flush()` cuts the
    rest, which is what barge-in tests need.
    """

    def __init__(self, path: str | Path | None, *, sample_rate: int | None = None,
                 realtime: bool = False) -> None:
        self.path = Path(path) if path is not None else None
        self.rate = sample_rate
        self.realtime = realtime
        self._played: list[np.ndarray] = []
        self._queued: list[np.ndarray] = []
        self._resamplers: dict[int, soxr.ResampleStream] = {}
        self._first: float | None = None
        self._marked = True
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._pump: asyncio.Task[None] | None = None
        self._play_until = 0.0
        self.written: Path | None = None

    async def start(self) -> None:
        if self.realtime and self._pump is None:
            self._pump = asyncio.create_task(self._run_pump(), name="voxdesk-wav-sink")

    def _convert(self, chunk: AudioChunk) -> np.ndarray:
        samples = validate_audio("audio.file", chunk.samples)
        if self.rate is None:
            self.rate = chunk.sample_rate
        if chunk.sample_rate == self.rate or not len(samples):
            return samples
        rs = self._resamplers.get(chunk.sample_rate)
        if rs is None:
            rs = self._resamplers[chunk.sample_rate] = soxr.ResampleStream(
                chunk.sample_rate, self.rate, 1, dtype="float32", quality="HQ")
        return np.asarray(rs.resample_chunk(samples), dtype=np.float32)

    def play(self, chunk: AudioChunk) -> None:
        samples = self._convert(chunk)
        if not len(samples):
            return
        if self._first is None and self._marked:
            self._first = time.monotonic()
        if self.realtime:
            self._queued.append(samples)
            self._idle.clear()
            self._wake.set()
        else:
            self._played.append(samples)

    async def _run_pump(self) -> None:
        block_s = 0.02
        while True:
            if not self._queued:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            head = self._queued[0]
            n = max(1, int((self.rate or SAMPLE_RATE) * block_s))
            self._played.append(head[:n])
            if len(head) > n:
                self._queued[0] = head[n:]
            else:
                self._queued.pop(0)
            await asyncio.sleep(min(block_s, len(head) / (self.rate or SAMPLE_RATE)))

    def flush(self) -> None:
        self._queued.clear()
        self._resamplers.clear()
        self._idle.set()

    async def drain(self) -> None:
        await self._idle.wait()

    def mark(self) -> None:
        self._marked = True
        self._first = None

    @property
    def first_sample_time(self) -> float | None:
        return self._first

    @property
    def is_playing(self) -> bool:
        return bool(self._queued)

    @property
    def samples(self) -> np.ndarray:
        """Everything played so far, at `rate`."""
        return np.concatenate(self._played) if self._played else np.zeros(0, np.float32)

    async def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None
        self._queued.clear()
        if self.path is not None:
            self.written = await asyncio.to_thread(
                write_wav, self.path, self.samples, self.rate or SAMPLE_RATE)
