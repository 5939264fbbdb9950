"""The whole path on real PortAudio devices: a question played into the `mic` null sink,
VoxDesk listening on its monitor, the answer played into `speaker`, recorded and transcribed."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.support.speech import have_espeak, heard_minutes, speak_to_wav, write_wav

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.audio,
    pytest.mark.slow,
    pytest.mark.skipif(not have_espeak(), reason="espeak-ng not installed"),
]


@pytest.fixture(scope="module")
def pulse_env() -> dict[str, str]:
    out = subprocess.run([str(ROOT / "tests/audio_env.sh"), "start"], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        pytest.skip(f"PulseAudio could not start: {out.stderr.strip()}")
    return dict(line.removeprefix("export ").split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def test_spoken_question_on_the_mic_is_answered_on_the_speaker(
    tmp_path: Path, voxdesk_home: Path, pulse_env: dict[str, str]
) -> None:
    question = speak_to_wav("what time is it", tmp_path / "q.wav", lead_s=0.2, tail_s=1.0)
    env = {**os.environ, **pulse_env, "VOXDESK_HOME": str(voxdesk_home)}
    recording = tmp_path / "speaker.raw"
    with open(recording, "wb") as raw:
        parec = subprocess.Popen(
            ["parec", "--device=speaker.monitor", "--format=s16le", "--rate=16000", "--channels=1", "--raw"],
            stdout=raw,
            env=env,
        )
        app = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app",
                "converse",
                "--mic",
                "vox_mic",
                "--speaker",
                "vox_speaker",
                "--turns",
                "1",
                "--timeout",
                "90",
                "--json",
                # The skills answer "what time is it": no language model loading beside the
                # devices (in CI the first start's 491 MB model load starved the speaker's
                # callback for 0.7 s mid-question, and the watchdog called the speaker lost).
                "--set",
                "llm.provider=skills",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        assert app.stderr is not None
        threading.Thread(target=lambda: [lines.put(x) for x in app.stderr], daemon=True).start()  # type: ignore[union-attr]
        try:
            deadline = time.monotonic() + 120
            seen = []
            while time.monotonic() < deadline:
                try:
                    line = lines.get(timeout=1)
                except queue.Empty:
                    assert app.poll() is None, "".join(seen)
                    continue
                seen.append(line)
                if "listening" in line:
                    break
            else:
                pytest.fail("VoxDesk never started listening: " + "".join(seen))
            time.sleep(1.0)  # a new PulseAudio stream settles before it runs steadily
            subprocess.run(["paplay", "--device=mic", str(question)], env=env, check=True, timeout=30)
            out, _ = app.communicate(timeout=120)
        finally:
            if app.poll() is None:
                app.kill()
            time.sleep(0.5)
            parec.terminate()
            parec.wait(5)
    while not lines.empty():  # what the app said after it started listening
        seen.append(lines.get_nowait())
    assert app.returncode == 0, "".join(seen)
    (turn,) = json.loads(out)["turns"]
    assert {"what", "time"} <= set(re.findall(r"[a-z]+", turn["user"].lower())), turn
    assert re.search(r"\d{1,2}:\d{2}", turn["reply"]), turn
    assert turn["voice_to_voice_ms"] and turn["voice_to_voice_ms"] > 0

    # The speaker really played the answer: transcribe what the monitor heard.
    pcm = np.frombuffer(recording.read_bytes(), "<i2").astype(np.float32) / 32768
    assert np.max(np.abs(pcm)) > 0.05, f"nothing reached the speaker: {''.join(seen)[-3000:]}"
    write_wav(tmp_path / "heard.wav", pcm, 16_000)
    from faster_whisper import WhisperModel

    from app.store.models import resolve_model

    # whisper-base listens (tiny.en misheard minutes); it writes times its own way.
    model = WhisperModel(str(resolve_model("whisper-base")), device="cpu", compute_type="int8")
    heard = " ".join(s.text for s in model.transcribe(pcm, beam_size=5, language="en")[0])
    assert heard_minutes(turn["reply"], heard), (heard, turn["reply"])
