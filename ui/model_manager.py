"""Settings → the models and voices on this computer and to download, one stage at a time.

One manager serves every stage that loads model files: the language models (Assistant),
speech recognition (Speech recognition), Piper voices (Voice) and the turn model. Every
model the providers declare for the stage is listed: the ones shipped with VoxDesk
(embedded), downloaded ones, partly downloaded or damaged ones, and the rest of the
catalogue, each with its download size, the memory it needs, its licence and, for a
language model once measured, how fast it talks here ("about N words a second here").
Download (progress, cancel, resume), Check (hashes; a damaged download is deleted and
the user told), Measure speed (language models), Preview (voices: a sample sentence on
the chosen speaker), Delete (never a model shipped with VoxDesk) and Use this model
(sets the provider's model option in the settings being edited; Apply switches to it).
A model the settings name but that is not on this computer is shown as such, with its
Download button and size, before Apply could fail on it.

Files, hashes, downloads, the speed benchmark and the preview run in worker threads;
their news reaches the GUI thread as queued Qt signals, so the dialog never waits on the
disk, the network or the speaker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.audio.playback import open_device_sink
from app.audio.preview import PreviewResult, preview_voice
from app.audio.streams import AudioSink
from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.model_spec import ModelKind, ModelSpec
from app.store.model_speed import (
    SpeedRecord,
    benchmark_options,
    forget_speed,
    load_speeds,
    measure_speed,
    provider_for,
)
from app.store.models import (
    ModelStatus,
    catalogue,
    check_model,
    delete_model,
    download_bytes,
    fetch_model,
    model_status,
)
from app.store.paths import AppPaths

log = logging.getLogger(__name__)

STATE_TEXT = {
    "embedded": "embedded",
    "installed": "installed",
    "partial": "partly downloaded",
    "damaged": "damaged",
    "not installed": "not installed",
}
USABLE = ("embedded", "installed")
#: The busiest a progress bar needs to be (the download thread reports every 64 KiB).
PROGRESS_INTERVAL_S = 0.1
#: Longer licences are cut in the table (the tooltip and the line under it say it all).
LICENCE_CHARS = 22

#: The options the user is editing for a provider (read on the GUI thread).
OptionsFn = Callable[[str], Mapping[str, Any]]
#: The speaker a preview plays on, as chosen in the settings being edited.
SinkFn = Callable[[], AudioSink]


@dataclass(frozen=True)
class KindWords:
    """How the manager speaks of one stage's models."""

    #: The table's name (and the screen reader's).
    title: str
    #: One of them: "model", "voice".
    noun: str


KIND_WORDS: dict[str, KindWords] = {
    "llm": KindWords("Language models", "model"),
    "stt": KindWords("Speech recognition models", "model"),
    "tts": KindWords("Voices", "voice"),
    "turn": KindWords("Turn detection models", "model"),
    "vad": KindWords("Voice detection models", "model"),
    "wake": KindWords("Wake words", "wake word"),
}


@dataclass(frozen=True)
class Hooks:
    """What the manager asks the settings being edited."""

    options_for: OptionsFn | None = None
    #: None: the system's default speaker.
    preview_sink: SinkFn | None = None


def columns_for(kind: ModelKind) -> tuple[str, ...]:
    """The table's columns: memory only where a stage's models say what they need, speed for language models."""
    memory = any(s.memory_mb for s in catalogue().values() if s.kind == kind)
    return (
        "Model",
        "Download",
        *(("Memory",) if memory else ()),
        "Licence",
        "State",
        *(("Speed here",) if kind == "llm" else ()),
    )


def licence_text(licence: str) -> str:
    """A licence short enough for a table cell: "MIT", "Apache-2.0", "see model card"."""
    text = licence.strip()
    if text.lower().startswith("see "):
        return "see model card"
    text = text.split(" (")[0]
    return text if len(text) <= LICENCE_CHARS else text[: LICENCE_CHARS - 1] + "…"


@dataclass(frozen=True)
class Entry:
    spec: ModelSpec
    status: ModelStatus
    speed: SpeedRecord | None


