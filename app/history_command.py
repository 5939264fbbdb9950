"""`voxdesk history list|export`: past conversations from the command line."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TextIO

from app.errors import ErrorCode, VoiceError
from app.history import History
from app.paths import AppPaths
from app.safe_files import atomic_write_text


def history_command(action: str, ids: list[str], fmt: str, output: str | None, paths: AppPaths,
                    out: TextIO) -> int:
    history = History(paths.history_db)
    try:
        if action == "list":
            convs = history.list_conversations()
            if not convs:
                out.write("No conversations yet.\n")
            for c in convs:
                when = time.strftime("%Y-%m-%d %H:%M", time.localtime(c.updated_at))
                out.write(f"{c.id:>5}  {when}  {c.turn_count:>3} turns  {c.title or 'Untitled'}\n")
            return 0
        if len(ids) != 1 or not ids[0].isdigit():
            raise VoiceError("history.export", ErrorCode.INVALID_CONFIG,
                             "give one conversation number, as listed by `voxdesk history list`")
        text = history.export(int(ids[0]), "json" if fmt == "json" else "markdown")
        if output:
            atomic_write_text(Path(output), text + "\n")
        else:
            out.write(text + "\n")
        return 0
    finally:
        history.close()
