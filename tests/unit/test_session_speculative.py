"""The real engine on fakes: replies started at the pause, ahead of the endpoint.

At silence start the speculative transcript feeds a held turn (LLM or skills, TTS of the
first sentence); the endpoint lets its audio go at once, speech resuming or a transcript
of other words throws it away with nothing heard, shown or stored."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from app.engine.events import ErrorRaised, FinalTranscript, ReplyDelta, SpeechEnded, State, TurnFinished
from app.engine.listener import Utterance
from app.engine.turn import APOLOGY
from tests.support.fakes import WaitFor, fake_session, fake_settings, silence, speech, until

pytestmark = pytest.mark.timeout(20)

#: The model takes 200 ms to its first word: time the pause can save.
SLOW_START: dict[str, Any] = {"replies": [["It is noon. ", "Have a nice day."]], "first_delay_s": 0.2}
QUESTION = [speech(384), silence(800)]  # 450 ms of silence end it; the pause starts at 128 ms


def played_after(h: Any, at: float) -> bool:
    return all(p.queued_at >= at - 1e-6 for p in h.speaker.played)


async def test_a_reply_started_at_the_pause_plays_as_soon_as_the_endpoint_confirms_it() -> None:
    async with fake_session(llm=SLOW_START, endpoint_silence_ms=450) as h:
        await h.listen(QUESTION)
        endpoint = h.log.at(h.log.of(SpeechEnded)[0])
        (turn,) = h.log.of(TurnFinished)
        assert turn.speculative and not turn.interrupted and turn.error is None
        # The model and the voice worked during the pause; nothing was heard or shown before the endpoint.
        (call,) = h.llm.calls
        assert call.at < endpoint and h.tts.calls[0].at < endpoint
        assert h.speaker.played and played_after(h, endpoint)
        assert h.speaker.played[0].queued_at - endpoint < 0.1  # the held audio, at once
        labels = h.log.labels()
        assert labels.index("speech_ended") < labels.index("final") < labels.index("delta"), labels
        assert turn.timings["speculative_lead"] > 0.2
        assert [(r.user_text, r.reply_text, r.status) for r in h.history()] == [
            ("what time is it", "It is noon. Have a nice day.", "complete")
        ]
        assert h.session.telemetry.speculative_counts() == {"used": 1, "discarded": 0}


async def test_speculation_makes_voice_to_voice_shorter_than_waiting_for_the_endpoint() -> None:
    v2v: dict[bool, float] = {}
    for on in (True, False):
        async with fake_session(llm=SLOW_START, endpoint_silence_ms=450) as h:
            h.session.speculator.enabled = on
            await h.listen(QUESTION)
            (turn,) = h.log.of(TurnFinished)
            assert turn.speculative is on and turn.voice_to_voice_s is not None
            v2v[on] = turn.voice_to_voice_s
    # Off, the 200 ms to the model's first word come after the endpoint; on, they fell in the pause.
    assert v2v[True] < v2v[False] - 0.12, v2v


RESUMED: dict[str, Any] = {
    # A guess that is still being generated when the user goes on talking, then the real answer.
    "replies": [["First guess. ", *(f"then point {i}, " for i in range(20))], ["The real answer."]],
    "delay_s": 0.02,
}
PAUSE_THEN_MORE = [speech(384), silence(288), speech(256), silence(480)]  # a pause of 9 frames: 10 end it


async def test_speech_resuming_discards_the_held_reply_and_stops_its_generation() -> None:
    async with fake_session(stt={"texts": ["what time", "what time is it"]}, llm=RESUMED) as h:
        await h.listen(PAUSE_THEN_MORE)
        guess, _answer = h.llm.calls
        assert guess.cancelled and not guess.finished  # the model stopped when speech resumed
        resumed = h.mic.stamps("speech")[12]  # the first frame after the pause
        assert guess.ended_at is not None and guess.ended_at - resumed < 0.05
        assert h.tts.texts[0].startswith("First guess.")  # synthesized in the pause, never played
        endpoint = h.log.at(h.log.of(SpeechEnded)[0])
        assert played_after(h, endpoint)
        assert sum(p.duration_s for p in h.speaker.played) == pytest.approx(0.2, abs=0.01)  # one sentence
        assert [f.text for f in h.log.of(FinalTranscript)] == ["what time is it"]
        assert "".join(d.text for d in h.log.of(ReplyDelta)) == "The real answer."
        (turn,) = h.log.of(TurnFinished)
        assert turn.reply_text == "The real answer." and turn.speculative  # the second pause's reply was used
        assert [(r.user_text, r.reply_text) for r in h.history()] == [("what time is it", "The real answer.")]
        assert h.session.telemetry.speculative_counts() == {"used": 1, "discarded": 1}


async def said(text: str) -> str:
    return text


async def pause_on(h: Any, words: str) -> Utterance:
    """What the listener does at a pause: a speculative transcript of `words`; the held
    reply gets as far as its first sentence's audio."""
    utt = Utterance(started_at=h.clock() - 1.0, frames=[np.zeros(16_000, np.float32)], last_speech_at=h.clock())
    utt.speculative = h.session.background.spawn(said(words), "stt-speculative")
    h.session.speculator.paused(utt, utt.speculative)
    await until(lambda: bool(h.tts.calls))
    return utt


