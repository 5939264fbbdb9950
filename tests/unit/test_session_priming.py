"""A model with a prompt cache reads the system prompt after loading, and the next turn's
history after each turn, so a turn evaluates little more than its own question."""

from __future__ import annotations

import asyncio

import pytest

from app.engine.events import ErrorRaised
from tests.support.fakes import FakeLLM, fake_session


async def test_the_session_primes_the_model_with_its_system_prompt_after_loading() -> None:
    async with fake_session(system_prompt="Be brief.") as h:
        await h.session.ready.wait()
        for _ in range(50):
            if h.llm.primed:
                break
            await asyncio.sleep(0.01)
        (messages,) = h.llm.primed
        assert messages[0].role == "system" and "Be brief." in messages[0].content
        assert messages[-1].role == "user"
        await h.session.send_text("hi")
        assert h.llm.calls[0].messages[0] == messages[0]  # the same start: the cache serves it
        assert len(h.llm.calls) == 1  # priming is not a turn
        assert h.history()[0].user_text == "hi"


async def test_a_failing_prime_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FakeLLM, "prime_error", RuntimeError("worker busy"))
    async with fake_session(llm={"replies": [["Hello."]]}) as h:
        await h.session.ready.wait()
        await h.session.send_text("hi")
        assert h.llm.primed  # it was tried, failed quietly
        assert [r.reply_text for r in h.history()] == ["Hello."]
        assert not any(isinstance(e, ErrorRaised) for e in h.log.events)


async def test_after_each_turn_the_model_reads_the_next_turns_history_before_it_is_asked() -> None:
    # A window of 4 turns moves on by 2: the 6th turn's prompt drops the first two turns,
    # so its start differs from everything the model read before, unless primed.
    replies = [[f"Reply {i}."] for i in range(6)]
    async with fake_session(history_turns=4, llm={"replies": replies}) as h:
        await h.session.ready.wait()
        for i in range(6):
            await h.session.send_text(f"question {i}")
            if i < 5:
                await _primed(h, i + 2)
        for i, call in enumerate(h.llm.calls[1:], start=1):
            primed = h.llm.primed[i]  # the prime after turn i-1
            assert primed[:-1] == call.messages[:-1], f"turn {i}"  # all but the new question
        window_moved = h.llm.calls[5].messages
        assert next(m.content for m in window_moved if m.role == "user") == "question 2"


async def _primed(h: object, count: int) -> None:
    llm = h.llm  # type: ignore[attr-defined]
    for _ in range(200):
        if len(llm.primed) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"primed {len(llm.primed)} times, expected {count}")
