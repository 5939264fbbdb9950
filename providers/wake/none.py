"""Wake word `none`: nothing is listened for; push-to-talk, the hotkey and always-listening
still work, and the wake-word activation says it is unavailable."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict

from app.plugin.provider_api import SAMPLE_RATE, Health, HealthStatus, WakeDetection, WakeWordDetector
from app.plugin.registry import ProviderInfo, ProviderSpec


class NoWakeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoWake(WakeWordDetector):
    name = "none"
    listens = False

    def __init__(self, config: NoWakeConfig) -> None:
        self.config = config

    @property
    def phrases(self) -> tuple[str, ...]:
        return ()

    def process(self, audio: np.ndarray) -> WakeDetection | None:
        return None

    async def health(self) -> Health:
        return Health(HealthStatus.OK, "no wake word: use push-to-talk, the hotkey or always listening")


SPEC = ProviderSpec(
    kind="wake",
    name="none",
    factory=NoWake,
    config_model=NoWakeConfig,
    info=ProviderInfo(
        display_name="None",
        description="No wake word. Talk with push-to-talk, the global hotkey, or always listening.",
        local=True,
        sample_rates=(SAMPLE_RATE,),
    ),
)
