"""A private D-Bus session daemon for tests: a real `dbus-daemon`, no service files.

No `<servicedir>`, so nothing installed on the machine (a desktop's notification daemon)
can be auto-started into the test; only what the test runs owns names on it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


@dataclass
class SessionBus:
    address: str
    process: subprocess.Popen[bytes]
    socket: Path

    def stop(self) -> None:
        """End the daemon: clients see their connection drop and new connections fail."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=5)
        self.socket.unlink(missing_ok=True)


@contextmanager
def private_session_bus() -> Iterator[SessionBus]:
    daemon = shutil.which("dbus-daemon")
    assert daemon, "dbus-daemon is missing — apt install dbus-daemon (Debian 12: package dbus-daemon or dbus)"
    # A short directory of its own: a unix socket path must stay under 108 bytes.
    folder = Path(tempfile.mkdtemp(prefix="vdbus-"))
    socket = folder / "bus"
    config = folder / "bus.conf"
    config.write_text(CONFIG.format(socket=socket), encoding="utf-8")
    proc = subprocess.Popen(
        [daemon, f"--config-file={config}", "--nofork", "--nopidfile", "--print-address=1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    address = proc.stdout.readline().decode().strip()
    if not address:
        err = proc.stderr.read().decode() if proc.stderr else ""
        proc.kill()
        raise RuntimeError(f"dbus-daemon did not start: {err}")
    bus = SessionBus(address, proc, socket)
    try:
        yield bus
    finally:
        bus.stop()
        shutil.rmtree(folder, ignore_errors=True)
