"""Wake word `open-wake-word`: openWakeWord models (David Scripka) through pyopen-wakeword.

A shared mel-spectrogram and speech-embedding front end (80 ms hops) and a small
classifier per phrase, all TFLite. The code is Apache-2.0 but the upstream models are
CC BY-NC-SA 4.0: non-commercial use only, which the settings say where the phrase is
picked. Wheels exist for Linux (glibc 2.35+), Windows and macOS 15+; elsewhere the
provider is unavailable and says why. The library is imported on first use.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from importlib.util import find_spec
from typing import Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from app.plugin.model_spec import SelfCheck
from app.plugin.provider_api import SAMPLE_RATE, Health, HealthStatus
from app.plugin.registry import ProviderInfo, ProviderSpec
from providers.wake._models import wake_models, wake_option
from providers.wake._streaming import StreamingWakeDetector, cutoff_for, missing_package
from providers.wake._tflite_threads import run_on_one_thread

OP = "wake.open-wake-word"
PACKAGE = "pyopen-wakeword"
LICENCE = "openWakeWord models are CC BY-NC-SA 4.0: non-commercial use only"
#: The models shipped with pyopen-wakeword 1.1.0 that `voxdesk bench --wake-word` found to
#: wake on ≥ 90 % of 32 utterances by voices other than the reply voice (espeak-ng and
#: Piper, clean and at 10 dB SNR): hey_jarvis (29/32). Not offered: okay_nabu (26/32),
#: hey_rhasspy (18/32), alexa (18/32), hey_mycroft (8/32).
OpenPhrase = Literal["hey_jarvis"]
#: Every model the package ships, and how it is said (the bench measures them all).
PHRASE_TEXT: dict[str, str] = {
    "okay_nabu": "Okay Nabu",
    "hey_jarvis": "Hey Jarvis",
    "hey_mycroft": "Hey Mycroft",
    "alexa": "Alexa",
    "hey_rhasspy": "Hey Rhasspy",
}
#: The offered models as the wheel ships them: {file: sha256}, the phrase's classifier
#: first, then the shared front end.
FRONT_END = {
    "melspectrogram.tflite": "96fa0adccb6e8cf95cb14465409a1a2898ee4a96a85bb9ed3c7eb0e68bf163e8",
    "embedding_model.tflite": "c0aea21eb84a4ce90a08c870da41b7a7173b45269e6a3207c71d67c40f3a59d8",
}
SHIPPED: dict[str, dict[str, str]] = {
    "hey_jarvis": {
        "hey_jarvis.tflite": "14bff778604985e1b5c19f0f7bbe477a69cf281d8db34b232b3b972411f710e2",
        **FRONT_END,
    },
}
UPSTREAM = "https://github.com/dscripka/openWakeWord/releases/download/v0.5.1"
MODELS = wake_models(
    provider="open-wake-word",
    package=(PACKAGE, "pyopen_wakeword"),
    phrases={p: PHRASE_TEXT[p] for p in get_args(OpenPhrase)},
    files=SHIPPED,
    urls={
        "hey_jarvis.tflite": f"{UPSTREAM}/hey_jarvis_v0.1.tflite",
        **{name: f"{UPSTREAM}/{name}" for name in FRONT_END},
    },
    licence="CC BY-NC-SA 4.0 (non-commercial use only)",
    approx_mb=4,
)
#: The score the upstream project suggests as its cutoff.
MODEL_CUTOFF = 0.5
#: The front end's hop: 80 ms of 16-bit samples.
HOP_BYTES = 1280 * 2


def _no_wheel_reason() -> str:
    if sys.platform == "darwin":
        return "; its wheels need macOS 15 or later"
    return ""


class OpenWakeWordConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phrase: OpenPhrase = Field(
        "hey_jarvis",
        description=f"What to say to wake VoxDesk: hey_jarvis (“Hey Jarvis”). {LICENCE}.",
    )
    sensitivity: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="0.5 uses the upstream cutoff (0.5); higher wakes more easily (and falsely more often), "
        "lower needs a clearer phrase",
    )


class OpenWakeWordDetector(StreamingWakeDetector):
    name = "open-wake-word"
    #: Phrase end → score over the cutoff (p50 measured by `voxdesk bench --wake-word`).
    DECISION_LAG_S: ClassVar[Mapping[str, float]] = {
        "okay_nabu": 0.45,
        "hey_jarvis": 0.15,
        "hey_mycroft": 0.18,
        "alexa": 0.08,
        "hey_rhasspy": 0.15,
    }

    def __init__(self, config: OpenWakeWordConfig) -> None:
        super().__init__()
        self.config = config
        self._model: Any = None
        self._features: Any = None
        self._pending = b""
        self._cutoff = cutoff_for(config.sensitivity, MODEL_CUTOFF, strictest=0.95, loosest=0.2)

    @property
    def phrase(self) -> str:
        return self.config.phrase

    @property
    def cutoff(self) -> float:
        return self._cutoff

    def _ensure(self) -> Any:
        if self._model is None:
            try:
                from pyopen_wakeword import Model, OpenWakeWord, OpenWakeWordFeatures
            except ImportError as exc:
                raise missing_package(OP, PACKAGE, exc, _no_wheel_reason()) from exc
            from app.store.models import resolve_model

            # The wheel's folder, or a downloaded copy (MODEL_MISSING says how to get it).
            folder = resolve_model(f"open-wake-word-{self.config.phrase}").parent
            features = OpenWakeWordFeatures.from_builtin(models_dir=folder)
            model = OpenWakeWord.from_builtin(Model(self.config.phrase), models_dir=folder)
            run_on_one_thread(features, model)
            # The front end starts by scoring 8 s of silence (~0.4 s of CPU): done here, not
            # on the first microphone frame.
            for _ in features.process_streaming(bytes(HOP_BYTES)):
                pass
            self._features, self._model = features, model
        return self._model

    async def warmup(self) -> None:
        with self._lock:
            self._ensure()

    def _probabilities(self, pcm: bytes) -> Iterator[tuple[float, int]]:
        model = self._ensure()
        n = len(pcm) // 2
        # The front end runs once per 80 ms hop anyway, and shifts its 10 s buffer on every
        # call: handed whole hops, it shifts it 12.5 times a second instead of 31.
        self._pending += pcm
        if len(self._pending) < HOP_BYTES:
            return
        pcm, self._pending = self._pending, b""
        for embedding in self._features.process_streaming(pcm):
            for prob in model.process_streaming(embedding):
                # Always on the newest audio, the end of this call's.
                yield float(prob), n

    def _reset_model(self) -> None:
        # The phrase classifier forgets the embeddings it scored, so the same phrase is not
        # scored again; the front end keeps streaming (its reset re-scores 8 s of silence).
        if self._model is not None:
            self._model.reset()

    async def health(self) -> Health:
        if self._model is not None:
            heard = self.samples_heard // SAMPLE_RATE
            return Health(
                HealthStatus.OK,
                f"listening for “{PHRASE_TEXT[self.phrase]}” (cutoff {self.cutoff:.2f}), {heard} s heard, "
                f"{self.detections} wakes",
            )
        if find_spec("pyopen_wakeword") is None:
            return Health(
                HealthStatus.DOWN, f"{PACKAGE} is not installed{_no_wheel_reason()} — `pip install {PACKAGE}`"
            )
        return Health(HealthStatus.OK, f"ready to listen for “{PHRASE_TEXT[self.phrase]}” ({LICENCE})")

    async def aclose(self) -> None:
        with self._lock:
            if self._model is not None:
                self._model.close()
                self._features.close()
            self._model = self._features = None


def check_open_wake_word() -> str:
    from importlib.metadata import version

    from pyopen_wakeword import Model, OpenWakeWord

    OpenWakeWord.from_builtin(Model.HEY_JARVIS).close()
    return version(PACKAGE)


SPEC = ProviderSpec(
    kind="wake",
    name="open-wake-word",
    factory=OpenWakeWordDetector,
    config_model=OpenWakeWordConfig,
    info=ProviderInfo(
        display_name="openWakeWord",
        description=f"Wakes on “Hey Jarvis”, on this machine, with about 4 % of one core. {LICENCE}; "
        "for commercial use pick microWakeWord (Apache-2.0).",
        local=True,
        sample_rates=(SAMPLE_RATE,),
        requires=("pyopen_wakeword",),
        extra={
            "phrases": list(get_args(OpenPhrase)),
            "shipped_phrases": PHRASE_TEXT,
            "licence": "CC BY-NC-SA 4.0 (models)",
        },
    ),
    self_checks=(SelfCheck(PACKAGE, check_open_wake_word),),
    models=MODELS,
    model_option=wake_option("open-wake-word", default="hey_jarvis"),
)
