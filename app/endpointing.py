"""Turns per-frame VAD probabilities into speech start / silence / speech end.

Frames are 512 samples at 16 kHz (32 ms). A turn starts after `min_speech_ms` of
speech (so a cough or a click is not a turn) and keeps `pre_roll_ms` of audio from
before the start, because VAD fires a little after the first phoneme. It ends after
`end_silence_ms` of silence; `SilenceStart` is sent at the first silent frame so the
engine can transcribe speculatively while it waits to be sure.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

FRAME_MS = 512 / 16_000 * 1000


@dataclass(frozen=True)
class SpeechStart:
    pre_roll: np.ndarray  # audio from before and including the confirming frames


@dataclass(frozen=True)
class SilenceStart:
    pass


@dataclass(frozen=True)
class SpeechResumed:
    pass


@dataclass(frozen=True)
class SpeechEnd:
    pass


EndpointEvent = SpeechStart | SilenceStart | SpeechResumed | SpeechEnd


class Endpointer:
    def __init__(self, *, threshold: float = 0.5, min_speech_ms: int = 200, end_silence_ms: int = 450,
                 pre_roll_ms: int = 300) -> None:
        self.threshold = threshold
        # Hysteresis: once in speech, a slightly lower probability still counts as speech.
        self.release = max(0.05, threshold - 0.15)
        self.min_speech_frames = max(1, round(min_speech_ms / FRAME_MS))
        self.end_silence_frames = max(1, round(end_silence_ms / FRAME_MS))
        self._pre: deque[np.ndarray] = deque(maxlen=max(1, round(pre_roll_ms / FRAME_MS)) + self.min_speech_frames)
        self.reset()

    def reset(self) -> None:
        self.in_speech = False
        self._speech_run = 0
        self._silence_run = 0
        self._pre.clear()

    def process(self, frame: np.ndarray, prob: float) -> list[EndpointEvent]:
        events: list[EndpointEvent] = []
        if not self.in_speech:
            self._pre.append(frame)
            if prob >= self.threshold:
                self._speech_run += 1
                if self._speech_run >= self.min_speech_frames:
                    self.in_speech = True
                    self._silence_run = 0
                    events.append(SpeechStart(np.concatenate(list(self._pre))))
                    self._pre.clear()
            else:
                self._speech_run = 0
            return events
        if prob >= self.release:
            if self._silence_run:
                events.append(SpeechResumed())
            self._silence_run = 0
            return events
        self._silence_run += 1
        if self._silence_run == 1:
            events.append(SilenceStart())
        if self._silence_run >= self.end_silence_frames:
            events.append(SpeechEnd())
            self.in_speech = False
            self._speech_run = 0
            self._silence_run = 0
        return events
