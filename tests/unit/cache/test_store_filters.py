"""QdrantStore's filtered query (the server-mode path), run against qdrant-client local mode."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from llm_gateway.cache.records import AnswerRecord, PendingPoint
from llm_gateway.cache.store import QdrantStore


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


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[QdrantStore]:
    store = QdrantStore(
        collection="c", dimensions=2, embedder_name="test", local_path=tmp_path / "q"
    )
    await store.open()
    yield store
    await store.close()


async def search(store: QdrantStore, vector: list[float], scope: str, now: float) -> str | None:
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


async def test_search_sees_only_its_scope_and_live_points(store: QdrantStore) -> None:
    await store.upsert(
        "00000000-0000-0000-0000-000000000001", [1.0, 0.0], record("alice-a", scope="user:alice")
    )
    await store.upsert(
        "00000000-0000-0000-0000-000000000002",
        [1.0, 0.01],
        record("bob-a", scope="user:bob", expires_at=50),
    )
    assert await search(store, [1.0, 0.0], "user:alice", now=10) == "alice-a"
    assert await search(store, [1.0, 0.0], "user:bob", now=10) == "bob-a"
    assert await search(store, [1.0, 0.0], "user:bob", now=50) is None
    assert await search(store, [0.0, 1.0], "user:alice", now=10) is None
    assert await search(store, [1.0, 0.0], "user:carol", now=10) is None


async def test_purge_deletes_only_expired_points(store: QdrantStore) -> None:
    await store.upsert(
        "00000000-0000-0000-0000-000000000001", [1.0, 0.0], record("old", expires_at=10)
    )
    await store.upsert(
        "00000000-0000-0000-0000-000000000002", [0.0, 1.0], record("new", expires_at=99)
    )
    assert await store.purge_expired(now=10) == 1
    assert await store.count() == 1
    assert await store.get("00000000-0000-0000-0000-000000000001") is None
    assert await search(store, [0.0, 1.0], "shared", now=10) == "new"


async def test_one_batch_deletes_then_upserts_many_points(store: QdrantStore) -> None:
    first, second, third = (f"00000000-0000-0000-0000-00000000000{i}" for i in (1, 2, 3))
    await store.upsert(first, [1.0, 0.0], record("first"))
    await store.write(
        [
            PendingPoint.of(second, [0.0, 1.0], record("second")),
            PendingPoint.of(third, [1.0, 1.0], record("third")),
        ],
        [first],
    )
    assert await store.count() == 2
    assert await store.get(first) is None
    assert [point_id async for point_id, _, _ in store.scroll_all()] == [second, third]


async def test_local_mode_commits_through_a_write_ahead_log_without_an_fsync_each(
    store: QdrantStore, tmp_path: Path
) -> None:
    # If a qdrant-client release moves the connection, this fails instead of a silent slowdown.
    assert store.durable_commits is False
    await store.upsert("00000000-0000-0000-0000-000000000001", [1.0, 0.0], record("a"))
    assert list((tmp_path / "q").rglob("*.sqlite-wal")) or list((tmp_path / "q").rglob("*-wal"))
