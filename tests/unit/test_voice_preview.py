"""app/audio/preview.py with the real Piper voice: a sample sentence is spoken into a
sink, and a stop request cuts it short (the Stop of Settings → Voice → Preview)."""

from __future__ import annotations

import importlib.util
import threading

import numpy as np
import pytest

from app.audio.files import WavFileSink, read_wav
from app.audio.preview import SAMPLE_SENTENCE, preview_voice

pytestmark = pytest.mark.skipif(importlib.util.find_spec("piper") is None, reason="Piper missing")

VOICE = {"voice": "piper-en_US-joe-medium"}


def test_preview_speaks_the_sample_sentence(tmp_path) -> None:
    wav = tmp_path / "out.wav"
    result = preview_voice("piper", VOICE, WavFileSink(wav))
    samples, rate = read_wav(wav)
    assert not result.stopped and result.peak > 0.1
    assert abs(len(samples) / rate - result.seconds) < 0.1  # what was measured is what was played
    assert len(SAMPLE_SENTENCE.split()) / result.seconds < 5  # words at a speaking pace, not a blip


def test_a_stop_request_cuts_the_preview_short(tmp_path) -> None:
    wav = tmp_path / "out.wav"
    full = preview_voice("piper", VOICE, WavFileSink(tmp_path / "full.wav")).seconds
    cancel = threading.Event()
    sink = WavFileSink(wav, realtime=True)  # played at a speaker's pace, so there is time to stop
    timer = threading.Timer(0.8, cancel.set)
    timer.start()
    result = preview_voice("piper", VOICE, sink, cancel=cancel)
    timer.cancel()
    samples, rate = read_wav(wav)
    assert result.stopped
    assert len(samples) / rate < full - 0.5, (len(samples) / rate, full)
    assert float(np.max(np.abs(samples))) > 0.05
