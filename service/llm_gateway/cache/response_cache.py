"""ResponseCache: the one object the LLM service talks to. Exact tier first, then semantic.

- Exact: the worker's bounded answer table (lru.py: microseconds), then the exact tier its
  siblings share: on the embedded store the pod's SQLite table (shared_exact.py), with a Qdrant
  server a retrieve-by-id on the server, which other workers and pods write too.
- Semantic: embed the prompt, then the nearest stored answer with the same scope, model,
  sampling params and conversation context, not expired, with cosine >= the threshold.

Everything fails open. A lookup that errors or outlasts CACHE_TIMEOUT returns None (the request
goes upstream) and a store that does gives up; both log a WARNING (`cache_lookup_failed`,
`cache_store_failed`, with the error class) and count `cache_lookups_total{tier,result="error"}`.
Nothing here raises to the caller. If the store cannot be opened at startup the app still boots:
the worker's tables keep serving its own answers and a background task retries the store.

Parts: the store (answer_store.py: Qdrant Edge, one shard per worker under DATA_DIR/qdrant-edge,
or a Qdrant server with QDRANT_URL), opened and retried by store_keeper.py; the store path
(answer_intake.py), written behind the response (write_behind.py). The semantic tier is the
store's own search, so an answer is found there once written (at once embedded, within the flush
interval on a server); the exact tier serves a repeat before that. On the embedded store each
worker's shard is private to it, so the worker's answer table says what the shard holds (warmed
from it at open, warmup.py). The exact tier is shared by the pod's workers through
DATA_DIR/cache/exact.sqlite3. With a server the server is the source of truth and shared by every
worker and pod; the table is a per-worker front.

Size: CACHE_MAX_ENTRIES bounds each worker's table; the least recently used answer leaves first,
and with it (embedded store) its slot in the shard, which the next answer overwrites
(point_slots.py), so a worker's memory and shard level off. The shared exact table holds at most
CACHE_MAX_ENTRIES answers too (on disk), least recently used out first. A server's collection is
shared and is bounded by the TTL purge only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from llm_gateway.cache import keys
from llm_gateway.cache.answer_intake import AnswerIntake
from llm_gateway.cache.answer_store import AnswerStore
from llm_gateway.cache.embedders import Embedder
from llm_gateway.cache.exact_tier import ExactTier, Failed, guarded
from llm_gateway.cache.lru import ExactLru
from llm_gateway.cache.point_slots import PointSlots
from llm_gateway.cache.records import StoredAnswer
from llm_gateway.cache.request import CacheHit, CacheRequest, CacheTier
from llm_gateway.cache.shared_exact import SharedExactTable, keep_checkpointed
from llm_gateway.cache.store_keeper import StoreKeeper
from llm_gateway.cache.warmup import warm_table
from llm_gateway.cache.write_behind import WriteBehind
from llm_gateway.errors import DependencyUnavailable
from llm_gateway.observability.metrics import Metrics

log = logging.getLogger(__name__)

DEFAULT_MAX_ENTRIES: Final = 4000


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
        max_entries: int = DEFAULT_MAX_ENTRIES,
        purge_interval: float = 300.0,
        reopen_interval: float = 30.0,
        open_timeout: float = 10.0,
        flush_interval: float = 0.2,
        flush_batch: int = 64,
        flush_wake: int | None = None,
        checkpoint_interval: float = 1.0,
        store_is_private: bool | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`store_is_private` (default: no server) may be False in tests, to run the shared-store
        logic on a shard. `flush_wake`: see write_behind.py (default 1 embedded, else a batch)."""
        if qdrant_url is None and data_dir is None:
            raise ValueError("ResponseCache needs DATA_DIR (embedded store) or QDRANT_URL")
        self._embedder = embedder
        self._metrics = metrics
        self._timeout = timeout
        self._semantic = semantic_enabled
        self._collection = collection
        self._private = qdrant_url is None if store_is_private is None else store_is_private
        self._lru = ExactLru(max_entries, on_evict=self._evicted)
        self._slots = PointSlots(max_entries) if self._private else None
        # Embedded store: the exact tier shared by the pod's workers (a server shares it itself).
        self._shared = (
            SharedExactTable(data_dir / "cache", max_entries=max_entries, busy_timeout=timeout)
            if self._private and data_dir is not None
            else None
        )
        self._threshold = semantic_threshold
        self._purge_interval = purge_interval
        self._clock = clock
        self._keeper = StoreKeeper(
            embedder=embedder,
            collection=collection,
            data_dir=data_dir,
            server_url=qdrant_url,
            server_api_key=qdrant_api_key,
            open_timeout=open_timeout,
            reopen_interval=reopen_interval,
        )
        self._writer = WriteBehind(
            lambda: self._keeper.store,
            interval=flush_interval,
            batch_size=flush_batch,
            wake_at=flush_wake if flush_wake is not None else (1 if self._private else None),
            max_pending=max_entries,
            on_failure=lambda exc, dropped: self._count("exact", "error"),
        )
        self._intake = AnswerIntake(
            embedder=embedder,
            lru=self._lru,
            shared=self._shared,
            writer=self._writer,
            slots=self._slots,
            semantic_enabled=semantic_enabled,
            ttl_seconds=ttl_seconds,
            timeout=timeout,
            clock=clock,
            failed=self._failed,
        )
        self._exact = ExactTier(
            lru=self._lru,
            shared=self._shared,
            server=None if self._private else lambda: self._keeper.store,
            count=self._count,
            failed=self._failed,
        )
        self._maintenance: asyncio.Task[None] | None = None
        self._checkpoints: asyncio.Task[None] | None = None
        self._checkpoint_interval = checkpoint_interval

    # --- lifecycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        """Open the store, warm the tables from it (embedded store) and start the background
        tasks. Never raises: a failure is logged and retried in the background while the tables
        work."""
        await self._try_open_store()
        self._writer.start()
        self._maintenance = asyncio.create_task(
            self._keeper.keep_open(
                reopen=self._try_open_store,
                purge=self.purge_expired,
                purge_interval=self._purge_interval,
            ),
            name="cache-maintenance",
        )
        if self._shared is not None:
            self._checkpoints = asyncio.create_task(
                keep_checkpointed(self._shared, self._checkpoint_interval),
                name="cache-checkpoint",
            )

    async def close(self) -> None:
        await self._intake.drain()
        background = [t for t in (self._maintenance, self._checkpoints) if t is not None]
        self._maintenance = self._checkpoints = None
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await self._writer.close()  # what is queued reaches the store before it closes
        await self._keeper.close()
        if self._shared is not None:
            try:
                self._shared.close()
            except Exception as exc:
                log.warning("cache_close_failed", extra={"error": type(exc).__name__})
        self._lru.clear()
        if self._slots is not None:
            self._slots = PointSlots(self._slots.capacity)

    async def flush(self) -> int:
        """Write queued stores now (the background task does it every flush interval)."""
        return await self._writer.flush()

    @property
    def ready(self) -> bool:
        return self._keeper.store is not None

    @property
    def worker_slot(self) -> int | None:
        return self._keeper.worker_slot

    async def _try_open_store(self) -> bool:
        if not await self._keeper.try_open(self._opened):
            return False
        store = self._keeper.store
        assert store is not None
        log.info(
            "cache_opened",
            extra={
                "mode": store.mode,
                "collection": store.collection,
                "worker_slot": self.worker_slot,
                "embedder": self._embedder.name,
                "entries": len(self._lru),
                "max_entries": self._lru.max_entries,
                "shared_exact": str(self._shared.path) if self._shared is not None else None,
            },
        )
        return True

    async def _opened(self, store: AnswerStore) -> None:
        """The store just opened: open the shared exact table, warm the table (embedded)."""
        if self._shared is not None and not self._shared.is_open:
            self._shared.open(self._clock())
        if self._private:
            assert self._slots is not None
            await warm_table(
                store, lru=self._lru, slots=self._slots, writer=self._writer, now=self._clock()
            )

    async def purge_expired(self) -> int:
        """Drop expired answers now; returns how many. Embedded store: from the tables, and their
        points are deleted from the shard with the next batch; server: on the server."""
        removed = self._lru.drop_expired(self._clock())
        if self._shared is not None and self._shared.is_open:
            try:
                self._shared.purge_expired(self._clock())
            except Exception as exc:
                log.warning("cache_purge_failed", extra={"error": type(exc).__name__})
        store = self._keeper.store
        if not self._private and store is not None:
            try:
                removed = await store.purge_expired(self._clock())
            except Exception as exc:
                log.warning("cache_purge_failed", extra={"error": type(exc).__name__})
                return 0
        if removed:
            log.info("cache_purged", extra={"removed": removed, "collection": self._collection})
        return removed

    async def health(self) -> dict[str, Any]:
        """Details for /health/detailed; raises DependencyUnavailable when the store is down."""
        store = self._keeper.store
        if store is None:
            raise DependencyUnavailable(f"cache store not open ({self._keeper.last_error})")
        return {
            "mode": store.mode,
            "collection": store.collection,
            "points": await store.count(),
            "worker_slot": self.worker_slot,
            "embedder": self._embedder.name,
            "dimensions": store.dimensions,
            "entries": len(self._lru),
            "max_entries": self._lru.max_entries,
            "pending_writes": self._writer.pending,
            "shared_entries": self._shared.size() if self._shared is not None else None,
        }

    # --- lookups -----------------------------------------------------------------------------
    async def lookup(self, req: CacheRequest) -> CacheHit | None:
        now = self._clock()
        deadline = asyncio.get_running_loop().time() + self._timeout
        try:
            key = keys.exact_key(req)
            exact = await self._exact.find(key, now, deadline)
        except Exception as exc:  # e.g. params that are not JSON-serializable
            self._failed("cache_lookup_failed", "exact", exc)
            return None
        if isinstance(exact, Failed):
            return None
        if exact is not None:
            return exact
        self._count("exact", "miss")
        if not self._semantic or not req.prompt_text.strip():
            return None
        found = await guarded(
            "semantic", deadline, lambda: self._nearest(req, key, now), self._failed
        )
        if isinstance(found, Failed):
            return None
        if found is None:
            self._count("semantic", "miss")
            return None
        answer, similarity = found
        self._count("semantic", "hit")
        return CacheHit(
            "semantic", answer.payload, min(1.0, similarity), max(0.0, now - answer.created_at)
        )

    async def _nearest(
        self, req: CacheRequest, key: str, now: float
    ) -> tuple[StoredAnswer, float] | None:
        """The store's nearest live answer with the same scope, model, params and context."""
        params, context = keys.request_fingerprint(req), keys.context_fingerprint(req)
        [vector] = await self._embedder.embed([req.prompt_text])
        store = self._keeper.store
        found = None
        if store is not None:
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
            self._intake.note(key, (vector, params, context))  # its store reuses the vector
        return found

    # --- stores ------------------------------------------------------------------------------
    async def store(self, req: CacheRequest, payload: dict[str, Any]) -> None:
        """Remember a successful, complete answer and wait until every tier holds it (the
        semantic tier once the store has it). Bounded by CACHE_TIMEOUT; never raises."""
        await self._intake.store(req, payload)

    def schedule_store(self, req: CacheRequest, payload: dict[str, Any]) -> None:
        """`store` without delaying the caller's response (answer_intake.py says how)."""
        self._intake.schedule_store(req, payload)

    # --- helpers -----------------------------------------------------------------------------
    def _evicted(self, key: str) -> None:
        """An answer left the table (bound or expiry): it frees its slot (embedded store). A
        server's copy stays: it is shared, and other workers may still use it until its TTL."""
        slot = self._slots.release(key) if self._slots is not None else None
        if slot is not None:  # the answer that pushed this one out usually takes the slot
            self._writer.delete(slot)  # at once; its upsert then replaces this delete

    def _failed(self, event: str, tier: CacheTier, exc: BaseException) -> None:
        log.warning(event, extra={"tier": tier, "error": type(exc).__name__})
        self._count(tier, "error")

    def _count(self, tier: CacheTier, result: str) -> None:
        if self._metrics is not None:
            self._metrics.cache_lookups.labels(tier, result).inc()
