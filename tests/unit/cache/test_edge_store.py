"""EdgeStore's own promises: a killed worker's shard opens again with what it wrote; a shard
that cannot be opened is moved aside with one WARNING and a fresh one is used; a shard another
process holds is left alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import qdrant_edge as edge

from llm_gateway.cache.edge_store import EdgeStore
from llm_gateway.cache.embedders import HashingEmbedder
from llm_gateway.cache.records import PARTITION_FIELD, AnswerRecord, PendingPoint
from llm_gateway.cache.response_cache import ResponseCache
from tests.support.logs import capture_json_logs

POINT = "00000000-0000-0000-0000-000000000001"


def record(key: str) -> AnswerRecord:
    return AnswerRecord(
        key=key,
        scope="shared",
        model="m",
        params_fingerprint="p",
        context_fingerprint="c",
        created_at=0.0,
        expires_at=100.0,
        payload={"answer": key},
    )


async def opened(path: Path, dimensions: int = 2) -> EdgeStore:
    store = EdgeStore(path, collection="c", dimensions=dimensions)
    await store.open()
    return store


# Writes one point and dies without flushing or closing, as a SIGKILLed worker does.
_KILLED_WRITER = """
import asyncio, os, sys
from pathlib import Path
from llm_gateway.cache.edge_store import EdgeStore
from llm_gateway.cache.records import AnswerRecord, PendingPoint
async def main():
    store = EdgeStore(Path(sys.argv[1]), collection="c", dimensions=2)
    await store.open()
    record = AnswerRecord("k", "shared", "m", "p", "c", 0.0, 100.0, {"answer": "before the kill"})
    await store.write([PendingPoint.of(sys.argv[2], [1.0, 0.0], record)], [])
    os._exit(9)
asyncio.run(main())
"""


async def test_a_shard_left_by_a_killed_process_opens_with_what_it_wrote(tmp_path: Path) -> None:
    shard = tmp_path / "worker-0"
    died = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITER, str(shard), POINT], check=False, timeout=60
    )
    assert died.returncode == 9
    store = await opened(shard)
    try:
        stored = await store.get(POINT)
        assert stored is not None and stored.payload == {"answer": "before the kill"}
        assert await store.count() == 1
    finally:
        await store.close()


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(
            lambda shard: (shard / "edge_config.json").write_text("{not json"), id="bad-config"
        ),
        pytest.param(lambda shard: None, id="other-vector-size"),
    ],
)
async def test_a_shard_that_cannot_be_opened_is_moved_aside_and_a_fresh_one_used(
    tmp_path: Path, damage: object
) -> None:
    shard = tmp_path / "worker-0"
    first = await opened(shard, dimensions=3)
    await first.write([PendingPoint.of(POINT, [1.0, 0.0, 0.0], record("old"))], [])
    await first.close()
    damage(shard)  # type: ignore[operator]
    with capture_json_logs() as logs:
        store = await opened(shard, dimensions=2)
    try:
        (event,) = logs.events("cache_shard_unreadable")
        assert event["level"] == "WARNING"
        (aside,) = tmp_path.glob("worker-0.unreadable-*")
        assert event["moved_to"] == str(aside)
        assert await store.count() == 0
        await store.write([PendingPoint.of(POINT, [0.0, 1.0], record("new"))], [])
        assert await store.get(POINT) is not None
    finally:
        await store.close()


async def test_a_shard_held_by_another_open_store_is_not_moved(tmp_path: Path) -> None:
    shard = tmp_path / "worker-0"
    holder = await opened(shard)
    try:
        with pytest.raises(Exception, match="WouldBlock"):
            await opened(shard)
        assert not list(tmp_path.glob("*.unreadable-*"))
    finally:
        await holder.close()


async def test_the_shards_one_payload_index_is_the_partition_bucket(tmp_path: Path) -> None:
    # Edge's keyword index keeps every value it has seen: one per context fingerprint would grow
    # the worker's memory with every new prompt. An index of 4096 buckets cannot.
    store = await opened(tmp_path / "shard")
    try:
        assert set(store._open_shard().info().payload_schema) == {PARTITION_FIELD}
    finally:
        await store.close()


async def test_a_shard_of_the_older_layout_loses_its_many_indexes_and_its_points_are_dropped(
    tmp_path: Path,
) -> None:
    path = tmp_path / "qdrant-edge" / "c__hashing-v1-512" / "worker-0"
    config = edge.EdgeConfig(
        vectors=edge.EdgeVectorParams(size=512, distance=edge.Distance.Cosine),
        optimizers=edge.EdgeOptimizersConfig(indexing_threshold=0),
    )
    old = edge.EdgeShard.create(str(path), config)
    for field in ("scope", "model", "params_fingerprint", "context_fingerprint"):
        old.update(edge.UpdateOperation.create_field_index(field, edge.PayloadSchemaType.Keyword))
    payload = record("old").as_payload()
    del payload[PARTITION_FIELD]  # as the first Edge layout wrote its points
    old.update(edge.UpdateOperation.upsert_points([edge.Point(0, [1.0] + [0.0] * 511, payload)]))
    old.flush()
    old.close()

    cache = ResponseCache(
        embedder=HashingEmbedder(),
        metrics=None,
        ttl_seconds=3600,
        timeout=5.0,
        semantic_enabled=True,
        semantic_threshold=0.9,
        collection="c",
        data_dir=tmp_path,
        clock=lambda: 1.0,
    )
    await cache.open()
    try:
        await cache.flush()
        health = await cache.health()
        assert (health["entries"], health["points"]) == (0, 0)  # unfindable: dropped, not served
    finally:
        await cache.close()
    reopened = await opened(path, dimensions=512)
    try:
        assert set(reopened._open_shard().info().payload_schema) == {PARTITION_FIELD}
    finally:
        await reopened.close()
