"""Preview on a real speaker: the Voice page's Preview plays the real Piper voice on the
output device chosen under Audio (a PulseAudio null sink, see tests/audio_env.sh), and
the sink's monitor hears it."""

from __future__ import annotations

import importlib.util
import subprocess
from typing import Any

import numpy as np
import pytest

from app.plugin.registry import get_registry
from app.store.paths import resolve_paths
from app.store.settings import Settings
from tests.integration.test_audio_devices import pulse  # noqa: F401 - the fixture
from ui.settings_dialog import SettingsDialog

pytestmark = [
    pytest.mark.audio,
    pytest.mark.skipif(importlib.util.find_spec("piper") is None, reason="Piper missing"),
]

RATE = 16_000


def test_preview_plays_on_the_speaker_chosen_under_audio(qtbot: Any, pulse: dict[str, str]) -> None:  # noqa: F811
    paths = resolve_paths().ensure()
    dialog = SettingsDialog(
        Settings.model_validate({"audio": {"output_device": "vox_speaker"}}), get_registry(), paths=paths
    )
    qtbot.addWidget(dialog)
    voices = dialog.model_managers["tts"]
    qtbot.waitUntil(lambda: not voices.busy and bool(voices.entries), timeout=30_000)
    recorder = subprocess.Popen(
        ["parec", "--device=speaker.monitor", "--format=s16le", f"--rate={RATE}", "--channels=1", "--raw"],
        stdout=subprocess.PIPE,
        env={**pulse, "PATH": "/usr/bin:/bin"},
    )
    try:
        voices.select("piper-en_US-joe-medium")
        voices.preview_button.click()
        qtbot.waitUntil(lambda: not voices.busy, timeout=60_000)
        qtbot.wait(1500)  # the device latency and parec buffering: the last words reach the monitor
    finally:
        recorder.terminate()
        raw, _ = recorder.communicate(timeout=10)
    assert voices.last_message.startswith("Played piper-en_US-joe-medium:"), voices.last_message
    heard = np.frombuffer(raw, dtype=np.int16).astype(np.float32) / 32768
    frames = heard[: len(heard) // 320 * 320].reshape(-1, 320)  # 20 ms frames
    loud = np.sqrt(np.mean(frames**2, axis=1)) > 0.01
    assert loud.sum() * 0.02 > 1.5, f"only {loud.sum() * 0.02:.2f} s of sound reached the speaker"
