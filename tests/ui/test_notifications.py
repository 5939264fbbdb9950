"""System notifications over a real private D-Bus daemon, to a real (small) notification server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from PySide6.QtWidgets import QApplication, QSystemTrayIcon, QWidget

from tests.support.notification_server import NotificationServer
from tests.support.session_bus import SessionBus, private_session_bus
from ui import notifications
from ui.notifications import APP_NAME, DESKTOP_ENTRY, Notifier, window_is_away

GUI_CALL_LIMIT_S = 0.05


@pytest.fixture
def bus() -> Iterator[SessionBus]:
    with private_session_bus() as b:
        yield b


@pytest.fixture
def server(bus: SessionBus) -> Iterator[NotificationServer]:
    s = NotificationServer(bus.address).start()
    yield s
    s.stop()


@pytest.fixture
def hidden_window(qtbot: Any) -> QWidget:
    w = QWidget()
    qtbot.addWidget(w)
    return w  # never shown: the user cannot see it


@pytest.fixture
def offscreen_tray(
    qapp: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[QSystemTrayIcon, list[tuple[Any, ...]]]]:
    """A shown tray icon, and the messages given to it. Offscreen has no tray host, so its presence is
    declared here and showMessage recorded; test_tray.py's real tray host shows the actual balloon."""
    from ui import theme

    monkeypatch.setattr(QSystemTrayIcon, "isSystemTrayAvailable", staticmethod(lambda: True))
    tray = QSystemTrayIcon(theme.app_icon())
    tray.show()
    shown: list[tuple[Any, ...]] = []
    tray.showMessage = lambda *a: shown.append(a)  # type: ignore[method-assign]
    yield tray, shown
    tray.hide()


def make_notifier(away: Any, **kw: Any) -> tuple[Notifier, list[tuple[str, str]]]:
    """A notifier and the routes its notifications went out by, as `delivered` reports them."""
    n = Notifier(away, **kw)
    routes: list[tuple[str, str]] = []
    n.delivered.connect(lambda how, title: routes.append((how, title)))
    return n, routes


def timed_notify(n: Notifier, *args: Any, **kw: Any) -> tuple[bool, float]:
    t0 = time.perf_counter()
    shown = n.notify(*args, **kw)
    return shown, time.perf_counter() - t0


def pump() -> None:
    QApplication.processEvents()


def test_a_notification_arrives_with_title_body_app_name_and_icon(
    qtbot: Any, bus: SessionBus, server: NotificationServer, hidden_window: QWidget
) -> None:
    n, routes = make_notifier(hidden_window, bus_address=bus.address, use_dbus=True)
    shown, took = timed_notify(n, "Timer", "Tea is ready: <b>green</b> & hot")
    assert shown is True
    assert took < GUI_CALL_LIMIT_S
    (call,) = server.wait_for_calls(1, pump=pump)
    assert call.app_name == APP_NAME
    assert call.summary == "Timer"
    # The server speaks body-markup: the text arrives escaped, so it shows as typed.
    assert call.body == "Tea is ready: &lt;b&gt;green&lt;/b&gt; &amp; hot"
    assert call.app_icon == DESKTOP_ENTRY
    assert call.hints["desktop-entry"] == DESKTOP_ENTRY
    assert call.hints["urgency"] == 1
    w, h, stride, alpha, bits, channels, data = call.hints["image-data"]
    assert (w, h, alpha, bits, channels) == (64, 64, True, 8, 4)
    assert len(data) == stride * h
    px = (32 * stride) + 8 * 4  # left of the microphone: the icon's blue square
    assert data[px : px + 4] == bytes([0x2F, 0x6F, 0xDE, 0xFF])
    qtbot.waitUntil(lambda: routes == [("dbus", "Timer")])
    n.close()


def test_a_server_without_markup_gets_the_body_as_is(qtbot: Any, bus: SessionBus, hidden_window: QWidget) -> None:
    server = NotificationServer(bus.address, capabilities=("body",)).start()
    try:
        n, _ = make_notifier(hidden_window, bus_address=bus.address, use_dbus=True)
        n.notify("Reminder", "fish & chips <now>")
        (call,) = server.wait_for_calls(1, pump=pump)
        assert call.body == "fish & chips <now>"
        n.close()
    finally:
        server.stop()


