"""The echo canceller's reference (app/audio/far_end.py) and the path that feeds it
whole 10 ms blocks (app/engine/echo_path.py)."""

from __future__ import annotations

import numpy as np
import pytest

from app.audio.far_end import RATE, FarEndTap
from app.engine.echo_path import EchoPath
from app.plugin.provider_api import ECHO_BLOCK, EchoCanceller, Health, HealthStatus


def ramp_tap(seconds: float, block_s: float = 0.02, start: float = 100.0) -> FarEndTap:
    """A tap fed like a device callback at 16 kHz with a ramp: sample k has the value k."""
    tap = FarEndTap()
    n = int(RATE * block_s)
    for i in range(int(seconds / block_s)):
        tap.push(start + i * block_s, np.arange(i * n, (i + 1) * n, dtype=np.float32), RATE)
    return tap


def test_the_reference_is_read_in_step_by_time() -> None:
    tap = ramp_tap(1.0)
    first = tap.take(100.5, 512)
    second = tap.take(100.5 + 512 / RATE, 512)
    assert first[-1] == pytest.approx(8000, abs=2)  # the sample handed at 100.5 s
    assert np.all(np.diff(np.concatenate([first, second])) == 1)  # continuous, no sample lost or repeated


def test_jitter_in_the_timestamps_does_not_break_the_stream_but_a_jump_resyncs() -> None:
    tap = ramp_tap(1.5)
    a = tap.take(100.4, 512)
    b = tap.take(100.4 + 512 / RATE + 0.01, 512)  # 10 ms late: within the slack, still in step
    assert b[0] == a[-1] + 1 and tap.resyncs == 0
    c = tap.take(101.2, 512)  # far ahead (a stall): read from where the time says
    assert c[-1] == pytest.approx(1.2 * RATE, abs=2) and tap.resyncs == 1


def test_no_output_reads_as_silence_and_blocks_without_a_rate_are_ignored() -> None:
    tap = FarEndTap()
    tap.push(10.0, np.ones(960, np.float32), 0)  # a stream's first callback, rate not known yet
    assert not tap.take(10.01, 512).any()
    gap = ramp_tap(0.2)
    assert not gap.take(105.0, 512).any()  # long after the speaker stopped


class Halving(EchoCanceller):
    """Removes half the echo, in blocks; records the block sizes it was given."""

    name = "halving"

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def process(self, near: np.ndarray, far: np.ndarray) -> np.ndarray:
        self.sizes.append(len(near))
        return near - 0.5 * far

    async def health(self) -> Health:
        return Health(HealthStatus.OK)


def test_the_canceller_gets_whole_blocks_and_the_cleaned_stream_keeps_its_length() -> None:
    tap = FarEndTap()
    rng = np.random.default_rng(1)
    far = (0.1 * rng.standard_normal(RATE * 4)).astype(np.float32)
    path, canceller = EchoPath(), Halving()
    pushed = 0
    for k in range(100):
        end = 200.0 + (k + 1) * 512 / RATE
        while pushed < (k + 1) * 512:  # the speaker's callback runs ahead of the microphone
            tap.push(200.0 + pushed / RATE, far[pushed : pushed + 320], RATE)
            pushed += 320
        near = far[k * 512 : (k + 1) * 512].copy()  # the echo: the reference itself, at once
        assert len(path.process(canceller, tap, near, end)) == len(near)
    assert all(size % ECHO_BLOCK == 0 for size in canceller.sizes)
    stats = path.stats()
    assert stats.erle_db == pytest.approx(20 * np.log10(2), abs=0.5)  # half the echo gone: 6 dB
    assert stats.playing_s == pytest.approx(100 * 512 / RATE)
