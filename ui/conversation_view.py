"""The chat transcript: the user's words as they are heard, the reply as it is written.

Messages are keyed by turn so a partial transcript is replaced in place when the
final one arrives, and reply deltas append to the same bubble. Each bubble is a
plain label so a delta costs one `setText`, not a re-render of the whole history.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from PySide6.QtCore import QSize, Qt, QTimer
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QScrollArea, QSizePolicy, QVBoxLayout, QWidget

READABLE_CHARS = 75  # the most characters per line in a chat bubble
BUBBLE_PADDING = 30  # the bubble's margins around its text, and a little slack
ROLE_TITLES = {"user": "You", "assistant": "VoxDesk", "error": "Problem", "notice": ""}


@dataclass
class Message:
    role: str  # user | assistant | error | notice
    text: str
    turn_id: str | None = None
    final: bool = False
    interrupted: bool = False
    at: float = field(default_factory=time.time)


class MessageBubble(QFrame):
    def __init__(self, message: Message, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message = message
        self.setObjectName(f"bubble_{message.role}")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(12, 8, 12, 8)
        lay.setSpacing(2)
        self.meta = QLabel()
        self.meta.setObjectName("bubble_meta")
        self.text = QLabel()
        self.text.setObjectName(
            {"error": "bubble_error_text", "notice": "notice_text"}.get(message.role, "bubble_text")
        )
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.PlainText)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        if message.role != "notice":
            lay.addWidget(self.meta)
        lay.addWidget(self.text)
        if message.role in ("user", "assistant"):
            # Long lines are hard to read on a wide window: about READABLE_CHARS per line.
            self.setMaximumWidth(self.fontMetrics().averageCharWidth() * READABLE_CHARS + BUBBLE_PADDING)
        self.refresh()

    def sizeHint(self) -> QSize:
        """As wide as the text on one line (a short reply hugs its words), at most the readable width."""
        hint = super().sizeHint()
        fm = self.text.fontMetrics()
        lines = [*self.text.text().splitlines(), self.meta.text()]
        natural = max((fm.horizontalAdvance(line) for line in lines), default=0) + BUBBLE_PADDING
        return QSize(max(min(natural, self.maximumWidth()), hint.width()), hint.height())

    def refresh(self) -> None:
        m = self.message
        title = ROLE_TITLES.get(m.role, m.role)
        flags = []
        if m.role == "user" and not m.final:
            flags.append("listening…")
        if m.interrupted:
            flags.append("interrupted")
        stamp = time.strftime("%H:%M", time.localtime(m.at))
        self.meta.setText(" · ".join([title, stamp, *flags]))
        shown = m.text + (" …" if m.role == "assistant" and not m.final and m.text else "")
        if m.role == "assistant" and not m.text and not m.final:
            shown = "…"
        self.text.setText(shown)
        self.updateGeometry()  # the width follows the text (see sizeHint)
        self.setAccessibleName(f"{title} message")
        self.text.setAccessibleName(f"{title}: {m.text}" + (" (interrupted)" if m.interrupted else ""))


class ConversationView(QScrollArea):
    """Scrolling list of bubbles; follows the bottom unless the user scrolled up."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Conversation")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._canvas = QWidget()
        self._canvas.setObjectName("conversation_canvas")
        self._layout = QVBoxLayout(self._canvas)
        self._layout.setContentsMargins(12, 12, 12, 12)
        self._layout.setSpacing(8)
        self._layout.addStretch(1)
        self.setWidget(self._canvas)
        self._bubbles: list[MessageBubble] = []
        self._open_user: dict[str | None, MessageBubble] = {}
        self._open_reply: dict[str | None, MessageBubble] = {}
        self._placeholder = QLabel("Hold the talk button (or Space) and speak, or type below.")
        self._placeholder.setObjectName("notice_text")
        self._placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._layout.insertWidget(0, self._placeholder)
        self._follow = True
        self.verticalScrollBar().rangeChanged.connect(self._on_range)
        self.verticalScrollBar().valueChanged.connect(self._on_scroll)

    # -- scrolling ----------------------------------------------------------
    def _on_scroll(self, value: int) -> None:
        bar = self.verticalScrollBar()
        self._follow = value >= bar.maximum() - 24

    def _on_range(self, _lo: int, hi: int) -> None:
        if self._follow:
            self.verticalScrollBar().setValue(hi)

    # -- building blocks ----------------------------------------------------
    def _add(self, message: Message) -> MessageBubble:
        self._placeholder.hide()
        bubble = MessageBubble(message)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        if message.role == "user":
            row.addStretch(1)
            row.addWidget(bubble, 0)
        elif message.role == "assistant":
            row.addWidget(bubble, 0)
            row.addStretch(1)
        else:
            row.addWidget(bubble)
        holder = QWidget()
        holder.setLayout(row)
        self._layout.insertWidget(self._layout.count() - 1, holder)
        self._bubbles.append(bubble)
        return bubble

    # -- the engine's events --------------------------------------------------
    def user_partial(self, turn_id: str | None, text: str) -> None:
        b = self._open_user.get(turn_id)
        if b is None:
            b = self._open_user[turn_id] = self._add(Message("user", text, turn_id))
        b.message.text = text
        b.refresh()

    def user_final(self, turn_id: str | None, text: str) -> None:
        # Partials may arrive before the engine has named the turn: adopt that bubble.
        b = self._open_user.pop(turn_id, None) or self._open_user.pop(None, None)
        if b is None:
            b = self._add(Message("user", text, turn_id))
        b.message.turn_id = turn_id
        b.message.text = text
        b.message.final = True
        b.refresh()

    def reply_delta(self, turn_id: str | None, text: str) -> None:
        b = self._open_reply.get(turn_id)
        if b is None:
            b = self._open_reply[turn_id] = self._add(Message("assistant", "", turn_id))
        b.message.text += text
        b.refresh()

    def turn_finished(self, turn_id: str | None, user_text: str, reply_text: str, interrupted: bool) -> None:
        """Close the turn: the engine's final texts win over what was streamed."""
        if turn_id in self._open_user or (user_text and not self._has_user(turn_id)):
            self.user_final(turn_id, user_text)
        b = self._open_reply.pop(turn_id, None) or self._open_reply.pop(None, None)
        if b is None and reply_text:
            b = self._add(Message("assistant", reply_text, turn_id))
        if b is not None:
            if reply_text:
                b.message.text = reply_text
            b.message.final = True
            b.message.interrupted = interrupted
            b.refresh()

    def _has_user(self, turn_id: str | None) -> bool:
        return any(b.message.role == "user" and b.message.turn_id == turn_id for b in self._bubbles)

    def add_user_text(self, text: str, turn_id: str | None = None) -> None:
        self.user_final(turn_id, text)

    def error(self, message: str, turn_id: str | None = None) -> None:
        self._add(Message("error", message, turn_id, final=True))

    def notice(self, message: str) -> None:
        self._add(Message("notice", message, final=True))

    def load(self, messages: list[Message]) -> None:
        """Show a past conversation (from history)."""
        self.clear()
        for m in messages:
            m.final = True
            self._add(m)

    def clear(self) -> None:
        for b in self._bubbles:
            holder = b.parentWidget()
            if holder is not None:
                holder.deleteLater()
        self._bubbles.clear()
        self._open_user.clear()
        self._open_reply.clear()
        self._placeholder.show()
        self._follow = True

    # -- reading back ---------------------------------------------------------
    def messages(self) -> list[Message]:
        return [b.message for b in self._bubbles]

    def scroll_to_bottom(self) -> None:
        self._follow = True
        QTimer.singleShot(0, lambda: self.verticalScrollBar().setValue(self.verticalScrollBar().maximum()))