def survey(kind: ModelKind, paths: AppPaths) -> list[Entry]:
    """Every model of `kind` and its state (hashes a download once, then trusts its stamp)."""
    speeds = load_speeds(paths)
    specs = [s for s in catalogue().values() if s.kind == kind]
    return [Entry(s, model_status(s.id, paths=paths), speeds.get(s.id)) for s in specs]


def mb_text(n_bytes: int | None, *, approx: bool = False) -> str:
    if not n_bytes:
        return "?"
    mark = "~" if approx else ""
    mb = n_bytes / 1e6
    return f"{mark}{mb / 1000:.1f} GB" if mb >= 1000 else f"{mark}{mb:.0f} MB"


def _download_text(spec: ModelSpec, status: ModelStatus) -> str:
    if status.state == "embedded":
        return "included"
    exact = all(f.size is not None for f in spec.files)
    return mb_text(download_bytes(spec), approx=not exact)


def _speed_text(entry: Entry) -> str:
    if entry.speed is not None:
        return entry.speed.phrase()
    return "not measured yet" if entry.status.state in USABLE else "—"


def _cells(kind: ModelKind, columns: tuple[str, ...], entry: Entry, chosen: str | None) -> list[str]:
    spec = entry.spec
    text = {
        "Model": spec.id + ("  ✓ in use" if spec.id == chosen else ""),
        "Download": _download_text(spec, entry.status),
        "Memory": mb_text(spec.memory_mb * 1_000_000) if spec.memory_mb else "—",
        "Licence": licence_text(spec.licence),
        "State": STATE_TEXT[entry.status.state],
        "Speed here": _speed_text(entry),
    }
    return [text[c] for c in columns]


def fetch_words(spec: ModelSpec, status: ModelStatus) -> str:
    """The download button's words for a model not (fully) here: "Download (63 MB)"."""
    size = _download_text(spec, status)
    verb = {"partial": "Resume download", "damaged": "Download again"}.get(status.state, "Download")
    return f"{verb} ({size})" if size != "?" else verb


class _Relay(QObject):
    """Signals a worker thread emits; Qt queues them to the GUI thread."""

    progress = Signal(object, object)  # done bytes, total bytes or None
    note = Signal(str)
    finished = Signal(object)  # the work's result
    failed = Signal(object)  # the exception


class _Job:
    """One piece of blocking work in a thread of its own, reporting through a relay."""

    def __init__(self, name: str, work: Callable[[_Job], object], relay: _Relay) -> None:
        self.name = name
        self.relay = relay
        self.cancel = threading.Event()
        self._work = work
        self._last = 0.0
        self.thread = threading.Thread(target=self._run, name=f"model-manager-{name}", daemon=True)

    def start(self) -> _Job:
        self.thread.start()
        return self

    def _emit(self, signal: Any, *args: object) -> None:
        try:
            signal.emit(*args)
        except RuntimeError:  # the panel was closed meanwhile: nobody to tell
            pass

    def report(self, done: int, total: int | None) -> None:
        """Download progress, from the worker thread, at most every PROGRESS_INTERVAL_S."""
        now = time.monotonic()
        if now - self._last >= PROGRESS_INTERVAL_S or (total is not None and done >= total):
            self._last = now
            self._emit(self.relay.progress, done, total)

    def say(self, text: str) -> None:
        self._emit(self.relay.note, text)

    def _run(self) -> None:
        try:
            result = self._work(self)
        except Exception as exc:
            if not isinstance(exc, VoiceError):
                log.exception("model manager: %s failed", self.name)
            self._emit(self.relay.failed, exc)
            return
        self._emit(self.relay.finished, result)


