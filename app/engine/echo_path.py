"""The microphone through the echo canceller, frame by frame, on the listener's worker.

Frames are 512 samples; the canceller works in 10 ms blocks (160), and a block cut
short would be zero-padded (a click it then tries to cancel: ~40 dB less echo removed
in a test). So whole blocks go in and the rest waits for the next frame; the cleaned
microphone runs 10 ms behind. Alongside, it measures what the canceller achieves:
ERLE (echo return loss enhancement, dB) over the frames where the speaker played, and
double talk (the user speaking while it played).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from app.audio.far_end import FarEndTap
from app.plugin.provider_api import ECHO_BLOCK, SAMPLE_RATE, EchoCanceller

#: The speaker is playing (the reference is louder than -50 dBFS).
PLAYING_RMS = 10 ** (-50 / 20)
#: Below this the microphone heard no echo worth judging the canceller on (a headset).
HEARD_RMS = 10 ** (-55 / 20)
#: How much playing it takes before the ERLE says anything.
JUDGE_AFTER_S = 2.0
#: Less echo removed than this (over a reply with echo in the room): talking over it would
#: stop it by itself, so auto duplex falls back to half.
POOR_ERLE_DB = 12.0


@dataclass(frozen=True, slots=True)
class EchoStats:
    """What the canceller did over the current reply."""

    erle_db: float | None  # None: too little played and heard to tell
    playing_s: float
    double_talk_s: float


class EchoPath:
    def __init__(self) -> None:
        self._near = np.zeros(0, np.float32)
        self._far = np.zeros(0, np.float32)
        self._out = np.zeros(ECHO_BLOCK, np.float32)  # the 10 ms the cleaned stream runs behind
        #: The last verdict on the canceller (`judge`): True when it removes too little.
        self.poor = False
        self.reset_meter()

    def reset_meter(self) -> None:
        self._near_energy = 0.0
        self._out_energy = 0.0
        self._playing_frames = 0
        self._double_talk_frames = 0
        self._last = (0.0, 0.0)  # the last frame's (near, cleaned) energy, if the speaker played
        # Per-frame ERLE where the microphone heard something: its median is not dragged
        # down by the odd frame of the user's voice the VAD did not flag.
        self._frame_erle: deque[float] = deque(maxlen=4000)

    def process(self, canceller: EchoCanceller, tap: FarEndTap, frame: np.ndarray, captured_at: float) -> np.ndarray:
        """`frame` (captured ending at `captured_at`) without the speaker's echo."""
        far = tap.take(captured_at, len(frame))
        near = np.concatenate([self._near, frame])
        ref = np.concatenate([self._far, far])
        whole = len(near) // ECHO_BLOCK * ECHO_BLOCK
        cleaned = canceller.process(near[:whole], ref[:whole]) if whole else near[:0]
        self._near, self._far = near[whole:], ref[whole:]
        out = np.concatenate([self._out, cleaned])
        result, self._out = out[: len(frame)], out[len(frame) :]
        self._last = (0.0, 0.0)
        if float(np.sqrt(np.mean(np.square(far, dtype=np.float64)))) > PLAYING_RMS:
            self._last = (float(np.sum(np.square(frame, dtype=np.float64))), float(np.sum(np.square(result))))
            self._playing_frames += 1
            self._near_energy += self._last[0]
            self._out_energy += self._last[1]
            if self._last[0] > HEARD_RMS**2 * len(frame):
                self._frame_erle.append(10 * math.log10(self._last[0] / max(self._last[1], 1e-12)))
        return result

    def note_user_speech(self) -> None:
        """The VAD heard the user in the last frame: if the speaker played, that was double
        talk, and the user's voice is no echo to judge the canceller on."""
        if self._last == (0.0, 0.0):
            return
        self._double_talk_frames += 1
        self._playing_frames -= 1
        self._near_energy -= self._last[0]
        self._out_energy -= self._last[1]
        if self._last[0] > HEARD_RMS**2 * 512 and self._frame_erle:
            self._frame_erle.pop()
        self._last = (0.0, 0.0)

    def stats(self) -> EchoStats:
        frame_s = 512 / SAMPLE_RATE
        playing_s = self._playing_frames * frame_s
        erle: float | None = None
        heard = self._playing_frames and math.sqrt(self._near_energy / (self._playing_frames * 512)) > HEARD_RMS
        if playing_s >= JUDGE_AFTER_S and heard:
            erle = 10 * math.log10(max(self._near_energy, 1e-12) / max(self._out_energy, 1e-12))
        return EchoStats(erle, playing_s, self._double_talk_frames * frame_s)

    def median_erle(self) -> float | None:
        """The typical echo removed per frame over the reply (None: too little heard)."""
        if len(self._frame_erle) * 512 / SAMPLE_RATE < JUDGE_AFTER_S:
            return None
        return float(np.median(np.fromiter(self._frame_erle, float)))

    def judge(self) -> bool:
        """Update `poor` from this reply's frames; call it while nobody is speaking (the
        user's voice over the reply is not echo left behind). True when it changed to poor."""
        erle = self.median_erle()
        if erle is None:
            return False
        was, self.poor = self.poor, erle < POOR_ERLE_DB
        return self.poor and not was
