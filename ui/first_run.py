"""A model is missing: offer to download it (with progress) or pick another in Settings.

The download itself runs in a worker thread (it is blocking network and disk
I/O); progress arrives from that thread and is handed to the GUI thread through a
queued Qt signal, so the bar moves without the window ever waiting on the network.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QLayout,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.engine.plain_words import download_failure
from app.plugin.errors import ErrorCode, VoiceError

ProgressFn = Callable[[int, int | None], None]
#: Blocking: fetch with progress(done, total) until done or `cancel` is set; returns where it went.
FetchFn = Callable[[ProgressFn, threading.Event], Path]

log = logging.getLogger(__name__)

PICK_ANOTHER = 2  # dialog result: the user wants another provider instead


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / 1_000_000:.1f} MB" if n >= 100_000 else f"{n / 1000:.0f} kB"


class FirstRunDialog(QDialog):
    """Download with a progress bar and Cancel, or choose another provider."""

    _progress = Signal(int, object)  # done, total — emitted from the worker thread

    def __init__(self, title: str, detail: str, fetch: FetchFn, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("VoxDesk — model needed")
        self.setAccessibleName("Model download")
        self.setMinimumWidth(460)
        self.setMaximumWidth(640)  # long text wraps instead of widening the dialog off screen
        self._fetch = fetch
        self._cancel = threading.Event()
        self.result_path: Path | None = None
        self.error: str | None = None
        self.updates = 0

        lay = QVBoxLayout(self)
        # The dialog grows to fit its (word-wrapped) text: a failure message never overflows.
        lay.setSizeConstraint(QLayout.SizeConstraint.SetMinimumSize)
        self.heading = QLabel(title)
        self.heading.setWordWrap(True)
        self.heading.setTextFormat(Qt.TextFormat.PlainText)
        self.heading.setStyleSheet("font-weight: bold;")
        lay.addWidget(self.heading)
        self.detail = QLabel(detail)
        self.detail.setWordWrap(True)
        self.detail.setTextFormat(Qt.TextFormat.PlainText)
        lay.addWidget(self.detail)
        self.bar = QProgressBar()
        self.bar.setAccessibleName("Download progress")
        self.bar.setRange(0, 100)
        self.bar.setValue(0)
        self.bar.hide()
        lay.addWidget(self.bar)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setAccessibleName("Download status")
        lay.addWidget(self.status)

        row = QHBoxLayout()
        self.other = QPushButton("Choose another in Settings…")
        self.other.setAccessibleName("Choose another in Settings instead of downloading")
        self.other.clicked.connect(lambda: self.done(PICK_ANOTHER))
        row.addWidget(self.other)
        row.addStretch(1)
        self.cancel_button = QPushButton("Not now")
        self.cancel_button.clicked.connect(self._on_cancel)
        row.addWidget(self.cancel_button)
        self.download_button = QPushButton("Download")
        self.download_button.setDefault(True)
        self.download_button.setAccessibleName("Download the model")
        self.download_button.clicked.connect(self.start_download)
        row.addWidget(self.download_button)
        lay.addLayout(row)

        self._progress.connect(self._on_progress, Qt.ConnectionType.QueuedConnection)
        self._task: asyncio.Future[Path] | None = None

    # -- progress (GUI thread) --------------------------------------------------
    def _on_progress(self, done: int, total: Any) -> None:
        self.updates += 1
        if total:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * min(done, total) / total))
            self.status.setText(f"{_size(done)} of {_size(total)}")
        else:
            self.bar.setRange(0, 0)  # busy indicator when the size is unknown
            self.status.setText(f"{_size(done)} downloaded")

    def _report(self, done: int, total: int | None) -> None:
        """Called from the worker thread; throttled to whole per-mille steps."""
        self._progress.emit(done, total)

    # -- actions ----------------------------------------------------------------
    def start_download(self) -> asyncio.Future[Path]:
        if self._task is not None and not self._task.done():
            return self._task
        self._cancel.clear()
        self.error = None
        self.bar.show()
        self.bar.setValue(0)
        self.status.setText("Starting download…")
        self.download_button.setEnabled(False)
        self.other.setEnabled(False)
        self.cancel_button.setText("Cancel")
        loop = asyncio.get_event_loop()
        fut: asyncio.Future[Path] = loop.run_in_executor(None, self._fetch, self._report, self._cancel)
        self._task = fut
        fut.add_done_callback(self._finished)
        return fut

    def _finished(self, fut: asyncio.Future[Path]) -> None:
        self.download_button.setEnabled(True)
        self.other.setEnabled(True)
        self.cancel_button.setText("Not now")
        if fut.cancelled():
            self.error = "cancelled"
        elif (exc := fut.exception()) is not None:
            if isinstance(exc, VoiceError) and exc.code == ErrorCode.CANCELLED:
                self.error = "cancelled"
                self.status.setText("Download cancelled. What was fetched is kept, so Retry carries on from there.")
            else:
                self.error = exc.message if isinstance(exc, VoiceError) else str(exc)
                log.warning("model download failed: %s", exc)  # the engine's words (URL, path) go to the log
                self.status.setText(download_failure(exc))
            self.download_button.setText("Retry")
            self._fit()
            return
        else:
            self.result_path = fut.result()
            self.bar.setRange(0, 1000)
            self.bar.setValue(1000)
            self.status.setText("Downloaded and checked.")
            self.accept()

    def _fit(self) -> None:
        """Grow to the text now shown (a layout only enlarges a dialog when asked)."""
        self.adjustSize()

    def _on_cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._cancel.set()
        else:
            self.reject()

    def reject(self) -> None:
        self._cancel.set()
        super().reject()

    def abort(self) -> asyncio.Future[Path] | None:
        """Quitting: stop the download and close; returns the download to wait for, if any.

        The worker thread must end before the loop closes (closing waits for it), and the
        dialog may be gone by the time it does, so it no longer reports back here.
        """
        self._cancel.set()
        task = self._task
        if task is not None and not task.done():
            task.remove_done_callback(self._finished)
        else:
            task = None
        if self.isVisible():
            super().reject()
        return task


def model_fetcher(model_id: str, paths: Any) -> FetchFn:
    """A `FetchFn` for a catalogue model (`voxdesk models fetch` does the same)."""

    def fetch(progress: ProgressFn, cancel: threading.Event) -> Path:
        from app.store import models

        return models.fetch_model(model_id, paths=paths, progress=progress, cancel=cancel).path

    return fetch
