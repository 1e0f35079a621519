"""The Qdrant side of the cache: one collection of answered requests.

Each point is one stored answer. Its id is uuid5 of the exact key, so the exact tier is a
retrieve-by-id and storing the same request again overwrites it. Its vector embeds the prompt for
the semantic tier, and its payload carries what a match must agree on::

    scope, model, params_fingerprint, context_fingerprint, key, created_at, expires_at, payload

Local mode (no QDRANT_URL) embeds Qdrant in the process under a worker slot folder (slots.py);
with QDRANT_URL the client talks to a server shared by every worker and pod. If the collection
exists with another vector size or distance (the embedder changed), a collection suffixed with
the embedder's name is used instead, so a config change never crashes the boot or mixes vectors.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qdrant_client import AsyncQdrantClient, models

log = logging.getLogger(__name__)

_KEYWORD_FIELDS = ("scope", "model", "params_fingerprint", "context_fingerprint")


@dataclass(frozen=True)
class StoredAnswer:
    payload: dict[str, Any]
    created_at: float
    expires_at: float


@dataclass(frozen=True)
class AnswerRecord:
    """Everything written for one answer (the point's payload, before serialization)."""

    key: str
    scope: str
    model: str
    params_fingerprint: str
    context_fingerprint: str
    created_at: float
    expires_at: float
    payload: dict[str, Any]

    def as_payload(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "scope": self.scope,
            "model": self.model,
            "params_fingerprint": self.params_fingerprint,
            "context_fingerprint": self.context_fingerprint,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "payload": self.payload,
        }


def _stored(payload: dict[str, Any] | None) -> StoredAnswer | None:
    if not payload or "payload" not in payload:
        return None
    return StoredAnswer(
        payload=payload["payload"],
        created_at=float(payload["created_at"]),
        expires_at=float(payload["expires_at"]),
    )


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
        self._client: AsyncQdrantClient | None = None

    @property
    def mode(self) -> str:
        return "server" if self._url else "local"

    async def open(self) -> None:
        if self._url:
            self._client = AsyncQdrantClient(
                url=self._url,
                api_key=self._api_key,
                timeout=max(1, round(self._timeout)),
                check_compatibility=False,  # a version probe would be I/O outside open()
            )
        else:
            # Local mode loads its folder and takes its lock here (blocking, once, at startup).
            self._client = AsyncQdrantClient(path=str(self._local_path))
        await self._ensure_collection()

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    @property
    def client(self) -> AsyncQdrantClient:
        if self._client is None:
            raise RuntimeError("QdrantStore is not open")
        return self._client

    async def _ensure_collection(self) -> None:
        name = self._wanted_collection
        if await self.client.collection_exists(name) and not await self._fits(name):
            suffix = re.sub(r"[^A-Za-z0-9_]+", "_", self._embedder_name)
            fallback = f"{name}__{suffix}_{self.dimensions}"
            log.warning(
                "cache_collection_mismatch",
                extra={"collection": name, "using": fallback, "dimensions": self.dimensions},
            )
            name = fallback
        if not await self.client.collection_exists(name):
            await self.client.create_collection(
                name,
                vectors_config=models.VectorParams(
                    size=self.dimensions, distance=models.Distance.COSINE
                ),
            )
            if self.mode == "server":
                # Indexes make the filtered search cheap on a server; local mode has none.
                for field in _KEYWORD_FIELDS:
                    await self.client.create_payload_index(
                        name, field, models.PayloadSchemaType.KEYWORD
                    )
                await self.client.create_payload_index(
                    name, "expires_at", models.PayloadSchemaType.FLOAT
                )
            log.info("cache_collection_created", extra={"collection": name, "mode": self.mode})
        self.collection = name

    async def _fits(self, name: str) -> bool:
        info = await self.client.get_collection(name)
        vectors = info.config.params.vectors
        return (
            isinstance(vectors, models.VectorParams)
            and vectors.size == self.dimensions
            and vectors.distance == models.Distance.COSINE
        )

    async def get(self, point_id: str) -> StoredAnswer | None:
        points = await self.client.retrieve(
            self.collection, ids=[point_id], with_payload=True, with_vectors=False
        )
        return _stored(points[0].payload) if points else None

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
        query_filter = models.Filter(
            must=[
                _match("scope", scope),
                _match("model", model),
                _match("params_fingerprint", params_fingerprint),
                _match("context_fingerprint", context_fingerprint),
                models.FieldCondition(key="expires_at", range=models.Range(gt=now)),
            ]
        )
        result = await self.client.query_points(
            self.collection,
            query=vector,
            query_filter=query_filter,
            limit=1,
            score_threshold=threshold,
            with_payload=True,
        )
        for point in result.points:
            stored = _stored(point.payload)
            if stored is not None:
                return stored, float(point.score)
        return None

    async def upsert(self, point_id: str, vector: list[float], record: AnswerRecord) -> None:
        await self.client.upsert(
            self.collection,
            points=[models.PointStruct(id=point_id, vector=vector, payload=record.as_payload())],
        )

    def _expired_filter(self, now: float) -> models.Filter:
        return models.Filter(
            must=[models.FieldCondition(key="expires_at", range=models.Range(lte=now))]
        )

    async def purge_expired(self, now: float) -> int:
        expired = await self.client.count(
            self.collection, count_filter=self._expired_filter(now), exact=True
        )
        if expired.count:
            await self.client.delete(
                self.collection,
                points_selector=models.FilterSelector(filter=self._expired_filter(now)),
            )
        return expired.count

    async def count(self) -> int:
        return (await self.client.count(self.collection, exact=True)).count
