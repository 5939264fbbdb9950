"""OTLP export proven against a real receiver (oteltap, OTLP over HTTP/protobuf, on 127.0.0.1).

A real session answers spoken questions with the default local models while exporting to
the receiver: the `voice.turn` spans arrive with their children and attributes, and the
`voxdesk.*` metrics with the names docs/architecture.md documents. With the receiver
stalled (accepts, never answers) or gone, a turn takes no longer than with it up.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import statistics
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from app.audio.files import WavFileSink
from app.engine.events import TurnFinished
from app.engine.session import Session
from app.store.paths import resolve_paths
from app.store.settings import Settings
from tests.support.sources import Piece, ScriptedSource
from tests.support.speech import have_espeak, speak

oteltap = pytest.importorskip("oteltap", reason="the dev extra installs oteltap")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http", reason="the otlp extra installs the exporter")

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_espeak(), reason="espeak-ng not installed")]

SKILL_QUESTION = "what is twelve plus thirty"
OPEN_QUESTION = "what is the capital of france"
CHILDREN = {"voice.vad", "voice.stt", "voice.llm", "voice.tts"}
METRICS = {"voxdesk.stage.duration", "voxdesk.turn.voice_to_voice", "voxdesk.provider.health"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Any, int]]:
    port = free_port()
    tap = oteltap.OtelTapHttpProtobufReceiver(oteltap.OtelTapHttpProtobufReceiverSettings(http_port=port))
    await tap.start()
    try:
        yield tap, port
    finally:
        await tap.stop()


@pytest.fixture
def stalled_port() -> Iterator[int]:
    """A collector that takes the connection and the request, and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)  # read nothing back, close nothing: the exporter waits on us

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        server.close()


def settings_for(endpoint: str | None) -> Settings:
    s = Settings()
    s.telemetry.otlp_endpoint = endpoint
    return s


def answered(turns: list[TurnFinished], count: int) -> bool:
    return len(turns) >= count


async def ask(endpoint: str | None, questions: list[str]) -> list[TurnFinished]:
    """A real session on the default models answers `questions` spoken one after another."""
    session = Session(settings_for(endpoint), resolve_paths().ensure())
    turns: list[TurnFinished] = []
    session.add_listener(lambda e: turns.append(e) if isinstance(e, TurnFinished) else None)
    await session.start()
    try:
        await asyncio.wait_for(session.ready.wait(), 180)
        pieces = [Piece(speak(questions[0]))]
        for i, q in enumerate(questions[1:], start=1):
            pieces.append(Piece(speak(q), wait_for=functools.partial(answered, turns, i), then_wait_s=0.5))
        sink = WavFileSink(None, realtime=True)
        await session.set_audio(ScriptedSource(pieces), sink)
        await asyncio.wait_for(session.wait_capture_done(), 180)
        await asyncio.wait_for(session.wait_idle(), 120)
    finally:
        await session.aclose()
    print([(t.user_text, t.reply_text, t.providers.get("llm"), t.error) for t in turns])
    assert len(turns) == len(questions), [(t.user_text, t.error) for t in turns]
    return turns


def attrs(message: Any) -> dict[str, object]:
    """OTLP KeyValue list → plain dict (strings, numbers and booleans are all we send)."""
    out: dict[str, object] = {}
    for kv in message.attributes:
        value = kv.value
        out[kv.key] = getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None
    return out


async def test_turn_spans_and_metrics_reach_a_real_receiver(receiver: tuple[Any, int]) -> None:
    tap, port = receiver
    spans: list[Any] = []
    metrics: list[Any] = []

    async def gather_spans() -> None:
        async for span in tap.stream_traces():
            spans.append(span)

    async def gather_metrics() -> None:
        async for metric in tap.stream_metrics():
            metrics.append(metric)

    # Listen before anything is sent: the receiver streams what arrives from now on.
    readers = [asyncio.create_task(gather_spans()), asyncio.create_task(gather_metrics())]
    try:
        turns = await ask(f"http://127.0.0.1:{port}", [SKILL_QUESTION, OPEN_QUESTION])
        # The session's close flushes the batch processor and the metric reader; give the
        # receiver's poller a moment to hand the last batch over.
        for _ in range(100):
            got_turns = sum(getattr(s, "name", "") == "voice.turn" for s in spans)
            if got_turns >= len(turns) and {getattr(m, "name", "") for m in metrics} >= METRICS:
                break
            await asyncio.sleep(0.1)
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)

    turn_spans = [s for s in spans if s.name == "voice.turn"]
    assert len(turn_spans) == len(turns), [s.name for s in spans]
    for turn in turn_spans:
        a = attrs(turn)
        assert str(a["voxdesk.turn_id"]), a
        assert float(a["voxdesk.voice_to_voice_s"]) > 0, a  # type: ignore[arg-type]
        assert any(k.startswith("voxdesk.timing.") for k in a), a
        assert "voxdesk.user_text" not in a and "voxdesk.reply_text" not in a  # content capture is off
        children = [s for s in spans if s.trace_id == turn.trace_id and s.parent_span_id == turn.span_id]
        names = {c.name for c in children}
        assert names >= CHILDREN, names
        for child in children:
            ca = attrs(child)
            assert ca["voxdesk.stage"] and ca["voxdesk.provider"], (child.name, ca)
    # The open question went to the embedded model: its span carries the gen_ai.* attributes.
    llm_spans = [attrs(s) for s in spans if s.name == "voice.llm"]
    assert any(a.get("gen_ai.operation.name") == "chat" and "gen_ai.system" in a for a in llm_spans), llm_spans
    assert {a["voxdesk.provider"] for a in llm_spans} >= {"skills", "llama-cpp"}, llm_spans

    by_name = {m.name: m for m in metrics}
    assert set(by_name) >= METRICS, sorted(by_name)
    v2v = by_name["voxdesk.turn.voice_to_voice"]
    assert v2v.unit == "s" and sum(p.count for p in v2v.histogram.data_points) >= len(turns)
    stage_points = by_name["voxdesk.stage.duration"].histogram.data_points
    assert {attrs(p)["stage"] for p in stage_points} >= {"stt", "llm", "tts"}
    health = {
        (attrs(p)["stage"], attrs(p)["provider"]): p.as_int
        for p in by_name["voxdesk.provider.health"].gauge.data_points
    }
    assert health.get(("stt", "faster-whisper")) == 2, health


async def test_a_stalled_or_missing_receiver_does_not_slow_a_turn(stalled_port: int) -> None:
    endpoints = {
        "no export": None,
        "stalled": f"http://127.0.0.1:{stalled_port}",
        "gone": f"http://127.0.0.1:{free_port()}",
    }
    v2v: dict[str, list[float]] = {name: [] for name in endpoints}
    # Interleaved rounds: the shared machine's load drifts over minutes, and a condition
    # run only at the start or the end would carry that drift.
    for _ in range(2):
        for name, endpoint in endpoints.items():
            v2v[name] += [t.voice_to_voice_s or float("nan") for t in await ask(endpoint, [SKILL_QUESTION] * 2)]
    medians = {name: statistics.median(values) for name, values in v2v.items()}
    print("voice-to-voice median: " + ", ".join(f"{n} {m * 1000:.0f} ms" for n, m in medians.items()), v2v)
    # An export on the turn's path would wait out the exporter's 2 s timeout (stalled) and
    # its retries; what sessions differ by on a busy 2-core machine was up to ~0.5 s.
    base = medians["no export"]
    assert medians["stalled"] < base + 0.75 and medians["gone"] < base + 0.75, v2v
