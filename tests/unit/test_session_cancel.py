"""The real engine on fakes: ending work early — the stop button, a caller that cancels
`send_text`, a newer turn, muting mid-utterance, and `aclose` in the middle of a reply."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.engine.events import FinalTranscript, SpeechEnded, SpeechStarted, State, TurnFinished
from tests.support.fakes import WaitFor, fake_session, reopen_history, speech, state_is, until

pytestmark = pytest.mark.timeout(20)

# Three sentences of 0.5 s each, written slowly: cancelling mid-reply cuts generation too.
SLOW_REPLY = {
    "replies": [["Hello there. ", "This is the second sentence. ", "And here is a third one."], ["Second answer."]],
    "delay_s": 0.3,
}
TONE = {"seconds": 0.5, "chunks": 5}


async def test_stop_speaking_ends_the_reply_now_and_keeps_what_was_heard() -> None:
    async with fake_session(llm=SLOW_REPLY, tts=TONE) as h:
        turn_task = asyncio.create_task(h.session.send_text("tell me a story"))
        await h.log.wait_for(state_is(State.SPEAKING))
        stopped_at = h.clock()
        h.session.stop_speaking()
        await asyncio.wait_for(turn_task, 2)  # returns normally: the stop button is no error
        (turn,) = h.log.of(TurnFinished)
        assert turn.interrupted and turn.error is None
        assert turn.reply_text == "Hello there."  # the sentence that had started playing
        assert h.speaker.flushes and stopped_at <= h.speaker.flushes[0] < stopped_at + 0.05
        story = h.llm.calls[0]
        assert story.cancelled and not story.finished  # generation stopped with the voice
        assert h.log.at(turn) - stopped_at < 0.4  # not after the 1.5 s the reply had left
        (row,) = h.history()
        assert (row.status, row.reply_text) == ("interrupted", "Hello there.")
        assert h.session.state is State.IDLE


async def test_send_text_cancelled_by_its_caller_raises_stores_the_turn_and_the_session_goes_on() -> None:
    async with fake_session(llm=SLOW_REPLY, tts=TONE) as h:
        turn_task = asyncio.create_task(h.session.send_text("tell me a story"))
        await h.log.wait_for(state_is(State.SPEAKING))
        turn_task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await turn_task  # the caller asked to stop: send_text must not swallow that
        (turn,) = h.log.of(TurnFinished)
        assert turn.interrupted and turn.reply_text == "Hello there."
        assert h.llm.calls[0].cancelled
        assert [(r.status, r.reply_text) for r in h.history()] == [("interrupted", "Hello there.")]
        await asyncio.wait_for(h.session.send_text("again"), 3)
        assert h.log.of(TurnFinished)[-1].reply_text == "Second answer."


async def test_a_turn_cancelled_while_thinking_is_stored_empty_and_nothing_is_spoken() -> None:
    async with fake_session(llm={"first_delay_s": 10.0}) as h:
        turn_task = asyncio.create_task(h.session.send_text("hello"))
        await until(lambda: len(h.llm.calls) == 1)
        assert h.session.state is State.THINKING
        turn_task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await turn_task
        (turn,) = h.log.of(TurnFinished)
        assert turn.interrupted and turn.reply_text == ""
        assert h.llm.calls[0].cancelled and h.tts.calls == []
        assert [(r.status, r.user_text) for r in h.history()] == [("interrupted", "hello")]


async def test_a_new_typed_turn_supersedes_the_reply_still_playing() -> None:
    async with fake_session(llm=SLOW_REPLY, tts=TONE) as h:
        first_task = asyncio.create_task(h.session.send_text("tell me a story"))
        await h.log.wait_for(state_is(State.SPEAKING))
        await asyncio.wait_for(h.session.send_text("never mind"), 3)
        assert first_task.done() and first_task.exception() is None
        first, second = h.log.of(TurnFinished)
        assert first.interrupted and not second.interrupted and second.reply_text == "Second answer."
        # One turn at a time: the first is over before the second begins.
        assert h.log.events.index(first) < h.log.events.index(h.log.of(FinalTranscript)[1])
        assert [r.status for r in h.history()] == ["interrupted", "complete"]


async def test_muting_mid_utterance_drops_it_and_closes_the_microphone() -> None:
    async with fake_session() as h:
        source = await h.listen([speech(640), WaitFor(lambda: not h.session.muted), speech(384)], hold=True, wait=False)
        await h.log.wait_for_kind(SpeechStarted)
        h.session.set_muted(True)
        await until(lambda: source.stops >= 1)
        await h.session.wait_idle()
        assert not h.session.microphone_live and h.session.state is State.IDLE
        assert h.log.of(SpeechEnded) == [] and h.log.of(TurnFinished) == []
        assert h.stt.calls == []  # nothing of the dropped utterance was transcribed


async def test_aclose_in_the_middle_of_a_reply_is_quick_and_stores_the_turn() -> None:
    async with fake_session(llm=SLOW_REPLY, tts=TONE) as h:
        await h.listen([], hold=True, wait=False)  # a live microphone, silent
        turn_task = asyncio.create_task(h.session.send_text("tell me a story"))
        await h.log.wait_for(state_is(State.SPEAKING))
        t0 = time.monotonic()
        await h.session.aclose()
        assert time.monotonic() - t0 < 1.0
        await asyncio.wait_for(turn_task, 1)  # the session ended the turn, not the caller: no error
        (turn,) = h.log.of(TurnFinished)
        assert turn.interrupted and turn.reply_text == "Hello there."
        assert h.llm.calls[0].cancelled
        # Every provider, the speaker and the microphone were closed.
        assert set(h.closed_counts()) == {1}
        assert h.speaker.stops >= 1 and h.mic.stops >= 1
        assert h.session.state is State.IDLE
        session = h.session
    assert [(r.status, r.reply_text) for r in reopen_history(session)] == [("interrupted", "Hello there.")]


async def test_aclose_twice_is_harmless() -> None:
    async with fake_session() as h:
        await h.session.send_text("hello")
        await h.session.aclose()
        await h.session.aclose()
        assert set(h.closed_counts()) == {1}
