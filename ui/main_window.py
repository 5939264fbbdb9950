"""The main window: conversation, controls, latency and health, wired to a `Session`.

The window never waits on the engine: every engine call is a task on the qasync
loop (the same thread as Qt, so events arrive without locks), inference runs in
the providers' workers, and the panels are refreshed from a 10 Hz timer that only
reads the telemetry snapshot when an event said something changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QByteArray, QEvent, QObject, QSettings, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeyEvent, QKeySequence, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QDialog,
    QFrame,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QScrollArea,
    QSplitter,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from app.engine import events as ev
from app.plugin.errors import ErrorCode
from app.store.paths import AppPaths
from app.store.settings import Settings, SettingsStore
from ui import theme
from ui.announce import announce
from ui.close_to_tray import CloseAction, decide_close
from ui.controls import ACTIVATION_LABELS, MUTED_REASON, Controls
from ui.conversation_view import ConversationView
from ui.global_hotkey import GlobalHotkey
from ui.health_panel import HealthPanel
from ui.hotkey_status import HotkeyStatus
from ui.latency_panel import LatencyPanel
from ui.notifications import Notifier
from ui.tray import NO_TRAY_MESSAGE, Tray

if TYPE_CHECKING:
    from ui.shortcuts_dialog import ShortcutsDialog

log = logging.getLogger(__name__)

POLL_MS = 100  # panel refresh: ≥ 10 updates/s, and only when something changed
HEALTH_DEBOUNCE_S = 0.2  # a burst of switch/error events gives one health check
QUIT_BUDGET_S = 2.0
FIRST_SIZE = QSize(1180, 740)
ANNOUNCED_STATES = ("listening", "thinking")
#: Narrower than this, the latency and health panel folds away (the conversation needs the room).
SIDE_PANEL_MIN_WINDOW_W = 1000
REPEAT_GAP_MS = 80  # a Space release followed by a press this soon is key auto-repeat
DOWNLOAD_STOP_S = 0.5  # a cancelled download stops within one read; don't wait longer
TEXT_INPUTS = (QLineEdit, QTextEdit, QPlainTextEdit, QAbstractSpinBox, QComboBox)
#: Widgets where Space already means something (type, press, select): keyboard users
#: who Tab to them must get that, not push-to-talk. The talk button is the exception.
SPACE_OWNERS = (*TEXT_INPUTS, QAbstractButton, QAbstractItemView)
#: Errors worth a system notification when the window is out of sight: the user must act.
NOTIFY_CODES = frozenset({ErrorCode.AUDIO_DEVICE.value, ErrorCode.MODEL_MISSING.value, ErrorCode.AUTH.value})


class _SpaceToTalk(QObject):
    """Space held anywhere in the window is push-to-talk, except on widgets that use Space."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        # Some X servers send auto-repeat as release+press pairs without the flag: a release
        # only counts once no press follows within REPEAT_GAP_MS.
        self._release = QTimer(self)
        self._release.setSingleShot(True)
        self._release.setInterval(REPEAT_GAP_MS)
        self._release.timeout.connect(lambda: self.window.controls.talk_button.set_active(False))

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() not in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
            return False
        assert isinstance(event, QKeyEvent)
        if event.key() != Qt.Key.Key_Space or event.modifiers() != Qt.KeyboardModifier.NoModifier:
            return False
        if not isinstance(obj, QWidget) or obj.window() is not self.window:
            return False
        talk = self.window.controls.talk_button
        focus = QApplication.focusWidget()
        if any(isinstance(w, SPACE_OWNERS) and w is not talk for w in (obj, focus)):
            return False
        if QApplication.activeModalWidget() is not None:
            return False
        if event.isAutoRepeat():
            return True
        talk = self.window.controls.talk_button
        if event.type() == QEvent.Type.KeyRelease:
            if talk.active:
                self._release.start()
        elif self._release.isActive():
            self._release.stop()  # a repeat, not a new press: the same turn goes on
        elif talk.isEnabled():  # disabled while muted: the microphone is not listened to
            talk.set_active(True)
        else:
            self.window.statusBar().showMessage(MUTED_REASON, 5000)
        return True


