"""Microphone capture: a PortAudio input stream turned into the engine's 16 kHz frames.

The stream runs at the device's native rate and channel count (asking PortAudio to
convert often fails or sounds bad on real hardware); we mix to mono and resample with
soxr's streaming resampler on the asyncio side. The PortAudio callback does the least
possible — copy the block and hand it to the loop with `call_soon_threadsafe` — because
anything slow there makes the driver drop audio. A bounded hand-off keeps a stalled
consumer from eating memory: blocks beyond it are dropped and counted, never waited for.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import soxr

from app.audio.devices import AudioDevice, SupervisedStream, require_sounddevice
from app.audio.streams import AudioSource
from app.plugin.provider_api import FRAME_SAMPLES, SAMPLE_RATE

LevelCallback = Callable[[float, float], None]
SILENCE_DBFS = -120.0


def level_dbfs(frame: np.ndarray) -> tuple[float, float]:
    """(RMS, peak) of a float frame in dBFS, floored at -120 for digital silence."""
    if frame.size == 0:
        return SILENCE_DBFS, SILENCE_DBFS
    rms = float(np.sqrt(np.mean(np.square(frame, dtype=np.float64))))
    peak = float(np.max(np.abs(frame)))
    to_db = lambda v: max(SILENCE_DBFS, 20.0 * math.log10(v)) if v > 0 else SILENCE_DBFS  # noqa: E731
    return to_db(rms), to_db(peak)


class DeviceAudioSource(SupervisedStream, AudioSource):
    """`AudioSource` over a real microphone, with unplug recovery (see `SupervisedStream`).

    `dropped_frames` counts 16 kHz frames lost because the loop fell behind (hand-off
    full or frame queue full); `backend_overflows` counts PortAudio's own input-overflow
    flags. `level` is the latest (RMS, peak) dBFS for the meter; `on_level` gets it per
    frame (~31×/s).
    """

    direction = "input"
    #: PortAudio block length, and how many 16 kHz frames may wait for the engine.
    block_s = 0.016
    max_queued_frames = 64

    def __init__(
        self,
        device: str | None = None,
        host_api: str | None = None,
        *,
        on_error: Callable[[Any], None] | None = None,
        on_notice: Callable[[str], None] | None = None,
        on_level: LevelCallback | None = None,
    ) -> None:
        super().__init__(device, host_api, on_error=on_error, on_notice=on_notice)
        self.on_level = on_level
        max_queued_frames, block_s = self.max_queued_frames, self.block_s
        self.level: tuple[float, float] = (SILENCE_DBFS, SILENCE_DBFS)
        self.backend_overflows = 0
        self._frames: asyncio.Queue[tuple[float, np.ndarray] | None] = asyncio.Queue(max_queued_frames + 1)
        self._max_frames = max_queued_frames
        self._max_blocks = max(8, int(max_queued_frames * FRAME_SAMPLES / SAMPLE_RATE / block_s))
        # Written only by the callback thread / only by the loop: no lock needed.
        self._n_submitted = 0
        self._n_consumed = 0
        self._dropped_samples = 0.0
        self._queue_drops = 0
        self._resampler: Any = None
        self._in_rate = SAMPLE_RATE
        self._pending = np.zeros(0, np.float32)
        self._ended = False

    @property
    def dropped_frames(self) -> int:
        return self._queue_drops + int(self._dropped_samples // FRAME_SAMPLES)

    # -- PortAudio side ---------------------------------------------------------------
    def _make_stream(self, device: AudioDevice) -> Any:
        sd = require_sounddevice(self.op)
        rate = int(device.default_samplerate) or SAMPLE_RATE
        channels = max(1, min(2, device.max_input_channels))
        generation = self._generation
        return sd.InputStream(
            device=device.index,
            samplerate=rate,
            channels=channels,
            dtype="float32",
            blocksize=max(64, int(rate * self.block_s)),
            latency="low",
            callback=self._make_callback(generation, rate),
            finished_callback=self._finished_hook(),
        )

    def _make_callback(self, generation: int, rate: int) -> Callable[..., None]:
        loop = self._loop
        max_blocks = self._max_blocks

        def _callback(indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
            now = time.monotonic()
            self._stamp_callback(now)
            if status and status.input_overflow:
                self.backend_overflows += 1
            if self._n_submitted - self._n_consumed >= max_blocks:
                self._dropped_samples += frames * SAMPLE_RATE / rate
                return
            self._n_submitted += 1
            loop.call_soon_threadsafe(self._on_block, indata.copy(), now, generation)

        return _callback

    def _on_reopened(self, device: AudioDevice) -> None:
        rate = int(device.default_samplerate) or SAMPLE_RATE
        self._in_rate = rate
        self._resampler = (
            None if rate == SAMPLE_RATE else soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        )

    # -- loop side --------------------------------------------------------------------
    def _on_block(self, block: np.ndarray, captured_at: float, generation: int) -> None:
        self._n_consumed += 1
        if generation != self._generation or self._ended:
            return
        mono = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)
        if self._resampler is not None:
            mono = self._resampler.resample_chunk(mono)
        buf = np.concatenate([self._pending, mono]) if self._pending.size else mono
        n_frames = len(buf) // FRAME_SAMPLES
        for k in range(n_frames):
            frame = np.ascontiguousarray(buf[k * FRAME_SAMPLES : (k + 1) * FRAME_SAMPLES], dtype=np.float32)
            # The last sample of the block arrived at `captured_at`; samples after this
            # frame's end are that much younger.
            after = len(buf) - (k + 1) * FRAME_SAMPLES
            self._deliver(captured_at - after / SAMPLE_RATE, frame)
        self._pending = buf[n_frames * FRAME_SAMPLES :].copy()

    def _deliver(self, at: float, frame: np.ndarray) -> None:
        self.level = level_dbfs(frame)
        if self.on_level is not None:
            self.on_level(*self.level)
        if self._frames.qsize() >= self._max_frames:
            self._frames.get_nowait()  # the engine fell behind: drop the oldest, keep it live
            self._queue_drops += 1
        self._frames.put_nowait((at, frame))

    async def start(self) -> None:
        """Open (or re-open after `stop()`: the session closes the mic while nobody listens)."""
        self._ended = False
        self._pending = np.zeros(0, np.float32)
        while not self._frames.empty():
            self._frames.get_nowait()
        await super().start()

    async def frames(self) -> AsyncIterator[tuple[float, np.ndarray]]:
        while True:
            item = await self._frames.get()
            if item is None:
                return
            yield item

    async def stop(self) -> None:
        if self._ended:
            return
        self._ended = True
        await self._shutdown()
        if self._frames.full():
            self._frames.get_nowait()
        self._frames.put_nowait(None)


def open_device_source(
    name: str | None = None,
    host_api: str | None = None,
    **kwargs: Any,
) -> DeviceAudioSource:
    """A microphone source for `name` (as `voxdesk doctor` lists it; None = default).
    Nothing opens until `await source.start()`, which raises AUDIO_DEVICE when there is
    no usable microphone at all; a missing saved device falls back with a notice."""
    return DeviceAudioSource(name, host_api, **kwargs)
