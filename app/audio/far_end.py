"""The echo canceller's reference: exactly what the speaker was handed, at 16 kHz, by time.

The output callback `push`es each block it wrote (silence included), stamped with the
monotonic time it ran; that is a deque append, nothing else, because a slow callback
makes the driver drop audio. The capture side (one worker) `take`s, for each
microphone frame, the reference over the same span: blocks are resampled to 16 kHz
there, and read in lockstep so the canceller sees one continuous signal. The echo of a
sample reaches the microphone later (output + input latency + the room); the canceller
finds that delay itself. When the read position and the timestamps part (the speaker
was parked, a device was switched, the machine stalled) it jumps back to the time it
should be — but not on timestamp jitter, which would make the canceller start over.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import soxr

RATE = 16_000
#: How much reference is kept (the echo of a sample arrives within a second).
KEEP_S = 2.0
#: The read position may wander from the timestamps by this much before it is reset:
#: capture timestamps through PulseAudio jitter by -13…+21 ms, and every reset makes the
#: canceller learn the echo path again.
RESYNC_S = 0.04
#: ...but only when it stays that far off for this many reads (~0.5 s), or at once when
#: it is off by `JUMP_S` (the speaker was parked, a device switched, the machine stalled).
RESYNC_AFTER = 16
JUMP_S = 0.15


class FarEndTap:
    def __init__(self) -> None:
        self._incoming: deque[tuple[float, np.ndarray, int]] = deque(maxlen=512)
        self._resamplers: dict[int, Any] = {}
        # A ring of the last KEEP_S of reference: stream index k lives at k % its size.
        self._ring = np.zeros(int(KEEP_S * RATE), np.float32)
        self._end = 0  # stream index of the next sample written
        self._anchors: deque[tuple[float, int, int]] = deque()  # (time, stream index, length) per block
        self._cursor: int | None = None
        self.resyncs = 0
        self._off = 0  # reads in a row that were more than RESYNC_S off

    # -- output callback thread -------------------------------------------------------------
    def push(self, at: float, block: np.ndarray, rate: int) -> None:
        """A block handed to the device at `at` (mono, the device rate). Callback-safe."""
        if rate > 0:  # a stream's first callbacks can run before its rate is known
            self._incoming.append((at, block, rate))

    # -- capture worker -----------------------------------------------------------------------
    def _drain(self) -> None:
        while self._incoming:
            at, block, rate = self._incoming.popleft()
            if rate != RATE:
                rs = self._resamplers.get(rate)
                if rs is None:
                    rs = self._resamplers[rate] = soxr.ResampleStream(rate, RATE, 1, dtype="float32", quality="LQ")
                block = rs.resample_chunk(block)
            self._anchors.append((at, self._end, len(block)))
            self._write(block.astype(np.float32, copy=False)[-len(self._ring) :])
        start = self._end - len(self._ring)
        while self._anchors and self._anchors[0][1] + self._anchors[0][2] <= start:
            self._anchors.popleft()

    def _write(self, block: np.ndarray) -> None:
        size = len(self._ring)
        at = self._end % size
        first = min(len(block), size - at)
        self._ring[at : at + first] = block[:first]
        self._ring[: len(block) - first] = block[first:]
        self._end += len(block)

    def _index_at(self, t: float) -> int | None:
        """The stream index of the sample handed at time `t`, or None in a gap (no output)."""
        for at, start, n in reversed(self._anchors):
            if at <= t:
                offset = round((t - at) * RATE)
                # Past this block's end but before the next one: the output was not running.
                return start + offset if offset <= n + int(RESYNC_S * RATE) else None
        return None

    def take(self, end_at: float, n: int) -> np.ndarray:
        """The `n` reference samples that end at time `end_at` (zeros where nothing played)."""
        self._drain()
        expected = self._index_at(end_at)
        if expected is None:
            self._cursor = None
            return np.zeros(n, np.float32)
        start = expected - n
        if self._cursor is None:
            self._cursor = start
        else:
            off = abs(self._cursor - start)
            self._off = self._off + 1 if off > RESYNC_S * RATE else 0
            if off > JUMP_S * RATE or self._off >= RESYNC_AFTER:
                self.resyncs += 1
                self._cursor, self._off = start, 0
        lo = self._cursor
        self._cursor += n
        out = np.zeros(n, np.float32)
        size = len(self._ring)
        src_lo, src_hi = max(lo, self._end - size, 0), min(self._end, lo + n)
        if src_hi > src_lo:
            idx = np.arange(src_lo, src_hi) % size
            out[src_lo - lo : src_hi - lo] = self._ring[idx]
        return out

    def reset(self) -> None:
        """Another device or a flush of the timeline: start reading afresh."""
        self._cursor = None
