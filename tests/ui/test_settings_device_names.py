"""Settings → Audio names the desktop's default devices as the desktop does (PulseAudio
null sinks, tests/audio_env.sh), and still saves the PortAudio label."""

from __future__ import annotations

from typing import Any

import pytest

from app.plugin.registry import get_registry
from app.store.settings import Settings
from tests.integration.test_audio_devices import pulse  # noqa: F401 - the fixture
from ui.settings_dialog import SettingsDialog

pytestmark = pytest.mark.audio


def test_the_default_speaker_is_shown_by_the_desktops_name(qtbot: Any, pulse: dict[str, str]) -> None:  # noqa: F811
    dialog = SettingsDialog(Settings.model_validate({"audio": {"output_device": "default (ALSA)"}}), get_registry())
    qtbot.addWidget(dialog)
    page = dialog.audio_page
    qtbot.waitUntil(lambda: "Looking" not in page.status.text(), timeout=10_000)
    shown = {page.output.itemData(i): page.output.itemText(i) for i in range(page.output.count())}
    assert shown["default (ALSA)"] == "Default — Fallback"  # the default sink's description
    assert shown["pulse (ALSA)"] == "Default — Fallback (PulseAudio)"
    assert "pulse (ALSA)" not in shown.values()  # no bare PortAudio names for the server's defaults
    assert page.output.currentData() == "default (ALSA)"  # the saved id still selects it
    assert page.output.currentText() == "Default — Fallback"
