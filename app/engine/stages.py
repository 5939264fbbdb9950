"""The providers a session uses, one slot per stage, swappable between turns.

A turn takes a `StageSet` snapshot at its start, so a settings change mid-turn never
swaps a provider under running work; the next turn sees the new one. Providers
that a switch replaced are closed once no turn holds them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from app.plugin.errors import ErrorCode, VoiceError, as_voice_error
from app.plugin.provider_api import KINDS, Provider
from app.plugin.registry import Registry
from app.plugin.resilience import NullObserver, ResilienceObserver, StageRunner
from app.store.settings import Settings, StageSettings

log = logging.getLogger(__name__)


@dataclass
class StageSlot:
    """One stage: the chosen provider first, then its fallbacks, in order."""

    kind: str
    chain: list[tuple[str, Provider]]
    config: StageSettings
    runner: StageRunner[Provider]

    @property
    def name(self) -> str:
        return self.chain[0][0]

    @property
    def provider(self) -> Provider:
        return self.chain[0][1]


@dataclass
class StageSet:
    slots: dict[str, StageSlot] = field(default_factory=dict)

    def __getitem__(self, kind: str) -> StageSlot:
        return self.slots[kind]

    def providers_used(self) -> dict[str, str]:
        return {k: s.name for k, s in self.slots.items()}


@dataclass(frozen=True, slots=True)
class RunnerSetup:
    """What every stage runner of a session shares: its observer, clock and sleep
    (a test's fake clock reaches retry back-off, breakers and deadlines this way)."""

    observer: ResilienceObserver = field(default_factory=NullObserver)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def runner(self, kind: str, chain: list[tuple[str, Provider]]) -> StageRunner[Provider]:
        return StageRunner(kind, chain, observer=self.observer, clock=self.clock, sleep=self.sleep)


Setup = RunnerSetup | ResilienceObserver | None


def _setup(setup: Setup) -> RunnerSetup:
    if isinstance(setup, RunnerSetup):
        return setup
    return RunnerSetup(observer=setup or NullObserver())


def _same(a: StageSettings, b: StageSettings) -> bool:
    return a.model_dump() == b.model_dump()


def build_slot(registry: Registry, kind: str, cfg: StageSettings, setup: Setup = None) -> StageSlot:
    """Create the chosen provider and its fallbacks. The chosen one must build;
    a fallback that cannot be built is skipped with a log line."""
    chain = [(cfg.provider, registry.create(kind, cfg.provider, cfg.options))]
    chain += _fallbacks(registry, kind, cfg)
    return StageSlot(kind, chain, cfg, _setup(setup).runner(kind, chain))


def _fallbacks(registry: Registry, kind: str, cfg: StageSettings) -> list[tuple[str, Provider]]:
    """The fallbacks that build, each with its own remembered options (a llama.cpp model
    chosen earlier stays chosen when llama.cpp becomes the fallback)."""
    chain: list[tuple[str, Provider]] = []
    for name in cfg.fallbacks:
        if name == cfg.provider:
            continue
        try:
            chain.append((name, registry.create(kind, name, cfg.fallback_options.get(name, {}))))
        except VoiceError as exc:
            log.warning("fallback %s %s skipped: %s", kind, name, exc)
    return chain


def build_from_fallbacks(registry: Registry, kind: str, cfg: StageSettings, setup: Setup = None) -> StageSlot | None:
    """The stage without its chosen provider (which cannot be built here), if a fallback can."""
    chain = _fallbacks(registry, kind, cfg)
    if not chain:
        return None
    return StageSlot(kind, chain, cfg, _setup(setup).runner(kind, chain))


def promote(slot: StageSlot, index: int, setup: Setup = None) -> StageSlot:
    """The same stage with chain[index] first and the failed primary moved to the end."""
    chain = [slot.chain[index], *slot.chain[1:index], *slot.chain[index + 1 :], slot.chain[0]]
    return StageSlot(slot.kind, chain, slot.config, _setup(setup).runner(slot.kind, chain))


async def warm(slot: StageSlot) -> None:
    """Load the chosen provider's model now; failures surface as VoiceError."""
    try:
        await slot.provider.warmup()
    except Exception as exc:
        raise as_voice_error(f"{slot.kind}.{slot.name}.warmup", exc) from exc


async def close_slot(slot: StageSlot) -> None:
    with contextlib.suppress(Exception):
        await slot.runner.aclose()
    for _, provider in slot.chain:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(provider.aclose(), 5)


def build_all(registry: Registry, settings: Settings, setup: Setup = None) -> tuple[StageSet, dict[str, VoiceError]]:
    """Build every stage; a stage whose provider cannot be built is reported, not fatal."""
    stages = StageSet()
    failures: dict[str, VoiceError] = {}
    for kind in KINDS:
        cfg = settings.stage(kind)
        try:
            stages.slots[kind] = build_slot(registry, kind, cfg, setup)
            continue
        except VoiceError as exc:
            failures[kind] = exc
        except Exception as exc:
            failures[kind] = as_voice_error(f"{kind}.{cfg.provider}", exc)
        rescue = build_from_fallbacks(registry, kind, cfg, setup)
        if rescue is not None:  # reported above; the stage still works on its fallback
            stages.slots[kind] = rescue
    return stages, failures


def remember_replaced_options(old: Settings, new: Settings) -> Settings:
    """When a stage's chosen provider changes, keep the old one's options for when it
    serves as a fallback (or is chosen again)."""
    updates: dict[str, StageSettings] = {}
    for kind in KINDS:
        before, after = old.stage(kind), new.stage(kind)
        if after.provider != before.provider and before.options and before.provider not in after.fallback_options:
            kept = {**after.fallback_options, before.provider: dict(before.options)}
            updates[kind] = after.model_copy(update={"fallback_options": kept})
    return new.model_copy(update=updates) if updates else new


def changed_kinds(old: Settings, new: Settings) -> list[str]:
    return [k for k in KINDS if not _same(old.stage(k), new.stage(k))]


def missing_stage_error(kind: str, settings: Settings) -> VoiceError:
    name = settings.stage(kind).provider
    return VoiceError(
        f"{kind}.{name}",
        ErrorCode.UNAVAILABLE,
        f"no working {kind} provider — open Settings and choose one that is available here",
    )


def slot_info(slot: StageSlot) -> dict[str, Any]:
    return {"stage": slot.kind, "provider": slot.name, "fallbacks": [n for n, _ in slot.chain[1:]]}
