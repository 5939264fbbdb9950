"""Settings → a stage's fallbacks: the other known providers, ticked to use, in the order tried.

Replaces comma-separated text: the choices are known (the registry's providers for the
stage), so they are listed; a tick uses one, Move up / Move down (or Alt+↑/↓) set the
order. The provider chosen for the stage itself is left out of the list while chosen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QHBoxLayout, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

NAME_ROLE = Qt.ItemDataRole.UserRole


class FallbackList(QWidget):
    """An ordered checklist; `fallbacks()` is the ticked names, in list order."""

    changed = Signal()

    def __init__(
        self,
        known: Sequence[str],
        chosen: Sequence[str],
        label: Callable[[str], str] = str,
        *,
        title: str = "Fallback providers",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setAccessibleName(title)
        self.list.setAccessibleDescription("Ticked providers are tried in this order when the chosen one fails")
        self.list.setToolTip("Ticked providers are tried, top first, when the chosen one fails")
        # Saved fallbacks first, in their order (even one not installed: the check reports it),
        # then the rest unticked.
        order = list(dict.fromkeys([*chosen, *known]))
        for name in order:
            item = QListWidgetItem(label(name))
            item.setData(NAME_ROLE, name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if name in chosen else Qt.CheckState.Unchecked)
            self.list.addItem(item)
        self.list.installEventFilter(self)
        self.list.itemChanged.connect(lambda *_: self.changed.emit())
        self.list.currentRowChanged.connect(lambda *_: self._update_buttons())
        self.up = QPushButton("Move up")
        self.up.setAccessibleName("Move the fallback up")
        self.up.clicked.connect(lambda: self.move_current(-1))
        self.down = QPushButton("Move down")
        self.down.setAccessibleName("Move the fallback down")
        self.down.clicked.connect(lambda: self.move_current(1))
        buttons = QVBoxLayout()
        buttons.addWidget(self.up)
        buttons.addWidget(self.down)
        buttons.addStretch(1)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.list, 1)
        lay.addLayout(buttons)
        self._fit_height()
        self._update_buttons()

    def _fit_height(self) -> None:
        rows = min(max(self.list.count(), 2), 5)
        row_h = self.list.sizeHintForRow(0) if self.list.count() else self.fontMetrics().height() + 6
        self.list.setFixedHeight(rows * row_h + 2 * self.list.frameWidth() + 4)

    def _rows(self) -> list[QListWidgetItem]:
        return [self.list.item(i) for i in range(self.list.count())]

    def names(self) -> list[str]:
        """Every listed provider, in order (hidden ones included)."""
        return [str(i.data(NAME_ROLE)) for i in self._rows()]

    def fallbacks(self) -> list[str]:
        return [
            str(i.data(NAME_ROLE)) for i in self._rows() if i.checkState() == Qt.CheckState.Checked and not i.isHidden()
        ]

    def set_checked(self, name: str, checked: bool) -> None:
        for item in self._rows():
            if item.data(NAME_ROLE) == name:
                item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)

    def exclude(self, primary: str) -> None:
        """Hide the stage's chosen provider: it cannot be its own fallback."""
        for item in self._rows():
            item.setHidden(item.data(NAME_ROLE) == primary)
        self._update_buttons()

    def _visible_rows(self) -> list[int]:
        return [i for i, item in enumerate(self._rows()) if not item.isHidden()]

    def move_current(self, step: int) -> None:
        """Move the current provider up (-1) or down (+1) past the next one shown."""
        row = self.list.currentRow()
        shown = self._visible_rows()
        if row not in shown:
            return
        at = shown.index(row) + step
        if not 0 <= at < len(shown):
            return
        target = shown[at]
        item = self.list.takeItem(row)
        self.list.insertItem(target, item)
        self.list.setCurrentRow(target)
        self.changed.emit()

    def _update_buttons(self) -> None:
        shown = self._visible_rows()
        row = self.list.currentRow()
        self.up.setEnabled(row in shown and shown.index(row) > 0)
        self.down.setEnabled(row in shown and shown.index(row) < len(shown) - 1)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Alt+Up / Alt+Down on the list move the current provider."""
        if watched is self.list and event.type() == QEvent.Type.KeyPress and isinstance(event, QKeyEvent):
            alt = event.modifiers() & Qt.KeyboardModifier.AltModifier
            if alt and event.key() in (Qt.Key.Key_Up, Qt.Key.Key_Down):
                self.move_current(-1 if event.key() == Qt.Key.Key_Up else 1)
                return True
        return super().eventFilter(watched, event)
