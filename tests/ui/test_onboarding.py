"""First-run welcome: shown on a fresh install only, push-to-talk until chosen, choices saved."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from app.audio.files import WavFileSink
from app.store.paths import resolve_paths
from app.store.settings import Settings, SettingsStore
from tests.support.sources import Piece, ScriptedSource
from tests.ui.conftest import wait_until
from ui.main_window import MainWindow
from ui.onboarding import (
    OnboardingDialog,
    first_run_settings,
    needs_onboarding,
    start_onboarding,
)

SHOTS = Path(os.environ.get("ONBOARDING_SHOTS", "/tmp/onboarding-shots"))


def _tone(seconds: float, amplitude: float) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    return (amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def _dialog(qtbot: Any, settings: Settings | None = None, **kw: Any) -> OnboardingDialog:
    kw.setdefault("devices", lambda: (["USB mic"], ["Headphones"]))
    dialog = OnboardingDialog(settings or Settings(), **kw)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def test_a_fresh_install_starts_in_push_to_talk_and_asks(qtbot: Any, qloop: Any) -> None:
    paths = resolve_paths().ensure()
    store = SettingsStore(paths.config_dir)
    loaded = store.load().settings
    assert loaded.activation.mode == "always"  # the product default: hands-free …
    assert needs_onboarding(loaded, store)
    first = first_run_settings(loaded)
    assert first.activation.mode == "push_to_talk"  # … but never before the user chose it
    window = MainWindow(paths, first, store)
    qtbot.addWidget(window)
    assert window.controls.activation_mode == "push_to_talk"
    window.close()


def test_choices_are_saved_and_the_welcome_is_not_shown_again(qtbot: Any, run: Any) -> None:
    paths = resolve_paths().ensure()
    store = SettingsStore(paths.config_dir)
    window = MainWindow(paths, first_run_settings(store.load().settings), store)
    qtbot.addWidget(window)
    window.show()
    dialog = start_onboarding(window)
    assert dialog.page == "welcome"
    qtbot.keyClick(dialog, Qt.Key.Key_Return)  # Next is the default button: keyboard only
    assert dialog.page == "mode"
    dialog.mode_buttons["always"].setChecked(True)
    dialog.go(4)
    assert dialog.next_button.text().replace("&", "") == "Start using VoxDesk"
    qtbot.mouseClick(dialog.next_button, Qt.MouseButton.LeftButton)
    run(wait_until(lambda: store.path.exists() and not window._tasks, 10, "the choices to be saved"))
    again = SettingsStore(paths.config_dir).load()  # the next start
    assert again.notices == []
    assert again.settings.activation.mode == "always"
    assert again.settings.window.onboarded is True
    assert not needs_onboarding(again.settings, SettingsStore(paths.config_dir))
    assert window.controls.activation_mode == "always"
    window.close()


def test_skip_keeps_push_to_talk_and_counts_as_done(qtbot: Any, run: Any) -> None:
    paths = resolve_paths().ensure()
    store = SettingsStore(paths.config_dir)
    window = MainWindow(paths, first_run_settings(store.load().settings), store)
    qtbot.addWidget(window)
    dialog = start_onboarding(window)
    dialog.mode_buttons["always"].setChecked(True)
    qtbot.keyClick(dialog, Qt.Key.Key_Escape)  # Esc is Skip
    run(wait_until(lambda: store.path.exists() and not window._tasks, 10, "the skip to be saved"))
    saved = SettingsStore(paths.config_dir).load().settings
    assert (saved.activation.mode, saved.window.onboarded) == ("push_to_talk", True)
    window.close()


def test_an_unfinished_welcome_comes_back(tmp_path: Path) -> None:
    store = SettingsStore(tmp_path)
    settings = Settings()
    settings.window.onboarded = False
    store.save(settings)
    assert needs_onboarding(store.load().settings, store)
    store.save(Settings())  # a file from before the welcome existed: an existing user
    assert not needs_onboarding(store.load().settings, store)


def test_the_microphone_meter_moves_with_the_voice_and_says_it_heard(qtbot: Any, run: Any) -> None:
    sources: list[ScriptedSource] = []

    def open_source(name: str | None) -> ScriptedSource:
        src = ScriptedSource([Piece(_tone(0.3, 0.001)), Piece(_tone(1.0, 0.5))], tail_s=5)
        sources.append(src)
        return src

    dialog = _dialog(qtbot, open_source=open_source)
    dialog.go(2)
    assert dialog.page == "microphone"
    run(wait_until(lambda: "microphone works" in dialog.mic_result.text(), 10, "the voice to be heard"))
    assert dialog.meter.repaints >= 1 and dialog.loudest_dbfs > -30
    run(wait_until(lambda: dialog.mic_combo.findData("USB mic") >= 0, 5, "the device list"))
    dialog.go(3)  # leaving the page stops the capture
    run(wait_until(lambda: sources[0]._stopped, 5, "the microphone to close"))
    dialog.skip()
    run(asyncio.sleep(0.05))


def test_a_silent_microphone_is_not_called_working(qtbot: Any, run: Any) -> None:
    dialog = _dialog(qtbot, open_source=lambda _n: ScriptedSource([Piece(_tone(1.0, 0.003))], tail_s=5))
    dialog.go(2)
    run(asyncio.sleep(1.0))
    assert "microphone works" not in dialog.mic_result.text()
    assert dialog.loudest_dbfs < -30
    dialog.skip()
    run(asyncio.sleep(0.05))


def test_the_speaker_check_plays_a_tone(qtbot: Any, run: Any) -> None:
    sinks: list[WavFileSink] = []

    def open_sink(name: str | None) -> WavFileSink:
        sinks.append(WavFileSink(None))
        return sinks[-1]

    dialog = _dialog(qtbot, open_sink=open_sink)
    dialog.go(3)
    task = dialog.play_tone()
    assert task is not None
    run(task, timeout=10)
    tone = sinks[0].samples
    assert len(tone) > 0.5 * 24000 and float(np.max(np.abs(tone))) > 0.1  # a beep, not silence
    assert "Did you hear a beep" in dialog.speaker_result.text()
    dialog.skip()


def test_an_unavailable_wake_word_cannot_be_chosen(qtbot: Any, qloop: Any) -> None:
    dialog = _dialog(qtbot, unavailable={"wake_word": "the wake word model is not installed"})
    assert not dialog.mode_buttons["wake_word"].isEnabled()
    texts = [w.text() for w in dialog.findChildren(QLabel)]
    assert any("Not available here" in t for t in texts)
    dialog.skip()


@pytest.mark.skipif(not os.environ.get("ONBOARDING_SHOTS_ON"), reason="screenshots: set ONBOARDING_SHOTS_ON=1")
def test_screenshots_of_each_page(qtbot: Any, qloop: Any) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    dialog = _dialog(qtbot)
    for i in range(dialog.pages.count()):
        dialog.go(i)
        dialog.meter.set_level(-18, -9)
        qtbot.wait(150)
        dialog.grab().save(str(SHOTS / f"onboarding-{i + 1}-{dialog.page}.png"))
    dialog.skip()
