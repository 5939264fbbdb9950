"""The one thread a local speech recognizer decodes on, with a cancel flag per decode.

A decode checks its flag at each step (a decoder token, a 30 s window) and stops there:
a cancelled caller, a final transcript that must not wait behind a partial, or closing
the provider all end the work in the thread, not just the task waiting for it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from app.plugin.priority import lower_this_thread

T = TypeVar("T")


class DecodeThread:
    def __init__(self, name: str) -> None:
        self._name = name
        self._pool: ThreadPoolExecutor | None = None
        self._cancels: set[threading.Event] = set()
        self._partial_cancels: set[threading.Event] = set()

    async def run(self, fn: Callable[..., T], *args: Any, partial: bool = False) -> T:
        """`fn(*args, cancel)` on the decode thread; a cancelled caller sets `cancel`.
        `partial` decodes are also cancelled by `cancel_partials()`."""
        if self._pool is None:
            # Nicer than the GUI and audio threads; the runtime's own threads, started
            # from here when the model loads, inherit it (app.plugin.priority).
            self._pool = ThreadPoolExecutor(1, thread_name_prefix=self._name, initializer=lower_this_thread)
        cancel = threading.Event()
        self._cancels.add(cancel)
        if partial:
            self._partial_cancels.add(cancel)
        try:
            return await asyncio.wrap_future(self._pool.submit(fn, *args, cancel))
        except asyncio.CancelledError:
            cancel.set()
            raise
        finally:
            self._cancels.discard(cancel)
            self._partial_cancels.discard(cancel)

    def cancel_partials(self) -> None:
        """Partials are best effort: the final decode goes first (one decode thread)."""
        for cancel in list(self._partial_cancels):
            cancel.set()

    async def close(self, join_s: float) -> bool:
        """Stop decodes in flight at their next step and join the thread within `join_s`;
        False if one did not stop in time (the thread is left to finish on its own)."""
        for cancel in list(self._cancels):
            cancel.set()
        pool, self._pool = self._pool, None
        if pool is None:
            return True
        pool.shutdown(wait=False, cancel_futures=True)
        try:
            await asyncio.wait_for(asyncio.to_thread(pool.shutdown, True), join_s)
        except TimeoutError:
            return False
        return True
