"""A scripted microphone for engine tests: plays pieces of audio, can wait for the
engine to reach a state before the next piece (e.g. to talk over a reply)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import numpy as np

from app.audio.files import to_frames
from app.audio.streams import AudioSource
from app.plugin.provider_api import FRAME_SAMPLES, SAMPLE_RATE


@dataclass
class Piece:
    audio: np.ndarray
    wait_for: Callable[[], bool] | None = None  # hold silence until this is true
    then_wait_s: float = 0.0


class ScriptedSource(AudioSource):
    def __init__(self, pieces: list[Piece], *, tail_s: float = 1.5, max_wait_s: float = 60) -> None:
        self.pieces = pieces
        self.tail_s = tail_s
        self.max_wait_s = max_wait_s
        self._stopped = False
        self.piece_started_at: list[float] = []

    async def start(self) -> None:
        self._stopped = False

    async def stop(self) -> None:
        self._stopped = True

    async def frames(self) -> AsyncIterator[tuple[float, np.ndarray]]:
        frame_s = FRAME_SAMPLES / SAMPLE_RATE
        silence = np.zeros(FRAME_SAMPLES, np.float32)
        next_due = time.monotonic()

        async def emit(frame: np.ndarray) -> tuple[float, np.ndarray]:
            nonlocal next_due
            next_due += frame_s
            delay = next_due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                next_due = time.monotonic()
            return next_due, frame

        for piece in self.pieces:
            if piece.wait_for is not None:
                give_up = time.monotonic() + self.max_wait_s
                while not piece.wait_for() and time.monotonic() < give_up and not self._stopped:
                    yield await emit(silence)
                end = time.monotonic() + piece.then_wait_s
                while time.monotonic() < end and not self._stopped:
                    yield await emit(silence)
            self.piece_started_at.append(time.monotonic())
            for frame in to_frames(piece.audio):
                if self._stopped:
                    return
                yield await emit(frame)
        for _ in range(int(self.tail_s / frame_s)):
            if self._stopped:
                return
            yield await emit(silence)
