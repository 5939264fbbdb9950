"""The history dialog on a real History: search, rename, delete with undo, no empty conversations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from app.store.history import History
from tests.ui.conftest import wait_until
from ui import announce
from ui.history_dialog import HistoryDialog


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    h = History(tmp_path / "history.db")
    for title, turns in (
        ("", [("what's the weather in Oslo", "Cold and clear.")]),
        ("Kitchen", [("set a timer for pasta", "Timer set for 9 minutes.")]),
        ("", [("play some jazz", "Playing jazz.")]),
    ):
        h.new_conversation(title or None)
        for user, reply in turns:
            h.finish_turn(h.begin_turn(user), reply)
    h.new_conversation()  # what "New conversation" leaves behind: no turns yet
    yield h
    h.close()


def _titles(dialog: HistoryDialog) -> list[str]:
    return [dialog.list.item(i).text().split("\n")[0] for i in range(dialog.list.count())]


def _dialog(qtbot: Any, history: History) -> HistoryDialog:
    dialog = HistoryDialog(history.list_conversations(), export=history.export, history=history)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def test_no_empty_untitled_conversation_is_listed(qtbot: Any, history: History) -> None:
    dialog = _dialog(qtbot, history)
    assert _titles(dialog) == ["play some jazz", "Kitchen", "what's the weather in Oslo"]
    assert all("0 turns" not in dialog.list.item(i).text() for i in range(dialog.list.count()))
    assert "1 turn" in dialog.list.item(0).text() and "1 turns" not in dialog.list.item(0).text()


def test_search_filters_by_title_and_by_what_was_said(qtbot: Any, run: Any, history: History) -> None:
    dialog = _dialog(qtbot, history)
    qtbot.keyClicks(dialog.search, "oslo")
    run(wait_until(lambda: _titles(dialog) == ["what's the weather in Oslo"], 5, "the search"))
    dialog.search.setText("MINUTES")  # in a reply
    run(wait_until(lambda: _titles(dialog) == ["Kitchen"], 5, "a reply to match"))
    dialog.search.setText("kitchen")  # a title
    run(wait_until(lambda: _titles(dialog) == ["Kitchen"] and dialog.list.currentRow() == 0, 5, "the title"))
    dialog.search.setText("nothing like this")
    run(wait_until(lambda: _titles(dialog) == [] and dialog.empty.isVisible(), 5, "no match"))
    assert "matches" in dialog.empty.text()
    assert announce.recent[-1] == "0 conversations found"
    dialog.search.clear()
    run(wait_until(lambda: len(_titles(dialog)) == 3, 5, "everything again"))


def test_rename_with_f2_and_enter_keeps_the_dialog_open(qtbot: Any, run: Any, history: History) -> None:
    dialog = _dialog(qtbot, history)
    dialog.list.setFocus()
    dialog.list.setCurrentRow(1)
    qtbot.keyClick(dialog.list, Qt.Key.Key_F2)
    assert dialog.rename_bar.isVisible() and dialog.rename_edit.text() == "Kitchen"
    dialog.rename_edit.clear()
    qtbot.keyClicks(dialog.rename_edit, "Dinner plans")
    qtbot.keyClick(dialog.rename_edit, Qt.Key.Key_Return)
    run(wait_until(lambda: "Dinner plans" in _titles(dialog), 5, "the new name"))
    assert dialog.isVisible() and dialog.result() == 0, "Enter saved the name, it did not open the conversation"
    assert [c.title for c in history.list_conversations()][1] == "Dinner plans"
    # Esc while renaming cancels the rename, not the dialog.
    dialog.start_rename()
    qtbot.keyClick(dialog.rename_edit, Qt.Key.Key_Escape)
    assert not dialog.rename_bar.isVisible() and dialog.isVisible()


def test_delete_can_be_undone_and_becomes_final_when_the_dialog_closes(qtbot: Any, run: Any, history: History) -> None:
    dialog = _dialog(qtbot, history)
    dialog.list.setFocus()
    dialog.list.setCurrentRow(0)
    qtbot.keyClick(dialog.list, Qt.Key.Key_Delete)
    run(wait_until(lambda: _titles(dialog) == ["Kitchen", "what's the weather in Oslo"], 5, "the delete"))
    assert dialog.undo_bar.isVisible() and "play some jazz" in dialog.undo_label.text()
    assert announce.recent[-1].startswith("Deleted play some jazz")
    qtbot.mouseClick(dialog.undo_button, Qt.MouseButton.LeftButton)
    run(wait_until(lambda: _titles(dialog)[0] == "play some jazz", 5, "the undo"))
    assert dialog.list.currentRow() == 0 and not dialog.undo_bar.isVisible()

    dialog.list.setCurrentRow(2)
    dialog.delete_button.click()
    run(wait_until(lambda: len(_titles(dialog)) == 2, 5, "the second delete"))
    assert len(history.list_conversations(include_empty=True)) == 3  # not yet final
    dialog.reject()
    run(dialog.settled())
    assert [c.title for c in history.list_conversations()] == ["play some jazz", "Kitchen"]
    assert history.trashed == []
    assert history.search_conversations("oslo") == []
