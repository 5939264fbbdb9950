"""How busy the whole machine's CPUs were over the last few seconds (Linux: /proc/stat).

The audio watchdog asks this before calling a silent device lost: on a saturated 2-core
machine the sound server itself gets no CPU and stops asking for audio, which looks
exactly like a pulled headset. Elsewhere (no /proc/stat) there is no answer and the
watchdog keeps to its plain rule.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path

PROC_STAT = Path("/proc/stat")
#: How far back `busy_fraction` can look.
KEEP_S = 10.0


def _read_jiffies(path: Path) -> tuple[int, int] | None:
    """(busy, total) CPU time of all cores so far, in clock ticks."""
    try:
        with path.open("rb") as f:
            first = f.readline().split()
    except OSError:
        return None
    if len(first) < 5 or first[0] != b"cpu":
        return None
    values = [int(v) for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    # guest times are already inside user/nice: leave them out of the total
    total = sum(values[:8])
    return total - idle, total


class CpuMeter:
    """Samples the machine's CPU counters when told to (`sample()`, a few µs); answers how
    busy the CPUs were since a moment in the recent past."""

    def __init__(self, path: Path = PROC_STAT) -> None:
        self.path = path
        self._samples: deque[tuple[float, int, int]] = deque()
        self.available = _read_jiffies(path) is not None

    def sample(self, now: float | None = None) -> None:
        if not self.available:
            return
        reading = _read_jiffies(self.path)
        if reading is None:
            return
        t = time.monotonic() if now is None else now
        self._samples.append((t, *reading))
        while self._samples and t - self._samples[0][0] > KEEP_S:
            self._samples.popleft()

    def busy_fraction(self, since: float) -> float | None:
        """Share of all cores' time spent busy from the last sample at or before `since`
        to the latest; None when there is no such stretch (too short, or no counters)."""
        if len(self._samples) < 2:
            return None
        start = self._samples[0]
        for s in self._samples:
            if s[0] > since:
                break
            start = s
        end = self._samples[-1]
        total = end[2] - start[2]
        if total <= 0:
            return None
        return (end[1] - start[1]) / total
