"""Endpointing rules users feel: a cough is not a turn, a pause between words does not
end one, and the turn ends after the configured silence."""

from __future__ import annotations

import numpy as np

from app.engine.endpointing import FRAME_MS, Endpointer, SpeechStart
from app.engine.turn_words import Ending

FRAME = np.zeros(512, np.float32)


def run(ep: Endpointer, probs: list[float]) -> list[tuple[int, str]]:
    out = []
    for i, p in enumerate(probs):
        out += [(i, type(e).__name__) for e in ep.process(FRAME, p)]
    return out


def frames(ms: float) -> int:
    return round(ms / FRAME_MS)


def test_speech_starts_after_min_speech_and_ends_after_the_silence() -> None:
    ep = Endpointer(min_speech_ms=200, end_silence_ms=450)
    events = run(ep, [0.0] * 5 + [0.9] * frames(1000) + [0.0] * frames(600))
    names = [n for _, n in events]
    assert names == ["SpeechStart", "SilenceStart", "SpeechEnd"]
    start, _ = events[0]
    assert start == 5 + frames(200) - 1
    end, _ = events[-1]
    assert (end - (5 + frames(1000)) + 1) * FRAME_MS >= 440


def test_a_short_noise_is_not_a_turn() -> None:
    ep = Endpointer(min_speech_ms=200)
    assert run(ep, [0.9] * frames(100) + [0.0] * frames(1000)) == []


def test_scattered_clicks_do_not_add_up_to_a_turn() -> None:
    """Keyboard taps that each fire one frame, 160 ms apart, are not speech."""
    ep = Endpointer(min_speech_ms=200)
    probs = ([0.9] + [0.0] * 4) * 12
    assert run(ep, probs) == []


def test_a_quick_first_word_then_a_pause_still_starts_and_lands_in_the_pre_roll() -> None:
    ep = Endpointer(min_speech_ms=200, hangover_ms=300)
    probs = [0.0] * 10 + [0.9] * 4 + [0.0] * 5 + [0.9] * 10
    events = [e for p in probs for e in ep.process(np.full(512, 0.1, np.float32), p)]
    (start,) = [e for e in events if isinstance(e, SpeechStart)]
    assert len(start.pre_roll) >= (4 + 5 + 2) * 512  # the word "what" is kept


def test_hangover_decides_how_long_a_gap_a_candidate_survives() -> None:
    probs = [0.9] * 3 + [0.0] * frames(200) + [0.9] * 4
    assert run(Endpointer(min_speech_ms=200, hangover_ms=100), probs) == []
    assert [n for _, n in run(Endpointer(min_speech_ms=200, hangover_ms=300), probs)] == ["SpeechStart"]


def test_a_pause_between_words_resumes_instead_of_ending() -> None:
    ep = Endpointer(min_speech_ms=200, end_silence_ms=450)
    events = run(ep, [0.9] * 10 + [0.0] * frames(250) + [0.9] * 10 + [0.0] * frames(500))
    names = [n for _, n in events]
    assert names == ["SpeechStart", "SilenceStart", "SpeechResumed", "SilenceStart", "SpeechEnd"]


def test_threshold_is_honoured() -> None:
    probs = [0.6] * frames(400) + [0.0] * frames(600)
    assert run(Endpointer(threshold=0.7), probs) == []
    assert next(n for _, n in run(Endpointer(threshold=0.5), probs)) == "SpeechStart"


# -- turn detection: what the engine learns during a pause decides how long it lasts --------


def deciding() -> Endpointer:
    return Endpointer(min_speech_ms=200, end_silence_ms=448, decides=True, min_silence_ms=160, patience_ms=1500)


def pause_of(ep: Endpointer, silent_frames: int) -> tuple[int, list[str]]:
    """Speak, then stay silent; returns (the pause's number, events during the silence)."""
    run(ep, [0.9] * frames(800))
    names = [n for _, n in run(ep, [0.0] * silent_frames)]
    return ep.pause, names


def silence_until_end(ep: Endpointer, limit_ms: float = 3000) -> float | None:
    """Feed silence until the turn ends; the silence it took in ms (None: it never ended)."""
    for i in range(frames(limit_ms)):
        if any(n == "SpeechEnd" for _, n in run(ep, [0.0])):
            return (ep.speculate_frames + i + 1) * FRAME_MS
    return None


def test_a_finished_sentence_ends_after_the_short_minimum_silence() -> None:
    ep = deciding()
    pause, names = pause_of(ep, ep.speculate_frames)
    assert names == ["SilenceStart"]
    assert ep.hear_verdict(pause, True) == [] and ep.hear_text(pause, Ending.OPEN) == []
    waited = silence_until_end(ep)
    assert waited is not None and 150 <= waited <= 200


