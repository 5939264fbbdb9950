"""Keeps the assistant's own voice from triggering barge-in when it plays through speakers.

A Geigel-style double-talk detector: while the assistant speaks we know what it is
playing (the reference). Microphone energy within the measured speaker→mic coupling
of the reference is echo; the user is only "talking over" the assistant when the
microphone is clearly louder than that echo could be.

The coupling is the peak mic/reference ratio seen on echo-like frames over the last
`hold_s`, so pauses between words (mic silent, ratio 0) do not talk it down. A new
reply starts from a cautious prior until real frames have been measured; with a
headset (no echo at all) it falls to the floor after `hold_s` and barge-in is easy.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

FRAME_S = 512 / 16_000
LATE_S = 1.0  # how late the speaker's actual output may run behind our plan


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


@dataclass(frozen=True, slots=True)
class EchoGateOptions:
    margin_db: float = 10.0
    window_s: float = 0.4
    hold_s: float = 1.5
    prior_coupling: float = 0.5
    floor: float = 0.02


class EchoGate:
    def __init__(self, options: EchoGateOptions | None = None) -> None:
        o = options or EchoGateOptions()
        self._margin = 10 ** (o.margin_db / 20)
        self._window = o.window_s
        self._hold = o.hold_s
        self._prior = o.prior_coupling
        self._floor = o.floor
        self._ref: deque[tuple[float, float]] = deque()  # (play time, rms) per reference block
        self._ratios: deque[tuple[float, float]] = deque()  # (time, mic/ref) on echo-like frames

    def reset(self) -> None:
        """A new reply (or a flush): forget the reference; the next one re-arms the prior."""
        self._ref.clear()

    def add_reference(self, start_time: float, samples: np.ndarray, sample_rate: int) -> None:
        """Record what will be played from `start_time` on (monotonic seconds)."""
        if not self._ref:
            self._ratios.append((start_time, self._prior))
        block = max(1, int(sample_rate * FRAME_S))
        for i in range(0, len(samples), block):
            self._ref.append((start_time + i / sample_rate, _rms(samples[i : i + block])))
        while len(self._ref) > 4000:
            self._ref.popleft()

    def _ref_level(self, now: float) -> float:
        # Our timeline and the device's disagree by its latency and jitter, in either
        # direction; a device (or a busy machine) running late delays the echo most, so
        # the window reaches further back than forward.
        lo = now - max(self._window, LATE_S)
        while self._ref and self._ref[0][0] < now - 5.0:
            self._ref.popleft()
        return max((r for t, r in self._ref if lo <= t <= now + self._window), default=0.0)

    @property
    def coupling(self) -> float:
        return max((r for _, r in self._ratios), default=self._prior)

    def is_user_speech(self, mic_frame: np.ndarray, now: float, *, still_playing: bool = False) -> bool:
        """True when the mic frame is louder than the assistant's echo could explain.

        Call it for every frame while the assistant speaks, not only for frames the VAD
        calls speech: the echo-only frames are what teach it the speaker→mic coupling."""
        mic = _rms(mic_frame)
        ref = self._ref_level(now)
        if ref <= 1e-5 and still_playing:
            # The device runs later than our timeline (latency, drift): assume the
            # loudest recent reference is still coming out of the speaker.
            ref = max((r for t, r in self._ref if t >= now - 3.0), default=0.0)
        if ref <= 1e-5:
            return True  # nothing playing: no echo to fear
        while self._ratios and self._ratios[0][0] < now - self._hold:
            self._ratios.popleft()
        coupling = max(self.coupling, self._floor)
        if mic <= ref * coupling * self._margin:
            self._ratios.append((now, mic / ref))
            return False
        return True

    def louder_than_echo(self, mic_frame: np.ndarray, now: float) -> bool:
        """The frame is clearly more than the echo of what played (False when nothing has
        played lately: then there is no echo to measure it against)."""
        if max((r for t, r in self._ref if t >= now - 3.0), default=0.0) <= 1e-5:
            return False
        return self.is_user_speech(mic_frame, now, still_playing=True)
