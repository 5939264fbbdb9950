"""VAD `energy`: RMS + zero-crossing detector with an adaptive noise floor.

For machines where the Silero library cannot run. It needs nothing but numpy and
costs microseconds per frame, at the price of worse robustness: it compares each
frame's level with a running estimate of the background, and distrusts frames
whose zero-crossing rate looks like hiss rather than voice.

The score is probability-like (0..1, 0.5 at the decision point), so the engine
can treat it exactly like Silero's output.
"""

from __future__ import annotations

import math
import threading

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from app.plugin.provider_api import FRAME_SAMPLES, SAMPLE_RATE, Health, HealthStatus, VADProvider, validate_audio
from app.plugin.registry import ProviderInfo, ProviderSpec

OP = "vad.energy"
_SILENCE_DB = -100.0


class EnergyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(0.5, gt=0.0, lt=1.0, description="Speech when the score is above this")
    hangover_ms: int = Field(300, ge=0, le=3000, description="Keep counting as speech this long after the score drops")
    margin_db: float = Field(
        12.0, ge=3.0, le=40.0, description="How far above the background a frame must be to count as speech"
    )
    min_level_db: float = Field(
        -50.0, ge=-90.0, le=-10.0, description="Frames quieter than this (dBFS) are never speech"
    )
    max_zcr: float = Field(0.35, gt=0.0, le=1.0, description="Zero-crossing rate above which a frame sounds like hiss")


class EnergyVAD(VADProvider):
    name = "energy"

    def __init__(self, config: EnergyConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._noise_db: float | None = None

    @property
    def threshold(self) -> float:
        return self.config.threshold

    @property
    def hangover_ms(self) -> int:
        return self.config.hangover_ms

    @property
    def noise_floor_db(self) -> float | None:
        return self._noise_db

    def speech_probability(self, frame: np.ndarray) -> float:
        samples = validate_audio(OP, frame)
        if len(samples) == 0:
            return 0.0
        rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
        level_db = 20.0 * math.log10(rms) if rms > 1e-10 else _SILENCE_DB
        signs = np.signbit(samples)
        zcr = float(np.count_nonzero(signs[1:] != signs[:-1])) / max(1, len(samples) - 1)
        cfg = self.config
        with self._lock:
            noise = self._noise_db if self._noise_db is not None else min(level_db, cfg.min_level_db)
            snr = level_db - noise
            # Logistic around the margin: 0.5 exactly at `margin_db` above the floor.
            score = 1.0 / (1.0 + math.exp(-(snr - cfg.margin_db) / 2.0))
            if level_db < cfg.min_level_db:
                score = 0.0
            if zcr > cfg.max_zcr:  # hiss-like: scale down smoothly, not a cliff
                score *= max(0.0, 1.0 - (zcr - cfg.max_zcr) / 0.1)
            # Floor tracking: falls fast to quieter backgrounds, rises slowly
            # (~3 dB/s) so a steady new noise is absorbed but speech is not.
            if level_db < noise:
                noise = 0.5 * noise + 0.5 * level_db
            elif score < cfg.threshold:
                noise = 0.9 * noise + 0.1 * level_db
            else:
                noise += 0.1
            self._noise_db = max(noise, _SILENCE_DB)
        return score

    def reset(self) -> None:
        with self._lock:
            self._noise_db = None

    async def health(self) -> Health:
        return Health(HealthStatus.OK, "energy detector (no model needed)")


SPEC = ProviderSpec(
    kind="vad",
    name="energy",
    factory=EnergyVAD,
    config_model=EnergyConfig,
    info=ProviderInfo(
        display_name="Energy VAD",
        description="Dependency-free level + zero-crossing detector with an adaptive noise floor. "
        "Use it where Silero cannot run; less robust in noise.",
        local=True,
        streaming=True,
        languages=("*",),
        sample_rates=(SAMPLE_RATE,),
        extra={"frame_samples": FRAME_SAMPLES},
    ),
)
