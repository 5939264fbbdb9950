"""The wake word in the real engine: microWakeWord on the microphone stream, Silero, Whisper,
the skills and Piper. What the fakes test in tests/unit/test_session_activation.py, once
with real parts: speech without the phrase is no turn; the phrase chimes and the next
words are answered; the phrase said over a reply stops it."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from app.audio.files import WavFileSink, load_wav
from app.commands.bench_turns import trim_silence
from app.engine.chime import RATE as CHIME_RATE
from app.engine.events import Event, State, TurnFinished, WakeWordHeard
from app.engine.session import Session
from app.plugin.provider_api import SAMPLE_RATE, AudioChunk
from app.plugin.registry import get_registry
from app.store.paths import resolve_paths
from app.store.settings import Settings, StageSettings
from tests.support.sources import Piece, ScriptedSource

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"),
]

PHRASE = "hey_mycroft"  # the default phrase of the default detector


class RecordingSink(WavFileSink):
    """Notes the rate of every chunk played: the chime's (24 kHz) is not Piper's (22.05 kHz)."""

    def __init__(self) -> None:
        super().__init__(None, realtime=True)  # speaker pace: there is a reply to talk over
        self.rates: list[int] = []
        self.chimes_at: list[float] = []  # when each chime was handed to the speaker

    def play(self, chunk: AudioChunk) -> None:
        self.rates.append(chunk.sample_rate)
        if chunk.sample_rate == CHIME_RATE:
            self.chimes_at.append(time.monotonic())
        super().play(chunk)


def said(text: str, tmp: Path, voice: str = "en-gb", wpm: int = 155) -> np.ndarray:
    """espeak-ng (not the reply voice) at −20 dBFS RMS, trimmed."""
    out = tmp / f"{abs(hash((text, voice)))}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(out), "--", text], check=True)
    audio = trim_silence(load_wav(out, SAMPLE_RATE))
    return (audio * (0.1 / np.sqrt(np.mean(audio**2)))).astype(np.float32)


def wake_settings() -> Settings:
    s = Settings()
    s.llm = StageSettings(provider="skills")  # the skills answer at once: no language model to load
    s.wake = StageSettings(provider="micro-wake-word", options={"phrase": PHRASE})
    s.activation.mode = "wake_word"
    s.telemetry.enabled = False
    return s


async def test_the_wake_word_wakes_the_real_engine_and_stops_its_reply(tmp_path: Path) -> None:
    phrase = said(str(get_registry().info("wake", "micro-wake-word").extra["shipped_phrases"][PHRASE]), tmp_path)
    what_time = said("what time is it", tmp_path)
    what_can = said("what can you do", tmp_path)
    sink = RecordingSink()
    session = Session(wake_settings(), resolve_paths().ensure(), sink=sink)
    events: list[Event] = []
    session.add_listener(events.append)
    await session.start()
    await asyncio.wait_for(session.ready.wait(), 120)

    def woken(n: int) -> bool:
        return len([e for e in events if isinstance(e, WakeWordHeard)]) >= n

    try:
        assert session.activation.mode == "wake_word", [e for e in events if hasattr(e, "message")]
        # A pause before each wake phrase, as people make (the models hear it best alone);
        # the questions follow the phrase in the same breath.
        src = ScriptedSource(
            [
                Piece(what_time),  # no wake word: ignored
                Piece(phrase, wait_for=lambda: True, then_wait_s=1.0),
                Piece(what_can),
                # Over the (long) reply: the phrase stops it; then the next question.
                Piece(phrase, wait_for=lambda: session.state is State.SPEAKING, then_wait_s=1.0),
                Piece(what_time, wait_for=lambda: woken(2), then_wait_s=0.3),
            ],
            tail_s=2.0,
            max_wait_s=30,
        )
        await session.set_audio(src, sink)
        await asyncio.wait_for(session.wait_capture_done(), 180)
        await asyncio.wait_for(session.wait_idle(), 60)
    finally:
        await session.aclose()

    turns = [e for e in events if isinstance(e, TurnFinished)]
    wakes = [e for e in events if isinstance(e, WakeWordHeard)]
    print("turns:", [(t.user_text, t.reply_text[:40], t.interrupted) for t in turns])
    assert len(wakes) == 2, f"{len(wakes)} wake words heard"
    # The question said in the same breath as the phrase is heard whole (through the chime).
    assert [("what can you do" in t.user_text.lower(), t.interrupted) for t in turns] == [(True, True), (False, False)]
    assert "time" in turns[1].user_text.lower() and ":" in turns[1].reply_text
    assert not wakes[0].stopped_reply and wakes[1].stopped_reply
    # Phrase end → detection, as the engine saw it (the bench measures it on many voices).
    for w in wakes:
        print(f"wake: detected {(w.at - w.phrase_end) * 1000:.0f} ms after the phrase ended (p={w.probability:.2f})")
        assert w.at - w.phrase_end <= 0.5
    assert sink.rates.count(CHIME_RATE) == 2  # a chime for each wake
    for w, chimed in zip(wakes, sink.chimes_at, strict=True):
        print(f"wake: chime {(chimed - w.phrase_end) * 1000:.0f} ms after the phrase ended")
        assert chimed - w.phrase_end <= 0.3  # the bar: wake word → listening (chime starts) ≤ 300 ms
