"""Endpointing rules users feel: a cough is not a turn, a pause between words does not
end one, and the turn ends after the configured silence."""

from __future__ import annotations

import numpy as np

from app.engine.endpointing import FRAME_MS, Endpointer, SpeechStart

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
