"""The global push-to-talk hotkey against a real X server (a private Xvfb), real X clients and xdotool,
and a real dbus-daemon for the Wayland portal path.

The hotkey runs in a child process: a real Qt app on the xcb platform (pytest-qt's QApplication is
offscreen for the whole session), driven over stdin, reporting over stdout."""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_portal import FakeShortcutsPortal
from tests.support.session_bus import private_session_bus
from tests.support.xserver import xvfb
from ui.hotkey_choice import choose_backend
from ui.hotkey_portal import UNAVAILABLE
from ui.hotkey_sequence import HotkeySequenceError, parse_sequence

REPO = Path(__file__).resolve().parents[2]
CHORD = "ctrl+alt+space"  # xdotool's spelling of the default "Ctrl+Alt+Space"
CONFLICT = "Ctrl+Alt+Space is already used by another application — choose another key in Settings → Activation"

needs_x = pytest.mark.skipif(
    shutil.which("Xvfb") is None or shutil.which("xdotool") is None,
    reason="needs Xvfb and xdotool (apt-get install xvfb xdotool); CI has both",
)


@pytest.fixture
def display() -> Iterator[str]:
    """A fresh X server per test: a failed test's held keys or grabs never reach the next one."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    with xvfb() as server:
        yield server.display


class Child:
    """The Qt app holding the hotkey; `expect` reads its JSON lines with a deadline."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.hotkey_child"],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.start_ms: list[float] = []  # how long each start held the GUI thread
        threading.Thread(target=self._read, daemon=True).start()
        self.expect("ready", timeout=20)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def expect(self, key: str, timeout: float = 5.0) -> dict[str, Any]:
        try:
            msg = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no {key!r} from the hotkey app within {timeout} s") from None
        assert key in msg, f"expected {key!r}, got {msg}"
        return msg

    def quiet(self, for_s: float) -> list[dict[str, Any]]:
        """Whatever else arrives within `for_s` (a test wants none)."""
        time.sleep(for_s)
        extra = []
        while not self.lines.empty():
            extra.append(self.lines.get_nowait())
        return extra

    def start(self, sequence: str) -> dict[str, Any]:
        self.send(f"start {sequence}")
        msg = self.expect("status", timeout=10)
        assert msg["platform"] == "xcb"
        self.start_ms.append(msg["start_ms"])
        return dict(msg["status"])

    def close(self) -> str:
        if self.proc.poll() is None:
            self.send("quit")
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("the hotkey app did not quit within 10 s (the listener hung)") from None
        assert self.proc.stderr is not None
        return self.proc.stderr.read()


def child_env(display: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "XDG_SESSION_TYPE")}
    env.update({"DISPLAY": display, "QT_QPA_PLATFORM": "xcb", "XDG_SESSION_TYPE": "x11", **extra})
    return env


@pytest.fixture
def child(display: str) -> Iterator[Child]:
    c = Child(child_env(display))
    yield c
    stderr = c.close()
    assert c.proc.returncode == 0, stderr


class FocusWindow:
    """Another application: a plain X client window that holds the input focus and counts its key presses."""

    def __init__(self, display: str) -> None:
        from Xlib import X
        from Xlib.display import Display

        self.d = Display(display)
        screen = self.d.screen()
        self.win = screen.root.create_window(
            10, 10, 200, 100, 0, screen.root_depth, event_mask=X.KeyPressMask | X.KeyReleaseMask
        )
        self.win.map()
        self.d.sync()
        time.sleep(0.1)
        self.win.set_input_focus(X.RevertToParent, X.CurrentTime)
        self.d.sync()

    def presses(self) -> list[int]:
        from Xlib import X

        codes = []
        while self.d.pending_events():
            e = self.d.next_event()
            if e.type == X.KeyPress:
                codes.append(e.detail)
        return codes

    def keycode(self, keysym_name: str) -> int:
        from Xlib import XK

        return int(self.d.keysym_to_keycode(XK.string_to_keysym(keysym_name)))

    def close(self) -> None:
        self.d.close()


