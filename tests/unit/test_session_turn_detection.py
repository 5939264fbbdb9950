"""The turn detector in the real engine, on fakes: a finished sentence ends the turn
after a short silence, a pause mid-sentence does not cut the user off, and a detector
that fails or is slow leaves the silence rule in charge."""

from __future__ import annotations

import pytest

from app.engine.events import TurnFinished
from tests.support.fakes import ScriptedTurn, fake_session, silence, speech

pytestmark = pytest.mark.timeout(20)

#: The silence rule of the fakes' settings is 320 ms; the detector may end a turn after 160.
QUICK = {"endpoint_silence_ms": 448, "turn_min_silence_ms": 160, "turn_patience_ms": 1500}


def endpoint_ms(turn: TurnFinished) -> float:
    return turn.timings["vad_endpoint"] * 1000


async def test_a_finished_sentence_ends_the_turn_well_before_the_silence_rule() -> None:
    async with fake_session(turn={"finished": True}, stt={"text": "what time is it"}, **QUICK) as h:
        await h.listen([silence(320), speech(800), silence(1200)])
        (turn,) = h.log.of(TurnFinished)
        assert turn.user_text == "what time is it"
        assert 150 <= endpoint_ms(turn) <= 260
        assert h.provider("turn", ScriptedTurn).asked  # asked once the pause began


async def test_a_pause_after_an_unfinished_phrase_does_not_cut_the_user_off() -> None:
    """ "Set a timer for … five minutes": the intonation sounded final, the words do not."""
    stt = {"texts": ["set a timer for", "set a timer for five minutes"]}
    async with fake_session(turn={"finished": True}, stt=stt, **QUICK) as h:
        await h.listen([silence(320), speech(700), silence(900), speech(600), silence(1200)])
        (turn,) = h.log.of(TurnFinished)
        assert turn.user_text == "set a timer for five minutes"
        assert 150 <= endpoint_ms(turn) <= 260  # the finished sentence then ends quickly


async def test_an_unfinished_verdict_waits_up_to_the_patience_then_ends() -> None:
    async with fake_session(turn={"finished": False}, stt={"text": "what's the weather in"}, **QUICK) as h:
        await h.listen([silence(320), speech(800), silence(2200)])
        (turn,) = h.log.of(TurnFinished)
        assert 1450 <= endpoint_ms(turn) <= 1600


@pytest.mark.parametrize("turn", [{"fail": True}, {"finished": True, "delay_s": 1.0}, {"finished": None}])
async def test_a_failing_slow_or_silent_detector_leaves_the_silence_rule(turn: dict[str, object]) -> None:
    async with fake_session(turn=turn, stt={"text": "what time is it"}, **QUICK) as h:
        await h.listen([silence(320), speech(800), silence(1200)])
        (finished,) = h.log.of(TurnFinished)
        assert finished.user_text == "what time is it" and finished.error is None
        assert 440 <= endpoint_ms(finished) <= 520


async def test_switching_the_detector_in_settings_takes_effect_for_the_next_turn() -> None:
    async with fake_session(turn={"finished": True}, stt={"text": "what time is it"}, **QUICK) as h:
        await h.listen([silence(320), speech(800), silence(1200)])
        new = h.session.settings.model_copy(deep=True)
        new.turn.options = {"finished": None}
        await h.session.apply_settings(new)
        await h.listen([silence(320), speech(800), silence(1200)])
        first, second = h.log.of(TurnFinished)
        assert endpoint_ms(first) <= 260 and endpoint_ms(second) >= 440