async def test_a_final_transcript_with_other_words_is_answered_and_the_held_reply_never_heard() -> None:
    llm = {"replies": [["It is noon. ", "Exactly noon."], ["Sunny all day."]], "delay_s": 0.02}
    async with fake_session(llm=llm) as h:
        utt = await pause_on(h, "what time is it")
        assert h.speaker.played == [] and h.history() == [] and h.session.state is State.IDLE
        assert not h.log.of(FinalTranscript) and not h.log.of(ReplyDelta)
        final = h.session.background.spawn(said("what's the weather"), "stt-final")
        h.session.on_utterance(utt, final, h.clock())
        await h.session.wait_idle()
        assert [f.text for f in h.log.of(FinalTranscript)] == ["what's the weather"]
        assert h.tts.texts[-1] == "Sunny all day." and "Exactly noon." not in h.tts.texts
        assert sum(p.duration_s for p in h.speaker.played) == pytest.approx(0.2, abs=0.01)
        (turn,) = h.log.of(TurnFinished)
        assert (turn.reply_text, turn.speculative) == ("Sunny all day.", False)
        assert [(r.user_text, r.reply_text) for r in h.history()] == [("what's the weather", "Sunny all day.")]
        assert h.session.telemetry.speculative_counts() == {"used": 0, "discarded": 1}


async def test_the_same_words_in_other_case_and_punctuation_use_the_held_reply() -> None:
    llm = {"replies": [["It is noon. ", "Exactly noon."]], "delay_s": 0.02}
    async with fake_session(llm=llm) as h:
        utt = await pause_on(h, "what time is it")
        final = h.session.background.spawn(said("  What time is it?"), "stt-final")
        h.session.on_utterance(utt, final, h.clock())
        await h.session.wait_idle()
        (turn,) = h.log.of(TurnFinished)
        assert turn.speculative and turn.reply_text == "It is noon. Exactly noon."
        assert len(h.llm.calls) == 1 and h.tts.texts == ["It is noon.", "Exactly noon."]
        assert h.session.telemetry.speculative_counts() == {"used": 1, "discarded": 0}


LONG_REPLY = {"replies": [["Hello there. ", "This is the second sentence. ", "And here is a third one."], ["Okay."]]}
TONE = {"seconds": 0.5, "chunks": 5, "level": 0.05}


async def test_barge_in_cuts_a_speculative_reply_like_any_other() -> None:
    async with fake_session(
        stt={"texts": ["what can you do", "stop"]}, llm=LONG_REPLY, tts=TONE, duplex="full", barge_in=True
    ) as h:
        await h.listen(
            [
                speech(384),
                silence(384),
                WaitFor(lambda: h.session.state is State.SPEAKING),
                speech(384, tag="over"),
                silence(480),
            ]
        )
        first, second = h.log.of(TurnFinished)
        assert first.speculative and first.interrupted and first.reply_text == "Hello there."
        assert h.speaker.flushes and first.timings["barge_in_stop"] < 0.15
        assert (second.user_text, second.reply_text, second.speculative) == ("stop", "Okay.", True)
        assert h.log.events.index(first) < h.log.events.index(h.log.of(FinalTranscript)[1])  # one turn at a time
        assert [(r.reply_text, r.status) for r in h.history()] == [
            ("Hello there.", "interrupted"),
            ("Okay.", "complete"),
        ]