@pytest.fixture
def focus(display: str) -> Iterator[FocusWindow]:
    w = FocusWindow(display)
    yield w
    w.close()


def xdotool(display: str, *args: str) -> None:
    if shutil.which("xdotool") is None:
        pytest.skip("xdotool is not installed (apt-get install xdotool); CI has it")
    subprocess.run(["xdotool", *args], env={**os.environ, "DISPLAY": display}, check=True, timeout=10)


def grab_from_another_client(display: str, keysym: str = "space") -> tuple[Any, bool]:
    """Another application grabs Ctrl+Alt+<key>; returns (its connection, whether X refused it)."""
    from Xlib import XK, X, error
    from Xlib.display import Display

    d = Display(display)
    catcher = error.CatchError(error.BadAccess)
    code = d.keysym_to_keycode(XK.string_to_keysym(keysym))
    d.screen().root.grab_key(code, X.ControlMask | X.Mod1Mask, False, X.GrabModeAsync, X.GrabModeAsync, onerror=catcher)
    d.sync()
    return d, catcher.get_error() is not None


# --- X11, end to end ---


@needs_x
def test_chord_held_in_another_app_gives_one_pressed_and_one_released(
    display: str, child: Child, focus: FocusWindow
) -> None:
    # The server auto-repeats a held key here (else the one-press check below would prove nothing).
    xdotool(display, "keydown", "a")
    time.sleep(1.2)
    xdotool(display, "keyup", "a")
    time.sleep(0.1)
    assert focus.presses().count(focus.keycode("a")) > 5

    assert child.start("Ctrl+Alt+Space") == {"active": True, "backend": "x11", "message": ""}
    t0 = time.monotonic()
    xdotool(display, "keydown", CHORD)
    assert child.expect("event") == {"event": "pressed", "gui_thread": True}
    pressed_after = time.monotonic() - t0
    time.sleep(1.2)  # well past the 660 ms auto-repeat delay: ~14 repeats
    assert child.quiet(0) == []
    xdotool(display, "keyup", CHORD)
    assert child.expect("event") == {"event": "released", "gui_thread": True}
    assert child.quiet(0.3) == []
    # The grab took the chord: the focused application never saw the space.
    assert focus.keycode("space") not in focus.presses()
    child.send("stop")
    stop_ms = child.expect("stopped")["stop_ms"]
    # start and stop run on the GUI thread: they must not stall it.
    assert child.start_ms[0] < 1000 and stop_ms < 1000, (child.start_ms, stop_ms)
    print(
        f"\nx11: start {child.start_ms[0]:.1f} ms, stop {stop_ms:.1f} ms on the GUI thread; "
        f"pressed reached it {pressed_after * 1000:.0f} ms after xdotool was launched"
    )


@needs_x
def test_works_with_numlock_and_capslock_on(display: str, child: Child, focus: FocusWindow) -> None:
    assert child.start("Ctrl+Alt+Space")["active"]
    xdotool(display, "key", "Num_Lock", "Caps_Lock")
    try:
        xdotool(display, "keydown", CHORD)
        assert child.expect("event")["event"] == "pressed"
        xdotool(display, "keyup", CHORD)
        assert child.expect("event")["event"] == "released"
    finally:
        xdotool(display, "key", "Num_Lock", "Caps_Lock")


@needs_x
def test_another_app_owning_the_chord_is_named_as_the_conflict(display: str, child: Child) -> None:
    other, refused = grab_from_another_client(display)
    try:
        assert not refused
        assert child.start("Ctrl+Alt+Space") == {"active": False, "backend": "x11", "message": CONFLICT}
        # The failed attempt left no half of its grabs behind: a free chord still binds.
        assert child.start("Ctrl+Alt+F9")["active"]
    finally:
        other.close()


