"""Conversation history: nothing committed is lost, whatever happens to the process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import ChatMessage
from app.store import history as history_mod
from app.store.history import CRASH_NOTE, History
from app.store.paths import resolve_paths


@pytest.fixture
def db_path(voxdesk_home: Path) -> Path:
    return resolve_paths().ensure().history_db


@pytest.fixture
def hist(db_path: Path) -> Iterator[History]:
    h = History(db_path)
    yield h
    h.close()


def add_turn(h: History, user: str, reply: str, **kw: object) -> int:
    tid = h.begin_turn(user)
    h.finish_turn(tid, reply, **kw)  # type: ignore[arg-type]
    return tid


def test_turn_is_stored_with_everything_the_ui_shows(hist: History) -> None:
    tid = hist.begin_turn("what time is it")
    cid = hist.current_conversation
    assert cid is not None
    hist.finish_turn(  # positional, the way the engine calls it
        tid,
        "It is 4:05 PM.",
        False,
        {"stt": 120.5, "llm": 3.0, "tts": 80.0},
        {"stt": "faster-whisper", "llm": "skills", "tts": "piper"},
        None,
        640.0,
    )
    [turn] = hist.turns(cid)
    assert (turn.user_text, turn.reply_text, turn.status, turn.interrupted) == (
        "what time is it",
        "It is 4:05 PM.",
        "complete",
        False,
    )
    assert turn.timings == {"stt": 120.5, "llm": 3.0, "tts": 80.0}
    assert turn.providers["llm"] == "skills"
    assert turn.voice_to_voice_ms == 640.0
    assert turn.finished_at is not None and turn.finished_at >= turn.started_at
    [conv] = hist.list_conversations()
    assert conv.title == "what time is it"  # titled after the first question
    assert conv.turn_count == 1


def test_a_begun_turn_is_committed_before_it_finishes(hist: History, db_path: Path) -> None:
    hist.begin_turn("are you there")
    other = sqlite3.connect(db_path)  # another connection sees it: it is committed
    try:
        assert other.execute("SELECT user_text, status FROM turns").fetchall() == [("are you there", "in_progress")]
    finally:
        other.close()


def test_interrupted_and_failed_turns(hist: History) -> None:
    a = add_turn(hist, "tell me a story", "Once upon a time", interrupted=True)
    b = add_turn(hist, "weather?", "", error="stt: TIMEOUT: no answer in time")
    cid = hist.current_conversation
    assert cid is not None
    by_id = {t.id: t for t in hist.turns(cid)}
    assert by_id[a].status == "interrupted" and by_id[a].interrupted
    assert by_id[b].status == "error" and by_id[b].error == "stt: TIMEOUT: no answer in time"


def test_recent_messages_newest_within_budget_in_order(hist: History) -> None:
    for i in range(5):
        add_turn(hist, f"question {i}", f"answer {i}")  # 10 + 8 chars each
    assert hist.recent_messages(budget_chars=40) == [
        ChatMessage("user", "question 3"),
        ChatMessage("assistant", "answer 3"),
        ChatMessage("user", "question 4"),
        ChatMessage("assistant", "answer 4"),
    ]
    assert [m.content for m in hist.recent_messages(1)] == ["question 4", "answer 4"]
    assert len(hist.recent_messages(3, budget_chars=40)) == 4  # the tighter budget wins
    assert len(hist.recent_messages()) == 10
    assert hist.recent_messages(budget_chars=10) == []  # not even one whole turn fits
    assert hist.recent_messages(max_turns=0) == []


def test_recent_messages_keep_what_was_actually_said(hist: History) -> None:
    add_turn(hist, "tell me a story", "Once upon a time there", interrupted=True)
    add_turn(hist, "hello", "", error="llm: UNAVAILABLE: down")  # nothing was said
    hist.begin_turn("the turn being answered now")
    msgs = hist.recent_messages(budget_chars=10_000)
    assert msgs == [
        ChatMessage("user", "tell me a story"),
        ChatMessage("assistant", "Once upon a time there"),
    ]


def test_new_conversation_starts_a_fresh_context(hist: History) -> None:
    add_turn(hist, "first chat", "yes")
    old = hist.current_conversation
    new = hist.new_conversation("Shopping")
    assert new != old and hist.current_conversation == new
    assert hist.recent_messages() == []
    add_turn(hist, "milk", "added")
    assert [m.content for m in hist.recent_messages()] == ["milk", "added"]
    assert [c.title for c in hist.list_conversations()] == ["Shopping", "first chat"]
    assert old is not None
    assert [m.content for m in hist.recent_messages(conversation_id=old)] == ["first chat", "yes"]


def test_delete_conversation(hist: History) -> None:
    add_turn(hist, "secret", "ok")
    cid = hist.current_conversation
    assert cid is not None
    assert hist.delete_conversation(cid)
    assert hist.list_conversations() == [] and hist.turns(cid) == []
    assert hist.current_conversation is None
    assert not hist.delete_conversation(cid)
    assert hist.integrity_check()


def test_export_json_round_trip(hist: History, tmp_path: Path) -> None:
    add_turn(hist, "what's 2+2?", "4.", timings={"llm": 1.5}, providers={"llm": "skills"}, voice_to_voice_ms=500.0)
    add_turn(hist, 'say something "odd"\nwith a newline & ünïcödé', "Sure — *markdown* `code`", interrupted=True)
    cid = hist.current_conversation
    assert cid is not None
    exported = hist.export(cid, "json")
    doc = json.loads(exported)
    assert doc["format"] == "voxdesk.conversation"
    assert [t["user_text"] for t in doc["turns"]] == [
        "what's 2+2?",
        'say something "odd"\nwith a newline & ünïcödé',
    ]

    with History(tmp_path / "other.sqlite3") as other:
        new_id = other.import_json(exported)
        assert other.export(new_id, "json") == exported
        assert [(t.user_text, t.reply_text, t.interrupted) for t in other.turns(new_id)] == [
            (t.user_text, t.reply_text, t.interrupted) for t in hist.turns(cid)
        ]


def test_export_markdown_has_every_turn_in_order(hist: History) -> None:
    add_turn(hist, "what time is it", "It is 4:05 PM.", providers={"llm": "skills"})
    add_turn(hist, "tell me a story", "Once upon", interrupted=True)
    add_turn(hist, "hello?", "", error="stt: TIMEOUT: no answer in time")
    cid = hist.current_conversation
    assert cid is not None
    md = hist.export(cid, "markdown")
    assert md.startswith("# what time is it\n")
    pos = 0
    for s in (
        "## Turn 1",
        "what time is it",
        "It is 4:05 PM.",
        "## Turn 2",
        "Once upon",
        "_(interrupted)_",
        "## Turn 3",
        "_(no reply)_",
        "_Error: stt: TIMEOUT: no answer in time_",
    ):
        pos = md.index(s, pos) + len(s)  # each one after the previous


def test_export_rejects_unknown_things(hist: History) -> None:
    with pytest.raises(VoiceError) as err:
        hist.export(12345)
    assert err.value.code is ErrorCode.NOT_FOUND
    add_turn(hist, "a", "b")
    with pytest.raises(VoiceError) as err:
        hist.export(hist.current_conversation or 0, "pdf")  # type: ignore[arg-type]
    assert err.value.code is ErrorCode.INVALID_CONFIG
    with pytest.raises(VoiceError):
        hist.import_json('{"format": "something else"}')
    with pytest.raises(VoiceError) as err:
        hist.finish_turn(98765, "reply")
    assert err.value.code is ErrorCode.NOT_FOUND
    with pytest.raises(VoiceError) as err:
        hist.begin_turn("hi", conversation_id=98765)
    assert err.value.code is ErrorCode.NOT_FOUND


def test_reopening_keeps_everything(db_path: Path) -> None:
    with History(db_path) as h:
        add_turn(h, "remember this", "noted")
    with History(db_path) as h:
        assert h.notice is None
        [conv] = h.list_conversations()
        assert [t.reply_text for t in h.turns(conv.id)] == ["noted"]


# ---------------------------------------------------------------- crash safety

CHILD = r"""
import sys
from app.store.history import History

