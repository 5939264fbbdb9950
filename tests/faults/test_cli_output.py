"""What `voxdesk converse` prints: a bad --output is refused up front, text from outside
cannot drive the terminal, notices reach the user, and no library noise on exit."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

VOXDESK = str(Path(sys.executable).with_name("voxdesk"))
#: A reply that would fail if models loaded: the voice file does not exist.
NO_VOICE = "tts.options.voice=/nonexistent/voice.onnx"


def voxdesk(*args: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VOXDESK, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, "VOXDESK_HOME": str(home)}
    )


# -- --output is checked before anything loads ---------------------------------------------


def test_output_into_a_missing_folder_is_refused_before_models_load(tmp_path: Path, voxdesk_home: Path) -> None:
    target = tmp_path / "no" / "such" / "folder" / "reply.wav"
    out = voxdesk("converse", "--text", "hi", "--output", str(target), "--set", NO_VOICE, home=voxdesk_home)
    assert out.returncode == 2, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr  # one clear line, and the voice was never loaded
    assert str(target.parent) in lines[0] and "does not exist" in lines[0]
    assert not target.parent.exists()


def test_output_under_a_file_is_refused(tmp_path: Path, voxdesk_home: Path) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("not a folder")
    target = blocker / "reply.wav"
    out = voxdesk("converse", "--text", "hi", "--output", str(target), "--set", NO_VOICE, home=voxdesk_home)
    assert out.returncode == 2, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and str(blocker) in lines[0] and "not a folder" in lines[0], out.stderr


def test_output_that_is_a_folder_is_refused(tmp_path: Path, voxdesk_home: Path) -> None:
    out = voxdesk("converse", "--text", "hi", "--output", str(tmp_path), "--set", NO_VOICE, home=voxdesk_home)
    assert out.returncode == 2, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "is a folder" in lines[0], out.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_output_into_a_read_only_folder_is_refused(tmp_path: Path, voxdesk_home: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        out = voxdesk(
            "converse", "--text", "hi", "--output", str(folder / "r.wav"), "--set", NO_VOICE, home=voxdesk_home
        )
    finally:
        folder.chmod(0o700)
    assert out.returncode == 2, out
    assert len(out.stderr.strip().splitlines()) == 1 and "cannot write" in out.stderr


# -- text from outside is escaped on the terminal ------------------------------------------

HOSTILE = "repeat after me hello \x1b]0;owned\x07 there \x1b[2J done \u202e"


@pytest.mark.slow
def test_escape_bytes_in_turns_never_reach_the_terminal(voxdesk_home: Path) -> None:
    out = voxdesk("converse", "--text", HOSTILE, home=voxdesk_home)
    assert out.returncode == 0, out.stderr
    for raw in ("\x1b", "\x07", "\u202e"):
        assert raw not in out.stdout and raw not in out.stderr
    assert "\\x1b]0;owned\\x07" in out.stdout  # shown, visibly
    assert "\\u202e" in out.stdout


@pytest.mark.slow
def test_json_output_escapes_control_bytes_and_keeps_the_text(voxdesk_home: Path) -> None:
    out = voxdesk("converse", "--json", "--text", HOSTILE, home=voxdesk_home)
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout and "\u202e" not in out.stdout
    turn = json.loads(out.stdout)["turns"][0]
    assert turn["user"] == HOSTILE  # JSON escapes, the consumer gets the text unchanged


# -- notices reach the user; library noise does not ---------------------------------------


@pytest.mark.slow
def test_a_notice_is_printed_without_verbose(voxdesk_home: Path) -> None:
    db = voxdesk_home / "data" / "history.sqlite3"
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not a database" * 100)
    out = voxdesk("converse", "--text", "hi", home=voxdesk_home)
    assert out.returncode == 0, out.stderr
    kept = [p for p in db.parent.iterdir() if p.name != db.name and not p.name.startswith(f"{db.name}-")]
    assert len(kept) == 1, kept  # the damaged file, kept aside
    told = [line for line in out.stderr.splitlines() if kept[0].name in line]
    assert len(told) == 1, out.stderr  # the user is told once where it went
    assert "Loading speech models" not in out.stderr  # progress stays quiet unless --verbose


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
@pytest.mark.parametrize("collector", [False, True], ids=["plain", "collector-down"])
def test_no_telemetry_shutdown_warning(voxdesk_home: Path, collector: bool) -> None:
    extra = ["--set", f"telemetry.otlp_endpoint=http://127.0.0.1:{_closed_port()}"] if collector else []
    t0 = time.monotonic()
    out = voxdesk("converse", "--text", "hi", *extra, home=voxdesk_home)
    assert out.returncode == 0, out.stderr
    assert "shutdown can only be called once" not in out.stderr
    assert "opentelemetry" not in out.stderr.lower(), out.stderr
    assert time.monotonic() - t0 < 20
    assert sqlite3.connect(voxdesk_home / "data" / "history.sqlite3").execute(
        "SELECT COUNT(*) FROM turns"
    ).fetchone() == (1,)