@needs_x
def test_stop_and_rebinding_release_the_grab(display: str, child: Child) -> None:
    assert child.start("Ctrl+Alt+Space")["active"]
    other, refused = grab_from_another_client(display)
    other.close()
    assert refused, "while VoxDesk holds the chord, another application cannot grab it"

    assert child.start("F9")["active"]  # rebinding from Settings lets go of the old chord
    other, refused = grab_from_another_client(display)
    other.close()
    assert not refused
    xdotool(display, "key", "F9")
    assert [child.expect("event")["event"], child.expect("event")["event"]] == ["pressed", "released"]

    child.send("stop")
    child.expect("stopped")
    child.send("stop")  # idempotent
    child.expect("stopped")
    xdotool(display, "key", "F9")
    assert child.quiet(0.3) == []


@needs_x
def test_stop_while_held_ends_the_turn(display: str, child: Child) -> None:
    assert child.start("Ctrl+Alt+Space")["active"]
    xdotool(display, "keydown", CHORD)
    try:
        assert child.expect("event")["event"] == "pressed"
        child.send("stop")
        assert child.expect("event")["event"] == "released"
        child.expect("stopped")
    finally:
        xdotool(display, "keyup", CHORD)
    assert child.quiet(0.3) == []


@needs_x
def test_timestamp_debouncing_alone_also_gives_one_press(display: str) -> None:
    """A server without XKB's detectable auto-repeat: the release/press pairs of a held key are dropped."""
    from ui.hotkey_x11 import X11Hotkey

    events: list[bool] = []
    hotkey = X11Hotkey(events.append, display, xkb_auto_repeat=False)
    assert hotkey.start(parse_sequence("Ctrl+Alt+Space")).active
    try:
        assert not hotkey.detectable_repeat
        xdotool(display, "keydown", CHORD)
        time.sleep(1.2)
        xdotool(display, "keyup", CHORD)
        time.sleep(0.3)
    finally:
        t0 = time.monotonic()
        hotkey.stop()
        stop_s = time.monotonic() - t0
    assert events == [True, False]
    assert stop_s < 1.0


