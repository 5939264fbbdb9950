"""Windows/macOS push-to-talk with pynput's keyboard listener (not testable on Linux CI: kept small).

pynput's HotKey only reports activation, so the listener tracks the held modifiers itself to report
the release too. On macOS, Qt's portable "Ctrl" is the Command key and "Meta" the Control key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ui.hotkey_sequence import HotkeySequence
from ui.hotkey_status import HotkeyStatus

BACKEND = "pynput"
MACOS_PERMISSION = (
    "macOS does not let VoxDesk see the keyboard yet: allow it in System Settings → Privacy & Security → "
    "Accessibility and Input Monitoring, then restart VoxDesk"
)


class PynputHotkey:
    def __init__(self, on_event: Callable[[bool], None], sys_platform: str) -> None:
        self._on_event = on_event
        self._platform = sys_platform
        self._listener: Any = None
        self._held: set[Any] = set()
        self._down = False

    def start(self, seq: HotkeySequence) -> HotkeyStatus:
        try:
            from pynput import keyboard
        except ModuleNotFoundError:
            return HotkeyStatus(False, BACKEND, "The global hotkey needs the pynput package: reinstall VoxDesk")
        except ImportError as exc:  # pynput found no keyboard backend on this system
            return HotkeyStatus(False, BACKEND, f"The global hotkey cannot watch this keyboard: {exc}")
        listener: Any = None

        def on_press(key: Any) -> None:
            key = listener.canonical(key)
            self._held.add(key)
            if key == main and mods <= self._held and not self._down:
                self._down = True
                self._on_event(True)

        def on_release(key: Any) -> None:
            key = listener.canonical(key)
            self._held.discard(key)
            if key == main and self._down:
                self._down = False
                self._on_event(False)

        listener = keyboard.Listener(on_press=on_press, on_release=on_release)
        # Compared in pynput's canonical form (left/right modifiers as one, special keys by key code).
        mods = {listener.canonical(k) for k in _modifier_keys(keyboard, seq.modifiers, self._platform)}
        main = listener.canonical(_main_key(keyboard, seq))
        listener.start()
        listener.wait()
        self._listener = listener
        if self._platform == "darwin" and not getattr(listener, "IS_TRUSTED", True):
            self.stop()
            return HotkeyStatus(False, BACKEND, MACOS_PERMISSION)
        return HotkeyStatus(True, BACKEND)

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
            listener.join(timeout=1)  # a daemon thread: one slow to end (Xorg's waits for an event) is left
        self._held.clear()
        if self._down:
            self._down = False
            self._on_event(False)


def _modifier_keys(keyboard: Any, modifiers: frozenset[str], sys_platform: str) -> set[Any]:
    key = keyboard.Key
    names = {"Ctrl": key.ctrl, "Alt": key.alt, "Shift": key.shift, "Meta": key.cmd}
    if sys_platform == "darwin":
        names |= {"Ctrl": key.cmd, "Meta": key.ctrl}
    return {names[m] for m in modifiers}


def _main_key(keyboard: Any, seq: HotkeySequence) -> Any:
    special = {"space": "space", "Escape": "esc", "Tab": "tab", "BackSpace": "backspace", "Return": "enter"}
    special |= {"KP_Enter": "enter", "Insert": "insert", "Delete": "delete", "Pause": "pause"}
    special |= {"Print": "print_screen", "Home": "home", "End": "end", "Left": "left", "Up": "up"}
    special |= {"Right": "right", "Down": "down", "Prior": "page_up", "Next": "page_down", "Menu": "menu"}
    special |= {"Scroll_Lock": "scroll_lock"}
    name = special.get(seq.keysym) or (seq.keysym.lower() if seq.keysym.startswith("F") else None)
    if name is not None and hasattr(keyboard.Key, name):
        return getattr(keyboard.Key, name)
    char = seq.key.lower() if len(seq.key) == 1 else seq.key
    return keyboard.KeyCode.from_char(char)
