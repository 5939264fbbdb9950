"""Inference threads and workers run nicer than the window and the audio."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from app.plugin import priority

ROOT = Path(__file__).resolve().parents[2]
linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")


@linux
def test_an_inference_thread_runs_nicer_and_the_rest_of_the_process_does_not() -> None:
    seen: dict[str, int] = {}

    def work() -> None:
        priority.lower_this_thread()
        tid = threading.get_native_id()
        seen["worker"] = os.getpriority(os.PRIO_PROCESS, tid)

        def child() -> None:  # a thread the library starts from it (CTranslate2's pool)
            seen["child"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

        t = threading.Thread(target=child)
        t.start()
        t.join()

    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen == {"worker": base + priority.INFERENCE_NICE, "child": base + priority.INFERENCE_NICE}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base


def test_a_worker_process_runs_nicer() -> None:
    code = (
        "import os; from app.plugin import priority; "
        "b = os.nice(0); priority.lower_this_process(); print(os.nice(0) - b)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == priority.INFERENCE_NICE


@linux
def test_the_speech_recognition_thread_is_lowered(tmp_path: Path) -> None:
    from app.plugin.registry import get_registry

    stt = get_registry().create("stt", "faster-whisper", None)
    seen: list[int] = []

    async def probe() -> None:
        await stt._decoder.run(lambda _cancel: seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))  # type: ignore[attr-defined]
        await stt.aclose()

    import asyncio

    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    asyncio.run(probe())
    assert seen == [base + priority.INFERENCE_NICE]
