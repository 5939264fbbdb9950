"""Browse past conversations (from `app.store.history`) and open one in the view."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
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

    def __init__(
        self, conversations: list[Any], parent: QWidget | None = None, export: Callable[[int, str], str] | None = None
    ) -> None:
        super().__init__(parent)
        self._export = export
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
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        if export is not None and conversations:
            save = buttons.addButton("Export…", QDialogButtonBox.ButtonRole.ActionRole)
            save.setAccessibleName("Export the selected conversation")
            save.setToolTip("Save the selected conversation as Markdown or JSON")
            save.clicked.connect(self._ask_export)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        lay.addWidget(buttons)
        if conversations:
            self.list.setCurrentRow(0)

    def _ask_export(self) -> None:
        item = self.list.currentItem()
        if item is None:
            self.status.setText("Select a conversation to export.")
            return
        path, chosen = QFileDialog.getSaveFileName(
            self,
            "Export conversation",
            str(Path.home() / "conversation.md"),
            "Markdown (*.md);;JSON (*.json)",
        )
        if path:
            self.export_to(int(item.data(Qt.ItemDataRole.UserRole)), Path(path), chosen)

    def export_to(self, conversation_id: int, path: Path, chosen_filter: str = "") -> bool:
        """Write one conversation; the format follows the file name (or the chosen filter)."""
        from app.store.safe_files import atomic_write_text

        assert self._export is not None
        as_json = path.suffix.lower() == ".json" or (not path.suffix and "json" in chosen_filter.lower())
        if not path.suffix:
            path = path.with_suffix(".json" if as_json else ".md")
        try:
            atomic_write_text(path, self._export(conversation_id, "json" if as_json else "markdown"))
        except OSError as exc:
            self.status.setText(f"Could not save {path}: {exc.strerror or exc} — choose another folder.")
            return False
        self.status.setText(f"Saved {path}")
        return True

    def accept(self) -> None:
        item = self.list.currentItem()
        self.chosen_id = int(item.data(Qt.ItemDataRole.UserRole)) if item else None
        super().accept()
