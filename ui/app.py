"""Start the desktop app: Qt + qasync loop, window first, engine in the background.

`voxdesk` (app/commands/cli.py) imports this module only when it opens the window, so the
engine and the headless commands never need Qt. The window is shown before any
engine module or model is loaded; the session starts on the loop right after.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

from app.store.paths import AppPaths
from app.store.settings import Settings, SettingsStore, apply_overrides

log = logging.getLogger(__name__)


def _resolve_settings(
    settings: Settings | SettingsStore, store_or_overrides: SettingsStore | Sequence[str] | None
) -> tuple[Settings, SettingsStore | None, list[str]]:
    """Accept both call shapes: (settings, store) and (store, overrides)."""
    if isinstance(settings, SettingsStore):
        result = settings.load()
        overrides = list(store_or_overrides or []) if not isinstance(store_or_overrides, SettingsStore) else []
        resolved = apply_overrides(result.settings, overrides)
        if overrides:
            settings.remember_overrides(result.settings, resolved)
        return resolved, settings, list(result.notices)
    store = store_or_overrides if isinstance(store_or_overrides, SettingsStore) else None
    return settings, store, []


def _log_first_paint(window: Any, t0: float) -> None:
    """Log when the window has really been drawn once (what "visible" means to a user)."""
    from PySide6.QtCore import QEvent, QObject

    class FirstPaint(QObject):
        def eventFilter(self, obj: Any, event: Any) -> bool:
            if event.type() == QEvent.Type.Paint:
                log.info("window visible (first paint) after %.0f ms", (time.monotonic() - t0) * 1000)
                window.removeEventFilter(self)
            return False

    window.installEventFilter(FirstPaint(window))  # parented to the window: lives as long


def create_window(paths: AppPaths, settings: Settings, store: SettingsStore | None = None) -> Any:
    """The main window on the current QApplication (used by `run` and the tests)."""
    from ui.main_window import MainWindow

    return MainWindow(paths, settings, store)


def build_session(paths: AppPaths, settings: Settings, store: SettingsStore | None, *, audio: bool = True) -> Any:
    """The engine with the configured microphone and speaker."""
    from app.engine.session import Session
    from app.memory import trim_after_turns

    source = sink = None
    if audio:
        from app.audio.capture import open_device_source
        from app.audio.playback import open_device_sink

        a = settings.audio
        source = open_device_source(a.input_device, a.input_host_api)
        sink = open_device_sink(a.output_device, a.output_host_api)
    session = Session(settings, paths, store=store, source=source, sink=sink)
    trim_after_turns(session)  # hours of hands-free listening must not ratchet memory up
    return session


def run(
    argv: Sequence[str],
    paths: AppPaths,
    settings: Settings | SettingsStore,
    store: SettingsStore | Sequence[str] | None = None,
    *,
    notices: Sequence[str] = (),
) -> int:
    """Open the window and run until it is closed. Returns the process exit code.

    Called by `voxdesk` as `ui.app.run(argv, paths, settings, store)`.
    """
    t0 = time.monotonic()
    import qasync
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from ui import theme

    resolved, store_, load_notices = _resolve_settings(settings, store)
    notices = [*notices, *load_notices]
    paths.ensure()
    app = QApplication.instance() or QApplication(list(argv) or ["voxdesk"])
    assert isinstance(app, QApplication)
    app.setApplicationName("VoxDesk")
    app.setOrganizationName("VoxDesk")
    app.setDesktopFileName("voxdesk")
    app.setWindowIcon(theme.app_icon())
    app.setQuitOnLastWindowClosed(False)  # we quit after the engine has closed
    theme.apply_theme(app)
    follower = theme.ThemeFollower(app)
    from ui.qt_binding_guard import guard_qt_binding

    if binding_notice := guard_qt_binding():  # before qasync starts emitting per audio block
        notices.append(binding_notice)

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    from ui.onboarding import first_run_settings, needs_onboarding

    # A start with --set overrides is scripted (tests, kiosks, the soak): its choices are the user's.
    scripted = store_ is not None and store_.has_overrides
    onboarding = not scripted and needs_onboarding(resolved, store_)
    if onboarding:  # never hands-free before the user chose it
        resolved = first_run_settings(resolved)
    window = create_window(paths, resolved, store_)
    _log_first_paint(window, t0)
    window.show()
    log.info("window shown after %.0f ms", (time.monotonic() - t0) * 1000)
    for n in notices:
        window.view.notice(n)

    done: asyncio.Future[None] = loop.create_future()

    def on_closed() -> None:
        if not done.done():
            done.set_result(None)

    window.closed.connect(on_closed)

    def start_engine() -> None:
        try:
            session = build_session(paths, resolved, store_)
        except Exception as exc:  # the window still opens and says what is wrong, in plain words
            from app.engine.plain_words import explain
            from app.plugin.errors import VoiceError

            log.error("the engine could not start: %s", exc, exc_info=not isinstance(exc, VoiceError))
            if isinstance(exc, VoiceError):
                stage = exc.op.split(".")[0]
                window._show_problem(explain(stage, exc.op.partition(".")[2] or stage, exc.code, exc.message))
            else:
                window.view.error("The assistant could not start. The details are in the log.")
            return
        window.spawn(window.start_session(session))

    QTimer.singleShot(0, start_engine)
    if onboarding:
        from ui.onboarding import start_onboarding

        QTimer.singleShot(0, lambda: start_onboarding(window))
    from ui.gui_watch import start_from_env
    from ui.process_signals import QuitOnSignals

    # Ctrl+C / SIGTERM close the window like its Quit: the engine and its threads are
    # closed before the process exits (a thread still synthesising at exit aborts it).
    signals = QuitOnSignals(lambda _sig: window.close())
    watch = start_from_env(lambda: str(getattr(window.session, "state", "starting")))
    try:
        with loop:
            loop.run_until_complete(done)
    except KeyboardInterrupt:  # a second Ctrl+C while closing
        return 130
    finally:
        signals.close()
        if watch is not None:
            watch.close()
        follower.deleteLater()
    return signals.exit_code()


def main() -> int:
    """`python -m ui.app` — the window with default paths (development convenience)."""
    from app.store.paths import resolve_paths

    paths = resolve_paths()
    store = SettingsStore(paths.config_dir)
    return run(sys.argv, paths, store, [])


if __name__ == "__main__":
    raise SystemExit(main())
