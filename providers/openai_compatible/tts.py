"""Text-to-speech through an OpenAI-compatible ``/audio/speech`` endpoint.

The body is read as it arrives and turned into ``AudioChunk``s straight away,
so playback starts before the whole reply audio was generated. ``pcm`` is raw
16-bit little-endian mono at ``sample_rate`` (OpenAI: 24 kHz); ``wav`` carries
its own rate in the header, which is parsed incrementally (streamed WAVs often
have a bogus data length, so it is ignored).

Text goes through ``app.engine.speech_text.clean_for_speech`` when that module exists,
so markdown symbols are not read aloud.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.http_client import MAX_AUDIO_BYTES, error_for_response, iter_capped, translate_error
from app.plugin.provider_api import AudioChunk, Health, StageKind, TTSProvider
from app.plugin.registry import ProviderInfo, ProviderSpec
from providers.openai_compatible.endpoint import NAME, BaseURL, ConnectTimeout, Endpoint, ExtraHeaders, ReadTimeout

OP = f"tts.{NAME}"


class OpenAICompatibleTTSConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: BaseURL = Field("https://api.openai.com/v1", description="API root, e.g. http://127.0.0.1:8880/v1")
    model: str = Field("tts-1", min_length=1)
    voice: str = Field("alloy", min_length=1)
    response_format: Literal["pcm", "wav"] = "pcm"
    sample_rate: int = Field(24_000, ge=8000, le=96_000, description="Rate of pcm responses")
    speed: float = Field(1.0, ge=0.25, le=4.0)
    timeout_s: ReadTimeout = 30.0
    connect_timeout_s: ConnectTimeout = 5.0
    extra_headers: ExtraHeaders = Field(default_factory=dict)


def _cleaner() -> Callable[[str], str]:
    try:
        from app.engine.speech_text import clean_for_speech
    except ImportError:
        return lambda text: text
    return clean_for_speech


class PCMDecoder:
    """Bytes → float32 samples, carrying an odd trailing byte to the next piece."""

    def __init__(self) -> None:
        self._carry = b""

    def feed(self, data: bytes) -> np.ndarray:
        data = self._carry + data
        usable = len(data) - (len(data) % 2)
        self._carry = data[usable:]
        return np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0


class WAVStreamParser:
    """Finds ``fmt `` and ``data`` in a streamed RIFF file; then hands out PCM bytes."""

    def __init__(self) -> None:
        self._buf = b""
        self.sample_rate: int | None = None
        self.channels = 1
        self._in_data = False

    def feed(self, data: bytes) -> bytes:
        if self._in_data:
            return data
        self._buf += data
        if len(self._buf) < 12:
            return b""
        if self._buf[:4] != b"RIFF" or self._buf[8:12] != b"WAVE":
            raise VoiceError(OP, ErrorCode.PROVIDER_ERROR, "the server did not send a WAV file")
        pos = 12
        while len(self._buf) >= pos + 8:
            cid, size = self._buf[pos : pos + 4], struct.unpack("<I", self._buf[pos + 4 : pos + 8])[0]
            if cid == b"data":
                self._in_data = True
                if self.sample_rate is None:
                    raise VoiceError(OP, ErrorCode.PROVIDER_ERROR, "WAV without a format chunk")
                rest, self._buf = self._buf[pos + 8 :], b""
                return rest
            if len(self._buf) < pos + 8 + size:
                return b""  # need more of this chunk
            if cid == b"fmt ":
                fmt, channels, rate, _, _, bits = struct.unpack("<HHIIHH", self._buf[pos + 8 : pos + 24])
                if fmt != 1 or bits != 16:
                    raise VoiceError(
                        OP,
                        ErrorCode.INVALID_CONFIG,
                        "the server sent WAV that is not 16-bit PCM — choose response_format pcm",
                    )
                self.sample_rate, self.channels = rate, channels
            pos += 8 + size + (size % 2)
            if pos > 1 << 20:
                raise VoiceError(OP, ErrorCode.PROVIDER_ERROR, "WAV header too large")
        return b""


class OpenAICompatibleTTS(TTSProvider):
    name: ClassVar[str] = NAME
    kind: ClassVar[StageKind] = "tts"

    def __init__(self, config: OpenAICompatibleTTSConfig) -> None:
        self.config = config
        self.endpoint = Endpoint("tts", config)
        self._clean = _cleaner()

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    async def health(self) -> Health:
        return await self.endpoint.health()

    async def synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        spoken = self._clean(text).strip()
        if not spoken:
            return
        body = {
            "model": self.config.model,
            "input": spoken,
            "voice": self.config.voice,
            "response_format": self.config.response_format,
            "speed": self.config.speed,
        }
        try:
            async with self.endpoint.client.stream(
                "POST", self.endpoint.url("audio/speech"), json=body, headers=self.endpoint.headers()
            ) as resp:
                if resp.status_code >= 400:
                    raise await error_for_response(OP, resp)
                ctype = resp.headers.get("content-type", "")
                if "json" in ctype or ctype.startswith("text/"):
                    raise VoiceError(OP, ErrorCode.PROVIDER_ERROR, "the server sent text instead of audio")
                async with (
                    contextlib.aclosing(iter_capped(resp, op=OP, limit=MAX_AUDIO_BYTES)) as pieces,
                    contextlib.aclosing(self._decode(pieces)) as chunks,
                ):
                    async for chunk in chunks:
                        yield chunk
        except VoiceError:
            raise
        except Exception as exc:
            raise translate_error(OP, exc) from None

    async def _decode(self, pieces: AsyncIterator[bytes]) -> AsyncGenerator[AudioChunk, None]:
        pcm = PCMDecoder()
        wav = WAVStreamParser() if self.config.response_format == "wav" else None
        async for piece in pieces:
            raw = wav.feed(piece) if wav is not None else piece
            samples = pcm.feed(raw)
            if len(samples) == 0:
                continue
            rate = self.config.sample_rate
            if wav is not None and wav.sample_rate:
                rate = wav.sample_rate
                if wav.channels > 1:
                    usable = len(samples) - len(samples) % wav.channels
                    samples = samples[:usable].reshape(-1, wav.channels).mean(axis=1).astype(np.float32)
            yield AudioChunk(samples, rate)

    async def aclose(self) -> None:
        await self.endpoint.aclose()


SPEC = ProviderSpec(
    kind="tts",
    name=NAME,
    factory=OpenAICompatibleTTS,
    config_model=OpenAICompatibleTTSConfig,
    info=ProviderInfo(
        display_name="OpenAI-compatible speech",
        description="Text-to-speech through /v1/audio/speech, streamed (OpenAI, Kokoro-FastAPI, "
        "openedai-speech, LocalAI). Cloud services need an API key (keychain); local servers usually "
        "need none.",
        local=False,
        runs="server-or-cloud",
        needs=("an OpenAI-compatible server you run, or a cloud service and its API key",),
        needs_api_key=True,
        streaming=True,
        requires=("httpx",),
        sample_rates=(24_000,),
        extra={"api_key_optional": True},
    ),
)
