"""Error bookkeeping and provider health for the settings page and `voxdesk doctor`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from app.engine.events import Notice
from app.engine.stages import StageSet
from app.plugin.errors import VoiceError, as_voice_error
from app.plugin.provider_api import Health, HealthStatus, Provider
from app.plugin.registry import Registry
from app.telemetry import Telemetry


@dataclass
class ProviderHealth:
    stage: str
    provider: str
    local: bool
    health: Health
    breaker_state: str | None = None
    error_count: int = 0
    last_error: str | None = None
    last_error_at: float | None = None


class ErrorBook:
    """How often each (stage, provider) failed, and its last error, as health shows it."""

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        self._errors: dict[tuple[str, str], tuple[int, str, float]] = {}

    def count(self, stage: str, provider: str, code: str, text: str | None = None) -> None:
        self.telemetry.record_error(stage, provider, code)
        n = self._errors.get((stage, provider), (0, "", 0.0))[0] + 1
        self._errors[(stage, provider)] = (n, text or code, time.time())

    def note(self, stage: str, provider: str, text: str) -> None:
        """The last error's text, for one already counted (by the stage runner)."""
        n = self._errors.get((stage, provider), (1, "", 0.0))[0]
        self._errors[(stage, provider)] = (n, text, time.time())

    def get(self, stage: str, provider: str) -> tuple[int, str | None, float | None]:
        n, text, at = self._errors.get((stage, provider), (0, "", 0.0))
        return (n, text, at) if n else (0, None, None)


class TelemetryObserver:
    """Resilience → telemetry and the UI: error counts, span events, fallback notices."""

    def __init__(self, errors: ErrorBook, span: Callable[[], Any], emit: Callable[[Notice], object]) -> None:
        self._errors = errors
        self._span = span
        self._emit = emit

    def on_error(self, stage: str, provider: str, code: str) -> None:
        self._errors.count(stage, provider, code)

    def on_event(self, name: str, attrs: Mapping[str, Any]) -> None:
        self._errors.telemetry.add_event(self._span(), name, {k: str(v) for k, v in attrs.items()})
        if name == "fallback":
            self._emit(
                Notice(
                    message=f"{attrs.get('stage')}: {attrs.get('from')} failed "
                    f"({attrs.get('code')}); using {attrs.get('to')}"
                )
            )


async def check_health(stages: StageSet, registry: Registry, errors: ErrorBook) -> list[ProviderHealth]:
    """Every provider of every stage, asked at once (each within 5 s)."""

    async def one(kind: str, name: str, provider: Provider) -> ProviderHealth:
        try:
            h = await asyncio.wait_for(provider.health(), 5)
        except Exception as exc:
            h = Health(HealthStatus.DOWN, str(as_voice_error(f"{kind}.{name}", exc)))
        errors.telemetry.set_health(kind, name, int(h.level))
        count, last, at = errors.get(kind, name)
        try:
            local = registry.info(kind, name).local
        except VoiceError:
            local = True
        breaker = stages[kind].runner.snapshot().get(name) if kind in stages.slots else None
        return ProviderHealth(kind, name, local, h, breaker.state.value if breaker else None, count, last, at)

    jobs = [one(slot.kind, n, p) for slot in stages.slots.values() for n, p in slot.chain]
    return list(await asyncio.gather(*jobs))
