"""What the cache tiers need from the store that persists answers (`AnswerStore`), and the one
function that builds it.

Two stores implement it:

- `EdgeStore` (edge_store.py): Qdrant Edge, Qdrant's own engine in the process, one shard per
  gunicorn worker under DATA_DIR. The embedded default (no QDRANT_URL).
- `QdrantStore` (store.py): qdrant-client against a Qdrant server (QDRANT_URL), shared by every
  worker and pod.

Each is imported only when a store opens: qdrant-client alone adds ~88 MB to a worker, and a
worker on the embedded store never needs it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from llm_gateway.cache.records import PendingPoint, PointId, StoredAnswer, StoreMode


class AnswerStore(Protocol):
    mode: StoreMode
    collection: str
    dimensions: int

    async def open(self) -> None: ...

    async def close(self) -> None:
        """Flush what was written and release the store (idempotent)."""

    async def write(self, points: Sequence[PendingPoint], deletes: Sequence[PointId]) -> None:
        """One batch: delete `deletes`, then upsert `points` (the two never share an id)."""

    async def get(self, point_id: PointId) -> StoredAnswer | None: ...

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

    def scroll_all(self) -> AsyncIterator[tuple[PointId, list[float], dict[str, Any]]]:
        """Every stored point as (id, vector, payload) (startup warm-up)."""

    async def purge_expired(self, now: float) -> int:
        """Delete the points expired at `now`; returns how many."""

    async def count(self) -> int: ...


async def open_store(
    *,
    collection: str,
    dimensions: int,
    embedder_name: str,
    server_url: str | None,
    server_api_key: str | None,
    shard_path: Path | None,
    server_timeout: float,
) -> AnswerStore:
    """The server store when `server_url` is set, else the Edge shard at `shard_path`; open."""
    store: AnswerStore
    if server_url is not None:
        from llm_gateway.cache.store import QdrantStore

        store = QdrantStore(
            collection=collection,
            dimensions=dimensions,
            embedder_name=embedder_name,
            url=server_url,
            api_key=server_api_key,
            timeout=server_timeout,
        )
    elif shard_path is not None:
        from llm_gateway.cache.edge_store import EdgeStore

        store = EdgeStore(shard_path, collection=collection, dimensions=dimensions)
    else:
        raise ValueError("an answer store needs a server url or a shard path")
    try:
        await store.open()
    except BaseException:
        await store.close()
        raise
    return store
