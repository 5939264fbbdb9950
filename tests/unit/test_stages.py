"""Stages from settings: fallbacks keep their own options; a chosen provider that cannot be
built here leaves the stage working on its fallback."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from app.engine.stages import build_all, build_slot, remember_replaced_options
from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.registry import ProviderInfo, Registry
from app.store.settings import Settings, StageSettings


class VoiceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    voice: str = "default"


class Voice:
    def __init__(self, cfg: VoiceConfig) -> None:
        self.voice = cfg.voice


def broken(_cfg: Any) -> Voice:
    raise VoiceError("tts.broken", ErrorCode.UNAVAILABLE, "its SDK is not installed here")


def registry() -> Registry:
    reg = Registry(discover=False)
    for name, factory in (("local", Voice), ("cloud", Voice), ("broken", broken)):
        reg.register("tts", name, factory, config_model=VoiceConfig, info=ProviderInfo(name, name))
    return reg


def test_a_provider_keeps_its_options_when_it_becomes_the_fallback() -> None:
    old = Settings()
    old.tts = StageSettings(provider="local", options={"voice": "amy"})
    new = old.model_copy(deep=True)
    new.tts = StageSettings(provider="cloud", options={"voice": "nova"}, fallbacks=["local"])
    new = remember_replaced_options(old, new)
    slot = build_slot(registry(), "tts", new.tts)
    assert [(n, p.voice) for n, p in slot.chain] == [("cloud", "nova"), ("local", "amy")]  # type: ignore[attr-defined]


def test_a_chosen_provider_that_cannot_be_built_leaves_its_fallback_working() -> None:
    s = Settings()
    s.tts = StageSettings(provider="broken", fallbacks=["local"], fallback_options={"local": {"voice": "amy"}})
    stages, failures = build_all(registry(), s)
    assert "tts.broken" in str(failures["tts"])  # reported to the user
    assert stages["tts"].name == "local"
    assert stages["tts"].provider.voice == "amy"  # type: ignore[attr-defined]
