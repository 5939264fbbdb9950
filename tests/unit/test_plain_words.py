"""Engine errors in plain words: real errors from real parts, no codes, paths or commands left."""

from __future__ import annotations

import socket

import pytest

from app.engine.plain_words import (
    Action,
    explain,
    explain_error,
    has_engine_words,
    plain_notice,
    spoken_sentence,
)
from app.plugin.errors import ErrorCode, VoiceError
from app.store.models import resolve_model


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends: nothing listens


async def test_an_unreachable_server_is_said_in_one_plain_sentence() -> None:
    from providers.openai_compatible.llm import OpenAICompatibleLLM, OpenAICompatibleLLMConfig

    llm = OpenAICompatibleLLM(
        OpenAICompatibleLLMConfig(base_url=f"http://127.0.0.1:{_closed_port()}/v1", model="m", timeout_s=2)
    )
    with pytest.raises(VoiceError) as caught:
        async for _ in llm.chat([]):
            pass
    await llm.aclose()
    err = caught.value
    assert err.code is ErrorCode.UNAVAILABLE
    assert spoken_sentence("llm", "openai-compatible", err) == "I can't reach the assistant server right now."
    plain = explain_error("llm", "openai-compatible", err)
    assert plain.title == "VoxDesk can't reach the assistant server"
    assert plain.actions == (Action.RETRY, Action.OPEN_SETTINGS, Action.USE_LOCAL_MODEL)
    assert not has_engine_words(plain.text)


@pytest.mark.own_model_cache
def test_a_missing_model_says_its_size_and_purpose_without_the_command() -> None:
    with pytest.raises(VoiceError) as caught:
        resolve_model("qwen2.5-0.5b-instruct-q4_k_m")
    err = caught.value
    assert has_engine_words(err.message)  # the engine's words: a path and `voxdesk models fetch`
    plain = explain("llm", "llama-cpp", err.code, err.message)
    assert "VoxDesk needs a 491 MB language model to answer general questions" in plain.body
    assert plain.cause == "model-missing:qwen2.5-0.5b-instruct-q4_k_m" and Action.DOWNLOAD in plain.actions
    assert not has_engine_words(plain.text) and not plain.optional
    turn = explain(
        "turn", "smart-turn", err.code, err.message.replace("qwen2.5-0.5b-instruct-q4_k_m", "smart-turn-v3.2")
    )
    assert turn.optional and "waits for a pause" in turn.body


@pytest.mark.parametrize("code", list(ErrorCode))
def test_no_code_yields_engine_words(code: ErrorCode) -> None:
    message = "failed at /home/u/.cache/voxdesk/models/x — run `voxdesk models fetch x` (MODEL_MISSING)"
    for stage, provider in (("llm", "openai-compatible"), ("stt", "faster-whisper"), ("audio", "microphone")):
        plain = explain(stage, provider, code, message)
        assert not has_engine_words(plain.title + " " + plain.body + " " + plain.spoken), plain


def test_the_detector_finds_engine_words_and_leaves_urls() -> None:
    assert has_engine_words("run `voxdesk models fetch x`")
    assert has_engine_words("looked in /home/u/.cache/voxdesk")
    assert has_engine_words("llm: UNAVAILABLE")
    assert not has_engine_words("Check the server at http://127.0.0.1:8080/v1 is running.")


def test_notices_lose_their_codes() -> None:
    text = plain_notice("llm: openai-compatible failed (UNAVAILABLE); using skills")
    assert text == "The assistant (openai-compatible) is not working right now; VoxDesk uses skills instead."
    assert plain_notice("Ready.") == "Ready."
    assert not has_engine_words(plain_notice("The wake word is unavailable: run `pip install x`. Push-to-talk works."))
