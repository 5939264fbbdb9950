"""A small freedesktop notification server for tests (jeepney, on a thread).

It owns `org.freedesktop.Notifications` on the bus it is given, answers Notify,
GetCapabilities, GetServerInformation and CloseNotification as the spec says, and records
every Notify call. `respond=False` makes it own the name but never answer (a hung server).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jeepney import HeaderFields, MessageType, new_error, new_method_return, new_signal
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import DBusConnection, open_dbus_connection
from jeepney.wrappers import DBusAddress

NAME = "org.freedesktop.Notifications"
PATH = "/org/freedesktop/Notifications"
DO_NOT_QUEUE = 4
PRIMARY_OWNER = 1


@dataclass(frozen=True)
class NotifyCall:
    app_name: str
    replaces_id: int
    app_icon: str
    summary: str
    body: str
    actions: list[str]
    hints: dict[str, Any]  # name → value (the variant's signature dropped)
    expire_timeout: int
    id: int  # what the server answered


@dataclass
class NotificationServer:
    address: str
    capabilities: tuple[str, ...] = ("body", "body-markup", "icon-static")
    respond: bool = True
    calls: list[NotifyCall] = field(default_factory=list)
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _ready: threading.Event = field(default_factory=threading.Event)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    error: BaseException | None = None

    def start(self) -> NotificationServer:
        self._thread = threading.Thread(target=self._serve, name="test-notification-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError(f"notification server did not start: {self.error!r}")
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def wait_for_calls(self, n: int, timeout: float = 5.0, pump: Callable[[], None] | None = None) -> list[NotifyCall]:
        end = time.monotonic() + timeout
        while len(self.calls) < n:
            if time.monotonic() > end:
                raise AssertionError(f"expected {n} Notify calls, got {len(self.calls)}: {self.calls}")
            if pump is not None:
                pump()
            time.sleep(0.01)
        return list(self.calls)

    def _serve(self) -> None:
        try:
            with open_dbus_connection(bus=self.address) as conn:
                reply = conn.send_and_get_reply(message_bus.RequestName(NAME, DO_NOT_QUEUE), timeout=5)
                if reply.body[0] != PRIMARY_OWNER:
                    raise RuntimeError(f"could not own {NAME}: {reply.body}")
                self._ready.set()
                while not self._stop.is_set():
                    try:
                        msg = conn.receive(timeout=0.05)
                    except TimeoutError:
                        continue
                    except (ConnectionError, OSError):
                        return  # the bus went away
                    if msg.header.message_type == MessageType.method_call:
                        self._handle(conn, msg)
        except BaseException as exc:
            self.error = exc
            self._ready.set()

    def _handle(self, conn: DBusConnection, msg: Any) -> None:
        if not self.respond:
            return
        member = msg.header.fields.get(HeaderFields.member)
        if member == "GetCapabilities":
            conn.send(new_method_return(msg, "as", (list(self.capabilities),)))
        elif member == "GetServerInformation":
            conn.send(new_method_return(msg, "ssss", ("voxdesk-test-server", "VoxDesk tests", "1.0", "1.2")))
        elif member == "Notify":
            app_name, replaces_id, app_icon, summary, body, actions, hints, expire = msg.body
            nid = replaces_id or next(self._ids)
            plain = {k: v[1] for k, v in hints.items()}
            self.calls.append(NotifyCall(app_name, replaces_id, app_icon, summary, body, actions, plain, expire, nid))
            conn.send(new_method_return(msg, "u", (nid,)))
        elif member == "CloseNotification":
            (nid,) = msg.body
            conn.send(new_method_return(msg))
            emitter = DBusAddress(PATH, interface=NAME)
            conn.send(new_signal(emitter, "NotificationClosed", "uu", (nid, 3)))
        else:
            conn.send(new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod", "s", (f"no method {member}",)))
