"""The exact tier's lookup: this worker's answer table, then what the worker's siblings share.

The table (lru.py) answers in microseconds. On a miss there, the embedded store's siblings share
their answers through the pod's SQLite table (shared_exact.py); with a Qdrant server, the server
is asked by point id (another worker or pod may have stored the answer). Either way a hit joins
the worker's table, so the next repeat costs what a table hit costs.

`guarded` bounds an awaited step by the lookup's deadline and turns a failure into `FAILED`
(distinct from a miss, which is None), logged and counted by the caller's `failed`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import orjson

from llm_gateway.cache import keys
from llm_gateway.cache.answer_store import AnswerStore
from llm_gateway.cache.lru import ExactLru
from llm_gateway.cache.request import CacheHit, CacheTier
from llm_gateway.cache.shared_exact import SharedExactTable

T = TypeVar("T")
FailedCallback = Callable[[str, CacheTier, BaseException], None]


class Failed:
    """Marks a guarded step that failed (distinct from a miss, which is None)."""


FAILED: Final = Failed()


async def guarded(
    tier: CacheTier, deadline: float, step: Callable[[], Awaitable[T]], failed: FailedCallback
) -> T | Failed:
    try:
        async with asyncio.timeout_at(deadline):
            return await step()
    except Exception as exc:  # TimeoutError included; cancellation is not caught
        failed("cache_lookup_failed", tier, exc)
        return FAILED


@dataclass(frozen=True)
class ExactTier:
    lru: ExactLru
    shared: SharedExactTable | None
    server: Callable[[], AnswerStore | None] | None  # the shared store to ask by id, if any
    count: Callable[[CacheTier, str], None]
    failed: FailedCallback

    async def find(self, key: str, now: float, deadline: float) -> CacheHit | Failed | None:
        cached = self.lru.get(key, now)
        if cached is not None:
            self.count("exact", "hit")
            if self.shared is not None:
                self.shared.touch(key, now)
            payload, created_at = cached
            return CacheHit("exact", payload, 1.0, max(0.0, now - created_at))
        from_siblings = self._from_shared(key, now)
        if from_siblings is not None or self.server is None:
            return from_siblings
        store = self.server()
        if store is None:
            self.count("exact", "error")  # logged once by open; counted so dashboards see it
            return FAILED
        stored = await guarded(
            "exact", deadline, lambda: store.get(keys.point_id(key)), self.failed
        )
        if isinstance(stored, Failed) or stored is None or stored.expires_at <= now:
            return stored if isinstance(stored, Failed) else None
        self.count("exact", "hit")
        self.lru.put(key, stored.payload, stored.created_at, stored.expires_at)
        return CacheHit("exact", stored.payload, 1.0, max(0.0, now - stored.created_at))

    def _from_shared(self, key: str, now: float) -> CacheHit | Failed | None:
        """An answer another worker of the pod stored (embedded store)."""
        table = self.shared
        if table is None or not table.is_open:
            return None
        try:
            row = table.get(key, now)
            if row is None:
                return None
            body, created_at, expires_at = row
            payload: dict[str, Any] = orjson.loads(body)
        except Exception as exc:  # sqlite3.Error, OSError, a corrupt row: a miss, logged
            self.failed("cache_lookup_failed", "exact", exc)
            return FAILED
        table.touch(key, now)
        self.lru.put_body(key, body, created_at, expires_at)
        self.count("exact", "hit")
        return CacheHit("exact", payload, 1.0, max(0.0, now - created_at))
