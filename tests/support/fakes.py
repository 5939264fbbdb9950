"""Fakes that let the real engine (`app.engine.session.Session`) run a conversation in milliseconds.

No models, no espeak, no audio devices: every stage is a scripted provider registered
through the real `Registry` (a pydantic config model and a `ProviderInfo` each), and the
microphone and speaker are in-memory objects on a shared `FakeClock`.

Time. `FakeClock` is the session's clock (`Session(clock=...)`): virtual seconds that run
`speed` times faster than the wall clock. The source stamps frames on that timeline, the
sink plays on it, and the fakes' delays (`delay_s`, `first_delay_s`…) are virtual seconds,
so `TurnFinished.timings` come out in the units a test scripts. What the engine does not
read from its clock still runs on the wall clock: `StageRunner` deadlines
(`first_output_deadline_s`), retry back-off and `Event.at`.

Speech. A scripted frame carries its speech probability (`ScriptedFrame.probability`) and
its audio level separately, so a frame can be loud speech, quiet echo or silence whatever
the VAD says. `ScriptedVAD` returns that probability, or, when its config has `probs`,
the next value of that list per call (the engine skips frames while it speaks
half-duplex or is muted, so a per-call list only lines up in scripts without such gaps).

    async with fake_session(stt={"text": "what time is it"}) as h:
        await h.listen([silence(96), speech(384), silence(640)])
        (turn,) = h.log.of(TurnFinished)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, cast

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from app.audio.far_end import FarEndTap
from app.audio.streams import AudioSink, AudioSource
from app.engine.events import (
    AudioLevel,
    ErrorRaised,
    Event,
    FinalTranscript,
    Notice,
    PartialTranscript,
    ProviderSwitched,
    ReplyDelta,
    SpeechEnded,
    SpeechStarted,
    State,
    StateChanged,
    TurnFinished,
)
from app.engine.session import Session, SessionOptions
from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    AudioChunk,
    ChatMessage,
    EchoCanceller,
    Health,
    HealthStatus,
    LLMProvider,
    Provider,
    STTProvider,
    Transcript,
    TTSProvider,
    TurnProvider,
    TurnVerdict,
    VADProvider,
    WakeDetection,
    WakeWordDetector,
)
from app.plugin.registry import ProviderInfo, Registry
from app.store.history import History, Turn
from app.store.paths import resolve_paths
from app.store.settings import Settings, StageSettings

FRAME_S = FRAME_SAMPLES / SAMPLE_RATE  # 32 ms
#: Virtual seconds per wall-clock second in `fake_session` unless a test asks otherwise
#: (VOXDESK_FAKE_SPEED=1 runs the scripts in real time on a slow machine).
DEFAULT_SPEED = float(os.environ.get("VOXDESK_FAKE_SPEED", "4"))
#: Longest a harness helper waits (wall clock) before it fails the test instead of hanging.
WAIT_S = 5.0

P = TypeVar("P", bound=Provider)


# ---------------------------------------------------------------------------- clock


class FakeClock:
    """Monotonic virtual time: `speed` virtual seconds per wall-clock second.

    Call it for the time (it is what `Session(clock=...)` takes); `sleep` and
    `sleep_until` wait in virtual seconds."""

    def __init__(self, speed: float = 1.0, start: float = 1000.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._start = start
        self._real0 = time.monotonic()

    def __call__(self) -> float:
        return self._start + (time.monotonic() - self._real0) * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)

    async def sleep_until(self, at: float) -> None:
        left = at - self()
        if left > 0:
            await asyncio.sleep(left / self.speed)


def _fail(op: str, code: str, message: str, kind: str) -> Exception:
    """The error a fake raises on cue: a VoiceError, or a plain bug (`kind="bug"`)."""
    if kind == "bug":
        return RuntimeError(message)
    return VoiceError(op, ErrorCode(code), message)


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    warmup_fails: bool = Field(False, description="warmup() raises MODEL_MISSING")
    healthy: bool = True


# ---------------------------------------------------------------------------- VAD


class ScriptedFrame(np.ndarray):
    """A float32 frame that knows its scripted speech probability and a tag."""

    probability: float
    tag: str

    def __array_finalize__(self, obj: Any) -> None:
        self.probability = float(getattr(obj, "probability", 0.0))
        self.tag = str(getattr(obj, "tag", ""))


def scripted_frame(probability: float, level: float, tag: str, index: int = 0) -> ScriptedFrame:
    """512 samples: a 220 Hz tone at `level` peak (silence for 0), tagged with its probability."""
    if level > 0:
        n = np.arange(index * FRAME_SAMPLES, (index + 1) * FRAME_SAMPLES)
        samples = (level * np.sin(2 * np.pi * 220 * n / SAMPLE_RATE)).astype(np.float32)
    else:
        samples = np.zeros(FRAME_SAMPLES, np.float32)
    frame = samples.view(ScriptedFrame)
    frame.probability = probability
    frame.tag = tag
    return frame


class VADConfig(_Config):
    probs: list[float] = Field(default_factory=list, description="per-call probabilities; empty: read the frame's")
    after: float = Field(0.0, description="probability once `probs` is used up")
    threshold: float = 0.5
    hangover_ms: int = 300
    fail_calls: list[int] = Field(default_factory=list, description="0-based calls that raise")
    speech_above: float | None = Field(
        None, description="speech (0.9) when the frame's RMS is at least this: for frames that lost their tags"
    )


@dataclass
class VADCall:
    probability: float
    tag: str


class ScriptedVAD(VADProvider):
    name = "fake"

    def __init__(self, cfg: VADConfig, clock: FakeClock) -> None:
        self.cfg = cfg
        self.clock = clock
        self.calls: list[VADCall] = []  # appended from the engine's VAD worker thread
        self.closed = 0

    @property
    def threshold(self) -> float:
        return self.cfg.threshold

    @property
    def hangover_ms(self) -> int:
        return self.cfg.hangover_ms

    def speech_probability(self, frame: np.ndarray) -> float:
        i = len(self.calls)
        tag = str(getattr(frame, "tag", ""))
        if i in self.cfg.fail_calls:
            self.calls.append(VADCall(-1.0, tag))
            raise VoiceError("vad.fake", ErrorCode.PROVIDER_ERROR, f"scripted VAD failure on frame {i}")
        if self.cfg.speech_above is not None:
            p = 0.9 if float(np.sqrt(np.mean(np.square(frame)))) >= self.cfg.speech_above else 0.0
        elif self.cfg.probs:
            p = self.cfg.probs[i] if i < len(self.cfg.probs) else self.cfg.after
        else:
            p = float(getattr(frame, "probability", 0.0))
        self.calls.append(VADCall(p, tag))
        return p

    def tags_seen(self) -> set[str]:
        return {c.tag for c in self.calls}

    async def warmup(self) -> None:
        if self.cfg.warmup_fails:
            raise VoiceError("vad.fake", ErrorCode.MODEL_MISSING, "scripted: no model here")

    async def health(self) -> Health:
        return Health(HealthStatus.OK if self.cfg.healthy else HealthStatus.DOWN)

    async def aclose(self) -> None:
        self.closed += 1


# ---------------------------------------------------------------------------- STT


class STTConfig(_Config):
    text: str = "what time is it"
    texts: list[str] = Field(default_factory=list, description="per call (the last repeats); overrides text")
    delay_s: float = Field(0.0, description="virtual seconds each transcribe() takes")
    partials: list[str] = Field(default_factory=list, description="partial texts, one every `partial_every` frames")
    partial_every: int = Field(4, ge=1)
    fail_calls: list[int] = Field(default_factory=list, description="0-based transcribe() calls that raise")
    fail_all: bool = False
    error_code: str = "PROVIDER_ERROR"
    error_kind: Literal["voice", "bug"] = "voice"
    detected: str | None = Field(None, description="the language it says it heard (detected_language)")


@dataclass
class STTCall:
    audio: np.ndarray
    language: str | None
    at: float
    done_at: float | None = None
    cancelled: bool = False

    @property
    def speech_frames(self) -> int:
        """Frames of the audio that were louder than silence."""
        frames = len(self.audio) // FRAME_SAMPLES
        shaped = self.audio[: frames * FRAME_SAMPLES].reshape(frames, FRAME_SAMPLES)
        return int(np.count_nonzero(np.abs(shaped).max(axis=1) > 1e-4))


class FakeSTT(STTProvider):
    name = "fake"

    def __init__(self, cfg: STTConfig, clock: FakeClock, registered_as: str = "fake") -> None:
        self.cfg = cfg
        self.clock = clock
        self.registered_as = registered_as
        self.calls: list[STTCall] = []
        self.streamed_frames: list[int] = []  # frames each partial stream received
        self.closed = 0

    async def transcribe(self, audio: np.ndarray, *, language: str | None = None) -> str:
        i = len(self.calls)
        call = STTCall(np.array(audio, np.float32, copy=True), language, self.clock())
        self.calls.append(call)
        try:
            await self.clock.sleep(self.cfg.delay_s)
        except asyncio.CancelledError:
            call.cancelled = True
            raise
        call.done_at = self.clock()
        if self.cfg.fail_all or i in self.cfg.fail_calls:
            raise _fail(
                f"stt.{self.registered_as}",
                self.cfg.error_code,
                f"scripted STT failure on call {i}",
                self.cfg.error_kind,
            )
        if self.cfg.texts:
            return self.cfg.texts[min(i, len(self.cfg.texts) - 1)]
        return self.cfg.text

    async def stream(
        self, audio: AsyncIterable[np.ndarray], *, language: str | None = None
    ) -> AsyncIterator[Transcript]:
        index = len(self.streamed_frames)
        self.streamed_frames.append(0)
        parts: list[np.ndarray] = []
        said = 0
        async for chunk in audio:
            parts.append(chunk)
            self.streamed_frames[index] += 1
            if said < len(self.cfg.partials) and len(parts) % self.cfg.partial_every == 0:
                yield Transcript(self.cfg.partials[said], is_final=False)
                said += 1
        buf = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        yield Transcript(await self.transcribe(buf, language=language), is_final=True)

    @property
    def detected_language(self) -> str | None:
        return self.cfg.detected

    async def warmup(self) -> None:
        if self.cfg.warmup_fails:
            raise VoiceError(f"stt.{self.registered_as}", ErrorCode.MODEL_MISSING, "scripted: no model here")

    async def health(self) -> Health:
        return Health(HealthStatus.OK if self.cfg.healthy else HealthStatus.DOWN)

    async def aclose(self) -> None:
        self.closed += 1


# ---------------------------------------------------------------------------- LLM


class LLMConfig(_Config):
    replies: list[list[str]] = Field(
        default_factory=lambda: [["Hello there. ", "How can I help you today?"]],
        description="deltas per call (the last repeats)",
    )
    first_delay_s: float = Field(0.0, description="virtual seconds before the first delta")
    first_delays: list[float] = Field(default_factory=list, description="per call (the last repeats)")
    delay_s: float = Field(0.0, description="virtual seconds before each later delta")
    fail: Literal["none", "before_first", "after_first", "hang", "empty"] = "none"
    fail_calls: list[int] | None = Field(None, description="0-based calls that fail; None: every call")
    error_code: str = "PROVIDER_ERROR"
    error_kind: Literal["voice", "bug"] = "voice"


@dataclass
class LLMCall:
    messages: list[ChatMessage]
    at: float
    sent: list[str] = field(default_factory=list)
    finished: bool = False
    cancelled: bool = False  # the consumer stopped it (cancel or aclose) before the end
    ended_at: float | None = None


class FakeLLM(LLMProvider):
    name = "fake"
    #: Raised by `prime` (set on the class before the session starts).
    prime_error: Exception | None = None

    def __init__(self, cfg: LLMConfig, clock: FakeClock, registered_as: str = "fake") -> None:
        self.cfg = cfg
        self.clock = clock
        self.registered_as = registered_as
        self.calls: list[LLMCall] = []
        self.closed = 0
        #: Messages the session primed the model's cache with (not turns, not in `calls`).
        self.primed: list[list[ChatMessage]] = []

    async def prime(self, messages: list[ChatMessage]) -> None:
        self.primed.append(list(messages))
        if self.prime_error is not None:
            raise self.prime_error

    def _fails(self, i: int) -> bool:
        return self.cfg.fail != "none" and (self.cfg.fail_calls is None or i in self.cfg.fail_calls)

    def _error(self, i: int) -> Exception:
        return _fail(
            f"llm.{self.registered_as}", self.cfg.error_code, f"scripted LLM failure on call {i}", self.cfg.error_kind
        )

    async def chat(self, messages: list[ChatMessage]) -> AsyncIterator[str]:
        i = len(self.calls)
        call = LLMCall(list(messages), self.clock())
        self.calls.append(call)
        fails = self._fails(i)
        reply = self.cfg.replies[min(i, len(self.cfg.replies) - 1)]
        try:
            if fails and self.cfg.fail == "before_first":
                raise self._error(i)
            if fails and self.cfg.fail == "hang":
                await asyncio.Event().wait()
            if fails and self.cfg.fail == "empty":
                reply = []
            first = (
                self.cfg.first_delays[min(i, len(self.cfg.first_delays) - 1)]
                if self.cfg.first_delays
                else self.cfg.first_delay_s
            )
            for k, delta in enumerate(reply):
                await self.clock.sleep(first if k == 0 else self.cfg.delay_s)
                if fails and self.cfg.fail == "after_first" and k == 1:
                    raise self._error(i)
                call.sent.append(delta)
                yield delta
            call.finished = True
        except (asyncio.CancelledError, GeneratorExit):
            call.cancelled = True
            raise
        finally:
            call.ended_at = self.clock()

    async def warmup(self) -> None:
        if self.cfg.warmup_fails:
            raise VoiceError(f"llm.{self.registered_as}", ErrorCode.MODEL_MISSING, "scripted: no model here")

    async def health(self) -> Health:
        return Health(HealthStatus.OK if self.cfg.healthy else HealthStatus.DOWN)

    async def aclose(self) -> None:
        self.closed += 1


# ---------------------------------------------------------------------------- TTS


class TTSConfig(_Config):
    sample_rate: int = Field(16_000, description="also tells which voice spoke (give fallbacks another)")
    seconds: float = Field(0.2, description="virtual seconds of tone per synthesize() call")
    chunks: int = Field(2, ge=1)
    level: float = 0.05
    first_delay_s: float = 0.0
    fail: Literal["none", "raise", "hang", "empty"] = "none"
    fail_calls: list[int] | None = Field(None, description="0-based calls that fail; None: every call")
    error_code: str = "PROVIDER_ERROR"


@dataclass
class TTSCall:
    text: str
    at: float
    chunks: int = 0


class ToneTTS(TTSProvider):
    name = "fake"

    def __init__(self, cfg: TTSConfig, clock: FakeClock, registered_as: str = "fake") -> None:
        self.cfg = cfg
        self.clock = clock
        self.registered_as = registered_as
        self.calls: list[TTSCall] = []
        self.closed = 0

    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate

    @property
    def texts(self) -> list[str]:
        return [c.text for c in self.calls]

    async def synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        i = len(self.calls)
        call = TTSCall(text, self.clock())
        self.calls.append(call)
        fails = self.cfg.fail != "none" and (self.cfg.fail_calls is None or i in self.cfg.fail_calls)
        if fails and self.cfg.fail == "raise":
            raise VoiceError(
                f"tts.{self.registered_as}", ErrorCode(self.cfg.error_code), f"scripted TTS failure on call {i}"
            )
        if fails and self.cfg.fail == "hang":
            await asyncio.Event().wait()
        await self.clock.sleep(self.cfg.first_delay_s)
        if fails and self.cfg.fail == "empty":
            yield AudioChunk(np.zeros(0, np.float32), self.sample_rate)
            return
        rate = self.sample_rate
        per = max(1, round(self.cfg.seconds * rate / self.cfg.chunks))
        for k in range(self.cfg.chunks):
            n = np.arange(k * per, (k + 1) * per)
            tone = (self.cfg.level * np.sin(2 * np.pi * 330 * n / rate)).astype(np.float32)
            call.chunks += 1
            yield AudioChunk(tone, rate)

    async def warmup(self) -> None:
        if self.cfg.warmup_fails:
            raise VoiceError(f"tts.{self.registered_as}", ErrorCode.MODEL_MISSING, "scripted: no voice here")

    async def health(self) -> Health:
        return Health(HealthStatus.OK if self.cfg.healthy else HealthStatus.DOWN)

    async def aclose(self) -> None:
        self.closed += 1


# ---------------------------------------------------------------------------- turn detector


class TurnConfig(_Config):
    finished: bool | None = Field(None, description="every answer; None: no opinion (the silence rule)")
    answers: list[bool | None] | None = Field(None, description="answers in order (then `finished`)")
    delay_s: float = Field(0.0, description="virtual seconds each answer takes")
    fail: bool = False


class ScriptedTurn(TurnProvider):
    """Answers from a script after `delay_s` on the fake clock; `asked` records the
    length (in samples) of each utterance it was asked about."""

    name = "fake"

    def __init__(self, cfg: TurnConfig, clock: FakeClock) -> None:
        self.cfg = cfg
        self.clock = clock
        self.asked: list[int] = []
        self.closed = 0

    async def predict(self, audio: np.ndarray, *, transcript: str | None = None) -> TurnVerdict:
        i = len(self.asked)
        self.asked.append(len(audio))
        await self.clock.sleep(self.cfg.delay_s)
        if self.cfg.fail:
            raise VoiceError("turn.fake", ErrorCode.PROVIDER_ERROR, f"scripted turn failure on call {i}")
        answers = self.cfg.answers or []
        finished = answers[i] if i < len(answers) else self.cfg.finished
        return TurnVerdict(finished, None if finished is None else float(finished))

    async def health(self) -> Health:
        return Health(HealthStatus.OK)

    async def aclose(self) -> None:
        self.closed += 1


class EchoConfig(_Config):
    cancels: bool = Field(True, description="False: a pass-through, like the `off` canceller")
    fail: bool = Field(False, description="raise on every block (a canceller that crashes)")


class PassEcho(EchoCanceller):
    """Passes the microphone on: a fake microphone carries no echo, so a perfect canceller
    has nothing to remove. `processed` counts the samples it saw."""

    name = "fake"

    def __init__(self, cfg: EchoConfig) -> None:
        self.cfg = cfg
        self.cancels_echo = cfg.cancels  # type: ignore[misc]
        self.processed = 0
        self.closed = 0

    def process(self, near: np.ndarray, far: np.ndarray) -> np.ndarray:
        if self.cfg.fail:
            raise VoiceError("echo.fake", ErrorCode.PROVIDER_ERROR, "scripted canceller failure")
        self.processed += len(near)
        return near

    async def health(self) -> Health:
        return Health(HealthStatus.OK)

    async def aclose(self) -> None:
        self.closed += 1


class WakeConfig(_Config):
    on_tag: str = Field("wake", description="a frame with this tag ends the wake phrase")
    phrase: str = "okay_nabu"
    fail: bool = Field(False, description="raise on every frame (a detector that crashes)")


class TaggedWake(WakeWordDetector):
    """Hears the wake phrase in frames tagged `on_tag` (scripted sources tag their frames),
    on the first frame after them."""

    name = "fake"

    def __init__(self, cfg: WakeConfig) -> None:
        self.cfg = cfg
        self.fed = 0
        self.resets = 0
        self.closed = 0
        self._in_phrase = False

    @property
    def phrases(self) -> tuple[str, ...]:
        return (self.cfg.phrase,)

    def process(self, audio: np.ndarray) -> WakeDetection | None:
        if self.cfg.fail:
            raise VoiceError("wake.fake", ErrorCode.PROVIDER_ERROR, "scripted wake-word failure")
        self.fed += len(audio)
        tagged = str(getattr(audio, "tag", "")) == self.cfg.on_tag
        ended, self._in_phrase = self._in_phrase and not tagged, tagged
        # Like a real detector: it decides on the frame after the phrase ended.
        return WakeDetection(self.cfg.phrase, 0.97, ended_ago_s=len(audio) / SAMPLE_RATE) if ended else None

    def reset(self) -> None:
        self.resets += 1
        self._in_phrase = False

    async def health(self) -> Health:
        return Health(HealthStatus.OK)

    async def aclose(self) -> None:
        self.closed += 1


# ---------------------------------------------------------------------------- skills


class FakeSkills(LLMProvider):
    """Quick answers (the `QuickAnswers` capability) from a table; `fire(message)` is a
    timer going off, through the hook the session set."""

    name = "skills"

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = {k.lower(): v for k, v in answers.items()}
        self.on_timer: Callable[[str], Awaitable[None]] | None = None
        self.closed = 0

    def try_answer(self, text: str) -> str | None:
        return self.answers.get(text.strip().lower())

    async def fire(self, message: str) -> None:
        assert self.on_timer is not None, "the session did not wire the timer hook"
        await self.on_timer(message)

    async def chat(self, messages: list[ChatMessage]) -> AsyncIterator[str]:
        yield "I only know quick answers."

    async def health(self) -> Health:
        return Health(HealthStatus.OK)

    async def aclose(self) -> None:
        self.closed += 1


# ---------------------------------------------------------------------------- registry

#: The names every fake is registered under: the chosen provider and a fallback.
FAKE_NAMES = ("fake", "backup")


def register_fakes(registry: Registry, clock: FakeClock, *, replace: bool = False) -> Registry:
    """Register a fake VAD, STT, LLM, TTS, turn detector and echo canceller as "fake" and
    "backup" (same classes, own configs)."""
    for name in FAKE_NAMES:

        def vad(cfg: Any) -> Provider:
            return ScriptedVAD(cast(VADConfig, cfg), clock)

        def stt(cfg: Any, _name: str = name) -> Provider:
            return FakeSTT(cast(STTConfig, cfg), clock, _name)

        def llm(cfg: Any, _name: str = name) -> Provider:
            return FakeLLM(cast(LLMConfig, cfg), clock, _name)

        def tts(cfg: Any, _name: str = name) -> Provider:
            return ToneTTS(cast(TTSConfig, cfg), clock, _name)

        def turn(cfg: Any) -> Provider:
            return ScriptedTurn(cast(TurnConfig, cfg), clock)

        def echo(cfg: Any) -> Provider:
            return PassEcho(cast(EchoConfig, cfg))

        registry.register(
            "vad",
            name,
            vad,
            config_model=VADConfig,
            replace=replace,
            info=ProviderInfo("Scripted VAD", "test double: scripted probabilities"),
        )
        registry.register(
            "stt",
            name,
            stt,
            config_model=STTConfig,
            replace=replace,
            info=ProviderInfo("Fake STT", "test double: fixed text", streaming=True),
        )
        registry.register(
            "llm",
            name,
            llm,
            config_model=LLMConfig,
            replace=replace,
            info=ProviderInfo("Fake LLM", "test double: scripted deltas", streaming=True),
        )
        registry.register(
            "tts",
            name,
            tts,
            config_model=TTSConfig,
            replace=replace,
            info=ProviderInfo("Tone TTS", "test double: short tones", streaming=True),
        )
        registry.register(
            "turn",
            name,
            turn,
            config_model=TurnConfig,
            replace=replace,
            info=ProviderInfo("Scripted turn detector", "test double: scripted answers"),
        )
        registry.register(
            "echo",
            name,
            echo,
            config_model=EchoConfig,
            replace=replace,
            info=ProviderInfo("Fake echo canceller", "test double: passes the microphone on"),
        )
        registry.register(
            "wake",
            name,
            TaggedWake,
            config_model=WakeConfig,
            replace=replace,
            info=ProviderInfo("Tagged wake word", "test double: hears the phrase in tagged frames"),
        )
    return registry


# ---------------------------------------------------------------------------- audio source


@dataclass(frozen=True)
class Frames:
    """A run of scripted frames, all with one speech probability and level."""

    count: int
    probability: float
    level: float
    tag: str


@dataclass(frozen=True)
class WaitFor:
    """Hold the microphone (no frames) until `predicate()` holds; then go on from "now"."""

    predicate: Callable[[], bool]
    timeout_s: float = WAIT_S  # wall clock; the script goes on (and the test's asserts fail) after it


Step = Frames | WaitFor


def _frames_in(ms: float) -> int:
    return max(1, round(ms / 1000 / FRAME_S))


def speech(ms: float = 384, *, probability: float = 0.9, level: float = 0.5, tag: str = "speech") -> Frames:
    return Frames(_frames_in(ms), probability, level, tag)


def silence(ms: float = 320, *, tag: str = "silence") -> Frames:
    return Frames(_frames_in(ms), 0.0, 0.0, tag)


class MemorySource(AudioSource):
    """A microphone that plays a script on the clock's timeline.

    Frame k of a run is stamped with the end of its 32 ms on the virtual timeline and
    handed over when the clock reaches it (at `speed`× real time); a `WaitFor` step
    pauses, then the timeline restarts from the clock. After the script the source
    ends (like a file) or, with `hold=True`, stays open silently until stopped
    (like a device)."""

    def __init__(self, script: Sequence[Step], clock: FakeClock, *, hold: bool = False) -> None:
        self.script = list(script)
        self.clock = clock
        self.hold = hold
        self.yielded: list[tuple[float, ScriptedFrame]] = []  # (stamp, frame)
        self.step_started_at: list[float] = []  # stamp where each step began
        self.waits_timed_out = 0
        self.starts = 0
        self.stops = 0
        self.on_error: Callable[[BaseException], None] | None = None  # wired by the session
        self.on_notice: Callable[[str], None] | None = None
        self.dropped = 0
        self._stopped = asyncio.Event()
        self._done = asyncio.Event()
        self._step = 0  # where the script is (it resumes there after a stop)
        self._in_step = 0

    @property
    def dropped_frames(self) -> int:
        return self.dropped

    async def start(self) -> None:
        self.starts += 1
        self._stopped.clear()

    async def stop(self) -> None:
        self.stops += 1
        self._stopped.set()

    def stamps(self, tag: str) -> list[float]:
        return [t for t, f in self.yielded if f.tag == tag]

    async def frames(self) -> AsyncIterator[tuple[float, np.ndarray]]:
        # Stopped and started again (mute, push-to-talk), the script goes on where it was.
        t = self.clock()
        while self._step < len(self.script):
            step = self.script[self._step]
            if isinstance(step, WaitFor):
                give_up = time.monotonic() + step.timeout_s
                while not step.predicate():
                    if time.monotonic() > give_up:
                        self.waits_timed_out += 1
                        break
                    if self._stopped.is_set():
                        return
                    await asyncio.sleep(0.001)
                t = max(t, self.clock())
                self.step_started_at.append(t)
                self._step += 1
                continue
            if self._in_step == 0:
                self.step_started_at.append(t)
            while self._in_step < step.count:
                t += FRAME_S
                await self.clock.sleep_until(t)
                if self._stopped.is_set():
                    return
                frame = scripted_frame(step.probability, step.level, step.tag, len(self.yielded))
                self._in_step += 1
                self.yielded.append((t, frame))
                yield t, frame
            self._step, self._in_step = self._step + 1, 0
        self._done.set()
        if self.hold:
            await self._stopped.wait()

    async def script_done(self) -> None:
        """Until every scripted frame was handed over (a held source stays open)."""
        await asyncio.wait_for(self._done.wait(), WAIT_S)


# ---------------------------------------------------------------------------- audio sink


@dataclass
class Played:
    at: float  # virtual time its first sample sounds
    samples: np.ndarray
    sample_rate: int
    queued_at: float  # virtual time play() was called

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate

    @property
    def end(self) -> float:
        return self.at + self.duration_s


class MemorySink(AudioSink):
    """A speaker that plays queued chunks back to back on the clock and records them.

    `drain()` waits (virtually) until the queue has played; `flush()` silences it at
    once; `is_playing` is true while queued audio is sounding."""

    def __init__(self, clock: FakeClock, *, closes_when_idle: bool = False, fail_start: bool = False) -> None:
        self.clock = clock
        self.closes_when_idle = closes_when_idle
        self.fail_start = fail_start
        self.played: list[Played] = []
        self.flushes: list[float] = []
        self.marks: list[float] = []
        self.starts = 0
        self.stops = 0
        self.on_error: Callable[[BaseException], None] | None = None  # wired by the session
        self.on_notice: Callable[[str], None] | None = None
        self._until = float("-inf")
        self._first: float | None = None
        self._armed = False

    async def start(self) -> None:
        self.starts += 1
        if self.fail_start:
            raise VoiceError("audio.output", ErrorCode.AUDIO_DEVICE, "scripted: no speaker here")

    async def stop(self) -> None:
        self.stops += 1
        self._until = min(self._until, self.clock())

    def play(self, chunk: AudioChunk) -> None:
        now = self.clock()
        at = max(now, self._until)
        self.played.append(Played(at, np.array(chunk.samples, copy=True), chunk.sample_rate, now))
        self._until = at + chunk.duration_s
        if self._armed:
            self._first, self._armed = at, False

    def flush(self) -> None:
        now = self.clock()
        self.flushes.append(now)
        self._until = min(self._until, now)

    async def drain(self) -> None:
        while (left := self._until - self.clock()) > 0:
            await self.clock.sleep(min(left, 0.02))

    def mark(self) -> None:
        self.marks.append(self.clock())
        self._first, self._armed = None, True

    @property
    def first_sample_time(self) -> float | None:
        return self._first

    @property
    def is_playing(self) -> bool:
        return self.clock() < self._until

    def audible(self) -> list[Played]:
        """Chunks that started sounding before a flush cut them off."""
        out: list[Played] = []
        for p in self.played:
            cut = next((f for f in self.flushes if f >= p.at - 1e-9), None)
            if cut is None or p.at < cut:
                out.append(p)
        return out

    def rates(self) -> list[int]:
        return [p.sample_rate for p in self.played]


class _DueTap(FarEndTap):
    """Hands over each chunk once the clock reaches it, as a device callback would."""

    def __init__(self) -> None:
        super().__init__()
        self.queued: list[Played] = []

    def take(self, end_at: float, n: int) -> np.ndarray:
        while self.queued and self.queued[0].at <= end_at:
            p = self.queued.pop(0)
            self.push(p.at, np.asarray(p.samples, np.float32), p.sample_rate)
        return super().take(end_at, n)


class TappedSink(MemorySink):
    """A `MemorySink` that, like a device speaker, hands what it plays to a `FarEndTap`
    (stamped with the fake clock when it sounds): the echo canceller's reference."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        super().__init__(clock or FakeClock())
        self.tap = self.far_end = _DueTap()

    def play(self, chunk: AudioChunk) -> None:
        super().play(chunk)
        self.tap.queued.append(self.played[-1])

    def flush(self) -> None:
        super().flush()
        self.tap.queued.clear()


