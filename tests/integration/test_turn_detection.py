"""Smart Turn v3.2 with the real model from the pipecat-ai wheel: recorded people, a
real session that must not cut off a sentence paused in the middle, and the faults a
user can cause (a missing or damaged model file), which leave the silence rule."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from app.audio.files import load_wav
from app.engine.events import TurnFinished
from app.engine.session import Session
from app.plugin.errors import VoiceError
from app.plugin.provider_api import SAMPLE_RATE, HealthStatus
from app.plugin.registry import get_registry
from app.store.paths import resolve_paths
from app.store.settings import Settings, apply_overrides
from tests.support.sources import Piece, ScriptedSource
from tests.support.speech import have_espeak, speak

pytestmark = pytest.mark.slow

HUMAN = Path("/usr/share/pocketsphinx/test/data")
needs_human = pytest.mark.skipif(not HUMAN.is_dir(), reason="pocketsphinx-testdata not installed")


def smart_turn(**options: object):  # type: ignore[no-untyped-def]
    return get_registry().create("turn", "smart-turn", options)


def recording(name: str) -> np.ndarray:
    audio = load_wav(HUMAN / name)
    samples = audio[0] if isinstance(audio, tuple) else audio
    return np.asarray(samples, np.float32)


@needs_human
async def test_a_person_finishing_a_phrase_is_heard_as_finished_and_one_cut_mid_sentence_is_not() -> None:
    provider = smart_turn()
    try:
        await provider.warmup()
        done = await provider.predict(recording("cards/001.wav"))  # "ten of clubs"
        sentence = recording("librivox/sense_and_sensibility_01_austen_64kb-0870.wav")
        cut = await provider.predict(sentence[: len(sentence) * 6 // 10])  # stopped mid-sentence
        assert done.finished is True and done.probability is not None and done.probability > 0.9
        assert cut.finished is False and cut.probability is not None and cut.probability < 0.1
        assert (await provider.health()).status is HealthStatus.OK
    finally:
        await provider.aclose()


async def test_a_missing_model_says_what_to_do_and_a_damaged_one_is_refused(tmp_path: Path) -> None:
    missing = smart_turn(model=str(tmp_path / "nowhere.onnx"))
    health = await missing.health()
    assert health.status is HealthStatus.DOWN and "silence rule" in health.detail
    with pytest.raises(VoiceError, match="does not exist"):
        await missing.predict(np.zeros(SAMPLE_RATE, np.float32))
    bad = tmp_path / "damaged.onnx"
    bad.write_bytes(b"not an onnx model" * 100)
    damaged = smart_turn(model=str(bad))
    with pytest.raises(VoiceError, match=r"could not be loaded.*silence detector"):
        await damaged.predict(np.zeros(SAMPLE_RATE, np.float32))
    await missing.aclose()
    await damaged.aclose()


def session_settings(*overrides: str) -> Settings:
    # Skills answer, so no language model loads: this is about hearing the end of a turn.
    return apply_overrides(Settings(), ["llm.provider=skills", "llm.fallbacks=[]", *overrides])


async def hear(settings: Settings, pieces: list[np.ndarray]) -> list[TurnFinished]:
    session = Session(settings, resolve_paths().ensure())
    turns: list[TurnFinished] = []
    session.add_listener(lambda ev: turns.append(ev) if isinstance(ev, TurnFinished) else None)
    try:
        await session.start()
        await asyncio.wait_for(session.ready.wait(), 120)
        await session.set_audio(ScriptedSource([Piece(p) for p in pieces], tail_s=2.5), None)
        await asyncio.wait_for(session.wait_capture_done(), 60)
        await asyncio.wait_for(session.wait_idle(), 30)
    finally:
        await session.aclose()
    return turns


def pause(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), np.float32)


@pytest.mark.skipif(not have_espeak(), reason="espeak-ng not installed")
async def test_a_real_session_waits_through_a_pause_mid_sentence_and_answers_the_whole_of_it() -> None:
    """ "Set a timer for … five minutes" in one turn: the first half, spoken on its own,
    sounds finished to the model; its last word says it is not."""
    first, second = speak("Set a timer for"), speak("five minutes")
    turns = await hear(session_settings(), [pause(0.4), first, pause(0.9), second])
    assert len(turns) == 1, [t.user_text for t in turns]
    (turn,) = turns
    heard = turn.user_text.lower()
    assert "timer" in heard and ("five minutes" in heard or "5 minutes" in heard)
    assert turn.reply_text.lower().startswith("ok, timer")  # the skill heard the whole request
    assert "turn_detect" in turn.timings and turn.providers["turn"] == "smart-turn"


@pytest.mark.skipif(not have_espeak(), reason="espeak-ng not installed")
async def test_with_the_model_file_missing_turns_end_on_the_silence_rule(tmp_path: Path) -> None:
    settings = session_settings(f"turn.options.model={tmp_path / 'gone.onnx'}")
    turns = await hear(settings, [pause(0.4), speak("What time is it?")])
    (turn,) = turns
    assert turn.error is None and "time" in turn.user_text.lower()
    # The silence provider (the fallback) answered: no opinion, so the whole silence rule.
    assert turn.timings["vad_endpoint"] >= settings.conversation.endpoint_silence_ms / 1000 - 0.05
