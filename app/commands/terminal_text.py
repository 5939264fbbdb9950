"""Text from outside (transcripts, replies, file contents) made safe for a terminal.

A transcript or a model reply can hold raw escape bytes; printed as they are they can
move the cursor, retitle the terminal or hide earlier output. Control characters are
shown as visible escapes instead, keeping newlines and tabs where the caller wants them.
"""

from __future__ import annotations

import unicodedata

_KEEP = {"\n", "\t"}


def escape_control(text: str, *, keep_newlines: bool = True) -> str:
    """`text` with every control character (C0, DEL, C1, bidi overrides) shown as an escape."""
    out: list[str] = []
    for ch in text:
        if keep_newlines and ch in _KEEP:
            out.append(ch)
            continue
        cat = unicodedata.category(ch)
        if cat == "Cc" or (cat == "Cf" and ch in _BIDI_CONTROLS):
            out.append(_visible(ch))
        else:
            out.append(ch)
    return "".join(out)


# Bidi overrides and isolates reorder what follows them on screen ("Trojan Source").
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


def _visible(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"
