"""X11 push-to-talk: a passive XGrabKey on the root window, read by a listener thread.

The grab is made for every combination of the lock modifiers (CapsLock, NumLock, ScrollLock),
because X matches the modifier state exactly and NumLock is on for most users. XKB's detectable
auto-repeat makes a held key send presses without the fake releases between them; where the server
lacks it, a release followed by a press with the same timestamp is an auto-repeat and is dropped."""

from __future__ import annotations

import os
import select
import threading
from collections import deque
from collections.abc import Callable, Iterable
from itertools import combinations
from typing import Any

from ui.hotkey_sequence import HotkeySequence
from ui.hotkey_status import HotkeyStatus

BACKEND = "x11"
# How long a release waits for the same-timestamp press that would make it an auto-repeat.
_REPEAT_WINDOW_S = 0.03


def conflict_message(seq: HotkeySequence) -> str:
    return f"{seq.text} is already used by another application — choose another key in Settings → Activation"


class X11Hotkey:
    """One grab on one display connection; `start` grabs on the caller's thread, a thread then reads events."""

    def __init__(
        self, on_event: Callable[[bool], None], display_name: str | None = None, *, xkb_auto_repeat: bool = True
    ) -> None:
        self._on_event = on_event
        self._display_name = display_name
        self._xkb_auto_repeat = xkb_auto_repeat  # False: only the timestamp de-bouncing (servers without XKB)
        self._display: Any = None
        self._grabs: list[tuple[int, int]] = []
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = -1, -1
        self._held = False
        self._keycodes: set[int] = set()
        self.detectable_repeat = False

    def start(self, seq: HotkeySequence) -> HotkeyStatus:
        from Xlib import XK, X, error
        from Xlib.display import Display

        try:
            display = Display(self._display_name)
        except (error.DisplayError, error.ConnectionClosedError, OSError) as exc:
            name = self._display_name or os.environ.get("DISPLAY", "")
            return HotkeyStatus(
                False, BACKEND, f"The global hotkey cannot reach the X display {name} ({exc}); use the window's button"
            )
        keys = _keycodes_for(display, XK.string_to_keysym(seq.keysym))
        if not keys:
            display.close()
            return HotkeyStatus(
                False,
                BACKEND,
                f"This keyboard layout has no {seq.key} key: choose another key in Settings → Activation",
            )
        base = _modifier_mask(display, seq.modifiers)
        root = display.screen().root
        catcher = error.CatchError(error.BadAccess)
        for keycode, shift in keys.items():
            for locks in _lock_combinations(display):
                mods = base | shift | locks
                root.grab_key(keycode, mods, False, X.GrabModeAsync, X.GrabModeAsync, onerror=catcher)
                self._grabs.append((keycode, mods))
        display.sync()
        self._display = display
        if catcher.get_error() is not None:
            self._release()
            return HotkeyStatus(False, BACKEND, conflict_message(seq))
        self.detectable_repeat = self._xkb_auto_repeat and _set_detectable_auto_repeat(display)
        self._keycodes = set(keys)
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._listen, name="voxdesk-hotkey-x11", daemon=True)
        self._thread.start()
        return HotkeyStatus(True, BACKEND)

    def stop(self) -> None:
        """Idempotent; ungrabs and closes the connection on the listener thread, then joins it."""
        thread, self._thread = self._thread, None
        if thread is not None:
            os.write(self._wake_w, b"x")
            thread.join(timeout=5)
            for fd in (self._wake_r, self._wake_w):
                os.close(fd)
            self._wake_r = self._wake_w = -1
        elif self._display is not None:
            self._release()

    def _release(self) -> None:
        display, self._display = self._display, None
        if display is None:
            return
        try:
            root = display.screen().root
            for keycode, mods in self._grabs:
                root.ungrab_key(keycode, mods)
            display.sync()
        except Exception:  # the server went away: its grabs went with it
            pass
        finally:
            self._grabs = []
            try:
                display.close()
            except Exception:  # already closed by the server
                pass
        if self._held:  # never leave a turn open when the grab goes
            self._held = False
            self._on_event(False)

    def _listen(self) -> None:
        from Xlib import error

        display = self._display
        fd = display.fileno()
        queued: deque[Any] = deque()
        try:
            while True:
                if not queued and not display.pending_events():
                    ready, _, _ = select.select([fd, self._wake_r], [], [])
                    if self._wake_r in ready:
                        return
                _drain(display, queued)
                while queued:
                    self._handle(queued.popleft(), queued, display, fd)
        except (error.ConnectionClosedError, OSError):  # the X server went away: nothing left to listen to
            return
        finally:
            self._release()

    def _handle(self, event: Any, queued: deque[Any], display: Any, fd: int) -> None:
        from Xlib import X

        if event.type not in (X.KeyPress, X.KeyRelease) or event.detail not in self._keycodes:
            return
        if event.type == X.KeyPress:
            if not self._held:  # with detectable auto-repeat, a held key keeps sending presses
                self._held = True
                self._on_event(True)
            return
        if not self.detectable_repeat and _is_auto_repeat(event, queued, display, fd):
            queued.popleft()  # the repeat's press
            return
        if self._held:
            self._held = False
            self._on_event(False)


