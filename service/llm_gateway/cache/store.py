"""The answer store on a Qdrant server (QDRANT_URL), through qdrant-client: one collection of
answered requests shared by every worker and pod.

Each point is one stored answer. Its id is uuid5 of the exact key, so the exact tier is a
retrieve-by-id and storing the same request again overwrites it. Its vector embeds the prompt for
the semantic tier, and its payload carries what a match must agree on::

    scope, model, params_fingerprint, context_fingerprint, key, created_at, expires_at, payload

`local_path` instead of a url runs qdrant-client's local mode, Qdrant's in-Python stand-in for
a server: the contract tests use it so that this store's code runs without a server. It is not a
product path (the embedded store is Qdrant Edge, edge_store.py).

If the collection exists with another vector size or distance (the embedder changed), a
collection suffixed with the embedder's name is used instead, so a config change never crashes
the boot or mixes vectors.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from qdrant_client import AsyncQdrantClient, models

from llm_gateway.cache.records import (
    KEYWORD_FIELDS,
    PendingPoint,
    PointId,
    StoredAnswer,
    StoreMode,
    stored_answer,
)

log = logging.getLogger(__name__)

_SCROLL_PAGE = 512


def _match(field: str, value: str) -> models.FieldCondition:
    return models.FieldCondition(key=field, match=models.MatchValue(value=value))


class QdrantStore:
    mode: StoreMode = "server"

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
        self._client: AsyncQdrantClient | None = None

    async def open(self) -> None:
        self._client = AsyncQdrantClient(
            url=self._url,
            path=str(self._local_path) if self._url is None else None,
            api_key=self._api_key,
            timeout=max(1, round(self._timeout)),
            check_compatibility=False,  # a version probe would be I/O outside open()
        )
        await self._ensure_collection()

    async def scroll_all(self) -> AsyncIterator[tuple[PointId, dict[str, Any]]]:
        """Every stored point as (id, payload), a page at a time."""
        offset: Any = None
        while True:
            points, offset = await self._call(
                "scroll", self.collection, limit=_SCROLL_PAGE, offset=offset, with_payload=True
            )
            for point in points:
                yield point.id, point.payload or {}
            if offset is None:
                return

    async def vector(self, point_id: PointId) -> list[float] | None:
        points = await self._call("retrieve", self.collection, ids=[point_id], with_vectors=True)
        return list(points[0].vector) if points else None

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._client is None:
            raise RuntimeError("QdrantStore is not open")
        return await getattr(self._client, method)(*args, **kwargs)

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
            if self._url is not None:
                # Indexes make the filtered search cheap (local mode has none to make).
                for field in KEYWORD_FIELDS:
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
        if deletes:
            await self._call("delete", self.collection, points_selector=_ids(deletes))
        if points:
            await self._call("upsert", self.collection, points=_structs(points))

    def _expired_filter(self, now: float) -> models.Filter:
        return models.Filter(
            must=[models.FieldCondition(key="expires_at", range=models.Range(lte=now))]
        )

    async def purge_expired(self, now: float) -> int:
        """Delete expired points by filter."""
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
