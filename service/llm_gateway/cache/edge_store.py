"""The embedded answer store: one Qdrant Edge shard (Qdrant's engine, in the process).

Edge locks its shard's write-ahead log exclusively, so the gunicorn workers of a pod cannot share
one shard: each worker opens its own, `DATA_DIR/qdrant-edge/<collection>__<embedder>/worker-<n>`
(n is the worker slot it holds, slots.py). A worker that was killed leaves its shard as it was;
the worker that next takes the slot opens it again and Edge replays the log, so nothing written
is lost and nothing is half-applied.

A shard that cannot be opened (files damaged, another vector size, not a shard at all) is moved
aside to `<shard>.unreadable-<unix time>` with one WARNING, and a fresh shard is created: the
cache starts empty instead of the worker failing its boot again and again. A shard whose log is
locked by a live process is not moved: that is an error the caller retries.

Edge's updates and searches are synchronous, short and hold the GIL for most of their work
(~80-150 µs of CPU per point written, ~30-120 µs a search; bench/RESULTS.md), so they run on the
event loop: a thread would free little of it. A batch is written `_WRITE_CHUNK` points at a time
with the loop let go between chunks, so a batch of 64 never holds requests for its whole ~5 ms.
Every update goes to the shard's write-ahead log at once (a killed worker loses none of it),
but the log is only trimmed when the shard is flushed, and a flush holds the loop for a fixed
20-50 ms however little was written (measured; in a worker thread it held it just as long), so
a write flushes the shard only when the last flush is `flush_every` seconds old (a minute), and
close flushes it.

Deleted points are not vacuumed (EdgeShard.optimize): the cache reuses point ids (point_slots.py),
so the shard holds at most CACHE_MAX_ENTRIES points, and a vacuum was measured to raise the
worker's RSS rather than lower it. What does grow with writes is the resident part of the
write-ahead log Edge maps in 32 MB segments: clean file pages, bounded by the segment size.

The semantic tier searches the shard itself. No HNSW index is built (indexing_threshold 0): a
shard holds at most CACHE_MAX_ENTRIES answers and a match must share its scope, model, params and
context, so the one payload index, the partition bucket (records.PARTITION_FIELD), narrows a
search to a point or two that are checked and scored exactly (~60-120 µs of CPU a search at 4000
points).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, cast

import qdrant_edge as edge

from llm_gateway.cache.records import (
    KEYWORD_FIELDS,
    PARTITION_FIELD,
    PendingPoint,
    PointId,
    StoredAnswer,
    StoreMode,
    partition_bucket,
    stored_answer,
)

log = logging.getLogger(__name__)

_SCROLL_PAGE = 512
_WRITE_CHUNK = 8  # points per update: ~0.7 ms of the loop at a time
_LOCKED = "WouldBlock"  # how Edge words "another process holds this shard's log"


class EdgeStore:
    mode: StoreMode = "edge"

    def __init__(
        self, path: Path, *, collection: str, dimensions: int, flush_every: float = 60.0
    ) -> None:
        self.path = path
        self.collection = collection
        self.dimensions = dimensions
        self._flush_every = flush_every
        self._flushed_at = time.monotonic()
        self._shard: edge.EdgeShard | None = None

    def _config(self) -> edge.EdgeConfig:
        return edge.EdgeConfig(
            vectors=edge.EdgeVectorParams(size=self.dimensions, distance=edge.Distance.Cosine),
            optimizers=edge.EdgeOptimizersConfig(indexing_threshold=0),
            max_search_threads=1,  # a worker's lookups are small; the pod's cores serve requests
        )

    async def open(self) -> None:
        self._shard = self._load_or_create()

    def _load_or_create(self) -> edge.EdgeShard:
        if self.path.is_dir() and any(self.path.iterdir()):
            try:
                return _with_partition_index(edge.EdgeShard.load(str(self.path), self._config()))
            except Exception as exc:
                if _LOCKED in str(exc):
                    raise
                aside = self.path.with_name(f"{self.path.name}.unreadable-{int(time.time())}")
                shutil.move(self.path, aside)
                log.warning(
                    "cache_shard_unreadable",
                    extra={
                        "shard": str(self.path),
                        "moved_to": str(aside),
                        "error": str(exc)[:300],
                        "detail": "a fresh, empty shard is used; the old files are kept aside",
                    },
                )
        return _with_partition_index(edge.EdgeShard.create(str(self.path), self._config()))

    def _open_shard(self) -> edge.EdgeShard:
        if self._shard is None:
            raise RuntimeError("EdgeStore is not open")
        return self._shard

    async def close(self) -> None:
        shard, self._shard = self._shard, None
        if shard is not None:
            try:
                shard.flush()
            finally:
                shard.close()

    async def write(self, points: Sequence[PendingPoint], deletes: Sequence[PointId]) -> None:
        shard = self._open_shard()
        if deletes:
            shard.update(edge.UpdateOperation.delete_points(list(deletes)))
        for start in range(0, len(points), _WRITE_CHUNK):
            if start:
                await asyncio.sleep(0)  # requests run between chunks
            chunk = points[start : start + _WRITE_CHUNK]
            shard.update(edge.UpdateOperation.upsert_points([_edge_point(p) for p in chunk]))
        if time.monotonic() - self._flushed_at >= self._flush_every:
            shard.flush()
            self._flushed_at = time.monotonic()

    async def get(self, point_id: PointId) -> StoredAnswer | None:
        records = self._open_shard().retrieve([point_id], with_payload=True, with_vector=False)
        return stored_answer(records[0].payload) if records else None

    async def search(
        self,
        vector: list[float],
        *,
        scope: str,
        model: str,
        params_fingerprint: str,
        context_fingerprint: str,
        now: float,
        threshold: float,
    ) -> tuple[StoredAnswer, float] | None:
        wanted = (scope, model, params_fingerprint, context_fingerprint)
        bucket = partition_bucket(params_fingerprint, context_fingerprint)
        query_filter = edge.Filter(
            must=[
                # The indexed bucket first narrows the search to a point or two; the rest is
                # checked on those.
                edge.FieldCondition(key=PARTITION_FIELD, match=edge.MatchValue(bucket)),
                *(
                    edge.FieldCondition(key=field, match=edge.MatchValue(value))
                    for field, value in zip(KEYWORD_FIELDS, wanted, strict=True)
                ),
                edge.FieldCondition(key="expires_at", range=edge.RangeFloat(gt=now)),
            ]
        )
        found = self._open_shard().search(
            edge.SearchRequest(
                query=edge.Query.Nearest(vector),
                limit=1,
                filter=query_filter,
                with_payload=True,
                score_threshold=threshold,
            )
        )
        for point in found:
            stored = stored_answer(point.payload)
            if stored is not None:
                return stored, float(point.score)
        return None

    async def scroll_all(self) -> AsyncIterator[tuple[PointId, dict[str, Any]]]:
        offset: edge.PointId | None = None
        while True:
            records, offset = self._open_shard().scroll(
                edge.ScrollRequest(
                    offset=offset, limit=_SCROLL_PAGE, with_payload=True, with_vector=False
                )
            )
            for record in records:
                yield _point_id(record.id), record.payload or {}
            if offset is None:
                return
            await asyncio.sleep(0)  # a large shard is read without holding the loop throughout

    async def vector(self, point_id: PointId) -> list[float] | None:
        records = self._open_shard().retrieve([point_id], with_payload=False, with_vector=True)
        return cast(list[float], records[0].vector) if records else None  # one unnamed vector

    async def purge_expired(self, now: float) -> int:
        shard = self._open_shard()
        expired = edge.Filter(
            must=[edge.FieldCondition(key="expires_at", range=edge.RangeFloat(lte=now))]
        )
        count = shard.count(edge.CountRequest(exact=True, filter=expired))
        if count:
            shard.update(edge.UpdateOperation.delete_points_by_filter(expired))
        return count

    async def count(self) -> int:
        return self._open_shard().count(edge.CountRequest(exact=True))


def _with_partition_index(shard: edge.EdgeShard) -> edge.EdgeShard:
    """The partition bucket is the shard's one payload index (records.PARTITION_FIELD says why);
    a shard an older version made, with an index per match field, has those dropped."""
    indexed = shard.info().payload_schema
    for field in indexed:
        if field != PARTITION_FIELD:
            shard.update(edge.UpdateOperation.delete_field_index(field))
    if PARTITION_FIELD not in indexed:
        shard.update(
            edge.UpdateOperation.create_field_index(PARTITION_FIELD, edge.PayloadSchemaType.Keyword)
        )
    return shard


def _edge_point(point: PendingPoint) -> edge.Point:
    return edge.Point(point.point_id, point.vector.tolist(), point.record.as_payload())


def _point_id(raw: object) -> PointId:
    # Edge hands uuid ids back as uuid.UUID; the cache's ids are their strings.
    return raw if isinstance(raw, int) else str(raw)
