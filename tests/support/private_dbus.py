"""A private session bus (a real dbus-daemon) with no service files: nothing on it but what a test puts there."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={dir}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


@contextmanager
def private_session_bus(tmp: Path) -> Iterator[str]:
    """Yield the bus address. No <servicedir>: a real xdg-desktop-portal on the machine is never activated."""
    exe = shutil.which("dbus-daemon")
    if exe is None:
        raise FileNotFoundError("dbus-daemon is not installed (apt-get install dbus-daemon)")
    config = tmp / "session.conf"
    config.write_text(_CONFIG.format(dir=tmp))
    proc = subprocess.Popen(
        [exe, "--nofork", "--print-address=1", f"--config-file={config}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # as root it warns that it cannot raise its fd limit
        text=True,
    )
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline().strip()
        if not address:
            raise RuntimeError("dbus-daemon printed no address")
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=5)
