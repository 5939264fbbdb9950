"""The stream watchdog on fake streams: a sound server's pauses are no lost device.

A fake PortAudio stream calls back every 10 ms from its own thread, or plays a script:
pause after a few callbacks (PulseAudio's start-up pause), stop for good (a dead
device), or fail to open. Timings are scaled down from the real ones.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from app.audio import devices as audio_devices
from app.audio.devices import AudioDevice, SupervisedStream
from app.plugin.errors import ErrorCode, VoiceError

SPEAKER = AudioDevice(0, "pulse", "ALSA", 32, 32, 44_100.0, is_default_input=True, is_default_output=True)
HEADSET = AudioDevice(1, "USB Headset", "ALSA", 0, 2, 48_000.0)


class FakeStream:
    """Calls back every 10 ms; `pause_after` callbacks in, pauses `pause_s` (None: forever)."""

    def __init__(self, owner: FakeSpeaker, pause_after: int | None, pause_s: float | None) -> None:
        self.owner, self.pause_after, self.pause_s = owner, pause_after, pause_s
        self.closed = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        n = 0
        while not self.closed.wait(0.01):
            if n == self.pause_after and (self.pause_s is None or self.closed.wait(self.pause_s)):
                return  # closed during the pause, or dead for good
            self.owner._stamp_callback(time.monotonic())
            n += 1

    def abort(self) -> None:
        self.closed.set()

    def close(self) -> None:
        self.closed.set()


class FakeSpeaker(SupervisedStream):
    direction = "output"
    stall_s = 0.15
    start_grace_s = 0.4
    starved_stall_s = 0.15  # no allowance for a busy machine: judge the policy alone
    retry_delay_s = 0.05
    steady_s = 0.5

    def __init__(self, script: list[str], device: str | None = None, open_delay_s: float = 0.0) -> None:
        super().__init__(device)
        self.script = list(script)  # one word per stream opened; then healthy streams
        self.open_delay_s = open_delay_s
        self.opened: list[str] = []

    def _make_stream(self, device: AudioDevice) -> FakeStream:
        self.opened.append(device.name)
        time.sleep(self.open_delay_s)
        step = self.script.pop(0) if self.script else "healthy"
        if step == "fail":
            raise VoiceError(self.op, ErrorCode.AUDIO_DEVICE, "could not open")
        if step == "pause":  # the server's start-up pause, a bit under the grace
            return FakeStream(self, 2, 0.3)
        if step == "dies":
            return FakeStream(self, 3, None)
        return FakeStream(self, None, None)


@pytest.fixture
def devices(monkeypatch: pytest.MonkeyPatch) -> list[AudioDevice]:
    listed = [SPEAKER]

    def _list(direction: Any = None) -> list[AudioDevice]:
        return [d for d in listed if direction is None or d.supports(direction)]

    monkeypatch.setattr(audio_devices, "list_devices", _list)
    return listed


async def run_for(stream: FakeSpeaker, seconds: float) -> None:
    await stream.start()
    try:
        await asyncio.sleep(seconds)
    finally:
        await stream._shutdown()


async def test_a_stall_reopens_the_same_device_quietly(devices: list[AudioDevice]) -> None:
    speaker = FakeSpeaker(["dies"])
    await run_for(speaker, 2.0)
    assert speaker.errors == [] and speaker.notices == []
    assert speaker.opened == ["pulse", "pulse"]
    assert speaker.quiet_reopens == 1 and speaker.reopen_count == 0


async def test_a_failing_reopen_of_the_same_device_is_retried_and_never_a_switch_to_itself(
    devices: list[AudioDevice],
) -> None:
    speaker = FakeSpeaker(["dies", "fail", "healthy"])
    await run_for(speaker, 2.0)
    assert speaker.opened[:3] == ["pulse", "pulse", "pulse"]
    assert speaker.errors == [] and speaker.notices == []
    assert speaker.device is not None and speaker.device.name == "pulse"


async def test_a_device_that_keeps_failing_is_lost_once_without_a_switch_to_itself(
    devices: list[AudioDevice],
) -> None:
    speaker = FakeSpeaker(["dies", "dies", "dies", "dies", "dies", "dies"])
    await run_for(speaker, 4.0)
    assert len(speaker.errors) == 1, [e.message for e in speaker.errors]
    message = speaker.errors[0].message
    assert "was lost" in message and "trying again" in message and "switching" not in message
    assert not any("switched" in n for n in speaker.notices)
    assert speaker.reopen_count == 0


async def test_a_device_gone_from_the_list_switches_to_the_default(devices: list[AudioDevice]) -> None:
    devices.append(HEADSET)
    speaker = FakeSpeaker(["dies"], device="USB Headset")
    await speaker.start()
    try:
        assert speaker.device is not None and speaker.device.name == "USB Headset"
        devices.remove(HEADSET)  # unplugged
        deadline = time.monotonic() + 3
        while not speaker.notices and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    finally:
        await speaker._shutdown()
    assert speaker.opened == ["USB Headset", "pulse"]  # no retry on a device that is gone
    assert len(speaker.errors) == 1 and "switching to the default speaker “pulse (ALSA)”" in speaker.errors[0].message
    assert speaker.notices == ["speaker switched to the default “pulse (ALSA)”"]


async def test_the_start_up_grace_counts_from_when_the_stream_started(devices: list[AudioDevice]) -> None:
    # Opening took longer than the grace (the engine's worker threads were busy); the
    # server's start-up pause that follows is still start-up, not a stall.
    speaker = FakeSpeaker(["pause", "pause", "pause"], open_delay_s=0.6)
    await run_for(speaker, 1.5)
    assert speaker.errors == [] and speaker.notices == [] and speaker.quiet_reopens == 0


async def test_the_open_does_not_wait_for_the_loops_busy_worker_threads(devices: list[AudioDevice]) -> None:
    loop = asyncio.get_running_loop()
    busy = [loop.run_in_executor(None, time.sleep, 1.0) for _ in range(64)]
    speaker = FakeSpeaker([])
    began = time.monotonic()
    await speaker.start()
    opened_in = time.monotonic() - began
    await speaker._shutdown()
    await asyncio.gather(*busy)
    assert opened_in < 0.5
