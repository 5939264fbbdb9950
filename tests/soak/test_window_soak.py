"""Soak: the real window, hands-free on PulseAudio devices, spoken questions every 20 s.

The app is `voxdesk` itself in its own process (the way a user starts it), listening on
the `vox_mic` device while the test plays espeak-ng questions into the `mic` sink. Over
VOXDESK_SOAK_S seconds (600 in CI) it must not crash, its memory must not grow by more
than 50 MB after warm-up, and the GUI thread must never stall over 50 ms. At the end the
test quits it mid-reply (SIGTERM, as a logout does) and expects a clean exit, code 0.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.speech import have_espeak, speak_to_wav

ROOT = Path(__file__).resolve().parents[2]
SOAK_S = float(os.environ.get("VOXDESK_SOAK_S", "600"))
EVERY_S = 20.0
WARM_UP_S = 60.0  # three questions: models loaded, caches and arenas at their working size
RSS_GROWTH_MB = 50.0
GUI_STALL_MS = 50.0
QUESTIONS = [
    "what is seventeen times twenty three",
    "what time is it",
    "what is the capital of france",
    "what is twelve plus thirty",
]

pytestmark = [pytest.mark.audio, pytest.mark.slow, pytest.mark.soak,
              pytest.mark.timeout(SOAK_S + 300),
              pytest.mark.skipif(not have_espeak(), reason="espeak-ng not installed")]


def _pulse_env() -> dict[str, str]:
    out = subprocess.run(["bash", str(ROOT / "tests/audio_env.sh"), "start"], capture_output=True, text=True,
                         timeout=30)
    if out.returncode != 0:
        pytest.skip(f"PulseAudio could not start: {out.stderr.strip()}")
    return dict(line.removeprefix("export ").split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def _tree_rss_mb(pid: int) -> float:
    """The app and its worker processes (llama.cpp runs in one)."""
    pids = [pid, *map(int, subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
                      .stdout.split())]
    total = 0.0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


def _watch_rows(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_hands_free_window_survives_a_long_session_and_quits_cleanly_mid_reply(
    tmp_path: Path, voxdesk_home: Path
) -> None:
    env = {**os.environ, **_pulse_env(), "VOXDESK_HOME": str(voxdesk_home), "QT_QPA_PLATFORM": "offscreen",
           "VOXDESK_GUI_WATCH": str(tmp_path / "watch.jsonl")}
    wavs = [speak_to_wav(q, tmp_path / f"q{i}.wav", lead_s=0.2, tail_s=1.0) for i, q in enumerate(QUESTIONS)]
    long_reply = speak_to_wav("tell me a long story about a lighthouse keeper", tmp_path / "long.wav",
                              lead_s=0.2, tail_s=1.0)
    stderr = (tmp_path / "stderr.txt").open("w")
    app = subprocess.Popen(
        [sys.executable, "-m", "app", "--set", "conversation.hands_free=true",
         "--set", "audio.input_device=vox_mic", "--set", "audio.output_device=vox_speaker"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    watch = tmp_path / "watch.jsonl"
    rss: list[tuple[float, float]] = []  # (seconds since the first question, MB)
    try:
        deadline = time.monotonic() + 120
        while not any(r.get("state") == "listening" for r in _watch_rows(watch)):
            assert app.poll() is None, f"the app exited at start: {(tmp_path / 'stderr.txt').read_text()[-3000:]}"
            assert time.monotonic() < deadline, "the window never started listening"
            time.sleep(0.5)
        time.sleep(1.0)  # a new PulseAudio stream settles before it runs steadily
        t0 = time.monotonic()
        asked = 0
        warm_row: int | None = None  # the first watch row after warm-up
        while (now := time.monotonic() - t0) < SOAK_S:
            assert app.poll() is None, f"died after {now:.0f} s: {(tmp_path / 'stderr.txt').read_text()[-3000:]}"
            if now >= asked * EVERY_S:
                subprocess.Popen(["paplay", "--device=mic", str(wavs[asked % len(wavs)])], env=env).wait(30)
                asked += 1
            rss.append((time.monotonic() - t0, _tree_rss_mb(app.pid)))
            if warm_row is None and now >= WARM_UP_S:
                warm_row = len(_watch_rows(watch))
            time.sleep(2.0)
        soak_rows = _watch_rows(watch)[warm_row:]

        # Quit mid-reply: ask for a long answer, wait until it is being spoken, then SIGTERM.
        subprocess.run(["paplay", "--device=mic", str(long_reply)], env=env, timeout=30)
        deadline = time.monotonic() + 60
        start = len(_watch_rows(watch))
        while not any(r.get("state") == "speaking" for r in _watch_rows(watch)[start:]):
            assert time.monotonic() < deadline, "the long question was never answered aloud"
            time.sleep(0.2)
        app.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        code = app.wait(15)
        quit_s = time.monotonic() - sent
    finally:
        if app.poll() is None:
            app.kill()
            app.wait(10)
        stderr.close()
    err = (tmp_path / "stderr.txt").read_text()

    assert code == 0, f"exit code {code} after quitting mid-reply: {err[-3000:]}"
    for fatal in ("Fatal Python error", "terminate called", "Traceback", "Segmentation fault"):
        assert fatal not in err, err[-3000:]
    assert quit_s < 5.0, f"quitting took {quit_s:.1f} s"

    # Every question was answered (the history is what the user sees afterwards).
    from app.history import History
    from app.paths import resolve_paths

    with History(resolve_paths(voxdesk_home).history_db) as history:
        turns = [t for c in history.list_conversations() for t in history.turns(c.id)]
    answered = [t for t in turns if t.reply_text.strip()]
    heard = [t.user_text for t in turns]
    assert len(answered) >= asked * 0.9, f"{len(answered)} of {asked} questions answered: {heard}"

    warm = [mb for at, mb in rss if WARM_UP_S - 10 <= at <= WARM_UP_S]
    late = [mb for at, mb in rss if at >= SOAK_S - 30]
    growth = statistics.median(late) - max(warm)
    worst_gap = max(float(str(r["worst_gap_ms"])) for r in soak_rows)
    print(f"soak {SOAK_S:.0f} s: {asked} questions, {len(answered)} answered; RSS {max(warm):.0f} → "
          f"{statistics.median(late):.0f} MB (growth {growth:+.1f} MB, peak {max(mb for _, mb in rss):.0f} MB); "
          f"worst GUI stall {worst_gap:.0f} ms; quit mid-reply in {quit_s:.2f} s")
    print("RSS by minute:", [f"{at:.0f}s {mb:.0f}" for at, mb in rss[::15]])
    print("stalls over 40 ms:", [(r["t"], r["worst_gap_ms"], r["state"]) for r in soak_rows
                                 if float(str(r["worst_gap_ms"])) > 40])
    assert growth <= RSS_GROWTH_MB, f"memory grew {growth:.0f} MB after warm-up"
    assert worst_gap <= GUI_STALL_MS, f"the GUI thread stalled {worst_gap:.0f} ms"
