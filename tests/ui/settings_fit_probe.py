"""Run in a fresh process (a scale factor is read when Qt starts): open Settings and print,
as JSON, the screen's available rect, the dialog's frame and its buttons' rects."""

from __future__ import annotations

import json
import sys

from PySide6.QtWidgets import QApplication, QDialogButtonBox


def main() -> None:
    app = QApplication(sys.argv)
    from app.plugin.registry import get_registry
    from app.store.settings import Settings
    from ui.settings_dialog import SettingsDialog

    d = SettingsDialog(Settings(), get_registry())
    d.show()
    app.processEvents()
    scr = d.screen().availableGeometry()
    fg = d.frameGeometry()
    buttons = {}
    for b in (
        QDialogButtonBox.StandardButton.Ok,
        QDialogButtonBox.StandardButton.Apply,
        QDialogButtonBox.StandardButton.Cancel,
    ):
        w = d.buttons.button(b)
        tl, br = w.mapTo(d, w.rect().topLeft()), w.mapTo(d, w.rect().bottomRight())
        buttons[w.text()] = [tl.x(), tl.y(), br.x(), br.y(), w.isVisible()]
    probe = {
        "screen": [scr.x(), scr.y(), scr.width(), scr.height()],
        "frame": [fg.x(), fg.y(), fg.width(), fg.height()],
        "size": [d.width(), d.height()],
        "buttons": buttons,
        "list_w": d.stage_pages["llm"].list.width(),
    }
    print(json.dumps(probe))


if __name__ == "__main__":
    main()
