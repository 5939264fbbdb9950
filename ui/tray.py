"""System tray icon: show/hide the window and quit while it is hidden.

Some desktops (and the offscreen test platform) have no tray; then there is no
icon and the window simply behaves as a normal window.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon, QWidget

from ui import theme


class Tray(QObject):
    quit_requested = Signal()

    def __init__(self, window: QWidget) -> None:
        super().__init__(window)
        self.window = window
        self.icon: QSystemTrayIcon | None = None
        if not QSystemTrayIcon.isSystemTrayAvailable():
            return
        self.menu = QMenu()
        self.toggle_action = QAction("Hide VoxDesk", self.menu)
        self.toggle_action.triggered.connect(self.toggle)
        quit_action = QAction("Quit", self.menu)
        quit_action.triggered.connect(self.quit_requested)
        self.menu.addAction(self.toggle_action)
        self.menu.addSeparator()
        self.menu.addAction(quit_action)
        self.icon = QSystemTrayIcon(theme.app_icon(), self)
        self.icon.setToolTip("VoxDesk")
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._activated)
        self.icon.show()

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:
            self.toggle()

    def toggle(self) -> None:
        if self.window.isVisible():
            self.window.hide()
        else:
            self.window.show()
            self.window.raise_()
            self.window.activateWindow()
        if self.icon is not None:
            self.toggle_action.setText("Hide VoxDesk" if self.window.isVisible() else "Show VoxDesk")

    def set_state(self, state: str) -> None:
        if self.icon is not None:
            self.icon.setToolTip(f"VoxDesk — {state}")

    def hide(self) -> None:
        if self.icon is not None:
            self.icon.hide()
