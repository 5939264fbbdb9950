"""Engine errors in words a user understands, with the actions that fix them.

A `VoiceError` says what broke in engine terms (`llm.openai-compatible: UNAVAILABLE: could
not connect …`, `models.resolve: MODEL_MISSING: … run voxdesk models fetch …`):
right for the log, `--json` and a developer, wrong for a window. `explain` turns one
into a `PlainError`: one cause (what the window de-duplicates on), a title and a body in
plain words (a model's size and purpose, never a code, a path or a command), the
actions that do something about it, and one short sentence to say aloud.

No Qt here: the window, the tray's notifications and the spoken apology all use it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from app.plugin.errors import ErrorCode, VoiceError

log = logging.getLogger(__name__)


class Action(StrEnum):
    DOWNLOAD = "download"  # fetch the missing model (with progress)
    OPEN_SETTINGS = "open_settings"  # Settings, at the tab of the stage that failed
    USE_LOCAL_MODEL = "use_local_model"  # switch the assistant to the built-in offline model
    RETRY = "retry"  # check again (the server may be back)


ACTION_LABELS = {
    Action.DOWNLOAD: "Download",
    Action.OPEN_SETTINGS: "Open Settings",
    Action.USE_LOCAL_MODEL: "Use the local model",
    Action.RETRY: "Retry",
}

#: What each stage's model is called, and what VoxDesk needs it for.
MODEL_PURPOSE = {
    "llm": ("language model", "to answer general questions"),
    "stt": ("speech recognition model", "to understand what you say"),
    "tts": ("voice", "to speak its replies"),
    "vad": ("voice detection model", "to hear when you start and stop speaking"),
    "turn": ("turn detection model", "to tell when you have finished a sentence"),
    "wake": ("wake word model", "to hear the wake word"),
    "echo": ("echo canceller", "to hear you while it is speaking"),
}
#: What a server for each stage is called.
SERVER_NAME = {
    "llm": "assistant server",
    "stt": "speech recognition server",
    "tts": "voice server",
}
#: Stages VoxDesk keeps working without (a simpler fallback steps in): their problems are
#: a banner, never a dialog that stops the user.
OPTIONAL_STAGES = {
    "turn": "Until then VoxDesk waits for a pause to know you have finished.",
    "wake": "Push-to-talk and always listening still work.",
    "vad": "Until then VoxDesk uses a simpler loudness rule.",
    "echo": "Until then VoxDesk stops listening while it speaks.",
}
STAGE_NOUN = {
    "llm": "assistant",
    "stt": "speech recognition",
    "tts": "voice",
    "vad": "voice detection",
    "turn": "turn detection",
    "wake": "wake word",
    "echo": "echo cancellation",
    "audio": "sound device",
}

#: Engine words that must never reach a window: the codes, shell commands, file paths.
ENGINE_WORDS = re.compile(
    r"\b(?:" + "|".join(c.value for c in ErrorCode) + r")\b"
    r"|`|\bvoxdesk\s+[a-z-]+|\bpip install\b|(?:^|[\s(\"'])(?:~|[A-Za-z]:)?[/\\][\w.\-]+[/\\]"
)

SPOKEN_DEFAULT = "Sorry, I couldn't do that just now."
SPOKEN_NOT_HEARD = "Sorry, I didn't catch that."


@dataclass(frozen=True, slots=True)
class PlainError:
    cause: str  # the same cause gives the same key: shown once, however often it happens
    stage: str
    provider: str
    title: str
    body: str
    actions: tuple[Action, ...]
    spoken: str
    model_id: str | None = None
    size_mb: int | None = None
    #: VoxDesk keeps working without it: a banner, not a dialog.
    optional: bool = False

    @property
    def text(self) -> str:
        return f"{self.title}. {self.body}"


def has_engine_words(text: str) -> bool:
    """Whether `text` holds an error code, a command or a file path (for the window: no)."""
    return ENGINE_WORDS.search(text) is not None


def size_words(mb: int | None) -> str:
    """491 → "491 MB", 1500 → "1.5 GB"; unknown → ""."""
    if not mb:
        return ""
    return f"{mb / 1000:.1f} GB" if mb >= 1000 else f"{mb} MB"


def _a(words: str) -> str:
    return ("an " if words[:1].lower() in "aeiou" else "a ") + words


def model_in(message: str) -> Any:
    """The catalogue model a MODEL_MISSING message names (`model whisper-tiny.en is not …`,
    `the whisper-base model package is damaged …`), or None."""
    from app.store.models import catalogue

    try:
        known = catalogue()
    except Exception:  # the registry could not be read: no sizes, still plain words
        return None
    for word in re.findall(r"[\w.\-]+", message):
        word = word.strip(".-")
        spec = known.get(word) or next((s for s in known.values() if word in s.aliases and len(word) > 3), None)
        if spec is not None:
            return spec
    return None


def is_local(stage: str, provider: str) -> bool:
    """Whether the provider runs inside VoxDesk (no server to reach)."""
    from app.plugin.registry import get_registry

    try:
        return bool(get_registry().info(stage, provider).local)
    except Exception:
        return True


def _safe(message: str) -> str:
    """The engine's human part when it is already plain, else ""."""
    text = message.strip()
    if not text or has_engine_words(text) or len(text) > 240:
        return ""
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _model_missing(stage: str, provider: str, message: str) -> PlainError:
    spec = model_in(message)
    noun, purpose = MODEL_PURPOSE.get(stage, ("model", "to work"))
    optional = stage in OPTIONAL_STAGES
    after = OPTIONAL_STAGES.get(stage, "")
    spoken = f"The {noun} isn't installed yet."
    if "does not exist" in message and "path" in message:
        return PlainError(
            f"model-path:{stage}:{provider}",
            stage,
            provider,
            f"The {noun} file chosen in Settings is not there any more",
            f"VoxDesk needs it {purpose}. Choose the file again, or clear the choice to use the standard {noun}."
            + (f" {after}" if after else ""),
            (Action.OPEN_SETTINGS,),
            spoken,
            optional=optional,
        )
    if spec is None:
        return PlainError(
            f"model-missing:{stage}:{provider}",
            stage,
            provider,
            f"The {noun} is not installed",
            f"VoxDesk needs {_a(noun)} {purpose}. Choose one in Settings." + (f" {after}" if after else ""),
            (Action.OPEN_SETTINGS,),
            spoken,
            optional=optional,
        )
    size = size_words(spec.approx_mb)
    sized = f"{size} {noun}" if size else noun
    damaged = "damaged" in message
    title = f"The {noun} on this computer is damaged" if damaged else f"The {noun} is not installed"
    first = (
        f"VoxDesk needs it {purpose}; downloading it again ({size}) repairs it."
        if damaged and size
        else f"VoxDesk needs {_a(sized)} {purpose}."
    )
    body = f"{first} It is downloaded once and then works offline." + (f" {after}" if after else "")
    return PlainError(
        f"model-missing:{spec.id}",
        stage,
        provider,
        title,
        body,
        (Action.DOWNLOAD, Action.OPEN_SETTINGS),
        spoken,
        model_id=spec.id,
        size_mb=spec.approx_mb or None,
        optional=optional,
    )


