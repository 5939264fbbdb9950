"""Provider registry: one global, lazily built, thread-safe.

Built-in and third-party providers register the same way, through the
`voxdesk.providers` entry-point group. Entry point names are `<kind>.<name>`, so
*listing* providers reads only package metadata and imports nothing; a provider
module is imported on `info()`/`create()`, and its heavy libraries only when the
provider loads its model (`warmup`).

An entry point resolves either to a `ProviderSpec` or to a callable taking the
registry (for plug-ins that register several providers).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.model_spec import ModelOption, ModelSpec, SelfCheck
from app.plugin.provider_api import KINDS, Provider

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "voxdesk.providers"

Factory = Callable[[Any], Provider]

#: Where a provider does its work: this computer, a server the user runs (on their
#: network), a cloud service, or either of the last two (an OpenAI-compatible API).
Runs = Literal["local", "server", "cloud", "server-or-cloud"]
RUNS_LABELS: Mapping[str, str] = {
    "local": "this computer",
    "server": "your server",
    "cloud": "cloud",
    "server-or-cloud": "your server or cloud",
}


@dataclass(frozen=True)
class ProviderInfo:
    """What the settings dialog and `voxdesk providers` show about a provider."""

    display_name: str
    description: str = ""
    local: bool = True  # runs on this machine, no network
    needs_api_key: bool = False
    streaming: bool = False
    languages: tuple[str, ...] = ("*",)
    sample_rates: tuple[int, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: Python modules it needs; `available()` checks they can be found.
    requires: tuple[str, ...] = ()
    #: Where it runs; None = from `local` ("local", else "cloud").
    runs: Runs | None = None
    #: What it needs besides its Python modules, a few words each ("an API key", "a Wyoming server").
    needs: tuple[str, ...] = ()

    @property
    def where(self) -> Runs:
        return self.runs or ("local" if self.local else "cloud")

    @property
    def where_label(self) -> str:
        """`where` in words: this computer, your server, cloud, or your server or cloud."""
        return RUNS_LABELS[self.where]

    @property
    def capabilities(self) -> dict[str, Any]:
        return {
            "local": self.local,
            "runs": self.where,
            "offline": self.local,
            "needs_api_key": self.needs_api_key,
            "streaming": self.streaming,
            "languages": list(self.languages),
            "sample_rates": list(self.sample_rates),
            **dict(self.extra),
        }

    def missing_requirements(self) -> list[str]:
        """Modules this provider needs that are not installed (no import done)."""
        from importlib.util import find_spec

        missing = []
        for mod in self.requires:
            try:
                if find_spec(mod) is None:
                    missing.append(mod)
            except (ImportError, ValueError):
                missing.append(mod)
        return missing


@dataclass(frozen=True)
class ProviderSpec:
    kind: str
    name: str
    factory: Factory
    config_model: type[BaseModel]
    info: ProviderInfo
    #: Models this provider loads (what `voxdesk models` lists, fetches and verifies).
    models: tuple[ModelSpec, ...] = ()
    #: Which of its options name a model (so `verify` and `doctor` check what Settings use).
    model_option: ModelOption | None = None
    #: Checks `voxdesk --self-test` runs to prove its libraries work in this install.
    self_checks: tuple[SelfCheck, ...] = ()

    def config_schema(self) -> dict[str, Any]:
        return self.config_model.model_json_schema()


def format_validation_error(err: ValidationError) -> str:
    """Every bad field on one line each: `field: problem`."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(config)"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


