"""The Wyoming providers against the real servers Home Assistant users run, on 127.0.0.1:
wyoming-faster-whisper (Whisper tiny.en) and wyoming-piper (the joe voice), started as
subprocesses by tests/support/wyoming_servers.py. Questions are spoken by espeak-ng;
what Wyoming's Piper says is heard back by the local Whisper; a real Session answers a
spoken question through both; a server killed mid-turn hands the stage to the local
provider before any audio of that sentence played."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soxr

from app.audio.files import WavFileSink
from app.engine.events import (
    ErrorRaised,
    Event,
    FinalTranscript,
    Notice,
    SpeechStarted,
    State,
    StateChanged,
    TurnFinished,
)
from app.engine.session import Session
from app.plugin.provider_api import HealthStatus, STTProvider, TTSProvider
from app.plugin.registry import get_registry
from app.store.paths import resolve_paths
from app.store.settings import Settings
from tests.support.sources import Piece, ScriptedSource
from tests.support.speech import have_espeak, normalise, speak, word_error_rate
from tests.support.wyoming_servers import WyomingServer, faster_whisper_server, piper_server

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_espeak(), reason="espeak-ng not installed")]

VOICE = "en_US-joe-medium"
QUESTION = "what is the weather like in paris today"


@pytest.fixture(scope="module")
def whisper_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WyomingServer]:
    with faster_whisper_server(tmp_path_factory.mktemp("wyoming-whisper")) as srv:
        yield srv


@pytest.fixture(scope="module")
def voice_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WyomingServer]:
    with piper_server(tmp_path_factory.mktemp("wyoming-piper")) as srv:
        yield srv


def stt_at(uri: str) -> STTProvider:
    p = get_registry().create("stt", "wyoming", {"uri": uri})
    assert isinstance(p, STTProvider)
    return p


def tts_at(uri: str, **opts: object) -> TTSProvider:
    p = get_registry().create("tts", "wyoming", {"uri": uri, "voice": VOICE, **opts})
    assert isinstance(p, TTSProvider)
    return p


async def heard(chunks: list[np.ndarray], rate: int) -> str:
    """What the local Whisper hears in audio a voice made."""
    local = get_registry().create("stt", "faster-whisper", {})
    assert isinstance(local, STTProvider)
    try:
        audio = soxr.resample(np.concatenate(chunks), rate, 16000).astype(np.float32)
        return await local.transcribe(audio)
    finally:
        await local.aclose()


# -- discovery and health ----------------------------------------------------


async def test_discovery_lists_the_servers_models_voices_and_languages(
    whisper_server: WyomingServer, voice_server: WyomingServer
) -> None:
    stt, tts = stt_at(whisper_server.uri), tts_at(voice_server.uri)
    models = await stt.list_models()  # type: ignore[attr-defined]
    assert models == [str(faster_whisper_server_model())]  # the server names its model by the folder it loaded
    assert "en" in await stt.list_languages()  # type: ignore[attr-defined]
    voices = await tts.list_voices()  # type: ignore[attr-defined]
    assert VOICE in voices and len(voices) > 10  # piper lists its whole catalogue
    assert "en_US" in await tts.list_languages()  # type: ignore[attr-defined]
    info = await tts.discover()  # type: ignore[attr-defined]
    assert info.tts_program.startswith("piper ") and info.streams_synthesis
    assert info.protocol is not None and info.protocol.startswith("1.")


def faster_whisper_server_model() -> Path:
    from tests.support.wyoming_servers import whisper_model_dir

    return whisper_model_dir()


async def test_health_online_and_offline(whisper_server: WyomingServer, voice_server: WyomingServer) -> None:
    ok = await stt_at(whisper_server.uri).health()
    assert ok.status is HealthStatus.OK and "faster-whisper" in ok.detail, ok
    ok = await tts_at(voice_server.uri).health()
    assert ok.status is HealthStatus.OK and VOICE in ok.detail, ok
    wrong = await stt_at(voice_server.uri).health()  # a TTS port given as STT
    assert wrong.status is HealthStatus.DOWN and "offers no speech recognition" in wrong.detail
    gone = WyomingServer("wyoming-piper", [], voice_server.data_dir)  # never started: its port is free
    down = await tts_at(gone.uri).health()
    assert down.status is HealthStatus.DOWN
    assert down.detail == f"Wyoming server at {gone.uri} is not answering: start it or check the address"
    assert down.latency_s < 1.0


# -- speech both ways --------------------------------------------------------


async def test_a_spoken_question_is_transcribed_and_latency_measured(whisper_server: WyomingServer) -> None:
    clip = np.concatenate([speak(QUESTION), np.zeros(4000, np.float32)])
    stt = stt_at(whisper_server.uri)
    text = await stt.transcribe(clip)
    assert word_error_rate(QUESTION, text) <= 0.15, text

    # Streamed at real-time pace, as the microphone gives it: the wait after the audio ends.
    last_sent: list[float] = []

    async def paced() -> AsyncIterator[np.ndarray]:
        for i in range(0, len(clip), 1600):
            await asyncio.sleep(0.1)
            last_sent.append(time.perf_counter())
            yield clip[i : i + 1600]

    after_end = []
    for _ in range(3):
        last_sent.clear()
        results = [tr async for tr in stt.stream(paced())]
        after_end.append(time.perf_counter() - last_sent[-1])
        assert results[-1].is_final and normalise(results[-1].text) == normalise(text)
    wyoming_whole = await _timed(lambda: stt.transcribe(clip))
    local = get_registry().create("stt", "faster-whisper", {})
    assert isinstance(local, STTProvider)
    try:
        await local.warmup()
        local_whole = await _timed(lambda: local.transcribe(clip))
        local_text = await local.transcribe(clip)
    finally:
        await local.aclose()
    print(
        f"\nSTT after the end of a {len(clip) / 16000:.1f} s clip (median of 3): "
        f"Wyoming faster-whisper (tiny.en, server defaults, beam 5) {wyoming_whole * 1000:.0f} ms sent whole, "
        f"{statistics.median(after_end) * 1000:.0f} ms streamed at real-time pace; "
        f"local faster-whisper (tiny.en, VoxDesk settings) {local_whole * 1000:.0f} ms; "
        f"heard {text!r} / {local_text!r}"
    )


async def _timed(call: Callable[[], Awaitable[object]]) -> float:
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        await call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


async def test_wyoming_piper_speaks_what_local_whisper_hears(voice_server: WyomingServer) -> None:
    tts = tts_at(voice_server.uri)
    await tts.warmup()
    chunks = [c async for c in tts.synthesize("The quick brown fox jumps over the lazy dog.")]
    assert chunks and all(c.sample_rate == 22050 for c in chunks) and tts.sample_rate == 22050
    audio = np.concatenate([c.samples for c in chunks])
    assert 1.5 < len(audio) / 22050 < 6 and 0.02 < float(np.sqrt(np.mean(audio**2))) < 0.9
    words = set(normalise(await heard([c.samples for c in chunks], 22050)))
    assert {"quick", "brown", "fox", "dog"} <= words, words


async def test_streamed_text_is_spoken_before_the_reply_has_ended(voice_server: WyomingServer) -> None:
    """Text sent as the model writes it (synthesize-start/chunk/stop): the first sentence's
    audio comes back while later text is still being written."""
    tts = tts_at(voice_server.uri)
    await tts.warmup()
    pieces = ["Sure. ", "The first ", "sentence is short. ", "Then comes a second one, ", "a little longer. "]
    text_done: list[float] = []

    async def model_writes() -> AsyncIterator[str]:
        for p in pieces:
            yield p
            await asyncio.sleep(0.3)
        text_done.append(time.perf_counter())

    t0 = time.perf_counter()
    arrivals = [(time.perf_counter(), c) async for c in tts.stream(model_writes())]
    first_at = arrivals[0][0]
    assert first_at < text_done[0] - 0.3, "no audio before the text stream ended"
    total = sum(len(c.samples) for _, c in arrivals) / 22050
    assert total > 2.0
    heard_text = await heard([c.samples for _, c in arrivals], 22050)
    assert {"first", "sentence", "second"} <= set(normalise(heard_text)), heard_text
    # Time to first audio for one sentence (what the engine asks per sentence), after warm-up.
    ttfa = []
    for _ in range(3):
        t1 = time.perf_counter()
        gen = tts.synthesize("Sure, the answer is four.")
        assert isinstance(gen, AsyncGenerator)
        async with contextlib.aclosing(gen) as chunks:
            async for _chunk in chunks:
                ttfa.append(time.perf_counter() - t1)
                break  # closing the rest is what barge-in does
    print(
        f"\nWyoming piper: first audio of a streamed reply {(first_at - t0) * 1000:.0f} ms after its first text; "
        f"one sentence's first audio (median of 3) {statistics.median(ttfa) * 1000:.0f} ms"
    )


# -- a real Session through both servers -------------------------------------


class Recorder:
    def __init__(self, session: Session) -> None:
        self.events: list[Event] = []
        session.add_listener(self.events.append)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def wyoming_settings(stt_uri: str, tts_uri: str) -> Settings:
    s = Settings()
    s.stt.provider, s.stt.options, s.stt.fallbacks = "wyoming", {"uri": stt_uri}, ["faster-whisper"]
    s.tts.provider, s.tts.options, s.tts.fallbacks = "wyoming", {"uri": tts_uri, "voice": VOICE}, ["piper"]
    return s


async def run_turn(
    s: Settings, question: str, on_event: Callable[[Event], None] | None = None
) -> tuple[Session, Recorder, WavFileSink]:
    sink = WavFileSink(None)
    session = Session(s, resolve_paths().ensure(), sink=sink)
    rec = Recorder(session)
    if on_event is not None:
        session.add_listener(on_event)
    await session.start()
    await asyncio.wait_for(session.ready.wait(), 120)
    await session.set_audio(ScriptedSource([Piece(speak(question))]), sink)
    await asyncio.wait_for(session.wait_capture_done(), 60)
    await asyncio.wait_for(session.wait_idle(), 60)
    return session, rec, sink


async def test_a_spoken_question_is_answered_end_to_end_through_wyoming(
    whisper_server: WyomingServer, voice_server: WyomingServer
) -> None:
    session, rec, sink = await run_turn(wyoming_settings(whisper_server.uri, voice_server.uri), "what is 2 plus 2")
    try:
        (turn,) = rec.of(TurnFinished)
        assert turn.error is None and "4" in turn.reply_text, turn
        assert "2" in turn.user_text or "two" in turn.user_text.lower(), turn
        assert turn.providers["stt"] == "wyoming" and turn.providers["tts"] == "wyoming"
        assert not [n for n in rec.of(Notice) if "failed" in n.message]  # no fallback was needed
        assert len(sink.samples) / (sink.rate or 1) > 0.5  # the reply was spoken
        assert turn.voice_to_voice_s is not None
        print(f"\nvoice-to-voice through both Wyoming servers: {turn.voice_to_voice_s * 1000:.0f} ms")
        said = await heard([np.asarray(sink.samples, np.float32)], sink.rate or 22050)
        assert "4" in said or "four" in said.lower(), said
    finally:
        await session.aclose()


async def test_servers_killed_mid_turn_hand_over_to_the_local_providers(tmp_path: Path) -> None:
    """The speech server dies while the user speaks, the voice server once the question is
    heard: the turn is still transcribed (local faster-whisper) and answered aloud (local
    Piper), and the voice's fallback is decided before any of the reply played."""
    stt_srv = faster_whisper_server(tmp_path / "whisper").start()
    tts_srv = piper_server(tmp_path / "piper").start()
    order: list[str] = []

    def on_event(e: Event) -> None:
        if isinstance(e, SpeechStarted):
            stt_srv.kill()
        elif isinstance(e, FinalTranscript):
            tts_srv.kill()
        elif isinstance(e, StateChanged) and e.state is State.SPEAKING:
            order.append("speaking")
        elif isinstance(e, Notice) and "using piper" in e.message:
            order.append("tts fallback")

    try:
        session, rec, sink = await run_turn(
            wyoming_settings(stt_srv.uri, tts_srv.uri), "what is 3 times 3", on_event=on_event
        )
    finally:
        stt_srv.stop()
        tts_srv.stop()
    try:
        (turn,) = rec.of(TurnFinished)
        assert turn.error is None and "9" in turn.reply_text, turn
        assert turn.providers["tts"] == "piper", turn  # the voice that spoke the reply
        notices = [n.message for n in rec.of(Notice)]
        assert "stt: wyoming failed (UNAVAILABLE); using faster-whisper" in notices, notices
        assert "tts: wyoming failed (UNAVAILABLE); using piper" in notices, notices
        assert order[:2] == ["tts fallback", "speaking"], order  # nothing played before the fallback
        count, last, _ = session.errors.get("tts", "wyoming")
        assert count >= 1 and last is not None
        assert not [e for e in rec.of(ErrorRaised) if e.stage in ("stt", "tts")]  # the user saw no failure
        assert len(sink.samples) > 0
    finally:
        await session.aclose()
