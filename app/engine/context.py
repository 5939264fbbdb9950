"""What every piece of the engine (listener, speaker, turn) gets from the session.

One small frozen object instead of long parameter lists: the session's clock and
sleep (a test hands in a fake clock), how to start a background job (tracked,
cancelled on close, a failure told once), how to publish an event and how to
report an error to the user.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from app.engine.events import Event, Notice
from app.plugin.errors import VoiceError, as_voice_error

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class Reporter(Protocol):
    def __call__(self, stage: str, provider: str, err: VoiceError, turn_id: str | None = None) -> None:
        """Tell the user; count it against the provider unless `err.counted`."""


class Spawner(Protocol):
    def __call__(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]: ...


@dataclass(frozen=True, slots=True)
class EngineContext:
    clock: Clock
    sleep: Sleep
    spawn: Spawner
    emit: Callable[[Event], object]
    report: Reporter


class _Device(Protocol):
    on_error: Callable[[VoiceError], None] | None
    on_notice: Callable[[str], None] | None


def wire_device(ctx: EngineContext, dev: _Device, what: str) -> None:
    """Device faults and fallbacks become events the user sees (called on the loop).
    A callback someone else set (the window, a test) is kept."""
    if dev.on_error is None:
        dev.on_error = lambda err: ctx.report("audio", what, as_voice_error(f"audio.{what}", err))
    if dev.on_notice is None:

        def notice(message: str) -> None:
            ctx.emit(Notice(message=message))

        dev.on_notice = notice
