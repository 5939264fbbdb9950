"""The real engine on fakes: a failing provider — fallback before the first output, never a
replay after it, deadlines, errors surfaced as `ErrorRaised`, the apology, and a session
that stays usable."""

from __future__ import annotations

import time

import pytest

from app.engine.events import ErrorRaised, Event, FinalTranscript, Notice, ProviderSwitched, TurnFinished
from app.engine.session import APOLOGY
from app.store.settings import StageSettings
from tests.support.fakes import fake_session, silence, speech

pytestmark = pytest.mark.timeout(20)

DIDNT_CATCH = "Sorry, I didn't catch that."


def notices(events: list[Notice]) -> list[str]:
    return [n.message for n in events if not n.transient]


async def test_an_llm_failing_before_its_first_word_hands_the_turn_to_the_fallback() -> None:
    async with fake_session(llm={"fail": "before_first"}, backups={"llm": {"replies": [["Backup here."]]}}) as h:
        await h.session.send_text("hello")
        (turn,) = h.log.of(TurnFinished)
        assert (turn.reply_text, turn.error, turn.providers["llm"]) == ("Backup here.", None, "backup")
        assert "llm: fake failed (PROVIDER_ERROR); using backup" in notices(h.log.of(Notice))
        assert h.log.of(ErrorRaised) == []  # the user got an answer: a notice, not an error
        assert len(h.llm.calls) == 1  # PROVIDER_ERROR is not retried on the same provider
        (row,) = h.history()
        assert row.providers["llm"] == "backup" and row.status == "complete"


async def test_an_unavailable_llm_is_retried_once_before_the_fallback() -> None:
    async with fake_session(
        llm={"fail": "before_first", "error_code": "UNAVAILABLE"}, backups={"llm": {"replies": [["Backup here."]]}}
    ) as h:
        await h.session.send_text("hello")
        assert len(h.llm.calls) == 2
        assert len(h.backup("llm", type(h.llm)).calls) == 1
        assert h.log.of(TurnFinished)[0].providers["llm"] == "backup"


async def test_a_reply_that_failed_midway_is_not_replayed_by_the_fallback() -> None:
    llm = {"fail": "after_first", "replies": [["Here is the first sentence. ", "And the rest."]]}
    async with fake_session(llm=llm, backups={"llm": {"replies": [["Backup here."]]}}) as h:
        await h.session.send_text("hello")
        (turn,) = h.log.of(TurnFinished)
        assert turn.reply_text == "Here is the first sentence."
        assert turn.providers["llm"] == "fake" and turn.error and "llm.fake" in turn.error
        assert h.backup("llm", type(h.llm)).calls == []
        (err,) = h.log.of(ErrorRaised)
        assert (err.stage, err.provider, err.turn_id) == ("llm", "fake", turn.turn_id)
        assert APOLOGY not in h.tts.texts  # a sentence was said: never restart it with an apology
        # Stored as cut mid-stream: what was said, with the error that cut it.
        (row,) = h.history()
        assert (row.status, row.reply_text) == ("interrupted", "Here is the first sentence.")
        assert row.error == turn.error


async def test_a_hanging_llm_falls_back_after_the_first_output_deadline() -> None:
    async with fake_session(
        llm={"fail": "hang"}, backups={"llm": {"replies": [["Backup here."]]}}, first_output_deadline_s=0.3
    ) as h:
        t0 = time.monotonic()
        await h.session.send_text("hello")
        elapsed = time.monotonic() - t0  # the deadline is wall-clock time (StageRunner's own clock)
        assert 0.3 <= elapsed < 1.5
        (turn,) = h.log.of(TurnFinished)
        assert turn.providers["llm"] == "backup" and turn.reply_text == "Backup here."
        assert h.llm.calls[0].cancelled  # the hung stream was closed, not left running
        assert any("fake failed (TIMEOUT)" in m for m in notices(h.log.of(Notice)))


