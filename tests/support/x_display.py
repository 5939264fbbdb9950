"""A real system-tray host (trayer) on an X display (tests.support.xserver starts one)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager


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
