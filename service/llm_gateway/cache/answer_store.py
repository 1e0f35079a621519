"""What the cache tiers need from the store that persists and searches answers (`AnswerStore`).

Two stores implement it:

- `EdgeStore` (edge_store.py): Qdrant Edge, Qdrant's own engine in the process, one shard per
  gunicorn worker under DATA_DIR. The embedded default (no QDRANT_URL).
- `QdrantStore` (store.py): qdrant-client against a Qdrant server (QDRANT_URL), shared by every
  worker and pod.

store_keeper.py builds one when the store opens and imports only that one: qdrant-client alone
adds ~88 MB to a worker, and a worker on the embedded store never needs it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
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

    def scroll_all(self) -> AsyncIterator[tuple[PointId, dict[str, Any]]]:
        """Every stored point as (id, payload) (startup warm-up)."""

    async def vector(self, point_id: PointId) -> list[float] | None:
        """The point's vector (warm-up moving a point into a slot), None when it is gone."""

    async def purge_expired(self, now: float) -> int:
        """Delete the points expired at `now`; returns how many."""

    async def count(self) -> int: ...
