"""The real engine on fakes: what a model's reply becomes when it is spoken — cut at the
spoken-length cap or a loop (and the model stopped), markdown gone — and that the
history, the screen and the next turn's context hold what was spoken."""

from __future__ import annotations

import pytest

from app.engine.events import ReplyDelta, TurnFinished
from app.engine.spoken_prompt import MORE_NOTE
from app.engine.spoken_reply import BRIEF
from app.plugin.provider_api import ChatMessage
from tests.support.fakes import fake_session

pytestmark = pytest.mark.timeout(20)

LONG = [f"Sentence number {n} is here. " for n in range(1, 21)]
LOOPING = ["Paris is ", "the capital. ", *["It is ", "a city ", "in France ", "and "] * 30]


async def test_a_long_reply_is_cut_at_the_cap_and_the_model_is_stopped() -> None:
    async with fake_session(llm={"replies": [LONG], "delay_s": 0.05}) as h:
        await h.session.send_text("tell me about numbers")
        spoken = "".join(LONG[: BRIEF.max_sentences]).strip()
        (row,) = h.history()
        assert (row.reply_text, row.status) == (spoken, "complete")
        (turn,) = h.log.of(TurnFinished)
        assert turn.reply_text == spoken and turn.error is None
        assert "".join(e.text for e in h.log.of(ReplyDelta)).strip() == spoken  # the screen shows the same
        assert " ".join(h.tts.texts) == spoken  # and the voice said just that
        call = h.llm.calls[0]
        assert call.cancelled and len(call.sent) < len(LONG)  # generation stopped, not drained


async def test_a_looping_reply_is_said_once_and_stopped() -> None:
    async with fake_session(llm={"replies": [LOOPING], "delay_s": 0.02}) as h:
        await h.session.send_text("what is paris")
        (row,) = h.history()
        assert row.reply_text == "Paris is the capital. It is a city in France."
        assert h.llm.calls[0].cancelled


async def test_markdown_emoji_and_urls_never_reach_the_voice_or_the_history() -> None:
    reply = ["**Paris** is ", "the capital 🇫🇷. ", "See https://en.wikipedia.org/wiki/Paris ", "for more.\n"]
    async with fake_session(llm={"replies": [reply]}) as h:
        await h.session.send_text("capital of france")
        said = "Paris is the capital. See en.wikipedia.org for more."
        (row,) = h.history()
        assert row.reply_text == said
        assert " ".join(h.tts.texts) == said


async def test_the_next_turn_sees_what_was_spoken_and_tell_me_more_gets_a_longer_answer() -> None:
    async with fake_session(llm={"replies": [LONG]}) as h:
        await h.session.send_text("tell me about numbers")
        await h.session.send_text("Tell me more.")
        first, more = h.history()
        second_call = h.llm.calls[1].messages
        assert second_call[1] == ChatMessage("user", "tell me about numbers")
        assert second_call[2] == ChatMessage("assistant", first.reply_text)  # what was said, not generated
        assert second_call[3].content.startswith("Tell me more.") and MORE_NOTE in second_call[3].content
        assert more.user_text == "Tell me more."  # the note is for the model only
        assert more.reply_text.count(".") > BRIEF.max_sentences


async def test_a_new_conversation_starts_the_model_with_no_earlier_turns() -> None:
    async with fake_session(llm={"replies": [["Shakespeare wrote it."], ["He was born in 1564."], ["Hello."]]}) as h:
        await h.session.send_text("Who wrote Hamlet?")
        await h.session.send_text("When was he born?")
        follow_up = h.llm.calls[1].messages
        assert [m.content for m in follow_up[1:3]] == ["Who wrote Hamlet?", "Shakespeare wrote it."]
        assert h.history()[-1].reply_text == "He was born in fifteen sixty-four."
        await h.session.new_conversation()
        await h.session.send_text("Hi")
        fresh = h.llm.calls[2].messages
        assert [m.role for m in fresh] == ["system", "user"] and fresh[1].content == "Hi"
