"""How a turn starts: push-to-talk, the wake word, or always listening.

With the wake word the microphone stays open but only the wake-word detector hears it
(no voice detection, no transcription: a few % of one core). The phrase opens an awake
window: a chime, the listening state, and the user's next words are a turn. After the
reply the window stays open a few seconds for a follow-up; then VoxDesk sleeps again.
The phrase said while VoxDesk speaks stops the reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import Executor

import numpy as np

from app.engine.chime import chime
from app.engine.context import EngineContext
from app.engine.events import Notice, State, WakeWordHeard
from app.engine.speaker import Speaker
from app.engine.stages import StageSet
from app.plugin.errors import as_voice_error
from app.plugin.provider_api import WakeDetection, WakeWordDetector
from app.store.settings import ActivationMode, ActivationSettings

log = logging.getLogger(__name__)

#: What Settings, the tray and the Voice menu call each mode.
MODE_TITLES: dict[ActivationMode, str] = {
    "push_to_talk": "Push-to-talk",
    "wake_word": "Wake word",
    "always": "Always listening",
}


def phrase_title(phrase: str) -> str:
    """“okay_nabu” → “Okay Nabu”: how the phrase is shown and said."""
    return " ".join(w.capitalize() for w in phrase.replace("-", "_").split("_") if w)


class Activation:
    """The mode, and for the wake word the awake window (times on the session's clock)."""

    def __init__(self, settings: ActivationSettings) -> None:
        self.settings = settings
        self.mode: ActivationMode = settings.mode
        self._awake_until = float("-inf")
        self._holding = False  # a turn is under way: awake until it ends

    @property
    def opens_microphone(self) -> bool:
        """The microphone is open without the talk button (wake word or always listening)."""
        return self.mode != "push_to_talk"

    @property
    def wants_wake_word(self) -> bool:
        return self.mode == "wake_word"

    def hears_speech(self, now: float) -> bool:
        """May speech the voice detector hears start a turn now?"""
        if self.mode == "always":
            return True
        return self.mode == "wake_word" and (self._holding or now < self._awake_until)

    def woke(self, now: float) -> None:
        self._holding = False
        self._awake_until = now + self.settings.wake_timeout_s

    def hold(self) -> None:
        """A turn started: stay awake until it ends (its reply may be long)."""
        self._holding = True

    def turn_ended(self, now: float) -> None:
        if self._holding:
            self._holding = False
            self._awake_until = now + self.settings.follow_up_s

    def sleep(self) -> None:
        self._holding = False
        self._awake_until = float("-inf")

    def update(self, settings: ActivationSettings) -> None:
        """New settings (the mode itself changes through `set_mode`)."""
        self.settings = settings

    def set_mode(self, mode: ActivationMode) -> None:
        self.mode = mode
        self.sleep()


def wake_detector(stages: StageSet) -> WakeWordDetector | None:
    """The session's wake-word detector, if one that listens is loaded."""
    slot = stages.slots.get("wake")
    provider = slot.provider if slot is not None else None
    return provider if isinstance(provider, WakeWordDetector) and provider.listens else None


def wake_unavailable_reason(stages: StageSet, load_error: str | None) -> str | None:
    """Why the wake-word mode cannot be chosen here (None: it can); `load_error` is what
    the chosen detector said when it failed to load, if it did."""
    if wake_detector(stages) is not None:
        return None
    if load_error:
        return load_error
    return "no wake-word detector is chosen (Settings → Activation)"


class WakeListener:
    """Feeds the microphone to the wake-word detector (on the listener's worker thread,
    in order) and tells the session when the phrase was heard. A detector that raises is
    reported once and left alone until the stages change."""

    def __init__(self, ctx: EngineContext, pool: Executor, on_wake: Callable[[WakeDetection, float], None]) -> None:
        self.ctx = ctx
        self.pool = pool
        self.on_wake = on_wake
        self._failed: WakeWordDetector | None = None
        self._fed: WakeWordDetector | None = None

    async def hear(self, detector: WakeWordDetector, frame: np.ndarray, captured_at: float) -> bool:
        """Feed one frame; True when the phrase ended in it (the session has been told)."""
        if detector is self._failed:
            return False
        if detector is not self._fed:  # another detector (a settings switch): a fresh stream
            self._fed = detector
            with contextlib.suppress(Exception):
                detector.reset()
        loop = asyncio.get_running_loop()
        try:
            found = await loop.run_in_executor(self.pool, detector.process, frame)
        except Exception as exc:
            self._failed = detector
            self.ctx.report("wake", detector.name, as_voice_error("wake", exc))
            return False
        if found is None:
            return False
        with contextlib.suppress(Exception):
            detector.reset()  # one phrase, one wake
        self.on_wake(found, captured_at)
        return True


async def play_chime(speaker: Speaker, heard: WakeWordHeard) -> None:
    """The chime, and when it started sounding (for the wake → listening latency)."""
    await speaker.ensure_open()
    out = speaker.out
    if out is None:
        return
    out.mark()
    speaker.play_cue(chime())
    for _ in range(100):  # the device says when the first sample went out
        started = speaker.first_sample_time
        if started is not None:
            log.debug("chime %.0f ms after the wake phrase", (started - heard.phrase_end) * 1000)
            return
        await asyncio.sleep(0.005)


def unavailable_notice(reason: str) -> Notice:
    return Notice(message=f"The wake word is unavailable: {reason}. Push-to-talk and the hotkey still work.")


def rest_state(activation: Activation, live: bool, muted: bool, now: float) -> State:
    """LISTENING while speech would start a turn (and the microphone really runs)."""
    return State.LISTENING if live and not muted and activation.hears_speech(now) else State.IDLE
