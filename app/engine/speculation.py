"""Preemptive replies: the answer starts while the user is still (probably) done talking.

When silence begins the listener transcribes speculatively; the session then starts a
whole turn on that transcript — skills or LLM, and TTS of the first sentence — with
everything the user could notice held back (`HeldOutput`): no event, no state change,
no history row, no sound. When the endpoint confirms the utterance with the same words
the held output is let go at once and the turn streams on as usual; speech resuming, a
dropped utterance or a final transcript with other words discards it (the turn's task
is cancelled, which closes the LLM stream and so stops the provider's generation).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from app.engine.listener import Utterance

log = logging.getLogger(__name__)


def spoken_words(text: str) -> list[str]:
    """The words of a transcript, without case, punctuation or spacing ("What's up?" → whats, up)."""
    text = text.casefold().replace("'", "").replace("\u2019", "")
    return "".join(ch if ch.isalnum() else " " for ch in text).split()


def same_words(a: str, b: str) -> bool:
    return spoken_words(a) == spoken_words(b)


class SpeculationMissed(Exception):
    """The endpoint came with a transcript of other words: answer `text` instead."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class HeldOutput:
    """What a speculative turn would show, store, record and play, in order, until released.

    `confirmed` is set when the endpoint confirms the utterance; `opened` once the held
    actions ran and new ones run at once."""

    def __init__(self) -> None:
        self.confirmed = asyncio.Event()
        self.opened = asyncio.Event()
        self._held: list[tuple[Callable[[], object], bool]] = []

    @property
    def open(self) -> bool:
        return self.opened.is_set()

    def do(self, action: Callable[[], object], *, sound: bool = False) -> None:
        if self.open:
            action()
        else:
            self._held.append((action, sound))

    def release(self, *, sound: bool = True) -> None:
        """Run what was held, in order; without `sound` (the turn was cut meanwhile),
        what it would have played is left out and the rest still happens."""
        held, self._held = self._held, []
        self.opened.set()
        for action, is_sound in held:
            if sound or not is_sound:
                action()

    def drop(self) -> None:
        """Forget everything held (the reply is thrown away)."""
        self._held.clear()


class HeldTurn(Protocol):
    """What the speculator needs of a turn started speculatively."""

    @property
    def held(self) -> bool:
        """Nothing of it has been shown or played yet."""

    @property
    def answering(self) -> bool:
        """Its reply (skills or LLM) had been asked for: a discard then wasted work."""


@dataclass(slots=True)
class SpeculativeReply:
    turn: HeldTurn
    task: asyncio.Task[None]
    transcript: asyncio.Task[str]


class SpeculationCounter(Protocol):
    def record_speculation(self, outcome: str) -> None:
        """Count a speculative reply: "used" or "discarded"."""


class Speculator:
    """The speculative reply of the utterance being heard (at most one).

    The listener tells it when the user pauses (`paused`) and when that pause's
    transcript is called off (`cancelled`: speech resumed, the utterance was dropped);
    the session takes the reply when the endpoint fires (`take`)."""

    def __init__(
        self,
        start: Callable[[Utterance, asyncio.Task[str]], SpeculativeReply | None],
        counter: SpeculationCounter,
    ) -> None:
        self._start = start
        self._counter = counter
        #: Off: replies start only at the endpoint, as before (a test measures the gain).
        self.enabled = True
        self.current: SpeculativeReply | None = None

    def paused(self, utt: Utterance, transcript: asyncio.Task[str]) -> None:
        self.discard()
        if self.enabled:
            self.current = self._start(utt, transcript)

    def cancelled(self) -> None:
        self.discard()

    def discard(self) -> None:
        """Throw the held reply away: nothing was played, nothing is stored."""
        reply, self.current = self.current, None
        if reply is None:
            return
        if reply.turn.held and reply.turn.answering:
            self._counter.record_speculation("discarded")
        reply.task.cancel()

    def take(self, transcript: asyncio.Task[str] | None) -> SpeculativeReply | None:
        """The reply to confirm for the utterance whose final transcript is `transcript`."""
        reply, self.current = self.current, None
        if reply is not None and (transcript is None or reply.task.done()):
            self.current = reply
            self.discard()
            return None
        return reply
