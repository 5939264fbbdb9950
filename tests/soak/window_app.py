"""The real `voxdesk` window in its own process, on the PulseAudio test devices.

It listens hands-free on `vox_mic` and speaks on `vox_speaker`; the test "talks" by
playing WAVs into the `mic` sink, and follows the engine's state and the GUI thread's
stalls through the app's own VOXDESK_GUI_WATCH lines.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
FATAL = ("Fatal Python error", "terminate called", "Traceback", "Segmentation fault", "Aborted")


def pulse_env() -> dict[str, str]:
    out = subprocess.run(
        ["bash", str(ROOT / "tests/audio_env.sh"), "start"], capture_output=True, text=True, timeout=30
    )
    if out.returncode != 0:
        pytest.skip(f"PulseAudio could not start: {out.stderr.strip()}")
    return dict(line.removeprefix("export ").split("=", 1) for line in out.stdout.splitlines() if "=" in line)


class WindowApp:
    def __init__(self, workdir: Path, home: Path, *extra_args: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.watch = workdir / "watch.jsonl"
        self.stderr_path = workdir / "stderr.txt"
        self.env = {
            **os.environ,
            **pulse_env(),
            "VOXDESK_HOME": str(home),
            "QT_QPA_PLATFORM": "offscreen",
            "VOXDESK_GUI_WATCH": str(self.watch),
        }
        self._stderr = self.stderr_path.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app",
                "--set",
                "activation.mode=always",
                "--set",
                "audio.input_device=vox_mic",
                "--set",
                "audio.output_device=vox_speaker",
                *extra_args,
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )

    @property
    def stderr(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def rows(self) -> list[dict[str, Any]]:
        if not self.watch.exists():
            return []
        return [json.loads(line) for line in self.watch.read_text().splitlines() if line.strip()]

    def wait_for_state(self, state: str, *, after_row: int = 0, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not any(r.get("state") == state for r in self.rows()[after_row:]):
            assert self.proc.poll() is None, f"the app exited: {self.stderr[-3000:]}"
            assert time.monotonic() < deadline, f"the window never reached {state!r}: {self.stderr[-2000:]}"
            time.sleep(0.1)

    def say(self, wav: Path) -> None:
        subprocess.run(["paplay", "--device=mic", str(wav)], env=self.env, check=True, timeout=30)

    def rss_mb(self) -> float:
        """The app and its worker processes (llama.cpp runs in one), all resident memory."""
        return sum(self.memory_by_process("VmRSS").values())

    def private_mb(self) -> float:
        """Memory only these processes hold (anonymous + shared-anonymous), the part a leak
        grows; file pages (the mmap'd model, libraries) come and go with what is touched."""
        return sum(self.memory_by_process("RssAnon", "RssShmem").values())

    def memory_by_process(self, *fields: str) -> dict[str, float]:
        """MB per process of the /proc status `fields` summed: "app", and each child by
        its pid and what it runs."""
        children = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        out: dict[str, float] = {}
        for p in [self.proc.pid, *map(int, children.split())]:
            try:
                status = Path(f"/proc/{p}/status").read_text()
                name = "app" if p == self.proc.pid else f"{p}:{Path(f'/proc/{p}/comm').read_text().strip()}"
            except OSError:
                continue
            lines = [line.split() for line in status.splitlines()]
            out[name] = sum(int(w[1]) / 1024 for w in lines if w and w[0].rstrip(":") in fields)
        return out

    def stop(self, sig: int, timeout: float = 15) -> tuple[int, float]:
        """Send `sig`; returns (exit code, seconds it took to exit)."""
        sent = time.monotonic()
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        return code, time.monotonic() - sent

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._stderr.close()


def report(request: pytest.FixtureRequest, line: str) -> None:
    """A figure for CI's log: written through pytest's terminal, captured output or not."""
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is None or reporter is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)
