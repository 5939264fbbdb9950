"""System tray presence: a state icon, show/hide, activation mode, mute and quit.

Some desktops (GNOME without an extension, the offscreen test platform) have no tray;
then there is no icon (`available` is False) and the window behaves as a normal window.
The menu and its actions exist either way, so the logic is the same with or without one.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QMenu, QSystemTrayIcon, QWidget

from ui.tray_icons import STATE_LABELS, STATES, state_icon

NO_TRAY_MESSAGE = "No system tray on this desktop: VoxDesk stays in its window"
# The activation modes settings know (activation.mode), with their menu labels.
ACTIVATION_MODES = {"push_to_talk": "Push-to-talk", "wake_word": "Wake word", "always": "Always listening"}


class Tray(QObject):
    """The tray icon and its menu; emits what the user picks, shows what it is told."""

    quit_requested = Signal()
    activation_chosen = Signal(str)  # one of ACTIVATION_MODES
    mute_toggled = Signal(bool)

    def __init__(self, window: QWidget, *, tray_available: bool | None = None) -> None:
        """`tray_available` overrides the desktop's answer (tests); None asks Qt, each time."""
        super().__init__(window)
        self.window = window
        self.state = "idle"
        self.muted = False
        self.menu = QMenu()
        self.menu.setToolTipsVisible(True)  # a disabled mode's tooltip says why
        self.menu.aboutToShow.connect(self._refresh_toggle_text)
        self.toggle_action = QAction("Hide VoxDesk", self.menu)
        self.toggle_action.triggered.connect(self.toggle)
        self.menu.addAction(self.toggle_action)
        self.menu.addSeparator()
        self.activation_menu = self.menu.addMenu("Activation")
        self.activation_menu.setToolTipsVisible(True)
        self._activation_group = QActionGroup(self.menu)
        self._activation_group.setExclusive(True)
        self.activation_actions: dict[str, QAction] = {}
        for mode, label in ACTIVATION_MODES.items():
            action = QAction(label, self.activation_menu, checkable=True)
            self._activation_group.addAction(action)
            action.triggered.connect(lambda _checked=False, m=mode: self.activation_chosen.emit(m))
            self.activation_menu.addAction(action)
            self.activation_actions[mode] = action
        self.mute_action = QAction("Mute microphone", self.menu, checkable=True)
        self.mute_action.toggled.connect(self._mute_changed)
        self.menu.addAction(self.mute_action)
        self.menu.addSeparator()
        self.quit_action = QAction("Quit VoxDesk", self.menu)
        self.quit_action.triggered.connect(self.quit_requested)
        self.menu.addAction(self.quit_action)

        # The icon is made even while no tray is there: Qt docks it when a tray host appears
        # later (a panel that starts after VoxDesk at login), and takes it out when it goes.
        self._forced = tray_available
        self.icon: QSystemTrayIcon | None = None
        if tray_available is not False:
            self.icon = QSystemTrayIcon(state_icon("idle"), self)
            self.icon.setContextMenu(self.menu)
            self.icon.activated.connect(self._activated)
            self.icon.show()
        self._show_state()

    @property
    def available(self) -> bool:
        """Whether the desktop shows a tray now; when False say NO_TRAY_MESSAGE and keep the window."""
        if self.icon is None:
            return False
        return self._forced or QSystemTrayIcon.isSystemTrayAvailable()

    # -- what the app tells the tray --------------------------------------------------
    def set_state(self, state: str) -> None:
        """idle | listening | thinking | speaking | muted | error (the engine's states and two more)."""
        if state not in STATES:
            raise ValueError(f"unknown tray state {state!r}; expected one of {', '.join(STATES)}")
        self.state = state
        self._show_state()

    def set_muted(self, muted: bool) -> None:
        """Reflect a mute made elsewhere (the window's toggle) without emitting mute_toggled."""
        self.mute_action.blockSignals(True)
        self.mute_action.setChecked(muted)
        self.mute_action.blockSignals(False)
        self.muted = muted
        self._show_state()

    def set_activation(self, mode: str, available: dict[str, str | None]) -> None:
        """Check `mode`; a mode whose entry is a reason (not None) is disabled and says why."""
        unknown = [m for m in (mode, *available) if m not in ACTIVATION_MODES]
        if unknown:
            raise ValueError(f"unknown activation mode {unknown[0]!r}; expected one of {', '.join(ACTIVATION_MODES)}")
        for name, action in self.activation_actions.items():
            reason = available.get(name)
            label = ACTIVATION_MODES[name]
            action.setEnabled(reason is None)
            action.setText(label if reason is None else f"{label} (unavailable: {reason})")
            action.setToolTip(label if reason is None else f"{label} is unavailable: {reason}")
            action.setStatusTip(action.toolTip())
            action.setChecked(name == mode)

    @property
    def activation(self) -> str | None:
        checked = self._activation_group.checkedAction()
        return next((m for m, a in self.activation_actions.items() if a is checked), None)

    def tooltip(self) -> str:
        return f"VoxDesk — {self._label()}"

    def displayed_state(self) -> str:
        """What the icon shows: muted wins while nothing else is happening."""
        if self.muted and self.state in ("idle", "listening"):
            return "muted"
        return self.state

    # -- window --------------------------------------------------------------------------
    def toggle(self) -> None:
        if self.window.isVisible() and not self.window.isMinimized():
            self.window.hide()
        else:
            if self.window.isMinimized():
                self.window.showNormal()
            else:
                self.window.show()
            self.window.raise_()
            self.window.activateWindow()
        self._refresh_toggle_text()

    def hide(self) -> None:
        if self.icon is not None:
            self.icon.hide()

    # -- internals -------------------------------------------------------------------------
    def _label(self) -> str:
        label = STATE_LABELS[self.displayed_state()]
        if self.muted and self.displayed_state() != "muted":
            label += " (microphone muted)"
        return label

    def _show_state(self) -> None:
        if self.icon is not None:
            self.icon.setIcon(state_icon(self.displayed_state()))
            self.icon.setToolTip(self.tooltip())

    def _mute_changed(self, on: bool) -> None:
        self.muted = on
        self._show_state()
        self.mute_toggled.emit(on)

    def _refresh_toggle_text(self) -> None:
        shown = self.window.isVisible() and not self.window.isMinimized()
        self.toggle_action.setText("Hide VoxDesk" if shown else "Show VoxDesk")

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:
            self.toggle()
