"""Detect (and survive) a Qt binding that leaks references to `True` on every signal emit.

PySide6 6.12.0 drops one reference to `True` per `Signal.emit()`. qasync emits a signal for
every `call_soon_threadsafe`, which the audio path does ~31 times a second, so on Python
3.11 (where `True` is an ordinary object with a reference count) the count reaches zero
within minutes and the interpreter aborts with "bool_dealloc: deallocating True or False".

pyproject.toml keeps such versions out of a normal install. This guard is for the
installs that get one anyway (a distribution's PySide6, a hand-upgraded venv): at start
it measures the leak directly; if there is one, it lifts the reference counts of `True`
and `False` far out of reach (what Python 3.12 does for every install by making them
immortal, PEP 683) and says so once. Python 3.12+ needs none of this.
"""

from __future__ import annotations

import ctypes
import logging
import sys
import threading

log = logging.getLogger(__name__)

# 2**40 references: at 10,000 leaked emits a second, 3.5 years of uptime.
_HEADROOM = 1 << 40
# Few enough that a leaking binding cannot use up the references True has at start.
_PROBE_EMITS = 64


def bool_refs_lost_per_emit(emits: int = _PROBE_EMITS, *, from_thread: bool = True) -> float:
    """References to `True` the binding loses per `Signal.emit()` (0.0 on a sound binding).

    Emits a bare `Signal()` from a worker thread (as qasync does) with no slot attached,
    so nothing but the binding itself touches the count."""
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        ping = Signal()

    probe = _Probe()

    def emit_all() -> None:
        for _ in range(emits):
            probe.ping.emit()

    before = sys.getrefcount(True)
    if from_thread:
        t = threading.Thread(target=emit_all, name="qt-binding-probe")
        t.start()
        t.join()
    else:
        emit_all()
    after = sys.getrefcount(True)
    probe.deleteLater()
    return (before - after) / emits


def _refcount_cell(obj: object) -> ctypes.c_ssize_t:
    # CPython: ob_refcnt is the first field of every object (Py_ssize_t).
    return ctypes.c_ssize_t.from_address(id(obj))


def make_bools_unreachable_by_leaks() -> None:
    """Give `True` and `False` references enough that a leak cannot free them."""
    for obj in (True, False):
        cell = _refcount_cell(obj)
        if cell.value < _HEADROOM:
            cell.value += _HEADROOM


def guard_qt_binding() -> str | None:
    """Check the binding once at start; returns a notice for the user when it leaks."""
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return None  # True and False are immortal there: a leak cannot free them
    try:
        lost = bool_refs_lost_per_emit()
    except Exception:  # the probe must never stop the window from opening
        log.exception("could not check the Qt binding for the True-reference leak")
        return None
    if lost < 0.5:
        return None
    import PySide6

    make_bools_unreachable_by_leaks()
    version = getattr(PySide6, "__version__", "?")
    log.warning("PySide6 %s leaks a reference to True on every signal; protected against it", version)
    return (
        f"PySide6 {version} has a known bug that would crash VoxDesk after a few minutes; "
        "it is worked around, but run: pip install 'PySide6-Essentials<6.12' to get a fixed version."
    )
