"""System notifications for timers, reminders and errors that need the user while the window is away.

Linux and the BSDs: the freedesktop `org.freedesktop.Notifications.Notify` call over the
session D-Bus (jeepney), made on a worker thread so a slow or stuck notification server
never stalls the GUI thread. No bus, no server or no reply → the tray's balloon
(QSystemTrayIcon.showMessage) if there is a tray, else only a log line. Other OSes use the
tray's balloon, which Qt maps to native notifications there.

Nothing is shown while the window is in front: the window (and the voice) already tell the user.
"""

from __future__ import annotations

import html
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QIcon, QImage
from PySide6.QtWidgets import QSystemTrayIcon, QWidget

from ui import theme

log = logging.getLogger(__name__)

APP_NAME = "VoxDesk"
DESKTOP_ENTRY = "voxdesk"  # resources/voxdesk.desktop; its Icon= name too
BUS_NAME = "org.freedesktop.Notifications"
OBJECT_PATH = "/org/freedesktop/Notifications"
REPLY_TIMEOUT_S = 3.0  # a server that is D-Bus-activated on first use needs a moment
RETRY_AFTER_S = 30.0  # after a failure, notes go straight to the fallback for this long (no 3 s wait each)
ICON_SIZE = 64
TRAY_MESSAGE_MS = {False: 8000, True: 20000}


@dataclass(frozen=True, slots=True)
class Note:
    title: str
    body: str
    urgent: bool = False
    key: str | None = None  # same key → the new note replaces the last one with it (a repeating timer)


def window_is_away(window: QWidget) -> bool:
    """True when the user cannot see the window right now: hidden, minimized or behind another."""
    return not window.isVisible() or window.isMinimized() or not window.isActiveWindow()


def uses_dbus_here() -> bool:
    return sys.platform not in ("win32", "darwin")


def session_bus_address() -> str | None:
    """DBUS_SESSION_BUS_ADDRESS, else systemd's usual $XDG_RUNTIME_DIR/bus, else None."""
    address = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
    if address:
        return address
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and (Path(runtime) / "bus").exists():
        return f"unix:path={Path(runtime) / 'bus'}"
    return None


def icon_image_data(icon: QIcon, size: int = ICON_SIZE) -> tuple[int, int, int, bool, int, int, bytes]:
    """The spec's `image-data` hint (iiibiiay): the icon as raw RGBA, so no icon file is needed."""
    img = icon.pixmap(size, size).toImage().convertToFormat(QImage.Format.Format_RGBA8888)
    data = bytes(img.constBits())[: img.sizeInBytes()]
    return img.width(), img.height(), img.bytesPerLine(), True, 8, 4, data


