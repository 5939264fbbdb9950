"""Writing user files so that a crash or a bad file never loses what was there."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path


def atomic_write_text(path: Path, text: str) -> None:
    """Temp file in the same dir, fsync, rename: a crash leaves old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # persist the rename itself (POSIX)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _free_name(path: Path, tag: str) -> Path:
    """`<name>.<tag>.<time>`, numbered so an older one is never overwritten."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest = path.with_name(f"{path.name}.{tag}.{stamp}")
    n = 1
    while dest.exists():
        dest = path.with_name(f"{path.name}.{tag}.{stamp}-{n}")
        n += 1
    return dest


def keep_copy(path: Path, tag: str = "backup") -> Path:
    """Copy a file we are about to rewrite lossily, so the user still has the original."""
    dest = _free_name(path, tag)
    shutil.copy2(path, dest)
    return dest


def move_aside(path: Path, companions: tuple[str, ...] = ()) -> Path:
    """Rename an unreadable file to `<name>.corrupt.<time>` (never overwrite an older one)
    so the user keeps it; `companions` are suffixed siblings that go with it (e.g. -wal)."""
    dest = _free_name(path, "corrupt")
    os.replace(path, dest)
    for suffix in companions:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            os.replace(companion, dest.with_name(dest.name + suffix))
    return dest
