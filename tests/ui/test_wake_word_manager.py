"""Settings → Activation lists the wake words like every other stage's models: each
offered phrase with its licence and state, the one in use marked, and "Use this" sets
the phrase the detector then really loads (from the wheel's folder, as the list says)."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from app.plugin.registry import get_registry
from app.store.models import model_status, resolve_model
from app.store.paths import AppPaths, resolve_paths
from app.store.settings import Settings
from ui.settings_dialog import SettingsDialog

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("pymicro_wakeword") is None or importlib.util.find_spec("pyopen_wakeword") is None,
    reason="the wake-word packages are missing",
)


@pytest.fixture
def paths() -> AppPaths:
    return resolve_paths().ensure()


def _wake_manager(qtbot: Any, paths: AppPaths, settings: Settings) -> tuple[SettingsDialog, Any]:
    dialog = SettingsDialog(settings, get_registry(), paths=paths)
    qtbot.addWidget(dialog)
    manager = dialog.model_managers["wake"]
    qtbot.waitUntil(lambda: not manager.busy and bool(manager.entries), timeout=30_000)
    return dialog, manager


def test_activation_lists_every_offered_wake_word_with_licence_and_state(qtbot, paths) -> None:
    dialog, wake = _wake_manager(qtbot, paths, Settings())
    assert dialog.tabs.tabText(dialog.tab_of(wake)) == "Activation"
    assert {e.spec.id for e in wake.entries} == {
        "micro-wake-word-hey_mycroft",
        "micro-wake-word-alexa",
        "open-wake-word-hey_jarvis",
    }
    assert wake.cell("micro-wake-word-alexa", "Licence") == "Apache-2.0"
    # The non-commercial licence is in plain sight where the phrase is picked.
    assert wake.cell("open-wake-word-hey_jarvis", "Licence") == "CC BY-NC-SA 4.0"
    assert {wake.cell(e.spec.id, "State") for e in wake.entries} == {"embedded"}
    assert "✓ in use" in wake.cell("micro-wake-word-hey_mycroft", "Model")  # the default phrase
    assert not wake.preview_button.isVisibleTo(wake) and not wake.measure_button.isVisibleTo(wake)
    assert wake.words.title == "Wake words"


def test_use_this_sets_the_phrase_and_the_detector_loads_that_model(qtbot, paths) -> None:
    dialog, wake = _wake_manager(qtbot, paths, Settings())
    wake.select("micro-wake-word-alexa")
    wake.choose_button.click()
    new = dialog.new_settings()
    assert new.wake.provider == "micro-wake-word" and new.wake.options.get("phrase") == "alexa"
    assert "✓ in use" in wake.cell("micro-wake-word-alexa", "Model")
    # Another provider's phrase switches the provider too.
    wake.select("open-wake-word-hey_jarvis")
    wake.choose_button.click()
    new = dialog.new_settings()
    assert new.wake.provider == "open-wake-word" and new.wake.options.get("phrase") == "hey_jarvis"

    reg = get_registry()
    detector = reg.create("wake", "micro-wake-word", {"phrase": "alexa"})
    try:
        assert detector.cutoff > 0  # type: ignore[attr-defined]  # loads the model
    finally:
        import asyncio

        asyncio.run(detector.aclose())
    located = model_status("micro-wake-word-alexa", paths=paths).location
    assert located is not None and located == resolve_model("micro-wake-word-alexa")
    assert located.parent.name == "models" and (located.parent / "alexa.tflite").is_file()
