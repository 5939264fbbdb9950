"""Another language, end to end with the real parts: a French question spoken by espeak-ng
is transcribed in French by Whisper base (multilingual, from its two data wheels) with the
language left to `auto`, and answered in French by the embedded model; English still works
with the same model; tiny.en asked for French says to pick whisper-base; and a session whose
voice cannot speak the language heard tells the user once, offering a voice that can.

The replies are checked by their French function words, not against a fixed string.
Figures (decode times of whisper-base against tiny.en, the transcript and the reply) are
printed for the README.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import statistics
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime

import numpy as np
import pytest

from app.audio.files import WavFileSink
from app.engine.events import Event, FinalTranscript, Notice, TurnFinished
from app.engine.session import Session
from app.engine.spoken_prompt import context_messages, limits_for
from app.engine.spoken_reply import spoken_only
from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import LLMProvider
from app.plugin.registry import get_registry
from app.store.paths import resolve_paths
from app.store.settings import Settings, StageSettings
from providers.stt.faster_whisper import FasterWhisperConfig, FasterWhisperSTT
from tests.support.sources import Piece, ScriptedSource
from tests.support.speech import have_espeak, speak

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not have_espeak(), reason="espeak-ng not installed"),
    pytest.mark.skipif(
        importlib.util.find_spec("faster_whisper") is None, reason="faster-whisper is not installed (the `local` extra)"
    ),
    # find_spec, not an import: llama.cpp runs in the provider's worker process, never in this one.
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed"),
]

#: A question of natural length at espeak-ng's own pace (175 words a minute). Whisper base
#: tells espeak's French from other languages on a sentence like this one; on a short one
#: ("Quelle est la capitale de la France ?", 2 s) it hears Polish, Spanish or Latin.
FRENCH_QUESTION = "Combien de temps faut-il pour aller de Paris à Lyon en train ?"
ENGLISH_QUESTION = "What is the capital of France?"
NOW = datetime(2026, 12, 1, 14, 5)

#: Function words: a reply in French uses many of the first and few of the second.
FRENCH_WORDS = frozenset(
    " ".join(
        (
            "le la les l de des du d un une est et pour il elle je j vous tu que qu qui à au aux dans sur",
            "pas ne n avec ce c cette faut environ heures oui non mais par plus son sa ses se nous y ou être sont peut",
        )
    ).split()
)
ENGLISH_WORDS = frozenset(
    " ".join(
        (
            "the is are of and to in it you that for with this be was what how there take about hours",
            "can i not from by or",
        )
    ).split()
)


def words(text: str) -> list[str]:
    return re.findall(r"[a-zàâäçéèêëîïôöùûüÿœæ]+", text.lower())


def french_and_english(text: str) -> tuple[int, int]:
    """(French function words, English function words) in `text`."""
    found = words(text)
    return sum(w in FRENCH_WORDS for w in found), sum(w in ENGLISH_WORDS for w in found)


def assert_french(text: str) -> None:
    fr, en = french_and_english(text)
    assert fr >= 3 and fr > 2 * en, f"not French ({fr} French, {en} English function words): {text!r}"


@pytest.fixture(scope="module")
def base() -> Iterator[FasterWhisperSTT]:
    """Whisper base, multilingual, with the language left to detection."""
    stt = FasterWhisperSTT(FasterWhisperConfig(model="whisper-base", language="auto"))
    asyncio.run(stt.warmup())
    yield stt
    asyncio.run(stt.aclose())


async def test_a_french_question_is_heard_in_french_and_answered_in_french(base: FasterWhisperSTT) -> None:
    audio = speak(FRENCH_QUESTION, voice="fr", words_per_minute=175)
    t0 = time.perf_counter()
    heard = await base.transcribe(audio, language="auto")
    decode_s = time.perf_counter() - t0
    print(f"\nFrench ({len(audio) / 16_000:.1f} s, decoded in {decode_s:.2f} s): {heard!r}")
    assert base.detected_language == "fr"
    assert_french(heard)
    asked = set(words(FRENCH_QUESTION))
    assert len(asked & set(words(heard))) >= 0.6 * len(asked), heard  # the question's own words, not any French

    # The embedded model (Qwen2.5-Coder 0.5B, from its six data wheels), greedy, as in a real turn.
    llm = get_registry().create("llm", "llama-cpp", {"max_tokens": 64, "temperature": 0.0, "seed": 11})
    assert isinstance(llm, LLMProvider)
    try:
        await llm.warmup()
        messages = context_messages("", [], heard, NOW, language="auto", heard=base.detected_language)
        reply = "".join([piece async for piece in spoken_only(llm.chat(messages), limits_for(heard))]).strip()
    finally:
        await llm.aclose()
    print(f"reply: {reply!r}")
    assert_french(reply)


async def test_english_still_works_with_whisper_base_and_says_so(base: FasterWhisperSTT) -> None:
    audio = speak(ENGLISH_QUESTION)

    async def frames() -> AsyncIterator[np.ndarray]:
        for start in range(0, len(audio), 1600):
            yield audio[start : start + 1600]

    finals = [t async for t in base.stream(frames(), language="auto") if t.is_final]
    (final,) = finals
    print(f"\nEnglish with whisper-base: {final.text!r}")
    assert final.language == "en" and base.detected_language == "en"
    assert {"what", "capital", "france"} <= set(words(final.text)), final.text
    fr, en = french_and_english(final.text)
    assert en > fr


async def test_an_english_only_model_asked_for_french_says_to_pick_the_multilingual_one() -> None:
    stt = FasterWhisperSTT(FasterWhisperConfig(model="whisper-tiny.en"))
    try:
        with pytest.raises(VoiceError) as err:
            await stt.transcribe(speak(FRENCH_QUESTION, voice="fr", words_per_minute=175), language="fr")
        assert err.value.code is ErrorCode.INVALID_CONFIG
        assert "whisper-tiny.en understands English only" in err.value.message
        assert "pick the multilingual model whisper-base" in err.value.message
        # With auto an English-only model simply hears English: nothing to refuse.
        assert await stt.transcribe(speak(ENGLISH_QUESTION), language="auto")
        assert stt.detected_language == "en"
    finally:
        await stt.aclose()


async def test_decode_time_of_whisper_base_against_tiny_en(base: FasterWhisperSTT) -> None:
    """A ~3 s question, decoded five times by each model (the median is printed for the README)."""
    audio = speak("Could you tell me what the weather will be like tomorrow?")
    tiny = FasterWhisperSTT(FasterWhisperConfig(model="whisper-tiny.en"))
    medians: dict[str, float] = {}
    try:
        await tiny.warmup()
        for name, stt in (("whisper-tiny.en", tiny), ("whisper-base", base)):
            await stt.transcribe(audio, language="en")  # first decode warms the caches
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                text = await stt.transcribe(audio, language="en")
                times.append(time.perf_counter() - t0)
            medians[name] = statistics.median(times)
            print(f"\n{name}: {len(audio) / 16_000:.1f} s clip, median decode {medians[name] * 1000:.0f} ms — {text!r}")
            assert "tomorrow" in words(text)
    finally:
        await tiny.aclose()
    # Generous, for a shared 2-core machine: a short command must stay well under a second.
    assert medians["whisper-base"] < 1.5


@pytest.mark.skipif(importlib.util.find_spec("piper") is None, reason="Piper is not installed")
async def test_french_heard_with_the_english_voice_is_told_once_with_a_french_voice_to_fetch() -> None:
    """A real session (Silero VAD, whisper-base with `auto`, the skills, the English Piper
    voice): two French questions, one notice naming the French voice to download."""
    settings = Settings()
    settings.conversation.language = "auto"
    settings.stt = StageSettings(provider="faster-whisper", options={"model": "whisper-base"})
    settings.llm = StageSettings(provider="skills")  # the reply does not matter here
    session = Session(settings, resolve_paths().ensure())
    events: list[Event] = []
    session.add_listener(events.append)
    await session.start()
    try:
        await asyncio.wait_for(session.ready.wait(), 180)
        question = speak(FRENCH_QUESTION, voice="fr", words_per_minute=175)
        # The second question once the first turn is over (not over its reply).
        answered = lambda: any(isinstance(e, TurnFinished) for e in events)  # noqa: E731
        source = ScriptedSource([Piece(question), Piece(question, wait_for=answered, then_wait_s=0.5)])
        await session.set_audio(source, WavFileSink(None))
        await asyncio.wait_for(session.wait_capture_done(), 180)
        await asyncio.wait_for(session.wait_idle(), 120)
    finally:
        await session.aclose()
    heard = [e.text for e in events if isinstance(e, FinalTranscript)]
    assert len(heard) == 2, heard
    offers = [e.message for e in events if isinstance(e, Notice) and "piper-fr_FR-siwis-medium" in e.message]
    assert len(offers) == 1, [e.message for e in events if isinstance(e, Notice)]
    assert "speaks English, not French" in offers[0] and "Settings → Voice" in offers[0]
