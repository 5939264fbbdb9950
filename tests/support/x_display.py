"""A real X server (Xvfb) on a free display, and a real system-tray host (trayer) on it.

Xvfb picks the display itself (-displayfd), so parallel CI jobs never collide.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def xvfb(screen: str = "800x600x24", timeout: float = 10.0) -> Iterator[str]:
    """Yields the display name (":N")."""
    exe = shutil.which("Xvfb")
    assert exe, "Xvfb is missing — apt install xvfb"
    r, w = os.pipe()
    proc = subprocess.Popen(
        [exe, "-displayfd", str(w), "-screen", "0", screen, "-nolisten", "tcp"],
        pass_fds=(w,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(w)
    try:
        number = b""
        end = time.monotonic() + timeout
        while not number.endswith(b"\n"):
            left = end - time.monotonic()
            if left <= 0 or not select.select([r], [], [], left)[0]:
                raise RuntimeError("Xvfb did not report its display in time")
            chunk = os.read(r, 16)
            if not chunk:
                raise RuntimeError(f"Xvfb exited ({proc.poll()}) before reporting its display")
            number += chunk
        yield f":{int(number)}"
    finally:
        os.close(r)
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def tray_host(display: str) -> Iterator[subprocess.Popen[bytes]]:
    """trayer, a small panel that owns _NET_SYSTEM_TRAY_S0 (the XEmbed tray), docked top right."""
    exe = shutil.which("trayer")
    assert exe, "trayer is missing — apt install trayer (the tray host for the real-tray test)"
    args = ["--edge", "top", "--align", "right", "--widthtype", "request", "--height", "24"]
    args += ["--transparent", "false", "--tint", "0x303030", "--SetDockType", "true"]
    proc = subprocess.Popen(
        [exe, *args],
        env={**os.environ, "DISPLAY": display},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
