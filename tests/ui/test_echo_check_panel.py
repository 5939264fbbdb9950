"""Settings → Audio: the echo canceller's provider choice, the echo check (run through the
app's qasync loop on real PortAudio devices), and Conversation → Duplex."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox

from app.audio.echo_check import HEADSET, WORKS
from app.plugin.registry import get_registry
from app.store.settings import AudioSettings, Settings
from tests.ui.conftest import wait_until
from tests.unit.test_echo_check import pulse, room_echo  # noqa: F401 - `pulse` is a fixture used here
from ui.settings_dialog import SettingsDialog


def _dialog(qtbot: Any, settings: Settings | None = None) -> SettingsDialog:
    dialog = SettingsDialog(settings or Settings(), get_registry())
    qtbot.addWidget(dialog)
    return dialog


def test_echo_cancellation_and_the_echo_check_are_on_the_audio_tab(qtbot: Any, tmp_path: Path) -> None:
    dialog = _dialog(qtbot)
    tabs = [dialog.tabs.tabText(i) for i in range(dialog.tabs.count())]
    assert "Echo cancellation" not in tabs and "echo" not in tabs
    audio = tabs.index("Audio")
    echo = dialog.stage_pages["echo"]
    assert dialog.tab_of(echo) == dialog.tab_of(dialog.echo_check) == dialog.tab_of(dialog.audio_page) == audio
    listed = [echo.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(echo.list.count())]
    assert {"webrtc", "off"} <= set(listed) and echo.provider == "webrtc"
    assert echo.list.accessibleName() == "Echo cancellation providers"
    assert echo.form is not None and {"noise_suppression", "noise_level"} <= set(echo.form.fields_by_name())
    assert dialog.echo_check.title() == "Echo check" and dialog.echo_check.button.text() == "Check echo"
    dialog.show_stage("echo")
    assert dialog.tabs.currentIndex() == audio
    # The echo stage is saved like any other, from the Audio tab.
    echo.select("off")
    assert dialog.new_settings().echo.provider == "off"
    dialog.resize(880, 720)
    dialog.show()
    assert dialog.grab().save(str(tmp_path / "audio_tab.png"))


def test_duplex_offers_its_three_choices(qtbot: Any) -> None:
    dialog = _dialog(qtbot)
    combo = dialog.conversation_form.editor("duplex")
    assert isinstance(combo, QComboBox)
    assert [combo.itemText(i) for i in range(combo.count())] == ["auto", "half", "full"]
    assert combo.currentText() == "auto"
    combo.setCurrentIndex(combo.findText("half"))
    assert dialog.new_settings().conversation.duplex == "half"


def test_options_that_need_fixing_stop_the_check_with_one_message(
    qtbot: Any, run: Callable[..., Any], monkeypatch: Any
) -> None:
    dialog = _dialog(qtbot)
    page = dialog.stage_pages["echo"]
    assert page.form is not None
    real_validate = dialog.registry.validate

    def refuse_echo(kind: str, name: str, options: Any) -> Any:  # a spin box cannot go outside 0…3
        if kind == "echo":
            from app.plugin.errors import VoiceError

            raise VoiceError("echo.webrtc", "INVALID_CONFIG", "noise_level: must be ≤ 3")
        return real_validate(kind, name, options)

    monkeypatch.setattr(dialog.registry, "validate", refuse_echo)
    panel = dialog.echo_check

    async def click() -> None:  # as in the app: the click arrives while the loop runs
        panel.button.click()
        await wait_until(lambda: not panel.running, what="the check to stop")

    run(click())
    result = panel.result
    assert result is not None and not result.ok and result.verdict.startswith("Echo check not run:"), result
    assert "must be ≤ 3" in result.verdict and page.form.error_text("noise_level")
    assert panel.button.isEnabled() and panel.result_label.text() == result.summary()


def _devices_dialog(qtbot: Any) -> SettingsDialog:
    return _dialog(qtbot, Settings(audio=AudioSettings(input_device="vox_mic", output_device="vox_speaker")))


@pytest.mark.audio
@pytest.mark.usefixtures("pulse")
def test_the_check_runs_on_the_chosen_devices(qtbot: Any, run: Callable[..., Any]) -> None:
    dialog = _devices_dialog(qtbot)
    panel = dialog.echo_check

    async def check() -> Any:
        panel.button.click()
        assert panel.running and not panel.button.isEnabled()  # one check at a time
        panel.button.click()
        await wait_until(lambda: not panel.running, timeout=20, what="the echo check")
        return panel.result

    with room_echo(60):
        in_room = run(check(), timeout=30)
    assert in_room.verdict == WORKS and in_room.erle_db >= 25, in_room
    assert "dB removed" in panel.result_label.text() and WORKS in panel.result_label.text()
    assert panel.button.isEnabled()
    headset = run(check(), timeout=30)
    assert headset.verdict == HEADSET, headset
    assert panel.result_label.text().startswith(HEADSET)
