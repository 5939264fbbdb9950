"""The global push-to-talk hotkey drives a real turn: the `voxdesk` window (xcb on a private
Xvfb, PulseAudio test devices) in push-to-talk mode, another X application holding the
focus, xdotool holding Ctrl+Alt+Space while a question plays into the microphone."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.soak.window_app import FATAL, pulse_env
from tests.support.speech import have_espeak, speak_to_wav
from tests.support.xserver import xvfb

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.audio,
    pytest.mark.skipif(not have_espeak(), reason="espeak-ng not installed"),
    pytest.mark.skipif(
        shutil.which("Xvfb") is None or shutil.which("xdotool") is None,
        reason="needs Xvfb and xdotool (apt-get install xvfb xdotool); CI has both",
    ),
]


def _states(watch: Path) -> list[str]:
    import json

    if not watch.exists():
        return []
    return [json.loads(line)["state"] for line in watch.read_text().splitlines() if line.strip()]


def _wait(cond: object, what: str, app: subprocess.Popen[bytes], err: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert app.poll() is None, f"the app exited: {err.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"{what}: {err.read_text()[-3000:]}"
        time.sleep(0.1)


def test_holding_the_hotkey_in_another_application_asks_a_question(tmp_path: Path, voxdesk_home: Path) -> None:
    from tests.ui.test_global_hotkey import FocusWindow

    question = speak_to_wav("what time is it", tmp_path / "q.wav", lead_s=0.2, tail_s=0.3)
    watch, err = tmp_path / "watch.jsonl", tmp_path / "stderr.txt"
    with xvfb() as server:
        env = {
            **os.environ,
            **pulse_env(),
            "VOXDESK_HOME": str(voxdesk_home),
            "QT_QPA_PLATFORM": "xcb",
            "DISPLAY": server.display,
            "VOXDESK_GUI_WATCH": str(watch),
        }
        with err.open("w") as err_out:
            app = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "app",
                    *("--set", "activation.mode=push_to_talk"),
                    *("--set", "activation.hotkey=Ctrl+Alt+Space"),
                    *("--set", "audio.input_device=vox_mic"),
                    *("--set", "audio.output_device=vox_speaker"),
                    *("--set", "llm.provider=skills"),  # answers at once: no language model to load
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err_out,
            )
            try:
                _wait(lambda: "idle" in _states(watch), "the window never started", app, err, 120)
                time.sleep(8.0)  # the models load behind the window
                other = FocusWindow(server.display)  # another application takes the focus
                xdo = {**os.environ, "DISPLAY": server.display}
                subprocess.run(["xdotool", "keydown", "ctrl+alt+space"], env=xdo, check=True, timeout=10)
                _wait(lambda: "listening" in _states(watch), "the hotkey started no turn", app, err, 10)
                subprocess.run(["paplay", "--device=mic", str(question)], env=env, check=True, timeout=30)
                time.sleep(0.3)
                subprocess.run(["xdotool", "keyup", "ctrl+alt+space"], env=xdo, check=True, timeout=10)
                _wait(lambda: "speaking" in _states(watch), "releasing the hotkey gave no reply", app, err, 60)
                assert other.keycode("space") not in other.presses()  # the chord went to VoxDesk only
                other.close()
            finally:
                if app.poll() is None:
                    app.send_signal(signal.SIGTERM)
                    try:
                        app.wait(20)
                    except subprocess.TimeoutExpired:
                        app.kill()
    stderr = err.read_text()
    for fatal in FATAL:
        assert fatal not in stderr, stderr[-3000:]
    assert app.returncode == 0, stderr[-3000:]

    from app.store.history import History
    from app.store.paths import resolve_paths

    with History(resolve_paths(voxdesk_home).history_db) as history:
        turns = [t for c in history.list_conversations() for t in history.turns(c.id)]
    assert len(turns) == 1, [t.user_text for t in turns]
    assert "time" in turns[0].user_text.lower() and ":" in turns[0].reply_text, turns[0]
