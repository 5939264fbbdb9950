"""The main window on small and 2x screens, and for screen-reader and keyboard users."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QApplication, QMenu, QMessageBox

from app import __version__
from app.engine import events as ev
from app.store.paths import resolve_paths
from app.store.settings import Settings, SettingsStore
from tests.ui.conftest import close_window
from ui import announce, theme
from ui.conversation_view import BUBBLE_PADDING, READABLE_CHARS, ConversationView
from ui.main_window import SIDE_PANEL_MIN_WINDOW_W, MainWindow, about_text, first_size

ROOT = Path(__file__).resolve().parents[2]


def _window(qtbot: Any) -> MainWindow:
    paths = resolve_paths().ensure()
    window = MainWindow(paths, Settings(), SettingsStore(paths.config_dir))
    qtbot.addWidget(window)
    window.show()
    return window


def _probe(tmp_path: Path, width: int, height: int, scale: str) -> dict[str, Any]:
    config = tmp_path / "screen.json"
    screen = {"name": "probe", "x": 0, "y": 0, "width": width, "height": height, "logicalDpi": 96, "dpr": 1}
    config.write_text(json.dumps({"screens": [screen]}))
    env = {**os.environ, "QT_QPA_PLATFORM": f"offscreen:configfile={config}", "QT_SCALE_FACTOR": scale}
    out = subprocess.run(
        [sys.executable, "-m", "tests.ui.window_fit_probe"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_at_2x_on_a_1080p_screen_the_window_fits_with_every_button_visible(tmp_path: Path) -> None:
    r = _probe(tmp_path, 1920, 1080, "2")
    assert r["avail"] == [960, 540] and r["dpr"] == 2.0
    assert r["min_hint"][0] <= 960 and r["min_hint"][1] <= 540, r  # was 1,092 px (546 logical) high
    assert r["first"]["w"] <= 960 and r["first"]["h"] <= 540 and r["first"]["off_screen"] == []
    full = r["full"]
    assert (full["w"], full["h"]) == (960, 540), "the window could not be made as small as the screen"
    assert full["off_screen"] == [], f"buttons off screen: {full['off_screen']}"
    assert not full["side_visible"], "the side panel should fold away below 1,000 px"
    assert full["talk_h"] >= 40 and full["text_visible"]


def test_first_size_is_clamped_to_the_screen() -> None:
    assert first_size(QSize(1920, 1080)) == QSize(1180, 740)
    assert first_size(QSize(960, 540)) == QSize(864, 486)


def test_a_size_saved_on_a_bigger_screen_is_fitted_to_this_one(qtbot: Any, run: Any) -> None:
    window = _window(qtbot)
    avail = window.screen().availableGeometry()
    window.resize(avail.width() * 2, avail.height() * 2)
    window.save_layout()
    close_window(window, run)
    again = _window(qtbot)
    assert again.width() <= avail.width() and again.height() <= avail.height()
    close_window(again, run)


def test_the_side_panel_folds_away_on_a_narrow_window_and_comes_back(qtbot: Any, run: Any) -> None:
    window = _window(qtbot)
    window.resize(SIDE_PANEL_MIN_WINDOW_W + 100, 700)
    qtbot.waitUntil(lambda: window.side.isVisible())
    window.resize(SIDE_PANEL_MIN_WINDOW_W - 100, 700)
    qtbot.waitUntil(lambda: not window.side.isVisible())
    assert not window.panels_action.isChecked()
    window.panels_action.trigger()  # F9 still shows it on demand
    assert window.side.isVisible()
    window.panels_action.trigger()
    window.resize(SIDE_PANEL_MIN_WINDOW_W + 100, 700)
    assert not window.side.isVisible(), "the user hid it: a wider window must not bring it back"
    window.panels_action.trigger()
    window.resize(SIDE_PANEL_MIN_WINDOW_W - 100, 700)
    qtbot.waitUntil(lambda: not window.side.isVisible())
    window.resize(SIDE_PANEL_MIN_WINDOW_W + 100, 700)
    qtbot.waitUntil(lambda: window.side.isVisible())
    close_window(window, run)


def test_chat_bubbles_keep_a_readable_width_on_a_wide_window(qtbot: Any) -> None:
    view = ConversationView()
    qtbot.addWidget(view)
    view.resize(2400, 800)
    view.show()
    view.user_final("t1", "word " * 200)
    view.turn_finished("t1", "word " * 200, "reply " * 200, False)
    qtbot.wait(50)
    view.turn_finished("t2", "hi", "Hello!", False)
    qtbot.wait(50)
    limit = view.fontMetrics().averageCharWidth() * READABLE_CHARS + BUBBLE_PADDING
    bubbles = view._bubbles
    assert len(bubbles) == 4
    for bubble in bubbles[:2]:
        assert limit * 0.9 <= bubble.width() <= limit < 1600
    for bubble in bubbles[2:]:  # a short message hugs its words
        assert bubble.width() < limit / 2


def test_replies_and_states_are_announced_to_screen_readers(qtbot: Any, run: Any) -> None:
    window = _window(qtbot)
    window.on_event(ev.StateChanged(state=ev.State.LISTENING))
    assert announce.recent[-1] == "Listening"
    assert window.controls.state.label.accessibleName() == "Assistant state: Listening"
    window.on_event(ev.StateChanged(state=ev.State.THINKING))
    assert announce.recent[-1] == "Thinking"
    window.on_event(
        ev.TurnFinished(
            turn_id="t1",
            user_text="what time is it",
            reply_text="It is four o'clock.",
            interrupted=False,
            timings={},
            voice_to_voice_s=None,
            providers={},
        )
    )
    assert announce.recent[-1] == "VoxDesk: It is four o'clock."
    close_window(window, run)


def _contrast(a: QColor, b: QColor) -> float:
    def lum(c: QColor) -> float:
        def ch(v: float) -> float:
            return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

        return 0.2126 * ch(c.redF()) + 0.7152 * ch(c.greenF()) + 0.0722 * ch(c.blueF())

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("dark", [False, True])
def test_the_talk_button_has_a_clearly_visible_focus_ring(qtbot: Any, run: Any, dark: bool) -> None:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    old_sheet, old_palette = app.styleSheet(), app.palette()
    theme.apply_theme(app, dark)
    try:
        window = _window(qtbot)
        window.activateWindow()
        talk = window.controls.talk_button
        window.controls.text.setFocus()
        qtbot.wait(20)
        unfocused = talk.grab().toImage()
        talk.setFocus(Qt.FocusReason.TabFocusReason)
        qtbot.waitUntil(talk.hasFocus)
        qtbot.wait(20)
        focused = talk.grab().toImage()
        look = theme.DARK if dark else theme.LIGHT
        ring, background, accent = (QColor(look[k]) for k in ("focus_ring", "window_bg", "accent"))
        assert _contrast(ring, background) >= 3 and _contrast(ring, accent) >= 3  # WCAG non-text contrast
        changed = _ring_pixels(unfocused, focused, ring)
        assert changed >= 2 * (talk.width() + talk.height()), f"focus ring too faint: {changed} px"
        close_window(window, run)
    finally:
        app.setStyleSheet(old_sheet)
        app.setPalette(old_palette)


def _ring_pixels(before: QImage, after: QImage, ring: QColor) -> int:
    """Pixels that became (close to) the ring colour when the button took focus."""
    n = 0
    for y in range(after.height()):
        for x in range(after.width()):
            c, was = after.pixelColor(x, y), before.pixelColor(x, y)
            near = abs(c.red() - ring.red()) + abs(c.green() - ring.green()) + abs(c.blue() - ring.blue()) < 60
            if near and c != was:
                n += 1
    return n


def test_keyboard_shortcuts_page_lists_the_real_actions(qtbot: Any, run: Any) -> None:
    window = _window(qtbot)
    dialog = window.show_shortcuts()
    rows = dict(dialog.rows)
    assert rows["Mute microphone"] == "Ctrl+M"
    assert rows["New conversation"] == "Ctrl+N"
    assert rows["Latency & health panels"] == "F9"
    assert rows["Keyboard shortcuts"] == "Ctrl+/"
    assert "Ctrl+," in rows["Settings"]
    assert rows["Hold to talk (outside text fields)"] == "Space"
    window.mute_action.setShortcut("Ctrl+Shift+M")  # built from the actions: a change shows up
    dialog.reject()
    assert dict(window.show_shortcuts().rows)["Mute microphone"] == "Ctrl+Shift+M"
    assert dialog.table.rowCount() == len(dialog.rows)
    help_menu = window.menuBar().actions()[-1].menu()
    assert isinstance(help_menu, QMenu)
    assert "&Keyboard shortcuts" in [a.text() for a in help_menu.actions()]
    close_window(window, run)


def test_about_shows_the_version(qtbot: Any, run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert __version__ in about_text()
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "about", lambda _parent, _title, text: shown.append(text))
    window = _window(qtbot)
    window._about()
    assert shown and f"VoxDesk {__version__}" in shown[0]
    close_window(window, run)
