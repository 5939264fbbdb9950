"""Every background thread and process is owned: a run cut mid-reply (Ctrl+C, --timeout,
closing the engine) stops its work, stores what was said so far and exits cleanly."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel

from app.engine.events import Notice, ReplyDelta
from app.engine.session import Session
from app.plugin.provider_api import AudioChunk, ChatMessage, Health, HealthStatus, LLMProvider, TTSProvider
from app.plugin.registry import ProviderInfo, Registry
from app.store.paths import resolve_paths
from app.store.settings import Settings

VOXDESK = str(Path(sys.executable).with_name("voxdesk"))
#: A reply that takes Piper far longer than the runs below last: it is always cut mid-way.
SENTENCE = "This is sentence number {}, and it is a fairly long one so that the voice has work to do."
LONG = "repeat after me " + " ".join(SENTENCE.format(i) for i in range(1, 41))


#: The reply these tests cut is the skills' "repeat after me": loading the language model
#: (seconds on a busy 2-core machine) would only eat into the 3 s they allow.
CONVERSE = [VOXDESK, "converse", "--set", "llm.provider=skills"]


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "VOXDESK_HOME": str(home)}


def _turn_rows(home: Path) -> list[sqlite3.Row]:
    db = home / "data" / "history.sqlite3"
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT user_text, reply_text, status, interrupted FROM turns ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        conn.close()


# -- the engine: cancelling a caller is not a barge-in ---------------------------------------


class _Cfg(BaseModel):
    pass


class _SlowLLM(LLMProvider):
    """One sentence at once, then nothing for a long while (a model still thinking)."""

    name = "slow"

    def __init__(self, cfg: _Cfg) -> None:
        pass

    async def chat(self, messages: list[ChatMessage]) -> AsyncIterator[str]:
        yield "Here is the first part. And"
        await asyncio.sleep(60)
        yield " the rest."

    async def health(self) -> Health:
        return Health(HealthStatus.OK, "ok")


class _QuietTTS(TTSProvider):
    name = "quiet"
    sample_rate = 16_000
    spoke: asyncio.Event | None = None  # set once a sentence has been spoken

    def __init__(self, cfg: _Cfg) -> None:
        pass

    async def synthesize(self, text: str) -> AsyncIterator[AudioChunk]:
        if self.spoke is not None:
            self.spoke.set()
        yield AudioChunk(np.zeros(1600, np.float32), self.sample_rate)

    async def health(self) -> Health:
        return Health(HealthStatus.OK, "ok")


def _fake_session() -> Session:
    from app.audio.files import WavFileSink

    reg = Registry()
    reg.register("llm", "slow", _SlowLLM, config_model=_Cfg, info=ProviderInfo("Slow", "test double"))
    reg.register("tts", "quiet", _QuietTTS, config_model=_Cfg, info=ProviderInfo("Quiet", "test double"))
    s = Settings()
    s.llm.provider, s.tts.provider = "slow", "quiet"
    s.vad.provider, s.vad.fallbacks, s.stt.provider = "quiet", [], "quiet"  # not registered: reported, no stage
    s.telemetry.enabled = False
    return Session(s, resolve_paths().ensure(), registry=reg, sink=WavFileSink(None))


async def test_cancelling_send_text_reaches_its_caller_and_keeps_the_reply() -> None:
    session = _fake_session()
    _QuietTTS.spoke = spoke = asyncio.Event()
    try:
        await session.start()
        await session.ready.wait()
        task = asyncio.create_task(session.send_text("tell me a story"))
        await asyncio.wait_for(spoke.wait(), 10)
        task.cancel()  # what Ctrl+C and --timeout do to the run
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        rows = session.history.turns(session.history.current_conversation)  # type: ignore[arg-type]
        assert [(r.user_text, r.interrupted) for r in rows] == [("tell me a story", True)]
        assert rows[0].reply_text == "Here is the first part."
    finally:
        await session.aclose()


async def test_stop_button_still_returns_normally_from_send_text() -> None:
    """Only the caller's own cancellation propagates; the stop button ends just the reply."""
    session = _fake_session()
    replying = asyncio.Event()
    session.add_listener(lambda e: replying.set() if isinstance(e, ReplyDelta) else None)
    try:
        await session.start()
        await session.ready.wait()
        task = asyncio.create_task(session.send_text("tell me a story"))
        await asyncio.wait_for(replying.wait(), 10)
        session.stop_speaking()
        await asyncio.wait_for(task, 5)  # returns, does not raise
    finally:
        await session.aclose()


