"""The settings dialog shows why settings could not be saved, and keeps the user's edits.

The store writes to a real read-only disk (a small tmpfs remounted read-only; needs
root, as in CI, else skipped), the way the session's apply does: switch, then save.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.engine.events import ProviderSwitched
from app.plugin.registry import get_registry
from app.store.settings import Settings, SettingsStore
from tests.faults.test_history_faults import SmallDisk, small_disk
from ui.settings_dialog import SettingsDialog

__all__ = ["small_disk"]


def _dialog_with_store(store: SettingsStore) -> SettingsDialog:
    import asyncio

    async def apply(new: Settings) -> list[ProviderSwitched]:
        await asyncio.to_thread(store.save, new)  # what Session.apply_settings does last
        return []

    return SettingsDialog(Settings(), get_registry(), apply)


def test_a_save_on_a_read_only_disk_is_shown_and_the_dialog_stays_open(
    qtbot: Any, run: Any, small_disk: Callable[..., SmallDisk]
) -> None:
    disk = small_disk()
    config: Path = disk.root / "config"
    store = SettingsStore(config)
    store.save(Settings())
    disk.read_only()
    dialog = _dialog_with_store(store)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.conversation_form.set_values({"system_prompt": "Answer like a pirate."})
    ok = run(dialog.apply(close=True))
    assert ok is False
    assert dialog.isVisible()  # not closed: the user can fix the disk and apply again
    text = dialog.status.text()
    assert "settings not saved" in text and "read-only" in text and str(config) in text
    assert "Errno" not in text and "Traceback" not in text
    assert dialog.conversation_form.values()["system_prompt"] == "Answer like a pirate."
    disk.writable()
    assert run(dialog.apply(close=True)) is True  # fixed: the same edits are saved
    assert SettingsStore(config).load().settings.conversation.system_prompt == "Answer like a pirate."


def test_an_unexpected_failure_while_applying_is_shown_not_lost(qtbot: Any, run: Any) -> None:
    async def apply(new: Settings) -> list[ProviderSwitched]:
        raise RuntimeError("the engine tripped over something")  # a bug, not a disk: cannot be produced for real

    dialog = SettingsDialog(Settings(), get_registry(), apply)
    qtbot.addWidget(dialog)
    dialog.show()
    assert run(dialog.apply(close=True)) is False
    assert dialog.isVisible()
    assert "the engine tripped over something" in dialog.status.text()
    assert dialog.buttons.isEnabled()
