"""The echo check on real devices: the private PulseAudio's null sinks (tests/audio_env.sh),
a `module-loopback` from the speaker into the microphone as the room (tests/audio_room.py),
and the real WebRTC canceller (pywebrtc-audio) against the pass-through `off`."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from app.audio import devices as audio_devices
from app.audio.capture import DeviceAudioSource
from app.audio.echo_check import HEADSET, POOR, SOUND_S, WORKS, check_sound, judge, run_echo_check
from app.audio.files import WavFileSink, WavFileSource, write_wav
from app.audio.playback import DeviceAudioSink
from app.plugin.provider_api import SAMPLE_RATE, EchoCanceller
from app.plugin.registry import get_registry


def canceller(name: str) -> EchoCanceller:
    made = get_registry().create("echo", name, {})
    assert isinstance(made, EchoCanceller)
    return made


ROOT = Path(__file__).resolve().parents[2]


def _pactl(*args: str) -> str:
    return subprocess.run(["pactl", *args], check=True, capture_output=True, text=True, timeout=10).stdout


@pytest.fixture
def pulse() -> Iterator[dict[str, str]]:
    """The private PulseAudio, with this process's PortAudio pointed at it."""
    try:
        out = subprocess.run([str(ROOT / "tests/audio_env.sh"), "start"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"PulseAudio could not start: {exc}")
    if out.returncode != 0:
        pytest.skip(f"PulseAudio could not start: {out.stderr.strip()}")
    env = dict(line.removeprefix("export ").split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    assert audio_devices.load_sounddevice() is not None, audio_devices.portaudio_error()
    assert audio_devices.rescan_devices(streams_open=False)
    yield env
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@contextmanager
def room_echo(latency_ms: int = 60) -> Iterator[None]:
    """What the speaker plays comes back into the microphone `latency_ms` later, like
    laptop speakers (sink `mic`'s monitor is the PCM vox_mic). The loopback's rate
    adjustment is off: it moves a fresh loopback's delay during the first seconds
    (1 check in 6 then saw 8 dB removed), which no room does."""
    module = _pactl(
        "load-module",
        "module-loopback",
        "source=speaker.monitor",
        "sink=mic",
        f"latency_msec={latency_ms}",
        "adjust_time=0",
    ).strip()
    try:
        yield
    finally:
        subprocess.run(["pactl", "unload-module", module], capture_output=True, timeout=10)


async def check(name: str) -> object:
    return await run_echo_check(DeviceAudioSink("vox_speaker"), DeviceAudioSource("vox_mic"), canceller(name))


@pytest.mark.audio
async def test_laptop_speakers_in_a_room_pass_with_webrtc_and_fail_without(
    pulse: dict[str, str], tmp_path: Path
) -> None:
    with room_echo(60):
        cancelled = await check("webrtc")
        passed_through = await check("off")
    for result in (cancelled, passed_through):
        # 60 ms of room on top of the devices' own latency (~55 ms on these null sinks).
        assert result.delay_ms is not None and 60 <= result.delay_ms <= 300, result
    assert cancelled.verdict == WORKS and cancelled.ok, cancelled
    assert cancelled.erle_db is not None and cancelled.erle_db >= 25, cancelled
    assert passed_through.verdict == POOR and not passed_through.ok, passed_through
    assert passed_through.erle_db is not None and abs(passed_through.erle_db) < 3, passed_through
    assert "canceller is off" in passed_through.detail
    assert "dB removed" in cancelled.summary() and "echo delay" in cancelled.summary()


@pytest.mark.audio
async def test_a_microphone_that_hears_nothing_is_a_headset(pulse: dict[str, str]) -> None:
    result = await check("webrtc")
    assert result.verdict == HEADSET and result.ok, result
    assert result.delay_ms is None and result.erle_db is None


async def test_a_speaker_nobody_hears_cannot_be_checked(tmp_path: Path) -> None:
    sound = check_sound()
    assert len(sound) == int(SOUND_S * SAMPLE_RATE) and 0.2 < float(np.max(np.abs(sound))) <= 0.31
    source = WavFileSource(write_wav(tmp_path / "mic.wav", sound, SAMPLE_RATE), realtime=False)
    result = await run_echo_check(WavFileSink(tmp_path / "out.wav"), source, canceller("off"))
    assert not result.ok and "cannot be checked" in result.verdict, result
    assert result.delay_ms is None and result.erle_db is None


def test_judge_finds_the_delay_of_a_simulated_echo_and_webrtc_removes_it() -> None:
    far = np.concatenate([np.zeros(4800, np.float32), check_sound(), np.zeros(11200, np.float32)])
    delay = 1600  # 100 ms
    rng = np.random.default_rng(3)
    near = (0.5 * np.roll(far, delay) + 1e-4 * rng.standard_normal(len(far))).astype(np.float32)
    result = judge(canceller("webrtc"), near, far)
    assert result.delay_ms == pytest.approx(100, abs=1), result
    assert result.ok and result.erle_db is not None and result.erle_db >= 25, result
    noise_only = (0.01 * rng.standard_normal(len(far))).astype(np.float32)
    heard_nothing = judge(canceller("webrtc"), noise_only, far)
    assert heard_nothing.verdict == HEADSET and heard_nothing.delay_ms is None, heard_nothing


@pytest.mark.audio
@pytest.mark.usefixtures("pulse")
def test_the_command_line_check_exits_by_its_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    from app.commands.cli import main

    devices = ["echo-check", "--mic", "vox_mic", "--speaker", "vox_speaker", "--json"]
    with room_echo(60):
        cancelled = main(devices)
        cancelled_out = json.loads(capsys.readouterr().out)
        passed_through = main([*devices, "--set", "echo.provider=off"])
        passed_through_out = json.loads(capsys.readouterr().out)
    assert cancelled == 0 and cancelled_out["verdict"] == WORKS, cancelled_out
    assert cancelled_out["canceller"] == "webrtc"
    assert cancelled_out["erle_db"] >= 25 and 60 <= cancelled_out["delay_ms"] <= 300
    assert passed_through == 1 and passed_through_out["verdict"] == POOR, passed_through_out
    assert main(["echo-check", "--set", "echo.options.noise_level=9"]) == 2  # the canceller refuses it


def test_a_quiet_echo_left_below_the_rooms_noise_is_no_problem() -> None:
    """The ERLE cannot exceed the echo-to-noise ratio: an echo 8 dB over the room's noise
    that the canceller takes below that noise passes, though fewer than 25 dB went."""
    far = np.concatenate([np.zeros(8000, np.float32), check_sound(), np.zeros(11200, np.float32)])
    rng = np.random.default_rng(5)
    noise = (10 ** (-45 / 20) * rng.standard_normal(len(far))).astype(np.float32)
    near = (0.1 * np.roll(far, 1600) + noise).astype(np.float32)
    result = judge(canceller("webrtc"), near, far)
    assert result.erle_db is not None and result.erle_db < 25, result
    assert result.ok and result.verdict == WORKS and "below the room's noise" in result.detail, result
    # The same echo without the canceller is left as it was: no pass for that.
    assert not judge(canceller("off"), near, far).ok
