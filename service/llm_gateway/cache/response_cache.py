"""ResponseCache: the one object the LLM service talks to. Exact tier first, then semantic.

- Exact: a bounded in-process LRU (microseconds), then a retrieve-by-id in Qdrant.
- Semantic: embed the prompt, then the nearest stored answer with the same scope, model,
  sampling params and conversation context, not expired, with cosine >= the threshold.

Everything fails open. A lookup that errors or outlasts CACHE_TIMEOUT returns None (the request
goes upstream) and a store that does gives up; both log a WARNING (`cache_lookup_failed`,
`cache_store_failed`, with the error class) and count `cache_lookups_total{tier,result="error"}`.
Nothing here raises to the caller. If Qdrant cannot be opened at startup the app still boots: the
LRU keeps serving this worker's own answers and a background task retries the store.

Storage: in local mode (no QDRANT_URL) each gunicorn worker embeds Qdrant in its own slot folder
under DATA_DIR/qdrant (see slots.py), so each worker has its own cache that survives restarts;
with QDRANT_URL every worker and pod shares one cache. The LRU is always per worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final, TypeVar

from llm_gateway.cache import keys
from llm_gateway.cache.embedders import Embedder
from llm_gateway.cache.lru import ExactLru
from llm_gateway.cache.records import AnswerRecord
from llm_gateway.cache.request import CacheHit, CacheRequest, CacheTier
from llm_gateway.cache.slots import DEFAULT_MAX_SLOTS, WorkerSlot, acquire_slot
from llm_gateway.cache.store import QdrantStore
from llm_gateway.errors import DependencyUnavailable
from llm_gateway.observability.metrics import Metrics

log = logging.getLogger(__name__)

T = TypeVar("T")


class _Failed:
    """Marks a guarded step that failed (distinct from a miss, which is None)."""


_FAILED: Final = _Failed()
# Lookup vectors kept for the store of the same miss; a store follows its lookup within one
# upstream call, so a few hundred cover every request in flight in a worker.
_RECENT_VECTORS: Final = 512


class ResponseCache:
    def __init__(
        self,
        *,
        embedder: Embedder,
        metrics: Metrics | None,
        ttl_seconds: float,
        timeout: float,
        semantic_enabled: bool,
        semantic_threshold: float,
        collection: str,
        data_dir: Path | None = None,
        qdrant_url: str | None = None,
        qdrant_api_key: str | None = None,
        lru_size: int = 1024,
        purge_interval: float = 300.0,
        reopen_interval: float = 30.0,
        open_timeout: float = 10.0,
        max_worker_slots: int = DEFAULT_MAX_SLOTS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if qdrant_url is None and data_dir is None:
            raise ValueError("ResponseCache needs DATA_DIR (local mode) or QDRANT_URL")
        self._embedder = embedder
        self._recent_vectors: OrderedDict[str, list[float]] = OrderedDict()
        self._metrics = metrics
        self._ttl = ttl_seconds
        self._timeout = timeout
        self._semantic = semantic_enabled
        self._threshold = semantic_threshold
        self._collection = collection
        self._data_dir = data_dir
        self._qdrant_url = qdrant_url
        self._qdrant_api_key = qdrant_api_key
        self._lru = ExactLru(lru_size)
        self._purge_interval = purge_interval
        self._reopen_interval = reopen_interval
        self._open_timeout = open_timeout
        self._max_slots = max_worker_slots
        self._clock = clock
        self._store: QdrantStore | None = None
        self._slot: WorkerSlot | None = None
        self._last_open_error: str | None = None
        self._maintenance: asyncio.Task[None] | None = None
        self._pending_stores: set[asyncio.Task[None]] = set()

    # --- lifecycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        """Open the store and start the maintenance task. Never raises: a failure is logged and
        retried in the background while the LRU keeps working."""
        await self._try_open_store()
        self._maintenance = asyncio.create_task(self._maintain(), name="cache-maintenance")

    async def close(self) -> None:
        if self._pending_stores:
            await asyncio.wait(set(self._pending_stores), timeout=self._timeout * 4)
            for task in self._pending_stores:
                task.cancel()
        if self._maintenance is not None:
            self._maintenance.cancel()
            await asyncio.gather(self._maintenance, return_exceptions=True)
            self._maintenance = None
        await self._close_store()
        self._lru.clear()

    @property
    def ready(self) -> bool:
        return self._store is not None

    @property
    def worker_slot(self) -> int | None:
        return self._slot.index if self._slot is not None else None

    async def _try_open_store(self) -> bool:
        try:
            async with asyncio.timeout(self._open_timeout):
                self._store = await self._build_store()
        except Exception as exc:
            await self._close_store()
            self._last_open_error = type(exc).__name__
            log.warning(
                "cache_open_failed",
                extra={"error": type(exc).__name__, "retry_in_seconds": self._reopen_interval},
            )
            return False
        self._last_open_error = None
        log.info(
            "cache_opened",
            extra={
                "mode": self._store.mode,
                "collection": self._store.collection,
                "worker_slot": self.worker_slot,
                "embedder": self._embedder.name,
            },
        )
        return True

    async def _build_store(self) -> QdrantStore:
        if not self._embedder.dimensions:
            # A remote embedder learns its size from its first answer.
            await self._embedder.embed(["dimension probe"])
        if self._qdrant_url is None:
            assert self._data_dir is not None
            self._slot = acquire_slot(self._data_dir / "qdrant", self._max_slots)
        store = QdrantStore(
            collection=self._collection,
            dimensions=self._embedder.dimensions,
            embedder_name=self._embedder.name,
            url=self._qdrant_url,
            api_key=self._qdrant_api_key,
            local_path=self._slot.path if self._slot is not None else None,
            timeout=self._open_timeout,
        )
        try:
            await store.open()
        except BaseException:
            await store.close()
            raise
        return store

    async def _close_store(self) -> None:
        store, self._store = self._store, None
        try:
            if store is not None:
                await store.close()
        finally:
            if self._slot is not None:
                self._slot.release()
                self._slot = None

    async def _maintain(self) -> None:
        """Background: reopen a store that failed to open; purge expired points."""
        while True:
            if self._store is None:
                await asyncio.sleep(self._reopen_interval)
                await self._try_open_store()
                continue
            await asyncio.sleep(self._purge_interval)
            await self.purge_expired()

    async def purge_expired(self) -> int:
        """Delete expired points now; returns how many (0 when the store is unavailable)."""
        store = self._store
        if store is None:
            return 0
        try:
            removed = await store.purge_expired(self._clock())
        except Exception as exc:
            log.warning("cache_purge_failed", extra={"error": type(exc).__name__})
            return 0
        if removed:
            log.info("cache_purged", extra={"removed": removed, "collection": store.collection})
        return removed

    async def health(self) -> dict[str, Any]:
        """Details for /health/detailed; raises DependencyUnavailable when Qdrant is down."""
        store = self._store
        if store is None:
            raise DependencyUnavailable(f"cache store not open ({self._last_open_error})")
        return {
            "mode": store.mode,
            "collection": store.collection,
            "points": await store.count(),
            "worker_slot": self.worker_slot,
            "embedder": self._embedder.name,
            "dimensions": store.dimensions,
            "lru_entries": len(self._lru),
        }

    # --- lookups -----------------------------------------------------------------------------
    async def lookup(self, req: CacheRequest) -> CacheHit | None:
        now = self._clock()
        try:
            key = keys.exact_key(req)
            cached = self._lru.get(key, now)
        except Exception as exc:  # e.g. params that are not JSON-serializable
            self._failed("cache_lookup_failed", "exact", exc)
            return None
        if cached is not None:
            self._count("exact", "hit")
            payload, created_at = cached
            return CacheHit("exact", payload, 1.0, max(0.0, now - created_at))
        store = self._store
        if store is None:
            self._count("exact", "error")  # logged once by open; counted so dashboards see it
            return None
        deadline = asyncio.get_running_loop().time() + self._timeout
        stored = await self._guard("exact", deadline, lambda: store.get(keys.point_id(key)))
        if isinstance(stored, _Failed):
            return None
        if stored is not None and stored.expires_at > now:
            self._count("exact", "hit")
            self._lru.put(key, stored.payload, stored.created_at, stored.expires_at)
            return CacheHit("exact", stored.payload, 1.0, max(0.0, now - stored.created_at))
        self._count("exact", "miss")
        if not self._semantic or not req.prompt_text.strip():
            return None

        async def nearest() -> Any:
            vector = await self._embed(req.prompt_text)
            return await store.search(
                vector,
                scope=req.scope,
                model=req.model,
                params_fingerprint=keys.request_fingerprint(req),
                context_fingerprint=keys.context_fingerprint(req),
                now=now,
                threshold=self._threshold,
            )

        found = await self._guard("semantic", deadline, nearest)
        if isinstance(found, _Failed):
            return None
        if found is None:
            self._count("semantic", "miss")
            return None
        answer, similarity = found
        self._count("semantic", "hit")
        return CacheHit(
            "semantic", answer.payload, min(1.0, similarity), max(0.0, now - answer.created_at)
        )

    async def _guard(
        self, tier: CacheTier, deadline: float, step: Callable[[], Awaitable[T]]
    ) -> T | _Failed:
        try:
            async with asyncio.timeout_at(deadline):
                return await step()
        except Exception as exc:  # TimeoutError included; cancellation is not caught
            self._failed("cache_lookup_failed", tier, exc)
            return _FAILED

    # --- stores ------------------------------------------------------------------------------
    async def store(self, req: CacheRequest, payload: dict[str, Any]) -> None:
        """Remember a successful, complete answer. Bounded by CACHE_TIMEOUT; never raises."""
        now = self._clock()
        stage: CacheTier = "exact"
        try:
            key = keys.exact_key(req)
            self._lru.put(key, payload, now, now + self._ttl)
            store = self._store
            if store is None:
                self._count("exact", "error")
                return
            async with asyncio.timeout(self._timeout):
                if self._semantic and req.prompt_text.strip():
                    stage = "semantic"
                    vector = await self._embed(req.prompt_text, reuse=True)
                    stage = "exact"
                else:
                    vector = _placeholder_vector(store.dimensions)
                record = AnswerRecord(
                    key=key,
                    scope=req.scope,
                    model=req.model,
                    params_fingerprint=keys.request_fingerprint(req),
                    context_fingerprint=keys.context_fingerprint(req),
                    created_at=now,
                    expires_at=now + self._ttl,
                    payload=payload,
                )
                await store.upsert(keys.point_id(key), vector, record)
        except Exception as exc:
            self._failed("cache_store_failed", stage, exc)

    def schedule_store(self, req: CacheRequest, payload: dict[str, Any]) -> None:
        """`store` in the background so the caller's response is not delayed by it; close()
        waits (bounded) for the ones still running."""
        task = asyncio.create_task(self.store(req, payload), name="cache-store")
        self._pending_stores.add(task)
        task.add_done_callback(self._pending_stores.discard)

    # --- helpers -----------------------------------------------------------------------------
    async def _embed(self, text: str, *, reuse: bool = False) -> list[float]:
        """Embed once per miss: the lookup's vector is kept briefly for the store that follows
        (it was a tenth of a worker's CPU on the miss path, embedded twice)."""
        if reuse:
            kept = self._recent_vectors.pop(text, None)
            if kept is not None:
                return kept
        [vector] = await self._embedder.embed([text])
        if not reuse:
            self._recent_vectors[text] = vector
            while len(self._recent_vectors) > _RECENT_VECTORS:
                self._recent_vectors.popitem(last=False)
        return vector

    def _failed(self, event: str, tier: CacheTier, exc: BaseException) -> None:
        log.warning(event, extra={"tier": tier, "error": type(exc).__name__})
        self._count(tier, "error")

    def _count(self, tier: CacheTier, result: str) -> None:
        if self._metrics is not None:
            self._metrics.cache_lookups.labels(tier, result).inc()


def _placeholder_vector(dimensions: int) -> list[float]:
    # Semantic tier off: the point still needs a valid vector; it is never searched.
    vector = [0.0] * dimensions
    vector[0] = 1.0
    return vector
