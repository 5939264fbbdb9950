"""Conversation history in SQLite: every turn, kept even when the app is killed mid-turn.

Durability choice — WAL journal with `synchronous=FULL`:
- In WAL mode a commit appends the transaction's pages to the `-wal` file with
  `write()` before `COMMIT` returns. With `synchronous=NORMAL` that is already enough
  for a *process* crash (SIGKILL, segfault): the bytes are in the OS page cache and
  the next open replays the WAL; only an OS crash or power cut could lose the last
  commits (the database still stays consistent).
- `FULL` additionally fsyncs the WAL on every commit, so a committed turn also
  survives a power cut or kernel panic. A turn is committed twice (begin, finish),
  seconds apart and off the event loop, so the extra fsync (about a millisecond on
  an SSD, see `tests/bench/bench_history.py`) costs nothing a user can feel.
  Pass `synchronous="NORMAL"` to trade that for speed.

Crash recovery: a turn is committed with status `in_progress` as soon as it starts,
so a kill leaves a row behind; the next open marks it interrupted (with whatever
reply was checkpointed) instead of losing it.

A file that is not a database or is damaged is never overwritten: it is renamed to
`<name>.corrupt.<timestamp>` (with its `-wal`/`-shm` companions), a fresh database
is created, and `History.notice` says where the old one went.

Thread-safe: one connection guarded by a lock, so the engine can call it through
`asyncio.to_thread` from any worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from app.errors import ErrorCode, VoiceError
from app.provider_api import ChatMessage
from app.safe_files import move_aside

SCHEMA_VERSION = 1
EXPORT_FORMAT = "voxdesk.conversation"
EXPORT_VERSION = 1

TurnStatus = Literal["in_progress", "complete", "interrupted", "error"]
CRASH_NOTE = "VoxDesk stopped before this turn finished"
_TITLE_CHARS = 60


@dataclass(frozen=True, slots=True)
class Conversation:
    id: int
    title: str
    started_at: float  # Unix seconds
    updated_at: float
    turn_count: int = 0


@dataclass(frozen=True, slots=True)
class Turn:
    id: int
    conversation_id: int
    started_at: float
    finished_at: float | None
    status: TurnStatus
    user_text: str
    reply_text: str
    interrupted: bool
    error: str | None
    timings: dict[str, float] = field(default_factory=dict)  # stage → duration, as the engine gave it
    providers: dict[str, str] = field(default_factory=dict)  # stage → provider name
    voice_to_voice_ms: float | None = None


_SCHEMA_V1 = (
    """CREATE TABLE IF NOT EXISTS conversations (
        id INTEGER PRIMARY KEY,
        title TEXT NOT NULL DEFAULT '',
        started_at REAL NOT NULL,
        updated_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS turns (
        id INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        started_at REAL NOT NULL,
        finished_at REAL,
        status TEXT NOT NULL DEFAULT 'in_progress'
            CHECK (status IN ('in_progress', 'complete', 'interrupted', 'error')),
        user_text TEXT NOT NULL DEFAULT '',
        reply_text TEXT NOT NULL DEFAULT '',
        interrupted INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        timings TEXT NOT NULL DEFAULT '{}',
        providers TEXT NOT NULL DEFAULT '{}',
        voice_to_voice_ms REAL
    )""",
    "CREATE INDEX IF NOT EXISTS turns_by_conversation ON turns(conversation_id, id)",
    "CREATE INDEX IF NOT EXISTS turns_in_progress ON turns(status) WHERE status = 'in_progress'",
)


def _v1(conn: sqlite3.Connection) -> None:
    # One execute per statement: `executescript` would commit the migration's
    # transaction half-way.
    for statement in _SCHEMA_V1:
        conn.execute(statement)


#: Migration hook: MIGRATIONS[n] upgrades a database at version n-1 to version n.
#: Add an entry (and bump SCHEMA_VERSION) for every schema change; never edit old ones.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _v1}


class _Corrupt(Exception):
    """The file at the path is not a usable SQLite database."""


class History:
    """The store the engine writes turns to and the window lists conversations from."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Literal["NORMAL", "FULL"] = "FULL",
    ) -> None:
        self.path = Path(path)
        self.notice: str | None = None  # something the caller should show the user
        self._synchronous = synchronous
        self._lock = threading.RLock()
        self._current: int | None = None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = self._open()
        except _Corrupt as exc:
            moved = self._move_aside()
            why = " ".join(str(exc).split())
            why = why if len(why) <= 160 else why[:159] + "…"
            self.notice = (
                f"The conversation history could not be read ({why}); it was kept as {moved} "
                "and a new, empty history was started."
            )
            try:
                self._conn = self._open()
            except _Corrupt as again:
                raise VoiceError(
                    "history.open", ErrorCode.UNAVAILABLE, f"cannot create {self.path}: {again}"
                ) from again
        self._recover_crashed_turns()

    # ------------------------------------------------------------------ opening

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:  # e.g. no permission, a directory at the path
            raise self._unavailable("open", exc) from exc
        conn.row_factory = sqlite3.Row
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise _Corrupt(f"journal mode {mode!r} instead of WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA foreign_keys=ON")
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise _Corrupt(f"damaged: {check}")
            self._migrate(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            if _is_corruption(exc):  # "file is not a database", "disk image is malformed"
                raise _Corrupt(str(exc)) from exc
            # Locked by another process, no permission, disk I/O: the file may be fine,
            # so never move it aside for these.
            raise self._unavailable("open", exc) from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _unavailable(self, what: str, exc: sqlite3.Error) -> VoiceError:
        return VoiceError(
            f"history.{what}",
            ErrorCode.UNAVAILABLE,
            f"{exc} — check free disk space and permissions of {self.path}, "
            "and that no other VoxDesk is using it",
        )

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            # Written by a newer VoxDesk: the tables we use are kept compatible by
            # additive migrations, so read and write it without downgrading.
            self.notice = (
                f"The history database was written by a newer VoxDesk (schema {version}); it is used as is."
            )
            return
        if version == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            for target in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[target](conn)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _move_aside(self) -> Path:
        return move_aside(self.path, companions=("-wal", "-shm"))

    def _recover_crashed_turns(self) -> None:
        with self._tx() as conn:
            conn.execute(
                "UPDATE turns SET status = 'interrupted', interrupted = 1, "
                "error = COALESCE(error, ?) WHERE status = 'in_progress'",
                (CRASH_NOTE,),
            )

    # ------------------------------------------------------------------ plumbing

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; committed (and durable) when the block ends."""
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                    raise
            except sqlite3.IntegrityError as exc:
                raise VoiceError("history.write", ErrorCode.INVALID_CONFIG, str(exc)) from exc
            except sqlite3.Error as exc:
                raise self._unavailable("write", exc) from exc

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self, "_conn", None)
        if conn is None:
            raise VoiceError("history", ErrorCode.UNAVAILABLE, "the history is closed — reopen it")
        return conn

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            conn = self._connection()
            try:
                rows: list[sqlite3.Row] = conn.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise self._unavailable("read", exc) from exc
            return rows

    # ------------------------------------------------------------------ conversations

    @property
    def current_conversation(self) -> int | None:
        """The conversation new turns go to; None until the first turn or `new_conversation`."""
        return self._current

    def new_conversation(self, title: str | None = None) -> int:
        """Start a fresh conversation (the LLM no longer sees the previous turns)."""
        now = time.time()
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT INTO conversations (title, started_at, updated_at) VALUES (?, ?, ?)",
                (title or "", now, now),
            )
        assert cur.lastrowid is not None
        self._current = cur.lastrowid
        return cur.lastrowid

    def resume(self, conversation_id: int) -> None:
        """Make an existing conversation current again."""
        self._conversation(conversation_id)
        self._current = conversation_id

    def list_conversations(self) -> list[Conversation]:
        """Newest activity first, with turn counts (for the history panel)."""
        rows = self._read(
            "SELECT c.id, c.title, c.started_at, c.updated_at, COUNT(t.id) AS n "
            "FROM conversations c LEFT JOIN turns t ON t.conversation_id = c.id "
            "GROUP BY c.id ORDER BY c.updated_at DESC, c.id DESC"
        )
        return [Conversation(r["id"], r["title"], r["started_at"], r["updated_at"], r["n"]) for r in rows]

    def delete_conversation(self, conversation_id: int) -> bool:
        """Remove a conversation and its turns. False if it did not exist."""
        with self._tx() as conn:
            conn.execute("DELETE FROM turns WHERE conversation_id = ?", (conversation_id,))
            gone = conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,)).rowcount
        if self._current == conversation_id:
            self._current = None
        return gone > 0

    def _conversation(self, conversation_id: int) -> Conversation:
        for c in self._read(
            "SELECT c.id, c.title, c.started_at, c.updated_at, "
            "(SELECT COUNT(*) FROM turns t WHERE t.conversation_id = c.id) AS n "
            "FROM conversations c WHERE c.id = ?",
            (conversation_id,),
        ):
            return Conversation(c["id"], c["title"], c["started_at"], c["updated_at"], c["n"])
        raise VoiceError("history", ErrorCode.NOT_FOUND, f"no conversation {conversation_id} in the history")

    # ------------------------------------------------------------------ turns

    def begin_turn(
        self, user_text: str, *, conversation_id: int | None = None, started_at: float | None = None
    ) -> int:
        """Record a turn as `in_progress`, committed at once so a crash cannot lose it."""
        if conversation_id is None:
            conversation_id = self._current if self._current is not None else self.new_conversation()
        now = time.time() if started_at is None else started_at
        with self._tx() as conn:
            if (
                conn.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
                is None
            ):
                raise VoiceError(
                    "history.begin_turn",
                    ErrorCode.NOT_FOUND,
                    f"no conversation {conversation_id} in the history",
                )
            cur = conn.execute(
                "INSERT INTO turns (conversation_id, started_at, user_text) VALUES (?, ?, ?)",
                (conversation_id, now, user_text),
            )
            title = " ".join(user_text.split())
            if len(title) > _TITLE_CHARS:
                title = title[: _TITLE_CHARS - 1].rstrip() + "…"
            conn.execute(
                "UPDATE conversations SET updated_at = MAX(updated_at, ?), "
                "title = CASE WHEN title = '' THEN ? ELSE title END WHERE id = ?",
                (now, title, conversation_id),
            )
        assert cur.lastrowid is not None
        self._current = conversation_id
        return cur.lastrowid

    def checkpoint_reply(self, turn_id: int, reply_text: str) -> None:
        """Save the reply spoken so far, so a crash keeps it (optional, cheap)."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE turns SET reply_text = ? WHERE id = ? AND status = 'in_progress'",
                (reply_text, turn_id),
            )

    def finish_turn(
        self,
        turn_id: int,
        reply_text: str,
        interrupted: bool = False,
        timings: dict[str, float] | None = None,
        providers: dict[str, str] | None = None,
        error: str | None = None,
        voice_to_voice_ms: float | None = None,
        *,
        user_text: str | None = None,
    ) -> None:
        """Store the outcome in one transaction. `reply_text` is what was actually said.

        `timings` are stored as given (the engine's unit); `voice_to_voice_ms` is in
        milliseconds. `user_text`, if given, replaces the text stored by `begin_turn`.
        """
        status: TurnStatus = "interrupted" if interrupted else ("error" if error else "complete")
        now = time.time()
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE turns SET finished_at = ?, status = ?, reply_text = ?, interrupted = ?, "
                "error = ?, timings = ?, providers = ?, voice_to_voice_ms = ?, "
                "user_text = COALESCE(?, user_text) WHERE id = ?",
                (
                    now,
                    status,
                    reply_text,
                    int(interrupted),
                    error,
                    json.dumps(timings or {}),
                    json.dumps(providers or {}),
                    voice_to_voice_ms,
                    user_text,
                    turn_id,
                ),
            )
            if cur.rowcount == 0:
                raise VoiceError("history.finish_turn", ErrorCode.NOT_FOUND, f"no turn {turn_id} to finish")
            conn.execute(
                "UPDATE conversations SET updated_at = MAX(updated_at, ?) "
                "WHERE id = (SELECT conversation_id FROM turns WHERE id = ?)",
                (now, turn_id),
            )

    def turns(self, conversation_id: int) -> list[Turn]:
        """All turns of a conversation, oldest first."""
        rows = self._read("SELECT * FROM turns WHERE conversation_id = ? ORDER BY id", (conversation_id,))
        return [_turn(r) for r in rows]

    def recent_messages(
        self,
        max_turns: int | None = None,
        *,
        budget_chars: int | None = None,
        conversation_id: int | None = None,
    ) -> list[ChatMessage]:
        """The newest finished turns that fit the budgets, as alternating user/assistant messages.

        Both budgets apply when given (`max_turns` whole turns, `budget_chars` of user
        plus reply text); with neither, the whole conversation. The default
        conversation is the current one.

        Interrupted replies are included as far as they were spoken, so the LLM knows
        what the user actually heard. Turns with no reply at all (an error before any
        audio) are skipped: chat templates want strict user/assistant alternation.
        The turn in progress is not included — the caller adds the new user message.
        """
        cid = self._current if conversation_id is None else conversation_id
        if cid is None or max_turns == 0:
            return []
        picked: list[sqlite3.Row] = []
        used = 0
        batch = 64
        offset = 0
        while True:
            rows = self._read(
                "SELECT user_text, reply_text FROM turns WHERE conversation_id = ? "
                "AND status != 'in_progress' AND reply_text != '' ORDER BY id DESC LIMIT ? OFFSET ?",
                (cid, batch, offset),
            )
            for r in rows:
                size = len(r["user_text"]) + len(r["reply_text"])
                if budget_chars is not None and used + size > budget_chars:
                    return _messages(picked)
                if max_turns is not None and len(picked) >= max_turns:
                    return _messages(picked)
                used += size
                picked.append(r)
            if len(rows) < batch:
                return _messages(picked)
            offset += batch

    # ------------------------------------------------------------------ export / import

    def export(self, conversation_id: int, fmt: Literal["json", "markdown"] = "json") -> str:
        """The whole conversation as JSON (lossless, re-importable) or Markdown (for people)."""
        conv = self._conversation(conversation_id)
        turns = self.turns(conversation_id)
        if fmt == "json":
            doc = {
                "format": EXPORT_FORMAT,
                "version": EXPORT_VERSION,
                "conversation": {
                    "title": conv.title,
                    "started_at": _iso(conv.started_at),
                    "updated_at": _iso(conv.updated_at),
                },
                "turns": [_turn_json(t) for t in turns],
            }
            return json.dumps(doc, ensure_ascii=False, indent=2)
        if fmt == "markdown":
            return _markdown(conv, turns)
        raise VoiceError(
            "history.export", ErrorCode.INVALID_CONFIG, f"unknown format {fmt!r} — use json or markdown"
        )

    def import_json(self, text: str) -> int:
        """Load a JSON export as a new conversation; returns its id (not made current)."""
        try:
            doc = json.loads(text)
            if doc.get("format") != EXPORT_FORMAT:
                raise ValueError("not a VoxDesk conversation export")
            meta = doc["conversation"]
            turns = doc["turns"]
            with self._tx() as conn:
                cur = conn.execute(
                    "INSERT INTO conversations (title, started_at, updated_at) VALUES (?, ?, ?)",
                    (meta.get("title", ""), _unix(meta["started_at"]), _unix(meta["updated_at"])),
                )
                cid = cur.lastrowid
                for t in turns:
                    conn.execute(
                        "INSERT INTO turns (conversation_id, started_at, finished_at, status, user_text, "
                        "reply_text, interrupted, error, timings, providers, voice_to_voice_ms) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            cid,
                            _unix(t["started_at"]),
                            _unix(t["finished_at"]) if t.get("finished_at") else None,
                            t["status"] if t["status"] != "in_progress" else "interrupted",
                            t["user_text"],
                            t["reply_text"],
                            int(bool(t["interrupted"])),
                            t.get("error"),
                            json.dumps(t.get("timings") or {}),
                            json.dumps(t.get("providers") or {}),
                            t.get("voice_to_voice_ms"),
                        ),
                    )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise VoiceError(
                "history.import", ErrorCode.INVALID_CONFIG, f"not a valid conversation export: {exc}"
            ) from exc
        assert cid is not None
        return cid

    # ------------------------------------------------------------------ health

    def integrity_check(self) -> bool:
        """Full SQLite integrity and foreign-key check (for `voxdesk doctor` and tests)."""
        with self._lock:
            conn = self._connection()
            try:
                ok = conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
                return ok and not conn.execute("PRAGMA foreign_key_check").fetchall()
            except sqlite3.DatabaseError:
                return False

    def close(self) -> None:
        """Checkpoint the WAL into the main file and close. Safe to call twice."""
        with self._lock:
            conn = getattr(self, "_conn", None)
            if conn is None:
                return
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.close()
            self._conn = None  # type: ignore[assignment]

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------- helpers


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    name = getattr(exc, "sqlite_errorname", "")
    if name:
        return name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))
    return not isinstance(exc, sqlite3.OperationalError)


