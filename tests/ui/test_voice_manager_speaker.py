"""Preview on a real speaker: the Voice page's Preview plays the real Piper voice on the
output device chosen under Audio (a PulseAudio null sink, see tests/audio_env.sh), and
the sink's monitor hears it."""

from __future__ import annotations

import importlib.util
import subprocess
import threading
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
    monitor = _Monitor(pulse)
    try:
        # The monitor streams (silence too) before anything is played: none of it is missed.
        qtbot.waitUntil(lambda: monitor.seconds() > 0.2, timeout=10_000)
        voices.select("piper-en_US-joe-medium")
        voices.preview_button.click()
        qtbot.waitUntil(lambda: not voices.busy, timeout=60_000)
        # The device latency and parec's buffering: wait for the last words to reach the monitor.
        qtbot.waitUntil(monitor.quiet_for_half_a_second, timeout=10_000)
    finally:
        heard = monitor.stop()
    assert voices.last_message.startswith("Played piper-en_US-joe-medium:"), voices.last_message
    played = float(voices.last_message.split(": ")[1].split(" s ")[0])
    loud = _loud_frames(heard)
    # Speech has pauses between words: at least half of what Piper made is loud.
    assert loud.sum() * FRAME_S > 0.5 * played, f"only {loud.sum() * FRAME_S:.2f} s of {played} s reached the speaker"


FRAME_S = 0.02


def _loud_frames(pcm: np.ndarray) -> np.ndarray:
    n = int(RATE * FRAME_S)
    frames = pcm[: len(pcm) // n * n].reshape(-1, n)
    return np.asarray(np.sqrt(np.mean(frames**2, axis=1)) > 0.01)


class _Monitor:
    """parec on the speaker's monitor, read as it comes (terminating parec loses what it buffers)."""

    def __init__(self, env: dict[str, str]) -> None:
        self._proc = subprocess.Popen(
            [
                "parec",
                "--device=speaker.monitor",
                "--format=s16le",
                f"--rate={RATE}",
                "--channels=1",
                "--raw",
                "--latency-msec=20",
            ],
            stdout=subprocess.PIPE,
            env={**env, "PATH": "/usr/bin:/bin"},
        )
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        while chunk := self._proc.stdout.read1(4096):
            with self._lock:
                self._chunks.append(chunk)

    def pcm(self) -> np.ndarray:
        with self._lock:
            raw = b"".join(self._chunks)
        return np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").astype(np.float32) / 32768

    def seconds(self) -> float:
        return len(self.pcm()) / RATE

    def quiet_for_half_a_second(self) -> bool:
        tail = self.pcm()[-RATE // 2 :]
        return len(tail) == RATE // 2 and not _loud_frames(tail).any()

    def stop(self) -> np.ndarray:
        self._proc.terminate()
        self._proc.wait(timeout=10)
        self._reader.join(timeout=10)
        return self.pcm()
