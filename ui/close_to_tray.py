"""What closing the window does when there is a tray: keep running there, or quit.

Asked once, on the first close with a tray: "Keep running" / "Quit" and a "Don't ask
again" box, ticked by default, so most people answer once and are not asked again
(the answer goes to settings as `ui.close_to_tray`). Unticked, the question comes back
on every close. Cancel (or Escape) backs out: the window stays open.
Without a tray, closing always quits — a hidden window could not be brought back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from PySide6.QtWidgets import QCheckBox, QMessageBox, QWidget

QUESTION = "Keep VoxDesk running in the tray?"
DETAIL = (
    "VoxDesk can keep listening and show reminders with its window closed. "
    "Click its tray icon to bring the window back; choose Quit in the tray menu to stop it."
)
KEEP_LABEL = "Keep running"
QUIT_LABEL = "Quit"
DONT_ASK_LABEL = "Don't ask again"


class CloseAction(StrEnum):
    TO_TRAY = "to_tray"  # hide the window, keep the assistant running
    QUIT = "quit"
    CANCEL = "cancel"  # the user backed out of the question: keep the window open


@dataclass(frozen=True, slots=True)
class CloseDecision:
    action: CloseAction
    remembered: bool | None  # what to store as ui.close_to_tray (True = keep running, None = ask)

    @property
    def keep_running(self) -> bool:
        return self.action is CloseAction.TO_TRAY


# The question: returns (True keep running | False quit | None cancelled, don't ask again).
Ask = Callable[[QWidget | None], tuple[bool | None, bool]]


def decide_close(
    parent: QWidget | None, remembered: bool | None, tray_available: bool, ask: Ask | None = None
) -> CloseDecision:
    """Decide what a window close does; `ask` replaces the dialog (tests, other front ends)."""
    if not tray_available:
        return CloseDecision(CloseAction.QUIT, remembered)  # keep the stored answer for a desktop with a tray
    if remembered is not None:
        return CloseDecision(CloseAction.TO_TRAY if remembered else CloseAction.QUIT, remembered)
    keep, dont_ask = (ask or ask_keep_running)(parent)
    if keep is None:
        return CloseDecision(CloseAction.CANCEL, None)
    return CloseDecision(CloseAction.TO_TRAY if keep else CloseAction.QUIT, keep if dont_ask else None)


def build_question_box(parent: QWidget | None) -> QMessageBox:
    """The dialog, built but not shown (tests answer it with a timer)."""
    box = QMessageBox(parent)
    box.setObjectName("close_to_tray_question")
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("VoxDesk")
    box.setText(QUESTION)
    box.setInformativeText(DETAIL)
    keep = box.addButton(KEEP_LABEL, QMessageBox.ButtonRole.AcceptRole)
    box.addButton(QUIT_LABEL, QMessageBox.ButtonRole.DestructiveRole)
    cancel = box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(keep)
    box.setEscapeButton(cancel)  # Esc and the title bar's close button cancel the close
    check = QCheckBox(DONT_ASK_LABEL, box)  # parented: PySide would otherwise free it with this frame
    check.setChecked(True)
    box.setCheckBox(check)
    return box


def ask_keep_running(parent: QWidget | None) -> tuple[bool | None, bool]:
    box = build_question_box(parent)
    box.exec()
    return answer_of(box)


def answer_of(box: QMessageBox) -> tuple[bool | None, bool]:
    clicked = box.clickedButton()
    role = box.buttonRole(clicked) if clicked is not None else QMessageBox.ButtonRole.InvalidRole
    keep = {QMessageBox.ButtonRole.AcceptRole: True, QMessageBox.ButtonRole.DestructiveRole: False}.get(role)
    check = box.checkBox()
    return keep, bool(check is not None and check.isChecked())
