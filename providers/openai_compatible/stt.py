"""Speech-to-text through an OpenAI-compatible ``/audio/transcriptions`` endpoint.

The utterance is sent as a 16 kHz mono 16-bit WAV (multipart upload, like the
OpenAI SDK does); works with OpenAI Whisper, faster-whisper-server / Speaches,
LocalAI, vLLM. The answer may be JSON (``{"text": …}``) or plain text.
"""

from __future__ import annotations

import io
import wave
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.http_client import error_for_response, read_capped, translate_error
from app.plugin.provider_api import SAMPLE_RATE, Health, StageKind, STTProvider, validate_audio
from app.plugin.registry import ProviderInfo, ProviderSpec
from providers.openai_compatible.endpoint import NAME, BaseURL, ConnectTimeout, Endpoint, ExtraHeaders, ReadTimeout

OP = f"stt.{NAME}"


class OpenAICompatibleSTTConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: BaseURL = Field("https://api.openai.com/v1", description="API root, e.g. http://127.0.0.1:8000/v1")
    model: str = Field("whisper-1", min_length=1)
    timeout_s: ReadTimeout = 30.0
    connect_timeout_s: ConnectTimeout = 5.0
    prompt: str = Field("", max_length=1000, description="Words to bias recognition towards")
    extra_headers: ExtraHeaders = Field(default_factory=dict)


def encode_wav(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """float32 mono → 16-bit PCM WAV bytes."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


class OpenAICompatibleSTT(STTProvider):
    name: ClassVar[str] = NAME
    kind: ClassVar[StageKind] = "stt"

    def __init__(self, config: OpenAICompatibleSTTConfig) -> None:
        self.config = config
        self.endpoint = Endpoint("stt", config)

    async def health(self) -> Health:
        return await self.endpoint.health()

    async def list_models(self) -> list[str]:
        return await self.endpoint.list_models()

    async def transcribe(self, audio: np.ndarray, *, language: str | None = None) -> str:
        samples = validate_audio(OP, audio)
        if len(samples) == 0:
            return ""
        data = {"model": self.config.model, "response_format": "json"}
        if language:
            data["language"] = language.split("-")[0]
        if self.config.prompt:
            data["prompt"] = self.config.prompt
        files = {"file": ("speech.wav", encode_wav(samples), "audio/wav")}
        try:
            # Streamed so that the size cap applies while reading, not after.
            async with self.endpoint.client.stream(
                "POST",
                self.endpoint.url("audio/transcriptions"),
                data=data,
                files=files,
                headers=self.endpoint.headers(),
            ) as resp:
                if resp.status_code >= 400:
                    raise await error_for_response(OP, resp)
                body = await read_capped(resp, op=OP)
                ctype = resp.headers.get("content-type", "")
        except VoiceError:
            raise
        except Exception as exc:
            raise translate_error(OP, exc) from None
        return _transcript_text(body, ctype)

    async def aclose(self) -> None:
        await self.endpoint.aclose()


def _transcript_text(body: bytes, content_type: str) -> str:
    import json

    text = body.decode("utf-8", "replace")
    if "json" in content_type or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            raise VoiceError(OP, ErrorCode.PROVIDER_ERROR, "the server sent a malformed transcript") from None
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise VoiceError(OP, ErrorCode.PROVIDER_ERROR, "the transcript has no text field")
        return str(data["text"]).strip()
    return text.strip()


SPEC = ProviderSpec(
    kind="stt",
    name=NAME,
    factory=OpenAICompatibleSTT,
    config_model=OpenAICompatibleSTTConfig,
    info=ProviderInfo(
        display_name="OpenAI-compatible transcription",
        description="Speech-to-text through /v1/audio/transcriptions (OpenAI Whisper, Speaches, LocalAI, "
        "vLLM). Cloud services need an API key (keychain); local servers usually need none.",
        local=False,
        runs="server-or-cloud",
        needs=("an OpenAI-compatible server you run, or a cloud service and its API key",),
        needs_api_key=True,
        streaming=False,
        requires=("httpx",),
        extra={"api_key_optional": True},
    ),
)
