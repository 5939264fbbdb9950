"""Drives the real engine for `voxdesk bench`: spoken questions at real-time pace, or typed ones.

Like `converse` in file mode, but the bench keeps the session at hand between
questions: it needs to know who answered (the skills' name), to read the speculative
counters from the session's telemetry, and to start a new conversation per typed
question so the answers check asks each one on its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from app.audio.files import WavFileSource
from app.commands.converse import DiscardSink, TurnCollector, unanswered
from app.engine.events import TurnFinished
from app.engine.session import Session
from app.store.paths import AppPaths
from app.store.settings import Settings


@dataclass
class BenchRun:
    """The turns of one run, in the order asked, with what the bench needs to judge them."""

    turns: list[TurnFinished] = field(default_factory=list)
    skills_name: str | None = None
    #: (used, discarded) speculative replies.
    speculative: tuple[int, int] | None = None


@asynccontextmanager
async def bench_session(settings: Settings, paths: AppPaths) -> AsyncIterator[tuple[Session, DiscardSink]]:
    # No reply audio is kept: the sink only times the first sample (memory stays flat).
    sink = DiscardSink()
    session = Session(settings, paths, sink=sink)
    try:
        await session.start()
        await session.ready.wait()
        yield session, sink
    finally:
        await session.aclose()


def _skills_name(session: Session) -> str | None:
    skills = session.skills
    return str(getattr(skills, "name", "quick answers")) if skills is not None else None


def speculative_counts(session: Session) -> tuple[int, int]:
    """Speculative replies (used, discarded) as the session's telemetry counted them."""
    counts = session.telemetry.speculative_counts()
    return counts.get("used", 0), counts.get("discarded", 0)


def _one_turn(session: Session, turns: list[TurnFinished], before: int, why: str) -> None:
    """Leave exactly one turn for the question asked since `before`: the last one (a
    pause heard as an end makes two, the first cut by the second), or a place-holder."""
    if len(turns) == before:
        turns.append(unanswered(session, why))
    del turns[before:-1]


async def ask_spoken(settings: Settings, paths: AppPaths, wavs: Sequence[Path]) -> BenchRun:
    """Each WAV in turn at real-time pace, in one conversation, as a user would talk."""
    run = BenchRun()
    async with bench_session(settings, paths) as (session, sink):
        run.skills_name = _skills_name(session)
        collector = TurnCollector(session)
        for path in wavs:
            before = len(collector.turns)
            await session.set_audio(WavFileSource(path, realtime=True), sink)
            await session.wait_capture_done()
            await session.wait_idle()
            _one_turn(session, collector.turns, before, f"no speech heard in {path.name}")
        run.turns = collector.turns
        run.speculative = speculative_counts(session)
    return run


async def ask_typed(settings: Settings, paths: AppPaths, texts: Sequence[str]) -> BenchRun:
    """Each text in a conversation of its own, so no answer leans on an earlier one."""
    run = BenchRun()
    async with bench_session(settings, paths) as (session, _sink):
        run.skills_name = _skills_name(session)
        collector = TurnCollector(session)
        for text in texts:
            await session.new_conversation()
            before = len(collector.turns)
            await session.send_text(text)
            await session.wait_idle()
            _one_turn(session, collector.turns, before, "no reply")
        run.turns = collector.turns
    return run
