"""What both wake-word providers share: float32 → 16-bit PCM, the sensitivity → cutoff
mapping, one detection per phrase (a refractory span), and the missing-package message.

Both libraries take 16 kHz 16-bit PCM bytes of any length and buffer to their own hop
(10 ms features for microWakeWord, 80 ms embeddings for openWakeWord), so the engine's
512-sample float32 frames only need converting, not re-blocking."""

from __future__ import annotations

import threading
from abc import abstractmethod
from collections.abc import Iterator, Mapping
from typing import ClassVar

import numpy as np

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import SAMPLE_RATE, WakeDetection, WakeWordDetector, validate_audio

#: After a detection, further ones are ignored for this long even if the engine does not
#: call reset(): the model's score stays high for a few hundred ms after the phrase.
REFRACTORY_S = 1.5


def to_pcm16(audio: np.ndarray) -> bytes:
    """16 kHz float32 in -1..1 → little-endian 16-bit PCM, clipped rather than wrapped."""
    return (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def cutoff_for(sensitivity: float, model_cutoff: float, *, strictest: float = 0.99, loosest: float = 0.5) -> float:
    """Sensitivity 0..1 → probability cutoff: 0.5 is the model author's cutoff, 0 the
    strictest, 1 the loosest (more wakes, more false ones); linear on each side."""
    s = min(1.0, max(0.0, sensitivity))
    if s <= 0.5:
        return model_cutoff + (0.5 - s) * 2 * (strictest - model_cutoff)
    return model_cutoff - (s - 0.5) * 2 * (model_cutoff - loosest)


def missing_package(op: str, package: str, exc: BaseException, extra: str = "") -> VoiceError:
    return VoiceError(
        op,
        ErrorCode.UNAVAILABLE,
        f"{package} is not installed ({exc}){extra} — `pip install {package}`; push-to-talk still works",
    )


class StreamingWakeDetector(WakeWordDetector):
    """Feeds PCM to `_probabilities` and turns scores over the cutoff into one detection.

    `ended_ago_s` is the model's typical lag from the phrase's end to its score crossing
    the cutoff (`DECISION_LAG_S`, per phrase, the p50 that `voxdesk bench --wake-word`
    measured on other voices) plus the audio of this call after the crossing."""

    #: Phrase id → seconds from the phrase's end to the score crossing the cutoff.
    DECISION_LAG_S: ClassVar[Mapping[str, float]] = {}
    #: For a phrase the bench has not measured.
    DEFAULT_LAG_S: ClassVar[float] = 0.15

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._quiet_samples = 0  # refractory left, in samples
        self.samples_heard = 0
        self.detections = 0

    @property
    @abstractmethod
    def phrase(self) -> str: ...

    @property
    @abstractmethod
    def cutoff(self) -> float: ...

    @abstractmethod
    def _probabilities(self, pcm: bytes) -> Iterator[tuple[float, int]]:
        """Scores for the audio in `pcm`, each with how many of its samples it has heard."""

    @abstractmethod
    def _reset_model(self) -> None: ...

    @property
    def phrases(self) -> tuple[str, ...]:
        return (self.phrase,)

    def process(self, audio: np.ndarray) -> WakeDetection | None:
        audio = validate_audio(f"wake.{self.name}", audio)
        with self._lock:
            n = len(audio)
            found: WakeDetection | None = None
            for prob, heard in self._probabilities(to_pcm16(audio)):
                if found is None and self._quiet_samples <= 0 and prob > self.cutoff:
                    after = max(0, n - heard) / SAMPLE_RATE
                    lag = self.DECISION_LAG_S.get(self.phrase, self.DEFAULT_LAG_S)
                    found = WakeDetection(self.phrase, float(prob), lag + after)
                    self._quiet_samples = int(REFRACTORY_S * SAMPLE_RATE) + heard
            # The refractory runs from the detection on; this call's audio after it counts.
            self._quiet_samples -= n
            self.samples_heard += n
            if found is not None:
                self.detections += 1
            return found

    def reset(self) -> None:
        with self._lock:
            self._reset_model()
            self._quiet_samples = 0
