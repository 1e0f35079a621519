"""The local JSONL journal: where a trace waits while MLflow is unreachable.

Layout, in one directory shared by every gunicorn worker (and pod restarts, on a volume)::

    owner-<pid>-<token>.lock                    held (flock) by a live journal for its lifetime
    traces-<pid>-<token>-<seq>.jsonl            one record per line; the highest seq is active
    traces-<pid>-<token>-<seq>.jsonl.replaying.<pid>-<token>   claimed by that replayer

Each journal instance writes only its own files (pid plus a random token, so a reused pid after
a restart never collides), so no two processes ever append to one file. Liveness is the owner's
flock, not `kill(pid, 0)`: in a container a restarted worker often gets its dead predecessor's pid.

Rotation happens at `max_bytes`. An instance holds at most `max_bytes x max_files` bytes: when
its closed files pass `max_bytes x (max_files - 1)` (the active file gets the last share), the
oldest is deleted and its records are counted and logged as dropped: the only way a trace is
lost. The bound is on bytes, not on the number of files, because every replay round closes the
active file (so it can be claimed) and a round cut short by a failure gives its unsent records
back as a file of their own: during a long or flapping outage an instance collects many small
files, and counting files would drop traces far below the bound (it did, in bench/trace_load.py).

Replay claims files by an atomic rename, so two replayers never send the same file: its own
closed files, and every file (or abandoned claim) of an owner whose lock is free. Its own active
file is rotated first so that it can be claimed too. A claim that is not fully sent is written
back holding only the unsent records.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from llm_gateway.observability.metrics import Metrics
from llm_gateway.tracking.records import TraceRecord

log = logging.getLogger(__name__)

DATA_RE = re.compile(r"^traces-(?P<owner>\d+-[0-9a-f]+)-(?P<seq>\d+)\.jsonl$")
CLAIM_RE = re.compile(
    r"^(?P<base>traces-(?P<owner>\d+-[0-9a-f]+)-(?P<seq>\d+)\.jsonl)"
    r"\.replaying\.(?P<claimant>\d+-[0-9a-f]+)$"
)


def _lock_name(owner: str) -> str:
    return f"owner-{owner}.lock"


@dataclass
class ClaimedFile:
    """A journal file this instance has claimed for replay, with its readable records."""

    journal: TraceJournal
    path: Path
    base_name: str
    records: list[TraceRecord]
    unreadable_lines: int
    sent: int = field(default=0)

    def mark_sent(self, count: int) -> None:
        self.sent = min(len(self.records), self.sent + count)

    @property
    def remaining(self) -> list[TraceRecord]:
        return self.records[self.sent :]

    def finish(self) -> None:
        """Delete the claim if everything was sent, else put the unsent records back."""
        self.journal.settle(self)


class TraceJournal:
    def __init__(
        self, directory: Path, max_bytes: int, max_files: int, metrics: Metrics | None = None
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.metrics = metrics
        # Set by open(), in the process that writes: a journal built before gunicorn forks must
        # not share its identity with its siblings.
        self.owner = ""
        self._lock = threading.RLock()
        self._owner_lock: IO[bytes] | None = None
        self._active: IO[bytes] | None = None
        self._active_seq = 0
        self._active_size = 0

    # --- lifecycle -------------------------------------------------------------------------
    def open(self) -> None:
        """Create the directory and take this instance's owner lock (called from the lifespan)."""
        with self._lock:
            if self._owner_lock is not None:
                return
            self.directory.mkdir(parents=True, exist_ok=True)
            self.owner = f"{os.getpid()}-{secrets.token_hex(4)}"
            self._active_seq = 0
            # Locked before it becomes visible: a replayer must never see it unlocked and take
            # this (live) owner for dead.
            pending = self.directory / f".{_lock_name(self.owner)}.new"
            handle = pending.open("wb")
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            pending.rename(self.directory / _lock_name(self.owner))
            self._owner_lock = handle

    def close(self) -> None:
        """fsync and close the active file, release the owner lock; files stay for a replayer."""
        with self._lock:
            self._close_active()
            if self._owner_lock is not None:
                (self.directory / _lock_name(self.owner)).unlink(missing_ok=True)
                fcntl.flock(self._owner_lock, fcntl.LOCK_UN)
                self._owner_lock.close()
                self._owner_lock = None

    # --- writing ---------------------------------------------------------------------------
    def append(self, records: Iterable[TraceRecord]) -> int:
        """Append records (one JSON line each, flushed); returns how many were written."""
        written = 0
        with self._lock:
            if self._owner_lock is None:
                self.open()
            for record in records:
                line = record.to_json() + b"\n"
                if self._active is not None and (
                    self._active_size > 0 and self._active_size + len(line) > self.max_bytes
                ):
                    self._close_active()
                if self._active is None:
                    self._open_next()
                assert self._active is not None
                self._active.write(line)
                self._active.flush()
                self._active_size += len(line)
                written += 1
        if written and self.metrics is not None:
            self.metrics.traces.labels("journaled").inc(written)
        return written

    def _own_files(self) -> list[tuple[int, Path]]:
        own: list[tuple[int, Path]] = []
        for path in self.directory.iterdir():
            match = DATA_RE.match(path.name)
            if match and match["owner"] == self.owner:
                own.append((int(match["seq"]), path))
        return sorted(own)

    def _close_active(self) -> None:
        if self._active is not None:
            self._active.flush()
            os.fsync(self._active.fileno())
            self._active.close()
            self._active = None
            self._active_size = 0

    def _open_next(self) -> None:
        # The previous file is already closed and fsynced: from now on a replayer may claim it.
        self._active_seq += 1
        path_open = self.directory / f"traces-{self.owner}-{self._active_seq:06d}.jsonl"
        self._active = path_open.open("ab")
        self._active_size = 0
        sizes = [(path, self._size(path)) for _, path in self._own_files() if path != path_open]
        closed_bound = self.max_bytes * (self.max_files - 1)
        held = sum(size for _, size in sizes)
        while sizes and held > closed_bound:
            oldest, size = sizes.pop(0)
            held -= size
            self._drop(oldest, reason="max_bytes_x_max_files")

    @staticmethod
    def _size(path: Path) -> int:
        try:
            return path.stat().st_size
        except FileNotFoundError:
            return 0  # a replayer claimed it meanwhile

    def _drop(self, path: Path, *, reason: str) -> None:
        try:
            count = path.read_bytes().count(b"\n")
            path.unlink()
        except FileNotFoundError:
            return  # a replayer claimed it first: nothing is lost
        self._count_dropped(count, reason=reason, file=path.name)

    def _count_dropped(self, count: int, *, reason: str, file: str) -> None:
        if count <= 0:
            return
        if self.metrics is not None:
            self.metrics.traces.labels("dropped").inc(count)
        log.error(
            "trace_journal_dropped",
            extra={
                "dropped": count,
                "reason": reason,
                "file": file,
                "bound_bytes": self.max_bytes * self.max_files,
            },
        )

    # --- replay ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _dead_owner(self, owner: str) -> Iterator[bool]:
        """Yields True while holding a dead owner's lock (its files are then ours to claim)."""
        if owner == self.owner:
            yield True
            return
        lock_path = self.directory / _lock_name(owner)
        try:
            handle = lock_path.open("rb")  # never create it: a missing lock means a dead owner
        except FileNotFoundError:
            yield True  # no lock file: the owner closed cleanly or vanished long ago
            return
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    yield False
                    return
                raise
            yield True
        finally:
            handle.close()

    def claim(self) -> list[ClaimedFile]:
        """Atomically claim every file this instance may replay, oldest first."""
        with self._lock:
            if self._owner_lock is None:
                self.open()
            # Our own current file is closed so that it can be claimed too; the next append
            # starts a new one.
            self._close_active()
            candidates: list[tuple[str, int, str, Path]] = []  # (owner, seq, base, path)
            for path in self.directory.iterdir():
                if match := DATA_RE.match(path.name):
                    candidates.append((match["owner"], int(match["seq"]), path.name, path))
                elif (match := CLAIM_RE.match(path.name)) and match["claimant"] != self.owner:
                    # A replayer that died mid-replay left this claim behind.
                    candidates.append((match["claimant"], int(match["seq"]), match["base"], path))
            claimed: list[ClaimedFile] = []
            for owner, _seq, base, path in sorted(candidates, key=lambda c: (c[1], c[2])):
                with self._dead_owner(owner) as free:
                    if not free:
                        continue
                    target = self.directory / f"{base}.replaying.{self.owner}"
                    try:
                        path.rename(target)
                    except FileNotFoundError:
                        continue  # another replayer won the rename
                claimed.append(self._read_claim(target, base))
            self._remove_stale_locks()
            return claimed

    def _read_claim(self, path: Path, base: str) -> ClaimedFile:
        records: list[TraceRecord] = []
        unreadable = 0
        for line in path.read_bytes().splitlines():
            if not line.strip():
                continue
            try:
                records.append(TraceRecord.from_json(line))
            except (ValueError, TypeError, KeyError):
                # A crash mid-write leaves a truncated last line; it cannot be sent.
                unreadable += 1
        if unreadable:
            self._count_dropped(unreadable, reason="unreadable_line", file=base)
        return ClaimedFile(self, path, base, records, unreadable)

    def settle(self, claim: ClaimedFile) -> None:
        remaining = claim.remaining
        with self._lock:
            if not remaining:
                claim.path.unlink(missing_ok=True)
                return
            # Rewrite atomically with only the unsent records, then give the file back.
            tmp = claim.path.with_name(claim.path.name + ".tmp")
            with tmp.open("wb") as handle:
                handle.writelines(record.to_json() + b"\n" for record in remaining)
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(claim.path)
            claim.path.rename(self.directory / claim.base_name)

    def _remove_stale_locks(self) -> None:
        # A dead owner's lock file says nothing its absence does not: remove it while holding it.
        for path in self.directory.glob("owner-*.lock"):
            owner = path.name.removeprefix("owner-").removesuffix(".lock")
            if owner == self.owner:
                continue
            with self._dead_owner(owner) as free:
                if free:
                    path.unlink(missing_ok=True)

    def backlog(self, now_ns: int | None = None) -> dict[str, float]:
        """Files, bytes and the oldest record's age (seconds) waiting on disk, all workers.

        The age is read from the first record of the oldest file (records are appended in
        order), so it costs one short read, not a scan of the backlog.
        """
        files = 0
        size = 0
        oldest: tuple[float, Path] | None = None
        with contextlib.suppress(FileNotFoundError):
            for path in self.directory.iterdir():
                if path.name.startswith("traces-") and not path.name.endswith(".tmp"):
                    with contextlib.suppress(FileNotFoundError):
                        info = path.stat()
                        size += info.st_size
                        files += 1
                        if info.st_size and (oldest is None or info.st_mtime < oldest[0]):
                            oldest = (info.st_mtime, path)
        age = 0.0
        if oldest is not None:
            age = self._age_of_first_record(oldest[1], now_ns or time.time_ns())
        return {"files": files, "bytes": size, "oldest_age_seconds": age}

    @staticmethod
    def _age_of_first_record(path: Path, now_ns: int) -> float:
        try:
            with path.open("rb") as handle:
                first = TraceRecord.from_json(handle.readline())
        except (OSError, ValueError, TypeError, KeyError):
            return 0.0  # claimed meanwhile, or a torn line: the next look will tell
        return round(max(0, now_ns - first.ended_at_ns) / 1e9, 3)


__all__ = ["ClaimedFile", "TraceJournal"]
