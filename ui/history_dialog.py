"""Browse past conversations (from `app.store.history`): search, rename, delete with undo, export, open.

Store calls run in worker threads (a locked database must not freeze the window). A delete
only moves the conversation to the store's trash: "Undo" brings it back, and it is removed
for good when the dialog closes (`settled()` waits for that).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Literal, Protocol

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QKeyEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ui.announce import announce
from ui.conversation_view import Message

log = logging.getLogger(__name__)

SEARCH_DEBOUNCE_MS = 150


class HistoryStore(Protocol):
    """What the dialog needs of `app.store.history.History`."""

    def search_conversations(self, query: str) -> list[Any]: ...
    def rename_conversation(self, conversation_id: int, title: str) -> bool: ...
    def trash_conversation(self, conversation_id: int) -> bool: ...
    def restore_conversation(self, conversation_id: int) -> bool: ...
    def empty_trash(self) -> int: ...


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


def item_text(c: Any) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(c.updated_at))
    n = c.turn_count
    return f"{c.title or 'Untitled'}\n{when} · {n} turn{'' if n == 1 else 's'}"


class HistoryDialog(QDialog):
    """Pick a conversation; `chosen_id` holds it after `accept()`.

    With `history` (the store) the dialog also searches, renames and deletes; without it
    it only lists what it was given (and exports with `export`)."""

    def __init__(
        self,
        conversations: list[Any],
        parent: QWidget | None = None,
        export: Callable[[int, Literal["json", "markdown"]], str] | None = None,
        *,
        history: HistoryStore | None = None,
    ) -> None:
        super().__init__(parent)
        self._export = export
        self._history = history
        self._tasks: set[asyncio.Task[Any]] = set()
        self._generation = 0  # of list queries: only the latest one's answer is shown
        self._last_deleted: tuple[int, str] | None = None
        self.deleted_ids: set[int] = set()  # gone for good once the dialog has settled
        self.setWindowTitle("Conversation history")
        self.setAccessibleName("Conversation history")
        self.resize(520, 460)
        self.chosen_id: int | None = None
        lay = QVBoxLayout(self)

        self.search = QLineEdit()
        self.search.setPlaceholderText("Search titles and messages…")
        self.search.setAccessibleName("Search conversations")
        self.search.setClearButtonEnabled(True)
        self.search.setVisible(history is not None)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DEBOUNCE_MS)
        self._search_timer.timeout.connect(lambda: self._spawn(self._run_search()))
        self.search.textChanged.connect(lambda _t: self._search_timer.start())
        lay.addWidget(self.search)

        self.list = QListWidget()
        self.list.setAccessibleName("Past conversations")
        self.list.itemDoubleClicked.connect(lambda _i: self.accept())
        self.list.currentItemChanged.connect(lambda *_a: self._update_buttons())
        lay.addWidget(self.list, 1)
        self.empty = QLabel("No conversations yet.")
        self.empty.setObjectName("notice_text")
        lay.addWidget(self.empty)

        lay.addWidget(self._build_rename_bar())
        lay.addWidget(self._build_undo_bar())

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.rename_button = self._action_button("Rename…", "Rename the selected conversation (F2)", self.start_rename)
        self.delete_button = self._action_button("Delete", "Delete the selected conversation (Del)", self.delete)
        self.export_button = self._action_button(
            "Export…", "Save the selected conversation as Markdown or JSON", self._ask_export
        )
        self.export_button.setAccessibleName("Export the selected conversation")
        self.rename_button.setVisible(history is not None)
        self.delete_button.setVisible(history is not None)
        self.export_button.setVisible(export is not None)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        lay.addWidget(self.buttons)
        if history is not None:
            self.list.installEventFilter(self)  # Del and F2 on the list (F2 would edit the item's raw text)
            undo = QShortcut(QKeySequence(QKeySequence.StandardKey.Undo), self)
            undo.activated.connect(self.undo_delete)
            find = QShortcut(QKeySequence(QKeySequence.StandardKey.Find), self)
            find.activated.connect(self.search.setFocus)
        self.show_conversations(conversations)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self.list and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            if event.matches(QKeySequence.StandardKey.Delete) or event.key() == Qt.Key.Key_Delete:
                self.delete()
                return True
            if event.key() == Qt.Key.Key_F2:
                self.start_rename()
                return True
        return super().eventFilter(obj, event)

    def _action_button(self, text: str, tip: str, slot: Callable[[], Any]) -> QPushButton:
        button = self.buttons.addButton(text, QDialogButtonBox.ButtonRole.ActionRole)
        assert button is not None
        button.setToolTip(tip)
        button.setAccessibleName(text.rstrip("…"))
        button.setAccessibleDescription(tip)
        button.clicked.connect(lambda _checked=False: slot())
        return button

    def _build_rename_bar(self) -> QWidget:
        self.rename_bar = QFrame()
        row = QHBoxLayout(self.rename_bar)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel("New name:"))
        self.rename_edit = QLineEdit()
        self.rename_edit.setAccessibleName("New name for the conversation")
        # Enter reaches the dialog's default button: accept() saves the name instead of opening.
        row.addWidget(self.rename_edit, 1)
        save = QPushButton("Save")
        save.setAutoDefault(False)
        save.clicked.connect(self.finish_rename)
        cancel = QPushButton("Cancel")
        cancel.setAutoDefault(False)
        cancel.clicked.connect(self.cancel_rename)
        row.addWidget(save)
        row.addWidget(cancel)
        self.rename_bar.hide()
        return self.rename_bar

    def _build_undo_bar(self) -> QWidget:
        self.undo_bar = QFrame()
        self.undo_bar.setObjectName("undo_bar")
        row = QHBoxLayout(self.undo_bar)
        row.setContentsMargins(0, 0, 0, 0)
        self.undo_label = QLabel()
        self.undo_label.setWordWrap(True)
        row.addWidget(self.undo_label, 1)
        self.undo_button = QPushButton("Undo")
        self.undo_button.setAutoDefault(False)
        self.undo_button.setToolTip("Bring the conversation back (Ctrl+Z)")
        self.undo_button.setAccessibleName("Undo delete")
        self.undo_button.clicked.connect(self.undo_delete)
        row.addWidget(self.undo_button)
        self.undo_bar.hide()
        return self.undo_bar

    # -- the list -------------------------------------------------------------------
    def show_conversations(self, conversations: list[Any]) -> None:
        """Fill the list, keeping the selection where it still exists."""
        keep = self.current_id()
        self.list.clear()
        for c in conversations:
            item = QListWidgetItem(item_text(c))
            item.setData(Qt.ItemDataRole.UserRole, c.id)
            item.setData(Qt.ItemDataRole.UserRole + 1, c.title)
            item.setData(Qt.ItemDataRole.AccessibleTextRole, item_text(c).replace("\n", ", "))
            self.list.addItem(item)
        rows = [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())]
        if rows:
            self.list.setCurrentRow(rows.index(keep) if keep in rows else 0)
        searching = bool(self.search.text().strip())
        self.empty.setText("No conversation matches that search." if searching else "No conversations yet.")
        self.empty.setVisible(not rows)
        self._update_buttons()

    def current_id(self) -> int | None:
        item = self.list.currentItem()
        return int(item.data(Qt.ItemDataRole.UserRole)) if item is not None else None

    def _current_title(self) -> str:
        item = self.list.currentItem()
        return str(item.data(Qt.ItemDataRole.UserRole + 1) or "") if item is not None else ""

    def _update_buttons(self) -> None:
        has = self.current_id() is not None
        for button in (self.rename_button, self.delete_button, self.export_button):
            button.setEnabled(has)
        open_button = self.buttons.button(QDialogButtonBox.StandardButton.Open)
        if open_button is not None:
            open_button.setEnabled(has)

    # -- store work off the GUI thread --------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and (exc := t.exception()) is not None:
                log.warning("history action failed", exc_info=exc)
                self.status.setText(f"That did not work: {exc}")

        task.add_done_callback(done)
        return task

    async def _run_search(self) -> None:
        if self._history is None:
            return
        self._generation += 1
        generation, query = self._generation, self.search.text()
        found = await asyncio.to_thread(self._history.search_conversations, query)
        if generation != self._generation:
            return  # a newer query (typed since, or a refresh) answers instead
        self.show_conversations(found)
        if query.strip():
            n = len(found)
            announce(self, f"{n} conversation{'' if n == 1 else 's'} found")

    async def refresh(self) -> None:
        """List again with the current search (after a rename, delete or undo)."""
        self._search_timer.stop()
        await self._run_search()

    # -- rename --------------------------------------------------------------------------
    def start_rename(self) -> None:
        if self._history is None or self.current_id() is None:
            return
        self.rename_edit.setText(self._current_title())
        self.rename_bar.show()
        self.rename_edit.selectAll()
        self.rename_edit.setFocus()

    def cancel_rename(self) -> None:
        self.rename_bar.hide()
        self.list.setFocus()

    def finish_rename(self) -> None:
        cid = self.current_id()
        if self._history is None or cid is None or not self.rename_bar.isVisible():
            return
        self.rename_bar.hide()
        self._spawn(self._rename(cid, self.rename_edit.text()))

    async def _rename(self, cid: int, title: str) -> None:
        assert self._history is not None
        await asyncio.to_thread(self._history.rename_conversation, cid, title)
        await self.refresh()
        self.list.setFocus()
        announce(self, f"Renamed to {self._current_title() or 'Untitled'}")

    # -- delete and undo ---------------------------------------------------------------------
    def delete(self) -> None:
        cid = self.current_id()
        if self._history is None or cid is None:
            return
        self._spawn(self._delete(cid, self._current_title() or "Untitled"))

    async def _delete(self, cid: int, title: str) -> None:
        assert self._history is not None
        if not await asyncio.to_thread(self._history.trash_conversation, cid):
            return
        self.deleted_ids.add(cid)
        self._last_deleted = (cid, title)
        self.undo_label.setText(f"Deleted “{title}”.")
        self.undo_bar.show()
        await self.refresh()
        announce(self, f"Deleted {title}. Press Control Z to undo.")

    def undo_delete(self) -> None:
        if self._history is None or self._last_deleted is None:
            return
        cid, title = self._last_deleted
        self._last_deleted = None
        self.undo_bar.hide()
        self._spawn(self._undo(cid, title))

    async def _undo(self, cid: int, title: str) -> None:
        assert self._history is not None
        if await asyncio.to_thread(self._history.restore_conversation, cid):
            self.deleted_ids.discard(cid)
            await self.refresh()
            rows = [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())]
            if cid in rows:
                self.list.setCurrentRow(rows.index(cid))
            announce(self, f"Restored {title}")

    async def settled(self) -> None:
        """After the dialog closed: wait for its store work, then make deletes final."""
        self._search_timer.stop()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._history is not None and self.deleted_ids:
            await asyncio.to_thread(self._history.empty_trash)

    # -- export ----------------------------------------------------------------------------
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
        if self.rename_bar.isVisible():  # Enter in the name field saves the name, it does not open
            self.finish_rename()
            return
        self.chosen_id = self.current_id()
        super().accept()

    def reject(self) -> None:
        if self.rename_bar.isVisible():  # Esc in the name field cancels the rename only
            self.cancel_rename()
            return
        super().reject()
