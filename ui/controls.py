"""The talk button, toggles, text box, state indicator and microphone meter.

These widgets only emit intent (signals) and show state; the main window wires
them to the session, so they can be tested and reused without an engine.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QEvent, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QLinearGradient, QPainter, QPaintEvent, QPalette, QStandardItemModel
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ui import theme

FLOOR_DBFS = -60.0
#: How a turn starts (settings: activation.mode), as the mode picker lists them.
ACTIVATION_LABELS = {"push_to_talk": "Push-to-talk", "wake_word": "Wake word", "always": "Always listening"}
ACTIVATION_TIPS = {
    "push_to_talk": "Hold Space, the talk button or the global hotkey while you speak",
    "wake_word": "Say the wake word, then your question; follow-ups need no wake word for a few seconds",
    "always": "Listen all the time and answer when you stop speaking",
}
STATE_TEXT = {
    "idle": "Idle",
    "listening": "Listening",
    "thinking": "Thinking",
    "speaking": "Speaking",
    "muted": "Muted",
}
MUTED_REASON = "The microphone is muted — unmute it (Ctrl+M) to talk"
TALK_TIP = "Hold to talk (Space)"
TALK_DESCRIPTION = "Hold to speak; release to send. Space does the same."


class LevelMeter(QWidget):
    """Mic level bar. Repaints only when the shown level moves by a visible amount."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._level = 0.0  # 0..1
        self._peak = 0.0
        self.repaints = 0
        self.setAccessibleName("Microphone level")
        self.setMinimumSize(120, 10)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(10)

    def sizeHint(self) -> QSize:
        return QSize(160, 10)

    @staticmethod
    def to_fraction(dbfs: float) -> float:
        if not math.isfinite(dbfs):
            return 0.0
        return min(1.0, max(0.0, (dbfs - FLOOR_DBFS) / -FLOOR_DBFS))

    @property
    def level(self) -> float:
        return self._level

    def set_level(self, rms_dbfs: float, peak_dbfs: float | None = None) -> None:
        level = self.to_fraction(rms_dbfs)
        peak = self.to_fraction(peak_dbfs if peak_dbfs is not None else rms_dbfs)
        if abs(level - self._level) < 0.01 and abs(peak - self._peak) < 0.01:
            return
        self._level, self._peak = level, peak
        self.setAccessibleDescription(f"{rms_dbfs:.0f} dBFS")
        self.repaints += 1
        self.update()

    def paintEvent(self, _event: QPaintEvent) -> None:
        p = QPainter(self)
        r = QRectF(self.rect())
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(theme.colours()["assistant_bg"]))
        p.drawRoundedRect(r, 4, 4)
        grad = QLinearGradient(r.topLeft(), r.topRight())
        grad.setColorAt(0.0, QColor("#22a35a"))
        grad.setColorAt(0.75, QColor("#e0a100"))
        grad.setColorAt(1.0, QColor("#d64545"))
        p.setBrush(grad)
        p.drawRoundedRect(QRectF(r.left(), r.top(), r.width() * self._level, r.height()), 4, 4)
        if self._peak > 0:
            p.setBrush(QColor(theme.colours()["text"]))
            p.drawRect(QRectF(r.left() + r.width() * self._peak - 2, r.top(), 2, r.height()))
        p.end()


