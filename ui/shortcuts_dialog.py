"""Help → Keyboard shortcuts: a table built from the window's real QActions, so it cannot drift."""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)


def action_label(action: QAction) -> str:
    """ "&Settings…" → "Settings" (menu mnemonics and ellipses are not part of the name)."""
    return action.text().replace("&&", "\0").replace("&", "").replace("\0", "&").rstrip("…").strip()


def shortcut_rows(actions: Iterable[QAction], extra: Iterable[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """(what it does, keys) for each action with a shortcut, one row per name, then `extra`."""
    rows: dict[str, list[str]] = {}
    for action in actions:
        keys = [k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts() if not k.isEmpty()]
        if not keys or action.isSeparator():
            continue
        shown = rows.setdefault(action_label(action), [])
        shown += [k for k in keys if k not in shown]  # Settings has Ctrl+, besides the standard key
    return [(name, ", ".join(keys)) for name, keys in rows.items()] + list(extra)


class ShortcutsDialog(QDialog):
    def __init__(
        self, actions: Iterable[QAction], extra: Iterable[tuple[str, str]] = (), parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.setAccessibleName("Keyboard shortcuts")
        self.rows = shortcut_rows(actions, extra)
        lay = QVBoxLayout(self)
        self.table = QTableWidget(len(self.rows), 2)
        self.table.setAccessibleName("Keyboard shortcuts")
        self.table.setHorizontalHeaderLabels(["Action", "Shortcut"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        for r, (name, keys) in enumerate(self.rows):
            for c, text in enumerate((name, keys)):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.AccessibleTextRole, f"{name}: {keys}" if c == 0 else keys)
                self.table.setItem(r, c, item)
        lay.addWidget(self.table)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.resize(460, min(560, 80 + 30 * len(self.rows)))
