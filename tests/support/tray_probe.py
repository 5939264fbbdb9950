"""Drives the real tray icon on a real X tray host (run under Xvfb + trayer by tests/ui/test_tray.py).

Run: DISPLAY=:N QT_QPA_PLATFORM=xcb python -m tests.support.tray_probe [--shot PATH]
It makes the tray icon first, prints WAITING_FOR_TRAY_HOST and waits for the test to start
the tray host (as when a panel starts after VoxDesk at login). Then it prints one line
`RESULT {json}`: whether the icon docked, the badge colour read back from
the screen per state, whether a real left click (xdotool) hid and showed the window and a
right click opened the menu, and whether the notification fallback showed a tray balloon.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any


def main() -> int:
    from PySide6.QtWidgets import QApplication, QWidget

    from ui import theme
    from ui.notifications import Notifier
    from ui.tray import Tray
    from ui.tray_icons import STATES, badge_rect

    app = QApplication(sys.argv[:1])
    theme.apply_theme(app, dark=False)
    result: dict[str, Any] = {}

    def settle(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)

    def wait(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end:
                return False
            settle(0.02)
        return True

    def xdotool(*args: str) -> None:
        subprocess.run(["xdotool", *args], check=True, timeout=10)

    window = QWidget()
    window.setWindowTitle("VoxDesk")
    window.resize(320, 160)
    window.move(40, 80)
    window.show()
    tray = Tray(window)
    notifier = Notifier(lambda: True, tray=tray.icon)  # D-Bus first; the test leaves no bus address
    routes: list[str] = []
    notifier.delivered.connect(lambda how, _title: routes.append(how))
    # No tray host yet: not available, and a notification has nowhere to go but the log.
    result["available_before_host"] = tray.available
    notifier.notify("Early", "before the panel started")
    wait(lambda: bool(routes), 5)
    result["routes_before_host"] = list(routes)
    routes.clear()
    print("WAITING_FOR_TRAY_HOST", flush=True)
    result["tray_available"] = wait(lambda: tray.available, 20)
    if tray.icon is None:
        print("RESULT " + json.dumps(result), flush=True)
        return 1
    icon = tray.icon
    result["docked"] = wait(lambda: icon.geometry().width() > 0)
    settle(0.3)
    geo = icon.geometry()
    result["geometry"] = [geo.x(), geo.y(), geo.width(), geo.height()]
    screen = app.primaryScreen()

    # Read each state's badge back from the X server, off the muted slash and the "!".
    size = geo.width()
    badge = badge_rect(size)
    sx = int(badge.center().x() + badge.width() * 0.22)
    sy = int(badge.center().y() - badge.height() * 0.22)
    colours: dict[str, list[int]] = {}
    grabs: dict[str, Any] = {}
    tooltips: dict[str, str] = {}
    for state in STATES:
        tray.set_muted(state == "muted")
        tray.set_state("idle" if state == "muted" else state)
        settle(0.25)
        img = screen.grabWindow(0, geo.x(), geo.y(), geo.width(), geo.height()).toImage()
        grabs[state] = img
        c = img.pixelColor(sx, sy)
        colours[state] = [c.red(), c.green(), c.blue()]
        tooltips[state] = icon.toolTip()
    tray.set_muted(False)
    tray.set_state("listening")
    result["badge_rgb"] = colours
    result["tooltips"] = tooltips

    # Real clicks on the docked icon.
    cx, cy = geo.center().x(), geo.center().y()
    xdotool("mousemove", str(cx), str(cy), "click", "1")
    result["hidden_by_click"] = wait(lambda: not window.isVisible(), 5)
    settle(app.doubleClickInterval() / 1000 + 0.2)  # two quick clicks are a double-click, not two toggles
    xdotool("click", "1")
    result["shown_by_click"] = wait(window.isVisible, 5)
    # A double-click (a Windows habit) is a Trigger then a DoubleClick: it must toggle once, not twice.
    settle(app.doubleClickInterval() / 1000 + 0.2)
    xdotool("click", "--repeat", "2", "--delay", "60", "1")
    settle(app.doubleClickInterval() / 1000 + 0.3)
    result["double_click_hides"] = not window.isVisible()
    xdotool("click", "1")
    wait(window.isVisible, 5)

    # No session bus: the notification falls back to Qt's own balloon by the tray icon.
    notifier.notify("Timer", "Your 5 minute tea timer is done")
    balloon = wait(
        lambda: any(w.metaObject().className() == "QBalloonTip" and w.isVisible() for w in app.topLevelWidgets()), 5
    )
    result["balloon"] = balloon
    settle(0.3)
    balloon_grab = screen.grabWindow(0).toImage()
    result["routes"] = routes

    tray.set_activation("push_to_talk", {"wake_word": "no wake-word model installed", "always": None})
    xdotool("mousemove", str(cx), str(cy), "click", "3")
    result["menu_by_right_click"] = wait(tray.menu.isVisible, 5)
    if result["menu_by_right_click"]:
        item = tray.menu.actionGeometry(tray.activation_menu.menuAction()).center()
        at = tray.menu.mapToGlobal(item)
        xdotool("mousemove", str(at.x()), str(at.y()))
        result["submenu_shown"] = wait(tray.activation_menu.isVisible, 5)
        settle(0.3)
        wake = tray.activation_actions["wake_word"]
        result["wake_word_item"] = {"text": wake.text(), "enabled": wake.isEnabled(), "tooltip": wake.toolTip()}
    if "--shot" in sys.argv:
        path = sys.argv[sys.argv.index("--shot") + 1]
        compose_shot(screen.grabWindow(0).toImage(), balloon_grab, grabs).save(path)
        result["shot"] = path
    tray.menu.hide()
    notifier.close()
    tray.hide()
    print("RESULT " + json.dumps(result), flush=True)
    return 0


def compose_shot(menu: Any, balloon: Any, grabs: dict[str, Any]) -> Any:
    """The screen with the menu open, the screen with the balloon, and each state's icon as grabbed, 4×."""
    from PySide6.QtCore import QRect, Qt
    from PySide6.QtGui import QColor, QImage, QPainter

    zoom, cell = 4, 120
    strip_h = grabs[next(iter(grabs))].height() * zoom + 30
    out = QImage(menu.width() * 2, menu.height() + strip_h, QImage.Format.Format_RGB32)
    out.fill(QColor("#f0f0f0"))
    p = QPainter(out)
    p.drawImage(0, 0, menu)
    p.drawImage(menu.width(), 0, balloon)
    for i, (state, img) in enumerate(grabs.items()):
        x, y = 10 + i * cell, menu.height() + 4
        p.drawImage(QRect(x, y, img.width() * zoom, img.height() * zoom), img)
        p.setPen(QColor("#000000"))
        p.drawText(QRect(x, y + img.height() * zoom, cell, 24), Qt.AlignmentFlag.AlignLeft, state)
    p.end()
    return out


if __name__ == "__main__":
    sys.exit(main())
