"""Managing past conversations: search, rename, delete with undo, no empty ones listed."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.plugin.errors import ErrorCode, VoiceError
from app.store.history import History
from app.store.paths import resolve_paths


@pytest.fixture
def db_path(voxdesk_home: Path) -> Path:
    return resolve_paths().ensure().history_db


@pytest.fixture
def hist(db_path: Path) -> Iterator[History]:
    h = History(db_path)
    yield h
    h.close()


def add_turn(h: History, user: str, reply: str) -> int:
    tid = h.begin_turn(user)
    h.finish_turn(tid, reply)
    return tid


def chat(h: History, *turns: tuple[str, str], title: str | None = None) -> int:
    cid = h.new_conversation(title)
    for user, reply in turns:
        add_turn(h, user, reply)
    return cid


def stored_titles(db_path: Path) -> list[str]:
    conn = sqlite3.connect(db_path)
    try:
        return [r[0] for r in conn.execute("SELECT title FROM conversations ORDER BY id")]
    finally:
        conn.close()


def test_a_conversation_without_turns_is_not_listed(hist: History) -> None:
    chat(hist, ("what time is it", "It is noon."))
    empty = hist.new_conversation()  # "New conversation" opens one before anything is said
    assert [c.title for c in hist.list_conversations()] == ["what time is it"]
    assert empty in [c.id for c in hist.list_conversations(include_empty=True)]
    add_turn(hist, "and now", "Still noon.")
    assert hist.list_conversations()[0].id == empty


def test_search_matches_titles_questions_and_replies_ignoring_case(hist: History) -> None:
    weather = chat(hist, ("Will it rain in Zürich?", "Light showers after four."))
    timer = chat(hist, ("set a timer", "Timer set for ten minutes."), title="Kitchen")
    music = chat(hist, ("play some JAZZ", "Playing jazz."))
    assert [c.id for c in hist.search_conversations("zürich")] == [weather]
    assert [c.id for c in hist.search_conversations("ZÜRICH")] == [weather]
    assert [c.id for c in hist.search_conversations("showers")] == [weather]  # a reply
    assert [c.id for c in hist.search_conversations("kitchen")] == [timer]  # a title
    assert [c.id for c in hist.search_conversations("jazz")] == [music]
    assert [c.id for c in hist.search_conversations("timer ten")] == [timer]  # every word, anywhere
    assert hist.search_conversations("timer jazz") == []
    assert [c.id for c in hist.search_conversations("  ")] == [music, timer, weather]
    assert hist.search_conversations("100%") == []  # no LIKE wildcards


def test_search_finds_turns_not_yet_written(hist: History, monkeypatch: pytest.MonkeyPatch) -> None:
    chat(hist, ("saved question", "saved answer"))
    hist.retry_interval_s = 3600

    def refuse(_conn: sqlite3.Connection) -> set[int]:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(hist, "_write_pending", refuse)
    add_turn(hist, "kept in memory about penguins", "Penguins live in the south.")
    assert hist.outage is not None
    [found] = hist.search_conversations("penguins")
    assert found.turn_count == 2
    assert [c.id for c in hist.search_conversations("saved")] == [found.id]


def test_rename_is_stored_and_a_blank_name_goes_back_to_the_first_question(hist: History, db_path: Path) -> None:
    cid = chat(hist, ("how tall is the eiffel tower", "330 metres."))
    assert hist.rename_conversation(cid, "  Paris   trip ")
    assert [c.title for c in hist.list_conversations()] == ["Paris trip"]
    assert stored_titles(db_path) == ["Paris trip"]
    assert [c.id for c in hist.search_conversations("paris")] == [cid]
    assert hist.rename_conversation(cid, "")
    assert [c.title for c in hist.list_conversations()] == ["how tall is the eiffel tower"]
    assert not hist.rename_conversation(9999, "nothing")
    long = "x" * 500
    assert hist.rename_conversation(cid, long)
    assert len(hist.list_conversations()[0].title) == 120


def test_rename_a_conversation_not_yet_written(hist: History, monkeypatch: pytest.MonkeyPatch) -> None:
    hist.retry_interval_s = 3600

    def refuse(_conn: sqlite3.Connection) -> set[int]:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(hist, "_write_pending", refuse)
    cid = chat(hist, ("question on a full disk", "answer"))
    assert cid < 0
    assert hist.rename_conversation(cid, "Unsaved")
    assert [c.title for c in hist.list_conversations()] == ["Unsaved"]


def test_delete_can_be_undone_until_the_trash_is_emptied(hist: History, db_path: Path) -> None:
    keep = chat(hist, ("keep me", "kept"))
    gone = chat(hist, ("forget me", "forgotten"))
    assert hist.current_conversation == gone
    assert hist.trash_conversation(gone)
    assert [c.id for c in hist.list_conversations()] == [keep]
    assert hist.search_conversations("forget") == []
    assert hist.current_conversation is None  # the next turn starts a new conversation
    assert hist.trashed == [gone]
    with pytest.raises(VoiceError) as err:
        hist.resume(gone)
    assert err.value.code is ErrorCode.NOT_FOUND
    assert len(stored_titles(db_path)) == 2  # still on disk: it can come back

    assert hist.restore_conversation(gone)
    assert [c.id for c in hist.list_conversations()] == [gone, keep]
    assert [t.user_text for t in hist.turns(gone)] == ["forget me"]
    assert not hist.restore_conversation(gone)  # not in the trash any more

    assert hist.trash_conversation(gone)
    assert hist.empty_trash() == 1
    assert stored_titles(db_path) == ["keep me"]
    assert not hist.restore_conversation(gone)
    assert hist.turns(gone) == []
    assert not hist.trash_conversation(gone)
    assert hist.integrity_check()


def test_closing_makes_a_pending_delete_final(db_path: Path) -> None:
    with History(db_path) as h:
        chat(h, ("keep me", "kept"))
        gone = chat(h, ("forget me", "forgotten"))
        h.trash_conversation(gone)
    assert stored_titles(db_path) == ["keep me"]
    with History(db_path) as h:
        assert [c.title for c in h.list_conversations()] == ["keep me"]


def test_a_delete_the_disk_refuses_stays_in_the_trash(hist: History, monkeypatch: pytest.MonkeyPatch) -> None:
    cid = chat(hist, ("locked file", "ok"))
    hist.trash_conversation(cid)

    def refuse(_cid: int) -> bool:
        raise VoiceError("history.write", ErrorCode.UNAVAILABLE, "cannot write the conversation history (locked)")

    monkeypatch.setattr(hist, "delete_conversation", refuse)
    assert hist.empty_trash() == 0
    assert hist.trashed == [cid]
    monkeypatch.undo()
    assert hist.empty_trash() == 1 and hist.trashed == []