# ---------------------------------------------------------------------------- events


def label(event: Event) -> str | None:
    """A short name for order checks; None for events that order checks ignore (levels)."""
    if isinstance(event, StateChanged):
        return f"state:{event.state.value}"
    if isinstance(event, ErrorRaised):
        return f"error:{event.stage}"
    names: dict[type, str] = {
        SpeechStarted: "speech_started",
        PartialTranscript: "partial",
        SpeechEnded: "speech_ended",
        FinalTranscript: "final",
        ReplyDelta: "delta",
        TurnFinished: "turn_finished",
        Notice: "notice",
        ProviderSwitched: "switched",
    }
    if isinstance(event, AudioLevel):
        return None
    return names.get(type(event), type(event).__name__)


E = TypeVar("E", bound=Event)


class EventLog:
    """Every event the session emits, stamped with the fake clock when it arrived."""

    def __init__(self, session: Session, clock: FakeClock) -> None:
        self.clock = clock
        self.stamped: list[tuple[float, Event]] = []
        self._changed = asyncio.Event()
        session.add_listener(self._on_event)

    def _on_event(self, event: Event) -> None:
        self.stamped.append((self.clock(), event))
        self._changed.set()

    @property
    def events(self) -> list[Event]:
        return [e for _, e in self.stamped]

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    def at(self, event: Event) -> float:
        return next(t for t, e in self.stamped if e is event)

    def labels(self, *, collapse: bool = True, skip: Sequence[str] = ("notice",)) -> list[str]:
        """Labels in order; with `collapse`, runs of one label count once ("delta" × 5 → "delta")."""
        out: list[str] = []
        for e in self.events:
            name = label(e)
            if name is None or name in skip:
                continue
            if collapse and out and out[-1] == name:
                continue
            out.append(name)
        return out

    def index(self, name: str, start: int = 0) -> int:
        """Position of the first event labelled `name` (uncollapsed, levels included)."""
        for i, e in enumerate(self.events[start:], start):
            if label(e) == name:
                return i
        raise AssertionError(f"no {name} event in {self.labels()}")

    def last_index(self, name: str) -> int:
        found = [i for i, e in enumerate(self.events) if label(e) == name]
        if not found:
            raise AssertionError(f"no {name} event in {self.labels()}")
        return found[-1]

    async def wait_for(self, predicate: Callable[[Event], bool], timeout: float = WAIT_S) -> Event:
        """The first event (already seen or still to come) that matches `predicate`."""
        seen = 0
        async with asyncio.timeout(timeout):
            while True:
                for e in self.events[seen:]:
                    if predicate(e):
                        return e
                seen = len(self.stamped)
                self._changed.clear()
                await self._changed.wait()

    async def wait_for_kind(self, kind: type[E], count: int = 1, timeout: float = WAIT_S) -> list[E]:
        async with asyncio.timeout(timeout):
            while len(self.of(kind)) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.of(kind)


