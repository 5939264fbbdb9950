"""First-run download dialog against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from app.store import models
from ui.first_run import FirstRunDialog, ProgressFn


@pytest.fixture
def model_server(tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    served = tmp_path / "served"
    served.mkdir()
    payload = os.urandom(3_000_000)
    (served / "voice.onnx").write_bytes(payload)

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, directory=str(served), **kw)

        def log_message(self, *_a: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/voice.onnx", payload
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_download_shows_progress_and_lands_the_file(qtbot: Any, run: Any, model_server: Any, tmp_path: Path) -> None:
    url, payload = model_server
    dest = tmp_path / "models" / "voice.onnx"

    def fetch(progress: ProgressFn, cancel: threading.Event) -> Path:
        return models.download(url, dest, hashlib.sha256(payload).hexdigest(), progress=progress, cancel=cancel).path

    dialog = FirstRunDialog("The voice model is not installed", "Download it now?", fetch)
    qtbot.addWidget(dialog)
    dialog.show()
    values: list[int] = []
    dialog.bar.valueChanged.connect(values.append)
    qtbot.mouseClick(dialog.download_button, Qt.MouseButton.LeftButton)
    assert dialog.bar.isVisible() and not dialog.download_button.isEnabled()
    assert dialog._task is not None
    run(dialog._task, timeout=60)
    qtbot.waitUntil(lambda: dialog.result_path is not None)
    assert dest.read_bytes() == payload
    assert dialog.updates > 1 and len(set(values)) > 2, "the bar moved in steps"
    assert dialog.bar.value() == dialog.bar.maximum()
    assert dialog.result() == dialog.DialogCode.Accepted


def test_pick_another_provider_closes_without_downloading(qtbot: Any, qloop: Any, tmp_path: Path) -> None:
    called: list[bool] = []

    def fetch(progress: ProgressFn, cancel: threading.Event) -> Path:
        called.append(True)
        return tmp_path

    dialog = FirstRunDialog("Model missing", "", fetch)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.mouseClick(dialog.other, Qt.MouseButton.LeftButton)
    assert dialog.result() == 2 and called == []
