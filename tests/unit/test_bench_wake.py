"""The wake-word bench's arithmetic: noise at the SNR it says, utterances where it says, and
detections matched, attributed and judged against the bars as they should be.

The detections here are made up (a scripted detector fires where a test wants), so every
outcome can be set on purpose; the real models are in tests/integration/test_wake_word_models.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from app.commands.bench_wake import (
    BARS,
    FRAME,
    GAP_S,
    LATE_S,
    NOISE_LEAD_S,
    NOISE_TAIL_S,
    REPLIES,
    TTS_VARIANTS,
    Fired,
    Utterance,
    active_level,
    at_level,
    feed,
    lay_out,
    looped,
    match,
    meets,
    mix_at_snr,
    noisy_copies,
    pink_noise,
    positives_summary,
    rms,
    source_of,
    wake_table,
    white_noise,
)
from app.plugin.provider_api import SAMPLE_RATE, Health, HealthStatus, WakeDetection, WakeWordDetector

RATE = SAMPLE_RATE


def _tone(seconds: float, amp: float = 0.3, hz: float = 440.0) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _band_power(x: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / RATE)
    return float(spec[(f >= lo) & (f < hi)].sum())


def test_pink_noise_has_equal_power_per_octave_and_white_does_not() -> None:
    rng = np.random.default_rng(0)
    pink, white = pink_noise(RATE * 8, rng), white_noise(RATE * 8, rng)
    assert rms(pink) == pytest.approx(1.0, rel=1e-3)
    low, high = _band_power(pink, 250, 500), _band_power(pink, 2000, 4000)
    assert low / high == pytest.approx(1.0, abs=0.25)
    # White noise: power grows with bandwidth, 8× from the lower octave to the upper one.
    assert _band_power(white, 2000, 4000) / _band_power(white, 250, 500) == pytest.approx(8.0, rel=0.2)


def test_active_level_ignores_the_gaps_between_words() -> None:
    word = _tone(0.3, 0.2)
    with_gaps = np.concatenate([word, np.zeros(RATE), word])
    assert active_level(with_gaps) == pytest.approx(rms(word), rel=0.01)
    assert rms(with_gaps) < 0.7 * rms(word)  # the plain RMS would call it quieter
    assert 20 * np.log10(active_level(at_level(with_gaps, -20.0))) == pytest.approx(-20.0, abs=0.01)


def test_noise_is_mixed_at_the_snr_asked_for() -> None:
    speech = np.concatenate([_tone(0.4, 0.1), np.zeros(RATE // 2, np.float32), _tone(0.4, 0.1)])
    noise = white_noise(len(speech) + 3 * RATE, np.random.default_rng(1))
    lead, tail = 2 * RATE, RATE
    mixed = mix_at_snr(speech, noise, 10.0, lead, tail)
    assert len(mixed) == lead + len(speech) + tail
    noise_alone = mixed[:lead]
    snr = 20 * np.log10(active_level(speech) / rms(noise_alone))
    assert snr == pytest.approx(10.0, abs=0.3)


def test_noisy_copies_take_white_and_pink_in_turn_and_know_where_the_speech_ends() -> None:
    clean = [Utterance(_tone(0.5), "a"), Utterance(_tone(0.7), "b")]
    noisy = noisy_copies(clean, np.random.default_rng(2))
    assert [u.noise for u in noisy] == ["white 10 dB SNR", "pink 10 dB SNR"]
    for c, n in zip(clean, noisy, strict=True):
        assert n.tail == round(NOISE_TAIL_S * RATE)
        assert n.speech_end == round(NOISE_LEAD_S * RATE) + len(c.audio)
        assert c.speech_end == len(c.audio)


def test_lay_out_places_each_piece_after_a_gap() -> None:
    pieces = [_tone(0.5), _tone(1.0)]
    layout = lay_out(pieces, np.random.default_rng(3))
    gap = round(GAP_S * RATE)
    assert layout.spans == [(gap, gap + len(pieces[0])), (2 * gap + len(pieces[0]), 2 * gap + sum(map(len, pieces)))]
    assert len(layout.audio) == 3 * gap + sum(map(len, pieces))
    s, e = layout.spans[1]
    np.testing.assert_array_equal(layout.audio[s:e], pieces[1])
    assert rms(layout.audio[:gap]) == pytest.approx(10 ** (-60 / 20), rel=0.05)


def test_match_takes_the_first_detection_near_each_end_and_calls_the_rest_false() -> None:
    fired = [Fired(1.1, 0.2, 0.9), Fired(1.3, 0.2, 0.9), Fired(5.0, 0.2, 0.9), Fired(9.0 + LATE_S + 0.1, 0.2, 0.9)]
    hits, stray = match(fired, [1.0, 4.8, 9.0])
    assert hits == [fired[0], fired[2], None]
    assert stray == [fired[1], fired[3]]
    # A detection on the last syllable, a little before the end, still counts.
    assert match([Fired(0.7, 0.0, 0.9)], [1.0])[0] == [Fired(0.7, 0.0, 0.9)]


def test_false_wakes_are_put_down_to_the_piece_they_came_in() -> None:
    layout = lay_out([_tone(1.0), _tone(1.0)], np.random.default_rng(4))
    labels = ["people", "replies"]
    (_, end0), (start1, _) = layout.spans
    assert source_of(end0 / RATE, layout, labels) == "people"
    assert source_of(start1 / RATE + 0.5, layout, labels) == "replies"
    assert source_of(0.1, layout, labels) == "quiet"


def test_positives_summary_counts_groups_latency_and_the_ended_ago_error() -> None:
    utts = [
        Utterance(_tone(0.1), "espeak-ng en-us 140 wpm"),
        Utterance(_tone(0.1), "reply engine tone rate 1.0"),
        Utterance(_tone(0.1), "reply engine tone rate 0.8", "pink 10 dB SNR"),
    ]
    ends = [1.0, 5.0, 9.0]
    hits = [Fired(1.2, 0.15, 0.9), Fired(5.1, 0.1, 0.95), None]
    out = positives_summary(utts, hits, ends)
    assert out["detected"] == 2 and out["detected_percent"] == pytest.approx(66.7)
    assert out["by_group"] == {"espeak-ng clean": "1/1", "reply engine clean": "1/1", "reply engine noisy": "0/1"}
    assert out["latency_ms"]["p50"] == pytest.approx(150.0, abs=0.5)
    assert out["ended_ago_error_ms"]["p95"] == pytest.approx(50.0, abs=3)
    assert out["missed"] == ["reply engine tone rate 0.8, pink 10 dB SNR"]


class Scripted(WakeWordDetector):
    """Fires once the stream reaches each of `at` (in samples); counts resets."""

    name = "scripted"

    def __init__(self, at: list[int]) -> None:
        self.at, self.heard, self.resets = list(at), 0, 0

    @property
    def phrases(self) -> tuple[str, ...]:
        return ("test",)

    def process(self, audio: np.ndarray) -> WakeDetection | None:
        self.heard += len(audio)
        if self.at and self.heard >= self.at[0]:
            self.at.pop(0)
            return WakeDetection("test", 0.9, 0.25)
        return None

    def reset(self) -> None:
        self.resets += 1

    async def health(self) -> Health:
        return Health(HealthStatus.OK)


def test_feed_goes_frame_by_frame_and_resets_after_each_detection() -> None:
    det = Scripted([RATE, 3 * RATE])
    fired, cpu = feed(det, np.zeros(4 * RATE + 100, np.float32))
    assert det.heard == 4 * RATE + 100 and det.resets == 2
    # Reported at the end of the frame the detection came in.
    assert [f.at_s for f in fired] == [FRAME * -(-RATE // FRAME) / RATE, FRAME * -(-3 * RATE // FRAME) / RATE]
    assert all(f.ended_ago_s == 0.25 for f in fired) and cpu >= 0.0


def _result(detected: float, per_10: float, replies: int, cpu: float) -> dict[str, Any]:
    return {
        "positives": {"detected_percent": detected},
        "negatives": {"per_10_min": per_10, "by_source": {"replies": replies}, "cpu_percent_of_one_core": cpu},
    }


def test_bars_are_judged_at_their_edges() -> None:
    assert meets(_result(90.0, 1.0, 0, BARS["cpu_percent"])) == {
        "detected": True,
        "false_wakes": True,
        "replies": True,
        "cpu": True,
    }
    assert meets(_result(89.9, 1.1, 1, BARS["cpu_percent"] + 0.01)) == {
        "detected": False,
        "false_wakes": False,
        "replies": False,
        "cpu": False,
    }


def test_looped_recordings_fill_the_time_at_varied_levels() -> None:
    recs = [("a.wav", _tone(2.0, 0.1)), ("b.wav", _tone(3.0, 0.1))]
    out = looped(recs, 30.0, np.random.default_rng(5))
    assert sum(len(u.audio) / RATE + GAP_S for u in out) >= 30.0
    assert [u.voice.split()[-1] for u in out[:3]] == ["a.wav", "b.wav", "a.wav"]
    levels = {round(rms(u.audio), 4) for u in out}
    assert len(levels) > 3


def test_the_corpus_is_big_enough_for_the_bars() -> None:
    from app.commands.bench_turns import VOICES

    # ≥ 20 utterances per phrase: every espeak-ng voice and Piper variant, clean and noisy.
    assert 2 * (len(VOICES) + len(TTS_VARIANTS)) >= 20
    # None of the reply engine's variants is the reply voice's own settings (joe: 1.0, 0.667, 0.8).
    assert len(set(TTS_VARIANTS)) == len(TTS_VARIANTS) and (1.0, 0.667, 0.8) not in TTS_VARIANTS
    assert len(REPLIES) >= 10


def test_the_table_ticks_each_bar() -> None:
    row = {
        "offered": True,
        "text": "Okay Nabu",
        "positives": {
            "detected": 30,
            "utterances": 32,
            "detected_percent": 93.8,
            "latency_ms": {"p50": 150.0, "p95": 260.0},
            "ended_ago_error_ms": {"p50": 40.0, "p95": 90.0},
            "by_group": {"espeak-ng clean": "10/10"},
        },
        "negatives": {"per_10_min": 2.0, "by_source": {"replies": 1}, "cpu_percent_of_one_core": 0.3},
    }
    row["meets"] = meets(row)
    report = {
        "machine": {"cpu": "CPU", "cores": 2, "load_average_1m": 1.0},
        "wall_s": 1.0,
        "negative_minutes": 10.2,
        "negative_utterances": {"people": 3, "conversation": 2, "replies": 1},
        "providers": {"micro-wake-word": {"okay_nabu": row}},
    }
    text = "\n".join(wake_table(report))
    line = next(x for x in text.splitlines() if x.startswith("micro-wake-word okay_nabu"))
    assert "30/32 94% ✓" in line and "2.0 ✗" in line and "1 ✗" in line and "0.30 ✓" in line
    assert "150/260" in line and "10.2 min" in text


def test_the_reply_engine_variants_change_only_what_the_engine_has() -> None:
    from app.commands.bench_wake import ReplyEngine
    from app.store.settings import Settings

    tts = Settings().stage("tts")
    engine = ReplyEngine(tts.provider, {**tts.options, "volume": 0.9})
    fields = set(engine._fields)
    own = engine.variant_options(None)
    assert own.get("volume") == 0.9 and not {"speaking_rate", "noise_scale"} & set(own)
    varied = engine.variant_options((0.8, 0.9, 1.0))
    for key, value in zip(("speaking_rate", "noise_scale", "noise_w_scale"), (0.8, 0.9, 1.0), strict=True):
        assert varied.get(key) == (value if key in fields else None)
    assert varied["volume"] == 0.9
