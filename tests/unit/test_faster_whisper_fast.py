"""faster-whisper's fast-path rules and partial pacing, without the model (the model's side is in
tests/integration/test_stt.py)."""

from __future__ import annotations

import asyncio
import threading
import types
from collections.abc import AsyncIterator

import numpy as np
import pytest

import providers.stt.faster_whisper as fw
from app.plugin.provider_api import FRAME_SAMPLES, SAMPLE_RATE
from providers.stt.faster_whisper import (
    FasterWhisperConfig,
    FasterWhisperSTT,
    compression_ratio,
    partial_cpu_share,
    repeats,
    window_frames,
)


@pytest.mark.parametrize(
    ("seconds", "least", "frames"),
    [(1.0, 10, 1000), (8.0, 10, 1000), (8.1, 10, 1100), (12.5, 10, 1500), (25.0, 10, 2700), (29.0, 10, 3000)],
)
def test_the_window_is_the_audio_plus_a_margin_in_whole_seconds(seconds: float, least: int, frames: int) -> None:
    assert window_frames(int(seconds * SAMPLE_RATE), least) == frames


def test_a_configured_window_is_the_shortest_one() -> None:
    assert window_frames(SAMPLE_RATE, 30) == 3000
    assert window_frames(SAMPLE_RATE, 5) == 500


@pytest.mark.parametrize(
    "tokens",
    [[7, 7, 7], [1, 2, 1, 2, 1, 2], [5, 1, 2, 3, 4, 1, 2, 3, 4, 9], [9, 8, 1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1]],
    ids=["a word three times", "a pair three times", "a phrase twice", "a loop cut off by the cap"],
)
def test_whisper_loops_are_spotted(tokens: list[int]) -> None:
    assert repeats(tokens)


@pytest.mark.parametrize(
    "tokens",
    [[], [1], [7, 7], [1, 2, 1, 2], [1, 2, 3, 1, 2, 3], list(range(40))],
    ids=["empty", "one", "a word twice", "a pair twice", "three words twice", "no repeats"],
)
def test_what_people_say_is_not_a_loop(tokens: list[int]) -> None:
    assert not repeats(tokens)


def test_compression_ratio_rises_with_repetition() -> None:
    assert compression_ratio("") == 0.0
    assert compression_ratio("Please turn on the kitchen lights.") < 1.5
    assert compression_ratio("Stop. " * 20) > 2.4


@pytest.mark.parametrize(("cores", "share"), [(1, 0.2), (2, 1 / 3), (4, 0.5), (16, 0.5)])
def test_partials_get_a_third_of_two_cores(cores: int, share: float) -> None:
    assert partial_cpu_share(cores) == pytest.approx(share)


class _Clock:
    """The provider's clock, advanced by the microphone: pacing is checked in audio time."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def perf_counter(self) -> float:
        return self.now


class _PricedPartials(FasterWhisperSTT):
    """The provider's own streaming loop; each partial decode reports `cost` seconds."""

    def __init__(self, config: FasterWhisperConfig, clock: _Clock, cost: float) -> None:
        super().__init__(config)
        self.clock, self.cost = clock, cost
        self.starts: list[float] = []

    def _decode_partial(
        self, samples: np.ndarray, language: str | None, cancel: threading.Event
    ) -> tuple[str | None, float]:
        self.starts.append(self.clock.now)
        return f"{len(samples)} samples", self.cost

    def _decode(self, samples: np.ndarray, language: str | None, cancel: threading.Event | None = None) -> str:
        return "final"


async def _starts(monkeypatch: pytest.MonkeyPatch, cost: float, seconds: float = 10.0) -> list[float]:
    clock = _Clock()
    monkeypatch.setattr(fw, "time", types.SimpleNamespace(monotonic=clock.monotonic, perf_counter=clock.perf_counter))
    stt = _PricedPartials(FasterWhisperConfig(partial_cpu_share=1 / 3), clock, cost)
    speech = np.random.default_rng(1).uniform(-0.5, 0.5, int(seconds * SAMPLE_RATE)).astype(np.float32)

    async def microphone() -> AsyncIterator[np.ndarray]:
        for i in range(0, len(speech), FRAME_SAMPLES):
            clock.now += FRAME_SAMPLES / SAMPLE_RATE
            yield speech[i : i + FRAME_SAMPLES]
            await asyncio.sleep(0.002)  # real time for the decode thread's answer to arrive

    try:
        results = [t async for t in stt.stream(microphone())]
    finally:
        await stt.aclose()
    assert results[-1].is_final
    return stt.starts


async def test_costly_partials_are_spaced_by_three_times_their_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    starts = await _starts(monkeypatch, cost=0.6)  # a third of wall time: one every 1.8 s, not every 0.5 s
    gaps = np.diff(starts)
    assert len(starts) >= 3 and (gaps >= 1.8 - 1e-9).all(), starts


async def test_cheap_partials_come_every_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    starts = await _starts(monkeypatch, cost=0.05)
    gaps = np.diff(starts)
    assert len(starts) >= 10 and (gaps >= 0.5 - 1e-9).all() and (gaps < 1.0).all(), starts
