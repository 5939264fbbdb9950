"""Tray icons that show what VoxDesk is doing: the app icon with a coloured state badge.

The badge sits in the bottom-right corner with a light outline so it reads on dark and
light panels alike; muted and unavailable also carry a glyph (a slash, an exclamation
mark) so the state does not depend on colour alone.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap

from ui import theme

STATES = ("idle", "listening", "thinking", "speaking", "muted", "error")
STATE_LABELS = {
    "idle": "Idle",
    "listening": "Listening",
    "thinking": "Thinking",
    "speaking": "Speaking",
    "muted": "Muted",
    "error": "Unavailable",
}
# Speaking is violet here, not the window's blue: a blue badge would vanish on the blue app icon.
BADGE_COLOURS = {**theme.STATE_COLOURS, "speaking": "#8b5cf6", "muted": "#d64545", "error": "#1d2330"}
_GLYPH_COLOURS = {"muted": "#ffffff", "error": "#f5b400"}
# Panels ask for 16-24 px on X11 and Windows, 22 on most Linux panels, more on HiDPI.
SIZES = (16, 22, 24, 32, 48, 64)

_cache: dict[str, QIcon] = {}


def state_icon(state: str) -> QIcon:
    """The icon for one of STATES, drawn once and cached (Qt must have a QGuiApplication)."""
    if state not in BADGE_COLOURS:
        raise ValueError(f"unknown tray state {state!r}; expected one of {', '.join(STATES)}")
    cached = _cache.get(state)
    if cached is not None:
        return cached
    icon = QIcon()
    for size in SIZES:
        icon.addPixmap(state_pixmap(state, size))
    _cache[state] = icon
    return icon


def state_pixmap(state: str, size: int) -> QPixmap:
    pm = QPixmap(size, size)
    pm.fill(Qt.GlobalColor.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.drawPixmap(0, 0, theme.app_icon().pixmap(size, size))
    _draw_badge(p, state, size)
    p.end()
    return pm


def badge_rect(size: int) -> QRectF:
    """Where the badge goes: a circle ~45 % of the icon in its bottom-right corner."""
    d = max(7.0, size * 0.46)
    return QRectF(size - d, size - d, d, d)


def _draw_badge(p: QPainter, state: str, size: int) -> None:
    rect = badge_rect(size)
    outline = max(1.0, size / 22)
    p.setPen(QPen(QColor("#ffffff"), outline))
    p.setBrush(QColor(BADGE_COLOURS[state]))
    p.drawEllipse(rect.adjusted(outline / 2, outline / 2, -outline / 2, -outline / 2))
    glyph = _GLYPH_COLOURS.get(state)
    if glyph is None:
        return
    inner = rect.adjusted(rect.width() * 0.28, rect.height() * 0.28, -rect.width() * 0.28, -rect.height() * 0.28)
    pen = QPen(QColor(glyph), max(1.2, size / 14))
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    p.setPen(pen)
    if state == "muted":
        p.drawLine(inner.topLeft(), inner.bottomRight())
    else:  # error: "!" — a bar and a dot
        cx = inner.center().x()
        p.drawLine(QPointF(cx, inner.top()), QPointF(cx, inner.top() + inner.height() * 0.55))
        p.drawPoint(QPointF(cx, inner.bottom()))
