"""Diagnostics for long runs: how long the GUI thread stalled, and the process's memory.

Off unless `VOXDESK_GUI_WATCH=FILE` is set (a 10 ms timer costs idle CPU nobody else
wants). Then every `interval_s`, and when the engine's state changes, it appends to FILE
`{"t": s since start, "worst_gap_ms": …, "ticks": …, "rss_mb": …, "state": …, "worst_gc_ms": …}` — the
soak test reads it from outside the process, and a user chasing a stutter can too.
Lines are flushed as written, so a crash still leaves everything up to it.
"""

from __future__ import annotations

import gc
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

ENV = "VOXDESK_GUI_WATCH"


def rss_mb() -> float | None:
    """Resident memory of this process (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class GuiWatch:
    def __init__(self, path: Path, state: Callable[[], str], *, interval_s: float = 2.0) -> None:
        from PySide6.QtCore import QTimer

        self._out: IO[str] = path.open("a", buffering=1)
        self._state = state
        self._t0 = self._last = self._since = time.perf_counter()
        self._worst = 0.0
        self._ticks = 0
        self._gc_worst = 0.0
        self._gc_started = 0.0
        gc.callbacks.append(self._on_gc)
        self._last_state = ""
        self._interval = interval_s
        self._timer = QTimer()
        self._timer.setInterval(10)
        self._timer.timeout.connect(self._tick)
        self._timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self._worst = max(self._worst, now - self._last)
        self._last = now
        self._ticks += 1
        state = self._state()
        # A row per interval, and one at once when the engine's state changes.
        if now - self._since >= self._interval or state != self._last_state:
            row = {
                "t": round(now - self._t0, 2),
                "worst_gap_ms": round(self._worst * 1000, 1),
                "ticks": self._ticks,
                "rss_mb": rss_mb(),
                "state": state,
                "worst_gc_ms": round(self._gc_worst * 1000, 1),
            }
            self._out.write(json.dumps(row) + "\n")
            self._since, self._worst, self._ticks, self._last_state = now, 0.0, 0, state
            self._gc_worst = 0.0

    def _on_gc(self, phase: str, _info: dict[str, int]) -> None:
        # Collector pauses stop every thread that needs the GIL: the GUI's first suspect.
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self._gc_started:
            self._gc_worst = max(self._gc_worst, time.perf_counter() - self._gc_started)

    def close(self) -> None:
        self._timer.stop()
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        self._out.close()


def start_from_env(state: Callable[[], str]) -> GuiWatch | None:
    where = os.environ.get(ENV)
    return GuiWatch(Path(where), state) if where else None