def _unreachable(stage: str, provider: str, code: ErrorCode) -> PlainError:
    server = SERVER_NAME.get(stage, f"{STAGE_NOUN.get(stage, stage)} server")
    slow = code is ErrorCode.TIMEOUT
    if stage == "llm":
        effect = "Your questions can't be answered until it is back."
    elif stage == "stt":
        effect = "VoxDesk can't understand what you say until it is back."
    elif stage == "tts":
        effect = "Replies are shown but not spoken until it is back."
    else:
        effect = OPTIONAL_STAGES.get(stage, "")
    title = f"The {server} is not answering in time" if slow else f"VoxDesk can't reach the {server}"
    check = "Check that the server is running and that its address in Settings is right."
    actions = (Action.RETRY, Action.OPEN_SETTINGS) + ((Action.USE_LOCAL_MODEL,) if stage == "llm" else ())
    if stage == "llm":
        check += " Or use the local model, which works offline."
    spoken = (
        f"The {server} is taking too long to answer right now." if slow else f"I can't reach the {server} right now."
    )
    return PlainError(
        f"unreachable:{stage}:{provider}",
        stage,
        provider,
        title,
        f"{effect} {check}".strip(),
        actions,
        spoken,
        optional=stage in OPTIONAL_STAGES,
    )


