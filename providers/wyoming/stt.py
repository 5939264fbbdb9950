"""STT ``wyoming``: speech recognition on a Wyoming server (e.g. wyoming-faster-whisper).

Audio goes out as 16 kHz 16-bit mono chunks while it arrives (``stream``), so when the
user stops speaking only the server's decode is left. Servers that stream transcripts
(``supports_transcript_streaming``) give partials; the others the final text only.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from app.plugin.errors import VoiceError
from app.plugin.provider_api import (
    SAMPLE_RATE,
    Health,
    HealthStatus,
    StageKind,
    STTProvider,
    Transcript,
    validate_audio,
)
from app.plugin.registry import ProviderInfo, ProviderSpec
from providers.wyoming.config import NAME, ConnectTimeout, ServerURI, Timeout

if TYPE_CHECKING:
    from providers.wyoming.client import ServerInfo, WyomingClient

OP = f"stt.{NAME}"
#: What `transcribe` sends per event: 0.5 s (the server writes each to its file as it comes).
SEND_SAMPLES = SAMPLE_RATE // 2
HEALTH_TIMEOUT_S = 3.0


class WyomingSTTConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    uri: ServerURI = Field("tcp://127.0.0.1:10300", description="The server's address, tcp://HOST:PORT")
    model: str = Field("", max_length=200, description="A model the server lists; empty = the server's own choice")
    language: str = Field(
        "",
        max_length=16,
        description="Language code sent to the server; empty = the conversation's language, auto = let it detect",
    )
    timeout_s: Timeout = 15.0
    connect_timeout_s: ConnectTimeout = 3.0


def pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def wire_language(configured: str, conversation: str | None) -> str | None:
    """The language code to send: the setting, else the conversation's; None = server decides."""
    lang = (configured or conversation or "").strip()
    if not lang or lang.lower() == "auto":
        return None
    return lang.split("-")[0].split("_")[0].lower()


class WyomingSTT(STTProvider):
    name: ClassVar[str] = NAME
    kind: ClassVar[StageKind] = "stt"

    def __init__(self, config: WyomingSTTConfig) -> None:
        from providers.wyoming.client import WyomingClient

        self.config = config
        self.client: WyomingClient = WyomingClient(
            OP, config.uri, timeout_s=config.timeout_s, connect_timeout_s=config.connect_timeout_s
        )

    # -- discovery ------------------------------------------------------------
    async def discover(self, *, refresh: bool = True) -> ServerInfo:
        """What the server offers (models, their languages), asked now."""
        return await self.client.describe(refresh=refresh)

    async def list_models(self) -> list[str]:
        return [m.name for m in (await self.discover()).asr_models]

    async def list_languages(self) -> list[str]:
        return sorted({lang for m in (await self.discover()).asr_models for lang in m.languages})

    async def choices(self) -> dict[str, list[str]]:
        """What Settings may offer for this provider's options, as the server lists them."""
        info = await self.discover()
        self.client.require(info, "asr")
        langs = sorted({lang for m in info.asr_models for lang in m.languages})
        return {"model": [m.name for m in info.asr_models], "language": ["auto", *langs]}

    async def warmup(self) -> None:
        """Ask what the server offers; an unreachable one is left to the first turn (and the
        stage's fallback), so a server that comes up later is used without a restart."""
        with contextlib.suppress(VoiceError):
            await self.client.describe(refresh=True)

    async def health(self) -> Health:
        started = time.perf_counter()
        probe = type(self.client)(OP, self.config.uri, timeout_s=HEALTH_TIMEOUT_S, connect_timeout_s=HEALTH_TIMEOUT_S)
        try:
            info = await probe.describe()
            probe.require(info, "asr")
        except VoiceError as err:
            return Health(HealthStatus.DOWN, err.message, time.perf_counter() - started)
        models = ", ".join(m.name for m in info.asr_models[:3]) or "no model listed"
        langs = len({lang for m in info.asr_models for lang in m.languages})
        detail = f"{info.asr_program} at {info.uri}: {models}; {langs} language(s)"
        return Health(HealthStatus.OK, detail, time.perf_counter() - started)

    # -- recognition ----------------------------------------------------------
    async def transcribe(self, audio: np.ndarray, *, language: str | None = None) -> str:
        samples = validate_audio(OP, audio)
        if len(samples) == 0:
            return ""

        async def pieces() -> AsyncIterator[np.ndarray]:
            for i in range(0, len(samples), SEND_SAMPLES):
                yield samples[i : i + SEND_SAMPLES]

        text = ""
        async with contextlib.aclosing(self.stream(pieces(), language=language)) as results:
            async for tr in results:
                if tr.is_final:
                    text = tr.text
        return text

    async def stream(
        self, audio: AsyncIterable[np.ndarray], *, language: str | None = None
    ) -> AsyncGenerator[Transcript, None]:
        async def pcm() -> AsyncIterator[bytes]:
            async for chunk in audio:
                yield pcm16(validate_audio(OP, chunk))

        lang = wire_language(self.config.language, language)
        pieces = self.client.transcribe(pcm(), language=lang, model=self.config.model or None)
        async with contextlib.aclosing(pieces) as results:
            async for piece in results:
                yield Transcript(piece.text, piece.is_final, piece.language or lang)

    async def aclose(self) -> None:
        """Nothing held between requests: each one has its own connection."""


SPEC = ProviderSpec(
    kind="stt",
    name=NAME,
    factory=WyomingSTT,
    config_model=WyomingSTTConfig,
    info=ProviderInfo(
        display_name="Wyoming speech server",
        description="Speech recognition on a Wyoming server you run, e.g. wyoming-faster-whisper for "
        "Home Assistant (tcp://HOST:10300). Audio streams to it while you speak; its models and "
        "languages are read from the server.",
        local=False,
        runs="server",
        needs=("a Wyoming speech-to-text server on your network",),
        streaming=True,
        sample_rates=(SAMPLE_RATE,),
        requires=("wyoming",),
        # `choices()` answers for these options from the server (Settings offers them).
        extra={"protocol": "wyoming", "default_port": 10300, "server_choices": ("model", "language")},
    ),
)
