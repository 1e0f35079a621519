"""AnswerIntake: the store half of the response cache, from a finished answer to every tier.

A successful, complete answer goes, in this order:
1. to the pod's shared exact table (embedded store), before the caller's response is written:
   a repeat sent the moment the answer arrives may reach another worker, and must hit there;
2. once the caller's task yields, to this worker's answer table (lru.py) and the write-behind
   queue of the answer store, whose semantic search finds it once it is written.

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
from llm_gateway.cache.lru import ExactLru, encode_payload
from llm_gateway.cache.point_slots import PointSlots
from llm_gateway.cache.records import AnswerRecord
from llm_gateway.cache.request import CacheRequest, CacheTier
from llm_gateway.cache.shared_exact import SharedExactTable
from llm_gateway.cache.write_behind import WriteBehind

# What a miss's lookup learned of its prompt (vector, params fingerprint, context fingerprint),
# kept for the store of the same request; a store follows its lookup within one upstream call, so
# a few hundred cover every request in flight in a worker.
Learned = tuple[list[float], str, str]
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
        semantic_enabled: bool,
        ttl_seconds: float,
        timeout: float,
        clock: Callable[[], float],
        failed: Callable[[str, CacheTier, BaseException], None],
    ) -> None:
        """`slots` gives point ids on the embedded store (None: uuid5 of the key)."""
        self._embedder = embedder
        self._lru = lru
        self._shared = shared
        self._writer = writer
        self._slots = slots
        self._ttl = ttl_seconds
        self._timeout = timeout
        self._clock = clock
        self._failed = failed
        self._semantic = semantic_enabled
        self._recent: OrderedDict[str, Learned] = OrderedDict()
        self._pending: set[asyncio.Task[None]] = set()

    def note(self, key: str, learned: Learned) -> None:
        """A lookup embedded this request's prompt; its store will reuse the vector."""
        self._recent[key] = learned
        while len(self._recent) > _RECENT:
            self._recent.popitem(last=False)

    async def drain(self) -> None:
        """Wait (bounded) for stores still embedding their prompt; cancel what is left."""
        await asyncio.sleep(0)  # stores scheduled with call_soon run (and may start a task)
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=self._timeout * 4)
            for task in self._pending:
                task.cancel()

    async def store(self, req: CacheRequest, payload: dict[str, Any]) -> None:
        """Remember an answer and wait until every tier holds it (the store's write included)."""
        prepared = self._prepare(req, payload)
        if prepared is not None:
            key, body, now = prepared
            self._share(key, body, now)
            await self._remember(req, key, body, now)
            await self._writer.flush()

    def schedule_store(self, req: CacheRequest, payload: dict[str, Any]) -> None:
        """`store` without delaying the caller's response: the shared write now, the rest once
        the caller's task yields (synchronously when the lookup already embedded the prompt or
        nothing needs embedding, otherwise as a task that `drain` waits for); the store's write
        goes with the write-behind's next batch."""
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

    def _remember_soon(self, req: CacheRequest, key: str, body: bytes, now: float) -> None:
        learned = self._recent.pop(key, None)
        if learned is None and self._semantic and req.prompt_text.strip():
            task = asyncio.create_task(self._remember(req, key, body, now), name="cache-store")
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
        else:
            self._keep(req, key, body, now, learned)

    async def _remember(self, req: CacheRequest, key: str, body: bytes, now: float) -> None:
        learned = self._recent.pop(key, None)
        if learned is None and self._semantic and req.prompt_text.strip():
            try:
                async with asyncio.timeout(self._timeout):
                    [vector] = await self._embedder.embed([req.prompt_text])
            except Exception as exc:
                self._failed("cache_store_failed", "semantic", exc)
                self._keep(req, key, body, now, None, persist=False)  # the exact tiers only
                return
            learned = (vector, keys.request_fingerprint(req), keys.context_fingerprint(req))
        self._keep(req, key, body, now, learned)

    def _keep(
        self,
        req: CacheRequest,
        key: str,
        body: bytes,
        now: float,
        learned: Learned | None,
        *,
        persist: bool = True,
    ) -> None:
        """Into this worker's answer table, and (`persist`) its point into the write queue."""
        try:
            self._lru.put_body(key, body, now, now + self._ttl)
            if persist and key in self._lru:  # a bound of one entry may evict it at once
                self._queue_point(req, key, body, now, learned)
        except Exception as exc:
            self._failed("cache_store_failed", "exact", exc)

    def _queue_point(
        self, req: CacheRequest, key: str, body: bytes, now: float, learned: Learned | None
    ) -> None:
        if learned is not None:  # the lookup already hashed both
            vector, params, context = learned
        else:
            vector = _placeholder_vector(self._embedder.dimensions)
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
        point_id = keys.point_id(key) if self._slots is None else self._slots.assign(key)
        self._writer.upsert(point_id, vector, record)


def _placeholder_vector(dimensions: int) -> list[float]:
    # Semantic tier off: the point still needs a valid vector; it is never searched.
    vector = [0.0] * max(1, dimensions)
    vector[0] = 1.0
    return vector
