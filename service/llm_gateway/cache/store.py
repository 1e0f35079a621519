"""The Qdrant side of the cache: one collection of answered requests.

Each point is one stored answer. Its id is uuid5 of the exact key, so the exact tier is a
retrieve-by-id and storing the same request again overwrites it. Its vector embeds the prompt for
the semantic tier, and its payload carries what a match must agree on::

    scope, model, params_fingerprint, context_fingerprint, key, created_at, expires_at, payload

Local mode (no QDRANT_URL) embeds Qdrant in the process under a worker slot folder (slots.py);
with QDRANT_URL an AsyncQdrantClient talks to a server shared by every worker and pod.

Local mode is synchronous work under an async skin: every point written is pickled and committed
to SQLite, and a filtered search checks each point's payload in Python. Run on the event loop,
that would stall every request the worker serves. So in local mode the synchronous QdrantClient
runs on one dedicated thread (one thread: local mode is not thread-safe; calls queue in order).
In local mode the worker's own tables (lru.py, local_index.py) answer every lookup; this store is
only written (in batches, write_behind.py) and read back in full at startup (`scroll_all`).

If the collection exists with another vector size or distance (the embedder changed), a
collection suffixed with the embedder's name is used instead, so a config change never crashes
the boot or mixes vectors.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from qdrant_client import AsyncQdrantClient, QdrantClient, models

from llm_gateway.cache.records import (
    AnswerRecord,
    PendingPoint,
    PointId,
    StoredAnswer,
    stored_answer,
)
from llm_gateway.thread_priority import lower_current_thread_priority

log = logging.getLogger(__name__)

_KEYWORD_FIELDS = ("scope", "model", "params_fingerprint", "context_fingerprint")
_SCROLL_PAGE = 512


def _match(field: str, value: str) -> models.FieldCondition:
    return models.FieldCondition(key=field, match=models.MatchValue(value=value))


class QdrantStore:
    def __init__(
        self,
        *,
        collection: str,
        dimensions: int,
        embedder_name: str,
        url: str | None = None,
        api_key: str | None = None,
        local_path: Path | None = None,
        timeout: float = 5.0,
    ) -> None:
        if url is None and local_path is None:
            raise ValueError("QdrantStore needs a server url or a local path")
        self._url = url
        self._api_key = api_key
        self._local_path = local_path
        self._timeout = timeout
        self._wanted_collection = collection
        self._embedder_name = embedder_name
        self.dimensions = dimensions
        self.collection = collection
        self._remote: AsyncQdrantClient | None = None
        self._local: QdrantClient | None = None
        self._thread: ThreadPoolExecutor | None = None
        # Local mode: False once every commit no longer waits for an fsync (_relax_commits).
        self.durable_commits = True

    @property
    def mode(self) -> str:
        return "server" if self._url else "local"

    async def open(self) -> None:
        if self._url:
            self._remote = AsyncQdrantClient(
                url=self._url,
                api_key=self._api_key,
                timeout=max(1, round(self._timeout)),
                check_compatibility=False,  # a version probe would be I/O outside open()
            )
        else:
            self._thread = ThreadPoolExecutor(
                max_workers=1,
                thread_name_prefix="qdrant-local",
                initializer=lower_current_thread_priority,
            )
            # Loads the folder and takes its lock, on the thread that will make every call.
            self._local = await self._in_thread(QdrantClient, path=str(self._local_path))
        await self._ensure_collection()
        if self._local is not None:
            self.durable_commits = not await self._in_thread(self._relax_commits, self._local)

    def _relax_commits(self, client: QdrantClient) -> bool:
        """Local mode commits (and fsyncs) SQLite once per point written: ~1-10 ms of waiting
        and ~1 ms of CPU per point here, which caps a worker at a few hundred stored answers a
        second. WAL with synchronous=NORMAL commits without an fsync (the WAL is synced at
        checkpoints): a crash of the process loses nothing, a crash of the machine may lose the
        last answers written, which for a cache is a few misses. Exclusive locking keeps the
        WAL's index in this connection's memory instead of a shared-memory file, 18 % less CPU
        per point written; no other connection may open the file, and none can anyway: Qdrant
        local already holds the folder's lock for the whole process. qdrant-client exposes no
        option for it, so the collection's connection is reached through its attributes; if a
        release moves them, this logs once and the store keeps the slower default."""
        collections = getattr(getattr(client, "_client", None), "collections", None)
        collection = collections.get(self.collection) if isinstance(collections, dict) else None
        connection = getattr(getattr(collection, "storage", None), "storage", None)
        if not isinstance(connection, sqlite3.Connection):
            log.warning("cache_local_commits_not_tuned", extra={"collection": self.collection})
            return False
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA locking_mode=EXCLUSIVE")
        return True

    async def scroll_all(self) -> AsyncIterator[tuple[PointId, list[float], dict[str, Any]]]:
        """Every stored point as (id, vector, payload), a page at a time (startup warm-up)."""
        offset: Any = None
        while True:
            points, offset = await self._call(
                "scroll",
                self.collection,
                limit=_SCROLL_PAGE,
                offset=offset,
                with_payload=True,
                with_vectors=True,
            )
            for point in points:
                yield point.id, point.vector, point.payload or {}
            if offset is None:
                return

    async def close(self) -> None:
        remote, self._remote = self._remote, None
        local, self._local = self._local, None
        thread, self._thread = self._thread, None
        if remote is not None:
            await remote.close()
        if thread is not None:
            try:
                if local is not None:
                    await asyncio.get_running_loop().run_in_executor(thread, local.close)
            finally:
                thread.shutdown(wait=True)

    async def _in_thread(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self._thread is None:
            raise RuntimeError("QdrantStore is not open")
        call = functools.partial(fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._thread, call)

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """One client call: awaited on the server client, or queued on the local thread."""
        if self._remote is not None:
            return await getattr(self._remote, method)(*args, **kwargs)
        if self._local is None:
            raise RuntimeError("QdrantStore is not open")
        return await self._in_thread(getattr(self._local, method), *args, **kwargs)

    async def _ensure_collection(self) -> None:
        name = self._wanted_collection
        if await self._call("collection_exists", name) and not await self._fits(name):
            suffix = re.sub(r"[^A-Za-z0-9_]+", "_", self._embedder_name)
            fallback = f"{name}__{suffix}_{self.dimensions}"
            log.warning(
                "cache_collection_mismatch",
                extra={"collection": name, "using": fallback, "dimensions": self.dimensions},
            )
            name = fallback
        if not await self._call("collection_exists", name):
            await self._call(
                "create_collection",
                name,
                vectors_config=models.VectorParams(
                    size=self.dimensions, distance=models.Distance.COSINE
                ),
            )
            if self.mode == "server":
                # Indexes make the filtered search cheap on a server; local mode has none.
                for field in _KEYWORD_FIELDS:
                    await self._call(
                        "create_payload_index", name, field, models.PayloadSchemaType.KEYWORD
                    )
                await self._call(
                    "create_payload_index", name, "expires_at", models.PayloadSchemaType.FLOAT
                )
            log.info("cache_collection_created", extra={"collection": name, "mode": self.mode})
        self.collection = name

    async def _fits(self, name: str) -> bool:
        info = await self._call("get_collection", name)
        vectors = info.config.params.vectors
        return bool(
            isinstance(vectors, models.VectorParams)
            and vectors.size == self.dimensions
            and vectors.distance == models.Distance.COSINE
        )

    async def get(self, point_id: PointId) -> StoredAnswer | None:
        points = await self._call(
            "retrieve", self.collection, ids=[point_id], with_payload=True, with_vectors=False
        )
        return stored_answer(points[0].payload) if points else None

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
        """The most similar live answer with the same scope, model, params and context."""
        wanted = {
            "scope": scope,
            "model": model,
            "params_fingerprint": params_fingerprint,
            "context_fingerprint": context_fingerprint,
        }
        query_filter = models.Filter(
            must=[
                *(_match(field, value) for field, value in wanted.items()),
                models.FieldCondition(key="expires_at", range=models.Range(gt=now)),
            ]
        )
        result = await self._call(
            "query_points",
            self.collection,
            query=vector,
            query_filter=query_filter,
            limit=1,
            score_threshold=threshold,
            with_payload=True,
        )
        for point in result.points:
            stored = stored_answer(point.payload)
            if stored is not None:
                return stored, float(point.score)
        return None

    async def write(self, points: Sequence[PendingPoint], deletes: Sequence[PointId]) -> None:
        """One batch: delete `deletes`, then upsert `points` (the two never share an id)."""
        if self._local is not None:
            # One hop to the local thread for the whole batch, not one per call.
            await self._in_thread(self._write_sync, self._local, points, deletes)
            return
        if deletes:
            await self._call("delete", self.collection, points_selector=_ids(deletes))
        if points:
            await self._call("upsert", self.collection, points=_structs(points))

    def _write_sync(
        self, client: QdrantClient, points: Sequence[PendingPoint], deletes: Sequence[PointId]
    ) -> None:
        if deletes:
            client.delete(self.collection, points_selector=_ids(deletes))
        if points:
            client.upsert(self.collection, points=_structs(points))

    async def upsert(
        self, point_id: PointId, vector: Sequence[float], record: AnswerRecord
    ) -> None:
        await self.write([PendingPoint.of(point_id, vector, record)], [])

    def _expired_filter(self, now: float) -> models.Filter:
        return models.Filter(
            must=[models.FieldCondition(key="expires_at", range=models.Range(lte=now))]
        )

    async def purge_expired(self, now: float) -> int:
        """Delete expired points by filter (server mode; in local mode the worker's table knows
        what expired and deletes those points by id)."""
        expired = await self._call(
            "count", self.collection, count_filter=self._expired_filter(now), exact=True
        )
        if expired.count:
            await self._call(
                "delete",
                self.collection,
                points_selector=models.FilterSelector(filter=self._expired_filter(now)),
            )
        return int(expired.count)

    async def count(self) -> int:
        return int((await self._call("count", self.collection, exact=True)).count)


def _ids(point_ids: Sequence[PointId]) -> models.PointIdsList:
    return models.PointIdsList(points=list(point_ids))


def _structs(points: Sequence[PendingPoint]) -> list[models.PointStruct]:
    return [
        models.PointStruct(id=p.point_id, vector=p.vector.tolist(), payload=p.record.as_payload())
        for p in points
    ]
