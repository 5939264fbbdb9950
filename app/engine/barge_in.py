"""Barge-in that knows its own voice: speech over a reply pauses it; the words decide.

On laptop speakers some of VoxDesk's voice can survive the echo canceller and sound
like the user starting to speak. Cutting the reply at once would make it interrupt
itself. Instead the reply is paused the moment speech starts (the user hears it stop
within a frame or two, nothing of it is lost), and when the utterance ends its
transcript is compared with what the reply has been saying: the assistant's own
words (or no words at all: a cough, a door) resume the reply where it stopped; anything
else cuts it, and becomes the next turn. A sink that cannot pause is cut at once, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from app.engine.speculation import spoken_words

log = logging.getLogger(__name__)

#: The words of the reply that the echo is compared with (about the last 15 s spoken).
RECENT_WORDS = 40
#: This share of the heard words must be the reply's for it to be our own echo.
OWN_SHARE = 0.6
#: The longest wait for the interruption's transcript before it counts as the user's.
WORDS_TIMEOUT_S = 3.0


def is_own_echo(heard: str, said: str) -> bool:
    """Is `heard` (the interruption's transcript) what the reply `said`, coming back?"""
    words = spoken_words(heard)
    if not words:
        return True  # nothing was said: a noise, or what the canceller left of our voice
    recent = set(spoken_words(said)[-RECENT_WORDS:])
    return sum(w in recent for w in words) / len(words) >= OWN_SHARE


@dataclass
class PendingBargeIn:
    at: float  # when the speech began: the reaction time counts from here
    watch: asyncio.Task[None] | None = None


class BargeInJudge:
    """Holds at most one paused reply and decides what the speech over it was."""

    def __init__(self, sleep: Callable[[float], Awaitable[object]]) -> None:
        self._sleep = sleep
        self.pending: PendingBargeIn | None = None
        self.own_echo_heard = 0  # interruptions that were our own voice (telemetry, tests)

    def hold(self, at: float, watch: asyncio.Task[None] | None) -> None:
        self.pending = PendingBargeIn(at, watch)

    def take(self) -> PendingBargeIn | None:
        pending, self.pending = self.pending, None
        if pending is not None and pending.watch is not None and pending.watch is not asyncio.current_task():
            pending.watch.cancel()
        return pending

    async def words_of(self, transcript: asyncio.Task[str] | None) -> str | None:
        """The interruption's words; None when they cannot be had (it then counts as the user's)."""
        if transcript is None:
            return None
        try:
            return await asyncio.wait_for(asyncio.shield(transcript), WORDS_TIMEOUT_S)
        except TimeoutError:
            return None
        except Exception as exc:  # the turn reports a failed transcript itself
            log.debug("barge-in transcript failed: %s", exc)
            return None

    def judge(self, heard: str | None, said: str) -> bool:
        """True when the reply should go on (the speech was our own echo)."""
        own = heard is not None and is_own_echo(heard, said)
        if own:
            self.own_echo_heard += 1
            log.info("speech over the reply was its own echo (%r); resuming", heard)
        return own

    async def watch_dropped(self, utterance_open: Callable[[], bool], resume: Callable[[], None]) -> None:
        """Resume when the speech that paused the reply never became an utterance."""
        with contextlib.suppress(asyncio.CancelledError):
            while self.pending is not None:
                await self._sleep(0.05)
                if self.pending is not None and not utterance_open():
                    self.take()
                    resume()
                    return
