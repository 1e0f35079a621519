"""The AnswerStore contract, run against both stores: Qdrant Edge (the embedded default) in a
tmp folder, and the qdrant-client store, with qdrant-client's local mode standing in for a
Qdrant server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from llm_gateway.cache.answer_store import AnswerStore
from llm_gateway.cache.edge_store import EdgeStore
from llm_gateway.cache.records import AnswerRecord, PendingPoint, PointId


def record(key: str, *, scope: str = "shared", expires_at: float = 100.0) -> AnswerRecord:
    return AnswerRecord(
        key=key,
        scope=scope,
        model="m",
        params_fingerprint=f"params-{scope}",
        context_fingerprint="ctx",
        created_at=0.0,
        expires_at=expires_at,
        payload={"answer": key},
    )


async def edge_shard(path: Path) -> AnswerStore:
    store = EdgeStore(path, collection="c", dimensions=2)
    await store.open()
    return store


@pytest.fixture(params=["edge", "qdrant-client"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AnswerStore]:
    if request.param == "edge":
        store = await edge_shard(tmp_path / "shard")
    else:
        from llm_gateway.cache.store import QdrantStore

        store = QdrantStore(
            collection="c", dimensions=2, embedder_name="test", local_path=tmp_path / "q"
        )
        await store.open()
    yield store
    await store.close()


async def upsert(
    store: AnswerStore, point_id: PointId, vector: list[float], record: AnswerRecord
) -> None:
    await store.write([PendingPoint.of(point_id, vector, record)], [])


async def search(store: AnswerStore, vector: list[float], scope: str, now: float) -> str | None:
    found = await store.search(
        vector,
        scope=scope,
        model="m",
        params_fingerprint=f"params-{scope}",
        context_fingerprint="ctx",
        now=now,
        threshold=0.9,
    )
    return None if found is None else found[0].payload["answer"]


async def test_search_sees_only_its_scope_and_live_points(store: AnswerStore) -> None:
    await upsert(
        store,
        "00000000-0000-0000-0000-000000000001",
        [1.0, 0.0],
        record("alice-a", scope="user:alice"),
    )
    await upsert(
        store,
        "00000000-0000-0000-0000-000000000002",
        [1.0, 0.01],
        record("bob-a", scope="user:bob", expires_at=50),
    )
    assert await search(store, [1.0, 0.0], "user:alice", now=10) == "alice-a"
    assert await search(store, [1.0, 0.0], "user:bob", now=10) == "bob-a"
    assert await search(store, [1.0, 0.0], "user:bob", now=50) is None
    assert await search(store, [0.0, 1.0], "user:alice", now=10) is None
    assert await search(store, [1.0, 0.0], "user:carol", now=10) is None


async def test_purge_deletes_only_expired_points(store: AnswerStore) -> None:
    await upsert(
        store, "00000000-0000-0000-0000-000000000001", [1.0, 0.0], record("old", expires_at=10)
    )
    await upsert(
        store, "00000000-0000-0000-0000-000000000002", [0.0, 1.0], record("new", expires_at=99)
    )
    assert await store.purge_expired(now=10) == 1
    assert await store.count() == 1
    assert await store.get("00000000-0000-0000-0000-000000000001") is None
    assert await search(store, [0.0, 1.0], "shared", now=10) == "new"


async def test_one_batch_deletes_then_upserts_many_points(store: AnswerStore) -> None:
    first, second, third = (f"00000000-0000-0000-0000-00000000000{i}" for i in (1, 2, 3))
    await upsert(store, first, [1.0, 0.0], record("first"))
    await store.write(
        [
            PendingPoint.of(second, [0.0, 1.0], record("second")),
            PendingPoint.of(third, [1.0, 1.0], record("third")),
        ],
        [first],
    )
    assert await store.count() == 2
    assert await store.get(first) is None
    assert [point_id async for point_id, _ in store.scroll_all()] == [second, third]


async def test_a_points_vector_reads_back_at_float32_precision(store: AnswerStore) -> None:
    point = "00000000-0000-0000-0000-000000000001"
    await upsert(store, point, [0.6, 0.8], record("kept"))
    vector = await store.vector(point)
    assert vector is not None and vector == pytest.approx([0.6, 0.8], abs=1e-6)
    assert await store.vector("00000000-0000-0000-0000-000000000009") is None


async def test_what_was_written_is_there_after_close_and_reopen(tmp_path: Path) -> None:
    first = await edge_shard(tmp_path / "shard")
    await upsert(first, "00000000-0000-0000-0000-000000000001", [1.0, 0.0], record("kept"))
    await first.close()
    second = await edge_shard(tmp_path / "shard")
    try:
        stored = await second.get("00000000-0000-0000-0000-000000000001")
        assert stored is not None and stored.payload == {"answer": "kept"}
    finally:
        await second.close()
