"""Background jobs of a session: tracked (cancelled on close), and a failure is logged
and told once per kind, never left for asyncio to print as "Task exception was never
retrieved". Notices from worker threads (history writes) reach the loop here too."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from app.engine.events import Event, Notice

log = logging.getLogger(__name__)

#: Transcription jobs whose failure their turn reports.
QUIET = frozenset({"stt-final", "stt-speculative"})


class Background:
    def __init__(self, emit: Callable[[Event], object]) -> None:
        self._emit = emit
        self.tasks: set[asyncio.Task[Any]] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        with contextlib.suppress(RuntimeError):
            self.loop = asyncio.get_running_loop()
        self._told: set[str] = set()  # kinds of job whose failure was told

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        task.set_name(name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()  # retrieved here, whoever else awaits it
        if exc is None:
            return
        name = task.get_name()
        if name in QUIET:
            log.debug("transcription %s failed: %s", name, exc)
            return
        log.error("background task %s failed: %s", name, exc, exc_info=exc)
        if name not in self._told:
            self._told.add(name)
            what = " ".join(str(exc).split()) or type(exc).__name__
            self._emit(
                Notice(
                    message=f"Something went wrong in the background ({name}: {what}); "
                    "the conversation goes on — see the log for details."
                )
            )

    async def cancel_all(self, wait_s: float) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            _, pending = await asyncio.wait(list(self.tasks), timeout=wait_s)
            if pending:
                log.warning("still running after close: %s", sorted(t.get_name() for t in pending))

    def notice_from_any_thread(self, message: str) -> None:
        """Emit a Notice from the loop's thread or any other (history writes run in workers)."""
        loop = self.loop
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is loop:
            self._emit(Notice(message=message))
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening
            loop.call_soon_threadsafe(self._emit, Notice(message=message))


def caller_cancelled() -> bool:
    """Is the task running this code being cancelled (as opposed to what it awaited)?"""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def wait_for_task(task: asyncio.Task[Any]) -> None:
    """Until `task` is done, whatever its outcome; the caller's own cancellation propagates
    (and leaves `task` running)."""
    if task.done():
        return
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await asyncio.shield(task)
    if caller_cancelled():
        raise asyncio.CancelledError
