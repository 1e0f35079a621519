"""The cache never raises to the caller and never makes it wait past CACHE_TIMEOUT."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from llm_gateway.cache.embedders import HashingEmbedder
from llm_gateway.errors import DependencyUnavailable
from llm_gateway.observability.metrics import Metrics
from tests.support.logs import capture_json_logs
from tests.support.processes import free_port
from tests.unit.cache.conftest import CacheFactory, FakeClock, answer, chat, lookups


class BrokenEmbedder:
    """Embeds like the default until told to fail or stall."""

    def __init__(self, mode: str = "ok") -> None:
        self._inner = HashingEmbedder()
        self.name = "broken"
        self.dimensions = self._inner.dimensions
        self.mode = mode

    async def embed(self, texts: list[str]) -> list[list[float]]:
        if self.mode == "raise":
            raise ConnectionError("embedding service down")
        if self.mode == "stall":
            await asyncio.sleep(30)
        return await self._inner.embed(texts)


@pytest.mark.parametrize(
    "mode", [pytest.param("raise", id="raises"), pytest.param("stall", id="stalls")]
)
async def test_a_failing_embedder_makes_lookup_a_quick_miss_with_an_error_metric(
    make_cache: CacheFactory, metrics: Metrics, mode: str
) -> None:
    embedder = BrokenEmbedder()
    cache = await make_cache(embedder=embedder, timeout=0.3)
    await cache.store(chat("How do I reset my password?"), answer("link"))
    embedder.mode = mode
    with capture_json_logs() as logs:
        started = time.monotonic()
        assert await cache.lookup(chat("how can I reset my password")) is None
        elapsed = time.monotonic() - started
    assert elapsed < 2.0  # bounded by CACHE_TIMEOUT (0.3 s), not the 30 s stall
    assert lookups(metrics, "semantic", "error") == 1
    (event,) = logs.events("cache_lookup_failed")
    assert event["level"] == "WARNING"
    assert event["tier"] == "semantic"
    assert event["error"] == ("ConnectionError" if mode == "raise" else "TimeoutError")
    # The exact tier does not need the embedder and keeps answering.
    assert await cache.lookup(chat("How do I reset my password?")) is not None


@pytest.mark.parametrize(
    "mode", [pytest.param("raise", id="raises"), pytest.param("stall", id="stalls")]
)
async def test_a_failing_store_gives_up_quietly_but_the_lru_still_serves_this_worker(
    make_cache: CacheFactory, metrics: Metrics, mode: str
) -> None:
    cache = await make_cache(embedder=BrokenEmbedder(mode), timeout=0.3)
    with capture_json_logs() as logs:
        started = time.monotonic()
        await cache.store(chat("What is 2 + 2?"), answer("4"))
        elapsed = time.monotonic() - started
    assert elapsed < 2.0  # bounded by CACHE_TIMEOUT (0.3 s), not the 30 s stall
    (event,) = logs.events("cache_store_failed")
    assert event["tier"] == "semantic"
    assert lookups(metrics, "semantic", "error") == 1
    await cache.flush()
    assert (await cache.health())["points"] == 0
    hit = await cache.lookup(chat("What is 2 + 2?"))
    assert hit is not None
    assert hit.tier == "exact"


async def test_a_request_that_cannot_be_keyed_is_an_error_not_an_exception(
    make_cache: CacheFactory, metrics: Metrics
) -> None:
    cache = await make_cache()
    unserializable = chat("hi", temperature=object())
    assert await cache.lookup(unserializable) is None
    await cache.store(unserializable, answer("x"))
    assert lookups(metrics, "exact", "error") == 2


async def test_when_qdrant_cannot_open_the_app_still_boots_and_the_store_is_retried(
    make_cache: CacheFactory, tmp_path: Path, metrics: Metrics
) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the data directory should be")
    with capture_json_logs() as logs:
        cache = await make_cache(data_dir=blocked, reopen_interval=0.01, flush_interval=0.01)
    assert not cache.ready
    assert logs.events("cache_open_failed")[0]["error"] == "NotADirectoryError"
    with pytest.raises(DependencyUnavailable):
        await cache.health()
    request = chat("Still cached per worker?")
    await cache.store(request, answer("yes"))
    # The worker's answer table still serves repeats; paraphrases need the shard's search.
    assert await cache.lookup(request) is not None
    assert await cache.lookup(chat("still cached per worker")) is None
    assert await cache.lookup(chat("anything else")) is None
    assert lookups(metrics, "exact", "error") == 0

    blocked.unlink()
    blocked.mkdir()
    async with asyncio.timeout(5):
        while not cache.ready:
            await asyncio.sleep(0.01)
    # What was stored while the folder was unusable is written once it opens, and found.
    async with asyncio.timeout(5):
        while (await cache.health())["points"] != 1:
            await asyncio.sleep(0.01)
    paraphrase = await cache.lookup(chat("still cached per worker"))
    assert paraphrase is not None and paraphrase.tier == "semantic"


async def test_the_background_task_purges_expired_points(
    make_cache: CacheFactory, clock: FakeClock
) -> None:
    cache = await make_cache(ttl_seconds=10, purge_interval=0.01, flush_interval=0.01)
    await cache.store(chat("short lived"), answer("gone soon"))
    await cache.flush()
    assert (await cache.health())["points"] == 1
    clock.advance(11)
    async with asyncio.timeout(5):
        while (await cache.health())["points"]:
            await asyncio.sleep(0.01)


async def test_close_waits_for_scheduled_stores(make_cache: CacheFactory, tmp_path: Path) -> None:
    cache = await make_cache()
    cache.schedule_store(chat("background"), answer("stored"))
    await cache.close()
    reopened = await make_cache()
    assert reopened.worker_slot == 0
    assert (await reopened.health())["points"] == 1


async def test_an_unreachable_qdrant_server_fails_open_at_startup(
    make_cache: CacheFactory, metrics: Metrics
) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with capture_json_logs() as logs:
        cache = await make_cache(qdrant_url=url, data_dir=None, open_timeout=2.0)
    assert not cache.ready
    assert cache.worker_slot is None
    (event,) = logs.events("cache_open_failed")
    assert url not in str(event)
    assert await cache.lookup(chat("anything")) is None
    assert lookups(metrics, "exact", "error") == 1


async def test_a_locked_shared_exact_table_fails_the_store_open_within_the_timeout(
    make_cache: CacheFactory, tmp_path: Path, metrics: Metrics
) -> None:
    first = await make_cache(timeout=0.3)
    second = await make_cache(timeout=0.3)
    await first.store(chat("stored before the lock"), answer("kept"))
    # Another process holding the write lock (a stuck sibling, a backup tool).
    other = sqlite3.connect(tmp_path / "cache" / "exact.sqlite3", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with capture_json_logs() as logs:
            started = time.monotonic()
            await first.store(chat("stored under the lock"), answer("this worker only"))
            elapsed = time.monotonic() - started
        # Readers are not blocked by a writer (WAL): the sibling still hits what was shared.
        assert await second.lookup(chat("stored before the lock")) is not None
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert elapsed < 2.0  # bounded by CACHE_TIMEOUT (0.3 s) as SQLite's busy timeout
    (event,) = logs.events("cache_store_failed")
    assert (event["tier"], event["error"]) == ("exact", "OperationalError")
    assert lookups(metrics, "exact", "error") == 1
    # This worker still serves it from its own table; the sibling does not have it.
    assert await first.lookup(chat("stored under the lock")) is not None
    assert await second.lookup(chat("stored under the lock")) is None


async def test_an_unreadable_shared_exact_file_fails_open_and_is_retried(
    make_cache: CacheFactory, tmp_path: Path
) -> None:
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "exact.sqlite3").write_bytes(b"not a database " * 100)
    with capture_json_logs() as logs:
        cache = await make_cache(reopen_interval=0.01)
    assert not cache.ready
    assert logs.events("cache_open_failed")[0]["error"] == "DatabaseError"
    request = chat("served from this worker's table")
    await cache.store(request, answer("yes"))
    assert await cache.lookup(request) is not None
    (tmp_path / "cache" / "exact.sqlite3").unlink()
    async with asyncio.timeout(5):
        while not cache.ready:
            await asyncio.sleep(0.01)
    assert (await cache.health())["shared_entries"] == 0
