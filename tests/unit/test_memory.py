"""Allocator hygiene: fewer malloc arenas, and freed pages handed back after a turn."""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from app import memory
from app.engine.events import TurnFinished

glibc = pytest.mark.skipif(memory._glibc() is None, reason="glibc only")


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))


def _fragment_and_free(mb: int) -> None:
    """Many small native blocks from one thread, all freed but one in 64: glibc keeps the
    pages of such a heap until it is trimmed (the pattern of inference buffers)."""
    libc = memory._glibc()
    assert libc is not None
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(16 * 1024) for _ in range(mb * 64)]
    for i, b in enumerate(blocks):
        if i % 64:
            libc.free(b)
    # One in 64 stays allocated until the end, so the heap top cannot simply shrink.
    kept = blocks[::64]
    time.sleep(0)
    for b in kept[:-1]:
        libc.free(b)


@glibc
def test_trim_hands_freed_heap_pages_back_to_the_system() -> None:
    done = threading.Event()

    def worker() -> None:
        _fragment_and_free(200)
        done.set()

    before = _rss_mb()
    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert done.is_set()
    held = _rss_mb()
    assert held - before > 50, "the test needs glibc to keep the freed pages"
    trimmer = memory.MemoryTrimmer(min_interval_s=0)
    assert trimmer.trim_soon()
    deadline = time.monotonic() + 10
    while trimmer._busy.locked() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert held - _rss_mb() > 50, f"RSS {before:.0f} → {held:.0f} → {_rss_mb():.0f} MB"


@glibc
def test_arena_cap_is_accepted_by_glibc() -> None:
    assert memory.limit_malloc_arenas(memory.ARENA_MAX)


def test_trims_are_rate_limited() -> None:
    trimmer = memory.MemoryTrimmer(min_interval_s=60)
    started = trimmer.trim_soon()
    assert started == (memory._glibc() is not None)
    assert not trimmer.trim_soon()


class _Session:
    def __init__(self) -> None:
        self.listeners: list[Callable[[Any], None]] = []

    def add_listener(self, cb: Callable[[Any], None]) -> Callable[[], None]:
        self.listeners.append(cb)
        return lambda: self.listeners.remove(cb)


def test_a_finished_turn_triggers_a_trim(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def record(self: memory.MemoryTrimmer) -> bool:
        calls.append("trim")
        return True

    monkeypatch.setattr(memory.MemoryTrimmer, "trim_soon", record)
    session = _Session()
    unsubscribe = memory.trim_after_turns(session)
    for cb in session.listeners:
        cb(object())  # other events do nothing
        cb(
            TurnFinished(
                user_text="hi", reply_text="hello", interrupted=False, timings={}, voice_to_voice_s=None, providers={}
            )
        )
    assert calls == ["trim"]
    unsubscribe()
    assert session.listeners == []
