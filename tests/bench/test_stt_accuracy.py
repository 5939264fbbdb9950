"""Benchmark: which offline speech recognizer should be the default (issue 18).

Word error rate on recorded human speech (pocketsphinx-testdata's LibriVox, cards,
goforward and something clips; alsa-utils' channel names) and the STT latency after the
endpoint, for Whisper tiny.en, Whisper base (multilingual, with `en` and with `auto`) and
Moonshine base — `app/commands/bench_stt.py`, also `voxdesk bench --stt`. The bar: the
default's WER ≤ 8 %. Latency is printed, not asserted: it depends on what else the machine
does (the load is printed), and the voice-to-voice bars are `voxdesk bench`'s.

The slow test takes a few minutes (every clip is also streamed at real-time pace). Run:
    .venv/bin/python -m pytest -s tests/bench/test_stt_accuracy.py
The normalisation and WER tests below it are quick.
"""

from __future__ import annotations

import asyncio

import pytest

from app.commands.bench_stt import (
    ALSA_DIR,
    BARS,
    HUMAN_DIR,
    load_clips,
    normalise,
    number_words,
    run_stt_bench,
    stt_table,
    wer_percent,
    word_errors,
)


def _w(text: str) -> list[str]:
    return text.split(" ")


def test_normalising_makes_case_punctuation_and_numbers_agree() -> None:
    assert normalise("Go forward 10 metres.") == normalise("go forward ten meters")
    assert normalise("Mr. Dashwood's cold-hearted, ill-disposed son!") == (
        _w("mister dashwoods cold hearted ill disposed son")
    )
    assert normalise("4 Queen of Clubs") == ["four", "queen", "of", "clubs"]
    assert normalise("It costs 1,250 dollars") == _w("it costs one thousand two hundred fifty dollars")


@pytest.mark.parametrize(
    ("n", "words"),
    [(0, "zero"), (7, "seven"), (13, "thirteen"), (40, "forty"), (99, "ninety nine"), (105, "one hundred five")],
)
def test_numbers_as_words(n: int, words: str) -> None:
    assert number_words(n) == words


def test_word_errors_count_substitutions_deletions_and_insertions() -> None:
    ref = _w("he was not an ill disposed young man")
    assert word_errors(ref, ref) == 0
    assert word_errors(ref, _w("he was not an old sposed young man")) == 2  # 2 substitutions
    assert word_errors(ref, _w("he was an ill disposed young man")) == 1  # a deletion
    assert word_errors(ref, _w("he was not an ill disposed young young man")) == 1  # an insertion
    assert word_errors([], ["extra"]) == 1
    assert wer_percent([("ten of clubs", "10 of clothes"), ("front left", "Front left.")]) == 20.0


@pytest.mark.slow
@pytest.mark.skipif(
    not (HUMAN_DIR / "librivox").is_dir() or not (ALSA_DIR / "Front_Left.wav").is_file(),
    reason="needs pocketsphinx-testdata and alsa-utils' recordings",
)
def test_the_most_accurate_offline_model_meets_the_default_wer_bar() -> None:
    clips = load_clips()
    assert len(clips) == 20  # 5 LibriVox, 5 cards, goforward, something, 8 channel names
    report = asyncio.run(run_stt_bench(clips=clips))
    print("\n" + "\n".join(stt_table(report)))
    rows = {r["label"]: r for r in report["models"]}
    assert set(rows) == {"whisper tiny.en", "whisper base (en)", "whisper base (auto)", "moonshine base"}
    for row in rows.values():
        assert len(row["clips"]) == 20 and row["wer_percent"] is not None
        assert row["after_endpoint_ms"]["p50"] is not None
    best = report["suggested_default"]
    assert best is not None, "no offline model meets the WER bar"
    assert best["wer_percent"] <= BARS["default_wer_percent"]
    # The example: tiny.en writes "old-sposed"; Whisper base and Moonshine base hear "ill disposed".
    clip = "librivox/sense_and_sensibility_01_austen_64kb-0880"
    for label in ("whisper base (en)", "moonshine base"):
        assert next(c for c in rows[label]["clips"] if c["clip"] == clip)["errors"] == 0, label
