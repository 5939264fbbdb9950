"""The CPU meter the audio watchdog consults, and the watchdog's rule built on it."""

from __future__ import annotations

from pathlib import Path

from app.audio.cpu_load import CpuMeter
from app.audio.devices import SupervisedStream


def _stat(path: Path, busy: int, idle: int) -> None:
    # user nice system idle iowait irq softirq steal guest guest_nice
    path.write_text(f"cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\ncpu0 {busy} 0 0 {idle} 0 0 0 0 0 0\n")


def test_busy_fraction_over_the_stretch_since_a_moment(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    _stat(stat, 1000, 1000)
    meter = CpuMeter(stat)
    meter.sample(10.0)
    _stat(stat, 1010, 1090)  # 10 % busy
    meter.sample(11.0)
    _stat(stat, 1105, 1095)  # 95 % busy
    meter.sample(12.0)
    assert meter.busy_fraction(since=11.0) == 0.95
    assert abs((meter.busy_fraction(since=10.0) or 0) - 105 / 200) < 1e-9
    assert meter.busy_fraction(since=12.0) is None  # no stretch after the last sample


def test_no_counters_no_answer(tmp_path: Path) -> None:
    meter = CpuMeter(tmp_path / "missing")
    meter.sample(1.0)
    meter.sample(2.0)
    assert not meter.available
    assert meter.busy_fraction(since=0.0) is None
    (tmp_path / "garbage").write_text("intr 1 2 3\n")
    assert CpuMeter(tmp_path / "garbage").busy_fraction(since=0.0) is None


def _stream(tmp_path: Path, busy_share: float) -> SupervisedStream:
    stat = tmp_path / "stat"
    s = SupervisedStream()
    _stat(stat, 0, 100)
    s._cpu = CpuMeter(stat)
    s._cpu.sample(100.0)
    busy = int(busy_share * 100)
    _stat(stat, busy, 100 + 100 - busy)
    s._cpu.sample(101.0)
    s._callbacks_seen = True
    s._first_callback_due = 0.0
    s._last_callback = 100.0
    return s


def test_silence_on_an_idle_machine_is_a_lost_device(tmp_path: Path) -> None:
    s = _stream(tmp_path, busy_share=0.2)
    assert s._stalled(100.5) is None
    assert s._stalled(101.0) == "no audio from the device for 1.0 s"


def test_silence_while_every_core_is_busy_waits_longer_but_not_for_ever(tmp_path: Path) -> None:
    s = _stream(tmp_path, busy_share=0.97)
    assert s._stalled(101.0) is None  # the sound server is starved, not gone
    assert s._stalled(100.0 + s.starved_stall_s + 0.1) is not None
