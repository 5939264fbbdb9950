"""UI test fixtures: a qasync loop on pytest-qt's QApplication, so widgets and engine share it."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
import qasync

T = TypeVar("T")


@pytest.fixture
def qloop(qapp: Any) -> Iterator[qasync.QEventLoop]:
    """The app's real loop setup (Qt + asyncio on one thread); fails a test that leaks tasks."""
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    yield loop
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for t in pending:
        t.cancel()
    if pending:
        loop.run_until_complete(asyncio.wait(pending, timeout=2))
    loop.close()
    asyncio.set_event_loop(None)
    # Collect this test's loop and Qt wrappers now. Left to chance, the collector can free
    # an old qasync loop's timer objects while the next test's loop is dispatching timer
    # events, and Qt then delivers one to freed memory (a segfault seen with the whole
    # ui suite in one process; the app itself runs one loop for its lifetime).
    gc.collect()
    if pending:
        pytest.fail(f"leaked asyncio tasks: {pending}")


@pytest.fixture
def run(qloop: qasync.QEventLoop) -> Callable[..., Any]:
    """`run(coro, timeout=…)`: drive a coroutine on the qasync loop (Qt events keep flowing)."""

    def _run(coro: Awaitable[T], timeout: float = 30.0) -> T:
        return qloop.run_until_complete(asyncio.wait_for(coro, timeout))

    return _run


async def wait_until(cond: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll while the loop (and Qt) keep running; like qtbot.waitUntil, but inside a coroutine."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def close_window(window: Any, run: Callable[..., Any]) -> float:
    """Close the main window and wait for its `closed` signal; returns how long quit took."""
    t0 = time.monotonic()
    closed = asyncio.Event()
    window.closed.connect(closed.set)
    window.close()
    run(closed.wait(), timeout=10)
    return time.monotonic() - t0


class GuiGapMeter:
    """How long the GUI thread went without running a 10 ms Qt timer: its longest stall."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.gaps: list[float] = []
        self.worst_at = 0.0  # when the longest gap ended (perf_counter)
        self.last = time.perf_counter()
        self._timer = QTimer()
        self._timer.setInterval(10)
        self._timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        if now - self.last > self.worst:
            self.worst_at = now
        self.gaps.append(now - self.last)
        self.last = now

    def start(self) -> None:
        self.last = time.perf_counter()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    @property
    def worst(self) -> float:
        return max(self.gaps, default=0.0)
