"""The speaker check's beep (Settings → Audio and the first-run welcome play the same one)."""

from __future__ import annotations

import math

import numpy as np

from app.audio.streams import AudioSink
from app.plugin.provider_api import AudioChunk

TONE_S = 0.6
TONE_RATE = 24_000


def beep(seconds: float = TONE_S, rate: int = TONE_RATE) -> AudioChunk:
    """A 440 Hz beep with a 0.1 s fade-out, so it ends without a click."""
    t = np.arange(int(seconds * rate)) / rate
    fade = np.minimum(1, 10 * (seconds - t))
    return AudioChunk((0.2 * np.sin(2 * math.pi * 440 * t) * fade).astype(np.float32), rate)


async def play_beep(sink: AudioSink) -> None:
    """Play the beep on a started `sink` to the end."""
    sink.mark()
    sink.play(beep())
    await sink.drain()
