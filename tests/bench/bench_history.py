"""History write latency: what begin_turn / finish_turn cost per turn, FULL vs NORMAL sync.

Run: `.venv/bin/python -m tests.bench.bench_history [--turns N] [--dir DIR]`.
Both calls run off the event loop (asyncio.to_thread) and outside the voice-to-voice
path, so the bar is loose: a few milliseconds at p95 is invisible to a user.
The directory matters: fsync cost depends on the disk (tmpfs vs SSD vs network).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from app.store.history import History


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(directory: Path, turns: int, synchronous: str) -> dict[str, float]:
    path = directory / f"bench-{synchronous.lower()}.sqlite3"
    begin_ms: list[float] = []
    finish_ms: list[float] = []
    recent_ms: list[float] = []
    with History(path, synchronous=synchronous) as h:  # type: ignore[arg-type]
        for i in range(turns):
            t0 = time.perf_counter()
            tid = h.begin_turn(f"question number {i} about the weather tomorrow")
            t1 = time.perf_counter()
            h.finish_turn(
                tid,
                "Tomorrow will be sunny with a light breeze and a high of 21 degrees. " * 3,
                timings={"stt": 180.0, "llm": 250.0, "tts": 120.0},
                providers={"stt": "faster-whisper", "llm": "skills", "tts": "piper"},
                voice_to_voice_ms=640.0,
            )
            t2 = time.perf_counter()
            h.recent_messages(budget_chars=8000)
            t3 = time.perf_counter()
            begin_ms.append((t1 - t0) * 1e3)
            finish_ms.append((t2 - t1) * 1e3)
            recent_ms.append((t3 - t2) * 1e3)
    return {
        "begin_p50": statistics.median(begin_ms),
        "finish_p50": statistics.median(finish_ms),
        "finish_p95": _pct(finish_ms, 0.95),
        "recent_p50": statistics.median(recent_ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--dir", type=Path, default=None, help="database dir (default: temp)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        print(f"history bench: {args.turns} turns in {tmp}")
        for sync in ("FULL", "NORMAL"):
            r = run(Path(tmp), args.turns, sync)
            print(
                f"  synchronous={sync:<6} begin_turn p50 {r['begin_p50']:.2f} ms | "
                f"finish_turn p50 {r['finish_p50']:.2f} ms, p95 {r['finish_p95']:.2f} ms | "
                f"recent_messages p50 {r['recent_p50']:.2f} ms"
            )


if __name__ == "__main__":
    main()
