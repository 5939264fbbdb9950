"""The Qt binding must not leak references to `True` (PySide6 6.12.0 does; the app then aborts).

Each check runs in a child interpreter: on a leaking binding the count of `True` can reach
zero and abort the process, which must fail this test, not kill the test run."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(sys.version_info >= (3, 12), reason="True is immortal on 3.12+")


def _python(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"},
    )


def test_ten_thousand_emits_from_a_worker_thread_keep_the_count_of_true() -> None:
    done = _python("""
        import sys, threading
        from PySide6.QtCore import QCoreApplication, QObject, Signal
        app = QCoreApplication([])
        class O(QObject):
            ping = Signal()
            flag = Signal(bool)
        o = O()
        def emit():
            for _ in range(10_000):
                o.ping.emit()
                o.flag.emit(True)
        before = sys.getrefcount(True)
        t = threading.Thread(target=emit); t.start(); t.join()
        app.processEvents()
        print(before - sys.getrefcount(True))
    """)
    assert done.returncode == 0, f"the binding aborted the interpreter: {done.stderr[-2000:]}"
    lost = int(done.stdout.strip())
    assert abs(lost) < 50, f"{lost} references to True lost over 20,000 emits: a leaking PySide6 binding"


def test_the_probe_finds_no_leak_on_the_installed_binding() -> None:
    done = _python("""
        from PySide6.QtCore import QCoreApplication
        from ui.qt_binding_guard import bool_refs_lost_per_emit, guard_qt_binding
        app = QCoreApplication([])
        print(bool_refs_lost_per_emit(2000), guard_qt_binding())
    """)
    assert done.returncode == 0, done.stderr
    lost, notice = done.stdout.split(maxsplit=1)
    assert float(lost) == pytest.approx(0.0, abs=0.01)
    assert notice.strip() == "None"


_LEAK_LIKE_6_12 = """
    import ctypes, sys
    leaks = sys.getrefcount(True) + 100_000
    {guard}
    # What PySide6 6.12.0 does per emit: one reference to True released that was never taken.
    for _ in range(leaks):
        ctypes.pythonapi.Py_DecRef(ctypes.py_object(True))
    print("alive", True)
"""


def test_without_the_guard_such_a_leak_aborts_the_interpreter() -> None:
    done = _python(_LEAK_LIKE_6_12.format(guard="pass"))
    assert done.returncode != 0 and "bool_dealloc" in done.stderr


def test_the_guard_keeps_the_interpreter_alive_through_such_a_leak() -> None:
    guard = "from ui.qt_binding_guard import make_bools_unreachable_by_leaks; make_bools_unreachable_by_leaks()"
    done = _python(_LEAK_LIKE_6_12.format(guard=guard))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "alive True"
