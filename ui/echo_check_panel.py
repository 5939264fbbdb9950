"""Settings → Audio → Echo check: play a test sound on the chosen speaker, record the
chosen microphone, and say how much of the echo the chosen canceller removes.

The check runs on the app's asyncio loop (qasync: the GUI thread); the devices open in
PortAudio's own threads and the canceller runs in a worker (`run_echo_check`), so the
window stays responsive for the 4-6 s it takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from app.audio.echo_check import EchoCheckResult, run_echo_check
from app.plugin.errors import VoiceError
from app.plugin.provider_api import EchoCanceller
from app.plugin.registry import Registry
from app.store.settings import StageSettings

log = logging.getLogger(__name__)

#: (microphone, speaker) as chosen on the Audio page; None is the system default.
DevicesFn = Callable[[], tuple[str | None, str | None]]
#: The echo stage as edited (provider and options, not necessarily applied yet), or why
#: it cannot be used as it stands (an option out of range).
StageFn = Callable[[], StageSettings | str]

IDLE_HINT = (
    "Plays a 3-second test sound on the speaker and listens with the microphone: shows the echo's delay "
    "and how much of it the echo canceller removes. Keep the room quiet meanwhile."
)
RUNNING = "Playing the test sound and listening… (a few seconds)"


class EchoCheckPanel(QGroupBox):
    """A button and a result line; `finished` carries the `EchoCheckResult`."""

    finished = Signal(object)

    def __init__(self, registry: Registry, devices: DevicesFn, stage: StageFn, parent: QWidget | None = None) -> None:
        super().__init__("Echo check", parent)
        self.registry = registry
        self._devices = devices
        self._stage = stage
        self._task: asyncio.Task[None] | None = None
        self.result: EchoCheckResult | None = None
        lay = QVBoxLayout(self)
        row = QHBoxLayout()
        self.button = QPushButton("Check echo")
        self.button.setAccessibleName("Check the echo of the chosen speaker in the chosen microphone")
        self.button.clicked.connect(self.start)
        self.result_label = QLabel("Not checked yet.")
        self.result_label.setWordWrap(True)
        self.result_label.setAccessibleName("Echo check result")
        row.addWidget(self.button)
        row.addWidget(self.result_label, 1)
        lay.addLayout(row)
        self.hint = QLabel(IDLE_HINT)
        self.hint.setObjectName("bubble_meta")
        self.hint.setWordWrap(True)
        lay.addWidget(self.hint)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.running:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a bare widget without the app's loop
            self.result_label.setText("The echo check needs the app running.")
            return
        # Disabled at once: a second click before the task runs must not start another.
        self.button.setEnabled(False)
        self.button.setToolTip("An echo check is running")
        self.result_label.setText(RUNNING)
        self._task = loop.create_task(self.check(), name="voxdesk-echo-check")

    async def check(self) -> None:
        try:
            result = await self._run()
        except Exception as exc:  # a bug must not leave the panel saying "listening…" forever
            log.exception("echo check failed")
            result = EchoCheckResult(None, None, f"Echo check failed: {type(exc).__name__}: {exc}", False)
        with contextlib.suppress(RuntimeError):  # the dialog may have closed meanwhile
            self.result = result
            self.result_label.setText(result.summary())
            self.button.setEnabled(True)
            self.button.setToolTip("")
            self.finished.emit(result)

    async def _run(self) -> EchoCheckResult:
        from app.audio.capture import open_device_source
        from app.audio.playback import open_device_sink

        stage = self._stage()
        if isinstance(stage, str):
            return EchoCheckResult(None, None, f"Echo check not run: {stage}", False)
        try:
            canceller = self.registry.create("echo", stage.provider, stage.options)
        except VoiceError as exc:
            return EchoCheckResult(None, None, f"Echo canceller “{stage.provider}”: {exc.message}", False)
        if not isinstance(canceller, EchoCanceller):
            return EchoCheckResult(None, None, f"“{stage.provider}” is no echo canceller", False)
        mic, speaker = self._devices()
        try:
            return await run_echo_check(open_device_sink(speaker), open_device_source(mic), canceller)
        finally:
            with contextlib.suppress(Exception):
                await canceller.aclose()

    def cancel_background(self) -> None:
        if self.running and self._task is not None:
            self._task.cancel()
