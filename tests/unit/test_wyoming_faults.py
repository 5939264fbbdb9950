"""Wyoming faults a real server will not produce on demand, from a tiny fake server that
speaks the real wire format (wyoming's own event writer) on 127.0.0.1: an older
protocol version, an unexpected event, closing mid-stream, never answering, an error
event, bytes that are not Wyoming. Each must end as a clear VoiceError within its
deadline — and, through a stage runner, as a fallback to the next provider."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import STTProvider, TTSProvider
from app.plugin.registry import get_registry
from app.plugin.resilience import Deadline, RecordingObserver, RetryPolicy, StageRunner
from tests.support.wyoming_servers import FakeServer

TIMEOUT_S = 0.5
QUESTION = np.zeros(16000, np.float32)


def stt_for(uri: str) -> STTProvider:
    p = get_registry().create("stt", "wyoming", {"uri": uri, "timeout_s": TIMEOUT_S, "connect_timeout_s": TIMEOUT_S})
    assert isinstance(p, STTProvider)
    return p


def tts_for(uri: str) -> TTSProvider:
    p = get_registry().create("tts", "wyoming", {"uri": uri, "timeout_s": TIMEOUT_S, "connect_timeout_s": TIMEOUT_S})
    assert isinstance(p, TTSProvider)
    return p


async def _speak(tts: TTSProvider) -> list[int]:
    return [len(c.samples) async for c in tts.synthesize("Hello there.")]


FAULTS = [
    # mode, code, words the message must hold
    ("old", ErrorCode.INVALID_CONFIG, "protocol 0.4.0"),
    ("old-describe", ErrorCode.INVALID_CONFIG, "update the server"),
    ("unexpected", ErrorCode.PROVIDER_ERROR, "unexpected"),
    ("error", ErrorCode.PROVIDER_ERROR, "model crashed"),
    ("garbage", ErrorCode.PROVIDER_ERROR, "not a Wyoming event"),
    ("close-mid-event", ErrorCode.UNAVAILABLE, "in the middle of an event"),
    ("silent", ErrorCode.TIMEOUT, "no answer within 0.5 s"),
]


@pytest.mark.parametrize("fault", FAULTS, ids=[f[0] for f in FAULTS])
@pytest.mark.parametrize("kind", ["stt", "tts"])
async def test_a_fault_is_a_clear_error_within_the_deadline(kind: str, fault: tuple[str, ErrorCode, str]) -> None:
    mode, code, words = fault
    async with FakeServer(mode) as srv:
        t0 = time.monotonic()
        with pytest.raises(VoiceError) as err:
            if kind == "stt":
                await stt_for(srv.uri).transcribe(QUESTION)
            else:
                await _speak(tts_for(srv.uri))
        assert time.monotonic() - t0 < TIMEOUT_S * 3 + 0.5  # no hang
    assert err.value.code is code, err.value
    assert err.value.op == f"{kind}.wyoming"
    assert words in err.value.message and srv.uri in err.value.message, err.value


async def test_the_server_closing_mid_stream() -> None:
    async with FakeServer("close-mid-audio") as srv:
        audio = stt_for(srv.uri)

        async def slow_audio() -> AsyncIterator[np.ndarray]:
            for _ in range(20):
                yield np.zeros(1600, np.float32)
                await asyncio.sleep(0.02)

        with pytest.raises(VoiceError) as err:
            _ = [t async for t in audio.stream(slow_audio())]
        assert err.value.code is ErrorCode.UNAVAILABLE and "closed the connection" in err.value.message
    async with FakeServer("close-mid-stream") as srv:
        voice = tts_for(srv.uri)
        got: list[int] = []
        with pytest.raises(VoiceError) as err:
            async for chunk in voice.synthesize("Hello there."):
                got.append(len(chunk.samples))
        assert got == [2205]  # what came before the cut was delivered, then a clear error
        assert err.value.code is ErrorCode.UNAVAILABLE and "closed the connection" in err.value.message


async def test_the_fake_servers_happy_path_and_discovery() -> None:
    """The fake is sound: faults above come from the modes, not from a broken fake."""
    async with FakeServer("ok") as srv:
        stt, tts = stt_for(srv.uri), tts_for(srv.uri)
        assert await stt.transcribe(QUESTION) == "hello there"
        assert await _speak(tts) == [2205]
        assert tts.sample_rate == 22050
        assert await stt.list_models() == ["tiny"]  # type: ignore[attr-defined]
        assert await stt.list_languages() == ["en", "fr"]  # type: ignore[attr-defined]
        assert await tts.list_voices() == ["voice-a"]  # type: ignore[attr-defined]
        health = await stt.health()
        assert health.status.value == "ok" and "fake-asr 9.9" in health.detail


async def test_a_voice_the_server_does_not_offer_names_those_it_does() -> None:
    async with FakeServer("ok") as srv:
        voice = get_registry().create("tts", "wyoming", {"uri": srv.uri, "voice": "nope-x"})
        with pytest.raises(VoiceError) as err:
            await _speak(voice)  # type: ignore[arg-type]
        assert err.value.code is ErrorCode.INVALID_CONFIG and "voice-a" in err.value.message
        assert (await voice.health()).status.value == "down"


async def test_nothing_listening_is_reported_offline_and_fast() -> None:
    async with FakeServer("ok") as srv:
        uri = srv.uri
    stt = stt_for(uri)  # the port is free again: nothing listens there
    t0 = time.monotonic()
    health = await stt.health()
    assert health.status.value == "down"
    assert health.detail == f"Wyoming server at {uri} is not answering: start it or check the address"
    with pytest.raises(VoiceError) as err:
        await stt.transcribe(QUESTION)
    assert err.value.code is ErrorCode.UNAVAILABLE
    assert time.monotonic() - t0 < 1.0


@pytest.mark.parametrize("mode", ["old", "unexpected", "silent", "close-mid-event"])
async def test_a_faulty_server_falls_back_to_the_next_provider(mode: str) -> None:
    async with FakeServer(mode) as bad, FakeServer("ok") as good:
        observer = RecordingObserver()
        runner: StageRunner[STTProvider] = StageRunner(
            "stt",
            [("wyoming", stt_for(bad.uri)), ("backup", stt_for(good.uri))],
            retry=RetryPolicy(max_attempts=2, base_delay_s=0.01),
            observer=observer,
            background_probes=False,
        )
        try:
            t0 = time.monotonic()
            text = await runner.call(lambda p: p.transcribe(QUESTION), timeout=2.0, deadline=Deadline(5))
            assert text == "hello there" and time.monotonic() - t0 < 2.5
        finally:
            await runner.aclose()
        (fallback,) = [a for n, a in observer.events if n == "fallback"]
        assert fallback["from"] == "wyoming" and fallback["to"] == "backup"


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("http://127.0.0.1:10300", "plain TCP"),
        ("tcp://127.0.0.1", "needs a host and a port"),
        ("127.0.0.1:10300", "plain TCP"),
        ("tcp://8.8.8.8:10300", "cross the internet"),
        ("tcp://127.0.0.1:10300/x", "more than a host and a port"),
        ("tcp://127.0.0.1:99999", "not a server address"),
    ],
)
def test_a_bad_address_is_refused_with_what_to_type(uri: str, words: str) -> None:
    for kind in ("stt", "tts"):
        with pytest.raises(VoiceError) as err:
            get_registry().create(kind, "wyoming", {"uri": uri})
        assert err.value.code is ErrorCode.INVALID_CONFIG and words in str(err.value), err.value


def test_good_addresses_are_kept_normalised() -> None:
    reg = get_registry()
    assert reg.validate("stt", "wyoming", {"uri": " tcp://homeassistant.local:10300 "}).uri == (  # type: ignore[attr-defined]
        "tcp://homeassistant.local:10300"
    )
    assert reg.validate("tts", "wyoming", {"uri": "tcp://[::1]:10200"}).uri == "tcp://[::1]:10200"  # type: ignore[attr-defined]


async def test_cancelling_a_request_closes_its_connection() -> None:
    """Barge-in: closing the stream mid-answer must not leave the request running."""
    async with FakeServer("silent") as srv:
        stt = stt_for(srv.uri)
        task = asyncio.create_task(stt.transcribe(QUESTION))
        await asyncio.sleep(0.1)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.05)
        assert not srv.handlers  # the server saw the connection end


async def _pieces(texts: list[str], gap_s: float = 0.05) -> AsyncIterator[str]:
    for t in texts:
        yield t
        await asyncio.sleep(gap_s)


async def test_streamed_text_to_a_server_that_streams_synthesis() -> None:
    async with FakeServer("ok", streams=True) as srv:
        tts = tts_for(srv.uri)
        got = [len(c.samples) async for c in tts.stream(_pieces(["Hello **there**. ", "Second one. "]))]
        assert got == [100, 100]  # audio for each piece as the server sent it
        assert srv.texts == ["Hello there. ", "Second one. "]  # cleaned, the spaces between pieces kept
    async with FakeServer("ok") as srv:  # no streaming in its info: one synthesize per piece
        tts = tts_for(srv.uri)
        assert [len(c.samples) async for c in tts.stream(_pieces(["One. ", "Two. "]))] == [2205, 2205]


async def test_a_silent_server_times_out_after_the_streamed_text_ends() -> None:
    """While text is still being sent the server may rightly be quiet; after that, only
    for the deadline."""
    async with FakeServer("silent", streams=True) as srv:
        tts = tts_for(srv.uri)
        t0 = time.monotonic()
        with pytest.raises(VoiceError) as err:
            _ = [c async for c in tts.stream(_pieces(["One. ", "Two. ", "Three. "], gap_s=0.4))]
        took = time.monotonic() - t0
    assert err.value.code is ErrorCode.TIMEOUT
    assert 1.2 + TIMEOUT_S - 0.1 < took < 1.2 + TIMEOUT_S + 1.0  # text for 1.2 s, then the deadline