async def test_skills_answers_are_speculated_too() -> None:
    settings = fake_settings(llm=SLOW_START, endpoint_silence_ms=450, skills_first=True)
    async with fake_session(settings, skills={"what time is it": "It is three o'clock."}) as h:
        await h.listen(QUESTION)
        endpoint = h.log.at(h.log.of(SpeechEnded)[0])
        (turn,) = h.log.of(TurnFinished)
        assert turn.speculative and turn.reply_text == "It is three o'clock."
        assert h.llm.calls == [] and h.tts.calls[0].at < endpoint and played_after(h, endpoint)


async def test_telemetry_counts_speculative_replies_and_marks_the_turn() -> None:
    settings = fake_settings(stt={"texts": ["what time", "what time is it"]}, llm=RESUMED)
    settings.telemetry.enabled = True
    async with fake_session(settings) as h:
        await h.listen(PAUSE_THEN_MORE)
        snap = h.session.telemetry.snapshot(wait_s=1.0)
        assert snap.speculative == {"used": 1, "discarded": 1}
        (timing,) = snap.turns  # the discarded reply is no turn
        assert timing.speculative and "speculative_lead" in timing.stages
        assert timing.voice_to_voice_s == pytest.approx(h.log.of(TurnFinished)[0].voice_to_voice_s)


async def test_typing_while_a_reply_is_held_discards_it() -> None:
    llm = {"replies": [["It is noon. ", "Exactly noon."], ["Hi!"]], "delay_s": 0.02}
    async with fake_session(llm=llm) as h:
        utt = await pause_on(h, "what time is it")
        h.session.listener.utterance = utt  # the user is still mid-utterance when they type
        await asyncio.wait_for(h.session.send_text("hello"), 5)
        assert [t.user_text for t in h.log.of(TurnFinished)] == ["hello"]
        assert h.tts.texts[-1] == "Hi!" and sum(p.duration_s for p in h.speaker.played) == pytest.approx(0.2, abs=0.01)
        assert h.session.telemetry.speculative_counts() == {"used": 0, "discarded": 1}


async def test_a_transcript_that_comes_after_the_endpoint_makes_an_ordinary_turn() -> None:
    # The decode (500 ms) outlasts the pause (322 ms after it began): no reply could start early.
    async with fake_session(stt={"delay_s": 0.5}, llm=SLOW_START, endpoint_silence_ms=450) as h:
        await h.listen(QUESTION)
        (turn,) = h.log.of(TurnFinished)
        assert not turn.speculative and "speculative_lead" not in turn.timings
        assert turn.reply_text == "It is noon. Have a nice day."
        assert h.session.telemetry.speculative_counts() == {"used": 0, "discarded": 0}


async def test_a_model_failing_while_the_reply_is_held_is_told_only_once_the_endpoint_confirms_it() -> None:
    async with fake_session(llm={"fail": "before_first"}, endpoint_silence_ms=450) as h:
        await h.listen(QUESTION)
        endpoint = h.log.events.index(h.log.of(SpeechEnded)[0])
        (error,) = h.log.of(ErrorRaised)
        assert error.stage == "llm" and h.log.events.index(error) > endpoint
        (turn,) = h.log.of(TurnFinished)
        assert turn.error is not None and turn.user_text == "what time is it"
        assert h.tts.texts == [APOLOGY]  # the apology, after the endpoint
        assert played_after(h, h.log.at(h.log.of(SpeechEnded)[0]))
        assert [(r.user_text, r.status) for r in h.history()] == [("what time is it", "error")]


async def test_a_held_reply_that_failed_and_was_discarded_is_never_told() -> None:
    llm = {**RESUMED, "fail": "before_first", "fail_calls": [0]}
    async with fake_session(stt={"texts": ["what time", "what time is it"]}, llm=llm) as h:
        await h.listen(PAUSE_THEN_MORE)
        assert h.log.of(ErrorRaised) == []
        (turn,) = h.log.of(TurnFinished)
        assert turn.error is None and turn.reply_text == "The real answer."
