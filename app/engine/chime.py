"""The wake chime: two short rising tones (~0.18 s), made once, quiet enough not to startle."""

from __future__ import annotations

from functools import cache

import numpy as np

from app.plugin.provider_api import AudioChunk

RATE = 24_000
#: E6 then A6: a rising fourth reads as "go ahead" on most desktop assistants.
TONES_HZ = (1318.5, 1760.0)
TONE_S = 0.07
GAP_S = 0.02
LEVEL = 0.22


def _tone(hz: float) -> np.ndarray:
    t = np.arange(int(RATE * TONE_S)) / RATE
    envelope = np.sin(np.pi * t / TONE_S) ** 2  # no click at either end
    return (LEVEL * envelope * np.sin(2 * np.pi * hz * t)).astype(np.float32)


@cache
def _samples() -> np.ndarray:
    gap = np.zeros(int(RATE * GAP_S), np.float32)
    out = np.concatenate([_tone(TONES_HZ[0]), gap, _tone(TONES_HZ[1])])
    out.flags.writeable = False
    return out


def chime() -> AudioChunk:
    return AudioChunk(_samples(), RATE)
