"""Wake word `micro-wake-word`: microWakeWord models (Kevin Ahrendt, Apache-2.0) through
pymicro-wakeword, the detector Home Assistant's voice satellites run.

A streaming TFLite model over 10 ms spectral features, scored every 30 ms and averaged
over a short window; a fraction of a percent of one core. The library is imported on
first use. Its models are Apache-2.0, so any use is fine.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from importlib.util import find_spec
from typing import Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from app.plugin.model_spec import SelfCheck
from app.plugin.provider_api import SAMPLE_RATE, Health, HealthStatus
from app.plugin.registry import ProviderInfo, ProviderSpec
from providers.wake._models import wake_models, wake_option
from providers.wake._streaming import StreamingWakeDetector, cutoff_for, missing_package

OP = "wake.micro-wake-word"
PACKAGE = "pymicro-wakeword"
#: The models shipped with pymicro-wakeword 2.5.0 that `voxdesk bench --wake-word` found to
#: wake on ≥ 90 % of 32 utterances by voices other than the reply voice (espeak-ng and Piper,
#: clean and at 10 dB SNR), with no false wake in 10 min of other speech: hey_mycroft and
#: alexa (29/32 each). Not offered: okay_nabu (21/32: it missed every Piper utterance in
#: noise and espeak-ng's female voices) and hey_jarvis (16/32).
MicroPhrase = Literal["hey_mycroft", "alexa"]
#: Every model the package ships, and how it is said (the bench measures them all).
PHRASE_TEXT: dict[str, str] = {
    "okay_nabu": "Okay Nabu",
    "hey_jarvis": "Hey Jarvis",
    "hey_mycroft": "Hey Mycroft",
    "alexa": "Alexa",
}
#: The offered models as the wheel ships them: {file: sha256}, the config first.
SHIPPED: dict[str, dict[str, str]] = {
    "hey_mycroft": {
        "hey_mycroft.json": "57b2b06fe5fdbbe834a242fabc7af31e4194a550fc382b2c88636a6d62d0d57e",
        "hey_mycroft.tflite": "c2a9b6ed51182db72e014781d5a4ece1929dc232a40b5b4be384f0295f0e1571",
    },
    "alexa": {
        "alexa.json": "1d999798b35b1fe2606465b75ab840be51c1811d2909d5e620cefb6e96f8abd0",
        "alexa.tflite": "9011a8155b04de858c48038529235cbc0e42e9fca05a55bf588cb80a653a723b",
    },
}
UPSTREAM = "https://github.com/esphome/micro-wake-word-models/raw/main/models/v2"
MODELS = wake_models(
    provider="micro-wake-word",
    package=(PACKAGE, "pymicro_wakeword"),
    phrases={p: PHRASE_TEXT[p] for p in get_args(MicroPhrase)},
    files=SHIPPED,
    urls={name: f"{UPSTREAM}/{name}" for files in SHIPPED.values() for name in files},
    licence="Apache-2.0",
    approx_mb=1,
)
#: One feature is 10 ms of audio.
FEATURE_SAMPLES = 160


class MicroWakeWordConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phrase: MicroPhrase = Field(
        "hey_mycroft",
        description="What to say to wake VoxDesk: hey_mycroft (“Hey Mycroft”) or alexa (“Alexa”). Apache-2.0 "
        "models. “Okay Nabu” and “Hey Jarvis” are left out: their models missed too many of the bench's voices.",
    )
    sensitivity: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="0.5 uses the model author's cutoff; higher wakes more easily (and falsely more often), "
        "lower needs a clearer phrase",
    )


class MicroWakeWordDetector(StreamingWakeDetector):
    name = "micro-wake-word"
    #: Phrase end → score over the cutoff (p50 measured by `voxdesk bench --wake-word`): the
    #: 5-score window (150 ms) has to fill with high scores.
    DECISION_LAG_S: ClassVar[Mapping[str, float]] = {
        "okay_nabu": 0.15,
        "hey_jarvis": 0.09,
        "hey_mycroft": 0.0,  # often decided on "Mycro-", before the faint "-ft" ends
        "alexa": 0.2,
    }

    def __init__(self, config: MicroWakeWordConfig) -> None:
        super().__init__()
        self.config = config
        self._model: Any = None
        self._features: Any = None
        self._cutoff: float | None = None

    @property
    def phrase(self) -> str:
        return self.config.phrase

    @property
    def cutoff(self) -> float:
        self._ensure()
        assert self._cutoff is not None
        return self._cutoff

    def _ensure(self) -> Any:
        if self._model is None:
            try:
                from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model
            except ImportError as exc:
                raise missing_package(OP, PACKAGE, exc) from exc
            from app.store.models import resolve_model

            # The wheel's folder, or a downloaded copy (MODEL_MISSING says how to get it).
            folder = resolve_model(f"micro-wake-word-{self.config.phrase}").parent
            model = MicroWakeWord.from_builtin(Model(self.config.phrase), models_dir=folder)
            self._cutoff = cutoff_for(self.config.sensitivity, float(model.probability_cutoff))
            self._features = MicroWakeWordFeatures()
            self._model = model
        return self._model

    async def warmup(self) -> None:
        with self._lock:
            self._ensure()

    def _probabilities(self, pcm: bytes) -> Iterator[tuple[float, int]]:
        model = self._ensure()
        n = len(pcm) // 2
        for i, features in enumerate(self._features.process_streaming(pcm)):
            prob = model.process_streaming_prob(features)
            yield (0.0 if prob is None else float(prob)), min(n, (i + 1) * FEATURE_SAMPLES)

    def _reset_model(self) -> None:
        if self._model is not None:
            # Reloads the interpreter: the model keeps streaming state in its variables.
            self._model.reset()
            self._features.reset()

    async def health(self) -> Health:
        if self._model is not None:
            heard = self.samples_heard // SAMPLE_RATE
            return Health(
                HealthStatus.OK,
                f"listening for “{PHRASE_TEXT[self.phrase]}” (cutoff {self.cutoff:.2f}), {heard} s heard, "
                f"{self.detections} wakes",
            )
        if find_spec("pymicro_wakeword") is None:
            return Health(HealthStatus.DOWN, f"{PACKAGE} is not installed — `pip install {PACKAGE}`")
        return Health(HealthStatus.OK, f"ready to listen for “{PHRASE_TEXT[self.phrase]}”")

    async def aclose(self) -> None:
        with self._lock:
            if self._model is not None:
                self._model.close()
            self._model = self._features = None


def check_micro_wake_word() -> str:
    from importlib.metadata import version

    from pymicro_wakeword import MicroWakeWord, Model

    MicroWakeWord.from_builtin(Model.HEY_MYCROFT).close()
    return version(PACKAGE)


SPEC = ProviderSpec(
    kind="wake",
    name="micro-wake-word",
    factory=MicroWakeWordDetector,
    config_model=MicroWakeWordConfig,
    info=ProviderInfo(
        display_name="microWakeWord",
        description="Wakes on “Hey Mycroft” or “Alexa”, on this machine, with well under 1 % of one core. "
        "Models by Kevin Ahrendt, Apache-2.0.",
        local=True,
        sample_rates=(SAMPLE_RATE,),
        requires=("pymicro_wakeword", "pymicro_features"),
        extra={"phrases": list(get_args(MicroPhrase)), "shipped_phrases": PHRASE_TEXT},
    ),
    self_checks=(SelfCheck(PACKAGE, check_micro_wake_word),),
    models=MODELS,
    model_option=wake_option("micro-wake-word", default="hey_mycroft"),
)
