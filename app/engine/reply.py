"""The reply's stage calls: what the LLM is sent and what of its answer is spoken, one
sentence of TTS, speaking a short text (an apology, a timer), and the gen_ai telemetry
attributes."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from app.engine.speaker import Speaker
from app.engine.spoken_prompt import limits_for
from app.engine.spoken_reply import spoken_only
from app.engine.stages import StageSlot
from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import AudioChunk, LLMProvider, Provider, TTSProvider


def provider_name(slot: StageSlot, provider: Provider) -> str:
    return next(n for n, p in slot.chain if p is provider)


def spoken_llm_reply(deltas: AsyncIterator[str], user_text: str) -> AsyncIterator[str]:
    """The model's answer as it is said: plain speech, cut at a loop or at the spoken-length
    cap (raised when the user asked for more). Ending early closes `deltas`, which stops
    the model generating."""
    return spoken_only(deltas, limits_for(user_text))


def tts_stream(slot: StageSlot, text: str, used: list[str], timeout: float) -> AsyncIterator[AudioChunk]:
    """One sentence through the stage runner: first-output and idle deadlines, retries,
    and fallback to the next voice before any of this sentence's audio was played.
    `used` gets the name of each voice tried, the one that spoke last."""

    async def synth(p: Provider) -> AsyncIterator[AudioChunk]:
        used.append(provider_name(slot, p))
        assert isinstance(p, TTSProvider)
        got = False
        # Closed at once when the listener barges in: a voice on a server releases its
        # connection now, not when the garbage collector finds the generator.
        chunks = p.synthesize(text)
        try:
            async for chunk in chunks:
                if len(chunk.samples):
                    got = True
                    yield chunk
        finally:
            if isinstance(chunks, AsyncGenerator):
                await chunks.aclose()
        if not got and any(ch.isalnum() for ch in text):
            raise VoiceError(
                f"tts.{used[-1]}",
                ErrorCode.PROVIDER_ERROR,
                "the voice produced no audio — pick another voice in Settings",
            )

    return slot.runner.stream(synth, first_output_timeout=timeout, idle_timeout=timeout)


async def speak_text(speaker: Speaker, slot: StageSlot, text: str, limit_s: float) -> None:
    """Say `text` (not part of a reply: an apology, a timer) and wait until it is out."""
    async for chunk in tts_stream(slot, text, [], limit_s):
        speaker.play(chunk)
    await speaker.drain()


def gen_ai_attributes(slot: StageSlot | None, name: str) -> dict[str, Any]:
    """OpenTelemetry gen_ai.* attributes, with token counts where the provider has them."""
    attrs: dict[str, Any] = {"gen_ai.operation.name": "chat", "gen_ai.system": name}
    provider = next((p for n, p in slot.chain if n == name), None) if slot else None
    if not isinstance(provider, LLMProvider):
        return attrs
    usage = provider.usage
    if usage is not None:
        attrs["gen_ai.usage.input_tokens"] = usage.input_tokens
        attrs["gen_ai.usage.output_tokens"] = usage.output_tokens
    if provider.model_name:
        attrs["gen_ai.request.model"] = provider.model_name
    return attrs
