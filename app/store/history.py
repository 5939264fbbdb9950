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

A disk that fails (full, read-only, locked by another program) never stops a
conversation: writes keep their rows in memory (bounded), reads include them, the
next write retries and flushes them all in order, and the user is told once when
saving stops and once when it works again (`History.on_notice`). What is still
unsaved at close goes to a file beside the database (or in the temp folder), which
the next open adds to the history.

Thread-safe: one connection guarded by a lock, so the engine can call it through
`asyncio.to_thread` from any worker.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from app.plugin.errors import ErrorCode, VoiceError
from app.plugin.provider_api import ChatMessage
from app.store.safe_files import atomic_write_text, filesystem_state, move_aside, storage_problem

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
EXPORT_FORMAT = "voxdesk.conversation"
EXPORT_VERSION = 1

TurnStatus = Literal["in_progress", "complete", "interrupted", "error"]
CRASH_NOTE = "VoxDesk stopped before this turn finished"
_TITLE_CHARS = 60
TITLE_MAX_CHARS = 120  # a title the user typed


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


#: While the history cannot be written (a full or read-only disk, a locked file) turns
#: wait in memory and the conversation goes on. Beyond this much text — hours of talk —
#: the oldest finished ones are dropped, and the user is told how many.
MAX_PENDING_CHARS = 4_000_000
#: During an outage a reply checkpoint retries at most this often; the start and the
#: end of a turn always retry (there is no timer: the next write is the retry).
RETRY_INTERVAL_S = 2.0
UNSAVED_FORMAT = "voxdesk.unsaved-history"
UNSAVED_TMP_PREFIX = "voxdesk-unsaved-history-"
_ALIASES_KEPT = 1024
_BUSY_TIMEOUT_S = 10.0
_OUTAGE_BUSY_MS = 250  # while retrying during an outage, a locked file must not stall a turn


class _Corrupt(Exception):
    """The file at the path is not a usable SQLite database."""


class _CannotMoveAside(Exception):
    """The file is damaged, and renaming it out of the way failed too (read-only folder...)."""

    def __init__(self, damage: _Corrupt, cause: OSError) -> None:
        super().__init__(f"{damage}; could not rename it: {cause}")
        self.damage = damage
        self.cause = cause


#: What opening or writing can raise when the disk, not the code, is at fault.
_STORAGE_ERRORS = (OSError, sqlite3.Error, _Corrupt, _CannotMoveAside)


