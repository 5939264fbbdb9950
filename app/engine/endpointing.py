"""Turns per-frame VAD probabilities into speech start / silence / speech end.

Frames are 512 samples at 16 kHz (32 ms). A turn starts after `min_speech_ms` of
speech (so a cough or a click is not a turn) and keeps `pre_roll_ms` of audio from
before the start, because VAD fires a little after the first phoneme.

How long a pause ends the turn depends on what the engine learns during it.
`SilenceStart` is sent early in each pause: the engine then transcribes
speculatively and asks the turn detector, and reports back (`hear_verdict`,
`hear_text` with the transcript's `Ending`, tagged with the pause they belong to):
- the words stop mid-sentence ("set a timer for") → up to `patience_ms`;
- the detector calls it finished, or the words are a finished question → `min_silence_ms`;
- the detector is sure it is unfinished and the words have no final punctuation
  either → up to `patience_ms`;
- no answer yet, no detector (or one without an opinion), or the two disagree →
  the silence rule, `end_silence_ms` (a late answer never holds a turn up).
Speech resuming starts over. The answers arrive between frames, so `hear_*` may
end the turn at once.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TypedDict, Unpack

import numpy as np

from app.engine.turn_words import Ending

FRAME_MS = 512 / 16_000 * 1000


@dataclass(frozen=True)
class SpeechStart:
    pre_roll: np.ndarray  # audio from before and including the confirming frames


@dataclass(frozen=True)
class SilenceStart:
    silent_s: float  # silence already heard when this is sent
    pause: int = 0  # which pause: answers about an older one are ignored


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
    decides: bool  # a turn detector answers at pauses (False: the silence rule alone)
    min_silence_ms: int  # a finished sentence ends the turn after this much silence (160)
    patience_ms: int  # an unfinished one waits this long for more words (1500)


class _Pending:
    """No answer yet in this pause."""


PENDING = _Pending()
Answer = bool | None | _Pending


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
        self.decides = options.get("decides", False)
        self.min_silence_frames = max(self.speculate_frames, round(options.get("min_silence_ms", 160) / FRAME_MS))
        self.patience_frames = max(self.min_silence_frames, round(options.get("patience_ms", 1500) / FRAME_MS))
        self.pause = 0
        #: Set while a reply plays through the echo canceller: its double-talk suppression
        #: leaves the user's voice in fragments, so speech starts on less (a false start
        #: only pauses the reply until its words are heard: app/engine/barge_in.py).
        self.sensitive = False
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
        self._forget_answers()

    def _forget_answers(self, *, pause_open: bool = False) -> None:
        self._pause_open = pause_open  # answers count only during the pause they are about
        self._finished: Answer = PENDING  # the turn detector: has the user finished?
        self._words: Ending | _Pending | None = PENDING  # how the transcript ends
        self._sure = True
        self._punctuated = False

    def silence_frames_needed(self) -> int:
        """How much silence ends the turn, given what is known about this pause."""
        if not self.decides:
            return self.end_silence_frames
        finished, words = self._finished, self._words
        if finished is None:  # a detector without an opinion (`silence`): the silence rule
            return self.end_silence_frames
        if words is Ending.UNFINISHED:
            return self.patience_frames
        if words is Ending.QUESTION:
            return self.min_silence_frames
        if finished is False and self._sure and not self._punctuated:
            return self.patience_frames
        if isinstance(finished, _Pending) or isinstance(words, _Pending):
            return self.end_silence_frames
        if finished:
            return self.min_silence_frames
        # A doubtful "unfinished", or one the transcript's full stop contradicts: the
        # silence rule — unless no words can say otherwise, then the detector decides.
        return self.patience_frames if words is None else self.end_silence_frames

    def hear_verdict(self, pause: int, finished: bool | None, *, sure: bool = True) -> list[EndpointEvent]:
        """The turn detector's answer about `pause` (None: it has no opinion; `sure`: an
        "unfinished" it is confident of)."""
        if self._about_this_pause(pause):
            self._finished = finished
            self._sure = sure
        return self._end_if_due(pause)

    def hear_text(self, pause: int, words: Ending | None, *, punctuated: bool = False) -> list[EndpointEvent]:
        """How the transcript of `pause` ends (None: cannot tell / no text); `punctuated`:
        it ends on a full stop or an exclamation mark."""
        if self._about_this_pause(pause):
            self._words = words
            self._punctuated = punctuated
        return self._end_if_due(pause)

    def _about_this_pause(self, pause: int) -> bool:
        return self._pause_open and pause == self.pause and self.in_speech

    def _end_if_due(self, pause: int) -> list[EndpointEvent]:
        if not self._about_this_pause(pause):
            return []
        if self._silence_run < self.silence_frames_needed():
            return []
        return [self._end()]

    def _end(self) -> SpeechEnd:
        self._forget_answers()
        self.in_speech = False
        self._speech_run = 0
        self._silence_run = 0
        return SpeechEnd()

    def process(self, frame: np.ndarray, prob: float) -> list[EndpointEvent]:
        events: list[EndpointEvent] = []
        if not self.in_speech:
            self._pre.append(frame)
            if self._candidate:
                self._candidate += 1
            threshold, needed, share = self.threshold, self.min_speech_frames, 0.4
            if self.sensitive:
                threshold, needed, share = threshold * 0.6, max(2, needed * 2 // 3), 0.25
            if prob >= threshold:
                self._candidate = self._candidate or 1
                self._speech_run += 1
                self._gap = 0
                # Mostly speech, not scattered clicks: taps or keyboard blips that each
                # fire a frame must not add up to a turn.
                dense = self._speech_run >= self._candidate * share
                if self._speech_run >= needed and dense:
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
                self._forget_answers()
            self._silence_run = 0
            return events
        self._silence_run += 1
        if self._silence_run == self.speculate_frames:
            self.pause += 1
            self._forget_answers(pause_open=True)
            events.append(SilenceStart(self._silence_run * FRAME_MS / 1000, self.pause))
        if self._silence_run >= self.silence_frames_needed():
            events.append(self._end())
        return events
