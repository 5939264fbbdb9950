"""Echo canceller `off`: the microphone as it is. With it, VoxDesk ignores the microphone
while it speaks (half duplex), unless Conversation → duplex says full (a headset)."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict

from app.plugin.provider_api import SAMPLE_RATE, EchoCanceller, Health, HealthStatus
from app.plugin.registry import ProviderInfo, ProviderSpec


class NoEchoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoEcho(EchoCanceller):
    name = "off"
    cancels_echo = False

    def __init__(self, config: NoEchoConfig) -> None:
        self.config = config

    def process(self, near: np.ndarray, far: np.ndarray) -> np.ndarray:
        return near

    async def health(self) -> Health:
        return Health(HealthStatus.OK, "no echo cancellation: the microphone is ignored while VoxDesk speaks")


SPEC = ProviderSpec(
    kind="echo",
    name="off",
    factory=NoEcho,
    config_model=NoEchoConfig,
    info=ProviderInfo(
        display_name="Off",
        description="No echo cancellation. VoxDesk stops listening while it speaks, unless you wear a headset "
        "and set duplex to full.",
        local=True,
        sample_rates=(SAMPLE_RATE,),
    ),
)