class StateIndicator(QWidget):
    """A coloured dot and a word: idle / listening / thinking / speaking."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.dot = QLabel("●")
        self.label = QLabel()
        lay.addWidget(self.dot)
        lay.addWidget(self.label)
        self.state = ""
        self.set_state("idle")

    def set_state(self, state: str) -> None:
        self.state = state
        self.dot.setStyleSheet(f"color: {theme.STATE_COLOURS.get(state, '#8a94a6')}; font-size: 16px;")
        self.label.setText(STATE_TEXT.get(state, state.capitalize()))
        self.label.setAccessibleName(f"Assistant state: {self.label.text()}")
        self.setAccessibleName(f"State: {self.label.text()}")


class TalkButton(QPushButton):
    """Held = push-to-talk. `held` fires once on press and once on release."""

    held = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Hold to talk", parent)
        self.setObjectName("talk_button")
        self.setAccessibleName("Talk")
        self.setAccessibleDescription(TALK_DESCRIPTION)
        self.setToolTip(TALK_TIP)
        self.setIcon(theme.icon("mic", "#ffffff"))
        self.setIconSize(QSize(22, 22))
        self.setMinimumWidth(170)
        self.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self._active = False
        self.pressed.connect(lambda: self.set_active(True))
        self.released.connect(lambda: self.set_active(False))

    def set_active(self, on: bool) -> None:
        if on == self._active:
            return
        self._active = on
        self.setProperty("active", on)
        self.setText("Listening… release to send" if on else "Hold to talk")
        self.style().unpolish(self)
        self.style().polish(self)
        self.held.emit(on)

    @property
    def active(self) -> bool:
        return self._active


class Controls(QWidget):
    """Everything under the conversation: talk, toggles, text entry, state and level."""

    talk = Signal(bool)
    activation_chosen = Signal(str)  # a key of ACTIVATION_LABELS
    mute_toggled = Signal(bool)
    stop_requested = Signal()
    text_submitted = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.muted = False
        self.engine_state = "idle"
        outer = QVBoxLayout(self)
        outer.setContentsMargins(12, 6, 12, 10)

        status = QHBoxLayout()
        self.state = StateIndicator()
        status.addWidget(self.state)
        status.addStretch(1)
        mic = QLabel("Mic")
        status.addWidget(mic)
        self.meter = LevelMeter()
        self.meter.setMaximumWidth(220)
        status.addWidget(self.meter)
        outer.addLayout(status)

        row = QHBoxLayout()
        self.talk_button = TalkButton()
        self.talk_button.held.connect(self.talk)
        row.addWidget(self.talk_button)

        self.activation = QComboBox()
        self.activation.setAccessibleName("How to start talking")
        for mode, label in ACTIVATION_LABELS.items():
            self.activation.addItem(label, mode)
            self.activation.setItemData(self.activation.count() - 1, ACTIVATION_TIPS[mode], Qt.ItemDataRole.ToolTipRole)
        self.activation.setToolTip("How to start talking")
        self.activation.activated.connect(lambda i: self.activation_chosen.emit(self.activation.itemData(i)))
        row.addWidget(self.activation)

        self.mute = QToolButton()
        self.mute.setCheckable(True)
        self.mute.setText("Mute")
        self.mute.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.mute.setAccessibleName("Mute microphone")
        self.mute.setToolTip("Mute the microphone (Ctrl+M)")
        self.mute.toggled.connect(self.mute_toggled)
        row.addWidget(self.mute)

        self.stop = QToolButton()
        self.stop.setText("Stop")
        self.stop.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.stop.setAccessibleName("Stop speaking")
        self.stop.setToolTip("Stop the reply (Esc)")
        self.stop.clicked.connect(self.stop_requested)
        row.addWidget(self.stop)
        row.addStretch(1)
        outer.addLayout(row)

        typed = QHBoxLayout()
        self.text = QLineEdit()
        self.text.setPlaceholderText("Type a question and press Enter…")
        self.text.setAccessibleName("Message")
        self.text.setClearButtonEnabled(True)
        self.text.returnPressed.connect(self._submit)
        typed.addWidget(self.text, 1)
        self.send = QPushButton("Send")
        self.send.setAccessibleName("Send message")
        self.send.clicked.connect(self._submit)
        typed.addWidget(self.send)
        outer.addLayout(typed)
        self.icon_colour = ""
        self._tint_icons()

    def _tint_icons(self) -> None:
        """Icons are SVGs tinted to the button text colour, so they follow light/dark."""
        colour = self.palette().color(QPalette.ColorRole.ButtonText).name()
        if colour == self.icon_colour:
            return
        self.icon_colour = colour
        for button, name in ((self.mute, "mic-off"), (self.stop, "stop"), (self.send, "send")):
            button.setIcon(theme.icon(name, colour))

    def changeEvent(self, event: QEvent) -> None:
        # The OS (or ThemeFollower) switched scheme: the old tint would vanish on the new background.
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.StyleChange):
            self._tint_icons()
        super().changeEvent(event)

    def _submit(self) -> None:
        text = self.text.text().strip()
        if text:
            self.text.clear()
            self.text_submitted.emit(text)

    def set_activation(self, mode: str, available: dict[str, str | None]) -> None:
        """Show `mode` as chosen; a mode with a reason (not None) is disabled and says why."""
        model = self.activation.model()
        assert isinstance(model, QStandardItemModel)
        for i in range(self.activation.count()):
            name = self.activation.itemData(i)
            reason = available.get(name)
            item = model.item(i)
            item.setEnabled(reason is None)
            tip = ACTIVATION_TIPS[name] if reason is None else f"Unavailable: {reason}"
            item.setToolTip(tip)
        index = self.activation.findData(mode)
        if index >= 0 and index != self.activation.currentIndex():
            self.activation.setCurrentIndex(index)  # `activated` is for the user's picks only
        self.activation.setToolTip(ACTIVATION_TIPS.get(mode, ""))

    @property
    def activation_mode(self) -> str:
        return str(self.activation.currentData())

    def set_state(self, state: str) -> None:
        self.engine_state = state
        self.state.set_state("muted" if self.muted and state in ("idle", "listening") else state)
        if state == "idle":
            self.meter.set_level(FLOOR_DBFS)

    def set_muted(self, on: bool) -> None:
        """Muted is a state: Talk is disabled and says why, the indicator says Muted."""
        self.muted = on
        if self.mute.isChecked() != on:
            self.mute.blockSignals(True)
            self.mute.setChecked(on)
            self.mute.blockSignals(False)
        self.mute.setText("Unmute" if on else "Mute")
        self.mute.setAccessibleName("Unmute microphone" if on else "Mute microphone")
        self.mute.setToolTip(("Unmute" if on else "Mute") + " the microphone (Ctrl+M)")
        if on:
            self.talk_button.set_active(False)  # the window muted the engine first: nothing is sent
        self.talk_button.setEnabled(not on)
        self.talk_button.setToolTip(MUTED_REASON if on else TALK_TIP)
        self.talk_button.setAccessibleDescription(MUTED_REASON if on else TALK_DESCRIPTION)
        self.talk_button.setText("Microphone muted" if on else "Hold to talk")
        self.meter.set_level(FLOOR_DBFS)
        self.set_state(self.engine_state)
