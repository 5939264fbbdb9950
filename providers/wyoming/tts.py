"""TTS ``wyoming``: speech from a Wyoming server (e.g. wyoming-piper).

Audio chunks are yielded as the server sends them, at the server's own rate: the
audio sinks resample per chunk (as for Piper's 22.05 kHz voices), so nothing is
resampled here; ``sample_rate`` is the rate the server last spoke at. ``stream`` sends
the reply's text as it comes (synthesize-start/chunk/stop) to servers whose info says
they stream synthesis, so the server splits sentences and starts speaking early.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from app.engine.speech_text import SpeechTextCleaner, clean_for_speech
from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import AudioChunk, Health, HealthStatus, StageKind, TTSProvider
from app.plugin.registry import ProviderInfo, ProviderSpec
from providers.wyoming.config import NAME, ConnectTimeout, ServerURI, Timeout

if TYPE_CHECKING:
    from providers.wyoming.client import ServerInfo, Sound, WyomingClient

log = logging.getLogger(__name__)

OP = f"tts.{NAME}"
#: Until the server has spoken once: Piper's medium voices' rate.
DEFAULT_RATE = 22_050
HEALTH_TIMEOUT_S = 3.0
#: Sample width in bytes → how it is stored, and the value full scale maps to.
_FORMATS: dict[int, tuple[str, float]] = {1: ("u1", 128.0), 2: ("<i2", 32768.0), 4: ("<i4", 2147483648.0)}


class WyomingTTSConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uri: ServerURI = Field("tcp://127.0.0.1:10200", description="The server's address, tcp://HOST:PORT")
    voice: str = Field("", max_length=200, description="A voice the server lists; empty = the server's default")
    speaker: str = Field("", max_length=100, description="Speaker of a multi-speaker voice; empty = its default")
    language: str = Field(
        "", max_length=16, description="With no voice set: ask the server for a voice of this language"
    )
    stream_text: bool = Field(True, description="Send a reply's text as it comes, to servers that stream synthesis")
    timeout_s: Timeout = 15.0
    connect_timeout_s: ConnectTimeout = 3.0


def to_float(sound: Sound) -> np.ndarray:
    """PCM bytes (8/16/32-bit, any channels) → float32 mono."""
    fmt = _FORMATS.get(sound.width)
    if fmt is None:
        bits = sound.width * 8
        raise VoiceError(OP, ErrorCode.PROVIDER_ERROR, f"the server sent {bits}-bit audio, which VoxDesk cannot play")
    dtype, scale = fmt
    frame = sound.width * max(1, sound.channels)
    raw = np.frombuffer(sound.audio[: len(sound.audio) - len(sound.audio) % frame], dtype=dtype).astype(np.float32)
    samples = (raw - 128.0) / scale if sound.width == 1 else raw / scale
    if sound.channels > 1:
        samples = samples.reshape(-1, sound.channels).mean(axis=1).astype(np.float32)
    return samples


class WyomingTTS(TTSProvider):
    name: ClassVar[str] = NAME
    kind: ClassVar[StageKind] = "tts"

    def __init__(self, config: WyomingTTSConfig) -> None:
        from providers.wyoming.client import WyomingClient

        self.config = config
        self.client: WyomingClient = WyomingClient(
            OP, config.uri, timeout_s=config.timeout_s, connect_timeout_s=config.connect_timeout_s
        )
        self._rate: int | None = None

    @property
    def sample_rate(self) -> int:
        return self._rate or DEFAULT_RATE

    # -- discovery ------------------------------------------------------------
    async def discover(self, *, refresh: bool = True) -> ServerInfo:
        """What the server offers (voices, their languages and speakers), asked now."""
        return await self.client.describe(refresh=refresh)

    async def list_voices(self) -> list[str]:
        return [v.name for v in (await self.discover()).voices]

    async def list_languages(self) -> list[str]:
        return sorted({lang for v in (await self.discover()).voices for lang in v.languages})

    async def choices(self) -> dict[str, list[str]]:
        """What Settings may offer for this provider's options, as the server lists them."""
        info = await self.discover()
        self.client.require(info, "tts")
        voice = next((v for v in info.voices if v.name == self.config.voice), None)
        return {
            "voice": [v.name for v in info.voices],
            "language": sorted({lang for v in info.voices for lang in v.languages}),
            "speaker": list(voice.speakers) if voice else [],
        }

    async def warmup(self) -> None:
        """Ask what the server offers and have it speak a word, so it loads the voice now and
        the first sentence is quick. An unreachable server is left to the first turn (and
        the stage's fallback)."""
        try:
            async with contextlib.aclosing(self.synthesize("Hi.")) as chunks:
                async for _ in chunks:
                    pass
        except VoiceError as err:
            log.info("Wyoming voice not warmed: %s", err)

    async def health(self) -> Health:
        started = time.perf_counter()
        probe = type(self.client)(OP, self.config.uri, timeout_s=HEALTH_TIMEOUT_S, connect_timeout_s=HEALTH_TIMEOUT_S)
        try:
            info = await probe.describe()
            probe.require(info, "tts")
            self._voice(info)
        except VoiceError as err:
            return Health(HealthStatus.DOWN, err.message, time.perf_counter() - started)
        voice = self.config.voice or "its default voice"
        stream = ", streams text" if info.streams_synthesis else ""
        detail = f"{info.tts_program} at {info.uri}: {voice} (of {len(info.voices)} voices){stream}"
        return Health(HealthStatus.OK, detail, time.perf_counter() - started)

    # -- synthesis ------------------------------------------------------------
    def _voice(self, info: ServerInfo) -> Any:
        """The voice to ask for; INVALID_CONFIG naming some that exist when it is not offered."""
        from wyoming.tts import SynthesizeVoice

        cfg = self.config
        if cfg.voice:
            names = [v.name for v in info.voices]
            if names and cfg.voice not in names:
                like = [n for n in names if cfg.voice.split("-")[0].lower() in n.lower()][:5] or names[:5]
                raise VoiceError(
                    OP,
                    ErrorCode.INVALID_CONFIG,
                    f"the Wyoming server at {info.uri} has no voice {cfg.voice!r} — pick one it lists "
                    f"(e.g. {', '.join(like)}) in Settings",
                )
            return SynthesizeVoice(name=cfg.voice, speaker=cfg.speaker or None)
        if cfg.language:
            return SynthesizeVoice(language=cfg.language)
        return None

    def _chunk(self, sound: Sound) -> AudioChunk:
        self._rate = sound.rate
        return AudioChunk(to_float(sound), sound.rate)

    async def synthesize(self, text: str) -> AsyncGenerator[AudioChunk, None]:
        spoken = clean_for_speech(text).strip()
        if not spoken:
            return
        voice = self._voice(await self.client.describe())
        async with contextlib.aclosing(self.client.synthesize(spoken, voice)) as sounds:
            async for sound in sounds:
                chunk = self._chunk(sound)
                if len(chunk.samples):
                    yield chunk

    async def stream(self, texts: AsyncIterable[str]) -> AsyncGenerator[AudioChunk, None]:
        info = await self.client.describe()
        if not (self.config.stream_text and info.streams_synthesis):
            async for chunk in super().stream(texts):
                yield chunk
            return
        cleaner = SpeechTextCleaner()

        async def cleaned() -> AsyncIterator[str]:
            async for text in texts:
                said = cleaner.feed(text)
                # The cleaner trims; the server finds sentence ends by the spaces between pieces.
                if said and text[:1].isspace():
                    said = " " + said
                if said and text[-1:].isspace():
                    said += " "
                yield said

        async with contextlib.aclosing(self.client.synthesize_stream(cleaned(), self._voice(info))) as sounds:
            async for sound in sounds:
                chunk = self._chunk(sound)
                if len(chunk.samples):
                    yield chunk

    async def aclose(self) -> None:
        """Nothing held between requests: each one has its own connection."""


SPEC = ProviderSpec(
    kind="tts",
    name=NAME,
    factory=WyomingTTS,
    config_model=WyomingTTSConfig,
    info=ProviderInfo(
        display_name="Wyoming voice server",
        description="Speech from a Wyoming server you run, e.g. wyoming-piper for Home Assistant "
        "(tcp://HOST:10200). Audio plays as the server sends it; its voices and languages are read "
        "from the server.",
        local=False,
        runs="server",
        needs=("a Wyoming text-to-speech server on your network",),
        streaming=True,
        requires=("wyoming",),
        # `choices()` answers for these options from the server (Settings offers them).
        extra={"protocol": "wyoming", "default_port": 10200, "server_choices": ("voice", "language", "speaker")},
    ),
)
