"""A private Xvfb on a display number the server picks itself (-displayfd), so parallel tests never collide."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Xvfb:
    display: str  # ":N"
    proc: subprocess.Popen[bytes]

    def kill(self) -> None:
        """The X server going away under its clients (a crash, a logout)."""
        self.proc.kill()
        self.proc.wait()


@contextmanager
def xvfb(timeout_s: float = 15.0, screen: str = "1280x800x24") -> Iterator[Xvfb]:
    """A fresh Xvfb; it is stopped on exit."""
    exe = shutil.which("Xvfb")
    if exe is None:
        raise FileNotFoundError("Xvfb is not installed (apt-get install xvfb)")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        [exe, "-displayfd", str(write_fd), "-screen", "0", screen, "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], timeout_s)
        number = os.read(read_fd, 64).decode().strip() if ready else ""
        if not number:
            raise RuntimeError("Xvfb did not report its display number")
        yield Xvfb(f":{number}", proc)
    finally:
        os.close(read_fd)
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
