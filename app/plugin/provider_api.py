"""What every provider implements, per stage.

The engine only talks to these interfaces. Audio inside the engine is always
float32 mono numpy arrays; the VAD/STT side runs at 16 kHz in 512-sample frames,
TTS returns whatever rate its voice has and says so on each chunk.

Every blocking call (model inference) must run off the event loop: providers use
`run_blocking` (a worker thread) or a worker process, never compute inline in a
coroutine.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any, ClassVar, Literal, Protocol, TypeVar, runtime_checkable

import numpy as np

SAMPLE_RATE = 16_000
FRAME_SAMPLES = 512  # 32 ms at 16 kHz — Silero's native frame

StageKind = Literal["vad", "stt", "llm", "tts", "turn", "echo", "wake"]
KINDS: tuple[StageKind, ...] = ("vad", "stt", "llm", "tts", "turn", "echo", "wake")

T = TypeVar("T")


class HealthStatus(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    DOWN = "down"


class HealthLevel(IntEnum):
    """Numeric form for the `voxdesk.provider.health` gauge."""

    DOWN = 0
    DEGRADED = 1
    OK = 2


@dataclass(frozen=True, slots=True)
class Health:
    status: HealthStatus
    detail: str = ""
    latency_s: float = 0.0
    checked_at: float = field(default_factory=time.time)

    @property
    def level(self) -> HealthLevel:
        return HealthLevel[self.status.name]


@dataclass(frozen=True, slots=True)
class AudioChunk:
    samples: np.ndarray  # float32 mono, -1..1
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate if self.sample_rate else 0.0


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    is_final: bool
    language: str | None = None


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


async def run_blocking(fn: Callable[..., T], *args: Any) -> T:
    """Run blocking inference in the default worker pool so the loop stays free."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


