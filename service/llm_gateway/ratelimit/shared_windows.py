"""The embedded shared store: moving windows in one SQLite file that every worker of a pod opens.

Why SQLite: the workers of one gunicorn master need one count with no server to run. Every store
`limits` offers (Redis, Memcached, MongoDB) is a server, and its memory store is private to one
process; SQLite (in the standard library) is a well-kept, crash-safe store for several processes
on one machine. The file lives in a directory the gunicorn master makes at start and removes at
exit (gunicorn_conf), under /tmp: an emptyDir in the chart, so the pages live in the page cache
and nothing is fsynced (`synchronous=OFF`: counts need not survive a machine crash, only a
worker's, which WAL gives).

Writers take an flock on a side file before their transaction, so SQLite itself never meets a
busy database (its busy handler would sleep 1 ms and more inside the event loop). The lock is
tried without blocking: a worker that finds it taken yields to its event loop and tries again
(RateLimiter bounds the wait), so a sibling that is busy, or stopped while holding it, never
freezes this worker. A hit holds it for tens of microseconds; a worker killed mid-transaction
releases it with its file descriptor, and WAL rolls the transaction back.

Semantics are LocalWindows': a hit is allowed while fewer than `limit` hits of the key are in
the last `expiry` seconds; a refused hit is not counted; the window resets when its oldest hit
leaves it. Hits whose window has passed are swept at most once per `sweep_every_seconds`.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from llm_gateway.ratelimit.local_windows import WindowHit

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS hits (key TEXT NOT NULL, at REAL NOT NULL, expires REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS hits_by_key ON hits (key, at)",
    "CREATE INDEX IF NOT EXISTS hits_by_expiry ON hits (expires)",
)
_COUNT = "SELECT COUNT(*), MIN(at) FROM hits WHERE key = ? AND at > ?"
_INSERT = "INSERT INTO hits (key, at, expires) VALUES (?, ?, ?)"
_SWEEP = "DELETE FROM hits WHERE expires <= ?"

# One rate limit to count: (key, limit, expiry seconds).
WindowSpec = tuple[str, int, float]


class SharedWindows:
    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], float] = time.time,
        sweep_every_seconds: float = 60.0,
    ) -> None:
        self.path = path
        self._clock = clock
        self._sweep_every = sweep_every_seconds
        self._next_sweep = 0.0
        self._db: sqlite3.Connection | None = None
        self._lock_fd: int | None = None

    def open(self) -> None:
        """Open (creating when missing) the file; every worker of the pod opens the same one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        # isolation_level=None: transactions are the explicit BEGIN/COMMIT below.
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        with self._locked():
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=OFF")
            for statement in _SCHEMA:
                db.execute(statement)
        self._db = db
        self._next_sweep = self._clock() + self._sweep_every

    def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)

    def try_hit_all(self, windows: Sequence[WindowSpec]) -> list[WindowHit] | None:
        """Count one hit in each window, in order, in one transaction; stops after a refusal.

        None when another worker holds the file right now: the caller yields and tries again,
        so a busy (or stopped) sibling never blocks this worker's event loop. Otherwise one
        entry per window examined: the last is the refused one, if any.
        """
        db = self._db
        if db is None or self._lock_fd is None:
            raise RuntimeError("SharedWindows.open() was not called before use")
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        try:
            return self._hit_all(db, windows)
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _hit_all(self, db: sqlite3.Connection, windows: Sequence[WindowSpec]) -> list[WindowHit]:
        results: list[WindowHit] = []
        now = self._clock()
        db.execute("BEGIN IMMEDIATE")
        try:
            for key, limit, expiry in windows:
                count, oldest = db.execute(_COUNT, (key, now - expiry)).fetchone()
                allowed = count < limit
                if allowed:
                    db.execute(_INSERT, (key, now, now + expiry))
                    count += 1
                reset_at = (now if oldest is None else oldest) + expiry
                results.append(WindowHit(allowed, limit - count, reset_at))
                if not allowed:
                    break
            if now >= self._next_sweep:
                # Keys nobody hits any more would otherwise keep their rows for ever.
                db.execute(_SWEEP, (now,))
                self._next_sweep = now + self._sweep_every
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return results

    def row_count(self) -> int:
        """Hits stored (swept ones excluded); for tests and the bench."""
        if self._db is None:
            raise RuntimeError("SharedWindows.open() was not called before use")
        with self._locked():
            (count,) = self._db.execute("SELECT COUNT(*) FROM hits").fetchone()
        return int(count)

    def _locked(self) -> _FileLock:
        if self._lock_fd is None:
            raise RuntimeError("SharedWindows.open() was not called before use")
        return _FileLock(self._lock_fd)


class _FileLock:
    """flock held for one transaction; released by the kernel too if the process dies."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def __enter__(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *_exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
