"""A global push-to-talk hotkey: `pressed` when the chord goes down while any application has focus,
`released` when it comes up. The window connects them to `session.push_to_talk(True/False)`.

Backends, chosen at `start`: X11 (XGrabKey), Wayland (the XDG GlobalShortcuts portal), Windows/macOS
(pynput). Each listens on its own thread; its events reach the signals through a queued connection,
so `pressed`/`released`/`status_changed` are always emitted on this object's (the GUI) thread."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Protocol

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QGuiApplication

from ui.hotkey_choice import choose_backend
from ui.hotkey_sequence import HotkeySequence, HotkeySequenceError, parse_sequence
from ui.hotkey_status import HotkeyStatus

__all__ = ["DEFAULT_SEQUENCE", "GlobalHotkey", "HotkeyStatus"]

DEFAULT_SEQUENCE = "Ctrl+Alt+Space"
_PACKAGES = {"Xlib": "the python-xlib package", "jeepney": "the jeepney package", "pynput": "the pynput package"}


class _Backend(Protocol):
    def start(self, seq: HotkeySequence) -> HotkeyStatus: ...

    def stop(self) -> None: ...


class GlobalHotkey(QObject):
    pressed = Signal()
    released = Signal()
    # A later answer from the desktop (the portal may ask the user first): the new status.
    status_changed = Signal(object)
    _event = Signal(int, bool)  # (binding generation, down): events of a stopped binding are dropped
    _late_status = Signal(int, object)

    def __init__(self, parent: QObject | None = None, *, environ: Mapping[str, str] | None = None) -> None:
        super().__init__(parent)
        self._environ = environ if environ is not None else os.environ
        self._backend: _Backend | None = None
        self._down = False
        self._generation = 0
        self.status = HotkeyStatus(False, "none", "The global hotkey is off")
        self._event.connect(self._deliver, Qt.ConnectionType.QueuedConnection)
        self._late_status.connect(self._set_late_status, Qt.ConnectionType.QueuedConnection)

    def start(self, sequence: str) -> HotkeyStatus:
        """Grab `sequence` (Qt portable text); safe to call again to rebind. Never raises for bad input."""
        self.stop()
        try:
            seq = parse_sequence(sequence)
        except HotkeySequenceError as exc:
            self.status = HotkeyStatus(False, "none", str(exc))
            return self.status
        choice = choose_backend(QGuiApplication.platformName(), self._environ, sys.platform)
        if choice.backend == "none":
            self.status = HotkeyStatus(False, "none", choice.reason)
            return self.status
        backend = self._make(choice.backend)
        try:
            status = backend.start(seq)
        except ModuleNotFoundError as exc:  # a broken install: say which package, never raise into Settings
            package = _PACKAGES.get((exc.name or "").split(".")[0], exc.name)
            status = HotkeyStatus(False, choice.backend, f"The global hotkey needs {package}: reinstall VoxDesk")
        if status.active or status.backend == "portal":  # a portal waiting on the user still needs stopping
            self._backend = backend
        self.status = status
        return status

    def stop(self) -> None:
        """Idempotent: ungrab, end the listener thread, and release a chord that is still held."""
        backend, self._backend = self._backend, None
        self._generation += 1
        if backend is not None:
            backend.stop()
        if self._down:
            self._down = False
            self.released.emit()

    def _make(self, name: str) -> _Backend:
        gen = self._generation

        def on_event(down: bool) -> None:
            self._event.emit(gen, down)

        def on_status(status: HotkeyStatus) -> None:
            self._late_status.emit(gen, status)

        # Each backend imports its library only here, on first use.
        if name == "x11":
            from ui.hotkey_x11 import X11Hotkey

            return X11Hotkey(on_event, self._environ.get("DISPLAY"))
        if name == "portal":
            from ui.hotkey_portal import PortalHotkey

            return PortalHotkey(on_event, on_status, self._environ.get("DBUS_SESSION_BUS_ADDRESS"))
        from ui.hotkey_pynput import PynputHotkey

        return PynputHotkey(on_event, sys.platform)

    def _deliver(self, generation: int, down: bool) -> None:
        if generation != self._generation or down == self._down:
            return
        self._down = down
        (self.pressed if down else self.released).emit()

    def _set_late_status(self, generation: int, status: HotkeyStatus) -> None:
        if generation != self._generation:
            return
        self.status = status
        self.status_changed.emit(status)
