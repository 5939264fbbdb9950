"""History faults: a full or read-only disk, a damaged file, hostile transcripts.

The disks are real: a small tmpfs mounted for the test (it needs root, as the CI
container runs; elsewhere the test is skipped), filled with a real file until the
kernel says ENOSPC, and remounted read-only. Only a read-only database *mid-run*
cannot be produced for real (Linux refuses to remount a filesystem read-only while
the database is open for writing), so that case uses SQLite's own `query_only`
switch, which fails writes exactly as a read-only file does.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.plugin.provider_api import ChatMessage
from app.store.history import History

REPO = Path(__file__).resolve().parents[2]
VOXDESK = REPO / ".venv" / "bin" / "voxdesk"


# ---------------------------------------------------------------- a real small disk


class SmallDisk:
    """A tmpfs of `size_kb` mounted at `root`: fill it, free it, make it read-only."""

    def __init__(self, root: Path, size_kb: int) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0755", "tmpfs", str(root)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here ({proc.stderr.strip() or proc.returncode})")
        self._filler = root / f"filler-{uuid.uuid4().hex}"

    def fill(self) -> None:
        """Write until the kernel says the disk is full (ENOSPC), and leave it full."""
        n = 0
        with contextlib.suppress(OSError), self._filler.open("ab", buffering=0) as fh:
            for block in (65536, 4096, 512, 1):
                while True:
                    fh.write(b"\0" * block)
                    n += block
        st = os.statvfs(self.root)
        assert st.f_bavail == 0, "the disk should be full"

    def free(self) -> None:
        self._filler.unlink(missing_ok=True)

    def read_only(self) -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(self.root)], check=True, capture_output=True)

    def writable(self) -> None:
        subprocess.run(["mount", "-o", "remount,rw", str(self.root)], check=True, capture_output=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.root)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[..., SmallDisk]]:
    disks: list[SmallDisk] = []

    def make(name: str = "disk", size_kb: int = 2048) -> SmallDisk:
        disk = SmallDisk(tmp_path / name, size_kb)
        disks.append(disk)
        return disk

    yield make
    for d in disks:
        d.unmount()


def voxdesk(
    home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("VOXDESK_HOME", None)
    return subprocess.run(
        [str(VOXDESK), "--home", str(home), *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=REPO,
        timeout=timeout,
    )


def stored_turns(db: Path) -> list[tuple[str, str, str]]:
    """(user text, reply, status) of every turn, read with plain sqlite3."""
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT user_text, reply_text, status FROM turns ORDER BY id").fetchall()
    finally:
        conn.close()


BIG = 60_000  # a long reply: more than the WAL can hold in the pages it already has


# ---------------------------------------------------------------- write failures


def test_a_full_disk_mid_conversation_loses_nothing_and_says_so_once(small_disk: Callable[..., SmallDisk]) -> None:
    disk = small_disk()
    db = disk.root / "history.sqlite3"
    told: list[str] = []
    h = History(db)
    h.on_notice = told.append
    t = h.begin_turn("before the disk filled")
    h.finish_turn(t, "saved normally")
    disk.fill()
    replies = [f"reply {i} " + "x" * BIG for i in range(3)]
    for i, reply in enumerate(replies):
        tid = h.begin_turn(f"question {i} while full")  # never raises
        h.checkpoint_reply(tid, reply[:100])
        h.finish_turn(tid, reply, timings={"llm": 0.1})
    assert len(told) == 1, told  # once per outage, not once per write
    assert "Can't save the conversation history" in told[0]
    assert "disk full" in told[0] and str(disk.root) in told[0] and "free some space" in told[0]
    # The conversation goes on with its context: the unsaved turns are what the LLM sees.
    msgs = h.recent_messages(10, budget_chars=10**7)
    assert [m.content for m in msgs if m.role == "user"] == [
        "before the disk filled",
        "question 0 while full",
        "question 1 while full",
        "question 2 while full",
    ]
    disk.free()
    tid = h.begin_turn("after space came back")  # the next write flushes everything
    h.finish_turn(tid, "all saved")
    assert len(told) == 2 and "saved again" in told[1], told
    h.close()
    rows = stored_turns(db)
    assert [r[0] for r in rows] == [
        "before the disk filled",
        "question 0 while full",
        "question 1 while full",
        "question 2 while full",
        "after space came back",
    ]
    assert [r[1] for r in rows[1:4]] == replies  # every word of every reply
    assert {r[2] for r in rows} == {"complete"}


def test_a_turn_begun_before_the_disk_filled_is_finished_after(small_disk: Callable[..., SmallDisk]) -> None:
    disk = small_disk()
    db = disk.root / "history.sqlite3"
    with History(db) as h:
        tid = h.begin_turn("long question")  # committed while there was space
        disk.fill()
        h.finish_turn(tid, "long answer " + "y" * BIG, interrupted=True)
        disk.free()
        h.begin_turn("next")
    rows = stored_turns(db)
    assert rows[0] == ("long question", "long answer " + "y" * BIG, "interrupted")


def test_a_read_only_database_mid_run_keeps_turns_and_recovers() -> None:
    # Linux cannot remount a filesystem read-only under an open database, so SQLite's
    # own read-only switch stands in for it: writes fail with "attempt to write a
    # readonly database", as with a read-only file.
    db = Path(os.environ["VOXDESK_HOME"]) / "history.sqlite3"
    told: list[str] = []
    h = History(db)
    h.on_notice = told.append
    conn = h._conn
    assert conn is not None
    conn.execute("PRAGMA query_only = 1")
    tid = h.begin_turn("while read-only")
    h.finish_turn(tid, "kept in memory")
    assert len(told) == 1 and "read-only" in told[0] and "it will be saved" in told[0], told
    conn.execute("PRAGMA query_only = 0")
    h.finish_turn(h.begin_turn("writable again"), "ok")
    h.close()
    assert [r[:2] for r in stored_turns(db)] == [("while read-only", "kept in memory"), ("writable again", "ok")]
    assert len(told) == 2


def test_a_read_only_home_at_start_still_runs_and_saves_once_writable(small_disk: Callable[..., SmallDisk]) -> None:
    disk = small_disk()
    db = disk.root / "data" / "history.sqlite3"
    disk.read_only()  # not even the data folder can be created
    told: list[str] = []
    h = History(db)  # no exception: start-up continues
    h.on_notice = told.append
    assert h.notice is not None and "read-only" in h.notice and str(disk.root) in h.notice
    tid = h.begin_turn("hello")
    h.finish_turn(tid, "hi there")
    assert h.recent_messages(4) == [ChatMessage("user", "hello"), ChatMessage("assistant", "hi there")]
    assert told == []  # the outage was already told through `notice`
    disk.writable()
    h.finish_turn(h.begin_turn("and now"), "saved")
    assert len(told) == 1 and "saved again" in told[0]
    h.close()
    assert [r[0] for r in stored_turns(db)] == ["hello", "and now"]


def test_turns_still_unsaved_at_exit_are_kept_and_added_next_time(
    small_disk: Callable[..., SmallDisk], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = small_disk()
    db = disk.root / "history.sqlite3"
    spare = tmp_path / "spare-tmp"
    spare.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spare))  # where the temp folder is, for this process
    told: list[str] = []
    with History(db) as h:
        h.finish_turn(h.begin_turn("first"), "one")
        h.on_notice = told.append
        disk.fill()
        h.finish_turn(h.begin_turn("said while the disk was full"), "must not be lost")
    # The disk stayed full to the end: the turn went to a file elsewhere, and the user was told where.
    [kept] = list(spare.glob("voxdesk-unsaved-history-*.json"))
    assert str(kept) in told[-1], told
    assert stat_mode(kept) == 0o600  # transcripts are private
    disk.free()
    with History(db) as h:
        assert h.notice is not None and "added" in h.notice
    assert [r[:2] for r in stored_turns(db)] == [("first", "one"), ("said while the disk was full", "must not be lost")]
    assert not kept.exists()  # added once, not again on every start


def test_turns_cut_off_by_the_end_of_a_full_disk_run_keep_what_was_spoken(
    small_disk: Callable[..., SmallDisk], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = small_disk()
    db = disk.root / "history.sqlite3"
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    h = History(db)
    h.retry_interval_s = 0
    stored = h.begin_turn("begun while there was space")  # in the file, in progress
    disk.fill()
    h.checkpoint_reply(stored, "first half of the answer " + "a" * BIG)
    unsaved = h.begin_turn("begun on the full disk")
    h.checkpoint_reply(unsaved, "what was said of it")
    h.close()  # the app stops mid-reply; neither turn ever finished
    disk.free()
    with History(db) as h2:
        [conv] = h2.list_conversations()
        turns = h2.turns(conv.id)
    assert [(t.user_text, t.reply_text, t.status) for t in turns] == [
        ("begun while there was space", "first half of the answer " + "a" * BIG, "interrupted"),
        ("begun on the full disk", "what was said of it", "interrupted"),
    ]


def stat_mode(p: Path) -> int:
    return p.stat().st_mode & 0o777


def test_memory_for_unsaved_turns_is_bounded() -> None:
    db = Path(os.environ["VOXDESK_HOME"]) / "history.sqlite3"
    told: list[str] = []
    h = History(db)
    h.on_notice = told.append
    h.max_pending_chars = 10_000
    assert h._conn is not None
    h._conn.execute("PRAGMA query_only = 1")
    for i in range(40):
        h.finish_turn(h.begin_turn(f"q{i}"), "r" * 1000)
    assert h.pending_chars() <= 10_000
    h._conn.execute("PRAGMA query_only = 0")
    h.finish_turn(h.begin_turn("last"), "ok")
    h.close()
    rows = stored_turns(db)
    assert rows[-1][0] == "last" and rows[-2][0] == "q39"  # the newest are kept
    dropped = 41 - len(rows)
    assert dropped > 0 and f"{dropped} of the turns" in told[-1] and "dropped" in told[-1], told


async def test_a_turn_gets_its_reply_when_history_cannot_be_written(small_disk: Callable[..., SmallDisk]) -> None:
    """The real session on a full disk: the reply still comes, no task dies unobserved."""
    import asyncio

    from app.audio.files import WavFileSink
    from app.engine.events import Event, TurnFinished
    from app.engine.session import Session
    from app.store.paths import AppPaths
    from app.store.settings import Settings

    disk = small_disk()
    paths = AppPaths(disk.root / "config", disk.root / "data", disk.root / "cache").ensure()
    disk.fill()
    loop = asyncio.get_running_loop()
    unhandled: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, ctx: unhandled.append(ctx))
    session = Session(Settings(), paths, sink=WavFileSink(None))
    events: list[Event] = []
    session.add_listener(events.append)
    try:
        await session.start()
        await asyncio.wait_for(session.ready.wait(), 60)
        await asyncio.wait_for(session.send_text("what is 2 plus 2"), 60)
        await asyncio.wait_for(session.send_text("what is 3 plus 3"), 60)
    finally:
        disk.free()  # before closing: what was said is written then
        await session.aclose()
    done = [e for e in events if isinstance(e, TurnFinished)]
    assert [(e.reply_text, e.error) for e in done] == [("2 plus 2 is 4.", None), ("3 plus 3 is 6.", None)]
    assert unhandled == []
    assert [r[:2] for r in stored_turns(paths.history_db)] == [
        ("what is 2 plus 2", "2 plus 2 is 4."),
        ("what is 3 plus 3", "3 plus 3 is 6."),
    ]


# ---------------------------------------------------------------- the command line


def test_cli_a_damaged_history_is_kept_aside_and_the_user_told_where(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    db = home / "data" / "history.sqlite3"
    garbage = b"not a database, a page of something else\n" * 100
    db.write_bytes(garbage)
    out = voxdesk(home, "history", "list")
    assert out.returncode == 0, out.stderr
    [kept] = list(db.parent.glob("history.sqlite3.corrupt.*"))
    assert kept.read_bytes() == garbage
    assert f"history file was damaged; kept it as {kept}; starting a new history" in out.stderr
    assert "Traceback" not in out.stderr
    assert out.stdout == "No conversations yet.\n"


def test_cli_a_damaged_history_on_a_read_only_disk_is_left_alone_and_explained(
    small_disk: Callable[..., SmallDisk],
) -> None:
    disk = small_disk()
    home = disk.root
    (home / "data").mkdir()
    (home / "config").mkdir()
    (home / "cache").mkdir()
    db = home / "data" / "history.sqlite3"
    db.write_bytes(b"garbage " * 512)
    disk.read_only()
    out = voxdesk(home, "history", "list")
    assert out.returncode == 1, out.stdout + out.stderr
    assert db.read_bytes() == b"garbage " * 512  # untouched
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, out.stderr
    assert "damaged" in lines[0] and "read-only" in lines[0] and str(db.parent) in lines[0]


def test_cli_history_list_reads_a_read_only_home(small_disk: Callable[..., SmallDisk]) -> None:
    disk = small_disk()
    home = disk.root
    for d in ("config", "data", "cache"):
        (home / d).mkdir()
    with History(home / "data" / "history.sqlite3") as h:
        h.finish_turn(h.begin_turn("what is the capital of france"), "Paris.")
    disk.read_only()
    out = voxdesk(home, "history", "list")
    assert out.returncode == 0, out.stderr
    assert "what is the capital of france" in out.stdout


def test_cli_a_full_disk_does_not_stop_a_conversation(small_disk: Callable[..., SmallDisk], tmp_path: Path) -> None:
    disk = small_disk()
    home = disk.root
    for d in ("config", "data", "cache"):
        (home / d).mkdir()
    disk.fill()
    spare = tmp_path / "spare-tmp"
    spare.mkdir()
    out = voxdesk(
        home,
        "converse",
        "--text",
        "what is 2 plus 2",
        "--text",
        "what is 3 plus 3",
        "--json",
        env={"TMPDIR": str(spare)},
    )
    assert out.returncode == 0, out.stderr
    replies = [t["reply"] for t in json.loads(out.stdout)["turns"]]
    assert replies == ["2 plus 2 is 4.", "3 plus 3 is 6."]
    assert "Traceback" not in out.stderr and "never retrieved" not in out.stderr
    assert out.stderr.count("Can't save the conversation history") == 1, out.stderr
    disk.free()  # what was said is added to the history once there is space
    listed = voxdesk(home, "history", "list", env={"TMPDIR": str(spare)})
    assert listed.returncode == 0, listed.stderr
    assert "2 turns" in listed.stdout and "what is 2 plus 2" in listed.stdout


def test_cli_history_list_escapes_terminal_control_characters(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    hostile = "hi\x1b]0;owned\x07\x1b[2J\x9b31m\u202eevil"
    with History(home / "data" / "history.sqlite3") as h:
        h.finish_turn(h.begin_turn(hostile), "reply\x1b[31m red")
    listed = voxdesk(home, "history", "list")
    assert listed.returncode == 0, listed.stderr
    assert "\x1b" not in listed.stdout and "\x9b" not in listed.stdout and "\u202e" not in listed.stdout
    assert "\\x1b]0;owned" in listed.stdout
    md = voxdesk(home, "history", "export", "1")
    assert md.returncode == 0, md.stderr
    assert "\x1b" not in md.stdout and "\x07" not in md.stdout and "\\x1b[31m red" in md.stdout
    js = voxdesk(home, "history", "export", "1", "--format", "json")
    assert js.returncode == 0, js.stderr
    assert "\x1b" not in js.stdout and "\x9b" not in js.stdout and "\u202e" not in js.stdout
    assert json.loads(js.stdout)["turns"][0]["user_text"] == hostile  # still lossless JSON
    target = tmp_path / "export.json"
    assert voxdesk(home, "history", "export", "1", "--format", "json", "--output", str(target)).returncode == 0
    assert json.loads(target.read_text())["turns"][0]["reply_text"] == "reply\x1b[31m red"


def test_cli_history_unavailable_says_so_and_exits_1(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "data" / "history.sqlite3").mkdir(parents=True)  # a folder where the file should be
    out = voxdesk(home, "history", "list")
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and "No conversations yet" not in out.stdout
    assert str(home / "data" / "history.sqlite3") in out.stderr


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