def test_the_same_key_replaces_and_urgent_is_critical(
    qtbot: Any, bus: SessionBus, server: NotificationServer, hidden_window: QWidget
) -> None:
    n, _ = make_notifier(hidden_window, bus_address=bus.address, use_dbus=True)
    n.notify("Timer", "5 minutes left", key="timer-1")
    n.notify("Timer", "Time is up", key="timer-1", urgent=True)
    n.notify("Other", "unrelated")
    first, second, other = server.wait_for_calls(3, pump=pump)
    assert first.replaces_id == 0
    assert second.replaces_id == first.id  # replaces rather than stacks
    assert second.id == first.id
    assert other.replaces_id == 0 and other.id != first.id
    assert [c.hints["urgency"] for c in (first, second, other)] == [1, 2, 1]
    n.close()


def test_nothing_is_shown_while_the_window_is_in_front(qtbot: Any, bus: SessionBus, server: NotificationServer) -> None:
    w = QWidget()
    qtbot.addWidget(w)
    w.show()
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow)
    n, _ = make_notifier(w, bus_address=bus.address, use_dbus=True)
    assert n.notify("Timer", "done") is False
    w.showMinimized()
    qtbot.waitUntil(w.isMinimized)
    assert n.notify("Timer", "done while minimized") is True
    (call,) = server.wait_for_calls(1, pump=pump)
    assert call.body == "done while minimized"
    n.close()


def test_window_is_away_when_hidden_minimized_or_behind(qtbot: Any) -> None:
    a, b = QWidget(), QWidget()
    qtbot.addWidget(a)
    qtbot.addWidget(b)
    assert window_is_away(a)  # never shown
    a.show()
    a.activateWindow()
    qtbot.waitUntil(a.isActiveWindow)
    assert not window_is_away(a)
    b.show()
    b.activateWindow()
    qtbot.waitUntil(b.isActiveWindow)
    assert window_is_away(a)  # another window is in front
    a.hide()
    assert window_is_away(a)


def test_a_predicate_decides_instead_of_a_window(qtbot: Any, bus: SessionBus, server: NotificationServer) -> None:
    away = [False]
    n, _ = make_notifier(lambda: away[0], bus_address=bus.address, use_dbus=True)
    assert n.notify("a", "b") is False
    away[0] = True
    assert n.notify("a", "b") is True
    server.wait_for_calls(1, pump=pump)
    n.close()


def test_no_server_on_the_bus_falls_back_to_a_log_line(
    qtbot: Any, bus: SessionBus, hidden_window: QWidget, caplog: pytest.LogCaptureFixture
) -> None:
    n, routes = make_notifier(hidden_window, bus_address=bus.address, use_dbus=True)
    shown, took = timed_notify(n, "Timer", "done")
    assert shown and took < GUI_CALL_LIMIT_S
    qtbot.waitUntil(lambda: routes == [("log", "Timer")], timeout=5000)
    assert "org.freedesktop.DBus.Error.ServiceUnknown" in caplog.text
    n.close()


def test_the_bus_going_away_falls_back_to_the_tray_without_stalling_the_gui(
    qtbot: Any,
    bus: SessionBus,
    server: NotificationServer,
    hidden_window: QWidget,
    offscreen_tray: tuple[QSystemTrayIcon, list[tuple[Any, ...]]],
) -> None:
    from tests.ui.conftest import GuiGapMeter

    tray, shown = offscreen_tray
    n, routes = make_notifier(hidden_window, bus_address=bus.address, use_dbus=True, tray=tray)
    n.notify("Before", "the bus is up")
    server.wait_for_calls(1, pump=pump)
    qtbot.waitUntil(lambda: routes == [("dbus", "Before")])

    server.stop()
    bus.stop()
    meter = GuiGapMeter()
    meter.start()
    timings = [timed_notify(n, "After", f"the bus is gone {i}")[1] for i in range(3)]
    t0 = time.perf_counter()
    qtbot.waitUntil(lambda: len(routes) == 4, timeout=5000)
    fallback_s = time.perf_counter() - t0
    meter.stop()
    print(
        f"\nnotify() with the bus gone: worst {max(timings) * 1000:.2f} ms; all three fallbacks in "
        f"{fallback_s * 1000:.0f} ms; GUI thread's longest stall {meter.worst * 1000:.0f} ms"
    )
    assert max(timings) < GUI_CALL_LIMIT_S
    assert routes[1:] == [("tray", "After")] * 3
    assert [m[:2] for m in shown] == [("After", f"the bus is gone {i}") for i in range(3)]
    assert meter.worst < 0.2  # a blocking connect or reply wait would stall it for a second or more
    n.close()