async def test_a_hanging_llm_without_fallback_ends_the_turn_with_a_timeout_and_an_apology() -> None:
    async with fake_session(llm={"fail": "hang"}, first_output_deadline_s=0.3) as h:
        t0 = time.monotonic()
        await h.session.send_text("hello")
        assert time.monotonic() - t0 < 1.5
        (err,) = h.log.of(ErrorRaised)
        assert (err.stage, err.code) == ("llm", "TIMEOUT")
        (turn,) = h.log.of(TurnFinished)
        assert turn.error and "TIMEOUT" in turn.error and turn.reply_text == ""
        assert h.tts.texts == ["That took me too long; please ask again."]  # says what happened
        # The error comes before the turn's end, the apology is spoken before TurnFinished.
        assert h.log.index("error:llm") < h.log.index("turn_finished")


async def test_a_buggy_llm_is_reported_once_without_a_traceback_and_the_next_turn_works() -> None:
    llm = {"fail": "before_first", "error_kind": "bug", "fail_calls": [0], "replies": [["Fine now."]]}
    async with fake_session(llm=llm) as h:
        await h.session.send_text("hello")
        (err,) = h.log.of(ErrorRaised)
        assert (err.stage, err.provider, err.code) == ("llm", "fake", "PROVIDER_ERROR")
        assert "RuntimeError" in err.message and "Traceback" not in err.message
        assert h.tts.texts == [APOLOGY]
        await h.session.send_text("again")
        first, second = h.log.of(TurnFinished)
        assert first.error and second.error is None and second.reply_text == "Fine now."
        assert [r.status for r in h.history()] == ["error", "complete"]


async def test_an_empty_reply_is_an_error_not_silence() -> None:
    async with fake_session(llm={"fail": "empty"}) as h:
        await h.session.send_text("hello")
        (err,) = h.log.of(ErrorRaised)
        assert err.stage == "llm" and "empty reply" in err.message
        assert h.tts.texts == [APOLOGY]


async def test_a_voice_failing_before_its_first_audio_falls_back_to_the_next_voice() -> None:
    async with fake_session(tts={"fail": "raise"}, backups={"tts": {"sample_rate": 22050}}) as h:
        await h.session.send_text("hello")
        (turn,) = h.log.of(TurnFinished)
        assert turn.error is None and turn.providers["tts"] == "backup"
        rates = h.speaker.rates()
        assert rates and set(rates) == {22050}  # only the backup voice was heard


async def test_each_sentence_falls_back_on_its_own() -> None:
    llm = {"replies": [["Hello there. ", "How are you today?"]]}
    async with fake_session(
        llm=llm, tts={"fail": "raise", "fail_calls": [1]}, backups={"tts": {"sample_rate": 22050}}
    ) as h:
        await h.session.send_text("hello")
        (turn,) = h.log.of(TurnFinished)
        assert turn.error is None and turn.reply_text == "Hello there. How are you today?"
        # Sentence one in the chosen voice; sentence two failed before any audio and moved on.
        assert h.speaker.rates() == [16000, 16000, 22050, 22050]
        assert turn.providers["tts"] == "backup"


async def test_a_voice_that_never_answers_times_out_and_the_text_still_reaches_the_user() -> None:
    async with fake_session(tts={"fail": "hang"}, llm={"replies": [["Four."]]}, first_output_deadline_s=0.3) as h:
        t0 = time.monotonic()
        await h.session.send_text("two plus two")
        assert time.monotonic() - t0 < 1.5
        (turn,) = h.log.of(TurnFinished)
        assert turn.reply_text == "Four." and turn.error and "TIMEOUT" in turn.error
        (err,) = h.log.of(ErrorRaised)
        assert (err.stage, err.provider) == ("tts", "fake")
        assert h.tts.texts == ["Four."]  # no apology through a voice that just failed
        assert h.history()[0].reply_text == "Four."


async def test_an_stt_failing_hands_the_utterance_to_the_fallback_transcriber() -> None:
    async with fake_session(stt={"fail_all": True}, backups={"stt": {"text": "heard by the backup"}}) as h:
        await h.listen([speech(384), silence(480)])
        assert [f.text for f in h.log.of(FinalTranscript)] == ["heard by the backup"]
        (turn,) = h.log.of(TurnFinished)
        assert turn.error is None
        assert len(h.stt.calls) == 1 and len(h.backup("stt", type(h.stt)).calls) == 1


