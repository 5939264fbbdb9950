"""LLM `llama-cpp` benchmark with the embedded default model (Qwen2.5-Coder 0.5B Instruct,
from its part packages) or `--model PATH`.

    .venv/bin/python -m tests.bench.bench_llm [--model PATH] [--turns 5] [--trials 5] [--json]

Prints: model load time; first token with a cold prompt cache (a new conversation)
and with a warm one (the next turn of the same conversation); prompt evaluation
and generation speed in tokens/s; cancel latency
(consumer side: cancel → the reply task is done; worker side: cancel → the worker
serves the next request); peak resident memory of the worker process and of the
app process. Figures depend on the machine and its load; quote them with both.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from app.plugin.provider_api import ChatMessage
from app.plugin.registry import get_registry
from providers.llm.llama_cpp import LlamaCppLLM

WARM_FIRST_TOKEN_BAR_S = 0.300
SYSTEM = "You are VoxDesk, a helpful voice assistant. Answer briefly in plain spoken sentences."
QUESTIONS = [
    "What is a good way to start the morning?",
    "Why do cats purr?",
    "Tell me one fact about the moon.",
    "How far is the sea from here?",
    "What should I cook tonight?",
    "Can you suggest a short book?",
    "What is the capital of Norway?",
    "How do I boil an egg?",
]
COUNTING = "Count from 1 to 200: 1, 2, 3, 4, 5,"


def _peak_rss_mb(pid: int) -> float | None:
    """VmHWM of a live process (Linux); None elsewhere."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _self_peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


async def _timed_reply(llm: LlamaCppLLM, messages: list[ChatMessage]) -> tuple[str, float]:
    t0 = time.perf_counter()
    first: float | None = None
    parts = []
    async for delta in llm.chat(messages):
        if first is None:
            first = time.perf_counter() - t0
        parts.append(delta)
    return "".join(parts), first if first is not None else float("nan")


async def _cancel_once(llm: LlamaCppLLM) -> tuple[float, float]:
    """(consumer-side, worker-side) seconds from cancel to done / to the next answer."""
    started = asyncio.Event()

    async def consume() -> None:
        n = 0
        async for _ in llm.chat([ChatMessage("user", COUNTING)]):
            n += 1
            if n >= 3:
                started.set()

    task = asyncio.create_task(consume())
    await started.wait()
    t0 = time.perf_counter()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    consumer = time.perf_counter() - t0
    await llm.count_tokens([ChatMessage("user", "ping")])
    return consumer, time.perf_counter() - t0


async def _cancel_during_prompt(llm: LlamaCppLLM, trial: int) -> float:
    """Seconds from cancel to the worker serving the next request, mid-way through
    evaluating a long uncached prompt (a barge-in right after a long question)."""
    text = f"Note {trial}: " + " ".join(f"item {i} is on shelf {i % 7}." for i in range(140))

    async def consume() -> None:
        async for _ in llm.chat([ChatMessage("user", text)]):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.15)  # the worker is now evaluating the prompt
    t0 = time.perf_counter()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await llm.count_tokens([ChatMessage("user", "ping")])
    return time.perf_counter() - t0


