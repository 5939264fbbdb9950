"""A real Qt app (xcb under the test's Xvfb) holding a GlobalHotkey; the test drives it over stdin.

Commands, one per line: `start <sequence>`, `stop`, `quit`. Output, one JSON object per line:
{"status": {...}, "start_ms": …} after start, {"event": "pressed"|"released", "gui_thread": bool}, {"stopped": true}."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import asdict
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QApplication

from ui.global_hotkey import GlobalHotkey


def say(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


class Commands(QObject):
    line = Signal(str)


def main() -> None:
    # A broken install, on demand: these packages fail to import as if missing.
    for name in filter(None, os.environ.get("HOTKEY_CHILD_WITHOUT", "").split(",")):
        sys.modules[name] = None  # type: ignore[assignment]
    app = QApplication(sys.argv)
    hotkey = GlobalHotkey()
    gui = threading.current_thread()

    def event(name: str) -> None:
        say({"event": name, "gui_thread": threading.current_thread() is gui})

    hotkey.pressed.connect(lambda: event("pressed"))
    hotkey.released.connect(lambda: event("released"))
    hotkey.status_changed.connect(lambda s: say({"late_status": asdict(s)}))

    def run(line: str) -> None:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "start":
            t0 = time.perf_counter()
            status = hotkey.start(arg)
            took = time.perf_counter() - t0
            say({"status": asdict(status), "start_ms": round(took * 1000, 1), "platform": app.platformName()})
        elif cmd == "stop":
            t0 = time.perf_counter()
            hotkey.stop()
            say({"stopped": True, "stop_ms": round((time.perf_counter() - t0) * 1000, 1)})
        elif cmd == "quit":
            hotkey.stop()
            app.quit()

    commands = Commands()
    commands.line.connect(run, Qt.ConnectionType.QueuedConnection)

    def read() -> None:
        for line in sys.stdin:
            commands.line.emit(line)
        commands.line.emit("quit")

    threading.Thread(target=read, daemon=True).start()
    say({"ready": True})
    app.exec()


if __name__ == "__main__":
    main()
