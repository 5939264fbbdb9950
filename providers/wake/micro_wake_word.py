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
            model = MicroWakeWord.from_builtin(Model(self.config.phrase))
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
)
