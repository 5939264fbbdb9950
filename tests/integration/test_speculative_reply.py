"""A reply started at the pause, with real parts: Silero VAD, faster-whisper, the skills,
Piper; the question is an espeak-ng WAV streamed at real-time pace through the engine's
file input, as a microphone would deliver it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.audio.files import WavFileSink, WavFileSource
from app.engine.events import Event, FinalTranscript, TurnFinished
from app.engine.session import Session
from app.store.paths import resolve_paths
from app.store.settings import Settings, StageSettings
from tests.support.speech import have_espeak, speak_to_wav

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_espeak(), reason="espeak-ng not installed")]


async def test_a_spoken_question_is_answered_by_the_reply_started_at_the_pause(tmp_path: Path) -> None:
    wav = speak_to_wav("what time is it", tmp_path / "question.wav")
    settings = Settings()
    settings.llm = StageSettings(provider="skills")  # the quick answers: no model to load
    settings.conversation.skills_first = True
    # Time for the transcript within the pause on a busy 2-core machine (0.3 to 1.6 s here), so
    # that the reply really starts before the endpoint.
    settings.conversation.endpoint_silence_ms = 3000
    sink = WavFileSink(None)
    session = Session(settings, resolve_paths().ensure(), sink=sink)
    events: list[Event] = []
    session.add_listener(events.append)
    try:
        await session.start()
        await asyncio.wait_for(session.ready.wait(), 120)
        await session.set_audio(WavFileSource(wav, realtime=True, trailing_silence_s=4.0), sink)
        await asyncio.wait_for(session.wait_capture_done(), 30)
        await asyncio.wait_for(session.wait_idle(), 30)
        snap = session.telemetry.snapshot(wait_s=1.0)
    finally:
        await session.aclose()
    (turn,) = [e for e in events if isinstance(e, TurnFinished)]
    assert [e.text for e in events if isinstance(e, FinalTranscript)] == [turn.user_text]
    assert "time" in turn.user_text.lower() and turn.reply_text.startswith("It's"), turn
    assert turn.speculative and turn.error is None, turn.timings  # the reply began in the pause
    assert session.telemetry.speculative_counts()["used"] == 1
    v2v = turn.voice_to_voice_s
    # Reported, and from the endpoint on: at least the endpoint's wait, at most what a busy
    # 2-core machine takes (the bars are the benchmark's job, not this test's).
    assert v2v is not None and turn.timings["vad_endpoint"] <= v2v < 8.0, turn.timings
    assert snap.turns[-1].speculative and snap.turns[-1].voice_to_voice_s == pytest.approx(v2v)
    assert snap.speculative["used"] == 1
    lead = turn.timings["speculative_lead"]
    assert lead > 0
    # The held audio was ready: after the endpoint only letting it go remains.
    after_endpoint = v2v - turn.timings["vad_endpoint"]
    assert after_endpoint < 0.25, turn.timings
    print(
        f"voice-to-voice {v2v * 1000:.0f} ms = endpoint wait {turn.timings['vad_endpoint'] * 1000:.0f} ms "
        f"+ {after_endpoint * 1000:.0f} ms after it, "
        f"reply started {lead * 1000:.0f} ms before the endpoint, "
        f"speculative replies {session.telemetry.speculative_counts()}"
    )
