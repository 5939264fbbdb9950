"""How fast each language model talks on this computer: measured, remembered, shown.

A spec sheet's tokens per second says nothing about a 2-core laptop, so the model
manager measures it here: the model's provider (whichever declares the model) is
started in its own worker, asked one fixed question twice, and the first few dozen
tokens of each reply are timed (the faster counts: a moment of other work on the
computer should not become the model's figure). The figure is kept per model in the app's data folder
(`model_speed.json`) and shown as "about N words a second here" (`voxdesk models list`
and Settings → Assistant). Measuring loads a second copy of the model, so it runs only
after a download or when the user asks, never at start-up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.model_spec import ModelOption
from app.plugin.provider_api import ChatMessage, LLMProvider
from app.plugin.registry import Registry, get_registry
from app.store.models import get_spec
from app.store.paths import AppPaths

log = logging.getLogger(__name__)

SPEED_FILE = "model_speed.json"
#: Asks for far more than MAX_TOKENS so no model stops early (a request for "a few
#: sentences" gets one short sentence from small models); plain prose, as spoken.
PROMPT = "Tell me a short story about a lighthouse keeper."
#: "A few dozen tokens": enough for a steady rate, short enough for a 3B model on 2 cores.
MAX_TOKENS = 40
#: A rate from fewer tokens than this is noise, not a measurement.
MIN_TOKENS = 8
#: Replies timed; the fastest counts, so a burst of other work on the computer during
#: one of them does not become the model's figure.
RUNS = 2


@dataclass(frozen=True)
class SpeedRecord:
    model_id: str
    #: Words of reply a second once it has started (what a listener waits on).
    words_per_s: float
    #: Streamed pieces (tokens, for llama.cpp) a second once it has started.
    tokens_per_s: float
    #: From the question to the first piece of the reply, with the model loaded (the
    #: first reply's, whose prompt is evaluated from scratch).
    first_token_s: float
    tokens: int
    words: int
    measured_at: str  # ISO 8601, UTC

    def phrase(self) -> str:
        """ "about 12 words a second here" (one decimal below 10, where it matters)."""
        rate = self.words_per_s
        shown = f"{rate:.1f}" if rate < 10 else f"{rate:.0f}"
        return f"about {shown} words a second here"


# -- the stored figures ---------------------------------------------------------------


def speed_file(paths: AppPaths) -> Path:
    return paths.data_dir / SPEED_FILE


def load_speeds(paths: AppPaths) -> dict[str, SpeedRecord]:
    """Every recorded figure, by model id; a missing or unreadable file is no figures."""
    try:
        raw = json.loads(speed_file(paths).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    found: dict[str, SpeedRecord] = {}
    if not isinstance(raw, dict):
        return found
    for model_id, entry in raw.items():
        try:
            found[model_id] = SpeedRecord(**entry)
        except TypeError:  # written by another version: ignore it, the next measure replaces it
            log.debug("ignoring an unreadable speed record for %s", model_id)
    return found


def _write(paths: AppPaths, records: Mapping[str, SpeedRecord]) -> None:
    target = speed_file(paths)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({k: asdict(v) for k, v in records.items()}, indent=2, sort_keys=True), "utf-8")
    os.replace(tmp, target)


def save_speed(paths: AppPaths, record: SpeedRecord) -> None:
    records = load_speeds(paths)
    records[record.model_id] = record
    _write(paths, records)


def forget_speed(paths: AppPaths, model_id: str) -> None:
    """Drop a model's figure (it was deleted: a new download is measured again)."""
    records = load_speeds(paths)
    if records.pop(model_id, None) is not None:
        _write(paths, records)


# -- measuring --------------------------------------------------------------------------


def provider_for(model_id: str, registry: Registry | None = None) -> tuple[str, ModelOption]:
    """(the provider that declares `model_id`, the option that names its model)."""
    reg = registry or get_registry()
    spec = get_spec(model_id)
    for provider in reg.specs():
        if provider.kind == spec.kind and provider.model_option is not None and spec in provider.models:
            return provider.name, provider.model_option
    raise VoiceError(
        "models.speed",
        ErrorCode.NOT_FOUND,
        f"no installed provider can run {spec.id} — install the provider that declares it",
    )


def benchmark_options(model_id: str, option: ModelOption, base: Mapping[str, Any] | None) -> dict[str, Any]:
    """The user's options for the provider (threads, context), pointed at `model_id`."""
    options = dict(base or {})
    options[option.id_option] = model_id
    if option.path_option:
        options[option.path_option] = None  # the id, not a file set for another model
    return options


async def _timed_reply(llm: LLMProvider, max_tokens: int) -> tuple[float, float, int, int]:
    """(first piece after s, rate window s, pieces, words) of one streamed reply, cut at `max_tokens`."""
    start = time.perf_counter()
    first = last = 0.0
    pieces = 0
    text: list[str] = []
    stream = llm.chat([ChatMessage("user", PROMPT)])
    try:
        async for delta in stream:
            if not delta:
                continue
            now = time.perf_counter()
            if pieces == 0:
                first = now
            last = now
            pieces += 1
            text.append(delta)
            if pieces >= max_tokens:
                break
    finally:
        close = getattr(stream, "aclose", None)  # an async generator: closing it stops the generation
        if close is not None:
            await close()
    return first - start, last - first, pieces, len("".join(text).split())


async def measure_speed_async(
    model_id: str, *, options: Mapping[str, Any] | None = None, registry: Registry | None = None
) -> SpeedRecord:
    """Load the model in its provider's worker, then time RUNS short replies (the fastest counts)."""
    reg = registry or get_registry()
    model_id = get_spec(model_id).id
    name, option = provider_for(model_id, reg)
    llm = reg.create("llm", name, benchmark_options(model_id, option, options))
    if not isinstance(llm, LLMProvider):
        raise VoiceError("models.speed", ErrorCode.INVALID_CONFIG, f"{name} is not a language model provider")
    try:
        await llm.warmup()  # loading is not talking: keep it out of the figure
        timings = [await _timed_reply(llm, MAX_TOKENS) for _ in range(RUNS)]
    finally:
        await llm.aclose()
    usable = [t for t in timings if t[2] >= MIN_TOKENS and t[1] > 0]
    if not usable:
        raise VoiceError(
            "models.speed",
            ErrorCode.PROVIDER_ERROR,
            f"{model_id} answered only {max(t[2] for t in timings)} pieces of text — too short to time; try again",
        )
    # n pieces span n-1 intervals after the first; words are spread over all n.
    _, window_s, pieces, words = max(usable, key=lambda t: (t[2] - 1) / t[1])
    per_s = (pieces - 1) / window_s
    # The first reply's wait: the later ones reuse the prompt already evaluated.
    first_s = timings[0][0]
    return SpeedRecord(
        model_id=model_id,
        words_per_s=round(words * per_s / pieces, 2),
        tokens_per_s=round(per_s, 2),
        first_token_s=round(first_s, 3),
        tokens=pieces,
        words=words,
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def measure_speed(
    model_id: str,
    paths: AppPaths,
    *,
    options: Mapping[str, Any] | None = None,
    registry: Registry | None = None,
) -> SpeedRecord:
    """Measure and remember; blocking (seconds), so for a worker thread or the CLI."""
    record = asyncio.run(measure_speed_async(model_id, options=options, registry=registry))
    save_speed(paths, record)
    return record
