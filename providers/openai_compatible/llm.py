"""Chat with any OpenAI-compatible server: OpenAI, Ollama (/v1), LM Studio, vLLM, llama.cpp server.

Streams ``/chat/completions`` as server-sent events so the first sentence can be
spoken while the rest is generated. Cancelling the consumer (barge-in) leaves the
``async with`` of the streamed response, which closes the connection at once;
servers notice the disconnect and stop generating.

The API key comes from the keychain / environment (``app.store.secrets``), never from
this config. Local servers usually need no key.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from app.plugin import field_hints
from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.http_client import MAX_AUDIO_BYTES, error_for_response, iter_lines, read_json, translate_error
from app.plugin.provider_api import ChatMessage, Health, LLMProvider, StageKind
from app.plugin.redaction import redact
from app.plugin.registry import ProviderInfo, ProviderSpec
from providers.openai_compatible.endpoint import NAME, BaseURL, ConnectTimeout, Endpoint, ExtraHeaders, ReadTimeout


class OpenAICompatibleLLMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: BaseURL = Field(
        "http://127.0.0.1:11434/v1",
        description="API root, e.g. https://api.openai.com/v1, http://127.0.0.1:11434/v1 (Ollama), "
        "http://127.0.0.1:1234/v1 (LM Studio), http://127.0.0.1:8080/v1 (llama.cpp server)",
    )
    model: str = Field(
        "",
        description="Model id; empty = the first one the server lists",
        json_schema_extra=field_hints.choices(field_hints.SERVER),
    )
    timeout_s: ReadTimeout = 30.0
    connect_timeout_s: ConnectTimeout = 5.0
    max_tokens: int = Field(256, ge=1, le=32768)
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    extra_headers: ExtraHeaders = Field(
        default_factory=dict, description="e.g. OpenAI-Organization", json_schema_extra=field_hints.advanced()
    )


def parse_sse_data(payload: str, op: str) -> str | None:
    """Text delta from one SSE ``data:`` payload; None for ``[DONE]``. Malformed → PROVIDER_ERROR."""
    if payload.strip() == "[DONE]":
        return None
    return _parse_event(payload, op)[0]


def _parse_event(payload: str, op: str) -> tuple[str, bool]:
    """(text delta, whether the event ends the reply with a finish_reason)."""
    try:
        event = json.loads(payload)
    except ValueError:
        raise VoiceError(
            op,
            ErrorCode.PROVIDER_ERROR,
            "the server sent a malformed stream event — is it OpenAI-compatible?",
        ) from None
    if not isinstance(event, dict):
        raise VoiceError(op, ErrorCode.PROVIDER_ERROR, "the server sent an unexpected stream event")
    if "error" in event:
        err = event["error"]
        msg = err.get("message", "") if isinstance(err, dict) else str(err)
        raise VoiceError(op, ErrorCode.PROVIDER_ERROR, f"the server reported: {redact(str(msg))[:200]}")
    choices = event.get("choices") or []
    if not choices:
        return "", False  # usage / keep-alive events
    first = choices[0] if isinstance(choices[0], dict) else {}
    delta = first.get("delta") or first.get("message") or {}
    content = delta.get("content") if isinstance(delta, dict) else None
    if content is None and isinstance(first.get("text"), str):
        content = first["text"]  # legacy completions shape some servers use
    return (content if isinstance(content, str) else ""), bool(first.get("finish_reason"))


def cut_off_error(op: str) -> VoiceError:
    """A stream that ended before its end marker: the server or the network dropped it."""
    return VoiceError(
        op,
        ErrorCode.UNAVAILABLE,
        "the reply was cut off — the server closed the stream before its end; try again",
    )


class OpenAICompatibleLLM(LLMProvider):
    name: ClassVar[str] = NAME
    kind: ClassVar[StageKind] = "llm"

    def __init__(self, config: OpenAICompatibleLLMConfig) -> None:
        self.config = config
        self.endpoint = Endpoint("llm", config)
        self._model = config.model

    async def list_models(self) -> list[str]:
        return await self.endpoint.list_models()

    async def health(self) -> Health:
        return await self.endpoint.health()

    async def _resolve_model(self) -> str:
        if not self._model:
            models = await self.endpoint.list_models()
            if not models:
                raise VoiceError(
                    "llm.openai-compatible",
                    ErrorCode.INVALID_CONFIG,
                    "the server lists no models — set a model in Settings",
                )
            self._model = models[0]
        return self._model

    @property
    def model_name(self) -> str | None:
        return self.config.model or None

    def _body(self, model: str, messages: list[ChatMessage]) -> dict[str, Any]:
        return {
            "model": model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "stream": True,
            "max_tokens": self.config.max_tokens,
            "temperature": self.config.temperature,
        }

    async def chat(self, messages: list[ChatMessage]) -> AsyncIterator[str]:
        op = "llm.openai-compatible"
        try:
            model = await self._resolve_model()
            async with self.endpoint.client.stream(
                "POST",
                self.endpoint.url("chat/completions"),
                json=self._body(model, messages),
                headers=self.endpoint.headers(),
            ) as resp:
                if resp.status_code >= 400:
                    raise await error_for_response(op, resp)
                ctype = resp.headers.get("content-type", "")
                if "text/event-stream" not in ctype and "json" in ctype:
                    # Server ignored stream=true: one JSON answer.
                    data = await read_json(resp, op=op)
                    text = parse_sse_data(json.dumps(data), op)
                    if text:
                        yield text
                    return
                async with (
                    contextlib.aclosing(iter_lines(resp, op=op, limit=MAX_AUDIO_BYTES)) as lines,
                    contextlib.aclosing(_sse_deltas(lines, op)) as deltas,
                ):
                    async for text in deltas:
                        yield text
        except VoiceError:
            raise
        except Exception as exc:
            raise translate_error(op, exc) from None

    async def aclose(self) -> None:
        await self.endpoint.aclose()


async def _sse_deltas(lines: AsyncIterator[str], op: str) -> AsyncGenerator[str, None]:
    """SSE framing: ``data:`` lines joined until a blank line; comments and other fields ignored.

    A reply is complete only when the server says so: ``data: [DONE]``, or a choice with a
    ``finish_reason`` (servers that skip the marker). A body that just stops — a proxy or
    server closing the connection early, cleanly or not — raises UNAVAILABLE after the
    text that did arrive, so it counts as a drop mid-reply, never as a whole answer.
    """
    data: list[str] = []
    finished = False

    def flush() -> str | None:
        nonlocal finished
        payload = "\n".join(data)
        data.clear()
        if payload.strip() == "[DONE]":
            return None
        text, ends = _parse_event(payload, op)
        finished = finished or ends
        return text

    async for line in lines:
        if line == "":
            if data:
                text = flush()
                if text is None:
                    return
                if text:
                    yield text
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value[1:] if value.startswith(" ") else value)
        elif field not in ("event", "id", "retry"):
            raise VoiceError(op, ErrorCode.PROVIDER_ERROR, "the server sent a malformed event stream")
    if data:
        text = flush()
        if text is None:
            return
        if text:
            yield text
    if not finished:
        raise cut_off_error(op)


SPEC = ProviderSpec(
    kind="llm",
    name=NAME,
    factory=OpenAICompatibleLLM,
    config_model=OpenAICompatibleLLMConfig,
    info=ProviderInfo(
        display_name="OpenAI-compatible server",
        description="Chat through any OpenAI-compatible API: OpenAI, Ollama, LM Studio, vLLM, llama.cpp "
        "server. Cloud services need an API key (keychain); local servers usually need none.",
        local=False,
        runs="server-or-cloud",
        needs=("an OpenAI-compatible server you run, or a cloud service and its API key",),
        needs_api_key=True,
        streaming=True,
        requires=("httpx",),
        extra={"api_key_optional": True},
    ),
)
