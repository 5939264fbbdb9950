"""The bench's questions are spoken by espeak-ng, and its absence is one clear message."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from app.audio.files import probe_wav, read_wav
from app.commands.bench_speech import LEAD_S, TAIL_S, synthesise_questions
from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import SAMPLE_RATE


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (tests/../system-deps.sh)")
async def test_each_question_becomes_16khz_speech_with_silence_around_it(tmp_path: Path) -> None:
    out = tmp_path / "questions"
    out.mkdir()
    short, long = await synthesise_questions(
        ["What time is it?", "How many legs does a spider have, and how many eyes?"], out, prefix="q"
    )
    assert (short.name, long.name) == ("q0.wav", "q1.wav")
    info = probe_wav(short)
    assert (info.rate, info.channels) == (SAMPLE_RATE, 1)
    audio, _ = read_wav(short)
    lead, tail = int(LEAD_S * SAMPLE_RATE), int(TAIL_S * SAMPLE_RATE)
    assert not np.any(audio[:lead]) and not np.any(audio[-tail:])
    speech = audio[lead:-tail]
    assert 0.6 < len(speech) / SAMPLE_RATE < 2.5  # four words at a calm pace
    assert np.sqrt(np.mean(speech**2)) > 0.02  # voiced, not silence
    assert probe_wav(long).duration_s > info.duration_s + 1.0
    assert sorted(p.name for p in out.iterdir()) == ["q0.wav", "q1.wav"]  # espeak's own files removed


async def test_without_espeak_the_bench_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "questions"
    out.mkdir()
    monkeypatch.setenv("PATH", str(out))  # a PATH without espeak-ng
    with pytest.raises(VoiceError) as caught:
        await synthesise_questions(["What time is it?"], out, prefix="q")
    assert caught.value.code == ErrorCode.MODEL_MISSING
    assert "espeak-ng is not installed" in str(caught.value) and "apt install espeak-ng" in str(caught.value)
    assert not list(out.iterdir())
