"""Speaker playback: TTS chunks at any rate → one PortAudio output stream at the device rate.

The stream runs continuously (silence when idle) so a reply starts without the
hundreds of milliseconds a sound server needs to open a stream, and so the watchdog
can tell a dead device from a quiet one. Chunks are resampled on the loop side and
queued in a lock-protected buffer that the PortAudio callback drains. `flush()` empties
that buffer; the very next callback writes silence, so barge-in is heard within one
block (plus the device's own output latency, kept low).

`first_sample_time` is the monotonic time of the callback that handed the first
sample after `mark()` to PortAudio — the end point of voice-to-voice latency.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import soxr

from app.audio.devices import AudioDevice, SupervisedStream, require_sounddevice
from app.audio.far_end import FarEndTap
from app.audio.streams import AudioSink
from app.plugin.provider_api import AudioChunk, validate_audio


class DeviceAudioSink(SupervisedStream, AudioSink):
    """`AudioSink` over a real speaker, with unplug recovery (see `SupervisedStream`)."""

    closes_when_idle = True
    can_pause = True

    direction = "output"
    #: PortAudio block length.
    block_s = 0.020

    def __init__(
        self,
        device: str | None = None,
        host_api: str | None = None,
        *,
        on_error: Callable[[Any], None] | None = None,
        on_notice: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(device, host_api, on_error=on_error, on_notice=on_notice)
        self.rate = 0
        self.channels = 1
        self._lock = threading.Lock()
        self._buffer: deque[tuple[np.ndarray, int]] = deque()  # (samples at self.rate, mark id)
        self._buffered = 0
        self._mark_id = 0
        self._first_sample_time: float | None = None
        self._last_audio_at = 0.0
        self._resamplers: dict[int, Any] = {}
        self._idle: asyncio.Event | None = None
        self.tap = self.far_end = FarEndTap()
        self._paused = False

    # -- PortAudio side ---------------------------------------------------------------
    def _make_stream(self, device: AudioDevice) -> Any:
        sd = require_sounddevice(self.op)
        rate = int(device.default_samplerate) or 48_000
        channels = max(1, min(2, device.max_output_channels))
        return sd.OutputStream(
            device=device.index,
            samplerate=rate,
            channels=channels,
            dtype="float32",
            blocksize=max(64, int(rate * self.block_s)),
            latency="low",
            callback=self._make_callback(self._generation),
            finished_callback=self._finished_hook(),
        )

    def _make_callback(self, generation: int) -> Callable[..., None]:
        def _callback(outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
            now = time.monotonic()
            self._stamp_callback(now)
            if generation != self._generation:
                outdata.fill(0)
                self.tap.push(now, outdata[:, 0].copy(), self.rate)
                return
            written = 0
            became_idle = False
            with self._lock:
                while written < frames and self._buffer and not self._paused:
                    samples, mark_id = self._buffer[0]
                    take = min(frames - written, len(samples))
                    if mark_id == self._mark_id and self._first_sample_time is None:
                        self._first_sample_time = now + written / max(1, self.rate)
                    outdata[written : written + take, :] = samples[:take, None]
                    written += take
                    self._buffered -= take
                    if take == len(samples):
                        self._buffer.popleft()
                    else:
                        self._buffer[0] = (samples[take:], mark_id)
                became_idle = written > 0 and not self._buffer
            if written < frames:
                outdata[written:, :] = 0
            self.tap.push(now, outdata[:, 0].copy(), self.rate)  # the echo canceller's reference
            if written:
                self._last_audio_at = now
            if became_idle:
                self._signal_idle()

        return _callback

    def _signal_idle(self) -> None:
        loop, idle = self._loop, self._idle
        if loop is not None and idle is not None:
            try:
                loop.call_soon_threadsafe(idle.set)
            except RuntimeError:  # loop closed during shutdown
                pass

    def _on_reopened(self, device: AudioDevice) -> None:
        new_rate = int(device.default_samplerate) or 48_000
        with self._lock:
            if self.rate and new_rate != self.rate and self._buffer:
                joined = np.concatenate([s for s, _ in self._buffer])
                mark_id = self._buffer[-1][1]
                self._buffer = deque([(soxr.resample(joined, self.rate, new_rate).astype(np.float32), mark_id)])
                self._buffered = len(self._buffer[0][0])
            self.rate = new_rate
            self.channels = max(1, min(2, device.max_output_channels))
            self._resamplers.clear()

    # -- AudioSink --------------------------------------------------------------------
    async def start(self) -> None:
        self._idle = asyncio.Event()
        self._idle.set()
        await super().start()

    def play(self, chunk: AudioChunk) -> None:
        samples = validate_audio(self.op, chunk.samples)
        if samples.size == 0:
            return
        if chunk.sample_rate != self.rate:
            rs = self._resamplers.get(chunk.sample_rate)
            if rs is None:
                rs = self._resamplers[chunk.sample_rate] = soxr.ResampleStream(
                    chunk.sample_rate, self.rate, 1, dtype="float32", quality="HQ"
                )
            samples = rs.resample_chunk(samples)
        if samples.size == 0:
            return
        with self._lock:
            self._buffer.append((np.ascontiguousarray(samples, dtype=np.float32), self._mark_id))
            self._buffered += len(samples)
        if self._idle is not None:
            self._idle.clear()

    def pause(self) -> None:
        self._paused = True  # the next callback writes silence and keeps the queue

    def resume(self) -> None:
        self._paused = False

    def flush(self) -> None:
        with self._lock:
            self._paused = False
            self._buffer.clear()
            self._buffered = 0
            # A resampler holds a few ms of the old reply; start the next one clean.
            self._resamplers.clear()
        if self._idle is not None:
            self._idle.set()

    async def drain(self) -> None:
        """Wait until the callback has taken every queued sample (or give up when the
        device has been dead longer than the audio would have taken to play)."""
        if self._idle is None:
            return
        rate = max(1, self.rate)
        while True:
            budget = self._buffered / rate + 2.0
            try:
                await asyncio.wait_for(self._idle.wait(), budget)
                return
            except TimeoutError:
                if not self._paused:  # paused: the queue waits for a decision, not a dead device
                    self.flush()
                    return

    def mark(self) -> None:
        with self._lock:
            self._mark_id += 1
            self._first_sample_time = None

    @property
    def first_sample_time(self) -> float | None:
        return self._first_sample_time

    @property
    def is_playing(self) -> bool:
        if self._paused:
            return False
        return self._buffered > 0 or time.monotonic() - self._last_audio_at < 2 * self.block_s

    async def stop(self) -> None:
        self.flush()
        await self._shutdown()


def open_device_sink(
    name: str | None = None,
    host_api: str | None = None,
    **kwargs: Any,
) -> DeviceAudioSink:
    """A speaker sink for `name` (as `voxdesk doctor` lists it; None = default). Nothing
    opens until `await sink.start()`; a missing saved device falls back with a notice."""
    return DeviceAudioSink(name, host_api, **kwargs)
