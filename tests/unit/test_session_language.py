"""The conversation's language reaches the model: `auto` asks it to answer in the user's
language, and a spoken turn says which language the recognizer heard."""

from __future__ import annotations

from tests.support.fakes import fake_session, silence, speech


async def test_auto_language_tells_the_model_what_was_heard_in_a_spoken_turn() -> None:
    stt = {"text": "quelle heure est-il", "detected": "fr"}
    async with fake_session(language="auto", stt=stt, llm={"replies": [["Il est midi."]]}) as h:
        await h.session.ready.wait()
        await h.listen([speech(384), silence(480)])
        (call,) = h.llm.calls
        system, *_, user = call.messages
        assert "language the user speaks" in system.content
        assert user.content.startswith("quelle heure est-il") and "French" in user.content


async def test_english_keeps_the_prompt_as_it_was_and_typed_text_has_no_heard_note() -> None:
    async with fake_session(language="en", stt={"detected": "en"}) as h:
        await h.session.ready.wait()
        await h.session.send_text("what time is it")
        system, *_, user = h.llm.calls[0].messages
        assert "language" not in system.content and user.content == "what time is it"
    async with fake_session(language="auto", stt={"detected": "de"}) as h:
        await h.session.ready.wait()
        await h.session.send_text("what time is it")
        assert h.llm.calls[0].messages[-1].content == "what time is it"  # typed: nothing was heard