def _drain(display: Any, queued: deque[Any]) -> None:
    while display.pending_events():
        queued.append(display.next_event())


def _is_auto_repeat(release: Any, queued: deque[Any], display: Any, fd: int) -> bool:
    from Xlib import X

    if not queued:
        ready, _, _ = select.select([fd], [], [], _REPEAT_WINDOW_S)
        if ready:
            _drain(display, queued)
    if not queued:
        return False
    nxt = queued[0]
    return bool(nxt.type == X.KeyPress and nxt.detail == release.detail and nxt.time == release.time)


def _keycodes_for(display: Any, keysym: int) -> dict[int, int]:
    """keycode → the Shift it needs: a keysym only on a shifted level ("plus" on a US layout) needs Shift too."""
    from Xlib import X

    levels: dict[int, set[int]] = {}
    for code, index in display.keysym_to_keycodes(keysym):
        levels.setdefault(code, set()).add(index % 2)
    return {code: 0 if 0 in lv else X.ShiftMask for code, lv in levels.items()}


def _modifier_mask(display: Any, modifiers: Iterable[str]) -> int:
    from Xlib import X

    masks = {"Ctrl": X.ControlMask, "Shift": X.ShiftMask}
    alt = _mask_holding(display, ("Alt_L", "Alt_R")) or X.Mod1Mask
    meta = _mask_holding(display, ("Super_L", "Super_R")) or X.Mod4Mask
    masks |= {"Alt": alt, "Meta": meta}
    mask = 0
    for m in modifiers:
        mask |= masks[m]
    return mask


def _lock_combinations(display: Any) -> list[int]:
    from Xlib import X

    locks = [X.LockMask]
    locks += [m for m in (_mask_holding(display, ("Num_Lock",)), _mask_holding(display, ("Scroll_Lock",))) if m]
    return sorted({sum(c) for n in range(len(locks) + 1) for c in combinations(locks, n)})


def _mask_holding(display: Any, keysym_names: tuple[str, ...]) -> int:
    """The ModN mask the server maps one of these keys to (NumLock is Mod2 on most layouts, but not all)."""
    from Xlib import XK

    wanted = {XK.string_to_keysym(n) for n in keysym_names}
    for index, keycodes in enumerate(display.get_modifier_mapping()):
        if index < 3:  # Shift, Lock, Control
            continue
        if any(code and display.keycode_to_keysym(code, 0) in wanted for code in keycodes):
            return 1 << index
    return 0


def _set_detectable_auto_repeat(display: Any) -> bool:
    """XkbSetDetectableAutoRepeat for this client (python-xlib has no XKB module: the two requests by hand)."""
    from ui.hotkey_xkb import set_detectable_auto_repeat

    try:
        return set_detectable_auto_repeat(display)
    except Exception:  # no XKB, or an old server: fall back to timestamp de-bouncing
        return False
