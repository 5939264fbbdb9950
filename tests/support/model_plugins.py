"""Test helper: declare model specs through the registry, as a provider plug-in would."""

from __future__ import annotations

from collections.abc import Callable

from app.plugin.model_spec import ModelSpec


def declare_models(*specs: ModelSpec) -> Callable[[], None]:
    """Register a provider that declares `specs` (as a plug-in would); returns the undo."""
    from pydantic import BaseModel

    from app.plugin.registry import ProviderInfo, ProviderSpec, get_registry

    reg = get_registry()
    name = f"test-models-{specs[0].id}"
    reg.add(
        ProviderSpec(
            specs[0].kind,
            name,
            lambda cfg: None,
            BaseModel,
            ProviderInfo("test"),  # type: ignore[arg-type,return-value]
            models=specs,
        )
    )
    return lambda: reg.unregister(specs[0].kind, name)
