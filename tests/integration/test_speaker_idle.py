"""Replies after idle pauses on the PulseAudio devices: no false "speaker lost".

The way the app plays: the engine's `Speaker` parks the device sink when idle, and
reopens it when the user starts to talk — while the engine's worker threads are busy
with the question. PulseAudio's module-suspend-on-idle suspends the sink in the gap, as
on a desktop, so every reply reopens a stream on a suspended sink. The default device is
the fresh install's choice (`default`, which a loss would "switch" to).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from app.audio.playback import DeviceAudioSink
from app.engine.context import EngineContext
from app.engine.events import Event, Notice
from app.engine.speaker import Speaker, SpeakerOptions
from app.plugin.errors import VoiceError
from app.plugin.provider_api import AudioChunk
from tests.integration.test_audio_devices import pactl, pulse, tone

__all__ = ["pulse"]  # the fixture, for this module's tests and the soak's

pytestmark = pytest.mark.audio

#: PulseAudio device names: the PortAudio device, and the sink it plays into.
SINKS = {"default": "fallback", "vox_speaker": "speaker"}


@dataclass
class IdleRun:
    replies: int = 0
    lost: list[str] = field(default_factory=list)  # what the user would have seen in red
    switched: list[str] = field(default_factory=list)
    suspended_gaps: int = 0  # gaps in which PulseAudio really suspended the sink
    first_sample_s: list[float] = field(default_factory=list)


def sink_state(sink: str) -> str:
    for line in pactl("list", "short", "sinks").splitlines():
        parts = line.split("\t")
        if len(parts) > 1 and parts[1] == sink:
            return parts[-1]
    return "MISSING"


@contextlib.contextmanager
def suspend_on_idle(timeout_s: int) -> Iterator[None]:
    """module-suspend-on-idle loaded for the block (a desktop's PulseAudio has it)."""
    for line in pactl("list", "short", "modules").splitlines():
        if "module-suspend-on-idle" in line:
            pactl("unload-module", line.split()[0])
    module = pactl("load-module", "module-suspend-on-idle", f"timeout={timeout_s}").strip()
    try:
        yield
    finally:
        subprocess.run(["pactl", "unload-module", module], capture_output=True, timeout=10)


def _context(run: IdleRun, tasks: set[asyncio.Task[Any]]) -> EngineContext:
    def report(stage: str, provider: str, err: VoiceError, turn_id: str | None = None) -> None:
        run.lost.append(err.message)

    def emit(event: Event) -> None:
        if isinstance(event, Notice) and "switched" in event.message:
            run.switched.append(event.message)

    def spawn(coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    return EngineContext(clock=time.monotonic, sleep=asyncio.sleep, spawn=spawn, emit=emit, report=report)


async def play_replies(device: str, replies: int, gap_s: float, idle_close_s: float) -> IdleRun:
    """`replies` 1.5 s replies with `gap_s` of silence between them, the app's way."""
    run = IdleRun()
    tasks: set[asyncio.Task[Any]] = set()
    speaker = Speaker(_context(run, tasks), DeviceAudioSink(device), SpeakerOptions(idle_close_s=idle_close_s))
    reply = tone(440, 1.5, 22_050, amp=0.3)
    loop = asyncio.get_running_loop()
    await speaker.start()
    try:
        for i in range(replies):
            if i:
                await asyncio.sleep(gap_s - 1.0)
                run.suspended_gaps += sink_state(SINKS[device]) == "SUSPENDED"
                await asyncio.sleep(1.0)
            # The user has started to talk: the engine's workers decode, and the speaker reopens.
            busy = [loop.run_in_executor(None, time.sleep, 1.5) for _ in range(16)]
            await speaker.ensure_open()
            speaker.begin_reply()
            asked = time.monotonic()
            for piece in np.array_split(reply, 6):
                speaker.play(AudioChunk(piece, 22_050))
            await asyncio.wait_for(speaker.drain(), 10)
            if speaker.first_sample_time is not None:
                run.first_sample_s.append(speaker.first_sample_time - asked)
            await asyncio.gather(*busy)
            run.replies += 1
            speaker.park_later()
    finally:
        speaker.closed = True
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if speaker.sink is not None:
            await speaker.sink.stop()
    return run


def describe(run: IdleRun) -> str:
    delays = ", ".join(f"{d:.2f}" for d in run.first_sample_s)
    return (
        f"{len(run.lost)} false 'speaker lost' over {run.replies} replies; sink suspended in "
        f"{run.suspended_gaps} gaps; first sample after [{delays}] s"
    )


@pytest.mark.parametrize("device", ["default", "vox_speaker"])
async def test_replies_after_idle_gaps_raise_no_speaker_lost(pulse: dict[str, str], device: str) -> None:
    with suspend_on_idle(timeout_s=1):
        run = await play_replies(device, replies=3, gap_s=6.0, idle_close_s=2.0)
    print(describe(run))
    assert run.replies == 3
    assert run.suspended_gaps == 2, "PulseAudio did not suspend the idle sink: the test proves nothing"
    assert run.lost == [] and run.switched == []
    assert len(run.first_sample_s) == 3  # every reply reached the device