def test_a_hung_server_times_out_into_the_fallback_once(
    qtbot: Any, bus: SessionBus, hidden_window: QWidget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notifications, "REPLY_TIMEOUT_S", 0.3)
    server = NotificationServer(bus.address, respond=False).start()
    try:
        n, routes = make_notifier(hidden_window, bus_address=bus.address, use_dbus=True)
        t0 = time.perf_counter()
        for i in range(3):
            shown, took = timed_notify(n, "Timer", f"done {i}")
            assert shown and took < GUI_CALL_LIMIT_S
        qtbot.waitUntil(lambda: routes == [("log", "Timer")] * 3, timeout=3000)
        # One timeout, then straight to the fallback: not 0.3 s for each.
        assert time.perf_counter() - t0 < 0.3 * 2
        n.close()
    finally:
        server.stop()


def test_a_server_that_starts_later_is_used_after_the_retry_pause(
    qtbot: Any, bus: SessionBus, hidden_window: QWidget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notifications, "RETRY_AFTER_S", 0.3)
    n, routes = make_notifier(hidden_window, bus_address=bus.address, use_dbus=True)
    n.notify("First", "no server yet")
    qtbot.waitUntil(lambda: routes == [("log", "First")], timeout=3000)
    server = NotificationServer(bus.address).start()
    try:
        n.notify("Second", "within the pause")
        qtbot.waitUntil(lambda: len(routes) == 2, timeout=3000)
        assert routes[1] == ("log", "Second")
        qtbot.wait(400)
        n.notify("Third", "after the pause")
        (call,) = server.wait_for_calls(1, pump=pump)
        assert call.summary == "Third"
        qtbot.waitUntil(lambda: routes[-1] == ("dbus", "Third"), timeout=3000)
        n.close()
    finally:
        server.stop()


def test_no_session_bus_at_all(qtbot: Any, hidden_window: QWidget, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    assert notifications.session_bus_address() is None
    n, routes = make_notifier(hidden_window, use_dbus=True)
    n.notify("Timer", "done")
    qtbot.waitUntil(lambda: routes == [("log", "Timer")], timeout=3000)
    n.close()


def test_the_session_bus_is_found_in_the_runtime_dir(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert notifications.session_bus_address() is None
    (tmp_path / "bus").touch()
    assert notifications.session_bus_address() == f"unix:path={tmp_path / 'bus'}"
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/elsewhere")
    assert notifications.session_bus_address() == "unix:path=/elsewhere"


def test_without_dbus_the_tray_shows_it(
    qtbot: Any, hidden_window: QWidget, offscreen_tray: tuple[QSystemTrayIcon, list[tuple[Any, ...]]]
) -> None:
    """Windows and macOS: the tray's balloon (Qt maps it to the OS's notifications)."""
    tray, shown = offscreen_tray
    n, routes = make_notifier(hidden_window, use_dbus=False, tray=tray)
    assert n.notify("Timer", "done", urgent=True)
    assert routes == [("tray", "Timer")]
    title, body, icon, msecs = shown[0]
    assert (title, body, icon) == ("Timer", "done", QSystemTrayIcon.MessageIcon.Warning)
    assert msecs == notifications.TRAY_MESSAGE_MS[True]
    tray.hide()
    assert n.notify("Timer", "nowhere to show it")
    assert routes[-1] == ("log", "Timer")


def test_a_tray_icon_without_a_tray_host_is_not_used(qtbot: Any, hidden_window: QWidget) -> None:
    from ui import theme

    tray = QSystemTrayIcon(theme.app_icon())
    tray.show()  # Qt calls it visible, but offscreen (like GNOME) has no tray to show it in
    n, routes = make_notifier(hidden_window, use_dbus=False, tray=tray)
    n.notify("Timer", "done")
    assert routes == [("log", "Timer")]
    tray.hide()
