"""Browse past conversations (from `app.history`) and open one in the view."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ui.conversation_view import Message


def turns_to_messages(turns: list[Any]) -> list[Message]:
    out: list[Message] = []
    for t in turns:
        if getattr(t, "user_text", ""):
            out.append(Message("user", t.user_text, str(t.id), final=True, at=t.started_at))
        if getattr(t, "reply_text", ""):
            out.append(
                Message(
                    "assistant",
                    t.reply_text,
                    str(t.id),
                    final=True,
                    interrupted=bool(t.interrupted),
                    at=t.finished_at or t.started_at,
                )
            )
        if getattr(t, "error", None):
            out.append(Message("error", str(t.error), str(t.id), final=True, at=t.started_at))
    return out


class HistoryDialog(QDialog):
    """Pick a conversation; `chosen_id` holds it after `accept()`."""

    def __init__(self, conversations: list[Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Conversation history")
        self.setAccessibleName("Conversation history")
        self.resize(460, 420)
        self.chosen_id: int | None = None
        lay = QVBoxLayout(self)
        self.list = QListWidget()
        self.list.setAccessibleName("Past conversations")
        for c in conversations:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(c.updated_at))
            item = QListWidgetItem(f"{c.title or 'Untitled'}\n{when} · {c.turn_count} turns")
            item.setData(Qt.ItemDataRole.UserRole, c.id)
            self.list.addItem(item)
        if not conversations:
            lay.addWidget(QLabel("No conversations yet."))
        self.list.itemDoubleClicked.connect(lambda _i: self.accept())
        lay.addWidget(self.list)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)

    def accept(self) -> None:
        item = self.list.currentItem()
        self.chosen_id = int(item.data(Qt.ItemDataRole.UserRole)) if item else None
        super().accept()
