"""AnswerIntake: the store half of the response cache, from a finished answer to every tier.

A successful, complete answer goes, in this order:
1. to the pod's shared exact table (embedded store), before the caller's response is written:
   a repeat sent the moment the answer arrives may reach another worker, and must hit there;
2. once the caller's task yields, to this worker's answer table (lru.py), its semantic index
   (local_index.py, embedded store) and the write-behind queue of the answer store.

A miss's lookup already embedded the prompt; it leaves the vector here (`note`) so that the store
of the same request does not embed it again. Nothing here raises: a failure is logged and
counted through `failed` (`cache_store_failed`) and the answer is simply not cached.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

from llm_gateway.cache import keys
from llm_gateway.cache.embedders import Embedder
from llm_gateway.cache.local_index import SemanticIndex, partition_key
from llm_gateway.cache.lru import ExactLru, encode_payload
from llm_gateway.cache.point_slots import PointSlots
from llm_gateway.cache.records import AnswerRecord
from llm_gateway.cache.request import CacheRequest, CacheTier
from llm_gateway.cache.shared_exact import SharedExactTable
from llm_gateway.cache.write_behind import WriteBehind

# What a miss's lookup learned (vector, partition), kept for the store of the same request; a
# store follows its lookup within one upstream call, so a few hundred cover every request in
# flight in a worker.
_RECENT: Final = 512


class AnswerIntake:
    def __init__(
        self,
        *,
        embedder: Embedder,
        lru: ExactLru,
        shared: SharedExactTable | None,
        writer: WriteBehind,
        slots: PointSlots | None,
        index_for: Callable[[list[float]], SemanticIndex] | None,
        semantic_enabled: bool,
        ttl_seconds: float,
        timeout: float,
        clock: Callable[[], float],
        failed: Callable[[str, CacheTier, BaseException], None],
    ) -> None:
        """`slots` gives point ids on the embedded store (None: uuid5 of the key); `index_for`
        the worker's semantic index (embedded store with the semantic tier on), else None."""
        self._embedder = embedder
        self._lru = lru
        self._shared = shared
        self._writer = writer
        self._slots = slots
        self._index_for = index_for
        self._ttl = ttl_seconds
        self._timeout = timeout
        self._clock = clock
        self._failed = failed
        self._semantic = semantic_enabled
        self._recent: OrderedDict[str, tuple[list[float], str]] = OrderedDict()
        self._pending: set[asyncio.Task[None]] = set()

    def note(self, key: str, vector: list[float], partition: str) -> None:
        """A lookup embedded this request's prompt; its store will reuse the vector."""
        self._recent[key] = (vector, partition)
        while len(self._recent) > _RECENT:
            self._recent.popitem(last=False)

    def forget(self, key: str) -> None:
        """The lookup hit: no store follows."""
        self._recent.pop(key, None)

    async def drain(self) -> None:
        """Wait (bounded) for stores still embedding their prompt; cancel what is left."""
        await asyncio.sleep(0)  # stores scheduled with call_soon run (and may start a task)
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=self._timeout * 4)
            for task in self._pending:
                task.cancel()

    async def store(self, req: CacheRequest, payload: dict[str, Any]) -> None:
        """Remember an answer and wait until this worker's tiers hold it."""
        prepared = self._prepare(req, payload)
        if prepared is not None:
            key, body, now = prepared
            self._share(key, body, now)
            await self._remember(req, key, body, now)

    def schedule_store(self, req: CacheRequest, payload: dict[str, Any]) -> None:
        """`store` without delaying the caller's response: the shared write now, the rest once
        the caller's task yields (synchronously when the lookup already embedded the prompt or
        nothing needs embedding, otherwise as a task that `drain` waits for)."""
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
        table = self._shared
        if table is None or not table.is_open:
            return
        try:
            table.put(key, body, now, now + self._ttl)
        except Exception as exc:
            self._failed("cache_store_failed", "exact", exc)

    def _needs_vector(self, req: CacheRequest) -> bool:
        return self._semantic and bool(req.prompt_text.strip())

    def _remember_soon(self, req: CacheRequest, key: str, body: bytes, now: float) -> None:
        if key in self._recent or not self._needs_vector(req):
            try:
                self._lru.put_body(key, body, now, now + self._ttl)
                self._persist(req, key, body, now, self._recent.pop(key, None))
            except Exception as exc:
                self._failed("cache_store_failed", "exact", exc)
            return
        task = asyncio.create_task(self._remember(req, key, body, now), name="cache-store")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _remember(self, req: CacheRequest, key: str, body: bytes, now: float) -> None:
        stage: CacheTier = "exact"
        try:
            self._lru.put_body(key, body, now, now + self._ttl)
            learned = self._recent.pop(key, None)
            if learned is None and self._needs_vector(req):
                stage = "semantic"
                async with asyncio.timeout(self._timeout):
                    [vector] = await self._embedder.embed([req.prompt_text])
                partition = partition_key(
                    keys.request_fingerprint(req), keys.context_fingerprint(req)
                )
                learned = (vector, partition)
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
            if self._index_for is not None:
                self._index_for(vector).put(learned[1], key, vector, record.expires_at)
        point_id = keys.point_id(key) if self._slots is None else self._slots.assign(key)
        self._writer.upsert(point_id, vector, record)


def _placeholder_vector(dimensions: int) -> list[float]:
    # Semantic tier off: the point still needs a valid vector; it is never searched.
    vector = [0.0] * max(1, dimensions)
    vector[0] = 1.0
    return vector