class Notifier(QObject):
    """`notify(title, body)` shows a system notification while the window is away."""

    # How each shown notification went out: "dbus", "tray" or "log" (nowhere to show it), and its title.
    delivered = Signal(str, str)
    _dbus_failed = Signal(object, str)  # worker → GUI thread: Note, reason
    _dbus_sent = Signal(str)

    def __init__(
        self,
        away: QWidget | Callable[[], bool],
        *,
        tray: QSystemTrayIcon | None = None,
        bus_address: str | None = None,
        use_dbus: bool | None = None,
        parent: QObject | None = None,
    ) -> None:
        """`away`: the window, or a predicate saying whether it is out of sight.
        `bus_address` defaults to the session bus; `use_dbus` to "not Windows or macOS"."""
        super().__init__(parent)
        self._away: Callable[[], bool] = (lambda: window_is_away(away)) if isinstance(away, QWidget) else away
        self.tray = tray
        self._app_icon = theme.app_icon()
        self._worker: _DBusWorker | None = None
        if uses_dbus_here() if use_dbus is None else use_dbus:
            # Rendered here: pixmaps belong to the GUI thread.
            self._worker = _DBusWorker(bus_address, icon_image_data(self._app_icon), self)
            self._worker.start()
        self._dbus_failed.connect(self._fallback)
        self._dbus_sent.connect(self._sent)  # a bound method: Qt queues it onto this object's (GUI) thread

    def notify(self, title: str, body: str, *, urgent: bool = False, key: str | None = None) -> bool:
        """Show it unless the window is in front (then False: the window shows it already).
        Never blocks: the D-Bus call happens on a worker thread."""
        if not self._away():
            return False
        note = Note(title, body, urgent, key)
        if self._worker is not None:
            self._worker.submit(note)
        else:
            self._fallback(note, "")
        return True

    def close(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None

    def _sent(self, title: str) -> None:
        self.delivered.emit("dbus", title)

    def _fallback(self, note: Note, reason: str) -> None:
        tray = self.tray
        # A shown icon with no tray host (GNOME, before the panel starts) would take the message silently.
        if tray is not None and tray.isVisible() and QSystemTrayIcon.isSystemTrayAvailable():
            icon: Any = QSystemTrayIcon.MessageIcon.Warning if note.urgent else self._app_icon
            tray.showMessage(note.title, note.body, icon, TRAY_MESSAGE_MS[note.urgent])
            if reason:
                log.info("notification via the tray (%s): %s", reason, note.title)
            self.delivered.emit("tray", note.title)
            return
        log.warning("notification not shown (%s; no tray either): %s — %s", reason or "no tray", note.title, note.body)
        self.delivered.emit("log", note.title)


class _DBusWorker(threading.Thread):
    """Owns the blocking jeepney connection; sends notes in order, reconnecting after a failure."""

    def __init__(
        self, address: str | None, image: tuple[int, int, int, bool, int, int, bytes], owner: Notifier
    ) -> None:
        super().__init__(name="voxdesk-notify", daemon=True)
        self._address = address
        self._image = image
        self._owner = owner
        self._queue: queue.Queue[Note | None] = queue.Queue()
        self._conn: Any = None
        self._markup = False
        self._ids: dict[str, int] = {}  # key → the server's id, for replaces_id

    def submit(self, note: Note) -> None:
        self._queue.put(note)

    def stop(self) -> None:
        self._queue.put(None)
        self.join(timeout=0.2)  # it may sit in a call to a stuck server; as a daemon thread it cannot block exit

    def run(self) -> None:
        failed_at, reason = -RETRY_AFTER_S, ""
        while (note := self._queue.get()) is not None:
            if time.monotonic() - failed_at < RETRY_AFTER_S:
                self._report(self._owner._dbus_failed, note, reason)
                continue
            try:
                self._send(note)
            except Exception as exc:  # no bus, no server, a timeout, a broken connection
                self._disconnect()
                failed_at, reason = time.monotonic(), f"D-Bus notifications unavailable: {exc or type(exc).__name__}"
                self._report(self._owner._dbus_failed, note, reason)
            else:
                self._report(self._owner._dbus_sent, note.title)
        self._disconnect()

    @staticmethod
    def _report(signal: Any, *args: Any) -> None:
        try:
            signal.emit(*args)
        except RuntimeError:  # the Notifier was deleted while a call was in flight (quitting)
            pass

    def _connect(self) -> Any:
        from jeepney import DBusAddress, new_method_call
        from jeepney.io.blocking import open_dbus_connection

        address = self._address or session_bus_address()
        if address is None:
            raise ConnectionError("no session bus (DBUS_SESSION_BUS_ADDRESS is not set)")
        conn = open_dbus_connection(bus=address, auth_timeout=1.0)
        try:
            target = DBusAddress(OBJECT_PATH, bus_name=BUS_NAME, interface=BUS_NAME)
            reply = conn.send_and_get_reply(new_method_call(target, "GetCapabilities"), timeout=REPLY_TIMEOUT_S)
            caps = _unwrap(reply)[0]
        except Exception:
            conn.close()
            raise
        # Servers with body-markup read "<" and "&" as markup: a reminder "buy fish & chips" must survive.
        self._markup = "body-markup" in caps
        return conn

    def _send(self, note: Note) -> None:
        from jeepney import DBusAddress, new_method_call

        if self._conn is None:
            self._conn = self._connect()
        body = html.escape(note.body, quote=False) if self._markup else note.body
        hints = {
            "urgency": ("y", 2 if note.urgent else 1),
            "desktop-entry": ("s", DESKTOP_ENTRY),
            "image-data": ("(iiibiiay)", self._image),
        }
        replaces = self._ids.get(note.key, 0) if note.key else 0
        target = DBusAddress(OBJECT_PATH, bus_name=BUS_NAME, interface=BUS_NAME)
        msg = new_method_call(
            target,
            "Notify",
            "susssasa{sv}i",
            (APP_NAME, replaces, DESKTOP_ENTRY, note.title, body, [], hints, -1),
        )
        notification_id = _unwrap(self._conn.send_and_get_reply(msg, timeout=REPLY_TIMEOUT_S))[0]
        if note.key:
            self._ids[note.key] = notification_id

    def _disconnect(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
            self._conn = None


def _unwrap(reply: Any) -> Any:
    from jeepney import MessageType
    from jeepney.wrappers import DBusErrorResponse

    if reply.header.message_type == MessageType.error:
        raise DBusErrorResponse(reply)
    return reply.body
