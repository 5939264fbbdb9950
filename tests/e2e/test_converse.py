"""End to end, offline, real models: spoken question in, spoken answer out."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support.speech import have_espeak, heard_minutes, read_wav, speak_to_wav

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not have_espeak(), reason="espeak-ng not installed")]


def voxdesk(*args: str, home: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VOXDESK_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "app", *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout
    )


def transcribe(path: Path) -> str:
    from faster_whisper import WhisperModel

    from app.store.models import resolve_model

    samples, rate = read_wav(path)
    import soxr

    audio = soxr.resample(samples, rate, 16_000).astype(np.float32)
    # The more accurate whisper-base listens to the reply: tiny.en heard "5:28" as "5.20".
    model = WhisperModel(str(resolve_model("whisper-base")), device="cpu", compute_type="int8")
    segments, _ = model.transcribe(audio, beam_size=5, language="en")
    return " ".join(s.text for s in segments)


def test_spoken_time_question_gets_spoken_time(tmp_path: Path, voxdesk_home: Path) -> None:
    question = speak_to_wav("what time is it", tmp_path / "q.wav")
    reply_wav = tmp_path / "reply.wav"
    before = dt.datetime.now()
    out = voxdesk("converse", "--input", str(question), "--output", str(reply_wav), "--json", home=voxdesk_home)
    after = dt.datetime.now()
    assert out.returncode == 0, out.stderr
    turns = json.loads(out.stdout)["turns"]
    assert len(turns) == 1
    turn = turns[0]
    assert {"what", "time"} <= set(re.findall(r"[a-z]+", turn["user"].lower()))
    said = {f"{t:%-I}:{t:%M}" for t in (before, after)}
    assert any(s in turn["reply"] for s in said), (turn["reply"], said)
    assert turn["providers"]["llm"] == "skills"
    assert turn["voice_to_voice_ms"] and turn["voice_to_voice_ms"] > 0
    assert set(turn["stages_ms"]) >= {"vad_endpoint", "stt", "llm_first_token", "tts_first_audio"}
    # The reply audio says what the reply text says.
    samples, rate = read_wav(reply_wav)
    assert len(samples) / rate > 0.5
    heard = transcribe(reply_wav)
    # The words and the minutes must be there, however Whisper writes the time.
    assert "it" in re.findall(r"[a-z]+", heard.lower()) or "it's" in heard.lower(), heard
    assert heard_minutes(turn["reply"], heard), (heard, turn["reply"])


def test_typed_and_spoken_turns_share_history(tmp_path: Path, voxdesk_home: Path) -> None:
    question = speak_to_wav("what is seventeen times twenty three", tmp_path / "q.wav")
    out = voxdesk("converse", "--text", "hello", "--input", str(question), "--json", home=voxdesk_home)
    assert out.returncode == 0, out.stderr
    turns = json.loads(out.stdout)["turns"]
    assert [t["error"] for t in turns] == [None, None]
    assert "391" in turns[1]["reply"]
    from app.store.history import History

    h = History(voxdesk_home / "data" / "history.sqlite3")
    try:
        convs = h.list_conversations()
        assert convs
        rows = h.turns(convs[0].id)
        assert len(rows) == 2
    finally:
        h.close()


def test_bad_input_gives_one_clear_message(tmp_path: Path, voxdesk_home: Path) -> None:
    out = voxdesk("converse", "--input", str(tmp_path / "missing.wav"), home=voxdesk_home)
    assert out.returncode == 2
    assert "does not exist" in out.stderr and "Traceback" not in out.stderr
    out = voxdesk("converse", home=voxdesk_home)
    assert out.returncode == 2 and "nothing to say" in out.stderr
    out = voxdesk("converse", "--text", "hi", "--set", "llm.provider=nope", home=voxdesk_home)
    assert out.returncode == 2 and "nope" in out.stderr and "Traceback" not in out.stderr
    assert out.stderr.count("\n") <= 3  # one clear message, not a log
