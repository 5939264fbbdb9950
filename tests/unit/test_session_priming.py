"""After loading, a model with a prompt cache reads the system prompt before the first turn."""

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
        assert len(h.llm.primed) == 1  # it was tried, failed quietly
        assert [r.reply_text for r in h.history()] == ["Hello."]
        assert not any(isinstance(e, ErrorRaised) for e in h.log.events)
