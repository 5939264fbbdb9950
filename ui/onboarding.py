"""First-run welcome: how to talk, a microphone check with a live meter, a speaker check,
and what works offline. Every choice lands in the settings store; skipped or done, it is
not shown again.

A fresh install starts in push-to-talk until the user has chosen: VoxDesk never listens
hands-free before anyone asked it to. The microphone is captured by PortAudio's thread
(the frames reach the loop as a queue, the meter is repainted from them), device lists
are read in a worker thread, and the tone plays through the same sink the engine uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.store.settings import Settings, SettingsStore
from ui.controls import ACTIVATION_LABELS, ACTIVATION_TIPS, LevelMeter

log = logging.getLogger(__name__)

HEARD_DBFS = -30.0  # a voice at arm's length peaks well above this; a dead or muted mic stays far below
PAGES = ("welcome", "mode", "microphone", "speaker", "offline")

SourceFactory = Callable[[str | None], Any]  # device name (None: default) → AudioSource
SinkFactory = Callable[[str | None], Any]  # device name → AudioSink
DeviceLister = Callable[[], tuple[list[str], list[str]]]  # → (microphones, speakers)


@dataclass(frozen=True, slots=True)
class OnboardingChoices:
    mode: str = "push_to_talk"
    input_device: str | None = None
    output_device: str | None = None
    skipped: bool = False


def needs_onboarding(settings: Settings, store: SettingsStore | None) -> bool:
    """First run: no settings file yet (or one that says the welcome was left unfinished)."""
    if store is None or settings.window.onboarded is True:
        return False
    return settings.window.onboarded is False or not store.path.exists()


def first_run_settings(settings: Settings) -> Settings:
    """Until the user has chosen: push-to-talk, so nothing is heard without being asked."""
    activation = settings.activation.model_copy(update={"mode": "push_to_talk"})
    return settings.model_copy(update={"activation": activation})


def with_choices(settings: Settings, choices: OnboardingChoices) -> Settings:
    """`settings` with what the welcome chose, marked as done."""
    return settings.model_copy(
        update={
            "activation": settings.activation.model_copy(update={"mode": choices.mode}),
            "audio": settings.audio.model_copy(
                update={"input_device": choices.input_device, "output_device": choices.output_device}
            ),
            "window": settings.window.model_copy(update={"onboarded": True}),
        }
    )


def _system_devices() -> tuple[list[str], list[str]]:
    from app.audio import devices

    return [d.label for d in devices.list_devices("input")], [d.label for d in devices.list_devices("output")]


def _open_source(name: str | None) -> Any:
    from app.audio.capture import open_device_source

    return open_device_source(name)


def _open_sink(name: str | None) -> Any:
    from app.audio.playback import open_device_sink

    return open_device_sink(name)


def _text(text: str, *, heading: bool = False) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)
    if heading:
        label.setObjectName("onboarding_heading")
        label.setStyleSheet("font-size: 18px; font-weight: bold;")
    return label


def offline_lines(settings: Settings) -> list[str]:
    """What runs on this computer and what goes to a server, for the chosen providers."""
    from app.plugin.registry import get_registry

    jobs = {
        "stt": "Understanding what you say",
        "llm": "Answering your questions",
        "tts": "Speaking the replies",
    }
    lines = []
    for kind, job in jobs.items():
        try:
            local = get_registry().info(kind, settings.stage(kind).provider).local
        except Exception:
            local = True
        lines.append(f"• {job}: {'on this computer, offline' if local else 'a server you chose in Settings'}.")
    lines.append("• Timers, reminders, the time, dates and sums: built-in skills, always offline.")
    return lines


class OnboardingDialog(QDialog):
    """Five short pages; Back / Next / Skip, all reachable from the keyboard."""

    completed = Signal(object)  # OnboardingChoices (finished or skipped)

    def __init__(  # noqa: PLR0913 - test seams for the audio devices, all keyword-only
        self,
        settings: Settings,
        parent: QWidget | None = None,
        *,
        unavailable: Mapping[str, str | None] | None = None,
        devices: DeviceLister = _system_devices,
        open_source: SourceFactory = _open_source,
        open_sink: SinkFactory = _open_sink,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Welcome to VoxDesk")
        self.setObjectName("onboarding")
        self.setAccessibleName("Welcome to VoxDesk")
        self.setMinimumWidth(560)
        self.setMaximumWidth(760)
        self._settings = settings
        self._devices = devices
        self._open_source = open_source
        self._open_sink = open_sink
        self._tasks: set[asyncio.Task[Any]] = set()
        self._mic_task: asyncio.Task[Any] | None = None
        self.loudest_dbfs = -120.0
        self.done_with: OnboardingChoices | None = None

        lay = QVBoxLayout(self)
        self.step = QLabel("")
        self.step.setObjectName("bubble_meta")
        lay.addWidget(self.step)
        self.pages = QStackedWidget()
        lay.addWidget(self.pages, 1)
        self.pages.addWidget(self._welcome_page())
        self.pages.addWidget(self._mode_page(unavailable or {}))
        self.pages.addWidget(self._mic_page())
        self.pages.addWidget(self._speaker_page())
        self.pages.addWidget(self._offline_page())

        row = QHBoxLayout()
        self.skip_button = QPushButton("S&kip")
        self.skip_button.setAccessibleName("Skip the welcome (push-to-talk is used; change it any time)")
        self.skip_button.clicked.connect(self.skip)
        row.addWidget(self.skip_button)
        row.addStretch(1)
        self.back_button = QPushButton("&Back")
        self.back_button.clicked.connect(lambda: self.go(self.pages.currentIndex() - 1))
        row.addWidget(self.back_button)
        self.next_button = QPushButton("&Next")
        self.next_button.setDefault(True)
        self.next_button.clicked.connect(self._next)
        row.addWidget(self.next_button)
        lay.addLayout(row)
        QShortcut(QKeySequence("Alt+Right"), self).activated.connect(self._next)
        QShortcut(QKeySequence("Alt+Left"), self).activated.connect(lambda: self.go(self.pages.currentIndex() - 1))
        self.go(0)

    # -- pages -------------------------------------------------------------------------
    def _page(self, title: str, *widgets: QWidget) -> QWidget:
        page = QWidget()
        v = QVBoxLayout(page)
        v.addWidget(_text(title, heading=True))
        for w in widgets:
            v.addWidget(w)
        v.addStretch(1)
        page.setAccessibleName(title)
        return page

    def _welcome_page(self) -> QWidget:
        return self._page(
            "Welcome to VoxDesk",
            _text(
                "VoxDesk is a voice assistant that runs on this computer. Ask it a question out loud "
                "and it answers out loud."
            ),
            _text(
                "These four short steps choose how you start talking to it and check your microphone "
                "and speaker. You can change every choice later in Settings."
            ),
        )

    def _mode_page(self, unavailable: Mapping[str, str | None]) -> QWidget:
        self.mode_group = QButtonGroup(self)
        self.mode_buttons: dict[str, QRadioButton] = {}
        holder = QWidget()
        v = QVBoxLayout(holder)
        v.setContentsMargins(0, 0, 0, 0)
        for mode, label in ACTIVATION_LABELS.items():
            button = QRadioButton(label)
            why = unavailable.get(mode)
            tip = ACTIVATION_TIPS[mode] + "."
            button.setAccessibleDescription(tip)
            button.setEnabled(why is None)
            self.mode_group.addButton(button)
            self.mode_buttons[mode] = button
            v.addWidget(button)
            note = _text(tip if why is None else f"Not available here: {why}")
            note.setContentsMargins(24, 0, 0, 6)
            note.setObjectName("bubble_meta")
            v.addWidget(note)
        self.mode_buttons["push_to_talk"].setChecked(True)
        return self._page(
            "How do you want to talk to VoxDesk?",
            holder,
            _text("Push-to-talk is the most private: VoxDesk only listens while you hold the key or button."),
        )

    def _mic_page(self) -> QWidget:
        self.mic_combo = QComboBox()
        self.mic_combo.setAccessibleName("Microphone")
        self.mic_combo.addItem("System default", None)
        self.mic_combo.currentIndexChanged.connect(lambda _i: self._restart_mic_check())
        self.meter = LevelMeter()
        self.meter.setFixedHeight(16)
        self.mic_result = _text("Say something: the bar moves when VoxDesk hears you.")
        self.mic_result.setAccessibleName("Microphone check result")
        return self._page(
            "Check your microphone",
            _text("Microphone:"),
            self.mic_combo,
            self.meter,
            self.mic_result,
        )

    def _speaker_page(self) -> QWidget:
        self.speaker_combo = QComboBox()
        self.speaker_combo.setAccessibleName("Speaker")
        self.speaker_combo.addItem("System default", None)
        self.tone_button = QPushButton("&Play a test tone")
        self.tone_button.clicked.connect(self.play_tone)
        self.speaker_result = _text("Press the button: you should hear a short beep.")
        self.speaker_result.setAccessibleName("Speaker check result")
        return self._page(
            "Check your speaker",
            _text("Speaker:"),
            self.speaker_combo,
            self.tone_button,
            self.speaker_result,
        )

    def _offline_page(self) -> QWidget:
        return self._page(
            "What works offline",
            _text("\n".join(offline_lines(self._settings))),
            _text(
                "Nothing you say leaves this computer unless you choose a server or a cloud service in "
                "Settings → Assistant, Speech-to-text or Voice."
            ),
        )

    # -- navigation --------------------------------------------------------------------
    @property
    def page(self) -> str:
        return PAGES[self.pages.currentIndex()]

    def go(self, index: int) -> None:
        index = max(0, min(index, self.pages.count() - 1))
        leaving = self.page
        self.pages.setCurrentIndex(index)
        if leaving == "microphone" and self.page != "microphone":
            self._stop_mic_check()
        self.step.setText(f"Step {index + 1} of {self.pages.count()}")
        self.back_button.setEnabled(index > 0)
        last = index == self.pages.count() - 1
        self.next_button.setText("&Start using VoxDesk" if last else "&Next")
        self.skip_button.setVisible(not last)
        if self.page in ("microphone", "speaker") and self.mic_combo.count() == 1:
            self._spawn(self._list_devices())
        if self.page == "microphone":
            self._restart_mic_check()
        checked = self.mode_group.checkedButton()
        (checked if self.page == "mode" and checked is not None else self.next_button).setFocus()

    def _next(self) -> None:
        if self.pages.currentIndex() == self.pages.count() - 1:
            self.finish()
        else:
            self.go(self.pages.currentIndex() + 1)

    def choices(self, *, skipped: bool = False) -> OnboardingChoices:
        checked = next((m for m, b in self.mode_buttons.items() if b.isChecked()), "push_to_talk")
        if skipped:
            return OnboardingChoices(
                "push_to_talk",
                self._settings.audio.input_device,
                self._settings.audio.output_device,
                skipped=True,
            )
        return OnboardingChoices(checked, self.mic_combo.currentData(), self.speaker_combo.currentData())

    def finish(self) -> None:
        self._end(self.choices())
        self.accept()

    def skip(self) -> None:
        self._end(self.choices(skipped=True))
        self.accept()

    def reject(self) -> None:
        """Esc or the close button: the same as Skip (push-to-talk, asked no more)."""
        if self.done_with is None:
            self._end(self.choices(skipped=True))
        super().reject()

    def abort(self) -> None:
        """Quitting while the welcome is open: nothing chosen, so it comes back next time."""
        self.done_with = OnboardingChoices(skipped=True)
        self._cancel_tasks()
        super().reject()

    def _end(self, choices: OnboardingChoices) -> None:
        self.done_with = choices
        self._cancel_tasks()
        self.completed.emit(choices)

    # -- background work (on the loop; blocking calls in threads) ----------------------
    def _spawn(self, coro: Any) -> asyncio.Task[Any] | None:
        try:
            task = asyncio.ensure_future(coro)
        except RuntimeError:  # no loop (a test that only looks at the pages)
            coro.close()
            return None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _cancel_tasks(self) -> None:
        self._stop_mic_check()
        for task in list(self._tasks):
            task.cancel()

    async def _list_devices(self) -> None:
        try:
            inputs, outputs = await asyncio.to_thread(self._devices)
        except Exception as exc:
            log.info("audio devices could not be listed: %s", exc)
            return
        for combo, names, saved in (
            (self.mic_combo, inputs, self._settings.audio.input_device),
            (self.speaker_combo, outputs, self._settings.audio.output_device),
        ):
            combo.blockSignals(True)
            for name in names:
                if combo.findData(name) < 0:
                    combo.addItem(name, name)
            if saved and combo.findData(saved) >= 0:
                combo.setCurrentIndex(combo.findData(saved))
            combo.blockSignals(False)

    def _restart_mic_check(self) -> None:
        if self.page != "microphone":
            return
        self._stop_mic_check()
        self._mic_task = self._spawn(self._mic_check(self.mic_combo.currentData()))

    def _stop_mic_check(self) -> None:
        if self._mic_task is not None and not self._mic_task.done():
            self._mic_task.cancel()
        self._mic_task = None

    async def _mic_check(self, name: str | None) -> None:
        """Meter the microphone until the page is left; say when a voice was heard."""
        from app.audio.capture import level_dbfs

        self.loudest_dbfs = -120.0
        self.mic_result.setText("Say something: the bar moves when VoxDesk hears you.")
        source = self._open_source(name)
        try:
            await source.start()
            async for _at, frame in source.frames():
                rms, peak = level_dbfs(frame)
                self.meter.set_level(rms, peak)
                if peak > self.loudest_dbfs + 1:
                    self.loudest_dbfs = peak
                    self._judge_mic()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("microphone check failed: %s", exc)
            self.mic_result.setText(
                "VoxDesk can't open this microphone. Check that it is connected and not used by another "
                "program, or choose another one above."
            )
        finally:
            with contextlib.suppress(Exception):
                await source.stop()

    def _judge_mic(self) -> None:
        if self.loudest_dbfs > HEARD_DBFS:
            self.mic_result.setText("VoxDesk hears you. Your microphone works.")
        elif self.loudest_dbfs > -60:
            self.mic_result.setText("Very quiet. Speak up, move closer, or raise the microphone's volume.")

    def play_tone(self) -> asyncio.Task[Any] | None:
        self.tone_button.setEnabled(False)
        self.speaker_result.setText("Playing…")
        return self._spawn(self._play_tone(self.speaker_combo.currentData()))

    async def _play_tone(self, name: str | None) -> None:
        from app.audio.beep import play_beep

        sink = self._open_sink(name)
        try:
            await sink.start()
            await play_beep(sink)
            self.speaker_result.setText("Did you hear a beep? If not, choose another speaker above and try again.")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("test tone failed: %s", exc)
            self.speaker_result.setText("VoxDesk can't play on this speaker. Choose another one above.")
        finally:
            self.tone_button.setEnabled(True)
            with contextlib.suppress(Exception):
                await sink.stop()


def start_onboarding(window: Any) -> OnboardingDialog:
    """Open the welcome over the main window; its choices are applied and saved when done."""
    session = window.session
    unavailable = session.activation_choices() if session is not None else {}
    dialog = OnboardingDialog(window.settings, window, unavailable=unavailable)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

    def completed(choices: OnboardingChoices) -> None:
        if getattr(window, "_closing", False):
            return  # quitting: asked again next time
        new = with_choices(window.settings, choices)
        window.spawn(_apply(window, new))

    dialog.completed.connect(completed)
    dialog.open()
    return dialog


async def _apply(window: Any, new: Settings) -> None:
    await window._apply_settings(new)
    window.sync_activation()
