"""ResponseCache against real qdrant-client local mode: tiers, scopes, expiry, slots."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from llm_gateway.cache.embedders import HashingEmbedder, LiteLLMEmbedder
from llm_gateway.cache.request import cache_scope
from llm_gateway.observability.metrics import Metrics
from tests.unit.cache.conftest import CacheFactory, FakeClock, answer, chat, lookups


async def test_an_answer_is_an_exact_hit_after_it_is_stored(
    make_cache: CacheFactory, metrics: Metrics, clock: FakeClock
) -> None:
    cache = await make_cache()
    request = chat("What is the capital of France?")
    assert await cache.lookup(request) is None
    await cache.store(request, answer("Paris"))
    clock.advance(12)
    hit = await cache.lookup(request)
    assert hit is not None
    assert hit.tier == "exact"
    assert hit.payload == answer("Paris")
    assert hit.similarity == 1.0
    assert hit.age_seconds == 12
    assert lookups(metrics, "exact", "hit") == 1
    assert lookups(metrics, "exact", "miss") == 1


async def test_with_a_shared_store_an_exact_hit_is_read_from_qdrant_when_the_table_lacks_it(
    make_cache: CacheFactory,
) -> None:
    # The server-mode logic (another worker may have stored the answer), on a local folder.
    cache = await make_cache(store_is_private=False, max_entries=1)
    request = chat("Explain the CAP theorem in simple terms.")
    await cache.store(request, answer("Pick two."))
    await cache.store(chat("pushes the first answer out of the table"), answer("x"))
    await cache.flush()
    hit = await cache.lookup(request)
    assert hit is not None
    assert (hit.tier, hit.payload) == ("exact", answer("Pick two."))


async def test_a_scheduled_answer_is_an_exact_hit_at_once_and_a_semantic_hit_once_written(
    make_cache: CacheFactory,
) -> None:
    cache = await make_cache(flush_interval=3600, flush_wake=100)  # the write waits
    assert await cache.lookup(chat("How do I reset my password?")) is None  # as a request does
    cache.schedule_store(chat("How do I reset my password?"), answer("Use the reset link."))
    await asyncio.sleep(0)  # the caller's task yields: its response is on its way
    assert (await cache.health())["pending_writes"] == 1
    exact = await cache.lookup(chat("How do I reset my password?"))
    assert exact is not None and exact.tier == "exact"
    # The semantic tier is the shard's own search: nothing there until the batch is written.
    assert (await cache.health())["points"] == 0
    assert await cache.lookup(chat("how can I reset my password")) is None
    assert await cache.flush() == 1
    semantic = await cache.lookup(chat("how can I reset my password"))
    assert semantic is not None and semantic.tier == "semantic"
    assert semantic.payload == answer("Use the reset link.")


async def test_on_the_embedded_store_a_scheduled_answer_is_written_as_soon_as_the_loop_is_free(
    make_cache: CacheFactory,
) -> None:
    # No waiting for the flush interval: a 0.2 s batch held the next requests for ~5 ms at c=1.
    cache = await make_cache(flush_interval=3600)
    assert await cache.lookup(chat("How do I reset my password?")) is None
    cache.schedule_store(chat("How do I reset my password?"), answer("Use the reset link."))
    async with asyncio.timeout(2):
        while (await cache.health())["points"] != 1:
            await asyncio.sleep(0)
    semantic = await cache.lookup(chat("how can I reset my password"))
    assert semantic is not None and semantic.tier == "semantic"


async def test_stored_answers_survive_a_restart_on_the_same_slot(make_cache: CacheFactory) -> None:
    first = await make_cache()
    request = chat("How do I reset my password?")
    await first.store(request, answer("Use the reset link."))
    await first.close()
    second = await make_cache()
    assert second.worker_slot == 0
    hit = await second.lookup(request)
    assert hit is not None
    assert hit.payload == answer("Use the reset link.")
    # The semantic index is rebuilt from the slot folder too.
    paraphrase = await second.lookup(chat("how can I reset my password"))
    assert paraphrase is not None
    assert (paraphrase.tier, paraphrase.payload) == ("semantic", answer("Use the reset link."))


async def test_a_served_payload_cannot_be_corrupted_by_the_caller(make_cache: CacheFactory) -> None:
    cache = await make_cache()
    request = chat("Give me a haiku")
    await cache.store(request, answer("old pond"))
    first = await cache.lookup(request)
    assert first is not None
    first.payload["choices"] = []
    again = await cache.lookup(request)
    assert again is not None
    assert again.payload == answer("old pond")


async def test_a_different_model_or_params_is_a_miss(make_cache: CacheFactory) -> None:
    cache = await make_cache()
    await cache.store(chat("What is 2 + 2?", temperature=0.0), answer("4"))
    assert await cache.lookup(chat("What is 2 + 2?", temperature=0.9)) is None
    assert await cache.lookup(chat("What is 2 + 2?", model="claude-3-haiku")) is None
    assert await cache.lookup(chat("What is 2 + 2?", temperature=0.0, max_tokens=5)) is None
    assert await cache.lookup(chat("What is 2 + 2?", temperature=0.0)) is not None


async def test_under_user_scope_one_caller_never_gets_another_callers_answer(
    make_cache: CacheFactory,
) -> None:
    cache = await make_cache()
    alice, bob = cache_scope("user", "alice"), cache_scope("user", "bob")
    await cache.store(chat("Summarize my account status", scope=alice), answer("alice's data"))
    assert await cache.lookup(chat("Summarize my account status", scope=bob)) is None
    assert await cache.lookup(chat("Summarize my account status please", scope=bob)) is None
    own = await cache.lookup(chat("Summarize my account status", scope=alice))
    assert own is not None
    assert own.payload == answer("alice's data")


async def test_under_shared_scope_every_caller_gets_the_same_answer(
    make_cache: CacheFactory,
) -> None:
    cache = await make_cache()
    await cache.store(
        chat("Capital of Peru?", scope=cache_scope("shared", "alice")), answer("Lima")
    )
    hit = await cache.lookup(chat("Capital of Peru?", scope=cache_scope("shared", "bob")))
    assert hit is not None
    assert hit.payload == answer("Lima")


async def test_a_paraphrase_above_the_threshold_is_a_semantic_hit(
    make_cache: CacheFactory, metrics: Metrics
) -> None:
    cache = await make_cache()
    await cache.store(chat("How do I reset my password?"), answer("Use the reset link."))
    hit = await cache.lookup(chat("how can I reset my password"))
    assert hit is not None
    assert hit.tier == "semantic"
    assert 0.92 <= hit.similarity <= 1.0
    assert hit.payload == answer("Use the reset link.")
    assert lookups(metrics, "semantic", "hit") == 1


async def test_a_prompt_below_the_threshold_is_a_semantic_miss(
    make_cache: CacheFactory, metrics: Metrics
) -> None:
    cache = await make_cache()
    await cache.store(chat("How do I enable two-factor authentication?"), answer("Settings > 2FA"))
    assert await cache.lookup(chat("How do I disable two-factor authentication?")) is None
    assert await cache.lookup(chat("What is the capital of France?")) is None
    assert lookups(metrics, "semantic", "miss") == 2


async def test_a_paraphrase_under_another_system_prompt_is_a_miss(make_cache: CacheFactory) -> None:
    cache = await make_cache()
    await cache.store(
        chat("How do I reset my password?", system="Answer in French."), answer("Oui")
    )
    assert await cache.lookup(chat("how can I reset my password", system="Be terse.")) is None
    hit = await cache.lookup(chat("how can I reset my password", system="Answer in French."))
    assert hit is not None
    assert hit.tier == "semantic"


async def test_prompts_about_other_numbers_never_match_semantically(
    make_cache: CacheFactory,
) -> None:
    # Even a permissive threshold: one differing number is one token of many to an embedder.
    cache = await make_cache(semantic_threshold=0.5)
    await cache.store(chat("Explain item 17 of the catalogue in two sentences."), answer("17"))
    assert await cache.lookup(chat("Explain item 18 of the catalogue in two sentences.")) is None
    assert await cache.lookup(chat("Explain item 17 of the catalogue in 3 sentences.")) is None
    hit = await cache.lookup(chat("explain item 17 of the catalogue in two sentences please"))
    assert hit is not None
    assert hit.tier == "semantic"
    assert hit.payload == answer("17")


async def test_the_semantic_tier_can_be_switched_off(make_cache: CacheFactory) -> None:
    cache = await make_cache(semantic_enabled=False)
    await cache.store(chat("How do I reset my password?"), answer("link"))
    assert await cache.lookup(chat("how can I reset my password")) is None
    assert await cache.lookup(chat("How do I reset my password?")) is not None


async def test_answers_expire_after_the_ttl_in_both_tiers(
    make_cache: CacheFactory, clock: FakeClock
) -> None:
    cache = await make_cache(ttl_seconds=60)
    await cache.store(chat("How do I reset my password?"), answer("link"))
    clock.advance(59)
    assert await cache.lookup(chat("How do I reset my password?")) is not None
    assert await cache.lookup(chat("how can I reset my password")) is not None
    clock.advance(2)
    assert await cache.lookup(chat("How do I reset my password?")) is None
    assert await cache.lookup(chat("how can I reset my password")) is None


async def test_with_a_shared_store_an_expired_point_is_not_served_after_the_table_forgets_it(
    make_cache: CacheFactory, clock: FakeClock
) -> None:
    cache = await make_cache(ttl_seconds=60, store_is_private=False, max_entries=1)
    await cache.store(chat("Ping?"), answer("Pong"))
    await cache.store(chat("pushes the first answer out of the table"), answer("x"))
    await cache.flush()
    clock.advance(61)
    assert await cache.lookup(chat("Ping?")) is None


async def test_purge_removes_expired_points_and_keeps_live_ones(
    make_cache: CacheFactory, clock: FakeClock
) -> None:
    cache = await make_cache(ttl_seconds=100)
    await cache.store(chat("old question"), answer("old"))
    clock.advance(60)
    await cache.store(chat("new question"), answer("new"))
    await cache.flush()
    clock.advance(50)
    assert (await cache.health())["points"] == 2
    assert await cache.purge_expired() == 1
    await cache.flush()
    assert (await cache.health())["points"] == 1
    assert await cache.lookup(chat("old question")) is None
    assert await cache.lookup(chat("new question")) is not None


async def test_storing_the_same_request_again_overwrites_its_point(
    make_cache: CacheFactory,
) -> None:
    cache = await make_cache()
    await cache.store(chat("Weather?"), answer("rain"))
    await cache.flush()
    await cache.store(chat("Weather?"), answer("sun"))
    await cache.flush()
    health = await cache.health()
    assert health["points"] == 1
    hit = await cache.lookup(chat("Weather?"))
    assert hit is not None
    assert hit.payload == answer("sun")


async def test_two_caches_on_one_data_dir_get_their_own_slots_and_share_the_exact_tier(
    make_cache: CacheFactory, tmp_path: Path, metrics: Metrics
) -> None:
    first = await make_cache()
    second = await make_cache()
    assert (first.worker_slot, second.worker_slot) == (0, 1)
    shards = tmp_path / "qdrant-edge" / "test_cache__hashing-v1-512"
    assert (shards / "worker-0" / "edge_config.json").is_file()
    assert (shards / "worker-1" / "edge_config.json").is_file()
    await first.store(chat("stored by worker 0"), answer("w0"))
    hit = await second.lookup(chat("stored by worker 0"))
    assert hit is not None
    assert (hit.tier, hit.payload) == ("exact", answer("w0"))
    # The semantic tier stays per worker in local mode: a paraphrase is worker 0's alone.
    assert await second.lookup(chat("stored by worker zero")) is None
    paraphrase = await first.lookup(chat("stored by worker zero"))
    assert paraphrase is not None and paraphrase.tier == "semantic"


async def test_an_answer_scheduled_by_one_worker_is_shared_before_schedule_store_returns(
    make_cache: CacheFactory,
) -> None:
    # The caller's response is written right after schedule_store; a repeat may reach the
    # other worker before this worker's loop turns again.
    first = await make_cache()
    second = await make_cache()
    first.schedule_store(chat("answered just now"), answer("fresh"))
    hit = await second.lookup(chat("answered just now"))
    assert hit is not None and hit.payload == answer("fresh")


async def test_the_shared_exact_tier_keeps_scopes_models_and_params_apart(
    make_cache: CacheFactory,
) -> None:
    first = await make_cache()
    second = await make_cache()
    await first.store(chat("Tell me a secret", scope="tenant-a"), answer("a's answer"))
    assert await second.lookup(chat("Tell me a secret", scope="tenant-b")) is None
    assert await second.lookup(chat("Tell me a secret", scope="tenant-a", model="other")) is None
    assert await second.lookup(chat("Tell me a secret", scope="tenant-a", temperature=1)) is None
    assert await second.lookup(chat("Tell me a secret", scope="tenant-a")) is not None


async def test_a_shared_answer_expires_for_every_worker(
    make_cache: CacheFactory, clock: FakeClock
) -> None:
    first = await make_cache(ttl_seconds=10)
    second = await make_cache(ttl_seconds=10)
    await first.store(chat("short lived"), answer("soon gone"))
    clock.advance(11)
    assert await second.lookup(chat("short lived")) is None


async def test_the_shared_exact_tier_is_bounded_by_cache_max_entries(
    make_cache: CacheFactory, clock: FakeClock
) -> None:
    first = await make_cache(max_entries=2)
    second = await make_cache(max_entries=2)
    for n in range(5):
        await first.store(chat(f"question {n}"), answer(str(n)))
        clock.advance(1)
    assert (await second.health())["shared_entries"] == 2
    assert await second.lookup(chat("question 2")) is None
    assert await second.lookup(chat("question 4")) is not None


async def test_health_reports_mode_collection_and_point_count(make_cache: CacheFactory) -> None:
    cache = await make_cache()
    await cache.store(chat("a question"), answer("an answer"))
    await cache.flush()
    health = await cache.health()
    assert health["mode"] == "edge"
    assert health["collection"] == "test_cache"
    assert health["points"] == 1
    assert health["worker_slot"] == 0
    assert health["dimensions"] == HashingEmbedder().dimensions
    assert (health["entries"], health["pending_writes"]) == (1, 0)


async def test_another_embedder_gets_its_own_shards_and_the_old_ones_are_left_alone(
    make_cache: CacheFactory, tmp_path: Path
) -> None:
    first = await make_cache(embedder=HashingEmbedder(dimensions=256))
    await first.store(chat("kept"), answer("256-d"))
    await first.close()  # close writes what is queued
    second = await make_cache(embedder=HashingEmbedder(dimensions=512))
    assert (await second.health())["points"] == 0
    old = tmp_path / "qdrant-edge" / "test_cache__hashing-v1-256" / "worker-0"
    assert (old / "edge_config.json").is_file()
    await second.store(chat("new"), answer("512-d"))
    assert await second.lookup(chat("new")) is not None


async def test_a_remote_embedder_learns_its_dimensions_at_open_and_serves_the_semantic_tier(
    make_cache: CacheFactory,
) -> None:
    offline = HashingEmbedder(dimensions=128)

    class OfflineEmbeddings:
        async def embeddings(self, model: str, inputs: list[str]) -> dict[str, Any]:
            vectors = offline.embed_sync(inputs)
            return {"data": [{"index": i, "embedding": v} for i, v in enumerate(vectors)]}

    remote = LiteLLMEmbedder(OfflineEmbeddings(), "embedder-model")
    assert remote.dimensions == 0
    cache = await make_cache(embedder=remote)
    assert (await cache.health())["dimensions"] == 128
    await cache.store(chat("How do I reset my password?"), answer("link"))
    hit = await cache.lookup(chat("how can I reset my password"))
    assert hit is not None
    assert hit.tier == "semantic"
    await cache.close()


class CountingEmbedder(HashingEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    async def embed(self, texts: list[str]) -> list[list[float]]:
        self.texts.extend(texts)
        return await super().embed(texts)


async def test_a_miss_then_its_store_embeds_the_prompt_once(make_cache: CacheFactory) -> None:
    embedder = CountingEmbedder()
    cache = await make_cache(embedder=embedder)
    embedder.texts.clear()  # whatever open() probed
    request = chat("How do I rotate my API key?")
    assert await cache.lookup(request) is None
    await cache.store(request, answer("Open settings, then keys."))
    assert embedder.texts == ["How do I rotate my API key?"]
    # A store without a preceding lookup still embeds.
    await cache.store(chat("Another question?"), answer("Another answer."))
    assert embedder.texts[-1] == "Another question?"


async def test_with_a_shared_store_a_full_batch_is_written_and_paraphrases_found_on_the_store(
    make_cache: CacheFactory,
) -> None:
    writer = await make_cache(store_is_private=False, flush_interval=3600, flush_batch=2)
    for question in ("How do I reset my password?", "What is the capital of Peru?", "Ping?"):
        await writer.store(chat(question), answer(question))
    # Nothing is written per store; a full batch wakes the writer long before its interval.
    async with asyncio.timeout(5):
        while (await writer.health())["points"] != 3:
            await asyncio.sleep(0.01)
    assert (await writer.health())["pending_writes"] == 0
    # Another worker's cache would find it on the shared store; the table here is bypassed by
    # the paraphrase (a different exact key), so the match comes from Qdrant's filtered query.
    hit = await writer.lookup(chat("how can I reset my password"))
    assert hit is not None and hit.tier == "semantic"
    assert hit.payload == answer("How do I reset my password?")