class History:
    """The store the engine writes turns to and the window lists conversations from.

    Writes never raise because of the disk: when one fails (disk full, read-only,
    locked) the rows stay in memory, reads include them, and every later write tries
    again and flushes all of them in order once the disk works. `on_notice` (if set)
    is called once when saving stops and once when it works again, from whichever
    thread made the write — marshal it to your own loop. Problems found while opening
    are in `notice` instead (nobody has had a chance to set `on_notice` yet).

    Ids of turns and conversations not yet written are negative; they stay valid
    after the flush (they map to the stored ids).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Literal["NORMAL", "FULL"] = "FULL",
    ) -> None:
        self.path = Path(path)
        self.notice: str | None = None  # something the caller should show the user
        self.startup_notes: list[str] = []  # what `notice` says besides an outage (damaged file kept aside...)
        self.on_notice: Callable[[str], None] | None = None
        self.max_pending_chars = MAX_PENDING_CHARS
        self.retry_interval_s = RETRY_INTERVAL_S
        self._synchronous = synchronous
        self._lock = threading.RLock()
        self._current: int | None = None
        self._conn: sqlite3.Connection | None = None
        self._ro_conn: sqlite3.Connection | None = None  # read-only fallback while the file cannot be opened
        self._closed = False
        self._recovered = False  # crashed turns of earlier runs marked, once, before any of ours is written
        self._outage: str | None = None  # what is wrong, while writes fail
        self._outage_message: str | None = None
        self._last_try = 0.0
        self._dropped = 0
        self._not_found: set[int] = set()
        self._trash: set[int] = set()  # deleted by the user, still undoable (see trash_conversation)
        self._convs: dict[int, dict[str, Any]] = {}  # provisional id → conversation not yet written
        self._turns: dict[int, dict[str, Any]] = {}  # provisional id → turn not yet written
        self._updates: dict[int, dict[str, Any]] = {}  # stored turn id → changes not yet written
        self._alias: dict[int, int] = {}  # provisional id → stored id, once written
        self._started: dict[int, float] = {}  # stored turn id → its start, to match it in a replaced file
        self._next_provisional = -1
        self._unsaved_files: list[Path] = []  # files of an earlier run's unsaved turns, now in memory
        self._notes: list[str] = []
        messages: list[str] = []
        try:
            self._conn = self._connect()
        except _STORAGE_ERRORS as exc:
            self.startup_notes = self._take_notes()
            messages += self._enter_outage(exc)
            self._ro_conn = self._open_read_only()
        else:
            self.startup_notes = self._take_notes()
            added = self._load_unsaved()
            messages += self._flush_locked(force=True)
            if added and not self._unsaved_files:
                self.startup_notes.append(
                    f"{added} turn{'s' if added != 1 else ''} that could not be saved last time "
                    "were added to the history."
                )
        # An outage noticed while opening is told here; `on_notice` only hears its end.
        self.notice = " ".join([*self.startup_notes, *messages]) or None

    def _take_notes(self) -> list[str]:
        notes, self._notes = self._notes, []
        return notes

    # ------------------------------------------------------------------ opening

    def _connect(self) -> sqlite3.Connection:
        """Open the database (creating its folder); a damaged file is renamed out of the way first."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return self._open()
        except _Corrupt as exc:
            try:
                moved = self._move_aside()
            except OSError as move_exc:
                raise _CannotMoveAside(exc, move_exc) from move_exc
            why = " ".join(str(exc).split())
            why = why if len(why) <= 160 else why[:159] + "…"
            self._notes.append(
                f"history file was damaged; kept it as {moved}; starting a new history (it could not be read: {why})"
            )
            return self._open()

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
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
            # Locked by another process, no permission, disk full or I/O: the file may be
            # fine, so never move it aside for these.
            raise
        except BaseException:
            conn.close()
            raise
        return conn

    def _open_read_only(self) -> sqlite3.Connection | None:
        """What can still be read when the file cannot be opened for writing (a read-only disk)."""
        try:
            if not self.path.is_file() or self.path.stat().st_size == 0:
                return None
            conn = sqlite3.connect(
                self.path.resolve().as_uri() + "?mode=ro&immutable=1", uri=True, check_same_thread=False
            )
        except (OSError, sqlite3.Error, ValueError):
            return None
        conn.row_factory = sqlite3.Row
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] < 1:
                raise sqlite3.DatabaseError("no VoxDesk tables")
            conn.execute("SELECT 1 FROM turns LIMIT 1").fetchall()
        except sqlite3.Error:
            conn.close()
            return None
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            # Written by a newer VoxDesk: the tables we use are kept compatible by
            # additive migrations, so read and write it without downgrading.
            self._notes.append(
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

    # ------------------------------------------------------------------ outages

    def _explain(self, exc: BaseException) -> tuple[str, str]:
        """(what went wrong, what the user can do), in plain words."""
        folder = self.path.parent
        if isinstance(exc, _CannotMoveAside):
            what, fix = self._explain(exc.cause)
            return f"{self.path.name} is damaged and could not be kept aside: {what}", fix
        name = str(getattr(exc, "sqlite_errorname", "") or "")
        if isinstance(exc, OSError):
            return storage_problem(exc, folder)
        read_only, full = filesystem_state(folder)
        if name.startswith("SQLITE_FULL"):
            return f"disk full at {folder}", "free some space"
        if read_only and not name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return f"{folder} is read-only", "make it writable"
        if name.startswith("SQLITE_READONLY"):
            return f"{self.path} is read-only", "make it writable"
        if name.startswith("SQLITE_PERM"):
            return f"no permission to write in {folder}", "make it writable"
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return f"{self.path} is in use by another program", "close the other VoxDesk"
        if full:
            return f"disk full at {folder}", "free some space"
        if isinstance(exc, _Corrupt):
            return f"{self.path} is damaged", "move it out of the way"
        why = " ".join(str(exc).split())
        why = why if len(why) <= 160 else why[:159] + "…"
        return f"{why}: {self.path}", f"check that {folder} is a folder VoxDesk can write to"

    def _enter_outage(self, exc: BaseException) -> list[str]:
        what, fix = self._explain(exc)
        first = self._outage is None
        self._outage = what
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute(f"PRAGMA busy_timeout = {_OUTAGE_BUSY_MS}")
        if not first:
            log.debug("history still cannot be written: %s", exc)
            return []
        log.info("history cannot be written (%s): %s", what, exc)
        self._outage_message = (
            f"Can't save the conversation history ({what}) — the conversation goes on; {fix} and it will be saved."
        )
        return [self._outage_message]

    def _leave_outage(self) -> list[str]:
        if self._outage is None:
            return []
        self._outage = None
        self._outage_message = None
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
        if self._dropped:
            n, self._dropped = self._dropped, 0
            return [
                f"The conversation history is saved again; {n} of the turns said while it could not be "
                "saved were too many to keep in memory and were dropped."
            ]
        return ["The conversation history is saved again; nothing was lost."]

    @property
    def outage(self) -> str | None:
        """What keeps the history from being written now (None while it is saved)."""
        return self._outage

    @property
    def readable(self) -> bool:
        """Whether stored conversations can be read (past ones may still be, on a read-only disk)."""
        return not self._closed and (self._conn is not None or self._ro_conn is not None)

    def pending_chars(self) -> int:
        """Text held in memory because it could not be written yet."""
        n = sum(len(t["user_text"]) + len(t["reply_text"]) for t in self._turns.values())
        for u in self._updates.values():
            n += len(u.get("finish", {}).get("reply_text", "") or u.get("reply_text", ""))
        return n

    def _has_pending(self) -> bool:
        return bool(self._convs or self._turns or self._updates)

    def _bound(self) -> None:
        """Keep memory bounded in a long outage: drop the oldest finished turns first."""
        excess = self.pending_chars() - self.max_pending_chars
        if excess <= 0:
            return
        for pid in list(self._turns):
            if excess <= 0:
                return
            t = self._turns[pid]
            if t["status"] == "in_progress":
                continue
            excess -= len(t["user_text"]) + len(t["reply_text"])
            del self._turns[pid]
            self._dropped += 1
        for tid in list(self._updates):
            if excess <= 0:
                return
            u = self._updates.pop(tid)
            excess -= len(u.get("finish", {}).get("reply_text", "") or u.get("reply_text", ""))
            self._dropped += 1

    def _tell(self, messages: list[str]) -> None:
        callback = self.on_notice
        for m in messages:
            # Said once, by whoever listens; with no listener the log is the only way to say it.
            log.log(logging.INFO if callback is not None else logging.WARNING, "%s", m)
            if callback is not None:
                try:
                    callback(m)
                except Exception:  # a listener's bug must not lose the write that called it
                    log.exception("history notice listener failed")

    # ------------------------------------------------------------------ writing

    def _flush_locked(self, *, force: bool) -> list[str]:
        """Write everything pending in one transaction; returns what to tell the user."""
        if self._closed or (self._recovered and not self._has_pending()):
            return []
        now = time.monotonic()
        if self._outage is not None and not force and now - self._last_try < self.retry_interval_s:
            return []
        self._last_try = now
        messages: list[str] = []
        try:
            if self._conn is None:
                self._conn = self._connect()
                if self._ro_conn is not None:
                    self._ro_conn.close()
                    self._ro_conn = None
            self._not_found = self._write_pending(self._conn)
        except _STORAGE_ERRORS as exc:
            name = str(getattr(exc, "sqlite_errorname", "") or "")
            if self._conn is not None and name.startswith(("SQLITE_IOERR", "SQLITE_CORRUPT", "SQLITE_NOTADB")):
                # The connection itself may be broken: open afresh on the next try.
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None
            self._not_found = set()
            return self._take_notes() + self._enter_outage(exc)
        messages += self._take_notes()
        for f in self._unsaved_files:  # an earlier run's unsaved turns are in the file now
            with contextlib.suppress(OSError):
                f.unlink()
        self._unsaved_files.clear()
        return messages + self._leave_outage()

    def _write_pending(self, conn: sqlite3.Connection) -> set[int]:
        """One transaction: crash recovery, new conversations, new turns, then changes to
        stored turns. Returns stored turn ids a finish found no row for."""
        alias: dict[int, int] = {}
        not_found: set[int] = set()
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Turns an earlier run left in progress are marked interrupted — after the
            # checkpoints that run could not write are applied to them, below.
            before = None if self._recovered else conn.execute("SELECT MAX(id) FROM turns").fetchone()[0]
            for pid, c in self._convs.items():
                cur = conn.execute(
                    "INSERT INTO conversations (title, started_at, updated_at) VALUES (?, ?, ?)",
                    (c["title"], c["started_at"], c["updated_at"]),
                )
                assert cur.lastrowid is not None
                alias[pid] = cur.lastrowid
            for pid, t in self._turns.items():
                cid = self._stored_conversation(conn, t["conversation_id"], alias, t["started_at"])
                cur = conn.execute(
                    "INSERT INTO turns (conversation_id, started_at, finished_at, status, user_text, "
                    "reply_text, interrupted, error, timings, providers, voice_to_voice_ms) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        cid,
                        t["started_at"],
                        t["finished_at"],
                        t["status"],
                        t["user_text"],
                        t["reply_text"],
                        t["interrupted"],
                        t["error"],
                        t["timings"],
                        t["providers"],
                        t["voice_to_voice_ms"],
                    ),
                )
                assert cur.lastrowid is not None
                alias[pid] = cur.lastrowid
                conn.execute(
                    "UPDATE conversations SET updated_at = MAX(updated_at, ?), "
                    "title = CASE WHEN title = '' THEN ? ELSE title END WHERE id = ?",
                    (t["finished_at"] or t["started_at"], _title(t["user_text"]), cid),
                )
            for tid, u in self._updates.items():
                where, args = "id = ?", [tid]
                if u.get("started_at") is not None:  # the same turn, not one that took its id in a new file
                    where += " AND started_at = ?"
                    args.append(u["started_at"])
                f = u.get("finish")
                if f is None:
                    conn.execute(
                        f"UPDATE turns SET reply_text = ? WHERE {where} AND status = 'in_progress'",
                        (u["reply_text"], *args),
                    )
                    continue
                cur = conn.execute(
                    "UPDATE turns SET finished_at = ?, status = ?, reply_text = ?, interrupted = ?, "
                    "error = ?, timings = ?, providers = ?, voice_to_voice_ms = ?, "
                    f"user_text = COALESCE(?, user_text) WHERE {where}",
                    (
                        f["finished_at"],
                        f["status"],
                        f["reply_text"],
                        f["interrupted"],
                        f["error"],
                        f["timings"],
                        f["providers"],
                        f["voice_to_voice_ms"],
                        f["user_text"],
                        *args,
                    ),
                )
                if cur.rowcount == 0:
                    not_found.add(tid)
                    continue
                conn.execute(
                    "UPDATE conversations SET updated_at = MAX(updated_at, ?) "
                    "WHERE id = (SELECT conversation_id FROM turns WHERE id = ?)",
                    (f["finished_at"], tid),
                )
            if before is not None:
                conn.execute(
                    "UPDATE turns SET status = 'interrupted', interrupted = 1, "
                    "error = COALESCE(error, ?) WHERE status = 'in_progress' AND id <= ?",
                    (CRASH_NOTE, before),
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
        self._recovered = True
        for pid, t in self._turns.items():
            self._remember_start(alias[pid], t["started_at"])
        self._convs.clear()
        self._turns.clear()
        self._updates.clear()
        if self._current is not None and self._current in alias:
            self._current = alias[self._current]
        self._alias.update((k, v) for k, v in alias.items() if k < 0)
        while len(self._alias) > _ALIASES_KEPT:
            del self._alias[next(iter(self._alias))]
        return not_found

    @staticmethod
    def _stored_conversation(conn: sqlite3.Connection, cid: int, alias: dict[int, int], when: float) -> int:
        real = alias.get(cid, cid)
        if real > 0 and conn.execute("SELECT 1 FROM conversations WHERE id = ?", (real,)).fetchone():
            return real
        # Its conversation went away meanwhile (deleted elsewhere, or a new file): keep the turn in a new one.
        cur = conn.execute("INSERT INTO conversations (title, started_at, updated_at) VALUES ('', ?, ?)", (when, when))
        assert cur.lastrowid is not None
        alias[cid] = cur.lastrowid
        return cur.lastrowid

    def _remember_start(self, tid: int, started_at: float) -> None:
        self._started[tid] = started_at
        while len(self._started) > 256:
            del self._started[next(iter(self._started))]

    def _provisional(self) -> int:
        pid = self._next_provisional
        self._next_provisional -= 1
        return pid

    def _resolve(self, any_id: int) -> int:
        return self._alias.get(any_id, any_id) if any_id < 0 else any_id

    def _check_open(self) -> None:
        if self._closed:
            raise VoiceError("history", ErrorCode.UNAVAILABLE, "the history is closed — reopen it")

    # ------------------------------------------------------------------ unsaved turns across runs

    def _keep_unsaved(self) -> str:
        """At close: put what could not be written in a file, beside the database or else in
        the temp folder (owner-only), for the next open to add. Returns what to tell."""
        turns = len(self._turns) + sum(1 for u in self._updates.values() if "finish" in u)
        doc = {
            "format": UNSAVED_FORMAT,
            "version": 1,
            "db": str(self.path.resolve()),
            "conversations": [[k, v] for k, v in self._convs.items()],
            "turns": [[k, v] for k, v in self._turns.items()],
            "updates": [[k, v] for k, v in self._updates.items()],
        }
        text = json.dumps(doc, ensure_ascii=False)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for dest in (
            self.path.with_name(f"{self.path.name}.unsaved-{stamp}-{os.getpid()}.json"),
            Path(tempfile.gettempdir()) / f"{UNSAVED_TMP_PREFIX}{stamp}-{os.getpid()}.json",
        ):
            try:
                atomic_write_text(dest, text)
            except OSError as exc:
                log.debug("cannot keep unsaved turns in %s: %s", dest, exc)
                continue
            for old in self._unsaved_files:  # their turns are in the new file
                with contextlib.suppress(OSError):
                    old.unlink()
            self._unsaved_files.clear()
            log.info("history: %d unsaved turns kept in %s", turns, dest)
            return (
                f"{turns} turn{'s' if turns != 1 else ''} could not be saved to the conversation history "
                f"({self._outage or 'it could not be written'}); kept in {dest} — they are added to the "
                "history the next time VoxDesk can write it."
            )
        log.info("history: %d turns could not be saved anywhere", turns)
        return (
            f"{turns} turn{'s' if turns != 1 else ''} could not be saved to the conversation history "
            f"({self._outage or 'it could not be written'}), nor kept in a file anywhere, and are lost."
        )

    def _load_unsaved(self) -> int:
        """Take in the turns an earlier run could not write; returns how many turns."""
        mine = str(self.path.resolve())
        files = sorted(self.path.parent.glob(f"{glob.escape(self.path.name)}.unsaved-*.json"))
        with contextlib.suppress(OSError):
            uid = os.getuid() if hasattr(os, "getuid") else None
            for f in sorted(Path(tempfile.gettempdir()).glob(f"{UNSAVED_TMP_PREFIX}*.json")):
                if uid is None or f.stat().st_uid == uid:  # never another user's file
                    files.append(f)
        added = 0
        for f in files:
            try:
                doc = json.loads(f.read_text(encoding="utf-8"))
                if doc.get("format") != UNSAVED_FORMAT or doc.get("db") != mine:
                    continue
                renumber: dict[int, int] = {}
                convs = {int(k): dict(v) for k, v in doc["conversations"]}
                turns = {int(k): dict(v) for k, v in doc["turns"]}
                updates = {int(k): dict(v) for k, v in doc["updates"]}
                if not (
                    all(_fits(v, _CONV_FIELDS) for v in convs.values())
                    and all(_fits(v, _TURN_FIELDS) for v in turns.values())
                    and all(
                        _fits(v.get("finish", {}), _FINISH_FIELDS)
                        if "finish" in v
                        else isinstance(v.get("reply_text"), str)
                        for v in updates.values()
                    )
                ):
                    raise ValueError("rows of an unknown shape")
            except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
                log.warning("ignoring unreadable unsaved-history file %s: %s", f, exc)
                continue
            for old, row in convs.items():
                renumber[old] = self._provisional()
                self._convs[renumber[old]] = row
            for row in turns.values():
                row["conversation_id"] = renumber.get(row["conversation_id"], row["conversation_id"])
                if row["status"] == "in_progress":  # that run ended before the turn did
                    row.update(status="interrupted", interrupted=1, error=row["error"] or CRASH_NOTE)
                self._turns[self._provisional()] = row
            for tid, row in updates.items():
                self._updates[tid] = row
            added += len(turns) + sum(1 for u in updates.values() if "finish" in u)
            self._unsaved_files.append(f)
        return added

    # ------------------------------------------------------------------ plumbing

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction for an explicit user action (delete, import): it raises."""
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

    def _unavailable(self, what: str, exc: BaseException) -> VoiceError:
        problem, fix = self._explain(exc)
        return VoiceError(
            f"history.{what}",
            ErrorCode.UNAVAILABLE,
            f"cannot {'read' if what == 'read' else 'write'} the conversation history ({problem}) — {fix}",
        )

    def _connection(self) -> sqlite3.Connection:
        self._check_open()
        if self._conn is None:
            messages = self._flush_locked(force=True)  # opens it if the disk allows
            self._tell(messages)
        if self._conn is None:
            raise VoiceError(
                "history.write",
                ErrorCode.UNAVAILABLE,
                f"cannot write the conversation history ({self._outage or 'not open'})",
            )
        return self._conn

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            self._check_open()
            conn = self._conn or self._ro_conn
            if conn is None:
                raise VoiceError(
                    "history.read",
                    ErrorCode.UNAVAILABLE,
                    f"cannot read the conversation history ({self._outage or 'not open'})",
                )
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
        with self._lock:
            self._check_open()
            pid, messages = self._new_conversation_locked(title)
            cid = self._resolve(pid)
        self._tell(messages)
        return cid

    def _new_conversation_locked(self, title: str | None) -> tuple[int, list[str]]:
        now = time.time()
        pid = self._provisional()
        self._convs[pid] = {"title": title or "", "started_at": now, "updated_at": now}
        self._current = pid
        return pid, self._flush_locked(force=True)

    def resume(self, conversation_id: int) -> None:
        """Make an existing conversation current again."""
        with self._lock:
            cid = self._resolve(conversation_id)
            if cid in {self._resolve(t) for t in self._trash}:
                raise VoiceError("history", ErrorCode.NOT_FOUND, f"conversation {conversation_id} was deleted")
            self._conversation(cid)
            self._current = cid

    def list_conversations(self, *, include_empty: bool = False) -> list[Conversation]:
        """Newest activity first, with turn counts (for the history panel); unsaved ones included.

        Conversations without a turn (the one "New conversation" just opened) and those in
        the trash (`trash_conversation`) are left out unless `include_empty`."""
        with self._lock:
            convs = self._all_conversations()
            hidden = {self._resolve(c) for c in self._trash}
            return [c for c in convs if c.id not in hidden and (include_empty or c.turn_count > 0)]

    def _all_conversations(self) -> list[Conversation]:
        with self._lock:
            rows = self._read(
                "SELECT c.id, c.title, c.started_at, c.updated_at, COUNT(t.id) AS n "
                "FROM conversations c LEFT JOIN turns t ON t.conversation_id = c.id "
                "GROUP BY c.id ORDER BY c.updated_at DESC, c.id DESC"
            )
            convs = [Conversation(r["id"], r["title"], r["started_at"], r["updated_at"], r["n"]) for r in rows]
            if not self._has_pending():
                return convs
            by_id = {c.id: c for c in convs}
            for pid, c in self._convs.items():
                by_id[pid] = Conversation(pid, c["title"], c["started_at"], c["updated_at"], 0)
            for t in self._turns.values():
                cid = self._resolve(t["conversation_id"])
                c0 = by_id.get(cid)
                if c0 is None:
                    continue
                by_id[cid] = replace(
                    c0,
                    title=c0.title or _title(t["user_text"]),
                    turn_count=c0.turn_count + 1,
                    updated_at=max(c0.updated_at, t["finished_at"] or t["started_at"]),
                )
            return sorted(by_id.values(), key=lambda c: (c.updated_at, c.id), reverse=True)

    def delete_conversation(self, conversation_id: int) -> bool:
        """Remove a conversation and its turns. False if it did not exist."""
        with self._lock:
            self._check_open()
            cid = self._resolve(conversation_id)
            gone = self._convs.pop(cid, None) is not None
            for pid in [p for p, t in self._turns.items() if self._resolve(t["conversation_id"]) == cid]:
                del self._turns[pid]
                gone = True
            if cid > 0:
                with self._tx() as conn:
                    conn.execute("DELETE FROM turns WHERE conversation_id = ?", (cid,))
                    gone = conn.execute("DELETE FROM conversations WHERE id = ?", (cid,)).rowcount > 0 or gone
            if self._current == cid:
                self._current = None
            return gone

    def rename_conversation(self, conversation_id: int, title: str) -> bool:
        """Give a conversation the user's title (blank: named after its first question again).
        False if it does not exist; raises VoiceError when the disk refuses (an explicit action)."""
        title = " ".join(title.split())[:TITLE_MAX_CHARS]
        with self._lock:
            self._check_open()
            cid = self._resolve(conversation_id)
            if cid in self._convs:
                self._convs[cid]["title"] = title
                return True
            if cid < 0:
                return False
            with self._tx() as conn:
                if not title:  # as a new conversation is named: after its first question
                    first = conn.execute(
                        "SELECT user_text FROM turns WHERE conversation_id = ? AND user_text != '' ORDER BY id LIMIT 1",
                        (cid,),
                    ).fetchone()
                    title = _title(first[0]) if first else ""
                return conn.execute("UPDATE conversations SET title = ? WHERE id = ?", (title, cid)).rowcount > 0

    def search_conversations(self, query: str) -> list[Conversation]:
        """Conversations (as `list_conversations` lists them) where every word of `query`
        is in the title or in a question or reply, ignoring case; a blank query lists all."""
        words = _fold(query).split()
        with self._lock:
            convs = self.list_conversations()
            if not words:
                return convs
            keep = {c.id for c in convs}
            for word in words:
                keep &= self._matching(word, convs)
                if not keep:
                    break
            return [c for c in convs if c.id in keep]

    def _matching(self, word: str, convs: list[Conversation]) -> set[int]:
        """Ids among `convs` whose title or turns contain `word` (already case-folded)."""
        hits = {c.id for c in convs if word in _fold(c.title)}
        for conn in (self._conn, self._ro_conn):
            if conn is not None:  # the read below may use either
                conn.create_function("voxdesk_fold", 1, _fold, deterministic=True)
        rows = self._read(
            "SELECT DISTINCT conversation_id FROM turns "
            "WHERE instr(voxdesk_fold(user_text), ?) > 0 OR instr(voxdesk_fold(reply_text), ?) > 0",
            (word, word),
        )
        hits |= {r[0] for r in rows}
        for t in self._turns.values():  # not yet written
            if word in _fold(t["user_text"]) or word in _fold(t["reply_text"]):
                hits.add(self._resolve(t["conversation_id"]))
        return hits

    def trash_conversation(self, conversation_id: int) -> bool:
        """Delete, undoably: the conversation is no longer listed, searched or resumed, and is
        removed for good by `empty_trash` (or `close`) unless `restore_conversation` brings it
        back first. False if it does not exist."""
        with self._lock:
            self._check_open()
            cid = self._resolve(conversation_id)
            try:
                self._conversation(cid)
            except VoiceError as exc:
                if exc.code == ErrorCode.NOT_FOUND.value:
                    return False
                raise
            self._trash.add(cid)
            if self._current == cid:
                self._current = None  # the next turn starts a new conversation
            return True

    def restore_conversation(self, conversation_id: int) -> bool:
        """Undo `trash_conversation`; False if it was not in the trash (or is gone for good)."""
        with self._lock:
            cid = self._resolve(conversation_id)
            found = next((t for t in self._trash if self._resolve(t) == cid), None)
            if found is None:
                return False
            self._trash.discard(found)
            return True

    @property
    def trashed(self) -> list[int]:
        """Conversations deleted but still undoable."""
        with self._lock:
            return sorted(self._resolve(t) for t in self._trash)

    def empty_trash(self) -> int:
        """Delete what is in the trash for good; returns how many conversations went.

        One that cannot be deleted now (the disk refuses) stays in the trash for the next try."""
        removed = 0
        with self._lock:
            for cid in list(self._trash):
                try:
                    gone = self.delete_conversation(cid)
                except VoiceError:
                    log.warning("could not delete conversation %s yet; it stays in the trash", cid, exc_info=True)
                    continue
                self._trash.discard(cid)
                removed += int(gone)
        return removed

    def _conversation(self, conversation_id: int) -> Conversation:
        with self._lock:
            cid = self._resolve(conversation_id)
            for c in self._all_conversations() if self._has_pending() else ():
                if c.id == cid:
                    return c
            if cid > 0:
                for r in self._read(
                    "SELECT c.id, c.title, c.started_at, c.updated_at, "
                    "(SELECT COUNT(*) FROM turns t WHERE t.conversation_id = c.id) AS n "
                    "FROM conversations c WHERE c.id = ?",
                    (cid,),
                ):
                    return Conversation(r["id"], r["title"], r["started_at"], r["updated_at"], r["n"])
        raise VoiceError("history", ErrorCode.NOT_FOUND, f"no conversation {conversation_id} in the history")

    def _conversation_exists(self, cid: int) -> bool:
        if cid < 0:
            return cid in self._convs
        try:
            return bool(self._read("SELECT 1 FROM conversations WHERE id = ?", (cid,)))
        except VoiceError:
            return True  # cannot tell now; the flush keeps the turn in a new conversation if need be

    # ------------------------------------------------------------------ turns

    def begin_turn(self, user_text: str, *, conversation_id: int | None = None, started_at: float | None = None) -> int:
        """Record a turn as `in_progress`, committed at once so a crash cannot lose it."""
        messages: list[str] = []
        with self._lock:
            self._check_open()
            if conversation_id is None:
                if self._current is None:
                    _, messages = self._new_conversation_locked(None)
                assert self._current is not None
                cid = self._current
            else:
                cid = self._resolve(conversation_id)
                if self._outage is None and not self._conversation_exists(cid):
                    raise VoiceError(
                        "history.begin_turn",
                        ErrorCode.NOT_FOUND,
                        f"no conversation {conversation_id} in the history",
                    )
            now = time.time() if started_at is None else started_at
            pid = self._provisional()
            self._turns[pid] = {
                "conversation_id": cid,
                "started_at": now,
                "finished_at": None,
                "status": "in_progress",
                "user_text": user_text,
                "reply_text": "",
                "interrupted": 0,
                "error": None,
                "timings": "{}",
                "providers": "{}",
                "voice_to_voice_ms": None,
            }
            self._current = cid
            self._bound()
            messages += self._flush_locked(force=True)
            tid = self._resolve(pid)
        self._tell(messages)
        return tid

    def checkpoint_reply(self, turn_id: int, reply_text: str) -> None:
        """Save the reply spoken so far, so a crash keeps it (optional, cheap)."""
        with self._lock:
            self._check_open()
            tid = self._resolve(turn_id)
            pending = self._turns.get(tid)
            if pending is not None:
                if pending["status"] == "in_progress":
                    pending["reply_text"] = reply_text
            elif tid > 0:
                u = self._updates.setdefault(tid, {"started_at": self._started.get(tid)})
                if "finish" not in u:
                    u["reply_text"] = reply_text
            self._bound()
            messages = self._flush_locked(force=False)
        self._tell(messages)

    def finish_turn(  # noqa: PLR0913 - one history row's columns; the engine passes them by name
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
        fields: dict[str, Any] = {
            "finished_at": time.time(),
            "status": status,
            "reply_text": reply_text,
            "interrupted": int(interrupted),
            "error": error,
            "timings": json.dumps(timings or {}),
            "providers": json.dumps(providers or {}),
            "voice_to_voice_ms": voice_to_voice_ms,
        }
        with self._lock:
            self._check_open()
            tid = self._resolve(turn_id)
            pending = self._turns.get(tid)
            if pending is not None:
                pending.update(fields)
                if user_text is not None:
                    pending["user_text"] = user_text
            elif tid > 0:
                self._updates[tid] = {
                    "started_at": self._started.get(tid),
                    "finish": {**fields, "user_text": user_text},
                }
            else:
                raise VoiceError("history.finish_turn", ErrorCode.NOT_FOUND, f"no turn {turn_id} to finish")
            self._bound()
            messages = self._flush_locked(force=True)
            missing = tid in self._not_found
        self._tell(messages)
        if missing:
            raise VoiceError("history.finish_turn", ErrorCode.NOT_FOUND, f"no turn {turn_id} to finish")

    def turns(self, conversation_id: int) -> list[Turn]:
        """All turns of a conversation, oldest first (those not yet written included)."""
        with self._lock:
            cid = self._resolve(conversation_id)
            rows = [] if cid < 0 else self._read("SELECT * FROM turns WHERE conversation_id = ? ORDER BY id", (cid,))
            return self._overlay(cid, [_turn(r) for r in rows])

    def _overlay(self, cid: int, stored: list[Turn]) -> list[Turn]:
        """Stored turns with the changes not yet written, then the turns not yet written."""
        out: list[Turn] = []
        for t in stored:
            u = self._updates.get(t.id)
            if u is not None and "finish" in u:
                f = u["finish"]
                t = replace(
                    t,
                    finished_at=f["finished_at"],
                    status=f["status"],
                    reply_text=f["reply_text"],
                    interrupted=bool(f["interrupted"]),
                    error=f["error"],
                    timings=_json_dict(f["timings"]),
                    providers=_json_dict(f["providers"]),
                    voice_to_voice_ms=f["voice_to_voice_ms"],
                    user_text=f["user_text"] if f["user_text"] is not None else t.user_text,
                )
            elif u is not None and t.status == "in_progress":
                t = replace(t, reply_text=u["reply_text"])
            out.append(t)
        for pid, p in self._turns.items():
            if self._resolve(p["conversation_id"]) == cid:
                out.append(_turn(p, turn_id=pid, conversation_id=cid))
        return out

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
        Never raises for the disk: what cannot be read is left out (and logged).
        """
        with self._lock:
            self._check_open()
            cid = self._current if conversation_id is None else self._resolve(conversation_id)
            if cid is None or max_turns == 0:
                return []
            try:
                if self._has_pending():
                    try:
                        turns = self.turns(cid)
                    except VoiceError as exc:
                        log.warning("history: earlier turns left out of the context: %s", exc)
                        turns = self._overlay(cid, [])
                    rows = (
                        (t.user_text, t.reply_text)
                        for t in reversed(turns)
                        if t.status != "in_progress" and t.reply_text
                    )
                    return _pick(rows, max_turns, budget_chars)
                return _pick(self._stored_pairs(cid), max_turns, budget_chars)
            except VoiceError as exc:
                log.warning("history: earlier turns left out of the context: %s", exc)
                return []

    def _stored_pairs(self, cid: int) -> Iterator[tuple[str, str]]:
        """(user, reply) of finished turns with a reply, newest first, read in batches."""
        batch, offset = 64, 0
        while True:
            rows = self._read(
                "SELECT user_text, reply_text FROM turns WHERE conversation_id = ? "
                "AND status != 'in_progress' AND reply_text != '' ORDER BY id DESC LIMIT ? OFFSET ?",
                (cid, batch, offset),
            )
            for r in rows:
                yield r["user_text"], r["reply_text"]
            if len(rows) < batch:
                return
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
        raise VoiceError("history.export", ErrorCode.INVALID_CONFIG, f"unknown format {fmt!r} — use json or markdown")

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
            conn = self._conn or self._ro_conn
            if conn is None:
                self._check_open()
                return False
            try:
                ok = conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
                return ok and not conn.execute("PRAGMA foreign_key_check").fetchall()
            except sqlite3.DatabaseError:
                return False

    def close(self) -> None:
        """Write what is pending, checkpoint the WAL into the main file and close. Safe to call twice.

        Turns that still cannot be written are kept in a file (see `_keep_unsaved`) and
        added by the next open; `on_notice` says where."""
        messages: list[str] = []
        with self._lock:
            if self._closed:
                return
            self.empty_trash()  # an undoable delete becomes final when the app closes
            messages += self._flush_locked(force=True)
            if self._has_pending():
                messages.append(self._keep_unsaved())
            self._closed = True
            for conn in (self._conn, self._ro_conn):
                if conn is None:
                    continue
                if conn is self._conn:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                conn.close()
            self._conn = self._ro_conn = None
        self._tell(messages)

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


def _turn(r: Any, *, turn_id: int | None = None, conversation_id: int | None = None) -> Turn:
    """A stored row, or a pending one kept in memory (same keys; its ids given)."""
    return Turn(
        id=r["id"] if turn_id is None else turn_id,
        conversation_id=r["conversation_id"] if conversation_id is None else conversation_id,
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


_NUMBER = (int, float)
_CONV_FIELDS: dict[str, tuple[type, ...]] = {"title": (str,), "started_at": _NUMBER, "updated_at": _NUMBER}
_FINISH_FIELDS: dict[str, tuple[type, ...]] = {
    "finished_at": _NUMBER,
    "status": (str,),
    "reply_text": (str,),
    "interrupted": (int,),
    "error": (str, type(None)),
    "timings": (str,),
    "providers": (str,),
    "voice_to_voice_ms": (*_NUMBER, type(None)),
    "user_text": (str, type(None)),
}
_TURN_FIELDS: dict[str, tuple[type, ...]] = {
    **_FINISH_FIELDS,
    "conversation_id": (int,),
    "started_at": _NUMBER,
    "finished_at": (*_NUMBER, type(None)),
    "user_text": (str,),
}


def _fits(row: Any, fields: dict[str, tuple[type, ...]]) -> bool:
    """Whether a row read back from an unsaved-turns file has every field, of the right type."""
    return (
        isinstance(row, dict)
        and all(isinstance(row.get(k, ...), types) for k, types in fields.items())
        and (row.get("status") in (None, "in_progress", "complete", "interrupted", "error"))
    )


def _pick(
    newest_first: Iterable[tuple[str, str]], max_turns: int | None, budget_chars: int | None
) -> list[ChatMessage]:
    """The newest (user, reply) pairs within both budgets, as messages oldest first."""
    picked: list[tuple[str, str]] = []
    used = 0
    for user, reply in newest_first:
        size = len(user) + len(reply)
        if budget_chars is not None and used + size > budget_chars:
            break
        if max_turns is not None and len(picked) >= max_turns:
            break
        used += size
        picked.append((user, reply))
    out: list[ChatMessage] = []
    for user, reply in reversed(picked):
        out.append(ChatMessage("user", user))
        out.append(ChatMessage("assistant", reply))
    return out


def _fold(text: str | None) -> str:
    """For matching regardless of case, in any script (SQLite's LIKE folds ASCII only)."""
    return (text or "").casefold()


def _title(user_text: str) -> str:
    title = " ".join(user_text.split())
    if len(title) > _TITLE_CHARS:
        title = title[: _TITLE_CHARS - 1].rstrip() + "…"
    return title


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
