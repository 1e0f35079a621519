"""The exact tier shared by the workers of one pod (or one `make run`): a SQLite file in WAL mode.

On the embedded store (no QDRANT_URL) each gunicorn worker has its own Edge shard (slots.py), so
before this table an identical repeat that landed on the other worker was a miss. Every worker
opens this one file, `DATA_DIR/cache/exact.sqlite3`, and the answer one worker stores is a hit
for its siblings from the moment its `put` returns. With QDRANT_URL the server already shares the
exact tier across workers and pods, and this table is not used.

Why SQLite in WAL mode: several processes may open one file safely (the standard library ships
it, no service to run); readers never wait for the writer; a write is one short transaction
appended to the write-ahead log, without fsync (`synchronous=NORMAL`: an answer lost to a power
cut is only a cache miss). Moving the log into the database file (a checkpoint, which copies
pages and does fsync) is not left to whichever commit crosses SQLite's threshold, on the request
path: commits never checkpoint (`wal_autocheckpoint=0`), and the cache calls `checkpoint()` from
a low-priority thread after it has written (`keep_checkpointed`, about once a second).

Rows are `(key, body, created_at, expires_at, used_at)`; `key` is the full exact key (keys.py:
model, messages, answer-changing params and tenant scope), so the table adds no scoping of its
own. Bounds:
- CACHE_MAX_ENTRIES rows at most: a write past it removes the least recently used rows, in the
  same transaction. `used_at` is the store time, moved forward when a worker serves the row;
  those touches are queued and written with the worker's next write (or purge), so the order is
  exact within a worker and approximate across workers.
- The TTL: a row past `expires_at` is never served, and `purge_expired` deletes it.

Failure: every call raises `sqlite3.Error` (or OSError) on trouble and the caller fails open. A
write waits at most `busy_timeout` for another worker's write lock. Calls run inline on the event
loop: a read costs ~5 µs and a write transaction ~90 µs at the median (bench/shared_exact.py);
a disk that stalls outright would stall them, as it would the trace journal under DATA_DIR.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

from llm_gateway.thread_priority import lower_current_thread_priority

log = logging.getLogger(__name__)

FILE_NAME: Final = "exact.sqlite3"

_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS answers (
        key TEXT NOT NULL UNIQUE,
        body BLOB NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        used_at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS answers_by_use ON answers (used_at)",
)
_GET: Final = "SELECT body, created_at, expires_at FROM answers WHERE key = ?"
_UPSERT: Final = """
INSERT INTO answers (key, body, created_at, expires_at, used_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET body = excluded.body, created_at = excluded.created_at,
    expires_at = excluded.expires_at, used_at = excluded.used_at
"""
_TOUCH: Final = "UPDATE answers SET used_at = max(used_at, ?) WHERE key = ?"
# Counted on the smallest index (used_at); measured cheaper per write than a counter row kept up
# to date by triggers, which adds a page to every commit.
_COUNT: Final = "SELECT count(*) FROM answers"
# The rowid breaks ties between rows used at the same instant: the older insert leaves first.
_EVICT: Final = (
    "DELETE FROM answers WHERE rowid IN (SELECT rowid FROM answers ORDER BY used_at, rowid LIMIT ?)"
)
# A scan of at most CACHE_MAX_ENTRIES rows, every purge interval: cheaper than an index on
# expires_at kept up to date by every write.
_PURGE: Final = "DELETE FROM answers WHERE expires_at <= ?"


class SharedExactTable:
    def __init__(self, directory: Path, *, max_entries: int, busy_timeout: float) -> None:
        if max_entries < 1:
            raise ValueError("the shared exact table needs room for at least one entry")
        self.path = directory / FILE_NAME
        self._max = max_entries
        self._busy_seconds = max(0.001, busy_timeout)
        self._db: sqlite3.Connection | None = None
        self._checkpointer: sqlite3.Connection | None = None
        self._touches: dict[str, float] = {}
        self.writes = 0  # transactions this connection committed (the checkpoint task reads it)

    @property
    def is_open(self) -> bool:
        return self._db is not None

    def open(self, now: float) -> None:
        """Create or open the file (blocking: call it from startup), then drop what is expired
        and trim to the bound (a smaller CACHE_MAX_ENTRIES than the last run's)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: no implicit transactions (each one is explicit, see _transaction);
        # timeout: how long a write waits for another worker's (SQLite's busy timeout).
        db = sqlite3.connect(self.path, isolation_level=None, timeout=self._busy_seconds)
        try:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA wal_autocheckpoint = 0")  # see checkpoint()
            with _transaction(db):
                for statement in _SCHEMA:
                    db.execute(statement)
                db.execute(_PURGE, (now,))
                self._trim(db)
        except BaseException:
            db.close()
            raise
        self._db = db

    def close(self) -> None:
        """Write queued touches and close (the last connection to close checkpoints the log)."""
        db, self._db = self._db, None
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.close()
        if db is None:
            return
        try:
            if self._touches:
                with _transaction(db):
                    self._write_touches(db)
        finally:
            db.close()

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file (PASSIVE: never waits for, nor
        blocks, readers and writers). Blocking, with fsync: call it from a background thread,
        one call at a time; it has its own connection for that."""
        if self._db is None:
            return
        if self._checkpointer is None:
            self._checkpointer = sqlite3.connect(
                self.path,
                isolation_level=None,
                timeout=self._busy_seconds,
                check_same_thread=False,  # used by one background thread at a time
            )
        self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def __len__(self) -> int:
        row = self._connection().execute(_COUNT).fetchone()
        return int(row[0]) if row else 0

    def size(self) -> int | None:
        """Answers in the table; None when it is closed or cannot be read (health details)."""
        if self._db is None:
            return None
        try:
            return len(self)
        except sqlite3.Error:
            return None

    def get(self, key: str, now: float) -> tuple[bytes, float, float] | None:
        """(body, created_at, expires_at) of an answer still valid at `now`, else None."""
        row = self._connection().execute(_GET, (key,)).fetchone()
        if row is None or row[2] <= now:
            return None
        return bytes(row[0]), float(row[1]), float(row[2])

    def touch(self, key: str, now: float) -> None:
        """Note that `key` was served at `now` (written with the next write)."""
        self._touches[key] = now

    def put(self, key: str, body: bytes, created_at: float, expires_at: float) -> None:
        """Insert or replace one answer as the most recently used, evicting past the bound."""
        db = self._connection()
        with _transaction(db):
            self._write_touches(db)
            db.execute(_UPSERT, (key, body, created_at, expires_at, created_at))
            self._trim(db)
        self.writes += 1

    def purge_expired(self, now: float) -> int:
        """Delete every expired answer; returns how many."""
        db = self._connection()
        with _transaction(db):
            self._write_touches(db)
            removed = db.execute(_PURGE, (now,)).rowcount
        self.writes += 1
        return removed

    def _write_touches(self, db: sqlite3.Connection) -> None:
        if self._touches:
            touches, self._touches = self._touches, {}
            db.executemany(_TOUCH, [(used_at, key) for key, used_at in touches.items()])

    def _trim(self, db: sqlite3.Connection) -> None:
        row = db.execute(_COUNT).fetchone()
        excess = (int(row[0]) if row else 0) - self._max
        if excess > 0:
            db.execute(_EVICT, (excess,))

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise sqlite3.ProgrammingError("the shared exact table is not open")
        return self._db


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): takes the write lock up front, so a
    transaction never fails half way on a lock upgrade."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


async def keep_checkpointed(table: SharedExactTable, interval: float) -> None:
    """Background: after this worker wrote to the table, move its write-ahead log into the
    file, on a low-priority thread (the module docstring says why)."""
    thread = ThreadPoolExecutor(
        max_workers=1,
        thread_name_prefix="cache-checkpoint",
        initializer=lower_current_thread_priority,
    )
    checkpointed = 0
    try:
        while True:
            await asyncio.sleep(interval)
            if not table.is_open or table.writes == checkpointed:
                continue
            checkpointed = table.writes
            try:
                await asyncio.get_running_loop().run_in_executor(thread, table.checkpoint)
            except Exception as exc:
                log.warning("cache_checkpoint_failed", extra={"error": type(exc).__name__})
    finally:
        thread.shutdown(wait=True)  # never close the table under a running checkpoint