async def test_cancelling_a_waiter_does_not_cancel_the_turn() -> None:
    session = _fake_session()
    replying = asyncio.Event()
    session.add_listener(lambda e: replying.set() if isinstance(e, ReplyDelta) else None)
    try:
        await session.start()
        await session.ready.wait()
        turn = asyncio.create_task(session.send_text("tell me a story"))
        await asyncio.wait_for(replying.wait(), 10)
        waiter = asyncio.create_task(session.wait_idle())
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert not turn.done()  # the reply goes on; only the waiting stopped
        turn.cancel()
        with pytest.raises(asyncio.CancelledError):
            await turn
    finally:
        await session.aclose()


async def test_a_failing_background_task_is_reported_once_not_left_unretrieved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    session = _fake_session()
    notices: list[str] = []
    session.add_listener(lambda e: notices.append(e.message) if isinstance(e, Notice) else None)
    try:
        await session.start()
        await session.ready.wait()

        async def boom() -> None:
            raise OSError(28, "No space left on device")

        for _ in range(3):
            task = session._spawn(boom(), "history-checkpoint")
            await asyncio.wait([task])
            await asyncio.sleep(0)  # its done callbacks run
        del task
        gc.collect()
    finally:
        await session.aclose()
    assert "never retrieved" not in caplog.text
    told = [n for n in notices if "No space left on device" in n]
    assert len(told) == 1, notices
    assert "history-checkpoint" in caplog.text and "No space left on device" in caplog.text


async def test_a_history_notice_from_a_worker_thread_reaches_the_listeners() -> None:
    session = _fake_session()
    told: list[str] = []
    arrived = asyncio.Event()

    def on(e: object) -> None:
        if isinstance(e, Notice) and "history" in e.message:
            told.append(e.message)
            arrived.set()

    session.add_listener(on)
    try:
        await session.start()
        hook = session.history.on_notice
        assert hook is not None
        # History calls it from the thread that failed to write.
        await asyncio.to_thread(hook, "Can't save the conversation history: the disk is full.")
        await asyncio.wait_for(arrived.wait(), 5)
        assert told == ["Can't save the conversation history: the disk is full."]
    finally:
        await session.aclose()


# -- Piper: the synthesis thread is joined on close -----------------------------------------


def _piper_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "piper-synthesis" and t.is_alive()]


@pytest.mark.slow
async def test_piper_close_joins_its_synthesis_thread() -> None:
    from providers.tts.piper import PiperTTS

    tts = PiperTTS()
    await tts.warmup()
    chunks = tts.synthesize(" ".join(SENTENCE.format(i) for i in range(1, 11)))
    try:
        await anext(chunks)  # the worker is now synthesising the next sentences
        assert _piper_threads()
        await tts.aclose()
        assert _piper_threads() == []
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


async def test_piper_close_cuts_the_sentence_being_synthesised() -> None:
    """One long sentence is one ONNX run (seconds of CPU): close stops it mid-run, it does
    not wait for the sentence to end (Ctrl+C, a barge-in, a provider switch)."""
    from providers.tts.piper import PiperTTS

    tts = PiperTTS()
    await tts.warmup()
    first = "Hello."
    long_sentence = " and ".join(f"the {i}th quiet river runs past the old stone mill" for i in range(40)) + "."
    chunks = tts.synthesize(f"{first} {long_sentence}")
    try:
        await anext(chunks)  # "Hello." is out; the worker is inside the long sentence's run
        await asyncio.sleep(0.2)
        assert _piper_threads()
        t0 = time.monotonic()
        await tts.aclose()
        took = time.monotonic() - t0
        assert _piper_threads() == []
        assert took < 0.3, f"close waited {took:.2f} s for the sentence's ONNX run"
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


# -- faster-whisper: a decode in flight stops when the provider closes ----------------------


@pytest.mark.slow
async def test_whisper_close_stops_a_decode_in_flight() -> None:
    from providers.stt.faster_whisper import FasterWhisperConfig, FasterWhisperSTT
    from tests.support.speech import have_espeak, speak

    if not have_espeak():
        pytest.skip("espeak-ng is needed to generate speech")
    stt = FasterWhisperSTT(FasterWhisperConfig())
    await stt.warmup()
    one = speak(" ".join(SENTENCE.format(i) for i in range(1, 6)))
    audio = np.tile(one, int(np.ceil(110 * 16_000 / len(one))))[: 110 * 16_000]  # four Whisper windows
    task = asyncio.create_task(stt.transcribe(audio))
    await asyncio.sleep(0.5)  # the first window is being decoded
    task.cancel()
    t0 = time.monotonic()
    await stt.aclose()
    closed_in = time.monotonic() - t0
    # Nothing of the decode may still run once closed: the process would burn CPU (and
    # hold up its exit) for the rest of the two minutes of audio.
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.sleep(1.0)
    busy = (time.process_time() - cpu0) / (time.monotonic() - wall0)
    print(f"closed in {closed_in * 1000:.0f} ms; CPU afterwards {busy:.0%} of a core")
    assert busy < 0.10, f"a decode still runs after close ({busy:.0%} of a core)"
    assert closed_in < 2.5
    with pytest.raises(asyncio.CancelledError):
        await task


