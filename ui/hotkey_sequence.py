"""Parse a key sequence in Qt's portable text form ("Ctrl+Alt+Space", "Meta+Shift+V", "F9") into the
key and modifiers each global-hotkey backend needs. Pure Python, so every backend and test can use it."""

from __future__ import annotations

import string
from dataclasses import dataclass

MODIFIERS = ("Ctrl", "Alt", "Shift", "Meta")  # Qt's portable order

# Qt portable name → X11 keysym name (also the xkb name the XDG shortcuts format uses).
_NAMED_KEYS = {
    "Space": "space",
    "Esc": "Escape",
    "Tab": "Tab",
    "Backspace": "BackSpace",
    "Return": "Return",
    "Enter": "KP_Enter",
    "Ins": "Insert",
    "Del": "Delete",
    "Pause": "Pause",
    "Print": "Print",
    "Home": "Home",
    "End": "End",
    "Left": "Left",
    "Up": "Up",
    "Right": "Right",
    "Down": "Down",
    "PgUp": "Prior",
    "PgDown": "Next",
    "Menu": "Menu",
    "ScrollLock": "Scroll_Lock",
}
_PUNCTUATION = {
    ",": "comma",
    ".": "period",
    "/": "slash",
    ";": "semicolon",
    "'": "apostrophe",
    "[": "bracketleft",
    "]": "bracketright",
    "\\": "backslash",
    "-": "minus",
    "=": "equal",
    "`": "grave",
    "+": "plus",
}
_FUNCTION_KEYS = {f"F{n}": f"F{n}" for n in range(1, 36)}


class HotkeySequenceError(ValueError):
    """A sequence no backend can grab; str() is the sentence to show."""


@dataclass(frozen=True)
class HotkeySequence:
    text: str  # canonical Qt portable text, e.g. "Ctrl+Alt+Space"
    key: str  # Qt portable key name: "Space", "V", "F9", ","
    keysym: str  # X11 keysym name: "space", "v", "F9", "comma"
    modifiers: frozenset[str]  # subset of MODIFIERS

    @property
    def is_printable(self) -> bool:
        """A key that types something: grabbing it without Ctrl/Alt/Meta would break typing everywhere."""
        return len(self.key) == 1 or self.key == "Space"

    def xdg_trigger(self) -> str:
        """The XDG shortcuts-spec form the GlobalShortcuts portal takes as preferred_trigger."""
        names = {"Ctrl": "CTRL", "Alt": "ALT", "Shift": "SHIFT", "Meta": "LOGO"}
        return "+".join([names[m] for m in MODIFIERS if m in self.modifiers] + [self.keysym])


def parse_sequence(text: str) -> HotkeySequence:
    """Raise HotkeySequenceError with one clear sentence for anything that is not one grabbable chord."""
    raw = text.strip()
    if not raw:
        raise HotkeySequenceError(
            "No push-to-talk key is set: choose one in Settings → Activation (e.g. Ctrl+Alt+Space)"
        )
    if "," in raw.replace("+,", "") and raw != ",":
        raise HotkeySequenceError(
            f"“{raw}” is several key presses; push-to-talk needs one chord such as Ctrl+Alt+Space"
        )
    # "Ctrl++" is Ctrl and the plus key: split on "+" but keep a trailing "+" as the key.
    parts = [*raw[:-2].split("+"), "+"] if raw.endswith("++") else raw.split("+")
    if raw == "+":
        parts = ["+"]
    *mods, key = (p.strip() for p in parts)
    modifiers: set[str] = set()
    for m in mods:
        name = _modifier(m)
        if name is None:
            raise HotkeySequenceError(
                f"“{m}” in “{raw}” is not a modifier: use Ctrl, Alt, Shift or Meta before the key"
            )
        modifiers.add(name)
    key_name, keysym = _key(key, raw)
    seq = HotkeySequence(
        text="+".join([m for m in MODIFIERS if m in modifiers] + [key_name]),
        key=key_name,
        keysym=keysym,
        modifiers=frozenset(modifiers),
    )
    if seq.is_printable and not modifiers & {"Ctrl", "Alt", "Meta"}:
        raise HotkeySequenceError(
            f"“{seq.text}” would stop that key typing in every application: "
            f"add Ctrl, Alt or Meta, e.g. Ctrl+Alt+{key_name}"
        )
    return seq


def _modifier(name: str) -> str | None:
    aliases = {"ctrl": "Ctrl", "control": "Ctrl", "alt": "Alt", "shift": "Shift", "meta": "Meta", "super": "Meta"}
    return aliases.get(name.lower())


def _key(name: str, raw: str) -> tuple[str, str]:
    if not name:
        raise HotkeySequenceError(f"“{raw}” has no key after its modifiers: add one, e.g. Ctrl+Alt+Space")
    if _modifier(name) is not None:
        raise HotkeySequenceError(f"“{raw}” is only modifiers: add a key after them, e.g. {raw}+Space")
    if len(name) == 1 and name.upper() in string.ascii_uppercase + string.digits:
        return name.upper(), name.lower()
    if name in _PUNCTUATION:
        return name, _PUNCTUATION[name]
    for table in (_NAMED_KEYS, _FUNCTION_KEYS):
        for qt_name, keysym in table.items():
            if qt_name.lower() == name.lower():
                return qt_name, keysym
    raise HotkeySequenceError(
        f"“{name}” in “{raw}” is not a key VoxDesk can use as a global hotkey: "
        "pick a letter, digit, F1–F35, Space or another named key in Settings → Activation"
    )
