"""Errors in the window: one banner per cause above the conversation, with buttons that act.

The engine may raise the same error on every question (a server that is down): the
window shows it once, says how often it happened, and takes it away when the cause is
gone. Text comes from `app.engine.plain_words` (no codes, paths or commands); the
engine's own words stay in the log.
"""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QToolButton, QVBoxLayout, QWidget

from app.engine.plain_words import ACTION_LABELS, Action, PlainError

BANNER_STYLE = (
    "QFrame#error_banner { border: 1px solid #d64545; border-radius: 6px; background: rgba(214, 69, 69, 0.10); }"
    'QFrame#error_banner[optional="true"] { border-color: #e0a100; background: rgba(224, 161, 0, 0.10); }'
)


class ErrorBanner(QFrame):
    """One cause: a title, what it means and what to do, its action buttons and Dismiss."""

    action_chosen = Signal(str)  # an Action value
    dismissed = Signal()

    def __init__(self, plain: PlainError, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plain = plain
        self.count = 1
        self.setObjectName("error_banner")
        self.setProperty("optional", "true" if plain.optional else "false")
        self.setStyleSheet(BANNER_STYLE)
        self.setAccessibleName(plain.title)
        self.setAccessibleDescription(plain.body)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        outer = QHBoxLayout(self)
        outer.setContentsMargins(10, 8, 6, 8)
        icon = QLabel("⚠" if not plain.optional else "ℹ")
        icon.setAccessibleName("Warning" if not plain.optional else "Note")
        icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        icon.setStyleSheet("font-size: 18px;")
        outer.addWidget(icon)
        text = QVBoxLayout()
        self.title = QLabel(plain.title)
        self.title.setWordWrap(True)
        self.title.setStyleSheet("font-weight: bold;")
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        text.addWidget(self.title)
        self.body = QLabel(plain.body)
        self.body.setWordWrap(True)
        self.body.setTextFormat(Qt.TextFormat.PlainText)
        self.body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        text.addWidget(self.body)
        self.again = QLabel("")
        self.again.setObjectName("bubble_meta")
        self.again.hide()
        text.addWidget(self.again)
        row = QHBoxLayout()
        self.buttons: dict[Action, QPushButton] = {}
        for action in plain.actions:
            button = QPushButton(ACTION_LABELS[action])
            button.setAccessibleName(f"{ACTION_LABELS[action]}: {plain.title}")
            button.clicked.connect(lambda _=False, a=action: self.action_chosen.emit(a.value))
            row.addWidget(button)
            self.buttons[action] = button
        row.addStretch(1)
        text.addLayout(row)
        outer.addLayout(text, 1)
        self.close_button = QToolButton()
        self.close_button.setText("✕")
        self.close_button.setAccessibleName(f"Dismiss: {plain.title}")
        self.close_button.setToolTip("Dismiss")
        self.close_button.setAutoRaise(True)
        self.close_button.clicked.connect(self.dismissed)
        outer.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)

    def repeat(self) -> None:
        """The same cause again: count it instead of showing it twice."""
        self.count += 1
        self.again.setText(f"Happened {self.count} times, last at {time.strftime('%H:%M')}")
        self.again.show()

    def visible_texts(self) -> list[str]:
        labels = [w.text() for w in self.findChildren(QLabel) if w.text()]
        return labels + [b.text() for b in self.buttons.values()]


class ErrorBanners(QWidget):
    """The stack of banners: at most one per cause, newest on top."""

    action_chosen = Signal(object, str)  # PlainError, Action value
    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("error_banners")
        self.setAccessibleName("Problems")
        self._lay = QVBoxLayout(self)
        self._lay.setContentsMargins(6, 6, 6, 0)
        self._lay.setSpacing(6)
        self._banners: dict[str, ErrorBanner] = {}
        self.hide()

    def show_error(self, plain: PlainError) -> bool:
        """Show `plain` unless its cause is on show already (then it is counted); True when new."""
        banner = self._banners.get(plain.cause)
        if banner is not None:
            banner.repeat()
            return False
        banner = ErrorBanner(plain, self)
        banner.action_chosen.connect(lambda a, p=plain: self.action_chosen.emit(p, a))
        banner.dismissed.connect(lambda c=plain.cause: self.dismiss(c))
        self._banners[plain.cause] = banner
        self._lay.insertWidget(0, banner)
        self.show()
        self.changed.emit()
        return True

    def dismiss(self, cause: str) -> None:
        banner = self._banners.pop(cause, None)
        if banner is None:
            return
        banner.hide()
        banner.deleteLater()
        self.setVisible(bool(self._banners))
        self.changed.emit()

    def dismiss_stage(self, stage: str, *, keep: set[str] | None = None) -> None:
        """The stage works again: its banners go (except causes in `keep`)."""
        for cause, banner in list(self._banners.items()):
            if banner.plain.stage == stage and cause not in (keep or set()):
                self.dismiss(cause)

    def causes(self) -> list[str]:
        return list(self._banners)

    def banner(self, cause: str) -> ErrorBanner | None:
        return self._banners.get(cause)

    def banners(self) -> list[ErrorBanner]:
        return list(self._banners.values())