def test_answers_arriving_after_the_minimum_end_the_turn_at_once() -> None:
    ep = deciding()
    pause, _ = pause_of(ep, frames(250))
    assert ep.hear_verdict(pause, True) == []  # the words are not in yet
    assert [type(e).__name__ for e in ep.hear_text(pause, Ending.OPEN)] == ["SpeechEnd"]
    assert not ep.in_speech


def test_words_that_stop_mid_sentence_wait_for_the_patience() -> None:
    ep = deciding()
    pause, _ = pause_of(ep, ep.speculate_frames)
    ep.hear_verdict(pause, True)  # the intonation sounded final, the words do not
    ep.hear_text(pause, Ending.UNFINISHED)
    waited = silence_until_end(ep)
    assert waited is not None and 1450 <= waited <= 1550


def test_a_sure_unfinished_verdict_waits_for_the_patience_unless_the_words_close_the_sentence() -> None:
    ep = deciding()
    pause, _ = pause_of(ep, ep.speculate_frames)
    ep.hear_verdict(pause, False)  # sure: "Remind me to buy …" sounds unfinished
    assert ep.silence_frames_needed() == ep.patience_frames  # no need to wait for the words
    ep.hear_text(pause, Ending.OPEN)  # "remind me to buy": nothing says otherwise
    assert ep.silence_frames_needed() == ep.patience_frames
    ep.hear_text(pause, Ending.OPEN, punctuated=True)  # "Open the calendar.": they disagree
    assert ep.silence_frames_needed() == ep.end_silence_frames
    ep.hear_text(pause, Ending.QUESTION)  # "What time is it?": a finished question
    assert ep.silence_frames_needed() == ep.min_silence_frames


def test_a_finished_question_ends_quickly_even_before_the_detector_answers() -> None:
    ep = deciding()
    pause, _ = pause_of(ep, ep.speculate_frames)
    ep.hear_text(pause, Ending.QUESTION)
    assert ep.silence_frames_needed() == ep.min_silence_frames


def test_a_doubtful_unfinished_verdict_waits_only_when_the_words_cannot_say() -> None:
    ep = deciding()
    pause, _ = pause_of(ep, ep.speculate_frames)
    ep.hear_verdict(pause, False, sure=False)
    assert ep.silence_frames_needed() == ep.end_silence_frames  # the words are not in yet
    ep.hear_text(pause, None)  # no words to read (another language): the model decides
    assert ep.silence_frames_needed() == ep.patience_frames
    ep.hear_text(pause, Ending.OPEN)  # the words may end there: the two disagree → the silence rule
    assert ep.silence_frames_needed() == ep.end_silence_frames
    ep.hear_text(pause, Ending.UNFINISHED)  # the words stop mid-sentence
    assert ep.silence_frames_needed() == ep.patience_frames


def test_no_answer_in_time_falls_back_to_the_silence_rule() -> None:
    ep = deciding()
    pause_of(ep, ep.speculate_frames)
    waited = silence_until_end(ep)
    assert waited is not None and 440 <= waited <= 480


def test_a_detector_without_an_opinion_keeps_the_silence_rule_whatever_the_words() -> None:
    ep = deciding()
    pause, _ = pause_of(ep, ep.speculate_frames)
    ep.hear_verdict(pause, None)
    ep.hear_text(pause, Ending.UNFINISHED)
    assert ep.silence_frames_needed() == ep.end_silence_frames


def test_speech_resuming_forgets_the_pause_and_late_answers_about_it_are_ignored() -> None:
    ep = deciding()
    first, _ = pause_of(ep, ep.speculate_frames)
    assert [n for _, n in run(ep, [0.9] * 3)] == ["SpeechResumed"]
    assert ep.hear_verdict(first, True) == [] and ep.hear_text(first, Ending.OPEN) == []
    assert ep.silence_frames_needed() == ep.end_silence_frames  # nothing known about the new pause
    run(ep, [0.0] * ep.speculate_frames)
    assert ep.pause == first + 1
    run(ep, [0.0] * frames(200))
    assert ep.hear_verdict(first, True) == [] and ep.hear_text(first, Ending.OPEN) == []
    assert ep.in_speech  # answers about the old pause did not end the new one


def test_without_a_detector_answers_change_nothing() -> None:
    ep = Endpointer(min_speech_ms=200, end_silence_ms=448)
    pause, _ = pause_of(ep, ep.speculate_frames)
    assert ep.hear_verdict(pause, True) == [] and ep.hear_text(pause, Ending.OPEN) == []
    waited = silence_until_end(ep)
    assert waited is not None and 440 <= waited <= 480