def state_is(state: State) -> Callable[[Event], bool]:
    """`EventLog.wait_for` predicate: the session entered `state`."""
    return lambda e: isinstance(e, StateChanged) and e.state is state


async def until(predicate: Callable[[], bool], timeout: float = WAIT_S) -> None:
    """Poll `predicate` (every wall-clock millisecond) until it holds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.001)


# ---------------------------------------------------------------------------- harness


def fake_settings(  # noqa: PLR0913 - keyword-only options, one per stage
    *,
    vad: dict[str, Any] | None = None,
    stt: dict[str, Any] | None = None,
    llm: dict[str, Any] | None = None,
    tts: dict[str, Any] | None = None,
    turn: dict[str, Any] | None = None,
    echo: dict[str, Any] | None = None,
    wake: dict[str, Any] | None = None,
    backups: dict[str, dict[str, Any]] | None = None,
    **conversation: Any,
) -> Settings:
    """Settings that choose the "fake" provider for every stage; `backups` adds a
    "backup" fallback per stage with its options; the rest goes to `conversation`.

    `activation_<key>` goes to the activation section (`activation_mode="push_to_talk"`).
    Conversation defaults are shortened for speed: 96 ms of speech starts a turn,
    320 ms of silence ends it; skills are off (the fake registry has none)."""
    s = Settings()
    s.telemetry.enabled = False
    options = {"vad": vad, "stt": stt, "llm": llm, "tts": tts, "turn": turn, "echo": echo, "wake": wake}
    for kind, opts in options.items():
        backup = (backups or {}).get(kind)
        setattr(
            s,
            kind,
            StageSettings(
                provider="fake",
                options=dict(opts or {}),
                fallbacks=["backup"] if backup is not None else [],
                fallback_options={"backup": dict(backup)} if backup is not None else {},
            ),
        )
    conv: dict[str, Any] = {
        "min_speech_ms": 96,
        "endpoint_silence_ms": 320,
        "skills_first": False,
        "first_output_deadline_s": 2.0,
        **conversation,
    }
    activation = {k.removeprefix("activation_"): conv.pop(k) for k in list(conv) if k.startswith("activation_")}
    for key, value in conv.items():
        setattr(s.conversation, key, value)
    for key, value in activation.items():
        setattr(s.activation, key, value)
    return s


class Harness:
    """One running `Session` on fakes, with its clock, event log, speaker and microphone."""

    def __init__(self, session: Session, clock: FakeClock, log: EventLog, sink: MemorySink | None) -> None:
        self.session = session
        self.clock = clock
        self.log = log
        self.sink = sink
        self.source: MemorySource | None = None

    @property
    def speaker(self) -> MemorySink:
        assert self.sink is not None, "this harness has no speaker"
        return self.sink

    @property
    def mic(self) -> MemorySource:
        assert self.source is not None, "no microphone yet: call listen()"
        return self.source

    def closed_counts(self) -> list[int]:
        """How often each provider of every stage was closed."""
        return [int(getattr(p, "closed", -1)) for slot in self.session.stages.slots.values() for _, p in slot.chain]

    def provider(self, kind: str, cls: type[P], name: str = "fake") -> P:
        for n, p in self.session.stages[kind].chain:
            if n == name:
                assert isinstance(p, cls), p
                return p
        raise AssertionError(f"no {kind} provider {name!r} in {self.session.stages[kind].chain}")

    @property
    def vad(self) -> ScriptedVAD:
        return self.provider("vad", ScriptedVAD)

    @property
    def stt(self) -> FakeSTT:
        return self.provider("stt", FakeSTT)

    @property
    def llm(self) -> FakeLLM:
        return self.provider("llm", FakeLLM)

    @property
    def tts(self) -> ToneTTS:
        return self.provider("tts", ToneTTS)

    def backup(self, kind: str, cls: type[P]) -> P:
        return self.provider(kind, cls, "backup")

    async def listen(self, script: Sequence[Step], *, hold: bool = False, wait: bool = True) -> MemorySource:
        """Plug in a microphone that plays `script`; with `wait`, return once it has played
        (for a source that ends: once capture is over) and no turn is running."""
        source = MemorySource(script, self.clock, hold=hold)
        self.source = source
        await self.session.set_audio(source, self.sink)
        if wait:
            await self.settle()
        return source

    async def settle(self) -> None:
        """Until the script has played and the session has no turn running."""
        async with asyncio.timeout(WAIT_S):
            if self.source is not None:
                if self.source.hold:
                    await self.source.script_done()
                else:
                    await self.session.wait_capture_done()
            await self.session.wait_idle()

    def history(self) -> list[Turn]:
        h = self.session.history
        cid = h.current_conversation
        return [] if cid is None else h.turns(cid)


@contextlib.asynccontextmanager
async def fake_session(  # noqa: PLR0913 - keyword-only knobs of the test harness
    settings: Settings | None = None,
    *,
    speed: float = DEFAULT_SPEED,
    sink: bool | MemorySink = True,
    listener: Callable[[Event], None] | None = None,
    skills: dict[str, str] | None = None,
    session_options: SessionOptions | None = None,
    **options: Any,
) -> AsyncIterator[Harness]:
    """A started `Session` on a fresh registry of fakes (`options` go to `fake_settings`),
    an in-memory speaker (`sink=False`: none), closed on exit. `skills` registers a
    `FakeSkills` answering that table (the session owns it: `h.session.skills`)."""
    clock = FakeClock(speed)
    registry = register_fakes(Registry(discover=False), clock)
    if skills is not None:
        table = dict(skills)
        registry.register(
            "llm",
            "skills",
            lambda _cfg: FakeSkills(table),
            config_model=_Config,
            info=ProviderInfo("Fake skills", "test double: quick answers", extra={"quick_answers": True}),
        )
    out = sink if isinstance(sink, MemorySink) else (MemorySink(clock) if sink else None)
    if isinstance(sink, MemorySink):
        sink.clock = clock
    session = Session(
        settings or fake_settings(**options),
        resolve_paths().ensure(),
        registry=registry,
        sink=out,
        clock=clock,
        sleep=clock.sleep,
        options=session_options,
    )
    if listener is not None:  # before the log's own: it must not keep events from later listeners
        session.add_listener(listener)
    log = EventLog(session, clock)
    harness = Harness(session, clock, log, out)
    try:
        await session.start()
        await asyncio.wait_for(session.ready.wait(), WAIT_S)
        yield harness
    finally:
        await session.aclose()


def reopen_history(session: Session) -> list[Turn]:
    """Every turn on disk, as a fresh `History` reads the file (after the session closed)."""
    with History(session.paths.history_db) as h:
        return [t for c in h.list_conversations() for t in h.turns(c.id)]


__all__ = [
    "DEFAULT_SPEED",
    "FRAME_S",
    "FakeClock",
    "FakeLLM",
    "FakeSTT",
    "FakeSkills",
    "Harness",
    "MemorySink",
    "MemorySource",
    "ScriptedTurn",
    "ScriptedVAD",
    "ToneTTS",
    "WaitFor",
    "fake_session",
    "fake_settings",
    "register_fakes",
    "reopen_history",
    "silence",
    "speech",
    "state_is",
    "until",
]
