"""The window without an engine: Space on buttons and lists, and quitting mid-download."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from app.store import models
from app.store.paths import resolve_paths
from app.store.settings import Settings, SettingsStore
from tests.ui.conftest import close_window, wait_until
from ui.first_run import FirstRunDialog, ProgressFn
from ui.main_window import MainWindow

SLOW_TOTAL = 64 * 1024 * 400  # ~26 MB at ~3 MB/s: still downloading when the test quits


@pytest.fixture
def slow_server() -> Iterator[str]:
    """Serves a big file slowly, so a download is surely in progress."""

    class Slow(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(SLOW_TOTAL))
            self.end_headers()
            block = b"\0" * 65536
            try:
                for _ in range(SLOW_TOTAL // len(block)):
                    self.wfile.write(block)
                    time.sleep(0.02)
            except OSError:
                pass  # the client went away (cancelled)

        def log_message(self, *_a: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/big.onnx"
    server.shutdown()
    server.server_close()
    thread.join(5)


def _window(qtbot: Any) -> MainWindow:
    paths = resolve_paths().ensure()
    window = MainWindow(paths, Settings(), SettingsStore(paths.config_dir))
    qtbot.addWidget(window)
    window.show()
    window.activateWindow()
    return window


_close = close_window


def test_space_on_a_focused_button_presses_it_instead_of_talking(qtbot: Any, run: Any) -> None:
    window = _window(qtbot)
    talked: list[bool] = []
    window.controls.talk.connect(talked.append)
    mute = window.controls.mute
    mute.setFocus()
    qtbot.keyClick(mute, Qt.Key.Key_Space)
    assert mute.isChecked(), "Space toggled Mute"
    assert talked == [] and not window.controls.talk_button.active
    qtbot.keyClick(mute, Qt.Key.Key_Space)  # unmute: while muted, Talk is disabled
    assert not mute.isChecked() and window.controls.talk_button.isEnabled()
    table = window.health.table  # a list/table keeps Space for selection
    table.setFocus()
    qtbot.keyPress(table, Qt.Key.Key_Space)
    assert talked == []
    qtbot.keyRelease(table, Qt.Key.Key_Space)
    talk = window.controls.talk_button  # the talk button itself still talks
    talk.setFocus()
    qtbot.keyPress(talk, Qt.Key.Key_Space)
    assert talk.active
    qtbot.keyRelease(talk, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: talked == [True, False], timeout=1000)  # after the auto-repeat gap
    _close(window, run)


def test_quit_during_a_model_download_cancels_it_and_closes_within_2s(
    qtbot: Any, run: Any, slow_server: str, tmp_path: Path
) -> None:
    window = _window(qtbot)
    fetch_ended = threading.Event()

    def fetch(progress: ProgressFn, cancel: threading.Event) -> Path:
        try:
            return models.download(slow_server, tmp_path / "big.onnx", progress=progress, cancel=cancel).path
        finally:
            fetch_ended.set()

    dialog = FirstRunDialog("The voice model is not installed", "Download it now?", fetch, window)
    dialog.open()
    dialog.start_download()
    run(wait_until(lambda: dialog.updates > 2, 10, "bytes to arrive"))
    took = _close(window, run)
    assert took < 2.0, f"quit took {took:.2f}s"
    assert fetch_ended.is_set(), "the download thread was still running after quit"
    assert not dialog.isVisible()
    assert not (tmp_path / "big.onnx").exists()
