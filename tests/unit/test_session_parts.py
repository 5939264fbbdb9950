"""The engine's pieces on fakes: the speaker and the listener alone (no Session), and,
through the real Session, speaker park/re-open, timer announcements and a VAD that
fails on every frame."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import numpy as np
import pytest

from app.engine.activation import Activation
from app.engine.context import EngineContext
from app.engine.events import ErrorRaised, Event, Notice, SpeechStarted, State, TurnFinished
from app.engine.listener import Listener, Utterance
from app.engine.options import SessionOptions
from app.engine.speaker import Speaker, SpeakerOptions
from app.engine.stages import StageSet, build_slot
from app.plugin.errors import VoiceError
from app.plugin.provider_api import AudioChunk, WakeDetection
from app.plugin.registry import Registry
from app.store.settings import Settings, StageSettings
from tests.support.fakes import (
    FakeClock,
    FakeSkills,
    MemorySink,
    MemorySource,
    fake_session,
    fake_settings,
    register_fakes,
    silence,
    speech,
    until,
)

pytestmark = pytest.mark.timeout(20)


class Parts:
    """An EngineContext on a fake clock that records events and reports, and owns its tasks."""

    def __init__(self, clock: FakeClock) -> None:
        self.events: list[Event] = []
        self.reports: list[tuple[str, str, VoiceError]] = []
        self.tasks: set[asyncio.Task[Any]] = set()
        self.ctx = EngineContext(
            clock=clock, sleep=clock.sleep, spawn=self._spawn, emit=self.events.append, report=self._report
        )

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self.tasks.add(task)
        return task

    def _report(self, stage: str, provider: str, err: VoiceError, turn_id: str | None = None) -> None:
        self.reports.append((stage, provider, err))

    async def aclose(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def tone(seconds: float, rate: int = 16_000) -> AudioChunk:
    return AudioChunk(np.full(int(seconds * rate), 0.1, np.float32), rate)


# ---------------------------------------------------------------------------- speaker alone


async def test_an_idle_speaker_is_parked_and_reopened_before_it_is_needed() -> None:
    clock = FakeClock(50)
    parts = Parts(clock)
    sink = MemorySink(clock, closes_when_idle=True)
    speaker = Speaker(parts.ctx, sink, SpeakerOptions(idle_close_s=1.0))
    try:
        await speaker.start()
        assert speaker.is_open and sink.starts == 1
        await until(lambda: sink.stops == 1)
        assert speaker.out is None
        await speaker.ensure_open()
        assert speaker.is_open and sink.starts == 2
    finally:
        await parts.aclose()


async def test_a_busy_speaker_is_not_parked() -> None:
    clock = FakeClock(50)
    parts = Parts(clock)
    sink = MemorySink(clock, closes_when_idle=True)
    speaker = Speaker(parts.ctx, sink, SpeakerOptions(idle_close_s=0.5), busy=lambda: True)
    try:
        await speaker.start()
        await asyncio.gather(*parts.tasks)  # the park job has run its course
        assert speaker.is_open and sink.stops == 0
    finally:
        await parts.aclose()


async def test_the_speaker_timeline_queues_chunks_back_to_back_and_a_cut_starts_it_over() -> None:
    clock = FakeClock(1)
    parts = Parts(clock)
    speaker = Speaker(parts.ctx, MemorySink(clock))
    await speaker.start()
    speaker.begin_reply()
    first = speaker.play(tone(0.5))
    second = speaker.play(tone(0.5))
    assert second == pytest.approx(first + 0.5, abs=1e-6)
    assert speaker.playing_now(clock())
    speaker.cut()
    assert speaker.play(tone(0.1)) == pytest.approx(clock(), abs=0.05)
    await parts.aclose()


# ---------------------------------------------------------------------------- listener alone


class Host:
    """The least a listener needs from a session."""

    def __init__(self, settings: Settings, stages: StageSet) -> None:
        self.settings, self.stages = settings, stages
        self.muted, self.hands_free = False, True
        self.activation = Activation(settings.activation)  # always listening
        self.woken: list[WakeDetection] = []
        speaker = Speaker(Parts(FakeClock()).ctx, None)
        self.echo, self.raw_echo = speaker.echo, speaker.raw_echo
        self.states: list[State] = []
        self.heard: list[tuple[Utterance, asyncio.Task[str] | None]] = []

    def is_speaking(self, at: float) -> bool:
        return False

    def echo_reference(self) -> None:
        return None

    def listens_while_speaking(self) -> bool:
        return True

    def on_speech_start(self, at: float) -> bool:
        return True

    def on_utterance(self, utt: Utterance, transcript: asyncio.Task[str] | None, endpoint_at: float) -> None:
        self.heard.append((utt, transcript))

    def set_state(self, state: State, turn_id: str | None = None) -> None:
        self.states.append(state)

    def rest_state(self) -> State:
        return State.LISTENING

    def on_wake(self, heard: WakeDetection, captured_at: float) -> None:
        self.woken.append(heard)

    def only_chime(self, at: float) -> bool:
        return False

    def went_to_sleep(self) -> None:
        self.states.append(State.IDLE)


def listener_parts(clock: FakeClock, **vad: Any) -> tuple[Parts, Host]:
    registry = register_fakes(Registry(discover=False), clock)
    settings = fake_settings(stt={"text": "hello there"}, vad=vad)
    stages = StageSet(
        {
            k: build_slot(registry, k, StageSettings(provider="fake", options=settings.stage(k).options))
            for k in ("vad", "stt")
        }
    )
    return Parts(clock), Host(settings, stages)


async def test_the_listener_alone_hands_over_one_utterance_with_its_transcript() -> None:
    clock = FakeClock(8)
    parts, host = listener_parts(clock)
    listener = Listener(parts.ctx, host, MemorySource([silence(96), speech(384), silence(640)], clock))
    try:
        await listener.sync()
        await listener.wait_done()
        ((utt, transcript),) = host.heard
        assert transcript is not None and await transcript == "hello there"
        assert utt.samples >= 384 * 16  # the speech and its pre-roll
        assert host.states[0] is State.LISTENING
        assert [type(e) for e in parts.events if isinstance(e, SpeechStarted)] == [SpeechStarted]
    finally:
        await listener.aclose(1.0)
        await parts.aclose()


async def test_the_listener_alone_tells_a_failing_vad_once_per_outage() -> None:
    clock = FakeClock(8)
    parts, host = listener_parts(clock, fail_calls=[*range(10), *range(30, 40)])
    listener = Listener(parts.ctx, host, MemorySource([silence(1600)], clock))
    try:
        await listener.sync()
        await listener.wait_done()
        assert [(stage, provider) for stage, provider, _ in parts.reports] == [("vad", "fake")] * 2
    finally:
        await listener.aclose(1.0)
        await parts.aclose()


# ---------------------------------------------------------------------------- through the session


async def test_a_vad_that_fails_on_every_frame_is_reported_once() -> None:
    async with fake_session(vad={"fail_calls": list(range(5000))}) as h:
        await h.listen([speech(640), silence(1000)])
        errors = h.log.of(ErrorRaised)
        assert [(e.stage, e.provider) for e in errors] == [("vad", "fake")]
        assert len(h.vad.calls) > 40  # every frame was tried


async def test_the_session_parks_an_idle_speaker_and_reopens_it_for_the_reply() -> None:
    options = SessionOptions(speaker=SpeakerOptions(idle_close_s=0.5))
    sink = MemorySink(FakeClock(), closes_when_idle=True)
    async with fake_session(sink=sink, session_options=options, llm={"replies": [["Hi."]]}) as h:
        await until(lambda: sink.stops == 1)
        await h.session.send_text("hello")
        (turn,) = h.log.of(TurnFinished)
        assert sink.starts == 2 and turn.reply_text == "Hi." and sink.played
        await until(lambda: sink.stops == 2)  # parked again after the reply


async def test_a_timer_that_fires_is_shown_and_spoken() -> None:
    async with fake_session(skills={"set a timer": "OK, timer set."}, skills_first=True) as h:
        await h.session.send_text("set a timer")
        (turn,) = h.log.of(TurnFinished)
        assert (turn.providers["llm"], turn.reply_text) == ("skills", "OK, timer set.")
        skills = h.session.skills
        assert isinstance(skills, FakeSkills)
        played = len(h.speaker.played)
        await skills.fire("Your timer is done.")
        assert any(isinstance(e, Notice) and e.message == "Your timer is done." for e in h.log.events)
        assert h.tts.texts[-1] == "Your timer is done." and len(h.speaker.played) > played
