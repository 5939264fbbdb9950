"""Turn detector `silence`: no model, the turn ends after a fixed silence.

The endpointer's silence rule (`conversation.endpoint_silence_ms`) decides alone; this
is the fallback when the Smart Turn model cannot run, and the choice for users who
prefer a predictable wait.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict

from app.plugin.provider_api import SAMPLE_RATE, Health, HealthStatus, TurnProvider, TurnVerdict
from app.plugin.registry import ProviderInfo, ProviderSpec


class SilenceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SilenceTurn(TurnProvider):
    name = "silence"

    def __init__(self, config: SilenceConfig) -> None:
        self.config = config

    async def predict(self, audio: np.ndarray, *, transcript: str | None = None) -> TurnVerdict:
        return TurnVerdict(None)

    async def health(self) -> Health:
        return Health(HealthStatus.OK, "fixed silence rule (no model needed)")


SPEC = ProviderSpec(
    kind="turn",
    name="silence",
    factory=SilenceTurn,
    config_model=SilenceConfig,
    info=ProviderInfo(
        display_name="Silence only",
        description="The turn ends after a fixed pause (Conversation → silence that ends a turn). "
        "Predictable, but every answer waits the whole pause.",
        local=True,
        languages=("*",),
        sample_rates=(SAMPLE_RATE,),
    ),
)
