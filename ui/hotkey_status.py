"""What a global hotkey backend reports after `start`: pure data, no Qt."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HotkeyStatus:
    """`message` is the one sentence Settings shows when the hotkey is not active."""

    active: bool
    backend: str
    message: str = ""