@needs_x
def test_pynput_backend_tracks_press_and_release(display: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Windows/macOS backend's own logic, run on pynput's X11 listener (the same Listener API)."""
    if importlib.util.find_spec("pynput") is None:
        pytest.skip("pynput is not installed (pip install pynput); CI's dev extra has it")
    # pynput picks its backend when first imported: the display must be set before.
    monkeypatch.setenv("DISPLAY", display)
    monkeypatch.setenv("PYNPUT_BACKEND", "xorg")
    from ui.hotkey_pynput import PynputHotkey

    events: list[bool] = []
    hotkey = PynputHotkey(events.append, "linux")
    try:
        assert hotkey.start(parse_sequence("Ctrl+Alt+Space")).active
        time.sleep(0.3)
        xdotool(display, "key", "space", "ctrl+space", "alt+space")  # not the chord
        xdotool(display, "keydown", CHORD)
        time.sleep(1.0)  # auto-repeat: Windows and X both send repeated presses
        xdotool(display, "keyup", CHORD)
        time.sleep(0.3)
        assert events == [True, False]
        xdotool(display, "keydown", CHORD)
        time.sleep(0.3)
    finally:
        hotkey.stop()
        xdotool(display, "keyup", CHORD)
    assert events == [True, False, True, False], "stop while held must end the turn"


@needs_x
def test_a_missing_backend_package_is_named(display: str) -> None:
    c = Child(child_env(display, HOTKEY_CHILD_WITHOUT="Xlib"))
    try:
        status = c.start("Ctrl+Alt+Space")
    finally:
        stderr = c.close()
    assert c.proc.returncode == 0, stderr
    assert status == {
        "active": False,
        "backend": "x11",
        "message": "The global hotkey needs the python-xlib package: reinstall VoxDesk",
    }


@needs_x
def test_a_shifted_keysym_is_grabbed_with_shift(display: str) -> None:
    """ "+" is Shift+= on this layout: Ctrl++ means Ctrl+Shift+=, and plain Ctrl+= stays the application's."""
    from ui.hotkey_x11 import X11Hotkey

    events: list[bool] = []
    hotkey = X11Hotkey(events.append, display)
    assert hotkey.start(parse_sequence("Ctrl++")).active
    try:
        xdotool(display, "key", "ctrl+equal")
        time.sleep(0.3)
        assert events == []
        xdotool(display, "key", "ctrl+shift+equal")
        time.sleep(0.3)
        assert events == [True, False]
    finally:
        hotkey.stop()


@needs_x
def test_a_key_missing_from_the_layout_and_an_unreachable_display_say_so(display: str) -> None:
    from ui.hotkey_x11 import X11Hotkey

    status = X11Hotkey(print, display).start(parse_sequence("Ctrl+F35"))  # Xvfb's keymap stops at F12
    assert not status.active and status.message.startswith("This keyboard layout has no F35 key")
    status = X11Hotkey(print, ":4242").start(parse_sequence("Ctrl+Alt+Space"))
    assert not status.active and "cannot reach the X display :4242" in status.message


def test_the_x_server_going_away_ends_a_held_turn_and_stop_still_returns() -> None:
    if shutil.which("Xvfb") is None or shutil.which("xdotool") is None:
        pytest.skip("needs Xvfb and xdotool (apt-get install xvfb xdotool); CI has both")
    from ui.hotkey_x11 import X11Hotkey

    events: list[bool] = []
    with xvfb() as server:
        hotkey = X11Hotkey(events.append, server.display)
        assert hotkey.start(parse_sequence("Ctrl+Alt+Space")).active
        xdotool(server.display, "keydown", CHORD)
        wait_for(lambda: events == [True])
        server.kill()
        wait_for(lambda: events == [True, False])
        t0 = time.monotonic()
        hotkey.stop()
        hotkey.stop()
        assert time.monotonic() - t0 < 1.0


def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# --- no desktop, bad input ---


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("Ctrl+Alt", "only modifiers"),
        ("Ctrl+Foo", "“Foo” in “Ctrl+Foo” is not a key"),
        ("Hyper+A", "“Hyper” in “Hyper+A” is not a modifier"),
        ("A", "would stop that key typing"),
        ("Ctrl+A, Ctrl+B", "several key presses"),
        ("  ", "No push-to-talk key is set"),
    ],
)
def test_a_bad_sequence_gets_one_clear_message(qapp: Any, text: str, says: str) -> None:
    from ui.global_hotkey import GlobalHotkey

    status = GlobalHotkey().start(text)
    assert not status.active and says in status.message, status
    with pytest.raises(HotkeySequenceError, match=re.escape(says)):
        parse_sequence(text)


def test_sequences_in_qt_portable_text() -> None:
    seq = parse_sequence("meta+shift+v")
    assert (seq.text, seq.keysym, seq.xdg_trigger()) == ("Shift+Meta+V", "v", "SHIFT+LOGO+v")
    assert parse_sequence("Ctrl++").keysym == "plus"
    assert parse_sequence("F9").xdg_trigger() == "F9"
    assert parse_sequence("Ctrl+Alt+Space").xdg_trigger() == "CTRL+ALT+space"


def test_offscreen_qt_is_inactive_with_a_reason(qapp: Any) -> None:
    from ui.global_hotkey import GlobalHotkey

    hotkey = GlobalHotkey(environ={"DISPLAY": ":0"})
    status = hotkey.start("Ctrl+Alt+Space")
    assert qapp.platformName() == "offscreen"
    assert not status.active and "wake word" in status.message and "offscreen" in status.message
    hotkey.stop()


def test_backend_choice() -> None:
    assert choose_backend("xcb", {"DISPLAY": ":1"}, "linux").backend == "x11"
    assert choose_backend("wayland", {"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"}, "linux").backend == "portal"
    assert choose_backend("xcb", {"XDG_SESSION_TYPE": "wayland", "DISPLAY": ":0"}, "linux").backend == "portal"
    assert choose_backend("windows", {}, "win32").backend == "pynput"
    assert choose_backend("cocoa", {}, "darwin").backend == "pynput"
    nothing = choose_backend("xcb", {}, "linux")
    assert nothing.backend == "none" and "DISPLAY" in nothing.reason


