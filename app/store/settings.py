"""User settings: pydantic models, a JSON file with a schema version, atomic writes.

Rules users rely on:
- a bad file never stops start-up: it is moved aside to `<name>.corrupt.<time>`,
  defaults are used, and a notice says where the old file went (on a read-only disk
  it is left where it is, the notice says so, and a later save keeps it aside first);
- one invalid value falls back to its default alone, with a notice naming it; so does
  a value nested absurdly deep (a file nested too deep to parse counts as damaged);
- keys written by a newer version are kept on save, not dropped; unknown keys in a
  file of this version (typos) are kept too, and one notice names them with a
  "did you mean";
- `--set` with a key that does not exist is bad usage (with a "did you mean");
- a save that fails (full or read-only disk) raises a VoiceError saying what to do;
- before a file that lost values on load is rewritten, the original is copied aside;
- `--set` overrides last for the run: saving keeps the stored values under them;
- API keys never live here (see `app.store.secrets`).
"""

from __future__ import annotations

import difflib
import json
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.plugin import languages
from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import KINDS
from app.store.safe_files import atomic_write_text, keep_copy, move_aside, storage_problem

SCHEMA_VERSION = 3
SETTINGS_FILE = "settings.json"
SECRET_KEYS = frozenset(
    {"api_key", "api-key", "apikey", "token", "access_token", "password", "secret", "authorization", "client_secret"}
)
#: Deeper nesting than this is no setting anyone wrote by hand; it would only exhaust the stack.
MAX_DEPTH = 32
#: The assistant out of the box: llama.cpp with its default (embedded) model, skills behind it.
#: A settings file that names an LLM keeps it (an explicit choice, `skills` included).
DEFAULT_LLM = "llama-cpp"
DEFAULT_LLM_FALLBACK = "skills"
#: Behind a model, the skills say the model is not answering (not how to choose one).
DEFAULT_LLM_FALLBACK_OPTIONS = {"unanswered": "model_unavailable"}


Duplex = Literal["auto", "half", "full"]
#: How a turn starts: only while the talk button or hotkey is held, after the wake word, or
#: whenever someone speaks.
ActivationMode = Literal["push_to_talk", "wake_word", "always"]
ACTIVATION_MODES: tuple[ActivationMode, ...] = ("push_to_talk", "wake_word", "always")


def _migrated(raw: dict[str, Any], version: object) -> dict[str, Any]:
    """A file of an older schema, in today's terms (nothing the user chose is lost)."""
    if not isinstance(version, int) or version >= SCHEMA_VERSION:
        return raw
    conv = raw.get("conversation")
    if isinstance(conv, dict) and "half_duplex" in conv:
        # Schema 1 wrote `half_duplex: true` for everyone (it was the default, before
        # echo cancellation): that becomes auto; an explicit false stays full duplex.
        conv = {k: v for k, v in conv.items() if k != "half_duplex"}
        conv.setdefault("duplex", "full" if raw["conversation"]["half_duplex"] is False else "auto")
        raw = {**raw, "conversation": conv}
    conv = raw.get("conversation")
    if isinstance(conv, dict) and "hands_free" in conv:
        # Schema 2's hands-free switch became the activation mode (schema 3).
        hands_free = conv["hands_free"]
        conv = {k: v for k, v in conv.items() if k != "hands_free"}
        kept = raw.get("activation")
        activation = {
            "mode": "push_to_talk" if hands_free is False else "always",
            **(kept if isinstance(kept, dict) else {}),
        }
        raw = {**raw, "conversation": conv, "activation": activation}
    return {**raw, "schema_version": SCHEMA_VERSION}


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
    language: str = Field(
        "en",
        min_length=2,
        max_length=8,
        description="Language you speak: auto (detected each turn; needs a multilingual speech model) or a code "
        "such as en, fr, de — speech recognition, the assistant's answers and the voice follow it",
    )
    endpoint_silence_ms: int = Field(
        450, ge=100, le=3000, description="Silence that ends a turn when the turn detector gives no answer"
    )
    turn_min_silence_ms: int = Field(
        160,
        ge=64,
        le=1000,
        description="Least silence before a sentence the turn detector calls finished ends the turn",
    )
    turn_patience_ms: int = Field(
        1500, ge=300, le=5000, description="Longest wait for more words when the sentence sounds unfinished"
    )
    min_speech_ms: int = Field(200, ge=50, le=2000, description="Shorter sounds are not turns")
    duplex: Duplex = Field(
        "auto",
        description="While VoxDesk speaks: auto listens when echo cancellation works (talk over it), "
        "half ignores the microphone, full always listens (a headset)",
    )
    barge_in: bool = True
    skills_first: bool = Field(True, description="Let local skills answer what they know before the LLM")
    history_turns: int = Field(8, ge=0, le=100)
    turn_deadline_s: float = Field(30.0, gt=1.0, le=600.0)
    first_output_deadline_s: float = Field(8.0, gt=0.1, le=120.0)

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        # A typo is refused by name; a region ("en-GB") is kept as written (users of it normalise).
        return languages.AUTO if languages.normalise(value) == languages.AUTO else value.strip()


