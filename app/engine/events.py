"""Typed events the conversation engine publishes; the window, CLI and tests consume them.

Order within one turn (like Home Assistant's assist pipeline):
    StateChanged(listening) → SpeechStarted → PartialTranscript* → SpeechEnded →
    FinalTranscript → StateChanged(thinking) → ReplyDelta* → StateChanged(speaking) →
    TurnFinished → StateChanged(idle|listening)
`ErrorRaised` may appear anywhere; `AudioLevel` arrives ~30×/s while capturing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum


class State(StrEnum):
    IDLE = "idle"
    LISTENING = "listening"
    THINKING = "thinking"
    SPEAKING = "speaking"


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    at: float = field(default_factory=time.monotonic)
    turn_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StateChanged(Event):
    state: State


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechStarted(Event):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechEnded(Event):
    duration_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PartialTranscript(Event):
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FinalTranscript(Event):
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplyDelta(Event):
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioLevel(Event):
    rms_dbfs: float
    peak_dbfs: float


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnFinished(Event):
    user_text: str
    reply_text: str
    interrupted: bool
    #: stage → seconds: vad_endpoint, stt, llm_first_token, llm, tts_first_audio, tts, playback_start;
    #: a speculative reply adds speculative_lead (how long before the endpoint it started);
    #: a spoken turn adds turn_detect (the turn detector's answer time) and turn_finished_p
    timings: dict[str, float]
    voice_to_voice_s: float | None
    providers: dict[str, str]
    error: str | None = None
    #: The reply was started at the pause, ahead of the endpoint, and used.
    speculative: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorRaised(Event):
    stage: str
    provider: str
    code: str
    message: str  # what to do, shown inline; never holds a secret


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice(Event):
    """Something the user should know that is not an error (device fallback, model loading)."""

    message: str
    #: Progress ("Loading speech models…", "Ready."): a window may show it in passing,
    #: a headless run prints it only with --verbose. Everything else is always told.
    transient: bool = False
    #: The user must see it even with the window hidden (a timer going off): a system notification.
    alert: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class WakeWordHeard(Event):
    """The wake phrase was heard: VoxDesk listens (and stopped a reply it was saying)."""

    phrase: str
    probability: float
    #: When the phrase ended, on the session's clock (the detector decides a little later).
    phrase_end: float
    stopped_reply: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderSwitched(Event):
    stage: str
    provider: str
    ok: bool
    message: str = ""
