"""The real engine on fakes: duplex follows the echo canceller. Auto listens during a reply
only while a canceller cleans the microphone against the speaker's reference; a canceller
that is off, crashes or removes too little leaves half duplex, and the user is told."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.engine.events import ErrorRaised, Notice, TurnFinished
from app.store.settings import SettingsStore
from tests.support.fakes import PassEcho, TappedSink, WaitFor, fake_session, silence, speech
from tests.unit.test_session_bargein import LONG_REPLY, TONE, talk_over

pytestmark = pytest.mark.timeout(20)

STT: dict[str, Any] = {"texts": ["what can you do", "stop"]}
# The cleaned microphone is a new array, without the fake frames' tags: the VAD hears
# speech by its level instead.
VAD: dict[str, Any] = {"speech_above": 0.01}


def notices(h: Any) -> list[str]:
    return [n.message for n in h.log.of(Notice)]


async def test_auto_duplex_with_a_canceller_and_a_reference_lets_the_user_talk_over_the_reply() -> None:
    async with fake_session(stt=STT, vad=VAD, llm=LONG_REPLY, tts=TONE, sink=TappedSink(), duplex="auto") as h:
        await h.listen(talk_over(h))
        first, second = h.log.of(TurnFinished)
        assert first.interrupted and second.user_text == "stop"
        echo = h.provider("echo", PassEcho)
        assert echo.processed > 0  # every frame went through it, the reply's included
        assert not any("stops listening" in n for n in notices(h))


async def test_auto_duplex_without_echo_cancellation_ignores_the_microphone_and_says_so() -> None:
    async with fake_session(
        stt=STT, vad=VAD, llm=LONG_REPLY, tts=TONE, sink=TappedSink(), duplex="auto", echo={"cancels": False}
    ) as h:
        await h.listen(talk_over(h))
        (turn,) = h.log.of(TurnFinished)
        assert not turn.interrupted
        assert len(h.vad.calls) < 51  # half duplex: frames during the reply never reach the VAD
        assert any("stops listening while it speaks" in n and "Settings → Audio" in n for n in notices(h))


async def test_a_canceller_that_crashes_is_told_once_and_leaves_half_duplex() -> None:
    async with fake_session(
        stt=STT, vad=VAD, llm=LONG_REPLY, tts=TONE, sink=TappedSink(), duplex="auto", echo={"fail": True}
    ) as h:
        await h.listen(talk_over(h))
        (turn,) = h.log.of(TurnFinished)
        assert not turn.interrupted and turn.user_text == "what can you do"  # the conversation went on
        errors = [e for e in h.log.of(ErrorRaised) if e.stage == "echo"]
        assert len(errors) == 1 and "scripted canceller failure" in errors[0].message


async def test_a_canceller_that_removes_too_little_falls_back_to_half_duplex_with_a_notice() -> None:
    # The pass-through removes nothing while the microphone hears the reply as loud as it
    # plays: after 2 s of it the measured ERLE is 0 dB, and talking over the reply stops.
    long_tone = {"seconds": 1.5, "chunks": 5, "level": 0.05}
    async with fake_session(vad=VAD, llm=LONG_REPLY, tts=long_tone, sink=TappedSink(), duplex="auto") as h:
        await h.listen(
            [
                speech(384),
                silence(384),
                WaitFor(lambda: h.speaker.is_playing),
                speech(2400, level=0.05, tag="echo"),  # the reply, heard by the microphone
                silence(960),
            ]
        )
        await h.session.wait_idle()
        assert not h.session.listener.echo_cancelling
        assert any("removes only 0 dB" in n for n in notices(h))
        (turn,) = h.log.of(TurnFinished)
        assert not turn.interrupted  # the echo gate kept our own voice out meanwhile


def test_a_schema_1_settings_file_keeps_what_the_user_chose_for_duplex(tmp_path: Path) -> None:
    for old, new in ((True, "auto"), (False, "full")):
        folder = tmp_path / str(old)
        folder.mkdir()
        (folder / "settings.json").write_text(
            json.dumps({"schema_version": 1, "conversation": {"half_duplex": old, "language": "en"}})
        )
        loaded = SettingsStore(folder).load()
        assert loaded.settings.conversation.duplex == new
        assert loaded.notices == []  # the old key is understood, not "unknown"
