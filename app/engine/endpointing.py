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
from typing import TypedDict, Unpack

import numpy as np

FRAME_MS = 512 / 16_000 * 1000


@dataclass(frozen=True)
class SpeechStart:
    pre_roll: np.ndarray  # audio from before and including the confirming frames


@dataclass(frozen=True)
class SilenceStart:
    silent_s: float  # silence already heard when this is sent


@dataclass(frozen=True)
class SpeechResumed:
    pass


@dataclass(frozen=True)
class SpeechEnd:
    pass


EndpointEvent = SpeechStart | SilenceStart | SpeechResumed | SpeechEnd


class EndpointerOptions(TypedDict, total=False):
    threshold: float  # VAD probability that counts as speech (default 0.5)
    min_speech_ms: int  # speech this long starts an utterance (200)
    end_silence_ms: int  # silence this long ends it (450)
    pre_roll_ms: int  # audio kept from before the start (300)
    speculate_after_ms: int  # silence after which a speculative transcript starts (120)
    hangover_ms: int  # dips this short do not break a starting utterance (300)


class Endpointer:
    def __init__(self, **options: Unpack[EndpointerOptions]) -> None:
        threshold = options.get("threshold", 0.5)
        min_speech_ms = options.get("min_speech_ms", 200)
        end_silence_ms = options.get("end_silence_ms", 450)
        pre_roll_ms = options.get("pre_roll_ms", 300)
        speculate_after_ms = options.get("speculate_after_ms", 120)
        hangover_ms = options.get("hangover_ms", 300)
        self.threshold = threshold
        # Hysteresis: once in speech, a slightly lower probability still counts as speech.
        self.release = max(0.05, threshold - 0.15)
        self.min_speech_frames = max(1, round(min_speech_ms / FRAME_MS))
        self.end_silence_frames = max(1, round(end_silence_ms / FRAME_MS))
        self.pre_roll_frames = max(1, round(pre_roll_ms / FRAME_MS))
        # Gaps between words are shorter than this; waiting for it keeps the engine from
        # starting (and then throwing away) a speculative transcription at every gap.
        self.speculate_frames = min(self.end_silence_frames, max(1, round(speculate_after_ms / FRAME_MS)))
        # A candidate survives dips up to the VAD's hangover (between words), so a quick
        # first word such as "what" counts towards the start and lands in the pre-roll.
        self.candidate_gap_frames = max(1, round(hangover_ms / FRAME_MS))
        self._pre: deque[np.ndarray] = deque(maxlen=round(3000 / FRAME_MS))
        self.reset()

    def reset(self) -> None:
        self.in_speech = False
        self._speech_run = 0  # speech frames in the current candidate
        self._candidate = 0  # frames since the candidate's first speech frame
        self._gap = 0  # consecutive non-speech frames in the candidate
        self._silence_run = 0
        self._pre.clear()

    def process(self, frame: np.ndarray, prob: float) -> list[EndpointEvent]:
        events: list[EndpointEvent] = []
        if not self.in_speech:
            self._pre.append(frame)
            if self._candidate:
                self._candidate += 1
            if prob >= self.threshold:
                self._candidate = self._candidate or 1
                self._speech_run += 1
                self._gap = 0
                # Mostly speech, not scattered clicks: taps or keyboard blips that each
                # fire a frame must not add up to a turn.
                dense = self._speech_run * 5 >= self._candidate * 2
                if self._speech_run >= self.min_speech_frames and dense:
                    keep = min(len(self._pre), self._candidate + self.pre_roll_frames)
                    events.append(SpeechStart(np.concatenate(list(self._pre)[-keep:])))
                    self.in_speech = True
                    self._silence_run = self._speech_run = self._candidate = self._gap = 0
                    self._pre.clear()
            elif self._candidate:
                self._gap += 1
                if self._gap >= self.candidate_gap_frames:  # it was a noise, not a turn
                    self._speech_run = self._candidate = self._gap = 0
            return events
        if prob >= self.release:
            if self._silence_run >= self.speculate_frames:
                events.append(SpeechResumed())
            self._silence_run = 0
            return events
        self._silence_run += 1
        if self._silence_run == self.speculate_frames:
            events.append(SilenceStart(self._silence_run * FRAME_MS / 1000))
        if self._silence_run >= self.end_silence_frames:
            events.append(SpeechEnd())
            self.in_speech = False
            self._speech_run = 0
            self._silence_run = 0
        return events
