"""Light and dark looks that follow the OS, plus tinted SVG icons.

Qt already follows the OS palette on most platforms; we add a small stylesheet for
the chat bubbles and the talk button whose colours must read well on both, and
re-apply it when the OS switches scheme while the window is open.
"""

from __future__ import annotations

from importlib import resources
from string import Template

from PySide6.QtCore import QByteArray, QObject, Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication

LIGHT = {
    "window_bg": "#f7f8fa",
    "text": "#1d2330",
    "muted": "#6b7280",
    "user_bg": "#dbe7ff",
    "assistant_bg": "#ffffff",
    "error_bg": "#fdecec",
    "error_fg": "#b42318",
    "accent": "#2f6fde",
    "accent_hover": "#2559b8",
    "danger": "#d64545",
    "ok_bg": "#dcfce7",
    "ok_fg": "#166534",
    "remote_bg": "#e0e7ff",
    "remote_fg": "#3730a3",
    "focus_ring": "#1d2330",
}
DARK = {
    "window_bg": "#1e2128",
    "text": "#e6e8ee",
    "muted": "#9aa3b2",
    "user_bg": "#25406f",
    "assistant_bg": "#2b2f38",
    "error_bg": "#3b1f1f",
    "error_fg": "#ff8a80",
    "accent": "#4c8dff",
    "accent_hover": "#3b78e7",
    "danger": "#e05656",
    "ok_bg": "#14532d",
    "ok_fg": "#bbf7d0",
    "remote_bg": "#312e81",
    "remote_fg": "#c7d2fe",
    "focus_ring": "#ffffff",
}

STATE_COLOURS = {
    "idle": "#8a94a6",
    "listening": "#22a35a",
    "thinking": "#e0a100",
    "speaking": "#2f6fde",
    "muted": "#d64545",
}


def is_dark() -> bool:
    """Dark if the OS says so (Qt ≥ 6.5), else guess from the window colour."""
    app = QGuiApplication.instance()
    if not isinstance(app, QGuiApplication):
        return False
    scheme = app.styleHints().colorScheme()
    if scheme == Qt.ColorScheme.Dark:
        return True
    if scheme == Qt.ColorScheme.Light:
        return False
    return app.palette().color(QPalette.ColorRole.Window).lightness() < 128


def colours() -> dict[str, str]:
    return DARK if is_dark() else LIGHT


def colours_for(palette: QPalette) -> dict[str, str]:
    """Our colours for what a widget actually shows (its palette may differ from the OS)."""
    return DARK if palette.color(QPalette.ColorRole.Window).lightness() < 128 else LIGHT


#: Keyboard focus must be plain to see: a 3 px ring (the window text colour, ≥ 3:1 against the
#: window in both looks) around the talk button, which has no frame of its own.
FOCUS_RULES = """
QPushButton#talk_button:focus { border: 3px solid $focus_ring; padding: 0 19px; }
QPushButton#talk_button[active="true"]:focus { border: 3px solid $focus_ring; }
"""


def stylesheet(dark: bool | None = None) -> str:
    dark = is_dark() if dark is None else dark
    text = resources.files("resources").joinpath("style.qss").read_text(encoding="utf-8") + FOCUS_RULES
    return Template(text).safe_substitute(DARK if dark else LIGHT)


def dark_palette() -> QPalette:
    pal = QPalette()
    c = DARK
    pal.setColor(QPalette.ColorRole.Window, QColor(c["window_bg"]))
    pal.setColor(QPalette.ColorRole.WindowText, QColor(c["text"]))
    pal.setColor(QPalette.ColorRole.Base, QColor("#16181d"))
    pal.setColor(QPalette.ColorRole.AlternateBase, QColor(c["assistant_bg"]))
    pal.setColor(QPalette.ColorRole.Text, QColor(c["text"]))
    pal.setColor(QPalette.ColorRole.Button, QColor(c["assistant_bg"]))
    pal.setColor(QPalette.ColorRole.ButtonText, QColor(c["text"]))
    pal.setColor(QPalette.ColorRole.Highlight, QColor(c["accent"]))
    pal.setColor(QPalette.ColorRole.HighlightedText, QColor("#ffffff"))
    pal.setColor(QPalette.ColorRole.ToolTipBase, QColor(c["assistant_bg"]))
    pal.setColor(QPalette.ColorRole.ToolTipText, QColor(c["text"]))
    pal.setColor(QPalette.ColorRole.PlaceholderText, QColor(c["muted"]))
    return pal


def apply_theme(app: QApplication, dark: bool | None = None) -> None:
    """Fusion style so both schemes look the same everywhere; palette + our stylesheet."""
    dark = is_dark() if dark is None else dark
    app.setStyle("Fusion")
    app.setPalette(dark_palette() if dark else app.style().standardPalette())
    app.setStyleSheet(stylesheet(dark))


class ThemeFollower(QObject):
    """Re-applies the theme when the OS colour scheme changes."""

    def __init__(self, app: QApplication) -> None:
        super().__init__(app)
        self._app = app
        app.styleHints().colorSchemeChanged.connect(self._changed)

    def _changed(self, _scheme: Qt.ColorScheme) -> None:
        apply_theme(self._app)


_icon_cache: dict[tuple[str, str], QIcon] = {}


def icon(name: str, colour: str | None = None) -> QIcon:
    """An SVG from resources/icons with `currentColor` set to the text colour."""
    colour = colour or colours()["text"]
    key = (name, colour)
    cached = _icon_cache.get(key)
    if cached is not None:
        return cached
    svg = resources.files("resources").joinpath("icons", f"{name}.svg").read_text(encoding="utf-8")
    renderer = QSvgRenderer(QByteArray(svg.replace("currentColor", colour).encode()))
    ic = QIcon()
    for size in (16, 24, 32, 48, 64, 128):
        pm = QPixmap(size, size)
        pm.fill(Qt.GlobalColor.transparent)
        p = QPainter(pm)
        renderer.render(p)
        p.end()
        ic.addPixmap(pm)
    _icon_cache[key] = ic
    return ic


def app_icon() -> QIcon:
    return icon("voxdesk", "#ffffff")
