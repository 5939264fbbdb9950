"""The speaker: opens the sink, parks it while idle, re-opens it before the next reply,
plays chunks and keeps the timeline of what was played (the echo gate's reference).

An open output stream costs CPU even when silent, so a device sink that says
`closes_when_idle` is stopped `SpeakerOptions.idle_close_s` after the last reply and
started again as soon as the user starts to speak (or a reply or announcement needs it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from app.audio.streams import AudioSink
from app.engine.context import EngineContext, wire_device
from app.engine.echo_gate import EchoGate, EchoGateOptions
from app.plugin.errors import VoiceError
from app.plugin.provider_api import AudioChunk


@dataclass(frozen=True, slots=True)
class SpeakerOptions:
    #: An idle speaker that may close (`AudioSink.closes_when_idle`) is stopped after this.
    idle_close_s: float = 15.0
    #: After the last reply sample is due, the room (and the output buffer) still carry
    #: it for a moment; the microphone treats that tail as our own voice too.
    echo_tail_s: float = 0.3
    #: How long parking waits for the device to stop.
    stop_timeout_s: float = 2.0


class Speaker:
    """One output device (or none) and what it has been asked to play."""

    def __init__(
        self,
        ctx: EngineContext,
        sink: AudioSink | None,
        options: SpeakerOptions | None = None,
        busy: Callable[[], bool] = lambda: False,
    ) -> None:
        self.ctx = ctx
        self.sink = sink
        self.options = options or SpeakerOptions()
        self.echo = EchoGate()  # judges the microphone after the echo canceller (what echo is left)
        # ...and before it, against the room's own echo: the user talking over a reply is
        # caught here when the canceller's double-talk suppression has chopped the voice
        # (a false alarm only pauses the reply until its words are heard).
        self.raw_echo = EchoGate(EchoGateOptions(margin_db=6.0))
        self.is_open = False
        self.closed = False  # the session is closing: never park or re-open again
        self._busy = busy  # a turn or an utterance is under way: do not park
        self._lock = asyncio.Lock()
        self._park_task: asyncio.Task[None] | None = None
        self._parking = False
        self._ref_cursor = 0.0
        self._last_playing_at = float("-inf")
        self._cue_until = float("-inf")  # the wake chime (and its echo) is over by then

    @property
    def out(self) -> AudioSink | None:
        """The sink, when it is open (it may be parked while idle, or missing)."""
        return self.sink if self.is_open else None

    def playing_now(self, at: float) -> bool:
        """Is our own voice (a reply, an apology, a timer) coming out of the speaker at `at`?

        Asks the sink (a file written faster than real time is never "playing"), and
        keeps a short tail after it stops for the room and the output buffer."""
        out = self.out
        if out is not None and out.is_playing:
            self._last_playing_at = max(self._last_playing_at, at, self.ctx.clock())
            return True
        return out is not None and at < self._last_playing_at + self.options.echo_tail_s

    # -- life cycle ------------------------------------------------------------
    async def start(self) -> None:
        """Open the sink; without one the replies still show as text (retried next turn)."""
        sink = self.sink
        if sink is None:
            return
        wire_device(self.ctx, sink, "output")
        try:
            await sink.start()
        except VoiceError as exc:
            self.ctx.report("audio", "output", exc)
            return
        self.is_open = True
        self.park_later()

    async def ensure_open(self) -> None:
        """Re-open a speaker that was closed while idle (before the reply needs it)."""
        if self._park_task is not None and not self._parking:
            self._park_task.cancel()  # still only waiting: just call it off
            self._park_task = None
        async with self._lock:  # a park under way finishes first, then we re-open
            if self.sink is not None and not self.is_open:
                await self.start()

    def park_later(self) -> None:
        """Close an idle speaker after a while."""
        if self.sink is None or not self.sink.closes_when_idle or self.closed:
            return
        if self._park_task is not None:
            self._park_task.cancel()
        self._park_task = self.ctx.spawn(self._park(), "park-speaker")

    async def _park(self) -> None:
        await self.ctx.sleep(self.options.idle_close_s)
        sink = self.sink
        if sink is None or self._busy() or sink.is_playing:
            return
        self._parking = True
        try:
            async with self._lock:
                self.is_open = False
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(sink.stop(), self.options.stop_timeout_s)
        finally:
            self._parking = False

    async def replace(self, sink: AudioSink | None) -> None:
        """Swap the device (settings change, device recovery)."""
        old = self.sink
        if old is not None and old is not sink:
            await old.stop()
            self.is_open = False
        self.sink = sink
        if sink is not None and sink is not old:
            await self.start()

    # -- playback --------------------------------------------------------------
    def begin_reply(self) -> None:
        """A new reply: `first_sample_time` is for it, and the echo reference starts over."""
        if self.out is not None:
            self.out.mark()
        self.echo.reset()
        self.raw_echo.reset()

    def play(self, chunk: AudioChunk) -> float:
        """Queue a chunk; returns when it should start to sound (on the session's clock)."""
        out = self.out
        if out is None or not len(chunk.samples):
            return self.ctx.clock()
        out.play(chunk)
        # Where this chunk lands on the playback timeline: after what is queued, or now
        # if the device has run dry. The echo gate compares the mic against it.
        start = max(self._ref_cursor, self.ctx.clock())
        self.echo.add_reference(start, chunk.samples, chunk.sample_rate)
        self.raw_echo.add_reference(start, chunk.samples, chunk.sample_rate)
        self._ref_cursor = start + chunk.duration_s
        return start

    def play_cue(self, chunk: AudioChunk) -> float:
        """A short sound that is not a reply (the wake chime): the microphone stays open
        through it. Returns when it starts to sound."""
        start = self.play(chunk)
        self._cue_until = start + chunk.duration_s + self.options.echo_tail_s
        return start

    def only_cue(self, at: float) -> bool:
        """Nothing but the cue plays at `at`."""
        return at < self._cue_until and self._ref_cursor <= self._cue_until - self.options.echo_tail_s + 1e-6

    def pause(self) -> bool:
        """Hold what is playing (silent at once, nothing lost); False if the sink cannot."""
        out = self.out
        if out is None or not out.can_pause:
            return False
        out.pause()
        return True

    def resume(self) -> None:
        if self.out is not None and self.out.can_pause:
            self.out.resume()

    def cut(self) -> None:
        """Barge-in or stop: silence now and forget the timeline."""
        if self.out is not None:
            self.out.flush()
        self._ref_cursor = 0.0
        self._cue_until = float("-inf")
        self.echo.reset()
        self.raw_echo.reset()

    async def drain(self) -> None:
        if self.out is not None:
            await self.out.drain()

    @property
    def first_sample_time(self) -> float | None:
        out = self.out
        return out.first_sample_time if out is not None else None
