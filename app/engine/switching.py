"""Switching stages when settings change: each changed stage is built and warmed
first; one that fails keeps the provider in use (and its settings)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from app.engine.context import EngineContext
from app.engine.events import Notice, ProviderSwitched
from app.engine.stages import (
    RunnerSetup,
    StageSet,
    StageSlot,
    build_slot,
    changed_kinds,
    remember_replaced_options,
    warm,
)
from app.plugin.errors import as_voice_error
from app.plugin.registry import Registry
from app.store.settings import Settings
from app.telemetry import Telemetry


@dataclass
class Switch:
    stages: StageSet
    settings: Settings  # what was applied: failed stages keep their old settings
    results: list[ProviderSwitched] = field(default_factory=list)
    replaced: list[StageSlot] = field(default_factory=list)  # close once no turn holds them


async def switch_stages(
    registry: Registry, current: tuple[Settings, StageSet], new: Settings, setup: RunnerSetup
) -> Switch:
    old, stages = current
    staged = dict(stages.slots)
    new = remember_replaced_options(old, new)
    switch = Switch(stages, new)
    for kind in changed_kinds(old, new):
        cfg = new.stage(kind)
        try:
            slot = build_slot(registry, kind, cfg, setup)
            await warm(slot)
        except Exception as exc:
            err = as_voice_error(f"{kind}.{cfg.provider}", exc)
            switch.results.append(
                ProviderSwitched(
                    stage=kind, provider=cfg.provider, ok=False, message=f"{err} — kept {old.stage(kind).provider}"
                )
            )
            new = new.model_copy(update={kind: old.stage(kind)})
            continue
        if kind in staged:
            switch.replaced.append(staged[kind])
        staged[kind] = slot
        switch.results.append(ProviderSwitched(stage=kind, provider=cfg.provider, ok=True))
    switch.stages, switch.settings = StageSet(staged), new
    return switch


async def rebuild_stage(
    registry: Registry, kind: str, settings: Settings, setup: RunnerSetup
) -> StageSlot | ProviderSwitched:
    """The stage built again from `settings`, or why it could not be."""
    cfg = settings.stage(kind)
    try:
        slot = build_slot(registry, kind, cfg, setup)
        await warm(slot)
    except Exception as exc:
        err = as_voice_error(f"{kind}.{cfg.provider}", exc)
        return ProviderSwitched(stage=kind, provider=cfg.provider, ok=False, message=str(err))
    return slot


async def load_models(
    ctx: EngineContext, stages: StageSet, promote: Callable[[StageSlot, int], None], telemetry: Telemetry
) -> None:
    """Warm every stage at once; a chosen provider that cannot load is reported and the
    first fallback that can is promoted (`promote(slot, index)`)."""
    pending = list(stages.slots.values())
    if pending:
        ctx.emit(Notice(message="Loading speech models…", transient=True))
    results = await asyncio.gather(*(warm(s) for s in pending), return_exceptions=True)
    for slot, res in zip(pending, results, strict=True):
        if isinstance(res, BaseException):
            ctx.report(slot.kind, slot.name, as_voice_error(f"{slot.kind}.{slot.name}", res))
            await _use_fallback(ctx, slot, promote)
        telemetry.set_health(slot.kind, slot.name, 0 if isinstance(res, BaseException) else 2)
    if pending:
        ctx.emit(Notice(message="Ready.", transient=True))


async def _use_fallback(ctx: EngineContext, slot: StageSlot, promote: Callable[[StageSlot, int], None]) -> None:
    for i, (name, provider) in enumerate(slot.chain[1:], start=1):
        try:
            await provider.warmup()
        except Exception as exc:
            ctx.report(slot.kind, name, as_voice_error(f"{slot.kind}.{name}", exc))
            continue
        promote(slot, i)
        ctx.emit(Notice(message=f"{slot.kind}: {slot.name} is not available here; using {name}"))
        return
