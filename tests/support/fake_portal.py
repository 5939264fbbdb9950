"""A test GlobalShortcuts portal on a private session bus: a real D-Bus service (jeepney), so the
hotkey's portal backend makes real round-trips. It answers CreateSession/BindShortcuts through
Request.Response signals as xdg-desktop-portal does, and the test fires Activated/Deactivated."""

from __future__ import annotations

import threading
import time
from typing import Any

from jeepney import DBusAddress, HeaderFields, MessageType, new_error, new_method_return, new_signal
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import Proxy, open_dbus_connection

PORTAL = "org.freedesktop.portal.Desktop"
PATH = "/org/freedesktop/portal/desktop"
SHORTCUTS = "org.freedesktop.portal.GlobalShortcuts"


class FakeShortcutsPortal:
    """`bind_code`: the BindShortcuts answer (0 bound, 1 the user cancelled); `bind_delay_s`: the user's
    think time before answering."""

    def __init__(self, bus: str, *, bind_code: int = 0, bind_delay_s: float = 0.0) -> None:
        self.bind_code = bind_code
        self.bind_delay_s = bind_delay_s
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.sessions: list[str] = []
        self.closed: list[str] = []
        self._conn = open_dbus_connection(bus)
        self._send_lock = threading.Lock()
        reply = Proxy(message_bus, self._conn).RequestName(PORTAL, 4)  # 4: do not queue
        assert reply == (1,), f"could not own {PORTAL}: {reply}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake-portal", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._conn.close()

    def activate(self, shortcut_id: str, down: bool = True) -> None:
        member = "Activated" if down else "Deactivated"
        body: tuple[Any, ...] = (self.sessions[-1], shortcut_id, int(time.monotonic() * 1000), {})
        self._send(new_signal(DBusAddress(PATH, interface=SHORTCUTS), member, "osta{sv}", body))

    def _send(self, msg: Any) -> None:
        with self._send_lock:
            self._conn.send(msg)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self._conn.receive(timeout=0.05)
            except TimeoutError:
                continue
            if msg.header.message_type == MessageType.method_call:
                self._answer(msg)

    def _answer(self, msg: Any) -> None:
        fields = msg.header.fields
        iface, member = fields.get(HeaderFields.interface), fields.get(HeaderFields.member)
        self.calls.append((f"{iface}.{member}", msg.body))
        sender = str(fields[HeaderFields.sender]).lstrip(":").replace(".", "_")
        if (iface, member) == ("org.freedesktop.DBus.Properties", "Get") and msg.body == (SHORTCUTS, "version"):
            self._send(new_method_return(msg, "v", (("u", 1),)))
        elif (iface, member) == (SHORTCUTS, "CreateSession"):
            options = msg.body[0]
            request = f"{PATH}/request/{sender}/{options['handle_token'][1]}"
            session = f"{PATH}/session/{sender}/{options['session_handle_token'][1]}"
            self.sessions.append(session)
            self._send(new_method_return(msg, "o", (request,)))
            self._respond(request, 0, {"session_handle": ("s", session)})
        elif (iface, member) == (SHORTCUTS, "BindShortcuts"):
            _session, shortcuts, _parent, options = msg.body
            request = f"{PATH}/request/{sender}/{options['handle_token'][1]}"
            self._send(new_method_return(msg, "o", (request,)))
            threading.Timer(self.bind_delay_s, self._bound, (request, shortcuts)).start()
        elif (iface, member) == ("org.freedesktop.portal.Session", "Close"):
            self.closed.append(str(fields[HeaderFields.path]))
            self._send(new_method_return(msg))
        else:
            self._send(new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod", "s", (f"no {iface}.{member}",)))

    def _bound(self, request: str, shortcuts: list[tuple[str, dict[str, Any]]]) -> None:
        if self.bind_code != 0:
            self._respond(request, self.bind_code, {})
            return
        bound = [
            (sid, {"description": props["description"], "trigger_description": ("s", "Ctrl+Alt+Space")})
            for sid, props in shortcuts
        ]
        self._respond(request, 0, {"shortcuts": ("a(sa{sv})", bound)})

    def _respond(self, request: str, code: int, results: dict[str, Any]) -> None:
        addr = DBusAddress(request, interface="org.freedesktop.portal.Request")
        self._send(new_signal(addr, "Response", "ua{sv}", (code, results)))
