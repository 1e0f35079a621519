"""Worker slots: one Qdrant Edge shard per gunicorn worker.

Qdrant Edge locks its shard's write-ahead log for one process, and gunicorn runs several worker
processes, so workers cannot share one shard. Each worker claims the first free slot
`<root>/worker-<n>` by taking a non-blocking exclusive `flock` on `<root>/worker-<n>.lock` and
holds it for its lifetime. The kernel drops the lock when the process dies, so a restarted worker
reuses a free slot and the answers cached there (it reopens the shard the dead worker left).

Consequence: on the embedded store every worker has its own semantic tier (a paraphrase of a
prompt cached by worker 0 is a miss on worker 1); the exact tier is shared through the pod's
SQLite table. With QDRANT_URL all workers and pods share one cache.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from llm_gateway.errors import DependencyUnavailable

DEFAULT_MAX_SLOTS = 64


@dataclass
class WorkerSlot:
    index: int
    path: Path
    _fd: int | None

    def release(self) -> None:
        if self._fd is not None:
            # Closing the descriptor releases the flock.
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def acquire_slot(root: Path, max_slots: int = DEFAULT_MAX_SLOTS) -> WorkerSlot:
    """Claim the first free slot under `root` (blocking file I/O: call it from startup)."""
    root.mkdir(parents=True, exist_ok=True)
    for index in range(max_slots):
        lock_path = root / f"worker-{index}.lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        path = root / f"worker-{index}"
        path.mkdir(exist_ok=True)
        return WorkerSlot(index=index, path=path, _fd=fd)
    raise DependencyUnavailable(f"all {max_slots} cache slots under {root} are in use")
