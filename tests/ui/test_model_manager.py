"""Settings → Assistant → Models, driven like a user would: the list, a download from a
loopback server with its progress bar (then the speed measured here), cancel and resume,
a damaged download found by Check and deleted, Delete, and Use this model setting the
assistant's model in the settings being edited."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import pytest

from app.plugin.registry import get_registry
from app.store.model_speed import load_speeds
from app.store.models import cache_dir, catalogue
from app.store.paths import AppPaths, resolve_paths
from app.store.settings import Settings
from tests.support.gguf_server import (
    GGUF_NAME,
    SERVED_ID,
    SERVED_PROVIDER,
    ServeState,
    gguf_server,
    served_model,
    served_spec,
    smollm2_gguf,
    smollm2_sha256,
)
from tests.ui.conftest import GuiGapMeter
from ui.model_manager import ModelManager
from ui.settings_dialog import SettingsDialog

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python missing")

MB = 1_000_000


@pytest.fixture
def paths() -> AppPaths:
    return resolve_paths().ensure()


@pytest.fixture
def served() -> Iterator[tuple[str, ServeState]]:
    with (
        gguf_server() as (url, state),
        served_model(served_spec(url, sha256=smollm2_sha256(), size=smollm2_gguf().stat().st_size)),
    ):
        yield url, state


def _panel(qtbot: Any, paths: AppPaths) -> ModelManager:
    panel = ModelManager(paths)
    qtbot.addWidget(panel)
    qtbot.waitUntil(lambda: not panel.busy and bool(panel.entries), timeout=20_000)
    return panel


def _cells(panel: ModelManager, model_id: str) -> list[str]:
    row = next(i for i, e in enumerate(panel.entries) if e.spec.id == model_id)
    items = [panel.table.item(row, c) for c in range(panel.table.columnCount())]
    return [item.text() if item is not None else "" for item in items]


def _state(panel: ModelManager, model_id: str) -> str:
    entry = panel.row_of(model_id)
    return entry.status.state if entry is not None else "not listed"


def test_lists_every_language_model_with_size_memory_and_state(qtbot, served, paths) -> None:
    panel = _panel(qtbot, paths)
    ids = [e.spec.id for e in panel.entries]
    assert ids == [s.id for s in catalogue().values() if s.kind == "llm"]
    assert SERVED_ID in ids
    assert panel.columns == ("Model", "Download", "Memory", "Licence", "State", "Speed here")
    _name, download, memory, licence, state, speed = _cells(panel, SERVED_ID)
    assert (download, memory, licence, state, speed) == ("98 MB", "250 MB", "Apache-2.0", "not installed", "—")
    embedded = [e for e in panel.entries if e.status.state == "embedded"]
    assert embedded, "the default model ships with VoxDesk"
    assert _cells(panel, embedded[0].spec.id)[1] == "included"
    panel.select(embedded[0].spec.id)
    assert not panel.delete_button.isEnabled() and not panel.download_button.isEnabled()


def test_download_shows_progress_then_installed_with_its_speed_here(qtbot, served, paths) -> None:
    _, state = served
    state.pause_per_block = 0.015  # about 1.5 s for the 98 MB: the bar has time to move
    panel = _panel(qtbot, paths)
    values: list[int] = []
    panel.bar.valueChanged.connect(values.append)
    panel.select(SERVED_ID)
    assert panel.download_button.isEnabled() and panel.download_button.text() == "Download"
    meter = GuiGapMeter()
    meter.start()
    panel.download_button.click()
    assert panel.busy and panel.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: not panel.busy and _state(panel, SERVED_ID) == "installed", timeout=120_000)
    meter.stop()
    # Download (1.5 s at this server's pace), hash and the speed benchmark (seconds) all ran
    # while the GUI thread kept ticking: any of them on the GUI thread would stall it for
    # a second or more. The bounds leave room for this shared 2-core VM, whose scheduler
    # alone has stalled an idle GUI thread for 0.3-0.5 s under a load of 6.
    gaps = sorted(meter.gaps)
    assert len(gaps) > 50, "the GUI timer hardly ran"
    assert gaps[int(len(gaps) * 0.95)] < 0.050, f"95th percentile gap {gaps[int(len(gaps) * 0.95)] * 1000:.0f} ms"
    assert meter.worst < 1.0, f"GUI thread blocked for {meter.worst * 1000:.0f} ms"
    assert len(values) >= 3 and values[-1] == 1000 and values == sorted(values)  # it moved, forward only
    assert "SHA-256 checked" in panel.last_message and "words a second here" in panel.last_message
    record = load_speeds(paths)[SERVED_ID]
    assert _cells(panel, SERVED_ID)[4:] == ["installed", record.phrase()]
    assert (cache_dir(SERVED_ID, paths) / GGUF_NAME).stat().st_size == smollm2_gguf().stat().st_size


def test_cancel_keeps_the_part_and_resume_finishes(qtbot, served, paths) -> None:
    _, state = served
    state.pause_per_block = 0.02  # slow enough to cancel midway
    panel = _panel(qtbot, paths)
    panel.select(SERVED_ID)
    panel.download_button.click()
    part = cache_dir(SERVED_ID, paths) / f"{GGUF_NAME}.part"
    qtbot.waitUntil(lambda: part.exists() and part.stat().st_size > 5 * MB, timeout=30_000)
    panel.cancel_button.click()
    qtbot.waitUntil(lambda: not panel.busy and _state(panel, SERVED_ID) == "partial", timeout=20_000)
    assert "cancelled" in panel.last_message and "Resume" in panel.last_message
    kept = part.stat().st_size
    assert panel.download_button.text() == "Resume download"
    assert panel.cell(SERVED_ID, "State") == "partly downloaded"

    state.ranges.clear()
    state.pause_per_block = 0.0
    panel.download_button.click()
    qtbot.waitUntil(lambda: not panel.busy and _state(panel, SERVED_ID) == "installed", timeout=120_000)
    assert state.ranges == [f"bytes={kept}-"]


def test_check_deletes_a_damaged_download_and_says_so_then_delete_removes_it(qtbot, served, paths, monkeypatch) -> None:
    from app.store.models import fetch_model

    fetch_model(SERVED_ID, paths=paths)
    target = cache_dir(SERVED_ID, paths) / GGUF_NAME
    panel = _panel(qtbot, paths)
    panel.select(SERVED_ID)
    panel.check_button.click()
    qtbot.waitUntil(lambda: not panel.busy and "passes" in panel.last_message, timeout=30_000)

    with target.open("r+b") as f:  # damaged after the download, same size
        f.seek(4096)
        f.write(b"\xff" * 32)
    panel.check_button.click()
    qtbot.waitUntil(lambda: not panel.busy and "deleted" in panel.last_message, timeout=30_000)
    assert "download it again" in panel.last_message and not target.exists()
    assert _state(panel, SERVED_ID) == "not installed"

    fetch_model(SERVED_ID, paths=paths)
    panel.refresh()
    qtbot.waitUntil(lambda: not panel.busy and _state(panel, SERVED_ID) == "installed", timeout=30_000)
    panel.select(SERVED_ID)
    monkeypatch.setattr(panel, "confirm", lambda question: True)  # the user answers Yes
    panel.delete_button.click()
    qtbot.waitUntil(lambda: not panel.busy and _state(panel, SERVED_ID) == "not installed", timeout=30_000)
    assert "deleted" in panel.last_message and not target.exists()


def test_use_this_model_sets_the_assistant_model_being_edited(qtbot, served, paths) -> None:
    from app.store.models import fetch_model

    fetch_model(SERVED_ID, paths=paths)
    settings = Settings.model_validate({"llm": {"provider": "llama-cpp", "options": {"model_path": "/old/file.gguf"}}})
    dialog = SettingsDialog(settings, get_registry(), paths=paths)
    qtbot.addWidget(dialog)
    panel = dialog.model_manager
    assert panel is not None
    qtbot.waitUntil(lambda: not panel.busy and bool(panel.entries), timeout=20_000)
    panel.select(SERVED_ID)
    assert panel.choose_button.isEnabled()
    panel.choose_button.click()
    page = dialog.stage_pages["llm"]
    assert page.provider == SERVED_PROVIDER
    new = dialog.new_settings()
    assert new.llm.provider == SERVED_PROVIDER
    assert new.llm.options.get("model") == SERVED_ID and not new.llm.options.get("model_path")
    assert "✓ in use" in _cells(panel, SERVED_ID)[0]
    assert not panel.choose_button.isEnabled()  # already the one in use
    assert not panel.delete_button.isEnabled()  # and not deleted from under the assistant