def _audio(provider: str, message: str) -> PlainError:
    what = "speaker" if "speaker" in f"{provider} {message}".lower() or "output" in provider else "microphone"
    return PlainError(
        f"audio:{what}",
        "audio",
        provider,
        f"VoxDesk can't use the {what}",
        f"Check that the {what} is connected and not held by another program, or choose another one in Settings.",
        (Action.RETRY, Action.OPEN_SETTINGS),
        f"I can't use the {what}.",
    )


def explain(stage: str, provider: str, code: str | ErrorCode, message: str, *, local: bool | None = None) -> PlainError:
    """One error, as the window shows it. `local`: the provider runs in VoxDesk (no server);
    None asks the registry."""
    try:
        code = ErrorCode(code)
    except ValueError:
        code = ErrorCode.PROVIDER_ERROR
    if code is ErrorCode.MODEL_MISSING:
        return _model_missing(stage, provider, message)
    if code is ErrorCode.AUDIO_DEVICE or stage == "audio":
        return _audio(provider, message)
    local = is_local(stage, provider) if local is None else local
    noun = STAGE_NOUN.get(stage, stage)
    optional = stage in OPTIONAL_STAGES
    server = SERVER_NAME.get(stage, f"{noun} server")
    if code in (ErrorCode.UNAVAILABLE, ErrorCode.TIMEOUT) and not local:
        return _unreachable(stage, provider, code)
    if code is ErrorCode.AUTH:
        return PlainError(
            f"auth:{stage}:{provider}",
            stage,
            provider,
            f"The {server} refused VoxDesk's key",
            "Enter a valid API key for it in Settings." + (" Or use the local model." if stage == "llm" else ""),
            (Action.OPEN_SETTINGS,) + ((Action.USE_LOCAL_MODEL,) if stage == "llm" else ()),
            f"The {server} refused my key.",
            optional=optional,
        )
    if code is ErrorCode.RATE_LIMIT:
        return PlainError(
            f"busy:{stage}:{provider}",
            stage,
            provider,
            f"The {server} is busy",
            "It asked VoxDesk to slow down. Try again in a minute.",
            (Action.RETRY,),
            f"The {server} is busy right now; please try again in a minute.",
            optional=optional,
        )
    if code is ErrorCode.TIMEOUT:
        return PlainError(
            f"slow:{stage}:{provider}",
            stage,
            provider,
            f"The {noun} took too long",
            "Ask again, or choose a smaller, faster model in Settings.",
            (Action.OPEN_SETTINGS,),
            "That took me too long; please ask again.",
            optional=optional,
        )
    if code is ErrorCode.UNAVAILABLE:
        return PlainError(
            f"stopped:{stage}:{provider}",
            stage,
            provider,
            f"The {noun} stopped",
            "VoxDesk starts it again with your next question.",
            (Action.RETRY,),
            f"The {noun} stopped; please ask again.",
            optional=optional,
        )
    if code in (ErrorCode.INVALID_CONFIG, ErrorCode.NOT_FOUND):
        detail = _safe(message)
        return PlainError(
            f"settings:{stage}:{provider}",
            stage,
            provider,
            f"A {noun} setting needs fixing",
            (detail + " " if detail else "") + "Open Settings to fix it.",
            (Action.OPEN_SETTINGS,),
            f"A {noun} setting needs fixing.",
            optional=optional,
        )
    return PlainError(
        f"failed:{stage}:{provider}",
        stage,
        provider,
        f"The {noun} ran into a problem",
        "VoxDesk tries again with your next question. If it keeps happening, choose another one in Settings.",
        (Action.OPEN_SETTINGS,),
        SPOKEN_NOT_HEARD if stage == "stt" else SPOKEN_DEFAULT,
        optional=optional,
    )


