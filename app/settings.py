"""User settings: pydantic models, a JSON file with a schema version, atomic writes.

Rules users rely on:
- a bad file never stops start-up: it is moved aside to `<name>.corrupt.<time>`,
  defaults are used, and a notice says where the old file went;
- one invalid value falls back to its default alone, with a notice naming it;
- keys written by a newer version are kept on save, not dropped;
- before a file that lost values on load is rewritten, the original is copied aside;
- `--set` overrides last for the run: saving keeps the stored values under them;
- API keys never live here (see `app.secrets`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.errors import ErrorCode, VoiceError
from app.safe_files import atomic_write_text, keep_copy, move_aside

SCHEMA_VERSION = 1
SETTINGS_FILE = "settings.json"
SECRET_KEYS = frozenset({"api_key", "api-key", "apikey", "token", "access_token", "password", "secret",
                         "authorization", "client_secret"})


class _Section(BaseModel):
    model_config = ConfigDict(extra="allow", validate_assignment=True)


class StageSettings(_Section):
    provider: str
    options: dict[str, Any] = Field(default_factory=dict)
    fallbacks: list[str] = Field(default_factory=list)
    # Options for providers used as fallbacks, by name (kept when a provider stops being the chosen one).
    fallback_options: dict[str, dict[str, Any]] = Field(default_factory=dict)


class AudioSettings(_Section):
    input_device: str | None = Field(None, description="Microphone name as listed by `voxdesk doctor`")
    input_host_api: str | None = None
    output_device: str | None = Field(None, description="Speaker name as listed by `voxdesk doctor`")
    output_host_api: str | None = None


class ConversationSettings(_Section):
    system_prompt: str = Field(
        "You are VoxDesk, a helpful voice assistant. Answer briefly in plain spoken sentences.",
        max_length=4000,
    )
    language: str = Field("en", min_length=2, max_length=8)
    endpoint_silence_ms: int = Field(450, ge=100, le=3000, description="Silence that ends a turn")
    min_speech_ms: int = Field(200, ge=50, le=2000, description="Shorter sounds are not turns")
    hands_free: bool = True
    half_duplex: bool = Field(True, description="Ignore the microphone while speaking (speakers, no headset)")
    barge_in: bool = True
    skills_first: bool = Field(True, description="Let local skills answer what they know before the LLM")
    history_turns: int = Field(8, ge=0, le=100)
    turn_deadline_s: float = Field(30.0, gt=1.0, le=600.0)
    first_output_deadline_s: float = Field(8.0, gt=0.1, le=120.0)


class TelemetrySettings(_Section):
    enabled: bool = True
    otlp_endpoint: str | None = Field(None, description="e.g. http://127.0.0.1:4318 — leave empty for none")
    capture_content: bool = Field(False, description="Put transcripts and replies on spans")


class Settings(BaseModel):
    model_config = ConfigDict(extra="allow", validate_assignment=True)

    schema_version: int = SCHEMA_VERSION
    vad: StageSettings = Field(default_factory=lambda: StageSettings(provider="silero", fallbacks=["energy"]))
    stt: StageSettings = Field(default_factory=lambda: StageSettings(provider="faster-whisper"))
    llm: StageSettings = Field(default_factory=lambda: StageSettings(provider="skills"))
    tts: StageSettings = Field(default_factory=lambda: StageSettings(provider="piper"))
    audio: AudioSettings = Field(default_factory=AudioSettings)
    conversation: ConversationSettings = Field(default_factory=ConversationSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)

    def stage(self, kind: str) -> StageSettings:
        section = getattr(self, kind)
        assert isinstance(section, StageSettings)
        return section


@dataclass
class LoadResult:
    settings: Settings
    notices: list[str] = field(default_factory=list)


def _strip_secrets(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip_secrets(v) for k, v in obj.items() if k.lower() not in SECRET_KEYS}
    if isinstance(obj, list):
        return [_strip_secrets(v) for v in obj]
    return obj


def _drop_path(raw: dict[str, Any], loc: Iterable[Any]) -> bool:
    """Remove the value at `loc` so its default applies. False if nothing to drop."""
    parts = list(loc)
    node: Any = raw
    for p in parts[:-1]:
        if (isinstance(node, dict) and p in node) or (isinstance(node, list) and isinstance(p, int) and p < len(node)):
            node = node[p]
        else:
            return False
    last = parts[-1] if parts else None
    if isinstance(node, dict) and last in node:
        del node[last]
        return True
    if isinstance(node, list) and isinstance(last, int) and last < len(node):
        del node[last]
        return True
    return False


def validate_leniently(raw: dict[str, Any]) -> LoadResult:
    """Validate, dropping each bad field to its default with a notice per field."""
    notices: list[str] = []
    data = _strip_secrets(raw)
    if data != raw:
        notices.append("an API key in the settings file was ignored — enter keys in Settings (keychain)")
    for _ in range(50):
        try:
            return LoadResult(Settings.model_validate(data), notices)
        except ValidationError as exc:
            dropped = False
            for e in exc.errors():
                # A required field (a stage's provider) cannot default alone: walk up
                # until a whole section can, rather than resetting every setting.
                loc = list(e["loc"])
                while loc and not _drop_path(data, loc):
                    loc = loc[:-1]
                if loc:
                    where = ".".join(str(p) for p in e["loc"])
                    what = "" if loc == list(e["loc"]) else f" (section {'.'.join(map(str, loc))})"
                    notices.append(f"setting {where}: {e['msg']} — using the default{what}")
                    dropped = True
            if not dropped:
                break
    notices.append("settings could not be read — using defaults")
    return LoadResult(Settings(), notices)


class SettingsStore:
    """Reads and writes `settings.json` in the user's config dir."""

    def __init__(self, config_dir: Path) -> None:
        self.path = Path(config_dir) / SETTINGS_FILE
        self._unknown: dict[str, Any] = {}
        self._lossy = False  # the file on disk holds values this version dropped
        self._overrides: tuple[dict[str, Any], dict[str, Any]] | None = None

    def remember_overrides(self, stored: Settings, overridden: Settings) -> None:
        """`--set` values are for this run: `save` puts the stored values back under them
        unless the user has since changed that value (in the settings dialog)."""
        self._overrides = (stored.model_dump(mode="json"), overridden.model_dump(mode="json"))

    def _move_aside(self, why: str) -> str:
        dest = move_aside(self.path)
        return f"settings file was {why}; it was kept as {dest} and defaults are used"

    def load(self) -> LoadResult:
        if not self.path.exists():
            return LoadResult(Settings())
        try:
            text = self.path.read_bytes().decode("utf-8")
            raw = json.loads(text) if text.strip() else None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            why = "not valid text" if isinstance(exc, UnicodeDecodeError) else "damaged (not valid JSON)"
            return LoadResult(Settings(), [self._move_aside(why)])
        except OSError as exc:
            return LoadResult(Settings(), [f"settings file could not be read ({exc}) — using defaults"])
        if raw is None:
            return LoadResult(Settings(), [self._move_aside("empty")])
        if not isinstance(raw, dict):
            return LoadResult(Settings(), [self._move_aside("not a settings object")])
        notices: list[str] = []
        version = raw.get("schema_version", SCHEMA_VERSION)
        if isinstance(version, int) and version > SCHEMA_VERSION:
            notices.append(
                f"settings were written by a newer VoxDesk (schema {version}); "
                "unknown options are kept but not used"
            )
            raw = {**raw, "schema_version": SCHEMA_VERSION}
            self._unknown = {"schema_version": version}
        result = validate_leniently(raw)
        self._lossy = bool(notices or result.notices)
        result.notices[:0] = notices
        return result

    def save(self, settings: Settings) -> None:
        data = settings.model_dump(mode="json")
        if self._overrides is not None:
            stored, overridden = self._overrides
            data = _unoverride(stored, overridden, data)
        data = _strip_secrets(data)
        if self._lossy and self.path.exists():
            keep_copy(self.path)  # what this version could not read stays with the user
            self._lossy = False
        data.update({k: v for k, v in self._unknown.items() if k != "schema_version"})
        if "schema_version" in self._unknown:
            data["schema_version"] = self._unknown["schema_version"]
        atomic_write_text(self.path, json.dumps(data, indent=2, sort_keys=False) + "\n")