def _turn(r: sqlite3.Row) -> Turn:
    return Turn(
        id=r["id"],
        conversation_id=r["conversation_id"],
        started_at=r["started_at"],
        finished_at=r["finished_at"],
        status=r["status"],
        user_text=r["user_text"],
        reply_text=r["reply_text"],
        interrupted=bool(r["interrupted"]),
        error=r["error"],
        timings=_json_dict(r["timings"]),
        providers=_json_dict(r["providers"]),
        voice_to_voice_ms=r["voice_to_voice_ms"],
    )


def _json_dict(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _messages(newest_first: list[sqlite3.Row]) -> list[ChatMessage]:
    out: list[ChatMessage] = []
    for r in reversed(newest_first):
        out.append(ChatMessage("user", r["user_text"]))
        out.append(ChatMessage("assistant", r["reply_text"]))
    return out


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _unix(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _turn_json(t: Turn) -> dict[str, Any]:
    d = asdict(t)
    del d["id"], d["conversation_id"]
    d["started_at"] = _iso(t.started_at)
    d["finished_at"] = _iso(t.finished_at) if t.finished_at is not None else None
    return d


def _markdown(conv: Conversation, turns: list[Turn]) -> str:
    lines = [f"# {conv.title or 'Conversation'}", "", f"Started {_iso(conv.started_at)}", ""]
    for n, t in enumerate(turns, 1):
        lines += [f"## Turn {n} — {_iso(t.started_at)}", "", "**You:**", "", t.user_text, ""]
        lines += ["**VoxDesk:**", "", t.reply_text or "_(no reply)_", ""]
        if t.interrupted:
            lines += ["_(interrupted)_", ""]
        if t.error:
            lines += [f"_Error: {t.error}_", ""]
        if t.providers:
            used = ", ".join(f"{k}: {v}" for k, v in sorted(t.providers.items()))
            lines += [f"_Providers: {used}_", ""]
    return "\n".join(lines).rstrip() + "\n"
