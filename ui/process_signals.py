"""Ctrl+C and a session manager's SIGTERM quit the window the way its own Quit does.

Qt's event loop runs in C++, so a Python signal handler would only run at the next
Python callback, which on an idle window may be never. The signal's wake-up byte goes
to a socket that Qt watches instead; its notifier runs Python at once, the handler has
recorded which signal came, and the window closes through its normal shutdown (engine
closed, threads joined, history flushed).
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable
from typing import Any


class QuitOnSignals:
    """While alive, SIGINT and SIGTERM call `on_quit(signum)` on the Qt thread."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, on_quit: Callable[[int], None]) -> None:
        from PySide6.QtCore import QSocketNotifier

        self._on_quit = on_quit
        self.received: int | None = None
        self._rx, self._tx = socket.socketpair()
        self._rx.setblocking(False)
        self._tx.setblocking(False)
        self._old_fd = signal.set_wakeup_fd(self._tx.fileno(), warn_on_full_buffer=False)
        self._old_handlers: dict[int, Any] = {s: signal.signal(s, self._record) for s in self.SIGNALS}
        self._notifier = QSocketNotifier(self._rx.fileno(), QSocketNotifier.Type.Read)
        self._notifier.activated.connect(self._wake)

    def _record(self, signum: int, _frame: object) -> None:
        if self.received is None:
            self.received = signum
        else:  # a second Ctrl+C while closing: stop waiting, the old way
            raise KeyboardInterrupt

    def _wake(self, *_: object) -> None:
        try:
            self._rx.recv(64)
        except BlockingIOError:
            pass
        if self.received is not None:
            self._on_quit(self.received)

    def exit_code(self) -> int:
        """0 for SIGTERM (a logout is a normal quit), 130 for Ctrl+C, 0 when none came."""
        return 130 if self.received == signal.SIGINT else 0

    def close(self) -> None:
        self._notifier.setEnabled(False)
        signal.set_wakeup_fd(self._old_fd)
        for s, h in self._old_handlers.items():
            signal.signal(s, h)
        self._rx.close()
        self._tx.close()