_MISSING: Any = object()


def _unoverride(stored: Any, overridden: Any, current: Any) -> Any:
    """Three-way merge: where `current` still equals the override, the stored value
    returns; what changed since (the user's own edits) is kept."""
    if current == overridden:
        return stored
    if all(isinstance(x, dict) for x in (stored, overridden, current)):
        out: dict[str, Any] = {}
        for k in [*current, *(k for k in stored if k not in current)]:
            v = _unoverride(stored.get(k, _MISSING), overridden.get(k, _MISSING), current.get(k, _MISSING))
            if v is not _MISSING:
                out[k] = v
        return out
    return current


def parse_override(item: str) -> tuple[list[str], Any]:
    """`llm.options.base_url=http://x` → (['llm','options','base_url'], 'http://x')."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise VoiceError("settings.set", ErrorCode.INVALID_CONFIG, f"{item!r} is not KEY=VALUE")
    try:
        parsed: Any = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return [p for p in key.strip().split(".") if p], parsed


def apply_overrides(settings: Settings, items: Iterable[str]) -> Settings:
    """Return a copy with `--set` overrides applied; every bad field named at once."""
    data = settings.model_dump(mode="json")
    for item in items:
        path, value = parse_override(item)
        if path[-1].lower() in SECRET_KEYS:
            raise VoiceError(
                "settings.set", ErrorCode.INVALID_CONFIG,
                "API keys are not settings — store them with the keychain or an environment variable",
            )
        node = data
        for p in path[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise VoiceError("settings.set", ErrorCode.INVALID_CONFIG, f"{'.'.join(path)}: not a section")
            node = nxt
        if path[0] in ("vad", "stt", "llm", "tts") and path[1:] == ["provider"] and node.get("provider") != value:
            # A new provider does not inherit the old one's options (later --set options.* still apply).
            node["options"] = {}
        node[path[-1]] = value
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        from app.registry import format_validation_error

        raise VoiceError("settings.set", ErrorCode.INVALID_CONFIG, format_validation_error(exc)) from None
