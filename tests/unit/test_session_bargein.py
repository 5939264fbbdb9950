"""The real engine on fakes: talking over the reply — barge-in, the echo gate, half duplex,
and a new utterance superseding a turn that is still thinking."""

from __future__ import annotations

from typing import Any

import pytest

from app.engine.events import FinalTranscript, State, TurnFinished
from tests.support.fakes import WaitFor, fake_session, silence, speech

pytestmark = pytest.mark.timeout(20)

# Three sentences of 0.5 s each: the user talks over the first one.
LONG_REPLY = {"replies": [["Hello there. ", "This is the second sentence. ", "And here is a third one."], ["Okay."]]}
TONE = {"seconds": 0.5, "chunks": 5, "level": 0.05}
FULL_DUPLEX: dict[str, Any] = {"duplex": "full", "barge_in": True}


def talk_over(h: Any, *, level: float = 0.5, tag: str = "over") -> list[Any]:
    """A question, then, once the reply is playing, more speech (loud, or at `level`)."""
    return [
        speech(384),
        silence(384),
        WaitFor(lambda: h.session.state is State.SPEAKING),
        speech(384, level=level, tag=tag),
        silence(480),
    ]


async def test_talking_over_the_reply_interrupts_it_and_starts_a_new_turn() -> None:
    async with fake_session(stt={"texts": ["what can you do", "stop"]}, llm=LONG_REPLY, tts=TONE, **FULL_DUPLEX) as h:
        await h.listen(talk_over(h))
        first, second = h.log.of(TurnFinished)
        assert first.interrupted and first.error is None
        assert (second.user_text, second.reply_text, second.interrupted) == ("stop", "Okay.", False)
        # One turn at a time: the first is finished before the second is heard.
        assert h.log.events.index(first) < h.log.events.index(h.log.of(FinalTranscript)[1])
        assert [r.interrupted for r in h.history()] == [True, False]


async def test_barge_in_silences_the_speaker_within_a_frame_or_two() -> None:
    async with fake_session(
        stt={"texts": ["what can you do", "stop"]}, llm=LONG_REPLY, tts=TONE, min_speech_ms=96, **FULL_DUPLEX
    ) as h:
        await h.listen(talk_over(h))
        first = h.log.of(TurnFinished)[0]
        sink, source = h.speaker, h.mic
        # VAD confirms the barge-in on the third loud frame; the speaker is flushed then.
        confirmed = source.stamps("over")[2]
        (flush,) = sink.flushes
        assert confirmed <= flush < confirmed + 0.15
        assert first.timings["barge_in_stop"] < 0.15
        # The user heard part of the first sentence; nothing more of that reply was queued
        # after the flush: the next audio is the second turn's.
        heard = sum(min(p.end, flush) - p.at for p in sink.played if p.at < flush)
        assert 0 < heard < TONE["seconds"]
        second_final = h.log.at(h.log.of(FinalTranscript)[1])
        assert all(p.queued_at > second_final for p in sink.played if p.queued_at >= flush)
        assert any(p.queued_at >= flush for p in sink.played)


async def test_an_interrupted_reply_is_stored_as_what_the_user_heard() -> None:
    async with fake_session(stt={"texts": ["what can you do", "stop"]}, llm=LONG_REPLY, tts=TONE, **FULL_DUPLEX) as h:
        await h.listen(talk_over(h))
        first = h.log.of(TurnFinished)[0]
        # The whole reply was generated and queued; only its first sentence had started playing.
        assert h.llm.calls[0].finished
        assert first.reply_text == "Hello there."
        assert h.history()[0].reply_text == "Hello there."
        assert h.history()[0].status == "interrupted"


async def test_barge_in_cancels_the_generation_still_running() -> None:
    slow = {**LONG_REPLY, "delay_s": 0.4}
    async with fake_session(stt={"texts": ["tell me a story", "stop"]}, llm=slow, tts=TONE, **FULL_DUPLEX) as h:
        await h.listen(talk_over(h))
        story = h.llm.calls[0]
        assert story.cancelled and not story.finished
        assert len(story.sent) < len(LONG_REPLY["replies"][0])
        # The sentences never generated were never synthesized either.
        assert "And here is a third one." not in h.tts.texts


async def test_the_echo_of_our_own_voice_does_not_interrupt_the_reply() -> None:
    # What the microphone hears of the reply: speech-like to the VAD, but no louder than the echo.
    async with fake_session(llm=LONG_REPLY, tts=TONE, **FULL_DUPLEX) as h:
        await h.listen(talk_over(h, level=TONE["level"] * 0.5, tag="echo"))
        (turn,) = h.log.of(TurnFinished)
        assert not turn.interrupted and turn.reply_text.endswith("third one.")
        assert "echo" in h.vad.tags_seen()  # the VAD heard it: the echo gate kept it out
        assert h.speaker.flushes == []


async def test_with_barge_in_off_speech_over_the_reply_is_not_a_turn() -> None:
    async with fake_session(llm=LONG_REPLY, tts=TONE, duplex="full", barge_in=False) as h:
        await h.listen(talk_over(h))
        (turn,) = h.log.of(TurnFinished)
        assert not turn.interrupted and turn.reply_text.endswith("third one.")
        assert "over" in h.vad.tags_seen()
        assert h.speaker.flushes == [] and len(h.stt.calls) == 1


async def test_half_duplex_ignores_the_microphone_while_speaking() -> None:
    async with fake_session(llm=LONG_REPLY, tts=TONE, duplex="half", barge_in=True) as h:
        await h.listen(talk_over(h))
        (turn,) = h.log.of(TurnFinished)
        assert not turn.interrupted
        assert "over" not in h.vad.tags_seen()  # frames during the reply never reach the VAD
        assert len(h.stt.calls) == 1


async def test_speaking_again_while_the_assistant_thinks_supersedes_the_turn() -> None:
    llm = {"replies": [["First answer."], ["Second answer."]], "first_delays": [2.0, 0.0]}
    async with fake_session(stt={"texts": ["what is", "what is the time"]}, llm=llm) as h:
        await h.listen(
            [
                speech(384),
                silence(384),
                WaitFor(lambda: h.session.state is State.THINKING and len(h.llm.calls) == 1),
                speech(384, tag="again"),
                silence(480),
            ]
        )
        first, second = h.log.of(TurnFinished)
        assert first.interrupted and first.reply_text == "" and first.user_text == "what is"
        assert second.reply_text == "Second answer." and not second.interrupted
        assert h.llm.calls[0].cancelled
        assert h.tts.texts == ["Second answer."]  # nothing of the superseded turn was spoken
        assert [(r.status, r.reply_text) for r in h.history()] == [("interrupted", ""), ("complete", "Second answer.")]