# -- llama.cpp: closing while the model loads ends the load ---------------------------------


@pytest.mark.slow
async def test_llama_close_during_model_load_stops_the_worker_at_once() -> None:
    import multiprocessing as mp

    from app.plugin.errors import ErrorCode, VoiceError
    from providers.llm.llama_cpp import LlamaCppConfig, LlamaCppLLM

    llm = LlamaCppLLM(LlamaCppConfig())
    warm = asyncio.create_task(llm.warmup())
    deadline = time.monotonic() + 30
    while not mp.active_children():  # the worker process has been spawned and is loading
        assert not warm.done(), warm
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    t0 = time.monotonic()
    await llm.aclose()
    took = time.monotonic() - t0
    print(f"closed during load in {took * 1000:.0f} ms")
    with pytest.raises(VoiceError) as err:
        await warm  # the load was abandoned, not completed behind the close
    assert err.value.code is ErrorCode.CANCELLED
    assert mp.active_children() == []
    assert took < 0.25


# -- the CLI: Ctrl+C and --timeout end the whole run ----------------------------------------


@pytest.mark.slow
def test_ctrl_c_ends_a_multi_turn_converse_within_one_second(voxdesk_home: Path) -> None:
    proc = subprocess.Popen(
        [*CONVERSE, "--text", LONG, "--text", "what time is it", "--text", "hello"],
        env=_env(voxdesk_home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Wait until the first reply is being spoken (a sentence is checkpointed in the history).
        deadline = time.monotonic() + 60
        while not any(r["reply_text"] for r in _turn_rows(voxdesk_home)):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the reply never started"
            time.sleep(0.02)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print(f"Ctrl+C → exit: {took * 1000:.0f} ms")
    assert proc.returncode == 130, (proc.returncode, err)
    assert took <= 1.0, f"{took:.2f} s from Ctrl+C to exit"
    assert "Traceback" not in err and "terminate called" not in err, err
    rows = _turn_rows(voxdesk_home)
    assert len(rows) == 1, [dict(r) for r in rows]  # the later questions were never asked
    assert rows[0]["status"] == "interrupted" and rows[0]["interrupted"] == 1
    said = rows[0]["reply_text"]
    assert said and LONG.removeprefix("repeat after me ").startswith(said), said
    assert "interrupted" in err.lower()


@pytest.mark.slow
def test_timeout_ends_the_whole_run_with_exit_1(voxdesk_home: Path) -> None:
    t0 = time.monotonic()
    out = subprocess.run(
        [*CONVERSE, "--timeout", "3", "--json", "--text", LONG, "--text", "what time is it"],
        env=_env(voxdesk_home),
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.monotonic() - t0
    assert out.returncode == 1, (out.returncode, out.stderr)
    assert "timed out after 3 s" in out.stderr
    assert "Traceback" not in out.stderr
    assert took < 3 + 3, took  # start-up, the 3 s, then at most about a second to stop
    turns = json.loads(out.stdout)["turns"]
    assert len(turns) == 1 and turns[0]["interrupted"], turns
    rows = _turn_rows(voxdesk_home)
    assert [(r["status"], r["interrupted"]) for r in rows] == [("interrupted", 1)]


@pytest.mark.slow
def test_twenty_turns_cut_mid_reply_all_exit_cleanly(tmp_path: Path) -> None:
    """The bar of issue 12: 20 of 20 processes cut mid-reply exit with the documented code."""
    bad: list[str] = []
    for i in range(20):
        home = tmp_path / f"run{i}"
        out = subprocess.run(
            [*CONVERSE, "--timeout", "3", "--json", "--text", LONG],
            env=_env(home),
            capture_output=True,
            text=True,
            timeout=60,
        )
        try:
            cut = json.loads(out.stdout)["turns"][0]["interrupted"]
        except (ValueError, KeyError, IndexError):
            cut = False
        # Anything but our own lines is a crash report (an abort prints "terminate called";
        # a library's handler may print a backtrace instead and lose stdout).
        noise = [line for line in out.stderr.splitlines() if not line.startswith("voxdesk: ")]
        if out.returncode != 1 or noise or not cut or "timed out after 3 s" not in out.stderr:
            bad.append(f"run {i}: exit {out.returncode}, cut mid-reply {cut}: {out.stderr[-300:]!r}")
    assert not bad, "\n".join(bad)
