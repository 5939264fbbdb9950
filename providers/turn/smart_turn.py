"""Turn detector `smart-turn`: Pipecat's Smart Turn v3.2 end-of-turn model on ONNX Runtime.

At a pause the engine hands over the utterance so far; the model hears how it was said
(intonation, a trailing "and…", a half-finished clause) and gives the probability that
the user has finished. The endpointer then ends a finished turn after a short silence
and waits longer on an unfinished one. One call is ~25 ms on one core: it runs on this
provider's own thread (not niced — the decision is on the critical path), never on
the event loop.

The model file ships in the pipecat-ai 1.14 wheel, read as data (nothing of pipecat is
imported); the features are `smart_turn_features`, vendored from the same wheel.
onnxruntime is imported on first use only.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.model_spec import ModelFile, ModelOption, ModelPackage, ModelSpec, SelfCheck
from app.plugin.provider_api import SAMPLE_RATE, Health, HealthStatus, TurnProvider, TurnVerdict, validate_audio
from app.plugin.registry import ProviderInfo, ProviderSpec
from app.store.models import resolve_model

log = logging.getLogger(__name__)

OP = "turn.smart-turn"
MODEL_ID = "smart-turn-v3.2"
MODEL_FILE = "smart-turn-v3.2-cpu.onnx"
MODEL_SHA256 = "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f"
MODEL_SIZE = 8_679_182
PIPECAT_VERSION = "1.14.0"
#: The model hears the last 8 s of the utterance (what it was trained on).
WINDOW_SAMPLES = 8 * SAMPLE_RATE
MIN_SAMPLES = SAMPLE_RATE // 4  # a quarter second: nothing to judge
#: The languages Smart Turn v3 was trained on.
_LANGUAGES = "ar bn zh da nl de en fi fr hi id it ja ko mr no pl pt ru es tr uk vi"
LANGUAGES = tuple(_LANGUAGES.split())


class SmartTurnConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(MODEL_ID, description="Model id, or the path of a Smart Turn v3 .onnx file")
    threshold: float = Field(
        0.5, gt=0.0, lt=1.0, description="The turn is finished when the model's probability is at least this"
    )
    sure_below: float = Field(
        0.3,
        ge=0.0,
        lt=1.0,
        description="Below this probability the sentence surely goes on: wait the whole patience. "
        "Lower it to answer sooner when the model is in doubt (then the usual pause decides)",
    )
    cpu_threads: int = Field(1, ge=1, le=8, description="Threads for one decision (one is fastest with other work)")


class SmartTurn(TurnProvider):
    name = "smart-turn"

    def __init__(self, config: SmartTurnConfig) -> None:
        self.config = config
        self._session: Any = None
        self._model_path: Path | None = None
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def model_path(self) -> Path:
        model = self.config.model
        if model.endswith(".onnx") or "/" in model:
            return resolve_model(MODEL_ID, model)
        try:
            return resolve_model(model)
        except VoiceError as exc:
            raise VoiceError(OP, exc.code, exc.message) from None

    def _ensure_session(self) -> Any:
        if self._session is not None:
            return self._session
        with self._lock:
            if self._session is not None:
                return self._session
            path = self.model_path()
            try:
                import onnxruntime as ort
            except ImportError as exc:
                raise VoiceError(
                    OP,
                    ErrorCode.UNAVAILABLE,
                    f"onnxruntime is not installed ({exc}) — `pip install onnxruntime`, or choose the "
                    "silence turn detector in Settings → Voice detection",
                ) from exc
            options = ort.SessionOptions()
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.inter_op_num_threads = 1
            options.intra_op_num_threads = self.config.cpu_threads
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            try:
                session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime raises its own types for a bad file
                raise VoiceError(
                    OP,
                    ErrorCode.PROVIDER_ERROR,
                    f"the turn model {path} could not be loaded ({exc}) — run `voxdesk models verify`, "
                    f"fetch it again (`voxdesk models fetch {MODEL_ID}`) or choose the silence detector",
                ) from exc
            self._session, self._model_path = session, path
            return session

    def _infer(self, audio: np.ndarray) -> float:
        from providers.turn.smart_turn_features import compute_whisper_log_mel_features

        session = self._ensure_session()
        tail = audio[-WINDOW_SAMPLES:]
        if len(tail) < WINDOW_SAMPLES:  # the model expects the speech at the end of its window
            tail = np.pad(tail, (WINDOW_SAMPLES - len(tail), 0))
        features = compute_whisper_log_mel_features(tail, do_normalize=True)[np.newaxis]
        try:
            out = session.run(None, {"input_features": features})
        except Exception as exc:
            raise VoiceError(OP, ErrorCode.PROVIDER_ERROR, f"the turn model failed ({exc})") from exc
        return float(np.asarray(out[0]).reshape(-1)[0])

    async def _run(self, audio: np.ndarray) -> float:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="smart-turn")
        return await asyncio.wrap_future(self._pool.submit(self._infer, audio))

    async def warmup(self) -> None:
        # The first run builds ONNX Runtime's kernels (about twice as slow): do it now.
        await self._run(np.zeros(SAMPLE_RATE, np.float32))

    async def predict(self, audio: np.ndarray, *, transcript: str | None = None) -> TurnVerdict:
        samples = validate_audio(OP, audio)
        if len(samples) < MIN_SAMPLES:
            return TurnVerdict(None)
        probability = await self._run(samples)
        finished = probability >= self.config.threshold
        return TurnVerdict(finished, probability, sure=finished or probability < self.config.sure_below)

    async def health(self) -> Health:
        if self._session is not None:
            return Health(HealthStatus.OK, f"model loaded from {self._model_path}")
        try:
            path = self.model_path()
        except VoiceError as exc:
            return Health(HealthStatus.DOWN, f"{exc.message}; turns end on the silence rule meanwhile")
        from importlib.util import find_spec

        if find_spec("onnxruntime") is None:
            return Health(HealthStatus.DOWN, "onnxruntime is not installed — `pip install onnxruntime`")
        return Health(HealthStatus.OK, f"model found at {path}; loads on first use")

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
            await asyncio.to_thread(pool.shutdown, True)  # one call is ~25 ms
        self._session = None


def check_onnxruntime() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


MODEL = ModelSpec(
    id=MODEL_ID,
    kind="turn",
    description="Smart Turn v3.2 (CPU) — hears whether a sentence is finished, in 23 languages",
    files=(
        ModelFile(
            MODEL_FILE,
            f"https://huggingface.co/pipecat-ai/smart-turn-v3/resolve/main/{MODEL_FILE}",
            sha256=MODEL_SHA256,
            size=MODEL_SIZE,
        ),
    ),
    licence="BSD-2-Clause",
    main=MODEL_FILE,
    approx_mb=9,
    memory_mb=40,
    package=ModelPackage(
        f"pipecat-ai=={PIPECAT_VERSION}",
        sha256={MODEL_FILE: MODEL_SHA256},
        # Data only: found through the wheel's metadata, never imported.
        parts=(("pipecat-ai", f"pipecat/audio/turn/smart_turn/data/{MODEL_FILE}"),),
        version=PIPECAT_VERSION,
        no_deps=True,
    ),
    aliases=("smart-turn", "smart-turn-v3"),
)

SPEC = ProviderSpec(
    kind="turn",
    name="smart-turn",
    factory=SmartTurn,
    config_model=SmartTurnConfig,
    info=ProviderInfo(
        display_name="Smart Turn v3.2",
        description="A small end-of-turn model: answers as soon as a sentence sounds finished, and waits "
        'when it sounds unfinished ("Set a timer for … ten minutes").',
        local=True,
        languages=LANGUAGES,
        sample_rates=(SAMPLE_RATE,),
        requires=("onnxruntime",),
    ),
    models=(MODEL,),
    model_option=ModelOption("model", default=MODEL_ID, path_suffixes=(".onnx",)),
    self_checks=(SelfCheck("onnxruntime", check_onnxruntime),),
)