class MainWindow(QMainWindow):
    closed = Signal()

    def __init__(self, paths: AppPaths, settings: Settings, store: SettingsStore | None = None) -> None:
        super().__init__()
        self.paths = paths
        self.settings = settings
        self.store = store
        self.session: Any = None
        self._unsubscribe: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dirty = True
        self._closing = False
        self._closed = False
        self._shutdown_task: asyncio.Future[None] | None = None
        self._health_task: asyncio.Task[Any] | None = None
        self._health_stale = False
        self._offered_download: set[str] = set()  # causes whose download was offered once
        self._quit_asked = False  # Quit (menu, tray, Ctrl+Q), not the window's close button
        self._hotkey_note = ""
        self.qsettings = QSettings(str(paths.config_dir / "window.ini"), QSettings.Format.IniFormat)

        # Closing is asynchronous (the engine shuts down first); Qt must not quit on its own.
        QApplication.setQuitOnLastWindowClosed(False)
        self.setWindowTitle("VoxDesk")
        self.setWindowIcon(theme.app_icon())
        self.setObjectName("main_window")
        self.setAccessibleName("VoxDesk")
        self.resize(first_size(self.screen().availableGeometry().size()))

        left = QWidget()
        left_lay = QVBoxLayout(left)
        left_lay.setContentsMargins(0, 0, 0, 0)
        self.view = ConversationView()
        self.controls = Controls()
        left_lay.addWidget(self.view, 1)
        left_lay.addWidget(self.controls)
        self.latency = LatencyPanel()
        self.health = HealthPanel(locate=self._provider_place)
        self.side_splitter = QSplitter(Qt.Orientation.Vertical)
        self.side_splitter.setObjectName("side_splitter")
        self.side_splitter.addWidget(self.latency)
        self.side_splitter.addWidget(self.health)
        self.side_splitter.setSizes([420, 300])
        # Scrolls instead of setting the window's minimum height (small and 2x screens).
        self.side = QScrollArea()
        self.side.setObjectName("side_panel")
        self.side.setAccessibleName("Latency and health")
        self.side.setWidgetResizable(True)
        self.side.setFrameShape(QFrame.Shape.NoFrame)
        self.side.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.side.setWidget(self.side_splitter)
        self._side_auto_hidden = False
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setObjectName("main_splitter")
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.side)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setSizes([680, 500])
        self.setCentralWidget(self.splitter)
        self.statusBar().showMessage("Starting…")
        self.muted_label = QLabel("Microphone muted")
        self.muted_label.setObjectName("muted_status")
        self.muted_label.setAccessibleName("Microphone muted")
        self.muted_label.setToolTip(MUTED_REASON)
        self.muted_label.hide()
        self.statusBar().addPermanentWidget(self.muted_label)

        self._build_menus()
        self.controls.talk.connect(self._on_talk)
        self.controls.activation_chosen.connect(self.choose_activation)
        self.controls.mute_toggled.connect(self._set_muted)
        self.controls.stop_requested.connect(lambda: self.session and self.session.stop_speaking())
        self.controls.text_submitted.connect(lambda text: self.spawn(self._send_text(text)))
        self.health.check_requested.connect(lambda: self.spawn(self.check_health()))
        self._space = _SpaceToTalk(self)
        QApplication.instance().installEventFilter(self._space)  # type: ignore[union-attr]
        self.tray = Tray(self)
        self.tray.quit_requested.connect(self.quit_app)
        self.tray.activation_chosen.connect(self.choose_activation)
        self.tray.mute_toggled.connect(self.controls.mute.setChecked)
        self.notifier = Notifier(self, tray=self.tray.icon)
        self.hotkey = GlobalHotkey(self)
        self.hotkey.pressed.connect(lambda: self._on_talk(True))
        self.hotkey.released.connect(lambda: self._on_talk(False))
        self.hotkey.status_changed.connect(self._hotkey_changed)
        self._show_activation(settings.activation.mode, {})

        self._poll = QTimer(self)
        self._poll.setInterval(POLL_MS)
        self._poll.timeout.connect(self._refresh_panels)
        self._poll.start()
        self._restore_layout()

    # -- menus & shortcuts -------------------------------------------------------
    def _build_menus(self) -> None:
        bar = self.menuBar()
        conv = bar.addMenu("&Conversation")
        self._action(conv, "&New conversation", "Ctrl+N", lambda: self.spawn(self.new_conversation()))
        self._action(conv, "&History…", "Ctrl+Shift+H", lambda: self.spawn(self.open_history()))
        self._action(conv, "&Clear view", "Ctrl+Shift+K", self.view.clear)
        conv.addSeparator()
        self._action(conv, "&Settings…", QKeySequence.StandardKey.Preferences, self.open_settings)
        self._action(conv, "Settings…", "Ctrl+,", self.open_settings, visible=False)
        conv.addSeparator()
        self._action(conv, "&Quit", QKeySequence.StandardKey.Quit, self.quit_app)
        voice = bar.addMenu("&Voice")
        self._action(voice, "Stop speaking", "Esc", lambda: self.session and self.session.stop_speaking())
        self.mute_action = self._action(voice, "Mute microphone", "Ctrl+M", self.controls.mute.toggle)
        self.mute_action.setCheckable(True)
        modes = voice.addMenu("&Activation")
        group = QActionGroup(self)
        self.activation_actions: dict[str, QAction] = {}
        keys = {"push_to_talk": "Ctrl+1", "wake_word": "Ctrl+2", "always": "Ctrl+L"}
        for mode, label in ACTIVATION_LABELS.items():
            act = self._action(modes, label, keys[mode], lambda m=mode: self.choose_activation(m))
            act.setCheckable(True)
            group.addAction(act)
            self.activation_actions[mode] = act
        self._action(voice, "Type a message", "Ctrl+T", self.controls.text.setFocus)
        view = bar.addMenu("&View")
        self.panels_action = self._action(view, "Latency && health panels", "F9", self._toggle_side)
        self.panels_action.setCheckable(True)
        self.panels_action.setChecked(True)
        self._action(view, "Check health now", "Ctrl+H", lambda: self.spawn(self.check_health()))
        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "&Keyboard shortcuts", "Ctrl+/", self.show_shortcuts)
        self._action(help_menu, "&About VoxDesk", None, self._about)

    def _action(self, menu: Any, text: str, shortcut: Any, slot: Any, *, visible: bool = True) -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut) if isinstance(shortcut, str) else shortcut)
        act.triggered.connect(lambda _checked=False: slot())
        if visible:
            menu.addAction(act)
        else:
            self.addAction(act)
        return act

    def _toggle_side(self) -> None:
        self._side_auto_hidden = False  # the user's choice from now on
        self.side.setVisible(self.side.isHidden())
        self.panels_action.setChecked(not self.side.isHidden())

    def _about(self) -> None:
        QMessageBox.about(self, "About VoxDesk", about_text())

    def show_shortcuts(self) -> ShortcutsDialog:
        """Help → Keyboard shortcuts: every action's shortcut as the menus have it, plus Space."""
        from ui.shortcuts_dialog import ShortcutsDialog

        extra = [("Hold to talk (outside text fields)", "Space")]
        if hotkey := self.settings.activation.hotkey.strip():
            extra.append(("Talk from any application (global hotkey)", hotkey))
        dialog = ShortcutsDialog(self.findChildren(QAction), extra, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    # -- layout memory ------------------------------------------------------------
    def _restore_layout(self) -> None:
        for key, apply in (
            ("geometry", self.restoreGeometry),
            ("state", self.restoreState),
            ("main_splitter", self.splitter.restoreState),
            ("side_splitter", self.side_splitter.restoreState),
        ):
            value = self.qsettings.value(key)
            if isinstance(value, QByteArray | bytes):
                apply(QByteArray(value))
        self._fit_on_screen()

    def _fit_on_screen(self) -> None:
        """A size saved on a bigger screen (or at 1x) must not leave buttons off this one."""
        avail = self.screen().availableGeometry()
        size = self.size().boundedTo(avail.size())
        if size != self.size():
            self.resize(size)
        if not avail.contains(self.frameGeometry().topLeft()):
            self.move(avail.topLeft())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._collapse_side_to_fit(event.size().width())

    def _collapse_side_to_fit(self, width: int) -> None:
        """Below SIDE_PANEL_MIN_WINDOW_W the conversation gets the whole width; the side panel
        comes back when the window widens again (F9 shows it on demand meanwhile)."""
        narrow = width < SIDE_PANEL_MIN_WINDOW_W
        if narrow and not self.side.isHidden() and not self._side_auto_hidden:
            self._side_auto_hidden = True
            self.side.hide()
        elif not narrow and self._side_auto_hidden:
            self._side_auto_hidden = False
            self.side.show()
        self.panels_action.setChecked(not self.side.isHidden())

    def save_layout(self) -> None:
        self.qsettings.setValue("geometry", self.saveGeometry())
        self.qsettings.setValue("state", self.saveState())
        self.qsettings.setValue("main_splitter", self.splitter.saveState())
        self.qsettings.setValue("side_splitter", self.side_splitter.saveState())
        self.qsettings.sync()

    # -- tasks ----------------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run engine work on the loop; errors become inline messages, never a frozen UI."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and (exc := t.exception()) is not None:
                log.error("background task failed", exc_info=exc)
                # The engine's words (codes, paths) stay in the log; the window says it plainly.
                self.view.error("Something went wrong there; the details are in the log. Please try again.")

        task.add_done_callback(done)
        return task

    # -- session ------------------------------------------------------------------
    async def start_session(self, session: Any) -> None:
        """Attach and start the engine; the window is already on screen."""
        self.session = session
        self.settings = session.settings
        self._unsubscribe = session.add_listener(self.on_event)
        self._bind_hotkey(self.settings.activation.hotkey)
        self.statusBar().showMessage("Loading speech models in the background…")
        await session.start()
        ready = getattr(session, "ready", None)
        if ready is not None:
            await ready.wait()
        self.sync_activation()
        if not self._closing:
            await self.check_health()

    async def _send_text(self, text: str) -> None:
        if self.session is None:
            self.view.error("The assistant is still starting — try again in a moment.")
            return
        await self.session.send_text(text)

    def _on_talk(self, pressed: bool) -> None:
        if pressed and self.controls.muted:
            # The global hotkey too: a muted microphone is not listened to, so there is
            # nothing to hear (and no "That was too short to hear").
            self.statusBar().showMessage(MUTED_REASON, 5000)
            return
        if self.session is not None:
            self.session.push_to_talk(pressed)

    def _set_muted(self, on: bool) -> None:
        """Muted is a state: the engine stops listening first, then every view says so."""
        if on == self.controls.muted and on == self.tray.muted:
            return
        if self.session is not None:
            self.session.set_muted(on)
        self.controls.set_muted(on)  # releases a held Talk: the engine already dropped what it heard
        self.tray.set_muted(on)
        self.mute_action.setChecked(on)
        self.muted_label.setVisible(on)
        announce(self, "Microphone muted" if on else "Microphone on", assertive=True)

    # -- activation: push-to-talk, wake word, always listening ------------------------
    def choose_activation(self, mode: str) -> None:
        """The user picked a mode (controls, Voice menu, tray): switch now and remember it."""
        if self.session is not None and self.session.set_activation(mode) is not None:
            self.sync_activation()  # unavailable: the session said why; show the mode in use
            return
        if mode != self.settings.activation.mode:
            activation = self.settings.activation.model_copy(update={"mode": mode})
            self.spawn(self._apply_settings(self.settings.model_copy(update={"activation": activation})))
        self.sync_activation(mode)

    def sync_activation(self, mode: str | None = None) -> None:
        """Show the session's mode, with the modes it cannot use here disabled and why."""
        session = self.session
        if session is None:
            self._show_activation(mode or self.settings.activation.mode, {})
            return
        self._show_activation(mode or session.activation.mode, session.activation_choices())

    def _show_activation(self, mode: str, choices: dict[str, str | None]) -> None:
        self.controls.set_activation(mode, choices)
        self.tray.set_activation(mode, choices)
        for name, act in self.activation_actions.items():
            reason = choices.get(name)
            act.setEnabled(reason is None)
            act.setToolTip(ACTIVATION_LABELS[name] if reason is None else f"Unavailable: {reason}")
            act.setChecked(name == mode)

    def _bind_hotkey(self, sequence: str) -> None:
        if not sequence.strip():
            self.hotkey.stop()
            self._hotkey_note = ""
            return
        self._hotkey_changed(self.hotkey.start(sequence))

    def _hotkey_changed(self, status: HotkeyStatus) -> None:
        """Say once why the global hotkey does not work here (Settings → Activation keeps saying it)."""
        note = "" if status.active else status.message
        if note and note != self._hotkey_note:
            self.statusBar().showMessage(note, 10000)
        self._hotkey_note = note

    def activation_notes(self) -> list[str]:
        """What this desktop does not allow, for Settings → Activation."""
        return [n for n in (self._hotkey_note, "" if self.tray.available else NO_TRAY_MESSAGE) if n]

    def quit_app(self) -> None:
        """Quit for real (menu, tray, Ctrl+Q): no "keep running in the tray?" question."""
        self._quit_asked = True
        self.close()

    def _provider_place(self, stage: str, provider: str) -> str | None:
        """Where a provider runs, from its address in the settings (for the health table)."""
        from app.plugin.registry import get_registry
        from app.plugin.server_place import stage_place

        registry = self.session.registry if self.session is not None else get_registry()
        return stage_place(registry, self.settings, stage, provider)

    async def check_health(self) -> None:
        if self.session is None:
            return
        self.health.set_checking(True)
        try:
            rows = await self.session.check_health()
        finally:
            self.health.set_checking(False)
        self.health.set_rows(rows)
        self._dirty = True
        self._problems_from_health(rows)  # an unreachable server is a banner from the start

    def _refresh_health_soon(self) -> None:
        """A provider switched or failed: the health rows are stale, check again shortly."""
        self._health_stale = True
        if self._health_task is None or self._health_task.done():
            self._health_task = self.spawn(self._refresh_health())

    async def _refresh_health(self) -> None:
        # Loops so an event that arrives while a check runs still gets a check after it.
        ready = getattr(self.session, "ready", None)
        if ready is not None:
            await ready.wait()  # start-up errors: models still load; start_session checks after
        while self._health_stale and not self._closing:
            await asyncio.sleep(HEALTH_DEBOUNCE_S)
            self._health_stale = False
            await self.check_health()

    async def new_conversation(self) -> None:
        self.view.clear()
        if self.session is not None:
            await self.session.new_conversation()
        self.statusBar().showMessage("New conversation", 3000)

    async def open_history(self) -> None:
        if self.session is None:
            return
        from ui.history_dialog import HistoryDialog, turns_to_messages

        history = self.session.history
        shown = history.current_conversation
        conversations = await asyncio.to_thread(history.list_conversations)
        dialog = HistoryDialog(conversations, self, export=history.export, history=history)
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def finished(result: int) -> None:
            if not fut.done():
                fut.set_result(result)

        dialog.finished.connect(finished)
        dialog.open()
        result = await fut
        await dialog.settled()  # deletes become final now that the dialog (and its Undo) is gone
        if shown is not None and shown in dialog.deleted_ids:
            self.view.clear()  # the conversation on screen was deleted
        if result and dialog.chosen_id is not None:
            turns = await asyncio.to_thread(history.turns, dialog.chosen_id)
            await asyncio.to_thread(history.resume, dialog.chosen_id)
            self.view.load(turns_to_messages(turns))
        dialog.deleteLater()

    def open_settings(self) -> Any:
        from app.plugin.registry import get_registry
        from ui.settings_dialog import SettingsDialog

        registry = self.session.registry if self.session is not None else get_registry()
        dialog = SettingsDialog(self.settings, registry, self._apply_settings, self)
        dialog.set_activation_notes(self.activation_notes())
        dialog.audio_page.test_tone_requested.connect(lambda name: self.spawn(self._test_tone(dialog, name)))
        dialog.audio_page.mic_test_requested.connect(lambda name: self.spawn(self._mic_test(dialog, name)))
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()
        return dialog

    async def _apply_settings(self, new: Settings) -> list[ev.ProviderSwitched]:
        old = self.settings
        if self.session is None:
            if self.store is not None:
                await asyncio.to_thread(self.store.save, new)
            self.settings = new
            return []
        results = list(await self.session.apply_settings(new))
        self.settings = self.session.settings
        if new.activation.hotkey != old.activation.hotkey:
            self._bind_hotkey(new.activation.hotkey)
        self.sync_activation()
        if (new.audio.input_device, new.audio.output_device) != (
            old.audio.input_device,
            old.audio.output_device,
        ):
            await self._switch_audio(new)
        return results

    async def _switch_audio(self, new: Settings) -> None:
        from app.audio.capture import open_device_source
        from app.audio.playback import open_device_sink

        a = new.audio
        await self.session.set_audio(
            open_device_source(a.input_device, a.input_host_api),
            open_device_sink(a.output_device, a.output_host_api),
        )

    async def _test_tone(self, dialog: Any, name: str) -> None:
        from app.audio.beep import play_beep
        from app.audio.playback import open_device_sink

        sink = open_device_sink(name or None)
        try:
            await sink.start()
            await play_beep(sink)
            dialog.audio_page.show_result("Test tone played — did you hear it?")
        except Exception as exc:
            dialog.audio_page.show_result(f"Could not play: {exc}")
        finally:
            with contextlib.suppress(Exception):
                await sink.stop()

    async def _mic_test(self, dialog: Any, name: str) -> None:
        import numpy as np

        from app.audio.capture import open_device_source

        source = open_device_source(name or None)
        peak = 0.0
        try:
            await source.start()
            dialog.audio_page.show_result("Listening for 2 seconds — say something…")
            loop = asyncio.get_running_loop()
            end = loop.time() + 2.0
            async for _at, frame in source.frames():
                peak = max(peak, float(np.max(np.abs(frame))) if len(frame) else 0.0)
                if loop.time() > end:
                    break
            db = 20 * math.log10(max(peak, 1e-6))
            verdict = "sounds good" if db > -30 else "very quiet — check the microphone"
            dialog.audio_page.show_result(f"Loudest sound {db:.0f} dBFS: {verdict}.")
        except Exception as exc:
            dialog.audio_page.show_result(f"Microphone test failed: {exc}")
        finally:
            with contextlib.suppress(Exception):
                await source.stop()

    # -- engine events (loop thread == GUI thread) ------------------------------------
    def on_event(self, e: ev.Event) -> None:
        if isinstance(e, ev.AudioLevel):
            self.controls.meter.set_level(e.rms_dbfs, e.peak_dbfs)
        elif isinstance(e, ev.StateChanged):
            self.controls.set_state(e.state.value)
            self.tray.set_state(e.state.value)
            self._dirty = True
            if e.state.value in ANNOUNCED_STATES:  # speaking is heard; announcing it would talk over it
                announce(self, self.controls.state.label.text())
            if self.session is not None and self.session.activation.mode != self.controls.activation_mode:
                self.sync_activation()  # the session changed it (a wake word that cannot load)
        elif isinstance(e, ev.PartialTranscript):
            self.view.user_partial(e.turn_id, e.text)
        elif isinstance(e, ev.FinalTranscript):
            self.view.user_final(e.turn_id, e.text)
        elif isinstance(e, ev.ReplyDelta):
            self.view.reply_delta(e.turn_id, e.text)
        elif isinstance(e, ev.TurnFinished):
            self.view.turn_finished(e.turn_id, e.user_text, e.reply_text, e.interrupted)
            self._dirty = True
            if e.reply_text:
                announce(self, f"VoxDesk: {e.reply_text}" + (" (interrupted)" if e.interrupted else ""))
        elif isinstance(e, ev.ErrorRaised):
            self._on_error(e)
        elif isinstance(e, ev.Notice):
            self._on_notice(e)
        elif isinstance(e, ev.ProviderSwitched):
            text = f"{e.stage} → {e.provider}" if e.ok else f"{e.stage}: kept the old provider — {e.message}"
            self.statusBar().showMessage(text, 8000)
            self._dirty = True
            self._refresh_health_soon()
            if e.stage == "wake":
                self.sync_activation()

    def _on_error(self, e: ev.ErrorRaised) -> None:
        """One banner (or, for a model VoxDesk cannot work without, one dialog) per cause, in plain
        words; the same cause again is counted, not shown again. Engine words stay in the log."""
        from app.engine.plain_words import explain

        log.info("error shown to the user: %s · %s: %s: %s", e.stage, e.provider, e.code, e.message)
        self._dirty = True
        self._refresh_health_soon()
        if e.code == ErrorCode.CANCELLED.value:
            return
        plain = explain(e.stage, e.provider, e.code, e.message)
        if self._show_problem(plain) and e.code in NOTIFY_CODES:
            self.notifier.notify(f"VoxDesk: {plain.title}", plain.body, urgent=True, key=f"error:{plain.cause}")

    def _on_notice(self, e: ev.Notice) -> None:
        from app.engine.plain_words import plain_notice

        message = plain_notice(e.message)
        if message == "Ready." and (problem := self._main_problem()) is not None:
            message = f"Started — {problem}."  # not a plain "Ready." while something is wrong
        self.statusBar().showMessage(message, 8000)
        if e.alert:  # a timer going off: seen (and heard) with the window hidden too
            self.notifier.notify("VoxDesk", message, key="alert")
        if e.turn_id is not None or (getattr(self.session, "ready", None) and self.session.ready.is_set()):
            self.view.notice(message)

    def _refresh_panels(self) -> None:
        if not self._dirty or self.session is None:
            return
        self._dirty = False
        snap = self.session.telemetry.snapshot()
        self.latency.update_snapshot(snap)
        self.health.set_exporter_status(snap.exporter)

    def _offer_download(self, plain: Any) -> None:
        """A model VoxDesk needs is missing: download it (with progress), or choose another.
        Offered once per model; "Not now" leaves a banner with the same Download button."""
        from ui.first_run import PICK_ANOTHER, FirstRunDialog, model_fetcher

        model_id, stage = plain.model_id, plain.stage
        if model_id is None:
            return
        self._offered_download.add(plain.cause)
        dialog = FirstRunDialog(plain.title, plain.body, model_fetcher(model_id, self.paths), self)
        self._download_dialog: FirstRunDialog | None = dialog

        def finished(result: int) -> None:
            self._download_dialog = None
            if result == PICK_ANOTHER:
                self.open_settings().show_stage(stage)  # turn detection is inside Voice detection
            elif dialog.result_path is not None:
                self._error_banners().dismiss(plain.cause)
                if self.session is not None:
                    self.statusBar().showMessage(f"Downloaded the {stage_noun(stage)} model; starting it…", 8000)
                    self.spawn(self._reload_stage(stage))
            elif not self._closing:
                self._error_banners().show_error(plain)  # still missing: keep it in sight, Download one click away
            dialog.deleteLater()

        dialog.finished.connect(finished)
        dialog.open()
        announce(dialog, f"{plain.title}. {plain.body}", assertive=True)

    # -- problems in plain words (banners above the conversation) --------------------
    def _error_banners(self) -> Any:
        """The banner stack above the conversation, made on the first problem."""
        banners = getattr(self, "_banners", None)
        if banners is None:
            from ui.error_presenter import ErrorBanners

            banners = ErrorBanners()
            holder = self.view.parentWidget()
            lay = holder.layout() if holder is not None else None
            if lay is not None and isinstance(lay, QVBoxLayout):
                lay.insertWidget(max(0, lay.indexOf(self.view)), banners)
            banners.action_chosen.connect(self._on_problem_action)
            self._banners = banners
        return banners

    def _show_problem(self, plain: Any) -> bool:
        """Show a problem once per cause; True when it is new (not a repeat)."""
        from app.engine.plain_words import Action

        if plain.cause in self._offered_download:
            banner = self._error_banners().banner(plain.cause)
            if banner is not None:
                banner.repeat()
            return False
        dialog_open = getattr(self, "_download_dialog", None) is not None
        if Action.DOWNLOAD in plain.actions and not plain.optional and not dialog_open and not self._closing:
            self._offer_download(plain)  # one modal at most; anything else while it is open is a banner
            return True
        new = bool(self._error_banners().show_error(plain))
        if new:
            announce(self, f"{plain.title}. {plain.body}", assertive=True)
        return new

    def _main_problem(self) -> str | None:
        banners = getattr(self, "_banners", None)
        shown = [b.plain for b in banners.banners() if not b.plain.optional] if banners is not None else []
        return shown[0].title if shown else None

    def _problems_from_health(self, rows: Any) -> None:
        """After a health check: a remote provider in use that is down gets a banner (the
        start-up check finds an unreachable server before any question); a stage that
        works again loses its banners."""
        from app.engine.plain_words import health_problem

        if self.session is None or self._closing:
            return
        banners = self._error_banners()
        in_use = {kind: slot.name for kind, slot in getattr(self.session.stages, "slots", {}).items()}
        for row in rows:
            if in_use.get(row.stage) != row.provider:
                continue
            status = str(getattr(row.health.status, "value", row.health.status))
            if status == "ok":
                banners.dismiss_stage(row.stage, keep={c for c in banners.causes() if c.startswith("model-")})
                continue
            plain = health_problem(row.stage, row.provider, status=status, detail=row.health.detail, local=row.local)
            if plain is not None and banners.banner(plain.cause) is None and self._show_problem(plain):
                self.statusBar().showMessage(f"{plain.title}.", 15000)

    def _on_problem_action(self, plain: Any, action: str) -> None:
        from app.engine.plain_words import Action

        if action == Action.DOWNLOAD:
            self._offered_download.discard(plain.cause)
            self._error_banners().dismiss(plain.cause)
            self._offer_download(plain)
        elif action == Action.OPEN_SETTINGS:
            dialog = self.open_settings()
            if plain.stage == "audio":
                _show_tab(dialog, "Audio")
            else:
                dialog.show_stage(plain.stage)
        elif action == Action.RETRY:
            self._error_banners().dismiss(plain.cause)
            self.spawn(self.check_health())
        elif action == Action.USE_LOCAL_MODEL:
            self._error_banners().dismiss(plain.cause)
            self.spawn(self._use_local_model())

    async def _use_local_model(self) -> None:
        """The assistant server is out of reach: answer with the built-in offline model."""
        from app.store.settings import DEFAULT_LLM, DEFAULT_LLM_FALLBACK, DEFAULT_LLM_FALLBACK_OPTIONS, StageSettings

        llm = StageSettings(
            provider=DEFAULT_LLM,
            fallbacks=[DEFAULT_LLM_FALLBACK],
            fallback_options={DEFAULT_LLM_FALLBACK: dict(DEFAULT_LLM_FALLBACK_OPTIONS)},
        )
        self.statusBar().showMessage("Switching to the local model…", 8000)
        await self._apply_settings(self.settings.model_copy(update={"llm": llm}))
        await self.check_health()

    async def _reload_stage(self, stage: str) -> None:
        """Start a stage again now that its model is on disk."""
        reload = getattr(self.session, "reload_stage", None)
        if reload is None:
            self.view.notice(f"The {stage} model is installed — restart VoxDesk to use it.")
            return
        await reload(stage)
        await self.check_health()

    # -- quitting -------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        if self._closed:
            event.accept()
            return
        event.ignore()
        if not self._closing and not self._quit_asked and event.spontaneous() and self._keeps_running():
            return
        if not self._closing:
            self._closing = True
            self.statusBar().showMessage("Closing…")
            self._shutdown_task = asyncio.ensure_future(self.shutdown())

    def _keeps_running(self) -> bool:
        """The window's close button with a tray: keep running there (asked the first time)."""
        remembered = self.settings.window.close_to_tray
        decision = decide_close(self, remembered, self.tray.available)
        if decision.remembered != remembered:
            window = self.settings.window.model_copy(update={"close_to_tray": decision.remembered})
            self.spawn(self._apply_settings(self.settings.model_copy(update={"window": window})))
        if decision.action is CloseAction.TO_TRAY:
            self.hide()
            self.tray.set_state(self.tray.state)  # its menu now says "Show VoxDesk"
        return decision.action is not CloseAction.QUIT

    async def shutdown(self) -> None:
        """Stop audio, cancel work, flush telemetry — all within QUIT_BUDGET_S."""
        self._closing = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + QUIT_BUDGET_S - 0.1
        self._poll.stop()
        self.save_layout()
        QApplication.instance().removeEventFilter(self._space)  # type: ignore[union-attr]
        await self._close_dialogs()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=0.5)
        if self.session is not None:
            if self._unsubscribe is not None:
                self._unsubscribe()
            try:
                # What the steps above used comes out of the engine's share of the budget.
                await asyncio.wait_for(self.session.aclose(), max(0.2, deadline - loop.time()))
            except (TimeoutError, Exception) as exc:  # quitting must not hang or crash
                log.warning("session did not close cleanly: %s", exc)
        self.hotkey.stop()
        self.notifier.close()
        self.tray.hide()
        self._closed = True
        self.close()
        self.closed.emit()

    async def _close_dialogs(self) -> None:
        """Close open dialogs; a model download is cancelled, since the loop can only
        close once its worker thread has ended."""
        from ui.first_run import FirstRunDialog
        from ui.onboarding import OnboardingDialog

        downloads: list[asyncio.Future[Any]] = []
        for dialog in self.findChildren(QDialog):
            if isinstance(dialog, FirstRunDialog):
                if (fut := dialog.abort()) is not None:
                    downloads.append(fut)
            elif isinstance(dialog, OnboardingDialog):
                dialog.abort()  # unfinished: it comes back next time, its mic check stops now
            elif dialog.isVisible():
                dialog.reject()
        if downloads:
            done, _ = await asyncio.wait(downloads, timeout=DOWNLOAD_STOP_S)
            for fut in done:  # retrieved, so asyncio does not warn; a cancelled fetch raises
                if not fut.cancelled():
                    fut.exception()


def about_text() -> str:
    """About's text, with the installed version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("voxdesk")
    except PackageNotFoundError:  # run from a source tree that is not installed
        from app import __version__ as ver
    return (
        f"VoxDesk {ver}\n\nA desktop voice assistant that works offline.\n"
        "Hold Space or the talk button to speak; Help → Keyboard shortcuts lists the rest."
    )


def first_size(available: QSize) -> QSize:
    """The first window size: FIRST_SIZE, or 90 % of a screen too small for it."""
    return FIRST_SIZE.boundedTo(QSize(int(available.width() * 0.9), int(available.height() * 0.9)))


def _show_tab(dialog: Any, title: str) -> None:
    for i in range(dialog.tabs.count()):
        if dialog.tabs.tabText(i) == title:
            dialog.tabs.setCurrentIndex(i)
            return


def stage_noun(stage: str) -> str:
    from app.engine.plain_words import STAGE_NOUN

    return STAGE_NOUN.get(stage, stage)


def window_settings_path(paths: AppPaths) -> Path:
    return paths.config_dir / "window.ini"
