"""Qt half of `voxdesk --self-test`: Qt versions, and opening + closing the main window.

Why a separate module: app/ must never import Qt, so `app.self_test` reaches Qt only
through here (imported lazily). Opening the real main window in a bundle proves the
Qt platform plugin (xcb/wayland/offscreen/cocoa/windows), image-format and icon
plugins, stylesheets and our resources were all packaged.
"""

from __future__ import annotations

import importlib
import time
from typing import Any

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer, qVersion
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow, QWidget

from app.paths import AppPaths
from app.settings import Settings

#: Where the window engineer's main window may live, most specific first.
MAIN_WINDOW_CANDIDATES: tuple[tuple[str, str], ...] = (
    ("ui.main_window", "create_main_window"),
    ("ui.main_window", "MainWindow"),
    ("ui.window", "MainWindow"),
    ("ui.app", "MainWindow"),
)
EXPOSE_TIMEOUT_S = 10.0


def qt_versions() -> str:
    return f"PySide6 {pyside_version}, Qt {qVersion()}"


def _application() -> QApplication:
    app = QApplication.instance()
    if app is None:
        app = QApplication(["voxdesk", "--self-test"])
    assert isinstance(app, QApplication)
    return app


def _find_main_window_factory() -> Any | None:
    for module_name, attr in MAIN_WINDOW_CANDIDATES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise  # the module exists but one of its imports is missing from the install
        factory = getattr(module, attr, None)
        if factory is not None:
            return factory
    return None


def _build(factory: Any, paths: AppPaths, settings: Settings) -> QWidget:
    """Call the window's constructor with what it accepts (keywords, positional, none)."""
    attempts: tuple[tuple[tuple[Any, ...], dict[str, Any]], ...] = (
        ((), {"paths": paths, "settings": settings}),
        ((paths, settings), {}),
        ((), {"settings": settings}),
        ((), {}),
    )
    last: TypeError | None = None
    for args, kwargs in attempts:
        try:
            window = factory(*args, **kwargs)
        except TypeError as exc:
            last = exc
            continue
        if not isinstance(window, QWidget):
            raise RuntimeError(f"{factory!r} returned {type(window).__name__}, not a window")
        return window
    raise RuntimeError(f"could not construct the main window: {last}")


def _show_until_exposed(window: QWidget) -> float:
    """Show, then let Qt run until the platform reports the window visible on screen."""
    app = _application()
    started = time.perf_counter()
    window.show()
    deadline = started + EXPOSE_TIMEOUT_S
    loop = QEventLoop()
    while time.perf_counter() < deadline:
        handle = window.windowHandle()
        if handle is not None and handle.isExposed():
            return time.perf_counter() - started
        QTimer.singleShot(20, loop.quit)
        loop.exec()
    app.processEvents()
    raise RuntimeError(
        f"window not exposed within {EXPOSE_TIMEOUT_S:.0f} s on the {app.platformName()!r} Qt platform"
    )


def _close(window: QWidget) -> None:
    window.close()
    window.deleteLater()
    QCoreApplication.sendPostedEvents(None, 0)
    _application().processEvents()


def open_and_close_main_window(paths: AppPaths, settings: Settings) -> str:
    """Open the real main window, wait until it is on screen, close it. Returns a one-line detail.

    Raises if the main window does not exist yet or cannot be shown; when it is
    missing a stand-in window is still opened so the message says whether Qt itself works.
    """
    app = _application()
    factory = _find_main_window_factory()
    if factory is None:
        stand_in = QMainWindow()
        stand_in.setCentralWidget(QLabel("VoxDesk self-test"))
        shown_s = _show_until_exposed(stand_in)
        _close(stand_in)
        raise RuntimeError(
            "no main window found in ui/ (looked for ui.main_window.MainWindow) — "
            f"Qt itself works: a stand-in window opened on {app.platformName()!r} in {shown_s:.2f} s"
        )
    window = _build(factory, paths, settings)
    title = window.windowTitle() or type(window).__name__
    shown_s = _show_until_exposed(window)
    _close(window)
    return f"{title!r} opened and closed on {app.platformName()!r} in {shown_s:.2f} s"