class ActivationSettings(_Section):
    mode: ActivationMode = Field(
        "always",
        description="How you start talking: push-to-talk (the button or the hotkey), the wake word, "
        "or always listening (every sentence near the computer is a question)",
    )
    wake_timeout_s: float = Field(
        8.0, ge=2.0, le=60.0, description="After the wake word, how long VoxDesk waits for you to start speaking"
    )
    follow_up_s: float = Field(
        6.0, ge=0.0, le=60.0, description="After a reply, how long a follow-up question needs no wake word"
    )
    chime: bool = Field(True, description="Play a short chime when the wake word is heard")
    hotkey: str = Field(
        "Ctrl+Alt+Space",
        max_length=64,
        description="Global push-to-talk shortcut, held while you speak, in any application; empty for none",
    )


class WindowSettings(_Section):
    close_to_tray: bool | None = Field(
        None, description="Closing the window keeps VoxDesk running in the tray (asked the first time)"
    )
    #: The first-run welcome (how to talk, microphone and speaker check) was finished or skipped.
    onboarded: bool | None = Field(None, description="The first-run welcome has been done (or skipped)")


class TelemetrySettings(_Section):
    enabled: bool = True
    otlp_endpoint: str | None = Field(None, description="e.g. http://127.0.0.1:4318 — leave empty for none")
    capture_content: bool = Field(False, description="Put transcripts and replies on spans")


class Settings(BaseModel):
    model_config = ConfigDict(extra="allow", validate_assignment=True)

    schema_version: int = SCHEMA_VERSION
    vad: StageSettings = Field(default_factory=lambda: StageSettings(provider="silero", fallbacks=["energy"]))
    stt: StageSettings = Field(default_factory=lambda: StageSettings(provider="faster-whisper"))
    # The embedded instruct model answers what the skills (in front, `skills_first`) do
    # not; skills are its fallback, so a damaged model still leaves them answering.
    llm: StageSettings = Field(
        default_factory=lambda: StageSettings(
            provider=DEFAULT_LLM,
            fallbacks=[DEFAULT_LLM_FALLBACK],
            fallback_options={DEFAULT_LLM_FALLBACK: dict(DEFAULT_LLM_FALLBACK_OPTIONS)},
        )
    )
    tts: StageSettings = Field(default_factory=lambda: StageSettings(provider="piper"))
    # The end-of-turn model decides at each pause; the silence rule is its fallback.
    turn: StageSettings = Field(default_factory=lambda: StageSettings(provider="smart-turn", fallbacks=["silence"]))
    # The canceller cleans the microphone of VoxDesk's own voice; without it, half duplex.
    echo: StageSettings = Field(default_factory=lambda: StageSettings(provider="webrtc", fallbacks=["off"]))
    # What the wake-word activation listens for ("Hey Mycroft"); without it, push-to-talk
    # and the hotkey still work.
    wake: StageSettings = Field(default_factory=lambda: StageSettings(provider="micro-wake-word", fallbacks=["none"]))
    audio: AudioSettings = Field(default_factory=AudioSettings)
    conversation: ConversationSettings = Field(default_factory=ConversationSettings)
    activation: ActivationSettings = Field(default_factory=ActivationSettings)
    window: WindowSettings = Field(default_factory=WindowSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)

    def stage(self, kind: str) -> StageSettings:
        section = getattr(self, kind)
        assert isinstance(section, StageSettings)
        return section


@dataclass
class LoadResult:
    settings: Settings
    notices: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------- the shape of the settings

_FREE = "free-form"  # a dict whose keys are not settings (provider options)
_Tree = dict[str, Any]  # field → sub-tree (a section), _FREE, or None (a value)


