"""Keeps the assistant's own voice from triggering barge-in when it plays through speakers.

A Geigel-style double-talk detector: while the assistant speaks we know what it is
playing (the reference). Microphone energy that stays within the measured speaker→mic
coupling of the reference is echo; the user is only "talking over" the assistant when
the microphone is clearly louder than that echo could be. The coupling is learnt
while the assistant talks alone, so a loud speaker next to the mic raises the bar.
"""

from __future__ import annotations

from collections import deque

import numpy as np

FRAME_S = 512 / 16_000


class EchoGate:
    def __init__(self, *, margin_db: float = 10.0, window_s: float = 0.4, initial_coupling: float = 1.0) -> None:
        self._margin = 10 ** (margin_db / 20)
        self._ref: deque[tuple[float, float]] = deque()  # (play time, rms) per reference block
        self._window = window_s
        # Start pessimistic (echo as loud as the reference) until we have measured it.
        self.coupling = initial_coupling

    def reset(self) -> None:
        self._ref.clear()

    def add_reference(self, start_time: float, samples: np.ndarray, sample_rate: int) -> None:
        """Record what will be played from `start_time` on (monotonic seconds)."""
        block = max(1, int(sample_rate * FRAME_S))
        for i in range(0, len(samples), block):
            seg = samples[i : i + block]
            rms = float(np.sqrt(np.mean(np.square(seg, dtype=np.float64)))) if len(seg) else 0.0
            self._ref.append((start_time + i / sample_rate, rms))
        while len(self._ref) > 4000:
            self._ref.popleft()

    def _ref_level(self, now: float) -> float:
        lo = now - self._window
        while self._ref and self._ref[0][0] < lo - 5.0:
            self._ref.popleft()
        return max((r for t, r in self._ref if lo <= t <= now + FRAME_S), default=0.0)

    def is_user_speech(self, mic_frame: np.ndarray, now: float) -> bool:
        """True when the mic frame is louder than the assistant's echo could explain."""
        mic = float(np.sqrt(np.mean(np.square(mic_frame, dtype=np.float64)))) if len(mic_frame) else 0.0
        ref = self._ref_level(now)
        if ref <= 1e-5:
            return True  # nothing playing: no echo to fear
        expected_echo = ref * self.coupling
        if mic <= expected_echo * self._margin:
            # Consistent with echo: learn the coupling slowly (only ever from echo-like frames).
            if mic > 1e-5:
                ratio = mic / ref
                self.coupling = 0.9 * self.coupling + 0.1 * ratio if ratio > self.coupling else (
                    0.99 * self.coupling + 0.01 * ratio
                )
            return False
        return True