# --- Wayland: the XDG portal over a real session bus ---


@needs_x
def test_wayland_without_the_portal_says_so(wayland_child: Child) -> None:
    """A real session bus with nothing on it: no xdg-desktop-portal, so no GlobalShortcuts."""
    assert wayland_child.start("Ctrl+Alt+Space") == {"active": False, "backend": "portal", "message": UNAVAILABLE}


@pytest.fixture
def session_bus() -> Iterator[str]:
    if shutil.which("dbus-daemon") is None:
        pytest.skip("dbus-daemon is not installed (apt-get install dbus-daemon); CI has it")
    with private_session_bus() as bus:
        yield bus.address


@pytest.fixture
def wayland_child(display: str, session_bus: str) -> Iterator[Child]:
    """The app in a Wayland session (by its environment; Qt still draws through the Xvfb)."""
    c = Child(child_env(display, XDG_SESSION_TYPE="wayland", DBUS_SESSION_BUS_ADDRESS=session_bus))
    yield c
    stderr = c.close()
    assert c.proc.returncode == 0, stderr


@needs_x
def test_portal_shortcut_press_and_release(wayland_child: Child, session_bus: str) -> None:
    portal = FakeShortcutsPortal(session_bus)
    try:
        status = wayland_child.start("Ctrl+Alt+Space")
        assert status == {
            "active": True,
            "backend": "portal",
            "message": "The desktop bound push-to-talk to Ctrl+Alt+Space",
        }
        bind = next(body for name, body in portal.calls if name.endswith("BindShortcuts"))
        assert bind[1][0][0] == "push-to-talk" and bind[1][0][1]["preferred_trigger"] == ("s", "CTRL+ALT+space")

        portal.activate("some-other-shortcut")
        assert wayland_child.quiet(0.3) == []
        portal.activate("push-to-talk")
        assert wayland_child.expect("event") == {"event": "pressed", "gui_thread": True}
        portal.activate("push-to-talk", down=False)
        assert wayland_child.expect("event") == {"event": "released", "gui_thread": True}

        wayland_child.send("stop")
        stop_ms = wayland_child.expect("stopped")["stop_ms"]
        assert portal.closed == portal.sessions[-1:]
        print(f"\nportal: start {wayland_child.start_ms[0]:.1f} ms, stop {stop_ms:.1f} ms on the GUI thread")
        portal.activate("push-to-talk")
        assert wayland_child.quiet(0.3) == []
    finally:
        portal.close()


@needs_x
def test_portal_dialog_cancelled_says_so(wayland_child: Child, session_bus: str) -> None:
    portal = FakeShortcutsPortal(session_bus, bind_code=1)
    try:
        status = wayland_child.start("Ctrl+Alt+Space")
        assert not status["active"] and "cancelled" in status["message"] and "Settings" in status["message"]
    finally:
        portal.close()


@needs_x
def test_portal_answer_after_the_user_thinks_arrives_as_a_status_change(wayland_child: Child, session_bus: str) -> None:
    portal = FakeShortcutsPortal(session_bus, bind_delay_s=2.0)
    try:
        t0 = time.monotonic()
        status = wayland_child.start("Meta+F9")
        assert time.monotonic() - t0 < 1.8, "start must not block the GUI thread on the user's dialog"
        assert status == {
            "active": False,
            "backend": "portal",
            "message": "Confirm Meta+F9 in the desktop's shortcut dialog",
        }
        late = wayland_child.expect("late_status", timeout=5)["late_status"]
        assert late["active"] and late["backend"] == "portal"
        portal.activate("push-to-talk")
        assert wayland_child.expect("event")["event"] == "pressed"
    finally:
        portal.close()