async def run(model: str, turns: int, trials: int) -> dict[str, Any]:
    llm = get_registry().create("llm", "llama-cpp", {"model": model, "seed": 1})
    assert isinstance(llm, LlamaCppLLM)
    try:
        t0 = time.perf_counter()
        await llm.warmup()
        load_s = time.perf_counter() - t0

        cold: list[float] = []
        warm: list[float] = []
        prompt_tps: list[float] = []
        gen_tps: list[float] = []
        cached: list[float] = []
        for trial in range(trials):
            # A new conversation: only the BOS token is shared with the last one.
            history = [
                ChatMessage("system", f"{SYSTEM} Conversation {trial}."),
                ChatMessage("user", QUESTIONS[trial % len(QUESTIONS)]),
            ]
            for turn in range(turns):
                reply, ttft = await _timed_reply(llm, history)
                stats = llm.last_stats
                assert stats is not None
                (cold if turn == 0 else warm).append(ttft)
                if turn == 0:
                    prompt_tps.append(stats.prompt_tokens / ttft)
                else:
                    cached.append(stats.cached_tokens / stats.prompt_tokens)
                if stats.total_s and stats.first_token_s and stats.completion_tokens > 1:
                    gen_tps.append((stats.completion_tokens - 1) / (stats.total_s - stats.first_token_s))
                history += [
                    ChatMessage("assistant", reply),
                    ChatMessage("user", QUESTIONS[(trial + turn + 1) % len(QUESTIONS)]),
                ]

        cancels = [await _cancel_once(llm) for _ in range(trials)]
        prompt_cancels = [await _cancel_during_prompt(llm, i) for i in range(trials)]
        long_prompt = "Note x: " + " ".join(f"item {i} is on shelf {i % 7}." for i in range(140))
        long_prompt_tokens = await llm.count_tokens([ChatMessage("user", long_prompt)])
        pid = llm.worker_pid
        worker_rss = _peak_rss_mb(pid) if pid else None
        return {
            "machine": f"{platform.machine()} {os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.1f}",
            "model": model,
            "model_info": {k: v for k, v in llm.model_info.items() if k != "load_s"},
            "load_s": load_s,
            "first_token_cold_s": statistics.median(cold),
            "first_token_warm_s": statistics.median(warm) if warm else None,
            "first_token_warm_max_s": max(warm) if warm else None,
            "warm_prompt_cached_share": statistics.median(cached) if cached else None,
            "prompt_eval_tokens_per_s": statistics.median(prompt_tps),
            "generation_tokens_per_s": statistics.median(gen_tps) if gen_tps else None,
            "cancel_consumer_ms_max": 1000 * max(c for c, _ in cancels),
            "cancel_worker_free_ms_median": 1000 * statistics.median(w for _, w in cancels),
            "cancel_in_prompt_worker_free_ms_max": 1000 * max(prompt_cancels),
            "long_prompt_tokens": long_prompt_tokens,
            "worker_peak_rss_mb": worker_rss,
            "app_process_peak_rss_mb": _self_peak_rss_mb(),
        }
    finally:
        await llm.aclose()


def _default_model(home: Path) -> str:
    """The embedded GGUF, assembled into a throw-away home (the user's cache is left alone)."""
    from app.store.models import resolve_model
    from app.store.paths import resolve_paths
    from providers.llm.llama_cpp_models import DEFAULT_MODEL_ID

    return str(resolve_model(DEFAULT_MODEL_ID, paths=resolve_paths(home)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="path of a .gguf file (default: the embedded model)")
    parser.add_argument("--turns", type=int, default=5, help="turns per conversation (1 cold + warm ones)")
    parser.add_argument("--trials", type=int, default=3, help="conversations, and cancel measurements")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="voxdesk-bench-llm-") as home:
        model = args.model or _default_model(Path(home))
        result = asyncio.run(run(model, max(2, args.turns), max(1, args.trials)))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    warm = result["first_token_warm_s"]
    verdict = "PASS" if warm is not None and warm <= WARM_FIRST_TOKEN_BAR_S else "FAIL"
    gen_tps = result["generation_tokens_per_s"]
    rss = result["worker_peak_rss_mb"]
    print(f"machine                 {result['machine']}")
    print(f"model                   {Path(result['model']).name} {result['model_info']}")
    print(f"load (spawn + load)     {result['load_s']:.2f} s")
    print(f"first token, cold cache {result['first_token_cold_s'] * 1000:.0f} ms")
    warm_max = result["first_token_warm_max_s"]
    print(
        f"first token, warm cache {warm * 1000:.0f} ms (max {warm_max * 1000:.0f} ms; "
        f"bar ≤ {WARM_FIRST_TOKEN_BAR_S * 1000:.0f} ms: {verdict}; "
        f"{result['warm_prompt_cached_share']:.0%} of the prompt cached)"
    )
    print(f"prompt evaluation       {result['prompt_eval_tokens_per_s']:.0f} tokens/s")
    print(f"generation              {gen_tps:.1f} tokens/s" if gen_tps else "generation              n/a")
    print(f"cancel → reply task done  max {result['cancel_consumer_ms_max']:.2f} ms (bar < 100 ms)")
    print(f"cancel → worker free      median {result['cancel_worker_free_ms_median']:.0f} ms")
    print(
        f"cancel in a {result['long_prompt_tokens']}-token prompt → worker free  "
        f"max {result['cancel_in_prompt_worker_free_ms_max']:.0f} ms"
    )
    print(f"worker peak RSS         {rss:.0f} MB" if rss else "worker peak RSS         n/a")
    print(f"app process peak RSS    {result['app_process_peak_rss_mb']:.0f} MB (llama_cpp not imported here)")


if __name__ == "__main__":
    main()
