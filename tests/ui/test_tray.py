"""Tray icon, menu and signals; the close-to-tray question; and one run on a real tray host under Xvfb."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from tests.support.x_display import tray_host
from tests.support.xserver import xvfb
from ui import theme
from ui.close_to_tray import (
    DONT_ASK_LABEL,
    KEEP_LABEL,
    QUESTION,
    QUIT_LABEL,
    CloseAction,
    CloseDecision,
    answer_of,
    build_question_box,
    decide_close,
)
from ui.tray import ACTIVATION_MODES, NO_TRAY_MESSAGE, Tray
from ui.tray_icons import BADGE_COLOURS, STATES, badge_rect, state_icon, state_pixmap

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def window(qtbot: Any) -> QWidget:
    w = QWidget()
    qtbot.addWidget(w)
    return w


def badge_sample(size: int) -> tuple[int, int]:
    """A point inside the badge, clear of the muted slash and the error "!"."""
    b = badge_rect(size)
    return int(b.center().x() + b.width() * 0.22), int(b.center().y() - b.height() * 0.22)


def rgb(c: QColor) -> tuple[int, int, int]:
    return c.red(), c.green(), c.blue()


def close_to(a: tuple[int, int, int], b: tuple[int, int, int], tol: int = 12) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


# -- icons -----------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [16, 22, 32, 64])
def test_each_state_has_its_own_badge_over_the_app_icon(qapp: Any, size: int) -> None:
    app_px = theme.app_icon().pixmap(size, size).toImage()
    x, y = badge_sample(size)
    seen = {}
    for state in STATES:
        img = state_pixmap(state, size).toImage()
        seen[state] = rgb(img.pixelColor(x, y))
        assert close_to(seen[state], rgb(QColor(BADGE_COLOURS[state]))), (state, seen[state])
        # Outside the badge it is the app icon, untouched.
        assert img.pixelColor(size // 4, size // 4) == app_px.pixelColor(size // 4, size // 4)
    assert len(set(seen.values())) == len(STATES)


def test_muted_and_error_carry_a_glyph_not_only_a_colour(qapp: Any) -> None:
    size = 64
    centre = badge_rect(size).center()
    for state, glyph in (("muted", "#ffffff"), ("error", "#f5b400")):
        img = state_pixmap(state, size).toImage()
        px = rgb(img.pixelColor(int(centre.x()), int(centre.y()) - 2))
        assert close_to(px, rgb(QColor(glyph)), tol=40), (state, px)


def test_icons_are_cached_and_unknown_states_say_what_is_expected(qapp: Any) -> None:
    assert state_icon("listening") is state_icon("listening")
    assert state_icon("listening").cacheKey() != state_icon("idle").cacheKey()
    with pytest.raises(ValueError, match="expected one of idle, listening"):
        state_icon("sleeping")


# -- the tray --------------------------------------------------------------------------------
def test_no_tray_means_no_icon_but_the_same_menu(window: QWidget) -> None:
    tray = Tray(window, tray_available=False)
    assert tray.available is False
    assert tray.icon is None
    assert NO_TRAY_MESSAGE == "No system tray on this desktop: VoxDesk stays in its window"
    tray.set_state("thinking")  # harmless without an icon
    assert tray.tooltip() == "VoxDesk — Thinking"
    tray.hide()


def test_the_offscreen_platform_reports_no_tray(window: QWidget) -> None:
    assert Tray(window).available is False


def test_state_shows_in_icon_and_tooltip(window: QWidget) -> None:
    tray = Tray(window, tray_available=True)
    assert tray.available and tray.icon is not None
    for state, label in [
        ("idle", "Idle"),
        ("listening", "Listening"),
        ("speaking", "Speaking"),
        ("error", "Unavailable"),
    ]:
        tray.set_state(state)
        assert tray.icon.toolTip() == f"VoxDesk — {label}"
        assert tray.icon.icon().cacheKey() == state_icon(state).cacheKey()
    with pytest.raises(ValueError, match="unknown tray state 'asleep'"):
        tray.set_state("asleep")
    tray.hide()


def test_menu_items_in_order(window: QWidget) -> None:
    tray = Tray(window, tray_available=False)
    texts = [a.text() for a in tray.menu.actions() if not a.isSeparator()]
    assert texts == ["Hide VoxDesk", "Activation", "Mute microphone", "Quit VoxDesk"]
    assert [a.text() for a in tray.activation_menu.actions()] == list(ACTIVATION_MODES.values())
    assert all(a.isCheckable() for a in tray.activation_menu.actions())


def test_quit_emits_quit_requested(window: QWidget, qtbot: Any) -> None:
    tray = Tray(window, tray_available=False)
    with qtbot.waitSignal(tray.quit_requested, timeout=1000):
        tray.quit_action.trigger()


def test_mute_from_the_menu_emits_and_shows_muted(window: QWidget, qtbot: Any) -> None:
    tray = Tray(window, tray_available=True)
    assert tray.icon is not None
    tray.set_state("listening")
    with qtbot.waitSignal(tray.mute_toggled, timeout=1000) as sig:
        tray.mute_action.trigger()
    assert sig.args == [True]
    assert tray.icon.toolTip() == "VoxDesk — Muted"
    assert tray.icon.icon().cacheKey() == state_icon("muted").cacheKey()
    tray.set_state("speaking")  # a reply still plays while the microphone is off
    assert tray.icon.toolTip() == "VoxDesk — Speaking (microphone muted)"
    assert tray.icon.icon().cacheKey() == state_icon("speaking").cacheKey()
    with qtbot.waitSignal(tray.mute_toggled, timeout=1000) as sig:
        tray.mute_action.trigger()
    assert sig.args == [False]
    tray.hide()


def test_set_muted_reflects_without_emitting(window: QWidget, qtbot: Any) -> None:
    tray = Tray(window, tray_available=False)
    with qtbot.assertNotEmitted(tray.mute_toggled):
        tray.set_muted(True)
    assert tray.mute_action.isChecked()
    assert tray.displayed_state() == "muted"
    with qtbot.assertNotEmitted(tray.mute_toggled):
        tray.set_muted(False)
    assert tray.displayed_state() == "idle"


def test_activation_radio_items_with_reasons(window: QWidget, qtbot: Any) -> None:
    tray = Tray(window, tray_available=False)
    reason = "no wake-word model installed"
    tray.set_activation("push_to_talk", {"push_to_talk": None, "wake_word": reason, "always": None})
    ptt, wake, always = (tray.activation_actions[m] for m in ("push_to_talk", "wake_word", "always"))
    assert tray.activation == "push_to_talk"
    assert ptt.isChecked() and not wake.isChecked() and not always.isChecked()
    assert not wake.isEnabled()
    assert wake.text() == "Wake word (unavailable: no wake-word model installed)"
    assert wake.toolTip() == "Wake word is unavailable: no wake-word model installed"
    assert wake.statusTip() == wake.toolTip()
    assert ptt.isEnabled() and ptt.text() == "Push-to-talk"
    assert tray.menu.toolTipsVisible() and tray.activation_menu.toolTipsVisible()

    with qtbot.waitSignal(tray.activation_chosen, timeout=1000) as sig:
        always.trigger()
    assert sig.args == ["always"]
    assert tray.activation == "always" and not ptt.isChecked()  # exclusive
    with qtbot.assertNotEmitted(tray.activation_chosen):
        wake.trigger()  # disabled: nothing happens
    assert tray.activation == "always"

    # The model arrives: the item comes back with its plain name; a missing entry means available.
    with qtbot.assertNotEmitted(tray.activation_chosen):
        tray.set_activation("wake_word", {})
    assert wake.isEnabled() and wake.isChecked() and wake.text() == "Wake word"


def test_activation_rejects_unknown_modes(window: QWidget) -> None:
    tray = Tray(window, tray_available=False)
    with pytest.raises(ValueError, match="unknown activation mode 'hotword'; expected one of push_to_talk"):
        tray.set_activation("hotword", {})
    with pytest.raises(ValueError, match="unknown activation mode 'clap'"):
        tray.set_activation("always", {"clap": "no"})


def test_show_hide_toggles_the_window_and_its_label(window: QWidget, qtbot: Any) -> None:
    tray = Tray(window, tray_available=False)
    window.show()
    qtbot.waitExposed(window)
    tray.menu.aboutToShow.emit()
    assert tray.toggle_action.text() == "Hide VoxDesk"
    tray.toggle_action.trigger()
    assert not window.isVisible()
    assert tray.toggle_action.text() == "Show VoxDesk"
    tray.toggle_action.trigger()
    assert window.isVisible()
    window.showMinimized()
    qtbot.waitUntil(window.isMinimized)
    tray.menu.aboutToShow.emit()
    assert tray.toggle_action.text() == "Show VoxDesk"  # minimized counts as out of sight
    tray.toggle()
    qtbot.waitUntil(lambda: not window.isMinimized())
    assert window.isVisible()


# -- close to tray ---------------------------------------------------------------------------
def never_ask(_parent: QWidget | None) -> tuple[bool | None, bool]:
    raise AssertionError("asked, but the answer was known")


def test_close_without_a_tray_always_quits_and_keeps_the_stored_answer() -> None:
    for remembered in (None, True, False):
        assert decide_close(None, remembered, False, ask=never_ask) == CloseDecision(CloseAction.QUIT, remembered)


def test_close_with_a_remembered_answer_does_not_ask() -> None:
    keep = decide_close(None, True, True, ask=never_ask)
    assert keep == CloseDecision(CloseAction.TO_TRAY, True) and keep.keep_running
    quit_ = decide_close(None, False, True, ask=never_ask)
    assert quit_ == CloseDecision(CloseAction.QUIT, False) and not quit_.keep_running


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ((True, True), CloseDecision(CloseAction.TO_TRAY, True)),
        ((True, False), CloseDecision(CloseAction.TO_TRAY, None)),  # ask again next time
        ((False, True), CloseDecision(CloseAction.QUIT, False)),
        ((False, False), CloseDecision(CloseAction.QUIT, None)),
        ((None, True), CloseDecision(CloseAction.CANCEL, None)),  # backed out: nothing is remembered
    ],
)
def test_close_asks_the_first_time(answer: tuple[bool | None, bool], expected: CloseDecision) -> None:
    asked: list[Any] = []

    def ask(parent: QWidget | None) -> tuple[bool | None, bool]:
        asked.append(parent)
        return answer

    assert decide_close(None, None, True, ask=ask) == expected
    assert asked == [None]


def test_the_question_box(window: QWidget) -> None:
    box = build_question_box(window)
    assert box.text() == QUESTION
    assert [b.text() for b in box.buttons() if box.buttonRole(b) != QMessageBox.ButtonRole.RejectRole] in (
        [KEEP_LABEL, QUIT_LABEL],
        [QUIT_LABEL, KEEP_LABEL],
    )
    check = box.checkBox()
    assert check is not None and check.text() == DONT_ASK_LABEL and check.isChecked()
    assert box.defaultButton().text() == KEEP_LABEL
    assert answer_of(box) == (None, True)  # nothing clicked yet


@pytest.mark.parametrize(
    ("click", "untick", "expected"),
    [
        (KEEP_LABEL, False, CloseDecision(CloseAction.TO_TRAY, True)),
        (QUIT_LABEL, False, CloseDecision(CloseAction.QUIT, False)),
        (KEEP_LABEL, True, CloseDecision(CloseAction.TO_TRAY, None)),
        ("escape", False, CloseDecision(CloseAction.CANCEL, None)),
    ],
)
def test_the_real_dialog_answered_by_a_timer(
    window: QWidget, qtbot: Any, click: str, untick: bool, expected: CloseDecision
) -> None:
    from PySide6.QtCore import Qt

    def answer() -> None:
        box = next(w for w in QApplication.topLevelWidgets() if w.objectName() == "close_to_tray_question")
        assert isinstance(box, QMessageBox) and box.isVisible()
        if untick:
            check = box.checkBox()
            assert check is not None
            qtbot.mouseClick(check, Qt.MouseButton.LeftButton)
        if click == "escape":
            qtbot.keyClick(box, Qt.Key.Key_Escape)
        else:
            button = next(b for b in box.buttons() if b.text() == click)
            qtbot.mouseClick(button, Qt.MouseButton.LeftButton)

    QTimer.singleShot(50, answer)
    assert decide_close(window, None, True) == expected


# -- a real tray host ------------------------------------------------------------------------
def test_on_a_real_tray_host_the_icon_docks_shows_states_and_answers_clicks(tmp_path: Path) -> None:
    """Xvfb on a free display, the app on Qt's xcb platform, then trayer (owning _NET_SYSTEM_TRAY_S0)
    starting after it; real clicks come from xdotool. The probe reads the docked icon's badge back
    from the screen."""
    shot = os.environ.get("VOXDESK_TRAY_SHOT", str(tmp_path / "tray-shot.png"))
    env = {k: v for k, v in os.environ.items() if k != "DBUS_SESSION_BUS_ADDRESS"}  # no bus: the tray's balloon
    env.pop("XDG_RUNTIME_DIR", None)
    with xvfb(screen="800x600x24") as server, (tmp_path / "probe.err").open("w+") as err:
        display = server.display
        env.update(DISPLAY=display, QT_QPA_PLATFORM="xcb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.tray_probe", "--shot", shot],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
        try:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            first = proc.stdout.readline() if ready else ""
            assert first.strip() == "WAITING_FOR_TRAY_HOST", f"probe: {first!r}; {err.seek(0) or err.read()}"
            with tray_host(display):  # the panel starts after the app
                stdout, _ = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        stderr = err.read()
    line = next((ln for ln in stdout.splitlines() if ln.startswith("RESULT ")), None)
    assert line is not None, f"probe failed ({proc.returncode}):\n{stdout}\n{stderr}"
    r = json.loads(line[len("RESULT ") :])
    assert r["available_before_host"] is False and r["routes_before_host"] == ["log"], r
    assert r["tray_available"] and r["docked"], r
    for state in STATES:
        assert close_to(tuple(r["badge_rgb"][state]), rgb(QColor(BADGE_COLOURS[state])), tol=20), (state, r)
    assert r["tooltips"]["listening"] == "VoxDesk — Listening"
    assert r["tooltips"]["muted"] == "VoxDesk — Muted"
    assert r["hidden_by_click"] and r["shown_by_click"] and r["double_click_hides"], r
    assert r["balloon"] and r["routes"] == ["tray"], r
    assert r["menu_by_right_click"] and r["submenu_shown"], r
    assert r["wake_word_item"] == {
        "text": "Wake word (unavailable: no wake-word model installed)",
        "enabled": False,
        "tooltip": "Wake word is unavailable: no wake-word model installed",
    }
    assert proc.returncode == 0
    assert Path(shot).stat().st_size > 0
