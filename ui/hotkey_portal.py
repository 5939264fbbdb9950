"""Wayland push-to-talk through the XDG desktop portal's GlobalShortcuts interface (jeepney, session bus).

CreateSession, then BindShortcuts with our chord as the preferred trigger; the desktop may ask the user
first, so `start` waits only briefly for that answer and a later one arrives through `on_status`.
Activated/Deactivated are the chord's press and release."""

from __future__ import annotations

import queue
import secrets
import threading
from collections.abc import Callable
from typing import Any

from ui.hotkey_sequence import HotkeySequence
from ui.hotkey_status import HotkeyStatus

BACKEND = "portal"
PORTAL = "org.freedesktop.portal.Desktop"
PORTAL_PATH = "/org/freedesktop/portal/desktop"
SHORTCUTS = "org.freedesktop.portal.GlobalShortcuts"
REQUEST = "org.freedesktop.portal.Request"
SHORTCUT_ID = "push-to-talk"
UNAVAILABLE = (
    "This Wayland desktop offers no global shortcuts (XDG portal GlobalShortcuts); "
    "use the wake word or the window's button"
)
_CALL_TIMEOUT_S = 5.0
_BIND_WAIT_S = 1.0  # how long `start` (on the GUI thread) waits before the answer comes later
_STOP = object()


