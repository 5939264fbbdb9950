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
import wyoming.event
from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, async_read_event, async_write_event
from wyoming.info import AsrModel, AsrProgram, Attribution, Info, TtsProgram, TtsVoice

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import STTProvider, TTSProvider
from app.plugin.registry import get_registry
from app.plugin.resilience import Deadline, RecordingObserver, RetryPolicy, StageRunner

ATTR = Attribution(name="test", url="http://127.0.0.1/")
INFO = Info(
    asr=[
        AsrProgram(
            name="fake-asr",
            attribution=ATTR,
            installed=True,
            description="fake",
            version="9.9",
            models=[AsrModel("tiny", ATTR, True, "tiny", "1", languages=["en", "fr"])],
        )
    ],
    tts=[
        TtsProgram(
            name="fake-tts",
            attribution=ATTR,
            installed=True,
            description="fake",
            version="9.9",
            voices=[TtsVoice("voice-a", ATTR, True, "a", None, languages=["en"])],
        )
    ],
)
TIMEOUT_S = 0.5
QUESTION = np.zeros(16000, np.float32)


class FakeServer:
    """Answers describe with INFO, then behaves as `mode` says."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.server: asyncio.Server | None = None
        self.port = 0
        self.handlers: set[asyncio.Task[None]] = set()

    @property
    def uri(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeServer:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for t in list(self.handlers):
            t.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)
        await self.server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.handlers.discard(task)
            writer.close()

    async def _write(self, event: Event, writer: asyncio.StreamWriter, version: str | None = None) -> None:
        saved = wyoming.event._VERSION_NUMBER
        if version is not None:
            wyoming.event._VERSION_NUMBER = version  # what an older server's writer puts in the header
        try:
            await async_write_event(event, writer)
        finally:
            wyoming.event._VERSION_NUMBER = saved

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mode = self.mode
        while (event := await async_read_event(reader)) is not None:
            if event.type == "describe":
                if mode == "old-describe":
                    await self._write(INFO.event(), writer, version="0.4.0")
                else:
                    await self._write(INFO.event(), writer)
                continue
            if mode == "silent":
                continue
            if mode == "garbage":
                writer.write(b"this is not json\n")
                await writer.drain()
                continue
            if event.type == "audio-start" and mode == "close-mid-audio":
                return  # drops the connection while the client is still sending audio
            if event.type in ("audio-stop", "synthesize"):
                await self._answer(event, writer)
                if mode.startswith("close"):
                    return

    async def _answer(self, request: Event, writer: asyncio.StreamWriter) -> None:
        mode = self.mode
        stt = request.type == "audio-stop"
        if mode == "old":
            answer = Transcript("hello").event() if stt else AudioStart(22050, 2, 1).event()
            await self._write(answer, writer, version="0.4.0")
        elif mode == "unexpected":
            await self._write(Event("synthesize", {"text": "?"}) if stt else Transcript("?").event(), writer)
        elif mode == "error":
            await self._write(Error(text="model crashed", code="RuntimeError").event(), writer)
        elif mode == "close-mid-event":
            # A header promising 4000 bytes of audio, 10 of them, then the connection ends.
            writer.write(b'{"type": "audio-chunk", "data": {"rate": 22050, "width": 2, "channels": 1}, ')
            writer.write(b'"payload_length": 4000, "version": "1.10.2"}\n' + b"\x00" * 10)
            await writer.drain()
        elif mode == "close-mid-stream" and not stt:
            await self._write(AudioStart(22050, 2, 1).event(), writer)
            await self._write(AudioChunk(22050, 2, 1, b"\x01\x00" * 2205).event(), writer)
        elif stt:
            await self._write(Transcript("hello there").event(), writer)
        else:
            await self._write(AudioStart(22050, 2, 1).event(), writer)
            await self._write(AudioChunk(22050, 2, 1, b"\x01\x00" * 2205).event(), writer)
            await self._write(AudioStop().event(), writer)


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
