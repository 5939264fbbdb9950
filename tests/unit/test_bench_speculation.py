"""The bench reads speculative replies from the session's telemetry, and keeps one turn per question."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from app.commands.bench_run import speculative_counts
from app.engine.session import Session
from app.store.settings import TelemetrySettings
from app.telemetry import Telemetry


def session_with(telemetry: Any) -> Session:
    return cast(Session, SimpleNamespace(telemetry=telemetry))


def test_the_real_telemetry_counts_are_read_as_used_and_discarded() -> None:
    telemetry = Telemetry(TelemetrySettings(enabled=False))
    try:
        assert speculative_counts(session_with(telemetry)) == (0, 0)
        telemetry.record_speculation("used")
        telemetry.record_speculation("used")
        telemetry.record_speculation("discarded")
        assert speculative_counts(session_with(telemetry)) == (2, 1)
    finally:
        telemetry.shutdown()


def test_each_question_keeps_exactly_one_turn() -> None:
    from app.commands.bench_run import _one_turn
    from app.engine.events import TurnFinished

    def finished(user: str) -> TurnFinished:
        return TurnFinished(
            user_text=user, reply_text="r", interrupted=False, timings={}, voice_to_voice_s=0.5, providers={}
        )

    fake = cast(Session, SimpleNamespace(stages=SimpleNamespace(providers_used=lambda: {"stt": "faster-whisper"})))
    turns = [finished("earlier")]
    _one_turn(fake, turns, 1, "no speech heard in q1.wav")  # nothing heard: a place-holder row
    assert turns[1].error == "no speech heard in q1.wav" and turns[1].voice_to_voice_s is None
    turns += [finished("What is"), finished("What is the capital of France?")]
    _one_turn(fake, turns, 2, "unused")  # a pause heard as an end: the last (played) turn stays
    assert [t.user_text for t in turns] == ["earlier", "", "What is the capital of France?"]