class ModelManager(QWidget):
    """One stage's models table and its actions; `chosen(provider, option, model_id)` asks
    the settings being edited to use a model."""

    chosen = Signal(str, str, str)
    #: After every listing (tests and the dialog wait on it).
    listed = Signal()

    def __init__(
        self,
        paths: AppPaths,
        *,
        kind: ModelKind = "llm",
        options_for: OptionsFn | None = None,
        hooks: Hooks | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.paths = paths
        self.kind: ModelKind = kind
        self.words = KIND_WORDS.get(kind, KindWords("Models", "model"))
        self.setAccessibleName(self.words.title)
        self.hooks = hooks or Hooks(options_for=options_for)
        self.columns = columns_for(kind)
        self.entries: list[Entry] = []
        self._job: _Job | None = None
        self._chosen_id: str | None = None
        #: What the settings name when it is no catalogue id (typed by hand).
        self._chosen_unknown: str | None = None
        #: The last action's outcome, for tests and screen readers alike.
        self.last_message = ""

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self._add_notice(lay)
        self.table = QTableWidget(0, len(self.columns))
        self.table.setAccessibleName(self.words.title)
        self.table.setHorizontalHeaderLabels(list(self.columns))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 10)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in range(1, len(self.columns)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        lay.addWidget(self.table, 1)
        self.detail = QLabel()
        self.detail.setWordWrap(True)
        self.detail.setObjectName("bubble_meta")
        lay.addWidget(self.detail)
        self.bar = QProgressBar()
        self.bar.setAccessibleName(f"{self.words.noun.capitalize()} download progress")
        self.bar.hide()
        lay.addWidget(self.bar)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setAccessibleName(f"{self.words.title} status")
        lay.addWidget(self.status)

        row = QHBoxLayout()
        self.download_button = self._button(row, "Download", self.download)
        self.cancel_button = self._button(row, "Cancel", self.cancel)
        self.check_button = self._button(row, "Check", self.check)
        self.measure_button = self._button(row, "Measure speed", self.measure)
        self.measure_button.setVisible(kind == "llm")
        self.preview_button = self._button(row, "Preview", self.preview)
        self.preview_button.setAccessibleName("Preview: speak a sample sentence in the selected voice")
        self.preview_button.setToolTip("Speak a sample sentence in this voice on the speaker chosen under Audio")
        self.preview_button.setVisible(kind == "tts")
        self.delete_button = self._button(row, "Delete", self.delete)
        row.addStretch(1)
        self.choose_button = self._button(row, f"Use this {self.words.noun}", self.choose)
        self.choose_button.setAccessibleName(f"Use the selected {self.words.noun}")
        lay.addLayout(row)

        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.refresh()

    def _add_notice(self, lay: QVBoxLayout) -> None:
        """A line above the table when the settings name a model that is not here."""
        self.notice_row = QWidget()
        row = QHBoxLayout(self.notice_row)
        row.setContentsMargins(0, 0, 0, 0)
        self.notice = QLabel()
        self.notice.setWordWrap(True)
        self.notice.setObjectName("field_error")
        self.notice.setAccessibleName(f"Chosen {self.words.noun} status")
        row.addWidget(self.notice, 1)
        self.notice_button = QPushButton("Download")
        self.notice_button.clicked.connect(lambda: self.download_chosen())
        row.addWidget(self.notice_button)
        self.notice_row.hide()
        lay.addWidget(self.notice_row)

    @staticmethod
    def _button(row: QHBoxLayout, text: str, slot: Callable[[], object]) -> QPushButton:
        b = QPushButton(text)
        b.clicked.connect(lambda: slot())
        row.addWidget(b)
        return b

    # -- state -------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._job is not None

    def selected(self) -> Entry | None:
        rows = self.table.selectionModel().selectedRows()
        return self.entries[rows[0].row()] if rows and rows[0].row() < len(self.entries) else None

    def select(self, model_id: str) -> None:
        for i, e in enumerate(self.entries):
            if e.spec.id == model_id:
                self.table.selectRow(i)
                return

    def row_of(self, model_id: str) -> Entry | None:
        return next((e for e in self.entries if e.spec.id == model_id), None)

    def set_chosen(self, model_id: str | None, *, unknown: str | None = None) -> None:
        """The model the settings being edited use (marked in the list); `unknown`: what
        they name instead when it is no model VoxDesk knows."""
        self._chosen_id = model_id
        self._chosen_unknown = unknown
        self._fill()

    @property
    def chosen_id(self) -> str | None:
        return self._chosen_id

    def chosen_problem(self) -> str:
        """Why the chosen model cannot be used yet, in plain words ("" when it can, or
        before the list is known)."""
        noun = self.words.noun
        if self._chosen_unknown:
            return f"“{self._chosen_unknown}” is not a {noun} VoxDesk knows — choose one from the list below."
        entry = self.row_of(self._chosen_id) if self._chosen_id else None
        if entry is None or entry.status.state in USABLE:
            return ""
        size = _download_text(entry.spec, entry.status)
        sized = f" ({size})" if size != "?" else ""
        if entry.status.state == "partial":
            return f"The chosen {noun}, {entry.spec.id}, is partly downloaded — Resume download{sized} to use it."
        if entry.status.state == "damaged":
            return f"The chosen {noun}, {entry.spec.id}, is damaged — Download again{sized} to use it."
        return f"The chosen {noun}, {entry.spec.id}, is not installed — Download{sized} to use it."

    def _show_notice(self) -> None:
        problem = self.chosen_problem()
        self.notice.setText(problem)
        entry = self.row_of(self._chosen_id) if self._chosen_id else None
        fetchable = bool(problem) and entry is not None and not self._chosen_unknown
        if entry is not None and fetchable:
            self.notice_button.setText(fetch_words(entry.spec, entry.status))
            self.notice_button.setAccessibleName(f"{fetch_words(entry.spec, entry.status)}: {entry.spec.id}")
        self.notice_button.setVisible(fetchable)
        self.notice_button.setEnabled(fetchable and not self.busy)
        self.notice_row.setVisible(bool(problem))

    def _fill(self) -> None:
        keep = self.selected()
        self.table.setRowCount(len(self.entries))
        for i, e in enumerate(self.entries):
            for col, text in enumerate(_cells(self.kind, self.columns, e, self._chosen_id)):
                item = QTableWidgetItem(text)
                item.setToolTip(f"{e.spec.description}\nLicence: {e.spec.licence}")
                self.table.setItem(i, col, item)
        if keep is not None:
            self.select(keep.spec.id)
        self._update_buttons()

    def cell(self, model_id: str, column: str) -> str:
        """The text a column shows for a model ("" when either is not listed)."""
        row = next((i for i, e in enumerate(self.entries) if e.spec.id == model_id), None)
        if row is None or column not in self.columns:
            return ""
        item = self.table.item(row, self.columns.index(column))
        return item.text() if item is not None else ""

    def _update_buttons(self) -> None:
        e = self.selected()
        state = e.status.state if e is not None else None
        idle = not self.busy
        self._show_notice()
        self.download_button.setText(
            {"partial": "Resume download", "damaged": "Download again"}.get(state or "", "Download")
        )
        self.download_button.setEnabled(idle and state in ("not installed", "partial", "damaged"))
        self.cancel_button.setEnabled(self._job is not None and self._job.name in ("download", "preview"))
        self.check_button.setEnabled(idle and state in ("embedded", "installed", "damaged"))
        self.measure_button.setEnabled(idle and state in USABLE)
        self.preview_button.setEnabled(idle and state in USABLE)
        in_use = e is not None and e.spec.id == self._chosen_id
        # The stage's own model stays: deleting it would leave the next start without one.
        self.delete_button.setEnabled(idle and state in ("installed", "partial", "damaged") and not in_use)
        self.choose_button.setEnabled(state in USABLE and not in_use)
        if e is None:
            self.detail.setText(f"Pick a {self.words.noun} to see what it is and what you can do with it.")
            return
        extra = f" — {e.status.detail}" if e.status.detail else ""
        if in_use and state in ("installed", "damaged"):
            extra += f" (in use: choose another {self.words.noun} before deleting it)"
        self.detail.setText(f"{e.spec.description}. Licence: {e.spec.licence}.{extra}")

    def _say(self, text: str, *, ok: bool = True) -> None:
        self.last_message = text
        self.status.setText(text)
        self.status.setObjectName("bubble_meta" if ok else "field_error")
        self.status.style().unpolish(self.status)
        self.status.style().polish(self.status)

    # -- running work --------------------------------------------------------------
    def _start(self, name: str, work: Callable[[_Job], object], done: Callable[[object], None]) -> _Job | None:
        if self._job is not None:
            return None
        relay = _Relay(self)
        job = _Job(name, work, relay)
        relay.progress.connect(self._on_progress)
        relay.note.connect(lambda text: self._say(text))
        relay.finished.connect(lambda result: self._ended(job, result, done))
        relay.failed.connect(lambda exc: self._ended(job, exc, None))
        self._job = job
        self._update_buttons()
        return job.start()

    def _ended(self, job: _Job, result: object, done: Callable[[object], None] | None) -> None:
        if self._job is job:
            self._job = None
        self.bar.hide()
        job.relay.deleteLater()
        if done is not None:
            done(result)
        elif isinstance(result, BaseException):
            self._failed(job.name, result)
        if job.name != "survey":
            self.refresh()
        else:
            self._update_buttons()

    def _failed(self, what: str, exc: BaseException) -> None:
        if isinstance(exc, VoiceError) and exc.code is ErrorCode.CANCELLED:
            self._say("Download cancelled — what was downloaded is kept; Resume download continues from there.")
            return
        message = exc.message if isinstance(exc, VoiceError) else f"{type(exc).__name__}: {exc}"
        self._say(f"{what.capitalize()} failed: {message}", ok=False)

    def _on_progress(self, done: int, total: int | None) -> None:
        self.bar.show()
        if total:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * min(done, total) / total))
            self.status.setText(f"Downloading: {done / 1e6:.1f} of {total / 1e6:.1f} MB")
        else:
            self.bar.setRange(0, 0)
            self.status.setText(f"Downloading: {done / 1e6:.1f} MB")

    def refresh(self) -> None:
        """List the models again (in a worker: a fresh download is hashed once)."""
        kind, paths = self.kind, self.paths

        def shown(result: object) -> None:
            if isinstance(result, BaseException):
                self._failed("listing the models", result)
            elif isinstance(result, list):
                self.entries = result
                self._fill()
            self.listed.emit()

        self._start("survey", lambda _job: survey(kind, paths), shown)

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Block until no work runs (for callers without an event loop, e.g. closing)."""
        job = self._job
        if job is None:
            return True
        job.thread.join(timeout)
        return not job.thread.is_alive()

    def shutdown(self) -> None:
        """The dialog closes: stop a download (its part is kept for a later resume)."""
        if self._job is not None:
            self._job.cancel.set()

    # -- actions ---------------------------------------------------------------------
    def _options(self, model_id: str) -> Mapping[str, Any] | None:
        if self.hooks.options_for is None:
            return None
        try:
            return self.hooks.options_for(provider_for(model_id)[0])
        except VoiceError:
            return None

    def download(self) -> None:
        e = self.selected()
        if e is None:
            return
        model_id, paths, options, kind = e.spec.id, self.paths, self._options(e.spec.id), e.spec.kind
        resuming = e.status.state == "partial"

        pinned = all(f.sha256 for f in e.spec.files)

        def work(job: _Job) -> tuple[str, SpeedRecord | None, str]:
            fetch_model(model_id, paths=paths, progress=job.report, cancel=job.cancel)
            if kind != "llm":
                return model_id, None, ""
            job.say(f"{model_id} downloaded and checked — measuring its speed on this computer…")
            try:
                return model_id, measure_speed(model_id, paths, options=options), ""
            except VoiceError as exc:
                return model_id, None, exc.message

        def done(result: object) -> None:
            if isinstance(result, BaseException):
                self._failed("download", result)
                return
            assert isinstance(result, tuple)
            _id, speed, problem = result
            # Upstream's hash unknown when the catalogue was written: the first download records it.
            said = f"{model_id} downloaded, " + ("SHA-256 checked" if pinned else "SHA-256 recorded for later checks")
            if speed is not None:
                said += f"; {speed.phrase()}"
            elif problem:
                said += f"; its speed could not be measured: {problem}"
            self._say(said + ".")

        self.bar.setRange(0, 1000)
        self.bar.setValue(0)
        self.bar.show()
        self._say(f"{'Resuming' if resuming else 'Starting'} the download of {model_id}…")
        self._start("download", work, done)

    def download_chosen(self) -> None:
        """The notice's button: download the model the settings name."""
        if self._chosen_id is None or self.row_of(self._chosen_id) is None:
            return
        self.select(self._chosen_id)
        self.download()

    def cancel(self) -> None:
        if self._job is not None and self._job.name in ("download", "preview"):
            self._job.cancel.set()
            self._say("Cancelling…" if self._job.name == "download" else "Stopping the preview…")

    def preview(self) -> None:
        """Speak a sample sentence in the selected voice, on the speaker chosen under Audio."""
        e = self.selected()
        if e is None or e.status.state not in USABLE:
            return
        model_id = e.spec.id
        try:
            provider, option = provider_for(model_id)
        except VoiceError as exc:
            self._say(exc.message, ok=False)
            return
        options = benchmark_options(model_id, option, self._options(model_id))
        try:  # opening nothing yet: the sink starts in the worker
            sink = self.hooks.preview_sink() if self.hooks.preview_sink is not None else open_device_sink(None)
        except VoiceError as exc:
            self._say(f"Preview failed: {exc.message}", ok=False)
            return

        def done(result: object) -> None:
            if isinstance(result, BaseException):
                self._failed("preview", result)
            elif isinstance(result, PreviewResult):
                if result.stopped:
                    self._say("Preview stopped.")
                else:
                    self._say(
                        f"Played {model_id}: {result.seconds:.1f} s of speech, "
                        f"the first sound {result.first_audio_s * 1000:.0f} ms after asking."
                    )

        self._say(f"Speaking a sample sentence in {model_id}…")
        self._start("preview", lambda job: preview_voice(provider, options, sink, cancel=job.cancel), done)

    def check(self) -> None:
        e = self.selected()
        if e is None:
            return
        model_id, paths = e.spec.id, self.paths

        def done(result: object) -> None:
            if isinstance(result, BaseException):
                self._failed("check", result)
                return
            assert isinstance(result, tuple)
            report, freed = result
            if report.ok:
                self._say(f"{model_id}: every file passes its SHA-256 check.")
            elif freed:
                self._say(
                    f"{model_id} failed its check ({report.detail.split(' — ')[0]}) and was deleted "
                    f"({freed / 1e6:.0f} MB) — download it again.",
                    ok=False,
                )
            else:
                self._say(f"{model_id} failed its check: {report.detail}", ok=False)

        self._say(f"Checking {model_id}…")
        self._start("check", lambda _job: check_model(model_id, paths=paths), done)

    def measure(self) -> None:
        e = self.selected()
        if e is None:
            return
        model_id, paths, options = e.spec.id, self.paths, self._options(e.spec.id)

        def done(result: object) -> None:
            if isinstance(result, BaseException):
                self._failed("measuring", result)
            elif isinstance(result, SpeedRecord):
                self._say(f"{model_id}: {result.phrase()} (first words after {result.first_token_s * 1000:.0f} ms).")

        self._say(f"Measuring {model_id} on this computer (it is loaded once, a few seconds)…")
        self._start("measuring", lambda _job: measure_speed(model_id, paths, options=options), done)

    def confirm(self, question: str) -> bool:
        """Ask before deleting (a separate method so tests can answer it)."""
        answer = QMessageBox.question(self, f"Delete {self.words.noun}", question)
        return answer == QMessageBox.StandardButton.Yes

    def delete(self) -> None:
        e = self.selected()
        if e is None or e.status.state == "embedded" or e.spec.id == self._chosen_id:
            return
        model_id, paths = e.spec.id, self.paths
        if not self.confirm(f"Delete {model_id} from this computer? You can download it again later."):
            return

        def work(_job: _Job) -> int:
            freed = delete_model(model_id, paths=paths)
            forget_speed(paths, model_id)
            return freed

        def done(result: object) -> None:
            if isinstance(result, BaseException):
                self._failed("delete", result)
            elif isinstance(result, int):
                self._say(f"{model_id} deleted ({result / 1e6:.0f} MB freed).")

        self._start("delete", work, done)

    def choose(self) -> None:
        e = self.selected()
        if e is None or e.status.state not in USABLE:
            return
        try:
            provider, option = provider_for(e.spec.id)
        except VoiceError as exc:
            self._say(exc.message, ok=False)
            return
        self.chosen.emit(provider, option.id_option, option.value_for(e.spec.id))
        self.set_chosen(e.spec.id)
        self._say(f"{e.spec.id} chosen — Apply or OK switches to it.")
