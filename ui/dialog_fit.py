"""Windows that fit the screen they open on: at 2× on a 1080p screen there are only
960×540 logical pixels, and a dialog taller than that hides its OK and Cancel buttons."""

from __future__ import annotations

from PySide6.QtCore import QRect
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QScrollArea, QWidget

#: Room left for the window frame and title bar, which the available geometry does not count.
FRAME_ALLOWANCE = (16, 48)


def available_rect(widget: QWidget) -> QRect | None:
    screen = widget.screen() or QGuiApplication.primaryScreen()
    return screen.availableGeometry() if screen is not None else None


def fit_to_screen(widget: QWidget) -> None:
    """Shrink `widget` to the available screen if it is larger, and move it fully onto it."""
    area = available_rect(widget)
    if area is None:
        return
    fw, fh = FRAME_ALLOWANCE
    width = min(widget.width(), area.width() - fw)
    height = min(widget.height(), area.height() - fh)
    widget.setMinimumSize(min(widget.minimumWidth(), width), min(widget.minimumHeight(), height))
    widget.resize(width, height)
    x = min(max(widget.x(), area.left()), area.right() - width - fw + 1)
    y = min(max(widget.y(), area.top()), area.bottom() - height - fh + 1)
    widget.move(max(x, area.left()), max(y, area.top()))


def scrolling(content: QWidget) -> QScrollArea:
    """`content` in a frameless scroll area: it keeps its size, the window may be smaller."""
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.Shape.NoFrame)
    area.setWidget(content)
    return area
