"""StoreKeeper: owns the cache's answer store for the worker's lifetime.

It opens the store (on the embedded store, first the worker slot that names the worker's shard,
slots.py), runs a hook once it is open (the tables' warm-up), and when opening fails keeps the
cache serving from its tables while `keep_open` retries every `reopen_interval`. The same loop
runs the periodic purge. `close` closes the store and releases the slot.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from llm_gateway.cache.answer_store import AnswerStore
from llm_gateway.cache.embedders import Embedder
from llm_gateway.cache.slots import WorkerSlot, acquire_slot

log = logging.getLogger(__name__)


class StoreKeeper:
    def __init__(
        self,
        *,
        embedder: Embedder,
        collection: str,
        data_dir: Path | None,
        server_url: str | None,
        server_api_key: str | None,
        open_timeout: float,
        reopen_interval: float,
    ) -> None:
        self._embedder = embedder
        self._collection = collection
        self._data_dir = data_dir
        self._server_url = server_url
        self._server_api_key = server_api_key
        self._open_timeout = open_timeout
        self._reopen_interval = reopen_interval
        self.store: AnswerStore | None = None
        self.last_error: str | None = None
        self._slot: WorkerSlot | None = None

    @property
    def worker_slot(self) -> int | None:
        return self._slot.index if self._slot is not None else None

    async def try_open(self, on_open: Callable[[AnswerStore], Awaitable[None]]) -> bool:
        """Open the store and run `on_open` on it, within the open timeout. Never raises: a
        failure is logged (`cache_open_failed`) and leaves the store closed."""
        try:
            async with asyncio.timeout(self._open_timeout):
                self.store = await self._open()
                await on_open(self.store)
        except Exception as exc:
            await self.close()
            self.last_error = type(exc).__name__
            log.warning(
                "cache_open_failed",
                extra={"error": self.last_error, "retry_in_seconds": self._reopen_interval},
            )
            return False
        self.last_error = None
        return True

    async def _open(self) -> AnswerStore:
        """The server store with QDRANT_URL, else this worker's Edge shard; opened."""
        if not self._embedder.dimensions:
            # A remote embedder learns its size from its first answer.
            await self._embedder.embed(["dimension probe"])
        store: AnswerStore
        if self._server_url is not None:
            from llm_gateway.cache.store import QdrantStore

            store = QdrantStore(
                collection=self._collection,
                dimensions=self._embedder.dimensions,
                embedder_name=self._embedder.name,
                url=self._server_url,
                api_key=self._server_api_key,
                timeout=self._open_timeout,
            )
        else:
            from llm_gateway.cache.edge_store import EdgeStore

            assert self._data_dir is not None
            self._slot = acquire_slot(self._shard_root(self._data_dir))
            store = EdgeStore(
                self._slot.path, collection=self._collection, dimensions=self._embedder.dimensions
            )
        self.store = store  # a failed open below is closed by try_open
        await store.open()
        return store

    def _shard_root(self, data_dir: Path) -> Path:
        """DATA_DIR/qdrant-edge/<collection>__<embedder>: another embedder gets other shards."""
        embedder = re.sub(r"[^A-Za-z0-9_.-]+", "_", self._embedder.name)
        return data_dir / "qdrant-edge" / f"{self._collection}__{embedder}"

    async def keep_open(
        self,
        *,
        reopen: Callable[[], Awaitable[object]],
        purge: Callable[[], Awaitable[object]],
        purge_interval: float,
    ) -> None:
        """Background: `reopen` a store that failed to open (every reopen interval); `purge`
        every `purge_interval` while it is open."""
        while True:
            if self.store is None:
                await asyncio.sleep(self._reopen_interval)
                await reopen()
                continue
            await asyncio.sleep(purge_interval)
            await purge()

    async def close(self) -> None:
        store, self.store = self.store, None
        try:
            if store is not None:
                await store.close()
        finally:
            if self._slot is not None:
                self._slot.release()
                self._slot = None
