"""Audio source/sink interfaces the engine uses; devices and WAV files implement them.

The contracts only: devices (``app.audio.capture``, ``app.audio.playback``, which
open them by name) and WAV files (``app.audio.files``) import this module, never
the other way round.

Sources deliver 16 kHz mono float32 frames of 512 samples. Sinks take TTS chunks at
any rate. Both are driven from the asyncio loop and never block it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import numpy as np

from app.plugin.provider_api import AudioChunk

if TYPE_CHECKING:
    from app.audio.far_end import FarEndTap
    from app.plugin.errors import VoiceError


class AudioSource(ABC):
    #: Set by the engine (when still None) so device faults and fallbacks reach the user.
    on_error: Callable[[VoiceError], None] | None = None
    on_notice: Callable[[str], None] | None = None

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    def frames(self) -> AsyncIterator[tuple[float, np.ndarray]]:
        """Yields (capture_time, frame): monotonic time of the frame's last sample, and
        a float32 array of 512 samples at 16 kHz. Ends when the source is exhausted/stopped."""

    @abstractmethod
    async def stop(self) -> None: ...

    @property
    def dropped_frames(self) -> int:
        return 0


class AudioSink(ABC):
    #: A device that may be stopped while idle and started again before the next reply
    #: (an open output stream costs CPU even when silent). File sinks write on stop: False.
    closes_when_idle: bool = False
    #: Set by the engine (when still None) so device faults and fallbacks reach the user.
    on_error: Callable[[VoiceError], None] | None = None
    on_notice: Callable[[str], None] | None = None
    #: What a real speaker was handed, by time: the echo canceller's reference. A sink
    #: nobody hears (a file) has none, and needs no echo cancellation.
    far_end: FarEndTap | None = None

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    def play(self, chunk: AudioChunk) -> None:
        """Queue a chunk; returns at once."""

    @abstractmethod
    def flush(self) -> None:
        """Drop everything queued and silence output within one block (barge-in)."""

    @abstractmethod
    async def drain(self) -> None:
        """Wait until everything queued has been handed to the device."""

    @abstractmethod
    def mark(self) -> None:
        """Start of a new reply: the next `first_sample_time` is for it."""

    @property
    @abstractmethod
    def first_sample_time(self) -> float | None:
        """Monotonic time the first sample since `mark()` was handed to the device."""

    @property
    def is_playing(self) -> bool:
        return False

    #: `pause()` holds the queue silently until `resume()` or `flush()` (barge-in that
    #: may turn out to be our own echo). A sink without it is cut at once instead.
    can_pause: bool = False

    def pause(self) -> None:
        raise NotImplementedError

    def resume(self) -> None:
        raise NotImplementedError

    @abstractmethod
    async def stop(self) -> None: ...
