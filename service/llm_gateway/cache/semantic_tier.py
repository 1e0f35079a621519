"""The semantic tier's search: the nearest live answer to a prompt within its partition.

On the embedded store the worker's in-memory index (local_index.py) holds every answer's vector
and the answer table (lru.py) its payload, so a search never leaves the process's memory. With a
Qdrant server the server searches, filtered by scope, model, params and conversation context.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llm_gateway.cache import keys
from llm_gateway.cache.answer_store import AnswerStore
from llm_gateway.cache.embedders import Embedder
from llm_gateway.cache.local_index import SemanticIndex, partition_key
from llm_gateway.cache.lru import ExactLru
from llm_gateway.cache.request import CacheRequest

# (payload, created_at, similarity) of the answer found
Found = tuple[dict[str, Any], float, float]


class SemanticTier:
    def __init__(
        self,
        *,
        embedder: Embedder,
        lru: ExactLru,
        threshold: float,
        store: Callable[[], AnswerStore | None],
        in_memory: bool,
    ) -> None:
        """`in_memory`: search the worker's own index (embedded store), not the store."""
        self._embedder = embedder
        self._lru = lru
        self._threshold = threshold
        self._store = store
        self._in_memory = in_memory
        self._index: SemanticIndex | None = None

    def index_for(self, vector: list[float]) -> SemanticIndex:
        if self._index is None:
            self._index = SemanticIndex(len(vector), max_rows=self._lru.max_entries)
        return self._index

    def remove(self, key: str) -> None:
        if self._index is not None:
            self._index.remove(key)

    def clear(self) -> None:
        self._index = None

    async def nearest(
        self, req: CacheRequest, now: float
    ) -> tuple[tuple[list[float], str], Found | None]:
        """The prompt's (vector, partition), and the answer found (None: a miss)."""
        params, context = keys.request_fingerprint(req), keys.context_fingerprint(req)
        partition = partition_key(params, context)
        [vector] = await self._embedder.embed([req.prompt_text])
        learned = (vector, partition)
        if self._in_memory:
            index = self._index
            best = (
                None
                if index is None
                else index.best(partition, vector, now=now, threshold=self._threshold)
            )
            cached = None if best is None else self._lru.get(best[0], now)
            if best is None or cached is None:
                return learned, None
            return learned, (cached[0], cached[1], best[1])
        store = self._store()
        if store is None:
            return learned, None
        found = await store.search(
            vector,
            scope=req.scope,
            model=req.model,
            params_fingerprint=params,
            context_fingerprint=context,
            now=now,
            threshold=self._threshold,
        )
        if found is None:
            return learned, None
        answer, score = found
        return learned, (answer.payload, answer.created_at, score)
