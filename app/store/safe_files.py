"""Writing user files so that a crash or a bad file never loses what was there."""

from __future__ import annotations

import contextlib
import errno
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


def filesystem_state(folder: Path) -> tuple[bool, bool]:
    """(read-only, full) for the filesystem that holds `folder` or its nearest existing parent."""
    p = folder
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        st = os.statvfs(p)
    except (OSError, AttributeError):  # no statvfs on Windows
        return False, False
    return bool(st.f_flag & getattr(os, "ST_RDONLY", 1)), st.f_bavail == 0


def storage_problem(exc: BaseException | None, folder: Path) -> tuple[str, str]:
    """(what is wrong, what the user can do) for a failed write in `folder`, in plain words:
    "disk full at /x" / "free some space", "/x is read-only" / "make it writable"."""
    code = getattr(exc, "errno", None)
    read_only, full = filesystem_state(folder)
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return f"disk full at {folder}", "free some space"
    if code == errno.EROFS or read_only:
        return f"{folder} is read-only", "make it writable"
    if code in (errno.EACCES, errno.EPERM):
        return f"no permission to write in {folder}", "make it writable"
    if full:
        return f"disk full at {folder}", "free some space"
    why = (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__) if exc is not None else "unknown error"
    return f"{why}: {folder}", f"check that {folder} is a folder VoxDesk can write to"
