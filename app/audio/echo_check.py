"""The echo check (Settings → Audio): can the user talk over VoxDesk on these devices?

A 3 s test sound (a sweep, then speech-like bursts of noise) plays through the speaker
while the microphone records; the speaker's own reference (`FarEndTap`, what it was
handed, by time) is read for every microphone frame, as the engine does. Then, off the
event loop, the recording and its reference go through the echo canceller in whole
10 ms blocks (`EchoPath`, the engine's own path) and we compare:

* the echo delay: where the recording correlates best with the reference;
* ERLE (dB of echo removed), over the second half of the sound: the canceller needs
  the first half to learn the room, as it does at the start of every session.

≥ 25 dB is what talking over a reply needs (a removed echo no longer sounds like
speech to the VAD); a microphone that hears nothing of the sound is a headset.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass

import numpy as np

from app.audio.far_end import FarEndTap
from app.audio.streams import AudioSink, AudioSource
from app.engine.echo_path import HEARD_RMS, EchoPath
from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import ECHO_BLOCK, SAMPLE_RATE, AudioChunk, EchoCanceller

OP = "audio.echo_check"
SOUND_S = 3.0
#: The sound starts once the microphone has delivered this long without a pause …
LEAD_S = 0.3
#: (frames arrive every 32 ms, in bursts on a busy machine; longer between them is a pause)
STALL_S = 0.15
#: A microphone that delivers nothing steady for this long is a broken one.
START_TIMEOUT_S = 6.0
#: … and goes on this long after it (the echo of the last sample is still on its way).
TAIL_S = 0.7
#: Echo delays beyond this are no echo a canceller can follow.
MAX_DELAY_S = 0.5
#: Below this correlation with the reference the microphone heard something else (noise).
ECHO_CORRELATION = 0.2
#: What talking over VoxDesk needs from the canceller.
GOOD_ERLE_DB = 25.0

WORKS = "Interrupting by voice will work"
HEADSET = "No echo heard: a headset? Interrupting by voice will work"
POOR = "Use headphones or keep half duplex"


@dataclass(frozen=True, slots=True)
class EchoCheckResult:
    delay_ms: float | None  # None: no echo heard
    erle_db: float | None  # None: no echo to remove (or the check failed)
    verdict: str
    ok: bool  # talking over VoxDesk will work on these devices
    detail: str = ""

    @property
    def measured(self) -> bool:
        """A verdict on the echo (False: a device or the canceller failed first)."""
        return self.verdict in (WORKS, HEADSET, POOR)

    def summary(self) -> str:
        """One line for the window and the command line."""
        parts = []
        if self.delay_ms is not None:
            parts.append(f"echo delay {self.delay_ms:.0f} ms")
        if self.erle_db is not None:
            parts.append(f"{self.erle_db:.0f} dB removed")
        head = f"{', '.join(parts)} — " if parts else ""
        return f"{head}{self.verdict}" + (f" ({self.detail})" if self.detail else "")


def check_sound(rate: int = SAMPLE_RATE) -> np.ndarray:
    """A logarithmic sweep (1 s), then syllable-like bursts of noise (2 s), at -10 dBFS peak."""
    t = np.arange(int(rate * 1.0)) / rate
    lo, hi = 150.0, 6000.0
    k = math.log(hi / lo)
    sweep = np.sin(2 * math.pi * lo * (np.exp(t * k) - 1) / k)
    rng = np.random.default_rng(15)
    n = int(rate * (SOUND_S - 1.0))
    # Pink-ish noise (more low than high, like a voice) in ~4 syllables a second.
    noise = np.convolve(rng.standard_normal(n), np.ones(4) / 4, "same")
    tb = np.arange(n) / rate
    envelope = np.clip(np.sin(2 * math.pi * 2.2 * tb) * 1.5, 0, 1) ** 0.5
    bursts = noise / np.max(np.abs(noise)) * envelope
    sound = np.concatenate([sweep, bursts]) * 0.3
    fade = int(rate * 0.01)
    sound[:fade] *= np.linspace(0, 1, fade)
    sound[-fade:] *= np.linspace(1, 0, fade)
    return sound.astype(np.float32)


async def run_echo_check(
    sink: AudioSink, source: AudioSource, canceller: EchoCanceller, *, sound: np.ndarray | None = None
) -> EchoCheckResult:
    """Play `sound` (default `check_sound()`) on `sink` while recording `source`, and judge
    `canceller` on the echo. Starts and stops both devices; a device that fails gives a
    result with `ok=False` saying which and why (nothing is raised for it)."""
    tap = sink.far_end
    if tap is None:
        return EchoCheckResult(None, None, "This speaker cannot be checked (it is not a sound device)", False)
    sound = check_sound() if sound is None else sound
    try:
        near, far = await _record(sink, source, tap, sound)
    except VoiceError as exc:
        return EchoCheckResult(None, None, f"Echo check failed: {exc.message}", False)
    except OSError as exc:  # PortAudio's own errors, seen as such on some hosts
        return EchoCheckResult(None, None, f"Echo check failed: {exc}", False)
    if len(near) < int(SOUND_S * SAMPLE_RATE):
        return EchoCheckResult(None, None, "Echo check failed: the microphone delivered too little audio", False)
    try:
        return await asyncio.to_thread(judge, canceller, near, far)
    except VoiceError as exc:  # the canceller itself (its library missing, say)
        return EchoCheckResult(None, None, f"Echo check failed: {exc.message}", False)


class _Capture:
    """The microphone and its reference, frame by frame in step, and whether frames flow."""

    def __init__(self, source: AudioSource, tap: FarEndTap) -> None:
        self.source, self.tap = source, tap
        self.near: list[np.ndarray] = []
        self.far: list[np.ndarray] = []
        self._flowing_since = self._last = 0.0

    async def run(self) -> None:
        async for at, frame in self.source.frames():
            now = time.monotonic()
            if now - self._last > STALL_S:
                self._flowing_since = now
            self._last = now
            self.near.append(frame)
            self.far.append(self.tap.take(at, len(frame)))

    async def steady(self) -> None:
        """Until frames have flowed for LEAD_S: a fresh PulseAudio stream may deliver
        nothing for ~2 s (or a few blocks, then a pause), and a sound played meanwhile
        would be half missing from the recording."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            now = time.monotonic()
            if self._last and now - self._last < STALL_S and now - self._flowing_since >= LEAD_S:
                return
            if now > deadline:
                raise VoiceError(OP, ErrorCode.AUDIO_DEVICE, "the microphone delivers no steady audio")
            await asyncio.sleep(0.02)

    def audio(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.near:
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        return np.concatenate(self.near), np.concatenate(self.far)


async def _record(
    sink: AudioSink, source: AudioSource, tap: FarEndTap, sound: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(microphone, reference) over the sound and its tail."""
    await source.start()
    try:
        await sink.start()
    except BaseException:
        await source.stop()
        raise
    _skip_unrated_blocks(tap)
    capture = _Capture(source, tap)
    task = asyncio.create_task(capture.run(), name="voxdesk-echo-check-record")
    try:
        await capture.steady()
        sink.mark()
        sink.play(AudioChunk(sound, SAMPLE_RATE))
        await sink.drain()
        await asyncio.sleep(TAIL_S)
    finally:
        await source.stop()  # ends `frames()`, so the capture returns
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, 2.0)
        await sink.stop()
    return capture.audio()


def _skip_unrated_blocks(tap: FarEndTap) -> None:
    """Drop the blocks a sink's first callbacks pushed before it knew its rate (rate 0: the
    tap cannot resample them and raises ValueError once per such block, dropping it)."""
    for _ in range(64):
        try:
            tap.take(time.monotonic(), 0)
            break
        except ValueError:
            continue
    tap.reset()


def echo_delay(near: np.ndarray, far: np.ndarray) -> tuple[float | None, float]:
    """(delay in ms, correlation 0…1) of the reference's echo in the microphone; no delay
    when nothing in the microphone looks like the reference."""
    max_lag = int(MAX_DELAY_S * SAMPLE_RATE)
    size = 1 << (len(near) + max_lag).bit_length()
    xc = np.fft.irfft(np.fft.rfft(near, size) * np.conj(np.fft.rfft(far, size)), size)[: max_lag + 1]
    lag = int(np.argmax(np.abs(xc)))
    # Normalised by the energies over the overlap at that lag: 1.0 is a clean, scaled copy.
    a, b = near[lag:], far[: len(far) - lag]
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    score = abs(float(xc[lag])) / norm if norm > 0 else 0.0
    return (lag * 1000 / SAMPLE_RATE if score >= ECHO_CORRELATION else None), score


def judge(canceller: EchoCanceller, near: np.ndarray, far: np.ndarray) -> EchoCheckResult:
    """The verdict on a recording and its reference (blocking: the canceller runs here)."""
    active = np.flatnonzero(np.abs(far) > 1e-4)
    if active.size == 0:
        return EchoCheckResult(None, None, "Echo check failed: the speaker played nothing", False)
    start, end = int(active[0]), int(active[-1]) + 1
    delay_ms, score = echo_delay(near, far)
    delay = int((delay_ms or 0) * SAMPLE_RATE / 1000)
    span = near[start + delay : min(len(near), end + delay)]
    heard_db = _dbfs(span)
    if delay_ms is None or _rms(span) < HEARD_RMS:
        detail = f"the microphone heard {heard_db:.0f} dBFS, nothing like the test sound"
        return EchoCheckResult(None, None, HEADSET, True, detail)
    cleaned = cancel(canceller, near, far)
    mid = (start + end) // 2
    lo, hi = mid + delay, min(len(near), end + delay)
    removed = 10 * math.log10(max(_energy(near[lo:hi]), 1e-12) / max(_energy(cleaned[lo:hi]), 1e-12))
    notes = [f"echo at {heard_db - _dbfs(far[start:end]):+.0f} dB of what played, correlation {score:.2f}"]
    if not canceller.cancels_echo:
        notes.insert(0, "the echo canceller is off")
    ok = removed >= GOOD_ERLE_DB
    noise_db = _noise_floor_dbfs(near[:start])
    if not ok and canceller.cancels_echo and noise_db is not None and _dbfs(cleaned[lo:hi]) <= noise_db + 1.0:
        # A quiet echo in a noisy room: what is left of it is lost in the room's own noise
        # (the ERLE cannot exceed the echo-to-noise ratio), so the VAD cannot tell it apart.
        ok = True
        notes.append(f"what is left of it is below the room's noise ({noise_db:.0f} dBFS)")
    return EchoCheckResult(delay_ms, removed, WORKS if ok else POOR, ok, "; ".join(notes))


def _noise_floor_dbfs(before: np.ndarray, frame: int = 512) -> float | None:
    """The microphone's level before the sound: the median frame (a click does not count);
    None when too little was recorded before it."""
    n = len(before) // frame
    if n < 3:
        return None
    power = np.mean(np.square(before[: n * frame].reshape(n, frame), dtype=np.float64), axis=1)
    return 10 * math.log10(max(float(np.median(power)), 1e-12))


class _Recorded(FarEndTap):
    """A reference already read (in step with the recording): `EchoPath` takes it back in order."""

    def __init__(self, far: np.ndarray) -> None:
        super().__init__()
        self._recorded = far
        self._pos = 0

    def take(self, end_at: float, n: int) -> np.ndarray:
        out = self._recorded[self._pos : self._pos + n]
        self._pos += n
        return out


def cancel(canceller: EchoCanceller, near: np.ndarray, far: np.ndarray, frame: int = 512) -> np.ndarray:
    """`near` through the canceller the way the engine feeds it (512-sample frames, whole
    10 ms blocks), realigned: EchoPath's output runs one block behind its input."""
    path, tap = EchoPath(), _Recorded(far)
    canceller.reset()
    n = len(near) // frame * frame
    out = np.concatenate([path.process(canceller, tap, near[i : i + frame], 0.0) for i in range(0, n, frame)])
    return np.concatenate([out[ECHO_BLOCK:], np.zeros(len(near) - n + ECHO_BLOCK, np.float32)])


def _energy(x: np.ndarray) -> float:
    return float(np.sum(np.square(x, dtype=np.float64)))


def _rms(x: np.ndarray) -> float:
    return math.sqrt(_energy(x) / len(x)) if len(x) else 0.0


def _dbfs(x: np.ndarray) -> float:
    return 20 * math.log10(max(_rms(x), 1e-6))
