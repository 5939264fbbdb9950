"""The turn-taking bench: its labelled set is what it says, and its figures are the right sums.

The audio helpers and the recorded people (Debian's pocketsphinx-testdata, installed by
packaging/linux/system-deps.sh test) are real; the turns the report judges are made up,
so every outcome can be set on purpose.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from app.audio.files import load_wav
from app.commands.bench_stats import per_turn
from app.commands.bench_turns import (
    BARS,
    COMPLETE_TEXTS,
    HUMAN_DIR,
    INCOMPLETE_TEXTS,
    LEAD_S,
    NOISE_DBFS,
    PAUSES_S,
    RECORDINGS,
    TAIL_S,
    VOICES,
    Heard,
    Label,
    Utterance,
    build_corpus,
    check_human_dir,
    detector_settings,
    heard_words,
    judge,
    lay_out,
    load_recording,
    quietest_near,
    room_noise,
    summarise,
    trim_silence,
    turn_table,
)
from app.engine.events import TurnFinished
from app.plugin.errors import VoiceError
from app.plugin.provider_api import SAMPLE_RATE
from app.store.settings import Settings

RATE = SAMPLE_RATE


def _tone(seconds: float, amp: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return (amp * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def _db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2))))


# -- the set ------------------------------------------------------------------------------
def test_the_set_is_large_enough_and_paused_where_the_sentence_is_unfinished() -> None:
    espeak = len(COMPLETE_TEXTS) + len(INCOMPLETE_TEXTS)
    human = len(RECORDINGS) + sum(r.split_s is not None for r in RECORDINGS)
    assert espeak + human >= 40
    assert all(0.5 <= p <= 1.2 for p in PAUSES_S)
    assert TAIL_S >= 2.0  # longer than the patience on an unfinished sentence
    assert not any("joe" in v for v, _ in VOICES)  # never the reply voice
    assert all(130 <= wpm <= 175 for _, wpm in VOICES)
    for first, second, tail in INCOMPLETE_TEXTS:
        # A transcript of the first half alone must not pass for one that heard the second.
        said = {w.strip(",.?").lower() for w in first.split()}
        assert not any(w.startswith(t) for w in said for t in tail), first
        assert first.endswith(","), first  # espeak keeps the voice up, as a pause mid-sentence does
        assert heard_words(second, tail), second  # and one that heard it passes


def test_a_missing_testdata_folder_is_one_message_saying_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(VoiceError) as e:
        check_human_dir(tmp_path)
    assert "pocketsphinx-testdata" in e.value.message and str(tmp_path) in e.value.message


# -- audio --------------------------------------------------------------------------------
def test_halves_are_laid_out_with_the_exact_pause_and_room_noise_under_all() -> None:
    rng = np.random.default_rng(1)
    first, second = _tone(0.8), _tone(0.5)
    audio, second_at = lay_out([first, second], 0.7, rng)
    assert len(audio) == round((LEAD_S + 0.8 + 0.7 + 0.5 + TAIL_S) * RATE)
    assert second_at == pytest.approx(LEAD_S + 0.8 + 0.7)
    pause = audio[round((LEAD_S + 0.8) * RATE) : round(second_at * RATE)]
    assert _db(pause) == pytest.approx(NOISE_DBFS, abs=0.5)
    assert _db(audio[-round(TAIL_S * RATE) :]) == pytest.approx(NOISE_DBFS, abs=0.5)
    assert _db(audio[round(second_at * RATE) : round((second_at + 0.5) * RATE)]) > -15  # the second half


def test_trim_silence_leaves_only_the_sound() -> None:
    quiet = np.zeros(800, np.float32)
    tone = _tone(0.2)
    trimmed = trim_silence(np.concatenate([quiet, tone, quiet]))
    assert abs(len(trimmed) - len(tone)) <= 2
    assert len(trim_silence(quiet)) == 0


def test_a_recording_is_cut_in_its_quietest_spot_near_the_hint() -> None:
    audio = np.concatenate([_tone(0.5), np.zeros(round(0.04 * RATE), np.float32), _tone(0.5)])
    cut = quietest_near(audio, 0.49)  # the gap is 0.50-0.54 s
    assert 0.50 * RATE <= cut <= 0.54 * RATE
    with pytest.raises(ValueError):
        quietest_near(audio, 5.0)


def test_raw_recordings_are_read_as_16_bit_16khz(tmp_path: Path) -> None:
    raw = tmp_path / "x.raw"
    (np.array([0, 16384, -32768], "<i2")).tofile(raw)
    assert load_recording(raw).tolist() == [0.0, 0.5, -1.0]


def test_room_noise_is_at_its_level() -> None:
    assert _db(room_noise(2.0, np.random.default_rng(0))) == pytest.approx(NOISE_DBFS, abs=0.2)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (system-deps.sh)")
async def test_the_whole_set_is_built_from_espeak_and_the_recorded_people(tmp_path: Path) -> None:
    check_human_dir(HUMAN_DIR)  # installed by system-deps.sh test; its message says how otherwise
    corpus = await build_corpus(tmp_path)
    assert len(corpus) >= 40 and len({u.name for u in corpus}) == len(corpus)
    labels = [u.label for u in corpus]
    assert labels.count("incomplete") >= 20 and labels.count("complete") >= 20
    assert sum(u.voice.startswith("pocketsphinx") for u in corpus) >= 15
    for u in corpus:
        audio = load_wav(u.wav)
        assert audio.dtype == np.float32 and len(audio) / RATE > LEAD_S + TAIL_S + 0.3
        assert _db(audio[: round(0.4 * RATE)]) < -55 and _db(audio[-round(2.0 * RATE) :]) < -55, u.name
        if u.label == "incomplete":
            assert u.pause_s is not None and u.second_at_s is not None and u.tail_words
            gap = audio[round((u.second_at_s - u.pause_s + 0.05) * RATE) : round((u.second_at_s - 0.05) * RATE)]
            assert _db(gap) < -55, u.name  # the pause is quiet; the halves around it are not
            assert _db(audio[round(u.second_at_s * RATE) :][: round(0.3 * RATE)]) > -45, u.name


# -- judging and the report ---------------------------------------------------------------------
def _turn(
    user: str, endpoint_s: float = 0.2, stt_s: float = 0.05, v2v: float | None = 0.4, error: str | None = None
) -> TurnFinished:
    return TurnFinished(
        user_text=user,
        reply_text="ok",
        interrupted=False,
        timings={"vad_endpoint": endpoint_s, "stt": stt_s},
        voice_to_voice_s=v2v,
        providers={"turn": "smart-turn", "llm": "skills"},
        error=error,
    )


def _utt(name: str, label: Label, tail: tuple[str, ...] = ()) -> Utterance:
    # Lead-in 0.5 s, first half to 1.2 s, a 0.8 s pause, the second half from 2.0 s.
    return Utterance(name, label, "text", "espeak-ng en-us 140 wpm", Path(f"/{name}.wav"), 0.8, 2.0, tail)


def _h(u: Utterance, turns: list[TurnFinished], speech_s: tuple[float, ...] = ()) -> Heard:
    return Heard(u, turns, speech_s)


def test_outcomes_of_complete_and_paused_utterances() -> None:
    done, paused = _utt("c", "complete"), _utt("p", "incomplete", ("paris",))
    assert judge(_h(done, [_turn("What time is it?")])) == "ok"
    assert judge(_h(done, [_turn("What time"), _turn("is it?")])) == "split"
    assert judge(_h(done, [])) == judge(_h(done, [_turn("  ")])) == "unheard"
    assert judge(_h(paused, [_turn("What's the weather in"), _turn("Paris")])) == "cut_off"
    # Without the engine's utterance lengths, the transcript says whether the second half was heard...
    assert judge(_h(paused, [_turn("What's the weather in Paris?")])) == "ok"
    assert judge(_h(paused, [_turn("What's the weather in")])) == "cut_off"
    assert judge(_h(_utt("m", "incomplete", ("minute",)), [_turn("Set a timer for 5 minutes")])) == "ok"
    # ...with them, their length does: the engine's utterance ended before the second half began (1.5 s of
    # speech from the lead-in), or after it, whatever Whisper made of the words.
    assert judge(_h(paused, [_turn("What's the weather in Paris?")], (1.4,))) == "cut_off"
    assert judge(_h(paused, [_turn("What's the weather in bars")], (1.9,))) == "ok"
    assert judge(_h(paused, [_turn("weather in")], (1.9, 0.3))) == "cut_off"  # ended twice, second one dropped
    # A first turn without words (the cut half transcribed as nothing) still ended the sentence early.
    assert judge(_h(paused, [_turn(""), _turn("Paris")], (1.2, 0.5))) == "cut_off"
    assert judge(_h(done, [_turn(""), _turn("What time is it")])) == "split"


def test_the_summary_counts_and_percentiles() -> None:
    heard = [
        _h(_utt("c1", "complete"), [_turn("a", endpoint_s=0.1, stt_s=0.02, v2v=0.3)]),
        _h(_utt("c2", "complete"), [_turn("b", endpoint_s=0.2, stt_s=0.04, v2v=0.5)]),
        _h(_utt("c3", "complete"), [_turn("c", endpoint_s=0.3, stt_s=0.06, v2v=0.7)]),
        # Split: its endpoint is not a finished sentence's, so it is left out of the endpoint figures.
        _h(_utt("c4", "complete"), [_turn("d", endpoint_s=9.0), _turn("e", endpoint_s=9.0)]),
        _h(_utt("c5", "complete"), []),
        _h(_utt("p1", "incomplete", ("paris",)), [_turn("weather in bars", stt_s=0.08)], (1.9,)),
        _h(_utt("p2", "incomplete", ("paris",)), [_turn("weather in", stt_s=0.1), _turn("Paris", stt_s=0.1)]),
        _h(_utt("p3", "incomplete", ("paris",)), [_turn("weather in", error="boom")]),
        _h(_utt("p4", "incomplete", ("paris",)), []),
        _h(_utt("p5", "incomplete", ("paris",)), [_turn("weather in"), _turn("", error="didn't catch that")]),
    ]
    s = summarise(heard, cpu_s=9.9, idle_cpu_percent=1.5)
    c, i = s["complete"], s["incomplete"]
    assert (c["utterances"], c["measured"], c["split"], c["unheard"]) == (5, 3, 1, 1)
    assert (c["endpoint_p50_ms"], c["endpoint_p95_ms"], c["voice_to_voice_p50_ms"]) == (200.0, 290.0, 500.0)
    assert (i["utterances"], i["judged"], i["cut_off"], i["unheard"], i["cut_off_share"]) == (5, 4, 3, 1, 0.75)
    assert i["second_half_misheard"] == 1  # p1: whole, though Whisper wrote "bars"
    assert s["turns"] == 10  # every turn with words, the extra ones of cut and split utterances too
    assert s["cpu_seconds_per_turn"] == 0.99 and s["idle_cpu_percent_of_one_core"] == 1.5
    assert s["stt_wait_p50_ms"] == 50.0  # of 20, 40, 50, 50, 50, 50, 60, 80, 100, 100 ms
    # The fragment with no words is a cut, not a failure of the run.
    assert s["errors"] == ["boom"] and s["no_words_turns"] == 1 and s["turn_detectors_used"] == ["smart-turn"]
    assert [r["outcome"] for r in s["rows"]][-5:] == ["ok", "cut_off", "cut_off", "unheard", "cut_off"]


def test_the_table_marks_the_bars_and_explains_the_cut_offs() -> None:
    good = summarise([_h(_utt("c", "complete"), [_turn("a", endpoint_s=0.2, stt_s=0.03, v2v=0.4)])], 1.0, 2.0)
    bad = summarise(
        [
            _h(_utt("c", "complete"), [_turn("a", endpoint_s=0.45, stt_s=0.2, v2v=0.9)]),
            _h(_utt("p", "incomplete", ("paris",)), [_turn("in")]),
        ],
        6.0,
        None,
    )
    report = {
        "machine": {"cpu": "cpu", "cores": 2, "load_average_1m": 1.0},
        "load_average_1m_after": 1.2,
        "corpus": {"utterances": 3, "complete": 2, "incomplete": 1, "recorded_people": 0, "voices": ["a", "b"]},
        "detectors": {"smart-turn": good, "silence": bad},
    }
    lines = turn_table(report)
    smart = next(line for line in lines if line.startswith("smart-turn"))
    silence = next(line for line in lines if line.startswith("silence "))
    assert "200/200 ms ✓" in smart and "0/0" in smart and "✗" not in smart
    assert "450/450 ms ✗" in silence and "1/1 100% ✗" in silence and "3.00 ✗" in silence and "—" in silence
    assert any("cut off: p" in line for line in lines)
    assert set(BARS) >= {"endpoint_p50_ms", "cut_off_share", "stt_wait_p50_ms", "cpu_seconds_per_turn"}


def test_each_detector_runs_with_the_skills_alone() -> None:
    s = detector_settings(Settings(), "silence")
    assert (s.llm.provider, s.llm.fallbacks) == ("skills", []) and s.telemetry.otlp_endpoint is None
    assert s.stage("turn").provider == "silence"


def test_cpu_per_turn() -> None:
    assert per_turn(3.0, 2) == 1.5 and per_turn(3.0, 0) is None
