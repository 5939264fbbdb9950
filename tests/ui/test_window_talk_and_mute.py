"""Holding Space on an X server that does not flag auto-repeat, and a real Muted state."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QApplication

from app.engine import events as ev
from app.engine.session import Session
from app.plugin.registry import Registry
from app.store.paths import resolve_paths
from app.store.settings import SettingsStore
from tests.support.fakes import FakeClock, fake_settings, register_fakes
from tests.ui.conftest import close_window, wait_until
from ui import announce
from ui.controls import MUTED_REASON
from ui.main_window import REPEAT_GAP_MS, MainWindow

TOO_SHORT = "too short to hear"


def _window(qtbot: Any) -> MainWindow:
    paths = resolve_paths().ensure()
    window = MainWindow(paths, fake_settings(activation_mode="push_to_talk"), SettingsStore(paths.config_dir))
    qtbot.addWidget(window)
    window.show()
    window.activateWindow()
    return window


def _space(widget: Any, kind: QEvent.Type) -> None:
    """A Space event as an X server without detectable auto-repeat sends it: never flagged."""
    event = QKeyEvent(kind, Qt.Key.Key_Space, Qt.KeyboardModifier.NoModifier, " ", False)
    assert not event.isAutoRepeat()
    QApplication.sendEvent(widget, event)


def _pump(ms: float) -> None:
    end = time.monotonic() + ms / 1000
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.002)


def test_holding_space_with_unflagged_repeats_is_one_turn(qtbot: Any, run: Any) -> None:
    window = _window(qtbot)
    talked: list[bool] = []
    window.controls.talk.connect(talked.append)
    target = window.view
    _space(target, QEvent.Type.KeyPress)
    for _ in range(15):  # ~30 ms apart, as X repeats a held key
        _pump(25)
        _space(target, QEvent.Type.KeyRelease)
        _pump(3)
        _space(target, QEvent.Type.KeyPress)
    assert talked == [True], f"the repeats split the turn: {talked}"
    assert window.controls.talk_button.active
    _space(target, QEvent.Type.KeyRelease)  # the real release: nothing follows it
    qtbot.waitUntil(lambda: talked == [True, False], timeout=1000)
    assert not window.controls.talk_button.active
    # Two separate presses, further apart than a repeat, are two turns.
    _pump(REPEAT_GAP_MS * 2)
    _space(target, QEvent.Type.KeyPress)
    _space(target, QEvent.Type.KeyRelease)
    qtbot.waitUntil(lambda: talked == [True, False, True, False], timeout=1000)
    close_window(window, run)


def test_muted_is_a_state_and_talking_while_muted_hears_nothing(qtbot: Any, run: Any) -> None:
    window = _window(qtbot)
    clock = FakeClock(4)
    paths = resolve_paths().ensure()
    session = Session(window.settings, paths, registry=register_fakes(Registry(discover=False), clock), clock=clock)
    notices: list[str] = []
    session.add_listener(lambda e: notices.append(e.message) if isinstance(e, ev.Notice) else None)
    run(window.start_session(session), timeout=30)
    controls, talk = window.controls, window.controls.talk_button

    qtbot.keyClick(window, Qt.Key.Key_M, Qt.KeyboardModifier.ControlModifier)
    assert controls.mute.isChecked() and session.muted
    assert not talk.isEnabled()
    assert talk.toolTip() == MUTED_REASON and talk.accessibleDescription() == MUTED_REASON
    assert window.muted_label.isVisible() and window.muted_label.text() == "Microphone muted"
    assert window.tray.displayed_state() == "muted"
    assert controls.state.label.text() == "Muted"
    assert announce.recent[-1] == "Microphone muted"

    # Space, the button and the global hotkey: none of them opens a turn while muted.
    _space(window.view, QEvent.Type.KeyPress)
    _space(window.view, QEvent.Type.KeyRelease)
    qtbot.mouseClick(talk, Qt.MouseButton.LeftButton)
    window.hotkey.pressed.emit()
    window.hotkey.released.emit()
    run(session.wait_idle(), timeout=10)
    _pump(REPEAT_GAP_MS * 2)
    assert not any(TOO_SHORT in n for n in notices), notices
    assert not talk.active and not session.listener.ptt_active
    assert window.statusBar().currentMessage() == MUTED_REASON  # Space says why nothing happens

    window.tray.mute_action.trigger()  # unmute from the tray
    assert not controls.mute.isChecked() and not session.muted and talk.isEnabled()
    assert not window.muted_label.isVisible() and controls.state.label.text() == "Idle"
    # The same press unmuted reaches the engine (no microphone here: it says it heard too little).
    _space(window.view, QEvent.Type.KeyPress)
    _space(window.view, QEvent.Type.KeyRelease)
    run(wait_until(lambda: any(TOO_SHORT in n for n in notices), 5, "the unmuted press to reach the engine"))
    close_window(window, run)