def _schema_tree(model: type[BaseModel]) -> _Tree:
    tree: _Tree = {}
    for name, f in model.model_fields.items():
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            tree[name] = _schema_tree(ann)
        elif typing.get_origin(ann) is dict:
            tree[name] = _FREE
        else:
            tree[name] = None
    return tree


SCHEMA_TREE = _schema_tree(Settings)


def _known_paths(tree: _Tree, prefix: str = "") -> list[str]:
    out: list[str] = []
    for name, sub in tree.items():
        path = prefix + name
        out.append(path)
        if isinstance(sub, dict):
            out += _known_paths(sub, path + ".")
    return out


KNOWN_KEYS = tuple(_known_paths(SCHEMA_TREE))


def suggest_key(key: str) -> str | None:
    """The known setting a mistyped `key` most likely meant."""
    close = difflib.get_close_matches(key, KNOWN_KEYS, n=1, cutoff=0.75)
    return close[0] if close else None


def unknown_key(path: list[str]) -> str | None:
    """The dotted prefix of `path` that names no setting, or None if the path is known
    (or runs into provider options, which are the provider's to check)."""
    node: Any = SCHEMA_TREE
    for i, part in enumerate(path):
        if not isinstance(node, dict):
            return None  # a value or free-form options: not ours to judge below here
        if part not in node:
            return ".".join(path[: i + 1])
        node = node[part]
    return None


def _unknown_in(raw: dict[str, Any], tree: _Tree, prefix: str = "") -> list[str]:
    found: list[str] = []
    for key, value in raw.items():
        if not isinstance(key, str) or key not in tree:
            found.append(f"{prefix}{key}")
        elif isinstance(tree[key], dict) and isinstance(value, dict):
            found += _unknown_in(value, tree[key], f"{prefix}{key}.")
    return found


def _with_suggestion(key: str) -> str:
    hint = suggest_key(key)
    return f"{key} (did you mean {hint}?)" if hint else key


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether `value` nests lists/dicts more than `limit` levels (checked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict):
            children: Iterable[Any] = v.values()
        elif isinstance(v, list):
            children = v
        else:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children)
    return False


