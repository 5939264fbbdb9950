"""Keep a long-running session's memory flat on glibc.

The app's native libraries (CTranslate2, ONNX Runtime, llama.cpp, Qt) allocate large
short-lived buffers from many threads. glibc gives each new thread its own malloc arena
(up to 8 per core) and keeps what an arena once held: a soak showed RSS stepping up by
~128 MB after hundreds of turns when one more arena filled, then never coming down.
Fewer arenas bound that high-water mark, and trimming after a turn hands the freed
pages back to the system while nothing is happening. Elsewhere both are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
import time
from collections.abc import Callable
from functools import cache
from typing import Any, Protocol

log = logging.getLogger(__name__)

#: mallopt() parameter number of M_ARENA_MAX in glibc's malloc.h.
M_ARENA_MAX = -8
#: Two arenas: the GUI/loop threads and the inference workers rarely malloc at once.
ARENA_MAX = 2
#: mallopt() parameter number of M_MMAP_THRESHOLD.
M_MMAP_THRESHOLD = -3
#: Blocks at least this big get their own mapping, returned whole when freed.
MMAP_THRESHOLD = 256 * 1024
#: mallopt() parameter number of M_TRIM_THRESHOLD.
M_TRIM_THRESHOLD = -1
#: The app process: audio, features and voice tensors up to a few MB come and go every
#: sentence. Mapping each of them costs page faults (Piper's first audio 94 → 144 ms at
#: 256 KB); 4 MB keeps those in the heap and maps the rest, and the trim after each turn
#: (MemoryTrimmer), not every free, hands the heap's free pages back.
APP_MMAP_THRESHOLD = 4 * 1024 * 1024
APP_TRIM_THRESHOLD = 64 * 1024 * 1024
#: Trims closer together than this add nothing (a turn ends at most every second or so).
MIN_TRIM_INTERVAL_S = 5.0


class _HasListeners(Protocol):
    def add_listener(self, cb: Callable[[Any], None]) -> Callable[[], None]: ...


@cache
def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it (musl, macOS do not)
    except (OSError, AttributeError):
        return None
    return libc


def limit_malloc_arenas(arenas: int = ARENA_MAX) -> bool:
    """Cap glibc's malloc arenas; call before worker threads start. True if applied."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_ARENA_MAX, arenas))


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Keep big blocks out of the heap; True if applied.

    glibc raises its mmap threshold each time a mapped block is freed, so a process that
    allocates and frees the same large buffers over and over (an LLM's 600 KB logits
    array per token) soon carves them from the heap, which fragments and only grows:
    measured +42 MB over 20 turns in the llama.cpp worker, flat with a fixed threshold."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))


def settle_app_heap() -> bool:
    """The app process's heap: fixed thresholds instead of glibc's rising ones (which let
    freed per-sentence buffers pile up in the heap); True if applied."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, APP_MMAP_THRESHOLD)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, APP_TRIM_THRESHOLD)
    )


class MemoryTrimmer:
    """Returns freed heap pages to the system after a turn, off the loop and GUI threads."""

    def __init__(self, min_interval_s: float = MIN_TRIM_INTERVAL_S) -> None:
        self._min_interval_s = min_interval_s
        self._last = -min_interval_s
        self._busy = threading.Lock()

    def trim_soon(self) -> bool:
        """Start a trim on a short-lived thread unless one ran recently; True if started."""
        libc = _glibc()
        now = time.monotonic()
        if libc is None or now - self._last < self._min_interval_s or not self._busy.acquire(blocking=False):
            return False
        self._last = now
        threading.Thread(target=self._trim, args=(libc,), name="voxdesk-malloc-trim", daemon=True).start()
        return True

    def _trim(self, libc: ctypes.CDLL) -> None:
        try:
            started = time.perf_counter()
            libc.malloc_trim(0)
            log.debug("malloc_trim took %.1f ms", (time.perf_counter() - started) * 1000)
        finally:
            self._busy.release()


def trim_after_turns(session: _HasListeners) -> Callable[[], None]:
    """Trim after every finished turn of a long-running `session`; returns the unsubscribe."""
    from app.engine.events import TurnFinished

    trimmer = MemoryTrimmer()

    def on_event(event: object) -> None:
        if isinstance(event, TurnFinished):
            trimmer.trim_soon()

    return session.add_listener(on_event)
