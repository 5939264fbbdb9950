"""Allocator hygiene: fewer malloc arenas, and freed pages handed back after a turn."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app import memory
from app.engine.events import TurnFinished

ROOT = Path(__file__).resolve().parents[2]

glibc = pytest.mark.skipif(memory._glibc() is None, reason="glibc only")


#: Run in a fresh interpreter: in the test process other tests' free memory would absorb
#: the allocations, and nothing would be left to hand back.
_FRAGMENT_AND_TRIM = """
import ctypes, threading, time
from app import memory

def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) / 1024 for l in f if l.startswith("VmRSS:"))

def fragment_and_free(mb):
    # Many small native blocks from one thread, all but one in 64 freed: the survivors
    # pin the heap, so glibc keeps the free pages between them (the pattern of
    # inference buffers) until it is trimmed.
    libc = memory._glibc()
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(16 * 1024) for _ in range(mb * 64)]
    for i, b in enumerate(blocks):
        if i % 64:
            libc.free(b)

before = rss()
t = threading.Thread(target=fragment_and_free, args=(200,))
t.start(); t.join()
held = rss()
trimmer = memory.MemoryTrimmer(min_interval_s=0)
assert trimmer.trim_soon()
while trimmer._busy.locked():
    time.sleep(0.01)
print(before, held, rss())
"""


@glibc
def test_trim_hands_freed_heap_pages_back_to_the_system() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _FRAGMENT_AND_TRIM], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    before, held, after = map(float, out.stdout.split())
    kept = held - before
    assert kept > 30, f"the test needs glibc to keep the freed pages: {before:.0f} → {held:.0f} MB"
    assert after - before < kept / 2, f"RSS {before:.0f} → {held:.0f} → {after:.0f} MB"


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


@glibc
def test_a_fixed_mmap_threshold_is_accepted_by_glibc() -> None:
    # What it does for the llama.cpp worker is measured by the soak (tests/soak).
    assert memory.fix_mmap_threshold()
