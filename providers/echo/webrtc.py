"""Echo canceller `webrtc`: WebRTC's audio processing module (AEC3, noise suppression,
optional gain control) through pywebrtc-audio.

The same canceller Chrome runs in every call: it learns the speaker→microphone echo
path from the reference (what VoxDesk played) and subtracts it, finding the delay
itself. ~0.2 ms per 10 ms block on one core. The library is imported on first use.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.model_spec import SelfCheck
from app.plugin.provider_api import ECHO_BLOCK, SAMPLE_RATE, EchoCanceller, Health, HealthStatus
from app.plugin.registry import ProviderInfo, ProviderSpec

OP = "echo.webrtc"


class WebRTCEchoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    noise_suppression: bool = Field(True, description="Also remove steady background noise (fans, hum)")
    noise_level: int = Field(1, ge=0, le=3, description="How much noise to remove: 0 (6 dB) … 3 (21 dB)")
    gain_control: bool = Field(False, description="Even out a quiet or loud microphone")


class WebRTCEcho(EchoCanceller):
    name = "webrtc"

    def __init__(self, config: WebRTCEchoConfig) -> None:
        self.config = config
        self._processor: Any = None
        self._delay_ms = 0
        self._lock = threading.Lock()
        self._blocks = 0

    def _ensure(self) -> Any:
        if self._processor is not None:
            return self._processor
        with self._lock:
            if self._processor is None:
                try:
                    from pywebrtc_audio import AudioProcessor
                except ImportError as exc:
                    raise VoiceError(
                        OP,
                        ErrorCode.UNAVAILABLE,
                        f"pywebrtc-audio is not installed ({exc}) — `pip install pywebrtc-audio`; "
                        "meanwhile VoxDesk ignores the microphone while it speaks",
                    ) from exc
                cfg = self.config
                self._processor = AudioProcessor(
                    sample_rate=SAMPLE_RATE,
                    echo_cancellation=True,
                    noise_suppression=cfg.noise_suppression,
                    ns_level=cfg.noise_level,
                    auto_gain_control=cfg.gain_control,
                    stream_delay_ms=self._delay_ms,
                )
            return self._processor

    async def warmup(self) -> None:
        self._ensure()

    def process(self, near: np.ndarray, far: np.ndarray) -> np.ndarray:
        if len(near) != len(far) or len(near) % ECHO_BLOCK:
            raise VoiceError(OP, ErrorCode.PROVIDER_ERROR, f"blocks of {len(near)}/{len(far)} samples")
        processor = self._ensure()
        self._blocks += len(near) // ECHO_BLOCK
        return np.asarray(processor.process(near, far), dtype=np.float32)

    def set_delay_hint(self, delay_ms: float) -> None:
        self._delay_ms = max(0, int(delay_ms))
        if self._processor is not None:
            self._processor.stream_delay_ms = self._delay_ms

    def reset(self) -> None:
        if self._processor is not None:
            self._processor.reset()

    async def health(self) -> Health:
        if self._processor is not None:
            return Health(HealthStatus.OK, f"cancelling echo (AEC3), {self._blocks * 10 // 1000} s processed")
        from importlib.util import find_spec

        if find_spec("pywebrtc_audio") is None:
            return Health(HealthStatus.DOWN, "pywebrtc-audio is not installed — `pip install pywebrtc-audio`")
        return Health(HealthStatus.OK, "ready; starts with the microphone")

    async def aclose(self) -> None:
        self._processor = None


def check_webrtc() -> str:
    from importlib.metadata import version

    import pywebrtc_audio  # noqa: F401 - the check is that it imports

    return version("pywebrtc-audio")


SPEC = ProviderSpec(
    kind="echo",
    name="webrtc",
    factory=WebRTCEcho,
    config_model=WebRTCEchoConfig,
    info=ProviderInfo(
        display_name="WebRTC echo canceller",
        description="Removes VoxDesk's own voice from the microphone, so you can talk over it on laptop "
        "speakers; also removes steady noise.",
        local=True,
        sample_rates=(SAMPLE_RATE,),
        requires=("pywebrtc_audio",),
    ),
    self_checks=(SelfCheck("pywebrtc-audio", check_webrtc),),
)
