"""Barge-in that knows its own voice (app/engine/barge_in.py): speech over a reply pauses
it; our own words coming back resume it, the user's words cut it and are the next turn."""

from __future__ import annotations

from typing import Any

import pytest

from app.engine.barge_in import is_own_echo
from app.engine.events import TurnFinished
from tests.support.fakes import FakeClock, MemorySink, fake_session
from tests.unit.test_session_bargein import FULL_DUPLEX, LONG_REPLY, TONE, talk_over

pytestmark = pytest.mark.timeout(20)


class PausableSink(MemorySink):
    """A speaker that can hold its queue: records when it was paused and resumed."""

    can_pause = True

    def __init__(self) -> None:
        super().__init__(FakeClock())
        self.pauses: list[float] = []
        self.resumes: list[float] = []

    def pause(self) -> None:
        self.pauses.append(self.clock())

    def resume(self) -> None:
        self.resumes.append(self.clock())


@pytest.mark.parametrize(
    ("heard", "said", "own"),
    [
        ("hello there", "Hello there. This is the second sentence.", True),
        ("This is the second", "Hello there. This is the second sentence.", True),
        ("", "Hello there.", True),  # no words: a noise, or what the canceller left
        ("stop", "Hello there. This is the second sentence.", False),
        ("what time is it", "Hello there. This is the second sentence.", False),
        ("is it the second one", "Hello there. This is the second sentence.", True),
        ("no stop it now please", "Hello there. This is it.", False),
    ],
)
def test_own_echo_is_the_replys_words(heard: str, said: str, own: bool) -> None:
    assert is_own_echo(heard, said) is own


async def test_our_own_words_coming_back_pause_the_reply_then_resume_it() -> None:
    sink = PausableSink()
    stt: dict[str, Any] = {"texts": ["what can you do", "hello there"]}
    async with fake_session(stt=stt, llm=LONG_REPLY, tts=TONE, sink=sink, **FULL_DUPLEX) as h:
        await h.listen(talk_over(h))
        await h.session.wait_idle()
        (only,) = h.log.of(TurnFinished)
        assert not only.interrupted and only.reply_text.endswith("third one.")
        assert len(sink.pauses) == 1 and len(sink.resumes) == 1 and sink.pauses[0] <= sink.resumes[0]
        assert sink.flushes == []
        assert h.session.barge_in.own_echo_heard == 1
        assert [r.user_text for r in h.history()] == ["what can you do"]


async def test_the_users_words_over_a_paused_reply_cut_it_and_become_the_next_turn() -> None:
    sink = PausableSink()
    stt: dict[str, Any] = {"texts": ["what can you do", "stop"]}
    async with fake_session(stt=stt, llm=LONG_REPLY, tts=TONE, sink=sink, **FULL_DUPLEX) as h:
        await h.listen(talk_over(h))
        first, second = h.log.of(TurnFinished)
        assert first.interrupted and (second.user_text, second.reply_text) == ("stop", "Okay.")
        (paused,) = sink.pauses
        assert sink.resumes == [] and len(sink.flushes) == 1 and sink.flushes[0] >= paused
        # The reply went silent when the speech was confirmed, not at the decision.
        assert first.timings["barge_in_stop"] < 0.15
        assert sink.flushes[0] - paused > 0.3  # the decision waited for the words
        assert h.session.barge_in.own_echo_heard == 0