@pytest.mark.parametrize(
    "stt", [{"text": ""}, {"fail_all": True, "error_code": "UNAVAILABLE"}], ids=["heard-nothing", "failed"]
)
async def test_an_utterance_that_cannot_be_transcribed_asks_again_and_skips_the_llm(stt: dict[str, object]) -> None:
    async with fake_session(stt=stt) as h:
        await h.listen([speech(384), silence(480)])
        (err,) = h.log.of(ErrorRaised)
        assert err.stage == "stt" and err.message
        (turn,) = h.log.of(TurnFinished)
        assert turn.error and turn.turn_id == err.turn_id
        assert h.llm.calls == [] and h.log.of(FinalTranscript) == []
        assert h.tts.texts == [DIDNT_CATCH]


async def test_a_provider_that_cannot_load_is_replaced_by_its_fallback_at_start() -> None:
    async with fake_session(llm={"warmup_fails": True}, backups={"llm": {"replies": [["Backup here."]]}}) as h:
        (err,) = h.log.of(ErrorRaised)
        assert (err.stage, err.provider, err.code) == ("llm", "fake", "MODEL_MISSING")
        assert "llm: fake is not available here; using backup" in notices(h.log.of(Notice))
        assert h.session.stages["llm"].name == "backup"
        await h.session.send_text("hello")
        assert h.log.of(TurnFinished)[0].providers["llm"] == "backup"


async def test_without_a_speaker_the_reply_still_arrives_as_text() -> None:
    from tests.support.fakes import FakeClock, MemorySink

    dead = MemorySink(FakeClock(), fail_start=True)
    async with fake_session(sink=dead) as h:
        (err,) = h.log.of(ErrorRaised)
        assert (err.stage, err.provider, err.code) == ("audio", "output", "AUDIO_DEVICE")
        await h.session.send_text("hello")
        (turn,) = h.log.of(TurnFinished)
        assert turn.reply_text == "Hello there. How can I help you today?" and turn.error is None
        assert dead.played == []


async def test_a_vad_error_is_reported_and_listening_goes_on() -> None:
    async with fake_session(vad={"fail_calls": [2]}) as h:
        await h.listen([silence(160), speech(384), silence(480)])
        (err,) = h.log.of(ErrorRaised)
        assert err.stage == "vad" and err.turn_id is None
        assert len(h.log.of(TurnFinished)) == 1 and h.log.of(TurnFinished)[0].error is None


async def test_a_broken_listener_neither_breaks_the_turn_nor_starves_other_listeners() -> None:
    def broken(_event: Event) -> None:
        raise RuntimeError("listener bug")

    async with fake_session(listener=broken) as h:
        await h.session.send_text("hello")
        (turn,) = h.log.of(TurnFinished)
        assert turn.error is None and turn.reply_text
        assert h.log.labels()[-2:] == ["turn_finished", "state:idle"]


async def test_switching_the_llm_in_settings_takes_effect_on_the_next_turn() -> None:
    async with fake_session(llm={"replies": [["From fake."]]}) as h:
        new = h.session.settings.model_copy(deep=True)
        new.llm = StageSettings(provider="backup", options={"replies": [["From backup."]]})
        (switched,) = await h.session.apply_settings(new)
        assert (switched.stage, switched.provider, switched.ok) == ("llm", "backup", True)
        await h.session.send_text("hello")
        (turn,) = h.log.of(TurnFinished)
        assert (turn.providers["llm"], turn.reply_text) == ("backup", "From backup.")
        assert h.log.of(ProviderSwitched) == [switched]


async def test_a_new_provider_that_cannot_load_keeps_the_old_one() -> None:
    async with fake_session(llm={"replies": [["From fake."]]}) as h:
        new = h.session.settings.model_copy(deep=True)
        new.llm = StageSettings(provider="backup", options={"warmup_fails": True})
        (switched,) = await h.session.apply_settings(new)
        assert not switched.ok and "MODEL_MISSING" in switched.message and "kept fake" in switched.message
        assert h.session.settings.llm.provider == "fake"  # the failed change was not adopted
        await h.session.send_text("hello")
        assert h.log.of(TurnFinished)[0].reply_text == "From fake."
