"""Which global-hotkey backend fits this desktop: pure, so it is tested without one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

NO_DESKTOP = (
    "The global hotkey needs a desktop session, and VoxDesk is running without one ({why}); "
    "use the wake word or the window's button"
)


@dataclass(frozen=True)
class BackendChoice:
    backend: str  # "x11", "portal", "pynput" or "none"
    reason: str = ""  # for "none": the sentence to show


def choose_backend(qt_platform: str, environ: Mapping[str, str], sys_platform: str) -> BackendChoice:
    if sys_platform == "win32" or sys_platform == "darwin":
        return BackendChoice("pynput")
    if qt_platform in ("offscreen", "minimal", "vnc", "vkkhrdisplay", "eglfs", "linuxfb"):
        return BackendChoice("none", NO_DESKTOP.format(why=f"Qt platform “{qt_platform}”"))
    # A Wayland session first: X grabs made through XWayland only see keys while an X window has focus.
    if environ.get("XDG_SESSION_TYPE") == "wayland" or environ.get("WAYLAND_DISPLAY"):
        return BackendChoice("portal")
    if environ.get("DISPLAY"):
        return BackendChoice("x11")
    return BackendChoice("none", NO_DESKTOP.format(why="neither DISPLAY nor WAYLAND_DISPLAY is set"))