h = History(sys.argv[1])
for i in range(3):
    t = h.begin_turn(f"question {i}")
    h.finish_turn(t, f"answer {i}", timings={"stt": 1.0 + i}, providers={"stt": "faster-whisper"})
conversation = h.current_conversation
big = h.export(conversation, "json")
doc = __import__("json").loads(big)
doc["turns"] = doc["turns"] * 100  # 300 turns written in one transaction per import
big = __import__("json").dumps(doc)
t = h.begin_turn("the question being answered when killed")
h.checkpoint_reply(t, "Once upon a time")
print("BEGUN", conversation, t, flush=True)
n = 0
while True:  # the write loop the parent kills us in
    n += 1
    h.checkpoint_reply(t, "Once upon a time" + " and then" * n)
    h.import_json(big)
    if n == 2:
        print("LOOPING", flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_history_survives_sigkill_mid_turn(db_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        begun = proc.stdout.readline().split()
        assert begun[:1] == ["BEGUN"], proc.stderr.read() if proc.stderr else ""
        conversation, in_flight = int(begun[1]), int(begun[2])
        assert proc.stdout.readline().strip() == "LOOPING"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
    assert proc.returncode == -signal.SIGKILL

    with History(db_path) as h:
        assert h.notice is None
        assert h.integrity_check()
        turns = h.turns(conversation)
        assert [(t.user_text, t.reply_text, t.status) for t in turns[:3]] == [
            (f"question {i}", f"answer {i}", "complete") for i in range(3)
        ]
        assert turns[0].timings == {"stt": 1.0}
        killed = turns[3]
        assert killed.id == in_flight
        assert killed.status == "interrupted" and killed.interrupted
        assert killed.error == CRASH_NOTE
        assert killed.reply_text.startswith("Once upon a time and then")  # checkpoint kept
        # Every import either landed whole or not at all.
        imported = [c for c in h.list_conversations() if c.id != conversation]
        assert len(imported) >= 2
        assert {c.turn_count for c in imported} == {300}
        # What the LLM gets next time includes the interrupted reply as spoken.
        msgs = h.recent_messages(conversation_id=conversation, budget_chars=10_000)
        assert msgs[-1] == ChatMessage("assistant", killed.reply_text)


# ---------------------------------------------------------------- damaged files


def test_a_file_that_is_not_a_database_is_moved_aside(db_path: Path) -> None:
    garbage = b"this is not sqlite at all\n" * 200
    db_path.write_bytes(garbage)
    with History(db_path) as h:
        assert h.notice is not None and "corrupt" in h.notice
        [moved] = db_path.parent.glob(db_path.name + ".corrupt.*")
        assert str(moved) in h.notice
        assert moved.read_bytes() == garbage  # nothing silently lost
        add_turn(h, "hi", "hello")  # the fresh one works
        assert h.integrity_check()


def test_a_damaged_database_is_moved_aside(db_path: Path) -> None:
    with History(db_path) as h:
        for i in range(30):
            add_turn(h, f"question {i} " + "x" * 500, "answer " + "y" * 1000)
    with db_path.open("r+b") as fh:  # scribble over b-tree pages
        fh.seek(4096 * 3)
        fh.write(bytes(range(256)) * 32)
    with History(db_path) as h:
        assert h.notice is not None and "could not be read" in h.notice
        assert list(db_path.parent.glob(db_path.name + ".corrupt.*"))
        assert h.list_conversations() == []
        assert h.integrity_check()


def test_an_unopenable_path_is_reported_not_moved_and_the_conversation_goes_on(tmp_path: Path) -> None:
    target = tmp_path / "history.sqlite3"
    target.mkdir()  # a directory where the file should be
    h = History(target)
    assert h.notice and str(target) in h.notice and not h.readable
    h.finish_turn(h.begin_turn("hi"), "hello")  # kept in memory meanwhile
    assert [m.content for m in h.recent_messages()] == ["hi", "hello"]
    h.close()
    assert target.is_dir()  # left alone


def test_closed_history_says_so(db_path: Path) -> None:
    h = History(db_path)
    h.close()
    h.close()  # twice is fine
    with pytest.raises(VoiceError) as err:
        h.begin_turn("hello")
    assert err.value.code is ErrorCode.UNAVAILABLE


# ---------------------------------------------------------------- schema versions


def test_schema_version_is_recorded(hist: History, db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == history_mod.SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_migration_hook_upgrades_an_old_database(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with History(db_path) as h:
        add_turn(h, "before the upgrade", "ok")

    def v2(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE turns ADD COLUMN language TEXT NOT NULL DEFAULT 'en'")

    monkeypatch.setattr(history_mod, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(history_mod.MIGRATIONS, 2, v2)
    with History(db_path) as h:
        assert h.notice is None
        [conv] = h.list_conversations()
        assert [t.user_text for t in h.turns(conv.id)] == ["before the upgrade"]
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        assert conn.execute("SELECT language FROM turns").fetchall() == [("en",)]
    finally:
        conn.close()


def test_a_failing_migration_changes_nothing(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with History(db_path) as h:
        add_turn(h, "keep me", "ok")

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE turns ADD COLUMN half_done TEXT")
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(history_mod, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(history_mod.MIGRATIONS, 2, broken)
    h = History(db_path)
    assert h.notice and "Can't save the conversation history" in h.notice
    h.close()
    monkeypatch.undo()
    with History(db_path) as h:  # still version 1, data intact, file not moved
        assert h.notice is None
        [conv] = h.list_conversations()
        assert [t.user_text for t in h.turns(conv.id)] == ["keep me"]


def test_a_newer_database_is_used_with_a_notice(db_path: Path) -> None:
    with History(db_path) as h:
        add_turn(h, "from the future", "ok")
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with History(db_path) as h:
        assert h.notice is not None and "newer" in h.notice
        assert len(h.list_conversations()) == 1


# ---------------------------------------------------------------- concurrency


def test_concurrent_writers_from_threads(hist: History) -> None:
    cid = hist.new_conversation()
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for i in range(10):
                tid = hist.begin_turn(f"t{k}-{i}", conversation_id=cid)
                hist.finish_turn(tid, f"r{k}-{i}")
                hist.recent_messages(4, conversation_id=cid)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    turns = hist.turns(cid)
    assert len(turns) == 40 and all(t.status == "complete" for t in turns)
    assert hist.integrity_check()


async def test_usable_from_the_event_loop_via_threads(hist: History) -> None:
    tid = await asyncio.to_thread(hist.begin_turn, "hello")
    await asyncio.to_thread(hist.finish_turn, tid, "hi there")
    msgs = await asyncio.to_thread(hist.recent_messages, 8)
    assert msgs == [ChatMessage("user", "hello"), ChatMessage("assistant", "hi there")]


def test_history_command_lists_and_exports(tmp_path: Path) -> None:
    import io

    from app.commands.history import HistoryRequest, history_command
    from app.store.paths import resolve_paths

    paths = resolve_paths(str(tmp_path / "home")).ensure()
    h = History(paths.history_db)
    t = h.begin_turn("what is 2 plus 2")
    h.finish_turn(t, "2 plus 2 is 4.")
    h.close()
    out = io.StringIO()
    assert history_command(HistoryRequest("list"), paths, out) == 0
    assert "what is 2 plus 2" in out.getvalue() and "1 turns" in out.getvalue()
    target = tmp_path / "conv.json"
    assert history_command(HistoryRequest("export", ["1"], "json", str(target)), paths, io.StringIO()) == 0
    doc = json.loads(target.read_text())
    assert doc["turns"][0]["reply_text"] == "2 plus 2 is 4."
    with pytest.raises(VoiceError) as err:
        history_command(HistoryRequest("export", [], "json"), paths, io.StringIO())
    assert "history list" in str(err.value)
