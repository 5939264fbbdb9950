"""Qt half of `voxdesk --self-test`: Qt versions, and opening + closing the main window.

Why a separate module: app/ must never import Qt, so `app.commands.self_test` reaches Qt only
through here (imported lazily). Opening the real main window in a bundle proves the
Qt platform plugin (xcb/wayland/offscreen/cocoa/windows), image-format and icon
plugins, stylesheets and our resources were all packaged.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import qVersion
from PySide6.QtWidgets import QApplication, QWidget

from app.store.paths import AppPaths
from app.store.settings import Settings

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


async def _until_exposed(window: QWidget) -> float:
    """Wait (on the running loop) until the platform reports the window on screen."""
    started = time.perf_counter()
    while time.perf_counter() - started < EXPOSE_TIMEOUT_S:
        handle = window.windowHandle()
        if handle is not None and handle.isExposed():
            return time.perf_counter() - started
        await asyncio.sleep(POLL_S)
    raise RuntimeError(
        f"window not exposed within {EXPOSE_TIMEOUT_S:.0f} s on the {_application().platformName()!r} Qt platform"
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


async def _open_and_close(paths: AppPaths, settings: Settings) -> str:
    from ui.app import create_window

    window = create_window(paths, settings, None)
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

    Raises if the window cannot be shown.
    """
    app = _application()
    detail = _run_on_qt_loop(lambda: _open_and_close(paths, settings))
    return f"{detail} on {app.platformName()!r}"
