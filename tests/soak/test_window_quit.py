"""Quitting the real window mid-reply, again and again: every run exits cleanly with code 0.

A reply in progress means Piper synthesising on a worker thread and audio playing; a
thread still running native code when the interpreter exits aborts the process
("terminate called without an active exception"). VOXDESK_QUIT_RUNS (20 in CI) runs.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.soak.window_app import FATAL, WindowApp, report
from tests.support.speech import have_espeak, speak_to_wav

RUNS = int(os.environ.get("VOXDESK_QUIT_RUNS", "20"))

pytestmark = [
    pytest.mark.audio,
    pytest.mark.slow,
    pytest.mark.soak,
    pytest.mark.timeout(60 + RUNS * 45),
    pytest.mark.skipif(not have_espeak(), reason="espeak-ng not installed"),
]


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_quitting_the_window_mid_reply_exits_cleanly_every_time(
    how: signal.Signals, tmp_path: Path, voxdesk_home: Path, request: pytest.FixtureRequest
) -> None:
    # Skills answer this at once with a long reply: no model load to wait for.
    question = speak_to_wav(
        "repeat after me the quick brown fox jumps over the lazy dog and then runs far away "
        "across the green fields of the valley",
        tmp_path / "q.wav",
        lead_s=0.2,
        tail_s=1.0,
    )
    expected = 0 if how == signal.SIGTERM else 130
    runs = RUNS if how == signal.SIGTERM else max(1, RUNS // 4)
    outcomes: list[str] = []
    for i in range(runs):
        app = WindowApp(tmp_path / f"run{i}", voxdesk_home)
        try:
            app.wait_for_state("listening")
            start = len(app.rows())
            app.say(question)
            app.wait_for_state("speaking", after_row=start, timeout=60)
            code, took = app.stop(how)
        finally:
            app.close()
        fatal = [f for f in FATAL if f in app.stderr]
        ok = code == expected and not fatal and took < 5.0
        outcomes.append(f"run {i}: exit {code} in {took:.2f} s{' ' + str(fatal) if fatal else ''}")
        assert ok, "\n".join(outcomes) + "\n" + app.stderr[-3000:]
    report(request, f"quit mid-reply ({how.name}): {len(outcomes)} of {runs} clean: " + "; ".join(outcomes))
