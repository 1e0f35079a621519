"""Write-behind for the Qdrant store: answers are queued and written in batches.

Writing each answer on its own, on the request's heels, cost a round trip per cache miss with a
server. Here a store only queues the point; one background task owned by the cache writes what
is queued every `interval` seconds, or as soon as `wake_at` operations wait, in batches of up to
`batch_size` (deletes, then one upsert of many points). The embedded Edge shard wakes the task
at once (`wake_at=1`): its write is in-process, and a few points written as soon as the loop is
free never hold a request the way a 0.2 s batch of 50 did (~5 ms at c=1, the p99), while under
load the points that queue up meanwhile still go as one batch.

Nothing queued is lost to the reader: the worker's own tables already hold every queued answer
(the store only persists them, or shares them with other workers in server mode), and `close()`
writes what is still queued before the store closes.

A point queued and then deleted before a flush is never written. While the store is not open
(Qdrant down, or its folder unusable) the queue is kept, bounded by `max_pending`: past that the
oldest queued answers are dropped (they stay in this worker's tables) and reported. The same
happens when the store cannot keep up. Such drops are counted at once and logged at most every
`report_every` seconds, with the total.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from llm_gateway.cache.records import AnswerRecord, PendingPoint, PointId

if TYPE_CHECKING:
    from llm_gateway.cache.answer_store import AnswerStore

log = logging.getLogger(__name__)


class WriteBehind:
    def __init__(
        self,
        store: Callable[[], AnswerStore | None],
        *,
        interval: float = 0.2,
        batch_size: int = 64,
        wake_at: int | None = None,
        max_pending: int = 10_000,
        on_failure: Callable[[BaseException | None, int], None] | None = None,
        report_every: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._interval = interval
        self._batch_size = batch_size
        self._wake_at = batch_size if wake_at is None else max(1, wake_at)
        self._max_pending = max(batch_size, max_pending)
        self._on_failure = on_failure
        self._upserts: dict[PointId, PendingPoint] = {}
        self._deletes: dict[PointId, None] = {}  # insertion-ordered set
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._report_every = report_every
        self._clock = clock
        self._unreported_drops = 0
        self._last_drop_report = -math.inf

    @property
    def pending(self) -> int:
        return len(self._upserts) + len(self._deletes)

    def upsert(self, point_id: PointId, vector: Sequence[float], record: AnswerRecord) -> None:
        self._deletes.pop(point_id, None)
        self._upserts.pop(point_id, None)  # re-queued: it moves to the back
        self._upserts[point_id] = PendingPoint.of(point_id, vector, record)
        self._queued()

    def delete(self, point_id: PointId) -> None:
        # Even a point still queued may have an older copy on disk (an earlier batch or run).
        self._upserts.pop(point_id, None)
        self._deletes[point_id] = None
        self._queued()

    def _queued(self) -> None:
        if self.pending >= self._wake_at:
            self._wake.set()
        overflow = self.pending - self._max_pending
        if overflow > 0:
            dropped = 0
            while overflow > 0 and self._upserts:
                del self._upserts[next(iter(self._upserts))]
                overflow -= 1
                dropped += 1
            while overflow > 0 and self._deletes:
                del self._deletes[next(iter(self._deletes))]
                overflow -= 1
                dropped += 1
            self._dropped(dropped)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="cache-write-behind")

    async def close(self) -> None:
        """Stop the background task, then write whatever is still queued."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.flush()
        self._report_drops()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            await self.flush()
            self._report_drops_if_due()

    async def flush(self) -> int:
        """Write everything queued now, in batches; returns how many operations were written.
        Never raises: a failed batch is reported and dropped (the tables still hold it)."""
        written = 0
        async with self._lock:
            while self.pending:
                store = self._store()
                if store is None:
                    return written  # kept for when the store opens
                points = list(self._upserts.values())[: self._batch_size]
                deletes = list(self._deletes)[: self._batch_size]
                for point in points:
                    del self._upserts[point.point_id]
                for point_id in deletes:
                    del self._deletes[point_id]
                try:
                    await store.write(points, deletes)
                except Exception as exc:
                    self._failed(exc, len(points) + len(deletes))
                    continue
                written += len(points) + len(deletes)
        return written

    def _dropped(self, count: int) -> None:
        """Queued answers dropped past the bound: counted now, logged at most every
        `report_every` seconds (under overload this happens on every request)."""
        self._unreported_drops += count
        if self._on_failure is not None:
            self._on_failure(None, count)
        self._report_drops_if_due()

    def _report_drops_if_due(self) -> None:
        if self._clock() - self._last_drop_report >= self._report_every:
            self._report_drops()

    def _report_drops(self) -> None:
        if self._unreported_drops:
            log.warning(
                "cache_store_failed",
                extra={
                    "tier": "exact",
                    "error": "QueueFull",
                    "dropped": self._unreported_drops,
                    "detail": "answers queued for the store were dropped (the store is down or "
                    "cannot keep up); they are still served from this worker's memory",
                },
            )
            self._unreported_drops = 0
            self._last_drop_report = self._clock()

    def _failed(self, exc: BaseException, dropped: int) -> None:
        log.warning(
            "cache_store_failed",
            extra={
                "tier": "exact",
                "error": type(exc).__name__,
                "dropped": dropped,
            },
        )
        if self._on_failure is not None:
            self._on_failure(exc, dropped)
