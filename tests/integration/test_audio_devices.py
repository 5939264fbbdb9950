"""Real PortAudio devices on a private PulseAudio with null sinks (tests/audio_env.sh).

`mic` is a sink the test "speaks" into; the app listens on its monitor through the ALSA
PCM `vox_mic`. The app plays into `vox_speaker` (sink `speaker`); the test listens on
`speaker.monitor`. `default` is the `fallback` sink/monitor, where streams go after a
device is lost.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soxr

from app.audio import devices as audio_devices
from app.audio.capture import DeviceAudioSource
from app.audio.desktop_names import device_choices
from app.audio.devices import audio_status, choose_device, doctor_audio_report, list_devices
from app.audio.playback import DeviceAudioSink
from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import SAMPLE_RATE, AudioChunk
from tests.support.speech import have_espeak, speak, write_wav

ROOT = Path(__file__).resolve().parents[2]
#: A device that stays stalled is lost after the watchdog's quiet reopens of it: each
#: waits out a fresh stream's start-up grace (2.5 s) and a stall (0.7 s).
LOST_WITHIN_S = 9.0
pytestmark = pytest.mark.audio


@pytest.fixture(scope="module")
def pulse() -> Iterator[dict[str, str]]:
    """Start (or reuse) the private PulseAudio and point this process's PortAudio at it."""
    try:
        out = subprocess.run([str(ROOT / "tests/audio_env.sh"), "start"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"PulseAudio could not start: {exc}")
    if out.returncode != 0:
        pytest.skip(f"PulseAudio could not start: {out.stderr.strip()}")
    env = dict(line.removeprefix("export ").split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    sd = audio_devices.load_sounddevice()
    assert sd is not None, audio_devices.portaudio_error()
    assert audio_devices.rescan_devices(streams_open=False)  # pick up the ALSA config above
    yield env
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def pactl(*args: str) -> str:
    return subprocess.run(["pactl", *args], check=True, capture_output=True, text=True, timeout=10).stdout


def tone(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def best_correlation(reference: np.ndarray, recorded: np.ndarray) -> float:
    """Peak normalised cross-correlation: 1.0 = the same waveform somewhere in `recorded`."""
    if len(recorded) < len(reference):
        return 0.0
    n = len(recorded) + len(reference)
    size = 1 << (n - 1).bit_length()
    xc = np.fft.irfft(np.fft.rfft(recorded, size) * np.conj(np.fft.rfft(reference, size)), size)
    xc = xc[: len(recorded) - len(reference) + 1]
    energy = np.convolve(recorded**2, np.ones(len(reference)), "valid")
    score = xc / (np.sqrt(np.maximum(energy, 1e-12)) * np.linalg.norm(reference))
    return float(np.max(score))


def share_of_segments_found(reference: np.ndarray, recorded: np.ndarray, seg_s: float = 0.25) -> float:
    """Share of the reference's voiced 0.25 s pieces found almost intact in `recorded`.
    Tolerates a scheduling glitch on a loaded machine that would sink a whole-file match."""
    n = int(seg_s * SAMPLE_RATE)
    pieces = [reference[i : i + n] for i in range(0, len(reference) - n + 1, n)]
    voiced = [p for p in pieces if np.sqrt(np.mean(p**2)) > 0.02]
    found = [best_correlation(p, recorded) > 0.8 for p in voiced]
    return sum(found) / max(1, len(found))


def sample_times(frames: list[tuple[float, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """All samples with their monotonic capture time (frame time = its last sample)."""
    audio = np.concatenate([f for _, f in frames])
    offsets = (np.arange(512) - 511) / SAMPLE_RATE
    times = np.concatenate([t + offsets for t, _ in frames])
    return audio, times


class Recorder:
    """Our own capture on a device, collecting (time, frame) in the background."""

    def __init__(self, device: str, **kwargs: Any) -> None:
        self.source = DeviceAudioSource(device, **kwargs)
        self.frames: list[tuple[float, np.ndarray]] = []
        self.received: list[float] = []
        self.first = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Recorder:
        await self.source.start()
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.first.wait(), 5)
        return self

    async def _run(self) -> None:
        async for item in self.source.frames():
            self.received.append(time.monotonic())
            self.frames.append(item)
            self.first.set()

    async def __aexit__(self, *exc: object) -> None:
        await self.source.stop()
        assert self._task is not None
        await asyncio.wait_for(self._task, 5)

    async def wait_for_loud(self, after: float, threshold: float = 0.05, timeout: float = 5.0) -> float:
        """Monotonic capture time of the first loud sample after `after`."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for t, f in self.frames[seen:]:
                if t >= after and np.max(np.abs(f)) > threshold:
                    idx = int(np.argmax(np.abs(f) > threshold))
                    return t - (511 - idx) / SAMPLE_RATE
            seen = len(self.frames)
            await asyncio.sleep(0.02)
        raise AssertionError(f"no sound within {timeout} s")


@pytest.fixture
async def speaker(pulse: dict[str, str]) -> AsyncIterator[DeviceAudioSink]:
    errors: list[VoiceError] = []
    sink = DeviceAudioSink("vox_speaker", on_error=errors.append)
    await sink.start()
    # A new PulseAudio stream prebuffers and may pause up to the null sink's 2 s cycle
    # before it runs steadily; a real app opens its speaker long before the first reply.
    await asyncio.sleep(2.0)
    yield sink
    await sink.stop()


def test_device_list_shows_the_virtual_devices_and_choosing_by_name(pulse: dict[str, str]) -> None:
    inputs = {d.name: d for d in list_devices("input")}
    outputs = {d.name: d for d in list_devices("output")}
    assert "vox_mic" in inputs and "vox_speaker" in outputs
    assert any(d.is_default_output for d in outputs.values())
    report = "\n".join(doctor_audio_report())
    assert "vox_mic (ALSA)" in report and "vox_speaker (ALSA)" in report
    # by name + host API, by the label doctor prints, by a unique part of the name
    assert choose_device("input", "vox_mic", "ALSA").device.name == "vox_mic"
    assert choose_device("input", "vox_mic (ALSA)").device.name == "vox_mic"
    assert choose_device("output", "vox_speaker", "ALSA").notice is None
    gone = choose_device("input", "USB Headset", "ALSA")
    assert gone.device.is_default_input
    assert gone.notice and "USB Headset" in gone.notice and "default" in gone.notice


def test_the_default_devices_are_named_as_the_sound_server_names_them(pulse: dict[str, str]) -> None:
    outputs = dict(device_choices("output"))
    inputs = dict(device_choices("input"))
    assert outputs["default (ALSA)"] == "Default — Fallback"  # the default sink's description
    assert outputs["pulse (ALSA)"] == "Default — Fallback (PulseAudio)"
    assert inputs["default (ALSA)"] == "Default — Monitor of Fallback"
    assert outputs["vox_speaker (ALSA)"] == "vox_speaker (ALSA)"  # no name of its own: the id
    pactl("set-default-sink", "mic")
    try:
        assert dict(device_choices("output"))["default (ALSA)"] == "Default — VoxMic"
    finally:
        pactl("set-default-sink", "fallback")


@pytest.mark.skipif(not have_espeak(), reason="espeak-ng is not installed")
async def test_capture_hears_speech_played_into_the_mic(pulse: dict[str, str], tmp_path: Path) -> None:
    speech = speak("what time is it", 22_050)
    wav = write_wav(tmp_path / "q.wav", speech, 22_050)
    levels: list[tuple[float, float]] = []
    async with Recorder("vox_mic", on_level=lambda r, p: levels.append((r, p))) as rec:
        assert rec.source.device is not None and rec.source.device.name == "vox_mic"
        start = time.monotonic()
        await asyncio.to_thread(subprocess.run, ["paplay", "--device=mic", str(wav)], check=True, timeout=20)
        await rec.wait_for_loud(start)
        tail_until = time.monotonic() + 0.5
        while time.monotonic() < tail_until:
            await asyncio.sleep(0.05)
    audio, _ = sample_times(rec.frames)
    reference = soxr.resample(speech, 22_050, SAMPLE_RATE)
    assert best_correlation(reference, audio) > 0.8
    times = np.array([t for t, _ in rec.frames])
    # frames are contiguous 32 ms of audio, delivered promptly
    assert np.median(np.diff(times)) == pytest.approx(0.032, abs=0.004)
    assert len(rec.frames) == pytest.approx((times[-1] - times[0]) / 0.032 + 1, rel=0.05)
    assert np.median(np.array(rec.received) - times) < 0.040
    assert rec.source.dropped_frames == 0
    assert max(p for _, p in levels) > -20 and min(r for r, _ in levels) < -60  # meter saw speech and quiet


class Parec:
    """`parec` on a monitor source, read by a thread (the issue's independent witness)."""

    def __init__(self, source: str) -> None:
        self.proc = subprocess.Popen(
            [
                "parec",
                f"--device={source}",
                "--format=s16le",
                "--rate=16000",
                "--channels=1",
                "--raw",
                "--latency-msec=20",
            ],
            stdout=subprocess.PIPE,
        )
        self.data = bytearray()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        stdout: Any = self.proc.stdout  # a BufferedReader: read1 returns what has arrived
        while chunk := stdout.read1(4096):
            self.data.extend(chunk)

    @property
    def audio(self) -> np.ndarray:
        raw = bytes(self.data)
        return np.frombuffer(raw[: len(raw) // 2 * 2], "<i2").astype(np.float32) / 32768

    async def wait_for_sound_of(self, seconds: float, timeout: float = 8.0) -> np.ndarray:
        """Until `seconds` of audio after the first loud sample have arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            audio = self.audio
            loud = np.nonzero(np.abs(audio) > 0.02)[0]
            if len(loud) and len(audio) - loud[0] >= (seconds + 0.2) * SAMPLE_RATE:
                return audio
            await asyncio.sleep(0.05)
        return self.audio

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)
        self.thread.join(5)


@pytest.mark.skipif(not have_espeak(), reason="espeak-ng is not installed")
async def test_playback_of_tts_chunks_reaches_the_speaker(speaker: DeviceAudioSink) -> None:
    speech = speak("it is ten past four", 22_050)
    parec = Parec("speaker.monitor")
    try:
        speaker.mark()
        asked = time.monotonic()
        for piece in np.array_split(speech, 12):  # Piper-like sentence chunks at 22.05 kHz
            speaker.play(AudioChunk(piece, 22_050))
        assert speaker.is_playing
        await asyncio.wait_for(speaker.drain(), 10)
        assert speaker.first_sample_time is not None
        assert 0 <= speaker.first_sample_time - asked < 0.5
        recorded = await parec.wait_for_sound_of(len(speech) / 22_050)
    finally:
        parec.close()
    assert share_of_segments_found(soxr.resample(speech, 22_050, SAMPLE_RATE), recorded) >= 0.8


async def test_flush_silences_the_speaker_within_50_ms(speaker: DeviceAudioSink) -> None:
    async with Recorder("vox_speaker_monitor") as rec:
        speaker.mark()
        speaker.play(AudioChunk(tone(440, 5.0, 22_050), 22_050))
        onset = await rec.wait_for_loud(0)
        assert speaker.first_sample_time is not None
        loopback = onset - speaker.first_sample_time  # sink → monitor → capture delay
        await asyncio.sleep(0.5)
        flushed_at = time.monotonic()
        speaker.flush()
        await asyncio.wait_for(speaker.drain(), 1)
        await asyncio.sleep(0.6)
    audio, times = sample_times(rec.frames)
    loud = times[np.abs(audio) > 0.05]
    last_loud = float(loud.max())
    assert last_loud - flushed_at - loopback <= 0.050
    assert not speaker.is_playing


async def test_speaker_recovers_after_its_sink_is_removed(pulse: dict[str, str]) -> None:
    errors: list[VoiceError] = []
    sink = DeviceAudioSink("vox_speaker", on_error=errors.append)
    await sink.start()
    module = next(
        line.split()[0] for line in pactl("list", "short", "modules").splitlines() if "sink_name=speaker" in line
    )
    try:
        async with Recorder("default") as fallback:  # the default sink's monitor
            sink.play(AudioChunk(tone(440, 8.0, 22_050), 22_050))
            # Let the witness's own new stream get past PulseAudio's start-up pause, or its
            # late frames would be charged to the recovery.
            await asyncio.sleep(1.5)
            removed_at = time.monotonic()
            pactl("unload-module", module)
            heard = await fallback.wait_for_loud(removed_at, timeout=3)
            assert heard - removed_at <= 1.0
    finally:
        await sink.stop()
        pactl("load-module", "module-null-sink", "sink_name=speaker", "rate=44100", "channels=2")


async def test_speaker_watchdog_reopens_on_the_default_when_the_device_stalls(
    pulse: dict[str, str],
) -> None:
    """A stall is first met by reopening the same device (a sound server's pause is no
    lost device); one that stays stalled is lost, and the reply moves to the default."""
    errors: list[VoiceError] = []
    notices: list[str] = []
    sink = DeviceAudioSink("vox_speaker", on_error=errors.append, on_notice=notices.append)
    await sink.start()
    await asyncio.sleep(2.6)  # past the start-up grace
    try:
        async with Recorder("default") as fallback:
            sink.play(AudioChunk(tone(440, 20.0, 22_050), 22_050))
            stalled_at = time.monotonic()
            pactl("suspend-sink", "speaker", "1")  # PortAudio just stops calling back
            while not errors and time.monotonic() - stalled_at < LOST_WITHIN_S:
                await asyncio.sleep(0.02)
            detected = time.monotonic() - stalled_at
            assert errors and errors[0].code is ErrorCode.AUDIO_DEVICE, "stall not detected"
            assert sink.quiet_reopens == sink.same_device_retries  # the same device first
            assert "vox_speaker" in errors[0].message and "switching to the default speaker" in errors[0].message
            heard = await fallback.wait_for_loud(stalled_at + detected, timeout=5)
            assert sink.device is not None and sink.device.name == "default"
            assert any("default" in n for n in notices)
            print(f"lost after {detected:.2f} s, audio on default after {heard - stalled_at:.2f} s")
    finally:
        pactl("suspend-sink", "speaker", "0")
        await sink.stop()


async def test_microphone_watchdog_reopens_on_the_default(pulse: dict[str, str]) -> None:
    errors: list[VoiceError] = []
    async with Recorder("vox_mic", on_error=errors.append) as rec:
        await asyncio.sleep(2.6)  # past the start-up grace
        stalled_at = time.monotonic()
        pactl("suspend-sink", "mic", "1")
        try:
            while not errors and time.monotonic() - stalled_at < LOST_WITHIN_S:
                await asyncio.sleep(0.02)
            assert errors and errors[0].code is ErrorCode.AUDIO_DEVICE
            assert rec.source.quiet_reopens == rec.source.same_device_retries
            count = len(rec.frames)
            while len(rec.frames) == count and time.monotonic() - stalled_at < LOST_WITHIN_S + 5:
                await asyncio.sleep(0.02)
            assert len(rec.frames) > count, "no frames after reopening on the default microphone"
            assert rec.source.device is not None and rec.source.device.name == "default"
        finally:
            pactl("suspend-sink", "mic", "0")


def test_portaudio_unavailable_by_environment_is_a_clean_status(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXDESK_NO_PORTAUDIO", "1")
    status = audio_status()
    assert not status.microphone
    assert status.message.startswith("microphone disabled: PortAudio library not found")
    assert "sudo apt install libportaudio2" in status.message
    assert list_devices() == []
    assert "libportaudio2" in doctor_audio_report()[0]
    with pytest.raises(VoiceError) as err:
        choose_device("input", "vox_mic")
    assert err.value.code is ErrorCode.AUDIO_DEVICE and "libportaudio2" in err.value.message


async def test_missing_portaudio_library_oserror_disables_the_microphone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real failure: `import sounddevice` raises OSError when libportaudio is absent."""
    real_import = builtins.__import__

    def no_portaudio(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(audio_devices, "_sd_module", None)
    monkeypatch.setattr(builtins, "__import__", no_portaudio)
    status = audio_status()
    assert not status.microphone and "sudo apt install libportaudio2" in status.message
    source = DeviceAudioSource("vox_mic")
    with pytest.raises(VoiceError) as err:
        await source.start()
    assert err.value.code is ErrorCode.AUDIO_DEVICE
    await source.stop()
