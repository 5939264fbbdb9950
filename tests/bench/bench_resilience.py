"""What resilience costs a turn, measured (not asserted): run
``.venv/bin/python -m tests.bench.bench_resilience``.

1. Added latency per turn with the primary down and its breaker open: the same
   local fallback stream driven directly vs through a StageRunner that must
   skip the open primary first (bar: ≤ 5 ms).
2. Fallback completion time when the primary stalls before its first byte
   (loopback fault server): how long after the first-output deadline the turn
   finished (bar: fallback completes within that deadline + 1 s).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import ChatMessage, LLMProvider
from app.plugin.registry import get_registry
from app.plugin.resilience import BreakerConfig, BreakerState, Deadline, RetryPolicy, StageRunner
from tests.support.fault_server import MODEL_ID, FaultServer

SENTENCE = ["Sure", ",", " here", " is", " the", " answer", "."]


class LocalStream:
    """An in-process responder: what a skills / llama.cpp fallback looks like to the runner."""

    async def chat(self) -> AsyncIterator[str]:
        for part in SENTENCE:
            yield part

    async def health(self) -> None:
        return None


async def _direct(local: LocalStream) -> float:
    t = time.perf_counter()
    async for _ in local.chat():
        pass
    return time.perf_counter() - t


async def _through_runner(runner: StageRunner[LocalStream]) -> float:
    t = time.perf_counter()
    async for _ in runner.stream(lambda p: p.chat(), first_output_timeout=8, idle_timeout=8, deadline=Deadline(30)):
        pass
    return time.perf_counter() - t


async def breaker_open_overhead(turns: int = 3000) -> dict[str, float]:
    primary, local = LocalStream(), LocalStream()
    runner: StageRunner[LocalStream] = StageRunner(
        "llm",
        [("cloud", primary), ("local", local)],
        breaker_config=BreakerConfig(failure_threshold=1, reset_timeout_s=3600),
        background_probes=False,
    )
    runner.breaker("cloud").record_failure(VoiceError("llm.cloud", ErrorCode.UNAVAILABLE, "down"))
    assert runner.breaker("cloud").state is BreakerState.OPEN
    direct, wrapped = [], []
    for _ in range(turns):
        direct.append(await _direct(local))
        wrapped.append(await _through_runner(runner))
    added = [w - d for w, d in zip(wrapped, direct, strict=True)]
    return {
        "direct_p50_ms": statistics.median(direct) * 1e3,
        "runner_p50_ms": statistics.median(wrapped) * 1e3,
        "added_p50_ms": statistics.median(added) * 1e3,
        "added_p99_ms": sorted(added)[int(len(added) * 0.99)] * 1e3,
    }


async def fallback_after_stall(first_output_s: float = 1.0, runs: int = 5) -> dict[str, float]:
    reg = get_registry()
    times = []
    with FaultServer() as srv:
        for _ in range(runs):
            cloud = reg.create("llm", "openai-compatible", {"base_url": srv.base_url("stall"), "model": MODEL_ID})
            backup = reg.create("llm", "openai-compatible", {"base_url": srv.base_url("ok"), "model": MODEL_ID})
            assert isinstance(cloud, LLMProvider) and isinstance(backup, LLMProvider)
            runner: StageRunner[LLMProvider] = StageRunner(
                "llm",
                [("cloud", cloud), ("backup", backup)],
                retry=RetryPolicy(),
                background_probes=False,
            )
            t = time.perf_counter()
            text = "".join(
                [
                    d
                    async for d in runner.stream(
                        lambda p: p.chat([ChatMessage("user", "hi")]),
                        first_output_timeout=first_output_s,
                        idle_timeout=5,
                        deadline=Deadline(30),
                    )
                ]
            )
            times.append(time.perf_counter() - t)
            assert text
            for p in (cloud, backup):
                await p.aclose()
            await runner.aclose()
    return {
        "first_output_deadline_s": first_output_s,
        "turn_done_p50_s": statistics.median(times),
        "turn_done_max_s": max(times),
        "over_deadline_max_s": max(times) - first_output_s,
    }


async def main() -> None:
    overhead = await breaker_open_overhead()
    print("primary down, breaker open — added latency per turn (bar ≤ 5 ms):")
    for k, v in overhead.items():
        print(f"  {k:22s} {v:8.3f}")
    fb = await fallback_after_stall()
    print("primary stalls, fallback over loopback HTTP (bar: ≤ first-output deadline + 1 s):")
    for k, v in fb.items():
        print(f"  {k:22s} {v:8.3f}")


if __name__ == "__main__":
    asyncio.run(main())