class Registry:
    def __init__(self, *, discover: bool = True) -> None:
        self._lock = threading.RLock()
        self._specs: dict[tuple[str, str], ProviderSpec] = {}
        self._pending: dict[tuple[str, str], EntryPoint] = {}
        self._broken: dict[tuple[str, str], str] = {}
        if discover:
            self._scan_entry_points()

    # -- discovery ---------------------------------------------------------
    def _scan_entry_points(self) -> None:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            kind, _, name = ep.name.partition(".")
            if kind not in KINDS or not name:
                continue
            first = self._pending.setdefault((kind, name), ep)
            if first.value != ep.value:
                # Two installed plug-ins claim one name: keep the first, say so (CONFLICT).
                log.warning(
                    "%s: CONFLICT: %s is provided by both %s and %s; using the first",
                    ENTRY_POINT_GROUP,
                    ep.name,
                    first.value,
                    ep.value,
                )

    def _load(self, key: tuple[str, str]) -> ProviderSpec | None:
        """Import a pending entry point once; caller holds the lock."""
        spec = self._specs.get(key)
        if spec is not None:
            return spec
        ep = self._pending.pop(key, None)
        if ep is None:
            return None
        try:
            obj = ep.load()
            if isinstance(obj, ProviderSpec):
                self._register_spec(obj, replace=False)
            else:
                obj(self)
        except VoiceError as exc:  # e.g. it registers a name that is already taken
            self._broken[key] = str(exc)
        except Exception as exc:  # a broken plug-in must not take the app down
            self._broken[key] = f"{type(exc).__name__}: {exc}"
        spec = self._specs.get(key)
        if spec is None and key not in self._broken:
            self._broken[key] = f"entry point {ep.value} registered no {key[0]} provider named {key[1]!r}"
        return spec

    # -- contract ----------------------------------------------------------
    def register(  # noqa: PLR0913 - kept for plug-ins; `add(ProviderSpec(...))` is the short form
        self,
        kind: str,
        name: str,
        factory: Factory,
        *,
        config_model: type[BaseModel],
        info: ProviderInfo,
        replace: bool = False,
    ) -> None:
        self._register_spec(ProviderSpec(kind, name, factory, config_model, info), replace=replace)

    def add(self, spec: ProviderSpec, *, replace: bool = False) -> None:
        """Register a whole spec (models, self-checks and all)."""
        self._register_spec(spec, replace=replace)

    def _register_spec(self, spec: ProviderSpec, *, replace: bool) -> None:
        if spec.kind not in KINDS:
            raise VoiceError(
                "registry.register",
                ErrorCode.INVALID_CONFIG,
                f"unknown kind {spec.kind!r}; use one of {', '.join(KINDS)}",
            )
        key = (spec.kind, spec.name)
        with self._lock:
            if key in self._specs and not replace:
                raise VoiceError(
                    "registry.register",
                    ErrorCode.CONFLICT,
                    f"{spec.kind} provider {spec.name!r} is already registered; pass replace=True to override it",
                )
            self._specs[key] = spec
            self._pending.pop(key, None)
            self._broken.pop(key, None)

    def unregister(self, kind: str, name: str) -> None:
        with self._lock:
            self._specs.pop((kind, name), None)
            self._pending.pop((kind, name), None)

    def list_providers(self, kind: str) -> list[str]:
        with self._lock:
            names = {n for (k, n) in self._specs if k == kind}
            names.update(n for (k, n) in self._pending if k == kind)
        return sorted(names)

    def is_registered(self, kind: str, name: str) -> bool:
        with self._lock:
            return (kind, name) in self._specs or (kind, name) in self._pending

    def spec(self, kind: str, name: str) -> ProviderSpec:
        key = (kind, name)
        spec = self._specs.get(key)  # lock-free fast path: dict reads are atomic
        if spec is not None:
            return spec
        with self._lock:
            spec = self._load(key)
            if spec is not None:
                return spec
            broken = self._broken.get(key)
        if broken:
            raise VoiceError(
                f"registry.{kind}",
                ErrorCode.UNAVAILABLE,
                f"provider {name!r} could not be loaded ({broken}) — reinstall it or pick another in Settings",
            )
        known = ", ".join(self.list_providers(kind)) or "none"
        raise VoiceError(
            f"registry.{kind}",
            ErrorCode.NOT_FOUND,
            f"no {kind} provider named {name!r}; known: {known}",
        )

    def specs(self) -> list[ProviderSpec]:
        """Every provider that loads, in kind then name order (broken plug-ins are skipped;
        `broken()` names them). Imports the spec modules, never a provider library."""
        out = []
        for kind in KINDS:
            for name in self.list_providers(kind):
                try:
                    out.append(self.spec(kind, name))
                except VoiceError:
                    continue
        return out

    def info(self, kind: str, name: str) -> ProviderInfo:
        return self.spec(kind, name).info

    def validate(self, kind: str, name: str, config: Mapping[str, Any] | BaseModel | None) -> BaseModel:
        spec = self.spec(kind, name)
        if isinstance(config, spec.config_model):
            return config
        raw = config.model_dump() if isinstance(config, BaseModel) else dict(config or {})
        try:
            return spec.config_model.model_validate(raw)
        except ValidationError as exc:
            raise VoiceError(f"{kind}.{name}", ErrorCode.INVALID_CONFIG, format_validation_error(exc)) from None

    def create(self, kind: str, name: str, config: Mapping[str, Any] | BaseModel | None = None) -> Provider:
        """Validate, then build. The factory never sees an invalid config."""
        spec = self.spec(kind, name)
        cfg = self.validate(kind, name, config)
        return spec.factory(cfg)

    def find(self, kind: str, **capabilities: Any) -> list[str]:
        """Names whose capabilities match all given ones (`languages="en"` means supports)."""
        out = []
        for name in self.list_providers(kind):
            try:
                caps = self.info(kind, name).capabilities
            except VoiceError:
                continue
            if all(_matches(caps.get(k), v) for k, v in capabilities.items()):
                out.append(name)
        return out

    def broken(self) -> dict[tuple[str, str], str]:
        with self._lock:
            return dict(self._broken)


def _matches(have: Any, want: Any) -> bool:
    if isinstance(have, list):
        return want in have or "*" in have
    return bool(have == want)


_registry: Registry | None = None
_registry_lock = threading.Lock()


def get_registry() -> Registry:
    global _registry
    reg = _registry
    if reg is None:
        with _registry_lock:
            if _registry is None:
                _registry = Registry()
            reg = _registry
    return reg


def reset_registry() -> None:
    """For tests: the next `get_registry()` rescans entry points."""
    global _registry
    with _registry_lock:
        _registry = None
