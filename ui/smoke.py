"""Qt half of `voxdesk --self-test`: Qt versions, and opening + closing the main window.

Why a separate module: app/ must never import Qt, so `app.self_test` reaches Qt only
through here (imported lazily). Opening the real main window in a bundle proves the
Qt platform plugin (xcb/wayland/offscreen/cocoa/windows), image-format and icon
plugins, stylesheets and our resources were all packaged.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from typing import Any

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import qVersion
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow, QWidget

from app.paths import AppPaths
from app.settings import Settings

#: Where the main window comes from, most specific first: a factory taking
#: (paths, settings, store) as `voxdesk` itself uses, else the class.
MAIN_WINDOW_CANDIDATES: tuple[tuple[str, str], ...] = (
    ("ui.app", "create_window"),
    ("ui.main_window", "MainWindow"),
)
EXPOSE_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 10.0
POLL_S = 0.02


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


async def _until_exposed(window: QWidget) -> float:
    """Wait (on the running loop) until the platform reports the window on screen."""
    started = time.perf_counter()
    while time.perf_counter() - started < EXPOSE_TIMEOUT_S:
        handle = window.windowHandle()
        if handle is not None and handle.isExposed():
            return time.perf_counter() - started
        await asyncio.sleep(POLL_S)
    raise RuntimeError(
        f"window not exposed within {EXPOSE_TIMEOUT_S:.0f} s on the "
        f"{_application().platformName()!r} Qt platform"
    )


async def _close(window: QWidget) -> None:
    """Close like a user does; a window with a `closed` signal has finished its shutdown when it fires."""
    closed_signal = getattr(window, "closed", None)
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_closed(*_args: object) -> None:
        if not done.done():
            done.set_result(None)

    if closed_signal is not None:
        closed_signal.connect(on_closed)
    window.close()
    if closed_signal is not None:
        await asyncio.wait_for(done, CLOSE_TIMEOUT_S)
    window.deleteLater()


async def _open_and_close(factory: Any, paths: AppPaths, settings: Settings) -> str:
    if factory.__name__ == "create_window":
        window = factory(paths, settings, None)
    else:
        window = factory(paths, settings)
    if not isinstance(window, QWidget):
        raise RuntimeError(f"{factory!r} returned {type(window).__name__}, not a window")
    title = window.windowTitle() or type(window).__name__
    window.show()
    shown_s = await _until_exposed(window)
    await _close(window)
    return f"{title!r} opened in {shown_s:.2f} s and closed"


def _run_on_qt_loop(coro_fn: Any) -> Any:
    """Run a coroutine on a qasync loop over the QApplication, as `voxdesk` runs the window."""
    import qasync

    app = _application()
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    try:
        with loop:
            return loop.run_until_complete(coro_fn())
    finally:
        asyncio.set_event_loop(None)


def open_and_close_main_window(paths: AppPaths, settings: Settings) -> str:
    """Open the real main window, wait until it is on screen, close it. Returns a one-line detail.

    Raises if the main window does not exist yet or cannot be shown; when it is
    missing a stand-in window is still opened so the message says whether Qt itself works.
    """
    app = _application()
    factory = _find_main_window_factory()
    if factory is None:
        async def stand_in() -> str:
            window = QMainWindow()
            window.setCentralWidget(QLabel("VoxDesk self-test"))
            window.show()
            shown_s = await _until_exposed(window)
            await _close(window)
            return f"{shown_s:.2f} s"

        shown = _run_on_qt_loop(stand_in)
        raise RuntimeError(
            "no main window found in ui/ (looked for ui.app.create_window, ui.main_window.MainWindow) — "
            f"Qt itself works: a stand-in window opened on {app.platformName()!r} in {shown}"
        )
    detail = _run_on_qt_loop(lambda: _open_and_close(factory, paths, settings))
    return f"{detail} on {app.platformName()!r}"
