"""`voxdesk history list|export`: past conversations from the command line.

Transcripts come from outside (a microphone, a model), so what is printed to the
terminal has its control characters escaped; an export written to a file with
`--output` is kept exactly as stored.
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from app.commands.terminal_text import escape_control
from app.plugin.errors import ErrorCode, VoiceError
from app.store.history import History
from app.store.paths import AppPaths
from app.store.safe_files import atomic_write_text

# What json.dumps leaves raw but a terminal acts on: DEL, C1 controls, bidi overrides.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def json_for_terminal(text: str) -> str:
    """JSON text with the control characters json.dumps keeps raw as \\u escapes (still lossless)."""
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


@dataclass(frozen=True)
class HistoryRequest:
    """`voxdesk history ACTION [IDS] [--format F] [--output FILE]`."""

    action: str
    ids: list[str] = field(default_factory=list)
    fmt: str = "markdown"
    output: str | None = None


def history_command(request: HistoryRequest, paths: AppPaths, out: TextIO, err: TextIO | None = None) -> int:
    action, ids, fmt, output = request.action, request.ids, request.fmt, request.output
    err = err if err is not None else sys.stderr
    history = History(paths.history_db)
    try:
        if not history.readable:
            if not paths.history_db.exists() and action == "list":
                out.write("No conversations yet.\n")
                return 0
            raise VoiceError(
                "history",
                ErrorCode.UNAVAILABLE,
                f"cannot read the conversation history ({history.outage or 'it is closed'})",
            )
        for note in history.startup_notes:  # a damaged file kept aside, a newer schema, unsaved turns added
            err.write(f"voxdesk: {note}\n")
        if action == "list":
            convs = history.list_conversations()
            if not convs:
                out.write("No conversations yet.\n")
            for c in convs:
                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(c.updated_at))
                title = escape_control(c.title or "Untitled", keep_newlines=False)
                out.write(f"{c.id:>5}  {when}  {c.turn_count:>3} turns  {title}\n")
            return 0
        if len(ids) != 1 or not ids[0].isdigit():
            raise VoiceError(
                "history.export",
                ErrorCode.INVALID_CONFIG,
                "give one conversation number, as listed by `voxdesk history list`",
            )
        text = history.export(int(ids[0]), "json" if fmt == "json" else "markdown")
        if output:
            try:
                atomic_write_text(Path(output), text + "\n")
            except OSError as exc:
                raise VoiceError(
                    "history.export",
                    ErrorCode.UNAVAILABLE,
                    f"cannot write {output} ({exc.strerror or exc}) — pick another file",
                ) from exc
        elif fmt == "json":
            out.write(json_for_terminal(text) + "\n")
        else:
            out.write(escape_control(text) + "\n")
        return 0
    finally:
        history.close()
