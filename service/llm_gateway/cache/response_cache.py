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

Storage (answer_store.py): with no QDRANT_URL each gunicorn worker persists its answers in its
own Qdrant Edge shard under DATA_DIR/qdrant-edge (edge_store.py, slots.py), so each worker has
its own semantic tier that survives restarts, while the exact tier is shared by the workers
through DATA_DIR/cache/exact.sqlite3: an identical repeat is a hit whichever worker serves it.
With QDRANT_URL every worker and pod shares both tiers.

The shared exact write happens in `schedule_store` itself, before the caller's response goes out
(a repeat sent the moment the answer arrives may reach another worker); the rest of a store (this
worker's table, the semantic index, the shard) runs once the caller's task yields.

A worker's shard is private to it, so the worker's tables are authoritative for what the shard
holds: they are warmed from it at open, answer every lookup (the answer table, then the shared
exact table, for the exact tier; the in-memory index, local_index.py, for the semantic tier) and
the shard is only written. With a server the server stays the source of truth for the exact tier
(another worker may have stored the answer); the table is a per-worker front. In both modes
writes are batched (write_behind.py).

Size: CACHE_MAX_ENTRIES bounds each worker's table; the least recently used answer leaves first,
and with it its vector in the index and (embedded store) its point in the shard, so a worker's
memory and shard level off instead of growing until the TTL catches up. The shared exact table
holds at most CACHE_MAX_ENTRIES answers too (on disk), least recently used out first. A server's
collection is shared and is bounded by the TTL purge only.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, TypeVar

import orjson

from llm_gateway.cache import keys
from llm_gateway.cache.answer_store import AnswerStore, open_store
from llm_gateway.cache.embedders import Embedder
from llm_gateway.cache.local_index import SemanticIndex, partition_key
from llm_gateway.cache.lru import ExactLru, encode_payload
from llm_gateway.cache.records import AnswerRecord
from llm_gateway.cache.request import CacheHit, CacheRequest, CacheTier
from llm_gateway.cache.shared_exact import SharedExactTable
from llm_gateway.cache.slots import DEFAULT_MAX_SLOTS, WorkerSlot, acquire_slot
from llm_gateway.cache.warmup import warm_tables
from llm_gateway.cache.write_behind import WriteBehind
from llm_gateway.errors import DependencyUnavailable
from llm_gateway.observability.metrics import Metrics
from llm_gateway.thread_priority import lower_current_thread_priority

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_MAX_ENTRIES: Final = 4000


class _Failed:
    """Marks a guarded step that failed (distinct from a miss, which is None)."""


_FAILED: Final = _Failed()
# What a miss's lookup learned (vector, partition), kept for the store of the same request; a
# store follows its lookup within one upstream call, so a few hundred cover every request in
# flight in a worker.
_RECENT: Final = 512


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
        max_worker_slots: int = DEFAULT_MAX_SLOTS,
        checkpoint_interval: float = 1.0,
        store_is_private: bool | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`store_is_private` defaults to True on the embedded store (no server); tests may set
        it False to run the shared-store logic against an embedded shard."""
        if qdrant_url is None and data_dir is None:
            raise ValueError("ResponseCache needs DATA_DIR (embedded store) or QDRANT_URL")
        self._embedder = embedder
        self._recent: OrderedDict[str, tuple[list[float], str]] = OrderedDict()
        self._metrics = metrics
        self._ttl = ttl_seconds
        self._timeout = timeout
        self._semantic = semantic_enabled
        self._threshold = semantic_threshold
        self._collection = collection
        self._data_dir = data_dir
        self._qdrant_url = qdrant_url
        self._qdrant_api_key = qdrant_api_key
        self._private = qdrant_url is None if store_is_private is None else store_is_private
        self._lru = ExactLru(max_entries, on_evict=self._evicted)
        # Embedded store: the exact tier shared by the pod's workers (a server shares it itself).
        self._shared = (
            SharedExactTable(data_dir / "cache", max_entries=max_entries, busy_timeout=timeout)
            if self._private and data_dir is not None
            else None
        )
        self._index: SemanticIndex | None = None
        self._purge_interval = purge_interval
        self._reopen_interval = reopen_interval
        self._open_timeout = open_timeout
        self._max_slots = max_worker_slots
        self._clock = clock
        self._store: AnswerStore | None = None
        self._writer = WriteBehind(
            lambda: self._store,
            interval=flush_interval,
            batch_size=flush_batch,
            max_pending=max_entries,
            on_failure=lambda exc, dropped: self._count("exact", "error"),
        )
        self._slot: WorkerSlot | None = None
        self._last_open_error: str | None = None
        self._maintenance: asyncio.Task[None] | None = None
        self._checkpoints: asyncio.Task[None] | None = None
        self._checkpoint_interval = checkpoint_interval
        self._pending_stores: set[asyncio.Task[None]] = set()

    # --- lifecycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        """Open the store, warm the tables from it (embedded store) and start the background tasks.
        Never raises: a failure is logged and retried in the background while the tables work."""
        await self._try_open_store()
        self._writer.start()
        self._maintenance = asyncio.create_task(self._maintain(), name="cache-maintenance")
        if self._shared is not None:
            self._checkpoints = asyncio.create_task(
                self._checkpoint_shared(self._shared), name="cache-checkpoint"
            )

    async def close(self) -> None:
        await asyncio.sleep(0)  # stores scheduled with call_soon run (and may start a task)
        if self._pending_stores:
            await asyncio.wait(set(self._pending_stores), timeout=self._timeout * 4)
            for task in self._pending_stores:
                task.cancel()
        background = [t for t in (self._maintenance, self._checkpoints) if t is not None]
        self._maintenance = self._checkpoints = None
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await self._writer.close()  # what is queued reaches the store before it closes
        await self._close_store()
        if self._shared is not None:
            try:
                self._shared.close()
            except Exception as exc:
                log.warning("cache_close_failed", extra={"error": type(exc).__name__})
        self._lru.clear()
        self._index = None

    async def flush(self) -> int:
        """Write queued stores now (the background task does it every flush interval)."""
        return await self._writer.flush()

    @property
    def ready(self) -> bool:
        return self._store is not None

    @property
    def worker_slot(self) -> int | None:
        return self._slot.index if self._slot is not None else None

    async def _try_open_store(self) -> bool:
        try:
            if self._shared is not None and not self._shared.is_open:
                self._shared.open(self._clock())  # a local file: quick, and before Qdrant's
            async with asyncio.timeout(self._open_timeout):
                self._store = await self._build_store()
                if self._private:
                    await self._warm(self._store)
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
                "entries": len(self._lru),
                "max_entries": self._lru.max_entries,
                "shared_exact": str(self._shared.path) if self._shared is not None else None,
            },
        )
        return True

    async def _build_store(self) -> AnswerStore:
        if not self._embedder.dimensions:
            # A remote embedder learns its size from its first answer.
            await self._embedder.embed(["dimension probe"])
        if self._qdrant_url is None:
            assert self._data_dir is not None
            self._slot = acquire_slot(self._shard_root(self._data_dir), self._max_slots)
        return await open_store(
            collection=self._collection,
            dimensions=self._embedder.dimensions,
            embedder_name=self._embedder.name,
            server_url=self._qdrant_url,
            server_api_key=self._qdrant_api_key,
            shard_path=self._slot.path if self._slot is not None else None,
            server_timeout=self._open_timeout,
        )

    def _shard_root(self, data_dir: Path) -> Path:
        """DATA_DIR/qdrant-edge/<collection>__<embedder>: another embedder gets other shards."""
        embedder = re.sub(r"[^A-Za-z0-9_.-]+", "_", self._embedder.name)
        return data_dir / "qdrant-edge" / f"{self._collection}__{embedder}"

    async def _warm(self, store: AnswerStore) -> None:
        await warm_tables(
            store,
            lru=self._lru,
            writer=self._writer,
            index_for=self._index_for if self._semantic else None,
            now=self._clock(),
        )

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
        """Background: reopen a store that failed to open; purge expired answers."""
        while True:
            if self._store is None:
                await asyncio.sleep(self._reopen_interval)
                await self._try_open_store()
                continue
            await asyncio.sleep(self._purge_interval)
            await self.purge_expired()

    async def _checkpoint_shared(self, table: SharedExactTable) -> None:
        """Background: after this worker wrote to the shared exact table, move its write-ahead
        log into the file, on a low-priority thread (shared_exact.py says why)."""
        thread = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="cache-checkpoint",
            initializer=lower_current_thread_priority,
        )
        checkpointed = 0
        try:
            while True:
                await asyncio.sleep(self._checkpoint_interval)
                if not table.is_open or table.writes == checkpointed:
                    continue
                checkpointed = table.writes
                try:
                    await asyncio.get_running_loop().run_in_executor(thread, table.checkpoint)
                except Exception as exc:
                    log.warning("cache_checkpoint_failed", extra={"error": type(exc).__name__})
        finally:
            thread.shutdown(wait=True)  # never close the table under a running checkpoint

    async def purge_expired(self) -> int:
        """Drop expired answers now; returns how many. Embedded store: from the tables, their
        points are deleted from the shard, which is then compacted; server: on the server."""
        removed = self._lru.drop_expired(self._clock())
        if self._shared is not None and self._shared.is_open:
            try:
                self._shared.purge_expired(self._clock())
            except Exception as exc:
                log.warning("cache_purge_failed", extra={"error": type(exc).__name__})
        store = self._store
        if store is not None:
            try:
                if self._private:
                    await self._writer.flush()  # the deletes of what left the tables
                    await store.compact()
                else:
                    removed = await store.purge_expired(self._clock())
            except Exception as exc:
                log.warning("cache_purge_failed", extra={"error": type(exc).__name__})
                return 0
        if removed:
            log.info("cache_purged", extra={"removed": removed, "collection": self._collection})
        return removed

    async def health(self) -> dict[str, Any]:
        """Details for /health/detailed; raises DependencyUnavailable when the store is down."""
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
            "entries": len(self._lru),
            "max_entries": self._lru.max_entries,
            "pending_writes": self._writer.pending,
            "shared_entries": self._shared_entries(),
        }

    def _shared_entries(self) -> int | None:
        """Answers in the pod's shared exact table (embedded store), None when there is none."""
        if self._shared is None or not self._shared.is_open:
            return None
        try:
            return len(self._shared)
        except Exception:
            return None

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
            if self._shared is not None:
                self._shared.touch(key, now)
            payload, created_at = cached
            return CacheHit("exact", payload, 1.0, max(0.0, now - created_at))
        from_siblings = self._from_shared(key, now)
        if isinstance(from_siblings, _Failed):
            return None
        if from_siblings is not None:
            return from_siblings
        deadline = asyncio.get_running_loop().time() + self._timeout
        store = self._store
        if not self._private:
            if store is None:
                self._count("exact", "error")  # logged once by open; counted so dashboards see it
                return None
            shared = store
            stored = await self._guard("exact", deadline, lambda: shared.get(keys.point_id(key)))
            if isinstance(stored, _Failed):
                return None
            if stored is not None and stored.expires_at > now:
                self._count("exact", "hit")
                self._lru.put(key, stored.payload, stored.created_at, stored.expires_at)
                return CacheHit("exact", stored.payload, 1.0, max(0.0, now - stored.created_at))
        self._count("exact", "miss")
        if not self._semantic or not req.prompt_text.strip():
            return None
        found = await self._guard("semantic", deadline, lambda: self._nearest(req, key, now))
        if isinstance(found, _Failed):
            return None
        if found is None:
            self._count("semantic", "miss")
            return None
        payload, created_at, similarity = found
        self._count("semantic", "hit")
        return CacheHit("semantic", payload, min(1.0, similarity), max(0.0, now - created_at))

    def _from_shared(self, key: str, now: float) -> CacheHit | _Failed | None:
        """An answer another worker of the pod stored (embedded store); it joins this worker's
        table, so the next repeat here costs what a table hit costs."""
        table = self._shared
        if table is None or not table.is_open:
            return None
        try:
            row = table.get(key, now)
            if row is None:
                return None
            body, created_at, expires_at = row
            payload: dict[str, Any] = orjson.loads(body)
        except Exception as exc:  # sqlite3.Error, OSError, a corrupt row: a miss, logged
            self._failed("cache_lookup_failed", "exact", exc)
            return _FAILED
        table.touch(key, now)
        self._lru.put_body(key, body, created_at, expires_at)
        self._count("exact", "hit")
        return CacheHit("exact", payload, 1.0, max(0.0, now - created_at))

    async def _nearest(
        self, req: CacheRequest, key: str, now: float
    ) -> tuple[dict[str, Any], float, float] | None:
        params, context = keys.request_fingerprint(req), keys.context_fingerprint(req)
        partition = partition_key(params, context)
        [vector] = await self._embedder.embed([req.prompt_text])
        self._recent[key] = (vector, partition)
        while len(self._recent) > _RECENT:
            self._recent.popitem(last=False)
        if self._private:
            index = self._index
            best = (
                None
                if index is None
                else index.best(partition, vector, now=now, threshold=self._threshold)
            )
            cached = None if best is None else self._lru.get(best[0], now)
            if best is None or cached is None:
                return None
            del self._recent[key]  # a hit: no store follows
            return cached[0], cached[1], best[1]
        store = self._store
        if store is None:
            return None
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
            return None
        self._recent.pop(key, None)
        answer, score = found
        return answer.payload, answer.created_at, score

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
        """Remember a successful, complete answer and wait until this worker's tiers hold it.
        Bounded by CACHE_TIMEOUT; never raises."""
        prepared = self._prepare(req, payload)
        if prepared is not None:
            key, body, now = prepared
            self._share(key, body, now)
            await self._remember(req, key, body, now)

    def schedule_store(self, req: CacheRequest, payload: dict[str, Any]) -> None:
        """`store` without delaying the caller's response.

        The shared exact write happens here, before the caller's response is written: a repeat
        sent as soon as the answer arrives may reach another worker, and must hit there. The
        rest runs once the caller's task yields: synchronously when the lookup already embedded
        the prompt (or nothing needs embedding), otherwise as a task that close() waits for
        (bounded)."""
        prepared = self._prepare(req, payload)
        if prepared is None:
            return
        key, body, now = prepared
        self._share(key, body, now)
        asyncio.get_running_loop().call_soon(self._remember_soon, req, key, body, now)

    def _prepare(
        self, req: CacheRequest, payload: dict[str, Any]
    ) -> tuple[str, bytes, float] | None:
        try:
            return keys.exact_key(req), encode_payload(payload), self._clock()
        except Exception as exc:  # e.g. params that are not JSON-serializable
            self._failed("cache_store_failed", "exact", exc)
            return None

    def _share(self, key: str, body: bytes, now: float) -> None:
        """Write the answer to the pod's shared exact table (embedded store); fails open."""
        table = self._shared
        if table is None or not table.is_open:
            return
        try:
            table.put(key, body, now, now + self._ttl)
        except Exception as exc:
            self._failed("cache_store_failed", "exact", exc)

    def _remember_soon(self, req: CacheRequest, key: str, body: bytes, now: float) -> None:
        needs_vector = self._semantic and bool(req.prompt_text.strip())
        if key in self._recent or not needs_vector:
            try:
                self._lru.put_body(key, body, now, now + self._ttl)
                self._persist(req, key, body, now, self._recent.pop(key, None))
            except Exception as exc:
                self._failed("cache_store_failed", "exact", exc)
            return
        task = asyncio.create_task(self._remember(req, key, body, now), name="cache-store")
        self._pending_stores.add(task)
        task.add_done_callback(self._pending_stores.discard)

    async def _remember(self, req: CacheRequest, key: str, body: bytes, now: float) -> None:
        """This worker's tiers: the answer table, the semantic index and the store's queue."""
        stage: CacheTier = "exact"
        try:
            self._lru.put_body(key, body, now, now + self._ttl)
            learned = self._recent.pop(key, None)
            if learned is None and self._semantic and req.prompt_text.strip():
                stage = "semantic"
                async with asyncio.timeout(self._timeout):
                    [vector] = await self._embedder.embed([req.prompt_text])
                learned = (vector, self._partition(req))
                stage = "exact"
            self._persist(req, key, body, now, learned)
        except Exception as exc:
            self._failed("cache_store_failed", stage, exc)

    def _persist(
        self,
        req: CacheRequest,
        key: str,
        body: bytes,
        now: float,
        learned: tuple[list[float], str] | None,
    ) -> None:
        """Index the answer's vector (embedded store) and queue its point for the store."""
        if key not in self._lru:
            return  # a bound of one entry, or evicted at once: nothing to index or write
        if learned is not None:  # the lookup already hashed both (partition_key joins them)
            params, context = learned[1].split(":")
        else:
            params, context = keys.request_fingerprint(req), keys.context_fingerprint(req)
        record = AnswerRecord(
            key=key,
            scope=req.scope,
            model=req.model,
            params_fingerprint=params,
            context_fingerprint=context,
            created_at=now,
            expires_at=now + self._ttl,
            payload=body.decode(),
        )
        if learned is None:
            vector = _placeholder_vector(self._embedder.dimensions)
        else:
            vector = learned[0]
            if self._private and self._semantic:
                self._index_for(vector).put(learned[1], key, vector, record.expires_at)
        self._writer.upsert(keys.point_id(key), vector, record)

    # --- helpers -----------------------------------------------------------------------------
    def _partition(self, req: CacheRequest) -> str:
        return partition_key(keys.request_fingerprint(req), keys.context_fingerprint(req))

    def _index_for(self, vector: list[float]) -> SemanticIndex:
        if self._index is None:
            self._index = SemanticIndex(len(vector), max_rows=self._lru.max_entries)
        return self._index

    def _evicted(self, key: str) -> None:
        """An answer left the table (bound or expiry): it leaves the index and, on the
        embedded store, the worker's shard. A server's copy stays: it is shared, and other
        workers may still use it until its TTL."""
        if self._index is not None:
            self._index.remove(key)
        if self._private:
            self._writer.delete(keys.point_id(key))

    def _failed(self, event: str, tier: CacheTier, exc: BaseException) -> None:
        log.warning(event, extra={"tier": tier, "error": type(exc).__name__})
        self._count(tier, "error")

    def _count(self, tier: CacheTier, result: str) -> None:
        if self._metrics is not None:
            self._metrics.cache_lookups.labels(tier, result).inc()


def _placeholder_vector(dimensions: int) -> list[float]:
    # Semantic tier off: the point still needs a valid vector; it is never searched.
    vector = [0.0] * max(1, dimensions)
    vector[0] = 1.0
    return vector
