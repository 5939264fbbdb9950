"""The real engine on fakes: how turns start — push-to-talk, the wake word (with its awake
window, the chime, follow-ups and stopping a reply), and always listening."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from app.engine.chime import RATE as CHIME_RATE
from app.engine.events import (
    FinalTranscript,
    Notice,
    SpeechStarted,
    State,
    StateChanged,
    TurnFinished,
    WakeWordHeard,
)
from app.store.settings import SettingsStore
from tests.support.fakes import WaitFor, fake_session, silence, speech

pytestmark = pytest.mark.timeout(20)

WAKE: dict[str, Any] = {"activation_mode": "wake_word", "activation_follow_up_s": 1.0, "activation_wake_timeout_s": 2.0}
LONG_REPLY = {"replies": [["Hello there. ", "This is the second sentence. ", "And here is a third one."], ["Okay."]]}
TONE = {"seconds": 0.5, "chunks": 5, "level": 0.05}


def wake_phrase() -> Any:
    return speech(96, tag="wake")  # the fake detector hears the phrase end in these frames


def chimes(h: Any) -> list[Any]:
    return [p for p in h.speaker.played if p.sample_rate == CHIME_RATE]


async def test_speech_without_the_wake_word_is_not_a_turn() -> None:
    async with fake_session(stt={"texts": ["what time is it"]}, **WAKE) as h:
        await h.listen([speech(384), silence(480)])
        assert h.log.of(TurnFinished) == []
        assert h.log.of(FinalTranscript) == []
        assert h.session.state is State.IDLE  # the microphone is open, but VoxDesk sleeps


async def test_the_wake_word_chimes_listens_and_the_question_is_answered() -> None:
    async with fake_session(stt={"texts": ["what time is it"]}, llm={"replies": [["It is noon."]]}, **WAKE) as h:
        # Half duplex (the fakes cancel no echo): the chime is not listened to, so a pause.
        await h.listen([silence(320), wake_phrase(), silence(480), speech(384), silence(480)])
        (heard,) = h.log.of(WakeWordHeard)
        assert heard.phrase == "okay_nabu" and not heard.stopped_reply
        (turn,) = h.log.of(TurnFinished)
        assert (turn.user_text, turn.reply_text) == ("what time is it", "It is noon.")
        # The chime sounds at once, before the question, and the phrase itself is no part of it.
        (chime,) = chimes(h)
        assert chime.at - h.log.at(heard) < 0.05
        assert chime.at < h.log.at(h.log.of(FinalTranscript)[0])
        # Asleep until the phrase; listening straight after it.
        after = h.log.events[h.log.events.index(heard) + 1 :]
        assert next(e.state for e in after if isinstance(e, StateChanged)) is State.LISTENING
        before = h.log.events[: h.log.events.index(heard)]
        assert State.LISTENING not in [e.state for e in before if isinstance(e, StateChanged)]


async def test_speech_straight_after_the_phrase_is_heard_through_the_chime() -> None:
    # Half duplex, yet the microphone stays open through the chime: people say the
    # question in the same breath as the wake phrase.
    async with fake_session(stt={"texts": ["what time is it"]}, llm={"replies": [["Noon."]]}, **WAKE) as h:
        await h.listen([wake_phrase(), speech(384, tag="question"), silence(480)])
        (turn,) = h.log.of(TurnFinished)
        (chime,) = chimes(h)
        first_word = h.mic.stamps("question")[0]
        assert first_word < chime.end  # spoken over the chime...
        assert turn.user_text == "what time is it"
        utterance_start = h.log.at(h.log.of(SpeechStarted)[0])
        assert utterance_start - first_word < 0.2  # ...and heard from its start


async def test_a_follow_up_within_the_window_needs_no_wake_word_and_later_speech_is_ignored() -> None:
    replies = {"replies": [["First."], ["Second."], ["Third."]]}
    async with fake_session(stt={"texts": ["one", "two", "three"]}, llm=replies, **WAKE) as h:
        await h.listen(
            [
                wake_phrase(),
                silence(480),
                speech(384),
                silence(480),
                WaitFor(lambda: h.session.state is not State.SPEAKING and len(h.log.of(TurnFinished)) == 1),
                silence(320),  # within the 1 s follow-up window
                speech(384),
                silence(480),
                WaitFor(lambda: len(h.log.of(TurnFinished)) == 2),
                silence(2500),  # the window closes
                speech(384),
                silence(480),
            ]
        )
        assert [t.user_text for t in h.log.of(TurnFinished)] == ["one", "two"]
        assert len(h.log.of(WakeWordHeard)) == 1
        assert h.session.state is State.IDLE


async def test_the_awake_window_closes_when_nobody_speaks() -> None:
    async with fake_session(**WAKE) as h:
        await h.listen([wake_phrase(), silence(2400)])
        assert h.log.of(TurnFinished) == []
        states = [e.state for e in h.log.of(StateChanged)]
        assert states[-2:] == [State.LISTENING, State.IDLE]


async def test_the_wake_word_while_speaking_stops_the_reply_and_listens() -> None:
    # Half duplex (no echo canceller): the microphone's speech is ignored while VoxDesk
    # speaks, but the wake-word detector still hears it.
    async with fake_session(stt={"texts": ["tell me something", "stop that"]}, llm=LONG_REPLY, tts=TONE, **WAKE) as h:
        await h.listen(
            [
                wake_phrase(),
                silence(480),
                speech(384),
                silence(480),
                WaitFor(lambda: h.session.state is State.SPEAKING),
                wake_phrase(),
                silence(480),
                speech(384),
                silence(480),
            ]
        )
        first, second = h.log.of(TurnFinished)
        assert first.interrupted
        _, again = h.log.of(WakeWordHeard)
        assert again.stopped_reply
        assert h.speaker.flushes and h.speaker.flushes[0] - h.log.at(again) < 0.05
        assert (second.user_text, second.reply_text) == ("stop that", "Okay.")


async def test_push_to_talk_keeps_the_microphone_closed_until_the_button() -> None:
    async with fake_session(stt={"texts": ["hello"]}, activation_mode="push_to_talk") as h:
        await h.listen([speech(384), silence(480)], wait=False)
        assert not h.session.microphone_live
        assert h.session.state is State.IDLE
        assert h.log.of(TurnFinished) == []


async def test_without_a_detector_the_wake_word_is_unavailable_and_push_to_talk_works() -> None:
    async with fake_session(wake={"fail": False}, stt={"texts": ["hello"]}) as h:
        h.session.stages.slots.pop("wake")
        why = h.session.set_activation("wake_word")
        assert why is not None and "Settings → Activation" in why
        assert h.session.activation.mode == "always"  # unchanged
        assert h.session.activation_choices()["wake_word"] == why
        (notice,) = [n for n in h.log.of(Notice) if "wake word is unavailable" in n.message]
        assert "Push-to-talk and the hotkey still work" in notice.message


async def test_a_wake_word_chosen_in_settings_but_unavailable_starts_in_push_to_talk() -> None:
    async with fake_session(wake={"fail": False}, **WAKE) as h:
        h.session.stages.slots.pop("wake")
        h.session._check_wake_word()
        assert h.session.activation.mode == "push_to_talk"
        assert h.session.settings.activation.mode == "wake_word"  # the user's choice is kept
        assert any("wake word is unavailable" in n.message for n in h.log.of(Notice))


async def test_a_detector_that_crashes_is_told_once_and_the_session_goes_on() -> None:
    async with fake_session(wake={"fail": True}, **WAKE) as h:
        await h.listen([wake_phrase(), silence(480), speech(384), silence(480)])
        errors = [e for e in h.log.events if getattr(e, "stage", None) == "wake"]
        assert len(errors) == 1
        assert h.log.of(TurnFinished) == []
        assert h.session.set_activation("always") is None
        assert h.session.activation.mode == "always"


async def test_switching_modes_opens_and_closes_the_microphone() -> None:
    async with fake_session(stt={"texts": ["hello"]}, activation_mode="push_to_talk") as h:
        await h.listen([WaitFor(lambda: h.session.activation.mode == "always"), speech(384), silence(480)], wait=False)
        assert not h.session.microphone_live
        h.session.set_activation("always")
        async with asyncio.timeout(5):
            while not h.session.microphone_live:
                await asyncio.sleep(0.01)
        await h.settle()
        (turn,) = h.log.of(TurnFinished)
        assert turn.user_text == "hello"


def test_schema_2_hands_free_becomes_the_activation_mode(tmp_path: Path) -> None:
    for old, mode in ((True, "always"), (False, "push_to_talk")):
        folder = tmp_path / str(old)
        folder.mkdir()
        (folder / "settings.json").write_text(
            json.dumps({"schema_version": 2, "conversation": {"hands_free": old, "language": "en"}})
        )
        loaded = SettingsStore(folder).load()
        assert loaded.settings.activation.mode == mode
        assert loaded.notices == []  # the old key is understood, not "unknown"
