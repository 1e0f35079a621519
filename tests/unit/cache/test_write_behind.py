"""WriteBehind: stores are queued and written in batches by one background task."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

import pytest

from llm_gateway.cache.answer_store import AnswerStore
from llm_gateway.cache.records import AnswerRecord, PendingPoint
from llm_gateway.cache.write_behind import WriteBehind
from tests.support.logs import capture_json_logs


class RecordingStore:
    """Stands in for AnswerStore.write (the only method WriteBehind calls)."""

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[tuple[list[str], list[str]]] = []
        self.fail = fail

    async def write(self, points: Sequence[PendingPoint], deletes: Sequence[str]) -> None:
        if self.fail:
            raise ConnectionError("qdrant down")
        self.batches.append(([p.point_id for p in points], list(deletes)))


def record(key: str) -> AnswerRecord:
    return AnswerRecord(key, "shared", "m", "p", "c", 0.0, 10.0, {"answer": key})


def writer_for(store: RecordingStore | None, **options: Any) -> WriteBehind:
    return WriteBehind(lambda: cast(AnswerStore | None, store), **options)


async def test_queued_points_are_written_in_batches_of_the_batch_size() -> None:
    store = RecordingStore()
    writer = writer_for(store, batch_size=3, interval=3600)
    for i in range(7):
        writer.upsert(f"id-{i}", [1.0], record(str(i)))
    assert writer.pending == 7
    assert await writer.flush() == 7
    assert [len(points) for points, _ in store.batches] == [3, 3, 1]
    assert writer.pending == 0


async def test_a_full_batch_wakes_the_background_task_before_the_interval() -> None:
    store = RecordingStore()
    writer = writer_for(store, batch_size=2, interval=3600)
    writer.start()
    try:
        writer.upsert("a", [1.0], record("a"))
        await asyncio.sleep(0.05)
        assert store.batches == []  # one point waits for the interval
        writer.upsert("b", [1.0], record("b"))
        async with asyncio.timeout(5):
            while not store.batches:
                await asyncio.sleep(0.001)
        assert store.batches == [(["a", "b"], [])]
    finally:
        await writer.close()


async def test_the_interval_flushes_a_partial_batch() -> None:
    store = RecordingStore()
    writer = writer_for(store, batch_size=64, interval=0.01)
    writer.start()
    try:
        writer.upsert("a", [1.0], record("a"))
        async with asyncio.timeout(5):
            while not store.batches:
                await asyncio.sleep(0.001)
    finally:
        await writer.close()
    assert store.batches == [(["a"], [])]


async def test_a_delete_replaces_a_queued_upsert_and_an_upsert_a_queued_delete() -> None:
    store = RecordingStore()
    writer = writer_for(store, interval=3600)
    writer.upsert("a", [1.0], record("a"))
    writer.delete("a")
    writer.delete("b")
    writer.upsert("b", [1.0], record("b"))
    await writer.flush()
    assert store.batches == [(["b"], ["a"])]


async def test_close_writes_what_is_still_queued() -> None:
    store = RecordingStore()
    writer = writer_for(store, interval=3600)
    writer.start()
    writer.upsert("a", [1.0], record("a"))
    await writer.close()
    assert store.batches == [(["a"], [])]


async def test_the_queue_waits_for_a_store_that_is_not_open_and_is_bounded() -> None:
    store: RecordingStore | None = None
    failures: list[tuple[BaseException | None, int]] = []
    writer = WriteBehind(
        lambda: cast(AnswerStore | None, store),
        batch_size=2,
        max_pending=3,
        on_failure=lambda exc, dropped: failures.append((exc, dropped)),
    )
    with capture_json_logs() as logs:
        for i in range(4):
            writer.upsert(f"id-{i}", [1.0], record(str(i)))
        assert await writer.flush() == 0
    assert writer.pending == 3  # the oldest was dropped past the bound
    assert failures == [(None, 1)]
    (event,) = logs.events("cache_store_failed")
    assert (event["error"], event["dropped"]) == ("QueueFull", 1)
    store = RecordingStore()
    assert await writer.flush() == 3
    assert store.batches == [(["id-1", "id-2"], []), (["id-3"], [])]


async def test_a_failed_batch_is_reported_and_dropped_without_raising() -> None:
    store = RecordingStore(fail=True)
    failures: list[tuple[BaseException | None, int]] = []
    writer = writer_for(
        store, interval=3600, on_failure=lambda exc, dropped: failures.append((exc, dropped))
    )
    writer.upsert("a", [1.0], record("a"))
    writer.delete("b")
    with capture_json_logs() as logs:
        assert await writer.flush() == 0
    assert [(type(exc).__name__, dropped) for exc, dropped in failures] == [("ConnectionError", 2)]
    assert logs.events("cache_store_failed")[0]["error"] == "ConnectionError"
    assert writer.pending == 0


async def test_drops_under_overload_are_counted_each_time_and_logged_once_per_window() -> None:
    now = [100.0]
    failures: list[tuple[BaseException | None, int]] = []
    writer = WriteBehind(
        lambda: None,  # a store that never catches up
        batch_size=1,
        max_pending=2,
        on_failure=lambda exc, dropped: failures.append((exc, dropped)),
        report_every=10.0,
        clock=lambda: now[0],
    )
    with capture_json_logs() as logs:
        for i in range(7):  # 5 past the bound
            writer.upsert(f"id-{i}", [1.0], record(str(i)))
        now[0] += 9.0
        writer.upsert("id-7", [1.0], record("7"))  # still inside the window: counted only
        now[0] += 1.0
        writer.upsert("id-8", [1.0], record("8"))  # the window is over: one line, the total
        writer.upsert("id-9", [1.0], record("9"))
        await writer.close()  # reports what is left
    assert failures == [(None, 1)] * 8
    assert [e["dropped"] for e in logs.events("cache_store_failed")] == [1, 6, 1]
    assert writer.pending == 2


async def test_a_queued_vector_is_kept_at_qdrants_precision_not_as_python_floats() -> None:
    written: list[PendingPoint] = []

    class KeepingStore:
        async def write(self, points: Sequence[PendingPoint], deletes: Sequence[str]) -> None:
            written.extend(points)

    store = KeepingStore()
    writer = WriteBehind(lambda: cast(AnswerStore, store), interval=3600)
    writer.upsert("a", [0.1] * 512, record("a"))
    assert await writer.flush() == 1
    (point,) = written
    assert (point.vector.typecode, len(point.vector)) == ("f", 512)  # 2 KB, not ~16 KB of floats
    assert point.vector.tolist()[0] == pytest.approx(0.1)