class PortalHotkey:
    def __init__(
        self,
        on_event: Callable[[bool], None],
        on_status: Callable[[HotkeyStatus], None],
        bus_address: str | None = None,
    ) -> None:
        self._on_event = on_event
        self._on_status = on_status
        self._bus = bus_address or "SESSION"
        self._conn: Any = None
        self._router: Any = None
        self._session = ""
        self._inbox: queue.Queue[Any] = queue.Queue()
        self._filters: list[Any] = []
        self._thread: threading.Thread | None = None
        self._first_answer = threading.Event()
        self._answer: HotkeyStatus | None = None
        self._lock = threading.Lock()
        self._gave_up_waiting = False  # `start` has returned: a later answer goes to on_status

    def start(self, seq: HotkeySequence) -> HotkeyStatus:
        from jeepney.auth import AuthenticationError
        from jeepney.io.threading import DBusRouter, open_dbus_connection

        try:
            self._conn = open_dbus_connection(self._bus)
        except (OSError, KeyError, ValueError, StopIteration, AuthenticationError):
            return HotkeyStatus(False, BACKEND, UNAVAILABLE + " — no session bus is reachable")
        self._router = DBusRouter(self._conn)
        try:
            if not self._portal_has_shortcuts():
                self.stop()
                return HotkeyStatus(False, BACKEND, UNAVAILABLE)
            self._session = self._create_session()
            self._subscribe_activation()
            self._bind(seq)
        except (PortalError, TimeoutError) as exc:
            self.stop()
            return HotkeyStatus(False, BACKEND, f"The desktop's shortcut portal failed: {exc}")
        self._thread = threading.Thread(target=self._listen, args=(seq,), name="voxdesk-hotkey-portal", daemon=True)
        self._thread.start()
        self._first_answer.wait(_BIND_WAIT_S)
        with self._lock:
            if self._answer is not None:
                return self._answer
            self._gave_up_waiting = True
        return HotkeyStatus(False, BACKEND, f"Confirm {seq.text} in the desktop's shortcut dialog")

    def stop(self) -> None:
        """Idempotent: close the portal session, end the listener and the connection."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._inbox.put(_STOP)
            thread.join(timeout=5)
        router, self._router = self._router, None
        if router is not None:
            if self._session:
                self._call_quietly(router, self._session, "org.freedesktop.portal.Session", "Close")
            for handle in self._filters:
                handle.close()
            self._filters = []
            router.close()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        self._session = ""

    # --- D-Bus calls (caller's thread) ---

    def _portal_has_shortcuts(self) -> bool:
        from jeepney import DBusAddress, Properties

        addr = DBusAddress(PORTAL_PATH, bus_name=PORTAL, interface=SHORTCUTS)
        try:
            self._call(Properties(addr).get("version"))
        except PortalError:  # no portal on the bus, or one without GlobalShortcuts
            return False
        return True

    def _create_session(self) -> str:
        answers: queue.Queue[Any] = queue.Queue()
        options = {"handle_token": ("s", token := _token()), "session_handle_token": ("s", _token())}
        self._request("CreateSession", "a{sv}", (options,), token, answers)
        try:
            code, data = _response(answers.get(timeout=_CALL_TIMEOUT_S))
        except queue.Empty:
            raise PortalError("CreateSession got no answer") from None
        if code != 0 or "session_handle" not in data:
            raise PortalError(f"CreateSession answered {code}")
        return str(data["session_handle"][1])

    def _bind(self, seq: HotkeySequence) -> None:
        """Ask for the shortcut; its Response lands in the inbox the listener reads."""
        shortcut = (SHORTCUT_ID, {"description": ("s", "Push to talk"), "preferred_trigger": ("s", seq.xdg_trigger())})
        body = (self._session, [shortcut], "", {"handle_token": ("s", token := _token())})
        self._request("BindShortcuts", "oa(sa{sv})sa{sv}", body, token, self._inbox)

    def _request(self, method: str, signature: str, body: tuple[Any, ...], token: str, into: queue.Queue[Any]) -> None:
        """Call a portal method that answers through a Request object's Response signal.

        The subscription is made before the call, on the handle path the portal will use, so the
        answer cannot slip past."""
        from jeepney import DBusAddress, MatchRule, new_method_call

        sender = self._router.unique_name.lstrip(":").replace(".", "_")
        path = f"{PORTAL_PATH}/request/{sender}/{token}"
        self._add_match(MatchRule(type="signal", interface=REQUEST, member="Response", path=path), into)
        addr = DBusAddress(PORTAL_PATH, bus_name=PORTAL, interface=SHORTCUTS)
        self._call(new_method_call(addr, method, signature, body))

    def _subscribe_activation(self) -> None:
        from jeepney import MatchRule

        for member in ("Activated", "Deactivated"):
            self._add_match(MatchRule(type="signal", interface=SHORTCUTS, member=member, path=PORTAL_PATH), self._inbox)

    def _add_match(self, rule: Any, into: queue.Queue[Any]) -> None:
        from jeepney import message_bus

        self._filters.append(self._router.filter(rule, queue=into))
        self._call(message_bus.AddMatch(rule))

    def _call(self, msg: Any) -> Any:
        from jeepney import HeaderFields, MessageType

        reply = self._router.send_and_get_reply(msg, timeout=_CALL_TIMEOUT_S)
        if reply.header.message_type == MessageType.error:
            name = reply.header.fields.get(HeaderFields.error_name, "error")
            raise PortalError(f"{name}: {reply.body[0] if reply.body else ''}")
        return reply.body

    @staticmethod
    def _call_quietly(router: Any, path: str, interface: str, member: str) -> None:
        from jeepney import DBusAddress, new_method_call

        try:
            router.send_and_get_reply(
                new_method_call(DBusAddress(path, bus_name=PORTAL, interface=interface), member), timeout=1
            )
        except Exception:  # the portal is gone: its sessions went with it
            pass

    # --- listener thread ---

    def _listen(self, seq: HotkeySequence) -> None:
        from jeepney import HeaderFields

        active = False
        while (msg := self._inbox.get()) is not _STOP:
            member = msg.header.fields.get(HeaderFields.member)
            if member == "Response":
                status = _bind_status(seq, *_response(msg))
                active = status.active
                with self._lock:
                    self._answer, late = status, self._gave_up_waiting
                    self._first_answer.set()
                if late:
                    self._on_status(status)
            elif active and msg.body[0] == self._session and msg.body[1] == SHORTCUT_ID:
                self._on_event(member == "Activated")


class PortalError(Exception):
    pass


def _response(msg: Any) -> tuple[int, dict[str, Any]]:
    return int(msg.body[0]), dict(msg.body[1])


def _bind_status(seq: HotkeySequence, code: int, data: dict[str, Any]) -> HotkeyStatus:
    if code == 1:
        return HotkeyStatus(
            False,
            BACKEND,
            f"The desktop's dialog was cancelled, so {seq.text} is not bound; choose it again in Settings → Activation",
        )
    if code != 0:
        return HotkeyStatus(
            False,
            BACKEND,
            f"The desktop refused {seq.text} (portal answer {code}); choose another key in Settings → Activation",
        )
    bound = [s for s in data.get("shortcuts", ("", []))[1] if s[0] == SHORTCUT_ID]
    if not bound:
        return HotkeyStatus(
            False, BACKEND, f"The desktop did not bind {seq.text}; choose another key in Settings → Activation"
        )
    trigger = bound[0][1].get("trigger_description", ("s", ""))[1]
    # The user may have picked another chord in the desktop's dialog: say which one works.
    return HotkeyStatus(True, BACKEND, f"The desktop bound push-to-talk to {trigger}" if trigger else "")


def _token() -> str:
    return "voxdesk_" + secrets.token_hex(8)