def explain_error(stage: str, provider: str, err: VoiceError) -> PlainError:
    return explain(stage, provider, err.code, err.message)


def spoken_sentence(stage: str, provider: str, err: VoiceError) -> str:
    """One concise sentence that says aloud what went wrong in a turn."""
    if stage == "stt" and err.code is not ErrorCode.MODEL_MISSING:
        if err.code in (ErrorCode.UNAVAILABLE, ErrorCode.TIMEOUT) and not is_local(stage, provider):
            return explain_error(stage, provider, err).spoken
        return SPOKEN_NOT_HEARD
    try:
        return explain_error(stage, provider, err).spoken
    except Exception:  # never let the apology itself fail
        log.exception("no plain words for %s", err)
        return SPOKEN_DEFAULT


def health_problem(stage: str, provider: str, *, status: str, detail: str, local: bool) -> PlainError | None:
    """A provider a health check found down, as an error the window shows (None: fine, or
    a local provider whose failure was already reported when it loaded)."""
    if status != "down" or local:
        return None
    code = ErrorCode.AUTH if re.search(r"\b(key|401|403|unauthori[sz]ed|forbidden)\b", detail, re.I) else None
    return explain(stage, provider, code or ErrorCode.UNAVAILABLE, detail, local=False)


def download_failure(exc: BaseException) -> str:
    """Why a model download stopped, and what to do, in plain words (the URL and the
    folder stay in the log)."""
    message = exc.message if isinstance(exc, VoiceError) else str(exc)
    code = exc.code if isinstance(exc, VoiceError) else None
    low = message.lower()
    if "disk full" in low or "no space" in low:
        why = "there is not enough free space on the disk. Free some space, then press Retry"
    elif "damaged or not the expected file" in low:
        why = "the file arrived damaged and was deleted. Press Retry to download it again"
    elif code is ErrorCode.NOT_FOUND:
        why = "the file is no longer at its download address. Choose another model in Settings, or update VoxDesk"
    elif code is ErrorCode.AUTH:
        why = "the download site refused access. Try again later, or choose another model in Settings"
    elif "permission" in low or "cannot create" in low or "cannot move" in low:
        why = "VoxDesk may not write to its model folder. Check the folder's permissions, then press Retry"
    else:
        why = "the connection broke or the site did not answer. Check the internet connection, then press Retry"
    return f"The download did not finish: {why}. What was fetched is kept, so Retry carries on from there."


_FALLBACK = re.compile(r"^(?P<stage>\w+): (?P<old>[\w.\-]+) failed \((?P<code>[A-Z_]+)\); using (?P<new>[\w.\-]+)$")
_NOT_HERE = re.compile(r"^(?P<stage>\w+): (?P<old>[\w.\-]+) is not available here; using (?P<new>[\w.\-]+)$")
_CODE_IN_BRACKETS = re.compile(r"\s*\((?:" + "|".join(c.value for c in ErrorCode) + r")\)")
_COMMAND = re.compile(r"(?:,?\s*(?:or\s+)?(?:run|with)\s+)?`[^`]*`")


def plain_notice(message: str) -> str:
    """An engine notice as the window shows it: no codes or commands ("llm: openai-compatible
    failed (UNAVAILABLE); using skills" → "The assistant is not working right now; …")."""
    if m := _FALLBACK.match(message) or _NOT_HERE.match(message):
        noun = STAGE_NOUN.get(m["stage"], m["stage"])
        return f"The {noun} ({m['old']}) is not working right now; VoxDesk uses {m['new']} instead."
    if not has_engine_words(message):
        return message
    text = _COMMAND.sub("", _CODE_IN_BRACKETS.sub("", message))
    text = " ".join(text.split())
    for a, b in ((" .", "."), (" ,", ","), (":.", "."), (" —.", "."), ("—.", ".")):
        text = text.replace(a, b)
    return text
