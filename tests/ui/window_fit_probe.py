"""Run in a child process (its own screen and scale factor): how the main window fits, as JSON.

`python -m tests.ui.window_fit_probe` under QT_SCALE_FACTOR / an offscreen screen config.
"""

from __future__ import annotations

import json
import sys

from PySide6.QtCore import QRect
from PySide6.QtWidgets import QAbstractButton, QApplication, QWidget


def _off_screen(window: QWidget, avail: QRect) -> list[str]:
    """Visible buttons not wholly inside both the window and the screen."""
    out = []
    for b in window.findChildren(QAbstractButton):
        if not b.isVisible() or b.width() <= 0:
            continue
        rect = QRect(b.mapToGlobal(b.rect().topLeft()), b.mapToGlobal(b.rect().bottomRight()))
        if not (avail.contains(rect) and window.frameGeometry().contains(rect)):
            out.append(b.text() or b.accessibleName() or b.objectName())
    return out


def main() -> int:
    app = QApplication(sys.argv[:1])
    from app.store.paths import resolve_paths
    from app.store.settings import Settings
    from ui import theme
    from ui.main_window import MainWindow

    theme.apply_theme(app)
    window = MainWindow(resolve_paths().ensure(), Settings())
    window.show()
    for _ in range(30):
        app.processEvents()
    avail = window.screen().availableGeometry()
    first = {"w": window.width(), "h": window.height(), "off_screen": _off_screen(window, avail)}
    hint = window.minimumSizeHint()
    window.resize(avail.size())  # as large as this screen allows (maximised)
    for _ in range(30):
        app.processEvents()
    full = {
        "w": window.width(),
        "h": window.height(),
        "off_screen": _off_screen(window, avail),
        "side_visible": window.side.isVisible(),
        "talk_h": window.controls.talk_button.height(),
        "text_visible": window.controls.text.isVisible() and window.controls.text.height() > 10,
    }
    print(
        json.dumps(
            {
                "avail": [avail.width(), avail.height()],
                "dpr": window.devicePixelRatioF(),
                "min_hint": [hint.width(), hint.height()],
                "first": first,
                "full": full,
            }
        )
    )
    window._closed = True  # no engine to shut down
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
