"""The real engine on fakes: one turn, typed or spoken — event order, partials, the
speculative transcript, the endpoint, the reply, timings and the history row.

The order rules are the ones `app/engine/events.py` documents; where the engine is more
precise than that docstring (a spoken turn is "thinking" while it transcribes, so
`StateChanged(thinking)` comes before `FinalTranscript`; speaking starts as soon as the
first sentence is synthesized, so later `ReplyDelta`s follow `StateChanged(speaking)`),
the tests pin what the engine does.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from app.engine.events import (
    AudioLevel,
    Event,
    FinalTranscript,
    Notice,
    PartialTranscript,
    ReplyDelta,
    SpeechEnded,
    SpeechStarted,
    State,
    StateChanged,
    TurnFinished,
)
from app.plugin.provider_api import ChatMessage
from tests.support.fakes import FRAME_S, fake_session, reopen_history, silence, speech, until

pytestmark = pytest.mark.timeout(20)

THREE_SENTENCES: dict[str, Any] = {"replies": [["Hello there. ", "How are you today? ", "Bye now."]], "delay_s": 0.1}


def turn_scoped(events: list[Event]) -> list[Event]:
    return [
        e
        for e in events
        if isinstance(e, FinalTranscript | ReplyDelta | TurnFinished)
        or (isinstance(e, StateChanged) and e.state in (State.THINKING, State.SPEAKING))
    ]


async def test_a_typed_turn_emits_final_thinking_deltas_speaking_finished_then_rest() -> None:
    async with fake_session(llm=THREE_SENTENCES) as h:
        await h.session.send_text("  hi  ")
        labels = h.log.labels()
        assert labels[:3] == ["final", "state:thinking", "delta"], labels
        assert labels[-2:] == ["turn_finished", "state:idle"], labels  # no microphone: rest is idle
        speaking = h.log.index("state:speaking")
        assert h.log.index("delta") < speaking < h.log.index("turn_finished")
        assert h.log.last_index("delta") < h.log.index("turn_finished")
        assert labels.count("state:speaking") == 1
        (final,) = h.log.of(FinalTranscript)
        assert final.text == "hi"  # what the user typed, trimmed
        assert h.session.state is State.IDLE


async def test_every_event_of_a_turn_carries_that_turns_id() -> None:
    async with fake_session() as h:
        await h.session.send_text("one")
        await h.session.send_text("two")
        first, second = h.log.of(TurnFinished)
        assert first.turn_id and second.turn_id and first.turn_id != second.turn_id
        split = h.log.events.index(first) + 1
        for events, turn in ((h.log.events[:split], first), (h.log.events[split:], second)):
            scoped = turn_scoped(events)
            assert scoped and {e.turn_id for e in scoped} == {turn.turn_id}


async def test_the_reply_is_spoken_sentence_by_sentence_while_the_llm_still_writes() -> None:
    llm = {**THREE_SENTENCES, "delay_s": 0.25}
    async with fake_session(llm=llm, tts={"seconds": 0.1, "chunks": 2}) as h:
        await h.session.send_text("hi")
        (turn,) = h.log.of(TurnFinished)
        assert turn.reply_text == "Hello there. How are you today? Bye now."
        assert [d.text for d in h.log.of(ReplyDelta)] == ["Hello there. ", "How are you today? ", "Bye now."]
        # The chunker's sentences, in order; the short tail is merged into the second one.
        assert h.tts.texts == ["Hello there.", "How are you today? Bye now."]
        played = h.speaker.played
        assert len(played) == 4
        # A sentence's chunks play back to back; nothing overlaps; sentences in order.
        assert played[1].at == pytest.approx(played[0].end, abs=1e-6)
        assert played[3].at == pytest.approx(played[2].end, abs=1e-6)
        assert all(b.at >= a.end - 1e-6 for a, b in itertools.pairwise(played))
        # The first sentence sounded before the model had finished writing.
        (call,) = h.llm.calls
        assert call.ended_at is not None and played[0].at < call.ended_at


async def test_a_spoken_turn_follows_the_documented_event_order() -> None:
    async with fake_session(stt={"partials": ["what", "what time"]}, llm=THREE_SENTENCES) as h:
        await h.listen([silence(160), speech(384), silence(480)], hold=True)
        labels = h.log.labels()
        assert labels[:6] == [
            "state:listening",
            "speech_started",
            "partial",
            "speech_ended",
            "state:thinking",
            "final",
        ], labels
        assert labels[-2:] == ["turn_finished", "state:listening"], labels  # the microphone is still open
        assert h.log.index("final") < h.log.index("delta") < h.log.index("state:speaking")
        assert h.log.last_index("delta") < h.log.index("turn_finished")
        assert h.session.state is State.LISTENING


async def test_partials_stream_in_order_while_the_user_speaks() -> None:
    async with fake_session(stt={"partials": ["what", "what time", "what time is"], "partial_every": 4}) as h:
        await h.listen([speech(480), silence(480)])
        assert [p.text for p in h.log.of(PartialTranscript)] == ["what", "what time", "what time is"]
        ended = h.log.events.index(h.log.of(SpeechEnded)[0])
        started = h.log.events.index(h.log.of(SpeechStarted)[0])
        assert all(started < h.log.events.index(p) < ended for p in h.log.of(PartialTranscript))
        # Partials stop when silence begins (the speculative decode takes over): of the
        # 25 frames fed before the endpoint, the stream saw at most those up to silence.
        (streamed,) = h.stt.streamed_frames
        assert 12 <= streamed <= 15 + 4


async def test_speech_and_endpoint_durations_come_from_the_audio_timeline() -> None:
    async with fake_session(endpoint_silence_ms=320) as h:
        await h.listen([speech(384), silence(640)])
        (ended,) = h.log.of(SpeechEnded)
        assert ended.duration_s == pytest.approx(12 * FRAME_S, abs=1e-6)  # 12 frames of speech
        (turn,) = h.log.of(TurnFinished)
        assert turn.timings["vad_endpoint"] == pytest.approx(10 * FRAME_S, abs=1e-6)  # 320 ms of silence
        # Voice to voice: from the end of speech to the first reply sample on the speaker.
        last_speech = h.mic.stamps("speech")[-1]
        first_sample = h.speaker.played[0].at
        assert turn.voice_to_voice_s == pytest.approx(first_sample - last_speech, abs=1e-6)
        assert turn.voice_to_voice_s is not None
        assert turn.timings["vad_endpoint"] <= turn.voice_to_voice_s < turn.timings["vad_endpoint"] + 0.4


async def test_the_whole_utterance_reaches_stt_including_the_pre_roll() -> None:
    async with fake_session() as h:
        await h.listen([silence(320), speech(384), silence(480)])
        (call,) = h.stt.calls
        assert call.speech_frames == 12  # not a word lost, though VAD confirmed speech 3 frames in
        assert not call.audio[:512].any()  # audio from before the VAD fired is kept (pre-roll)
        assert call.language == "en"
        (final,) = h.log.of(FinalTranscript)
        assert final.text == "what time is it"


async def test_the_speculative_transcript_is_ready_when_the_endpoint_fires() -> None:
    # Silence starts a decode after 128 ms; 450 ms of silence end the turn; STT takes 150 ms.
    async with fake_session(stt={"delay_s": 0.15}, endpoint_silence_ms=450) as h:
        await h.listen([speech(384), silence(640)])
        (call,) = h.stt.calls  # one decode: the speculative one was used, not redone
        (ended,) = h.log.of(SpeechEnded)
        endpoint = h.log.at(ended)
        assert call.at < endpoint and call.done_at is not None and call.done_at < endpoint
        (turn,) = h.log.of(TurnFinished)
        assert turn.timings["stt"] < 0.1  # only the wait after the endpoint counts
        (final,) = h.log.of(FinalTranscript)
        assert h.log.at(final) - endpoint < 0.12  # less than the 150 ms decode


async def test_speech_that_resumes_restarts_the_speculative_transcript() -> None:
    async with fake_session(stt={"texts": ["what time", "what time is it"]}, endpoint_silence_ms=320) as h:
        # A pause long enough to start a speculative decode (128 ms), too short to end the turn.
        await h.listen([speech(384), silence(224), speech(256), silence(480)])
        first, second = h.stt.calls
        assert second.speech_frames == first.speech_frames + 8  # the words after the pause
        assert [f.text for f in h.log.of(FinalTranscript)] == ["what time is it"]
        assert len(h.log.of(TurnFinished)) == 1 and len(h.log.of(SpeechStarted)) == 1


async def test_timings_measure_each_stage_from_the_start_of_the_reply() -> None:
    llm = {"replies": [["Hello there. ", "Fine."]], "first_delay_s": 0.2, "delay_s": 0.05}
    async with fake_session(llm=llm, tts={"first_delay_s": 0.05}) as h:
        await h.session.send_text("hi")
        (turn,) = h.log.of(TurnFinished)
        t = turn.timings
        assert set(t) >= {"llm_first_token", "llm", "tts_first_audio", "tts", "playback_start"}
        assert 0.2 <= t["llm_first_token"] < 0.35
        assert 0.25 <= t["llm"] < 0.45
        # The first sentence is complete with the first delta (0.2: the spoken-reply filter
        # vouches for its end, no waiting for the next token), then 50 ms of synthesis.
        assert 0.25 <= t["tts_first_audio"] < 0.45
        assert t["playback_start"] == pytest.approx(t["tts_first_audio"], abs=0.05)
        assert turn.voice_to_voice_s is None  # typed: no voice to start from
        assert turn.providers == {
            "vad": "fake",
            "stt": "fake",
            "llm": "fake",
            "tts": "fake",
            "turn": "fake",
            "echo": "fake",
            "wake": "fake",
        }


async def test_each_turn_writes_a_history_row_and_the_llm_sees_the_conversation() -> None:
    async with fake_session(llm={"replies": [["Four."], ["Eight."]]}, system_prompt="Be brief.") as h:
        await h.session.send_text("two plus two")
        await h.session.send_text("and doubled")
        rows = h.history()
        assert [(r.user_text, r.reply_text, r.status) for r in rows] == [
            ("two plus two", "Four.", "complete"),
            ("and doubled", "Eight.", "complete"),
        ]
        assert rows[0].providers["llm"] == "fake" and "llm_first_token" in rows[0].timings
        system, *second = h.llm.calls[1].messages
        # The engine's spoken-assistant prompt around the user's own (tests/unit/test_spoken_prompt.py).
        assert system.role == "system" and "\n\nBe brief.\n\n" in system.content
        assert second == [
            ChatMessage("user", "two plus two"),
            ChatMessage("assistant", "Four."),
            ChatMessage("user", "and doubled"),
        ]
        session = h.session
    on_disk = reopen_history(session)
    assert [(r.user_text, r.reply_text, r.status) for r in on_disk] == [
        ("two plus two", "Four.", "complete"),
        ("and doubled", "Eight.", "complete"),
    ]


async def test_a_spoken_turn_stores_its_voice_to_voice_latency() -> None:
    async with fake_session() as h:
        await h.listen([speech(384), silence(480)])
        (turn,) = h.log.of(TurnFinished)
        (row,) = h.history()
        assert row.user_text == "what time is it" and row.status == "complete"
        assert turn.voice_to_voice_s is not None
        assert row.voice_to_voice_ms == pytest.approx(turn.voice_to_voice_s * 1000)
        assert row.timings["vad_endpoint"] == pytest.approx(turn.timings["vad_endpoint"])


async def test_push_to_talk_turns_what_was_said_while_pressed_into_a_turn() -> None:
    async with fake_session(activation_mode="push_to_talk") as h:
        source = await h.listen([speech(2000)], hold=True, wait=False)
        assert not h.session.microphone_live  # hands-free off: the microphone stays closed
        h.session.push_to_talk(True)
        await until(lambda: len(source.yielded) >= 16)
        h.session.push_to_talk(False)
        await h.log.wait_for_kind(TurnFinished)
        fed = len(source.yielded)
        (call,) = h.stt.calls
        assert 16 <= len(call.audio) // 512 <= fed
        assert h.vad.calls == []  # the button, not the VAD, decides where speech starts and ends
        assert (
            h.log.index("speech_started")
            < h.log.index("speech_ended")
            < h.log.index("final")
            < h.log.index("turn_finished")
        )


async def test_push_to_talk_enters_listening_before_speech_starts() -> None:
    async with fake_session(activation_mode="push_to_talk") as h:
        await h.listen([speech(2000)], hold=True, wait=False)
        h.session.push_to_talk(True)
        assert h.log.labels()[:2] == ["state:listening", "speech_started"]
        h.session.push_to_talk(False)


async def test_a_push_to_talk_tap_is_too_short_to_be_a_turn() -> None:
    async with fake_session(activation_mode="push_to_talk") as h:
        await h.listen([speech(2000)], hold=True, wait=False)
        h.session.push_to_talk(True)
        h.session.push_to_talk(False)
        notice = await h.log.wait_for(lambda e: isinstance(e, Notice) and "too short" in e.message)
        assert isinstance(notice, Notice) and "hold the talk button" in notice.message
        await h.session.wait_idle()
        assert h.log.of(TurnFinished) == [] and h.log.of(SpeechEnded) == []
        assert h.stt.calls == [] and h.llm.calls == []
        assert h.session.state is State.IDLE


async def test_audio_levels_follow_the_microphone_while_capturing() -> None:
    async with fake_session() as h:
        await h.listen([silence(320), speech(640, level=0.5), silence(640)])
        levels = h.log.of(AudioLevel)
        frames = len(h.mic.yielded)
        assert 10 <= len(levels) / (frames * FRAME_S) <= 35  # a meter's worth per second of audio
        # A 0.5-peak tone reads -6 dBFS peak, -9 dBFS RMS; silence reads the floor.
        loud = [lv for lv in levels if lv.peak_dbfs > -20]
        assert loud and all(lv.peak_dbfs == pytest.approx(-6.02, abs=0.1) for lv in loud)
        assert all(lv.rms_dbfs == pytest.approx(-9.03, abs=0.2) for lv in loud)
        assert levels[0].peak_dbfs < -100
        assert 8 <= len(loud) <= 12  # the 20 loud frames, every other one