def _prune_deep(node: dict[str, Any], tree: _Tree, budget: int, prefix: str = "") -> list[str]:
    """Drop the settings under `node` that nest deeper than `budget`; returns their dotted keys."""
    dropped: list[str] = []
    for key in list(node):
        value = node[key]
        if not too_deep(value, budget):
            continue
        sub = tree.get(key) if isinstance(key, str) else None
        if isinstance(value, dict) and (isinstance(sub, dict) or sub == _FREE):
            # A section or provider options: drop only the offending entries inside.
            dropped += _prune_deep(value, sub if isinstance(sub, dict) else {}, budget - 1, f"{prefix}{key}.")
        else:
            del node[key]
            dropped.append(f"{prefix}{key}")
    return dropped


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
        self._damaged_in_place = False  # a damaged file could not be moved aside when loading
        self._overrides: tuple[dict[str, Any], dict[str, Any]] | None = None

    @property
    def has_overrides(self) -> bool:
        """Whether this run was started with `--set` overrides (a scripted start)."""
        return self._overrides is not None

    def remember_overrides(self, stored: Settings, overridden: Settings) -> None:
        """`--set` values are for this run: `save` puts the stored values back under them
        unless the user has since changed that value (in the settings dialog)."""
        self._overrides = (stored.model_dump(mode="json"), overridden.model_dump(mode="json"))

    def _move_aside(self, why: str) -> str:
        try:
            dest = move_aside(self.path)
        except OSError as exc:
            # A read-only folder: the file stays where it is, untouched, until a save can keep it aside.
            problem, _fix = storage_problem(exc, self.path.parent)
            self._damaged_in_place = True
            return (
                f"settings file {self.path} is {why}; it could not be kept aside ({problem}), "
                "so it is left as it is and defaults are used"
            )
        return f"settings file was {why}; it was kept as {dest} and defaults are used"

    def load(self) -> LoadResult:
        if not self.path.exists():
            return LoadResult(Settings())
        try:
            text = self.path.read_bytes().decode("utf-8")
            raw = json.loads(text) if text.strip() else None
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            why = {UnicodeDecodeError: "not valid text", RecursionError: "nested too deeply to read"}.get(
                type(exc), "damaged (not valid JSON)"
            )
            return LoadResult(Settings(), [self._move_aside(why)])
        except OSError as exc:
            problem, _fix = storage_problem(exc, self.path.parent)
            return LoadResult(
                Settings(),
                [f"settings file {self.path} could not be read ({exc.strerror or problem}) — using defaults"],
            )
        if raw is None:
            return LoadResult(Settings(), [self._move_aside("empty")])
        if not isinstance(raw, dict):
            return LoadResult(Settings(), [self._move_aside("not a settings object")])
        notices = [
            f"setting {key}: nested too deeply — using the default" for key in _prune_deep(raw, SCHEMA_TREE, MAX_DEPTH)
        ]
        version = raw.get("schema_version", SCHEMA_VERSION)
        newer = isinstance(version, int) and version > SCHEMA_VERSION
        if newer:
            notices.append(
                f"settings were written by a newer VoxDesk (schema {version}); unknown options are kept but not used"
            )
            raw = {**raw, "schema_version": SCHEMA_VERSION}
            self._unknown = {"schema_version": version}
        raw = _migrated(raw, version)
        unknown = [] if newer else _unknown_in(raw, SCHEMA_TREE)
        result = validate_leniently(raw)
        self._lossy = bool(notices or result.notices)
        if unknown:  # kept in the model (extra="allow"), so saving keeps them: not lossy
            shown = ", ".join(_with_suggestion(k) for k in unknown[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            notices.append(
                f"settings file {self.path} has settings VoxDesk does not know: {shown}{more} — "
                "they are kept in the file but not used"
            )
        result.notices[:0] = notices
        return result

    def save(self, settings: Settings) -> None:
        data = settings.model_dump(mode="json")
        if self._overrides is not None:
            stored, overridden = self._overrides
            data = _unoverride(stored, overridden, data)
        data = _strip_secrets(data)
        data.update({k: v for k, v in self._unknown.items() if k != "schema_version"})
        if "schema_version" in self._unknown:
            data["schema_version"] = self._unknown["schema_version"]
        try:
            if self._damaged_in_place and self.path.exists():
                move_aside(self.path)  # what could not be read stays with the user
                self._damaged_in_place = False
            if self._lossy and self.path.exists():
                keep_copy(self.path)  # what this version could not read stays with the user
                self._lossy = False
            atomic_write_text(self.path, json.dumps(data, indent=2, sort_keys=False) + "\n")
        except OSError as exc:
            problem, fix = storage_problem(exc, self.path.parent)
            raise VoiceError(
                "settings.save",
                ErrorCode.UNAVAILABLE,
                f"settings not saved to {self.path} ({problem}) — {fix} and apply again",
            ) from exc


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
    path = [p for p in key.strip().split(".") if p]
    deep = False
    try:
        parsed: Any = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    except RecursionError:
        parsed, deep = value, True
    if deep or too_deep(parsed):
        raise VoiceError(
            "settings.set",
            ErrorCode.INVALID_CONFIG,
            f"{'.'.join(path)}: the value is nested too deeply — give a simple value",
        )
    return path, parsed


def apply_overrides(settings: Settings, items: Iterable[str]) -> Settings:
    """Return a copy with `--set` overrides applied; every bad field named at once."""
    data = settings.model_dump(mode="json")
    parsed = [parse_override(item) for item in items]
    unknown = [(".".join(path), bad) for path, _ in parsed if (bad := unknown_key(path)) is not None]
    if unknown:
        raise VoiceError(
            "settings.set",
            ErrorCode.INVALID_CONFIG,
            "; ".join(
                f"unknown setting {key}"
                + (f" — did you mean {hint}?" if (hint := suggest_key(key) or suggest_key(bad)) else "")
                for key, bad in unknown
            ),
        )
    for path, value in parsed:
        if path[-1].lower() in SECRET_KEYS:
            raise VoiceError(
                "settings.set",
                ErrorCode.INVALID_CONFIG,
                "API keys are not settings — store them with the keychain or an environment variable",
            )
        node = data
        for p in path[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise VoiceError("settings.set", ErrorCode.INVALID_CONFIG, f"{'.'.join(path)}: not a section")
            node = nxt
        if path[0] in KINDS and path[1:] == ["provider"] and node.get("provider") != value:
            # A new provider does not inherit the old one's options (later --set options.* still apply).
            node["options"] = {}
        node[path[-1]] = value
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        from app.plugin.registry import format_validation_error

        raise VoiceError("settings.set", ErrorCode.INVALID_CONFIG, format_validation_error(exc)) from None