class Provider(ABC):
    """Common life cycle: cheap construction, `warmup()` loads, `aclose()` frees."""

    kind: ClassVar[StageKind]
    name: ClassVar[str]

    async def warmup(self) -> None:  # noqa: B027 - optional hook
        """Load models / open connections ahead of the first turn."""

    @abstractmethod
    async def health(self) -> Health: ...

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release models, threads, sockets. Safe to call twice."""


class VADProvider(Provider):
    kind: ClassVar[StageKind] = "vad"

    @property
    def threshold(self) -> float:
        """Probability at or above which a frame counts as speech (depends on the model's scores)."""
        return 0.5

    @property
    def hangover_ms(self) -> int:
        """How long a dip below the threshold is still speech."""
        return 300

    @abstractmethod
    def speech_probability(self, frame: np.ndarray) -> float:
        """Probability that one 512-sample 16 kHz frame holds speech. Cheap, sync."""

    def reset(self) -> None:
        """Forget recurrent state (new stream)."""

    async def stream(self, frames: AsyncIterable[np.ndarray]) -> AsyncIterator[float]:
        """Speech probability per frame, in order."""
        async for frame in frames:
            yield await run_blocking(self.speech_probability, frame)


class STTProvider(Provider):
    kind: ClassVar[StageKind] = "stt"

    @abstractmethod
    async def transcribe(self, audio: np.ndarray, *, language: str | None = None) -> str:
        """Final transcript of a whole 16 kHz mono utterance."""

    async def stream(
        self, audio: AsyncIterable[np.ndarray], *, language: str | None = None
    ) -> AsyncIterator[Transcript]:
        """Partials while audio arrives, then one final. Default: final only."""
        parts = [chunk async for chunk in audio]
        buf = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        yield Transcript(await self.transcribe(buf, language=language), is_final=True)


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Token counts of the last reply (for the gen_ai.usage.* telemetry attributes)."""

    input_tokens: int = 0
    output_tokens: int = 0


class LLMProvider(Provider):
    kind: ClassVar[StageKind] = "llm"

    @property
    def usage(self) -> TokenUsage | None:
        """Token counts of the last reply, where the provider knows them."""
        return None

    @property
    def model_name(self) -> str | None:
        """The model asked for (gen_ai.request.model), where the provider has one."""
        return None

    @abstractmethod
    def chat(self, messages: list[ChatMessage]) -> AsyncIterator[str]:
        """Stream reply text deltas. Cancelling the consumer must stop generation."""


TimerHook = Callable[[str], Awaitable[None]]


@runtime_checkable
class QuickAnswers(Protocol):
    """A responder that answers some requests at once, before the LLM (the skills).

    `try_answer` returns the spoken answer or None (pass it on). Timers it sets call
    `on_timer` with their message when they fire; the session sets it and speaks it."""

    on_timer: TimerHook | None

    def try_answer(self, text: str) -> str | None: ...


@runtime_checkable
class PromptPriming(Protocol):
    """An LLM that keeps a prompt cache: `prime` evaluates the start of a prompt (the
    system prompt) ahead of the first turn, so that turn only evaluates its own words."""

    async def prime(self, messages: list[ChatMessage]) -> None: ...


@dataclass(frozen=True, slots=True)
class TurnVerdict:
    """A turn detector's view of a pause: has the user finished speaking?

    `finished` is None when the detector has no opinion: the endpointer then keeps to
    its silence rule. `sure` says whether an "unfinished" is worth the long wait (a
    doubtful one waits only the silence rule). `probability` (that the turn is over) is
    for telemetry."""

    finished: bool | None
    probability: float | None = None
    sure: bool = True


class TurnProvider(Provider):
    """Decides at a pause whether the user has finished their turn (end-of-turn detection).

    Called with the utterance so far (16 kHz mono, the pause included) once silence
    begins; it must answer fast (tens of ms) and off the event loop."""

    kind: ClassVar[StageKind] = "turn"

    @abstractmethod
    async def predict(self, audio: np.ndarray, *, transcript: str | None = None) -> TurnVerdict:
        """The verdict on `audio` (the utterance so far); `transcript` is its partial text, if any."""


#: The echo canceller's block: 10 ms at 16 kHz. `EchoCanceller.process` takes multiples of it.
ECHO_BLOCK = 160


class EchoCanceller(Provider):
    """Removes the assistant's own voice, played through the speakers, from the microphone
    (acoustic echo cancellation), and optionally noise.

    `process(near, far)` gets equal-length 16 kHz mono float32 blocks, a multiple of
    `ECHO_BLOCK` samples: `near` is what the microphone heard, `far` what was handed to
    the speaker over the same span (its echo arrives later: the canceller finds the
    delay). Blocking and stateful: the engine calls it from one worker thread, in order."""

    kind: ClassVar[StageKind] = "echo"
    #: False for a pass-through: no echo is removed, so the engine keeps to half duplex.
    cancels_echo: ClassVar[bool] = True

    @abstractmethod
    def process(self, near: np.ndarray, far: np.ndarray) -> np.ndarray:
        """`near` without the echo of `far` (same length and dtype)."""

    def set_delay_hint(self, delay_ms: float) -> None:
        """The devices' own output + input latency: a start for the delay estimate."""

    def reset(self) -> None:
        """Forget the echo path (another device, another room)."""


@dataclass(frozen=True, slots=True)
class WakeDetection:
    """A wake phrase just ended in the audio fed to `WakeWordDetector.process`."""

    phrase: str  # the phrase's id, e.g. "okay_nabu"
    probability: float  # the model's score for it, 0..1
    #: How far before the end of the audio just fed the phrase ended, in seconds (models
    #: decide a few frames late; the engine times "wake word → listening" from here).
    ended_ago_s: float = 0.0


class WakeWordDetector(Provider):
    """Listens for a wake phrase ("okay nabu") on the microphone stream.

    `process` gets the capture stream in order (16 kHz mono float32, any length, usually
    one 512-sample frame) and says when a phrase has just been heard. Blocking and
    stateful: the engine calls it from one worker thread, in order, with the microphone
    open the whole time, so it must be cheap (a few % of one core)."""

    kind: ClassVar[StageKind] = "wake"
    #: False for `none`: nothing is listened for, so the wake-word activation is unavailable.
    listens: ClassVar[bool] = True

    @property
    @abstractmethod
    def phrases(self) -> tuple[str, ...]:
        """The phrase ids this detector listens for."""

    @abstractmethod
    def process(self, audio: np.ndarray) -> WakeDetection | None:
        """Feed the next stretch of the stream; a detection when a phrase ended in it."""

    def reset(self) -> None:
        """Forget the stream so far (after a detection, or when the stream restarts)."""


class TTSProvider(Provider):
    kind: ClassVar[StageKind] = "tts"

    @property
    @abstractmethod
    def sample_rate(self) -> int: ...

    @abstractmethod
    def synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        """Audio for `text`, first chunk as early as possible."""

    async def stream(self, texts: AsyncIterable[str]) -> AsyncIterator[AudioChunk]:
        async for text in texts:
            async for chunk in self.synthesize(text):
                yield chunk


def validate_audio(op: str, audio: np.ndarray, *, min_samples: int = 0) -> np.ndarray:
    """Shared input guard: mono float32, finite, clipped. Raises VoiceError if unusable."""
    from app.plugin.errors import ErrorCode, VoiceError

    arr = np.asarray(audio)
    if arr.ndim == 2:
        # Stereo or (n, 1): average channels rather than reject.
        axis = 1 if arr.shape[0] >= arr.shape[1] else 0
        arr = arr.mean(axis=axis)
    if arr.ndim != 1:
        raise VoiceError(op, ErrorCode.INVALID_CONFIG, f"audio must be mono samples, got shape {arr.shape}")
    if arr.dtype.kind in "iu":
        scale = float(np.iinfo(arr.dtype).max)
        arr = arr.astype(np.float32) / scale
    arr = np.nan_to_num(arr.astype(np.float32, copy=False), nan=0.0, posinf=1.0, neginf=-1.0)
    np.clip(arr, -1.0, 1.0, out=arr)
    if len(arr) < min_samples:
        raise VoiceError(op, ErrorCode.INVALID_CONFIG, f"audio too short ({len(arr)} samples) — speak for longer")
    return arr
