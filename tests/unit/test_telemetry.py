from __future__ import annotations

import socket
import time

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app.store.settings import TelemetrySettings
from app.telemetry import Telemetry


def record_turn(t: Telemetry, turn_id: str, v2v: float) -> None:
    span = t.start_turn(turn_id)
    now = time.monotonic()
    t.record_stage(span, "stt", "faster-whisper", now - 0.30, now - 0.10)
    t.record_stage(span, "llm", "skills", now - 0.10, now - 0.09, {"gen_ai.operation.name": "chat"})
    t.record_stage(span, "tts", "piper", now - 0.09, now)
    t.end_turn(span, {"stt": 0.2, "llm_first_token": 0.01, "tts_first_audio": 0.05}, v2v)


def test_span_tree_and_names() -> None:
    t = Telemetry()
    exporter = InMemorySpanExporter()
    assert t._tracer_provider is not None
    t._tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    record_turn(t, "turn-1", 0.5)
    assert t.flush()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"voice.turn", "voice.stt", "voice.llm", "voice.tts"}
    turn = spans["voice.turn"]
    for name in ("voice.stt", "voice.llm", "voice.tts"):
        child = spans[name]
        assert child.parent is not None and child.parent.span_id == turn.context.span_id
        assert child.attributes["voxdesk.stage"] == name.removeprefix("voice.")
    assert spans["voice.llm"].attributes["gen_ai.operation.name"] == "chat"
    stt = spans["voice.stt"]
    assert abs((stt.end_time - stt.start_time) / 1e9 - 0.2) < 0.01
    # no transcript or reply text on spans by default
    for s in spans.values():
        assert not any("text" in k for k in (s.attributes or {}))


def test_snapshot_has_turns_percentiles_errors_health() -> None:
    t = Telemetry()
    for i, v2v in enumerate([0.4, 0.5, 0.6, 0.7, 1.0]):
        record_turn(t, f"t{i}", v2v)
    t.record_error("llm", "openai-compatible", "TIMEOUT")
    t.record_error("llm", "openai-compatible", "TIMEOUT")
    t.set_health("llm", "openai-compatible", 0)
    t.set_health("stt", "faster-whisper", 2)
    snap = t.snapshot()
    assert [x.turn_id for x in snap.turns] == ["t0", "t1", "t2", "t3", "t4"]
    assert snap.turns[-1].stages["stt"] == 0.2
    assert snap.voice_to_voice.count == 5
    assert abs(snap.voice_to_voice.p50 - 0.6) < 1e-9
    assert 0.7 < snap.voice_to_voice.p95 <= 1.0
    assert abs(snap.stages["stt"].p50 - 0.2) < 0.01
    assert snap.stages["llm_first_token"].p50 == 0.01
    assert snap.errors[("llm", "openai-compatible", "TIMEOUT")] == 2
    assert snap.health == {("llm", "openai-compatible"): 0, ("stt", "faster-whisper"): 2}
    assert snap.exporter == "off"


def test_metrics_use_fixed_names() -> None:
    t = Telemetry()
    record_turn(t, "t", 0.5)
    t.record_error("stt", "x", "TIMEOUT")
    t.set_health("stt", "x", 1)
    assert t.flush()
    t._reader.collect()
    data = t._reader.latest
    assert data is not None
    names = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert names == {
        "voxdesk.stage.duration",
        "voxdesk.turn.voice_to_voice",
        "voxdesk.errors",
        "voxdesk.provider.health",
    }


def test_disabled_is_noop_but_safe() -> None:
    t = Telemetry(TelemetrySettings(enabled=False))
    record_turn(t, "t", 0.5)
    snap = t.snapshot()
    assert snap.turns == [] and snap.voice_to_voice.count == 0


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_otlp_endpoint_adds_no_latency() -> None:
    """A collector that is down must cost a turn nothing: export happens off-thread."""
    base = Telemetry()
    down = Telemetry(TelemetrySettings(otlp_endpoint=f"http://127.0.0.1:{_closed_port()}"))
    assert down.exporter_status.startswith("pending")

    def cost(t: Telemetry) -> float:
        start = time.perf_counter()
        for i in range(200):
            record_turn(t, f"t{i}", 0.5)
        return time.perf_counter() - start

    cost(base), cost(down)  # warm both
    b, d = min(cost(base) for _ in range(3)), min(cost(down) for _ in range(3))
    # Same work both ways; export runs in the batch processor's thread, so the
    # difference is noise, far from the ~1 s a blocking connect+timeout would add.
    assert d < b * 2 + 0.05
    start = time.perf_counter()
    down.shutdown(timeout_s=1.0)
    assert time.perf_counter() - start < 1.5


def test_content_goes_on_the_turn_span_only_when_the_user_turned_it_on() -> None:
    for capture in (False, True):
        t = Telemetry(TelemetrySettings(capture_content=capture))
        exporter = InMemorySpanExporter()
        assert t._tracer_provider is not None
        t._tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
        span = t.start_turn("turn-1")
        t.end_turn(span, {}, 0.5, user_text="what is 2 plus 2", reply_text="2 plus 2 is 4.")
        assert t.flush()
        (turn,) = [s for s in exporter.get_finished_spans() if s.name == "voice.turn"]
        attrs = dict(turn.attributes or {})
        if capture:
            assert attrs["voxdesk.user_text"] == "what is 2 plus 2"
            assert attrs["voxdesk.reply_text"] == "2 plus 2 is 4."
        else:
            assert not any("text" in k for k in attrs)
        t.shutdown(0.5)


def test_a_turn_carries_the_echo_removed_and_the_double_talk_on_its_span() -> None:
    t = Telemetry()
    exporter = InMemorySpanExporter()
    assert t._tracer_provider is not None
    t._tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    span = t.start_turn("turn-echo")
    t.end_turn(span, {"barge_in_stop": 0.12}, None, interrupted=True, echo=(38.5, 0.4))
    assert t.flush()
    (turn,) = [s for s in exporter.get_finished_spans() if s.name == "voice.turn"]
    assert turn.attributes["voxdesk.echo.erle_db"] == 38.5
    assert turn.attributes["voxdesk.echo.double_talk_s"] == 0.4
    assert turn.attributes["voxdesk.timing.barge_in_stop"] == 0.12
    (timing,) = t.snapshot().turns
    assert timing.echo_erle_db == 38.5
