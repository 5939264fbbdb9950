"""Is each configured provider working, and if not, what broke and when.

One row per stage's provider, filled from `Session.check_health()`. The OTLP
exporter's status sits under the table because a collector that is down must be
visible without ever slowing a turn.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ui.stage_titles import stage_title

COLUMNS = ("Stage", "Provider", "Where", "Status", "Errors", "Circuit", "Last error")
STATUS_COLOURS = {"ok": "#22a35a", "degraded": "#e0a100", "down": "#d64545"}
PLACE_WORDS = {"local": "this computer", "server": "your server", "cloud": "cloud"}
#: (stage, provider) → "local" | "server" | "cloud" | None, read from the provider's address.
Locate = Callable[[str, str], str | None]


def _status_of(row: Any) -> tuple[str, str]:
    health = getattr(row, "health", None)
    status = getattr(health, "status", "down" if health is None else "ok")
    return str(getattr(status, "value", status)), str(getattr(health, "detail", "") or "")


def _when(ts: float | None) -> str:
    if not ts:
        return ""
    return time.strftime("%H:%M:%S", time.localtime(ts))


class HealthPanel(QWidget):
    """Table of provider health; `check_requested` asks the window to run a check now."""

    check_requested = Signal()

    def __init__(self, parent: QWidget | None = None, *, locate: Locate | None = None) -> None:
        super().__init__(parent)
        #: Where each provider runs, from its settings (`app.plugin.server_place`); the window sets it.
        self.locate = locate
        self.setAccessibleName("Provider health panel")
        lay = QVBoxLayout(self)
        top = QHBoxLayout()
        title = QLabel("Health")
        title.setObjectName("panel_title")
        top.addWidget(title)
        top.addStretch(1)
        self.checked_label = QLabel("not checked yet")
        self.checked_label.setObjectName("bubble_meta")
        top.addWidget(self.checked_label)
        self.check_button = QPushButton("Check now")
        self.check_button.setAccessibleName("Check provider health now")
        self.check_button.setToolTip("Ask every provider whether it works (Ctrl+H)")
        self.check_button.clicked.connect(self.check_requested)
        top.addWidget(self.check_button)
        lay.addLayout(top)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setAccessibleName("Provider health")
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setWordWrap(True)
        header = self.table.horizontalHeader()
        for c in range(len(COLUMNS) - 1):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        lay.addWidget(self.table, 1)

        self.exporter_label = QLabel("Telemetry export: —")
        self.exporter_label.setAccessibleName("OpenTelemetry exporter status")
        self.exporter_label.setWordWrap(True)
        lay.addWidget(self.exporter_label)

    def set_checking(self, busy: bool) -> None:
        self.check_button.setEnabled(not busy)
        self.check_button.setText("Checking…" if busy else "Check now")

    def set_rows(self, rows: Sequence[Any]) -> None:
        """Rows are `ProviderHealth`-like: stage, provider, local, health, breaker_state,
        error_count, last_error, last_error_at."""
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            status, detail = _status_of(row)
            last_error = getattr(row, "last_error", None) or ""
            when = _when(getattr(row, "last_error_at", None))
            problem = last_error or (detail if status != "ok" else "")
            cells = (
                str(getattr(row, "stage", "")),
                str(getattr(row, "provider", "")),
                self._where(row),
                status,
                str(getattr(row, "error_count", 0) or 0),
                str(getattr(row, "breaker_state", None) or "—"),
                f"{when}  {problem}".strip() if problem else "",
            )
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c == 3:
                    item.setForeground(QBrush(QColor(STATUS_COLOURS.get(status, "#8a94a6"))))
                    item.setText(f"● {text}")
                    if detail:
                        item.setToolTip(detail)
                if c == 6 and problem:
                    item.setToolTip(problem)
                spoken = text
                if c == 0 and stage_title(text) != text:  # the id is short; its title is a hover away
                    spoken = f"{stage_title(text)} ({text})"
                    item.setToolTip(stage_title(text))
                item.setData(Qt.ItemDataRole.AccessibleTextRole, f"{COLUMNS[c]}: {spoken}")
                self.table.setItem(r, c, item)
        self.table.resizeRowsToContents()
        self.checked_label.setText(f"checked {time.strftime('%H:%M:%S')}")

    def _where(self, row: Any) -> str:
        """This computer, your server or cloud: from the address when known, never "remote"
        for a server on localhost."""
        place = None
        if self.locate is not None:
            try:
                place = self.locate(str(getattr(row, "stage", "")), str(getattr(row, "provider", "")))
            except Exception:  # a row for a provider the settings no longer name
                place = None
        if place is None:
            place = "local" if getattr(row, "local", True) else "cloud"
        return PLACE_WORDS.get(place, place)

    def set_exporter_status(self, status: str) -> None:
        self.exporter_label.setText(f"Telemetry export: {status or 'in-app only (no OTLP endpoint)'}")

    def row_texts(self) -> list[list[str]]:
        """What a user reads in the table, row by row."""
        out = []
        for r in range(self.table.rowCount()):
            row = []
            for c in range(self.table.columnCount()):
                item = self.table.item(r, c)
                row.append(item.text() if item else "")
            out.append(row)
        return out
