"""CACHE_MAX_ENTRIES: the least recently used answer leaves every tier, so memory levels off."""

from __future__ import annotations

from pathlib import Path

import orjson

from llm_gateway.cache.edge_store import EdgeStore
from llm_gateway.cache.embedders import HashingEmbedder
from llm_gateway.observability.metrics import Metrics
from tests.support.paraphrases import PARAPHRASES, QUESTIONS
from tests.unit.cache.conftest import CacheFactory, FakeClock, answer, chat, lookups


def test_the_paraphrases_used_here_match_their_questions() -> None:
    # Guards the test below: a paraphrase miss there must come from eviction, not the embedder.
    embedder = HashingEmbedder()
    for question, paraphrase in zip(QUESTIONS, PARAPHRASES, strict=True):
        a, b = embedder.embed_sync([question, paraphrase])
        assert sum(x * y for x, y in zip(a, b, strict=True)) >= 0.92


async def test_inserting_past_the_bound_evicts_the_least_recently_used_from_every_tier(
    make_cache: CacheFactory, clock: FakeClock, metrics: Metrics
) -> None:
    cache = await make_cache(max_entries=3)
    for question in QUESTIONS[:3]:
        await cache.store(chat(question), answer(question))
        clock.advance(1)
    assert await cache.lookup(chat(QUESTIONS[0])) is not None  # now the most recent
    await cache.store(chat(QUESTIONS[3]), answer(QUESTIONS[3]))  # pushes out QUESTIONS[1]
    await cache.flush()

    health = await cache.health()
    assert (health["entries"], health["points"], health["pending_writes"]) == (3, 3, 0)
    misses = lookups(metrics, "semantic", "miss")
    assert await cache.lookup(chat(QUESTIONS[1])) is None
    assert await cache.lookup(chat(PARAPHRASES[1])) is None
    assert lookups(metrics, "semantic", "miss") == misses + 2
    for kept in (0, 2, 3):
        exact = await cache.lookup(chat(QUESTIONS[kept]))
        semantic = await cache.lookup(chat(PARAPHRASES[kept]))
        assert exact is not None and exact.payload == answer(QUESTIONS[kept])
        assert semantic is not None and semantic.tier == "semantic"
        assert semantic.payload == answer(QUESTIONS[kept])


async def test_an_evicted_answer_stays_gone_after_a_restart(make_cache: CacheFactory) -> None:
    first = await make_cache(max_entries=2)
    for question in QUESTIONS[:3]:
        await first.store(chat(question), answer(question))
    await first.close()
    second = await make_cache(max_entries=2)
    assert await second.lookup(chat(QUESTIONS[0])) is None
    assert await second.lookup(chat(PARAPHRASES[0])) is None
    assert await second.lookup(chat(QUESTIONS[2])) is not None
    assert (await second.health())["points"] == 2


async def test_a_smaller_bound_at_restart_keeps_the_most_recent_answers(
    make_cache: CacheFactory, clock: FakeClock
) -> None:
    first = await make_cache(max_entries=10)
    for question in QUESTIONS:
        await first.store(chat(question), answer(question))
        clock.advance(1)
    await first.close()
    second = await make_cache(max_entries=2)
    await second.flush()
    assert (await second.health())["points"] == 2
    assert await second.lookup(chat(QUESTIONS[1])) is None
    assert await second.lookup(chat(QUESTIONS[2])) is not None
    assert await second.lookup(chat(QUESTIONS[3])) is not None


async def test_expired_answers_are_not_loaded_at_restart_and_leave_the_folder(
    make_cache: CacheFactory, clock: FakeClock
) -> None:
    first = await make_cache(ttl_seconds=10)
    await first.store(chat(QUESTIONS[0]), answer("old"))
    await first.close()
    clock.advance(11)
    second = await make_cache(ttl_seconds=10)
    assert (await second.health())["entries"] == 0
    await second.flush()
    assert (await second.health())["points"] == 0


async def test_the_workers_shard_never_holds_more_than_the_bound(
    make_cache: CacheFactory, tmp_path: Path, clock: FakeClock
) -> None:
    cache = await make_cache(max_entries=3)
    for n in range(12):
        await cache.store(chat(f"question number {n}"), answer(str(n)))
        clock.advance(1)
    await cache.close()
    store = EdgeStore(
        tmp_path / "qdrant-edge" / "test_cache__hashing-v1-512" / "worker-0",
        collection="test_cache",
        dimensions=HashingEmbedder().dimensions,
    )
    await store.open()
    try:
        found = {point_id: payload async for point_id, payload in store.scroll_all()}
    finally:
        await store.close()
    # Point ids are reused (point_slots.py): Edge keeps a deleted point until a vacuum.
    assert sorted(found) == [0, 1, 2]
    assert sorted(
        orjson.loads(p["payload_json"])["choices"][0]["message"]["content"] for p in found.values()
    ) == ["10", "11", "9"]
