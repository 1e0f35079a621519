"""EdgeStore's own promises: a killed worker's shard opens again with what it wrote; a shard
that cannot be opened is moved aside with one WARNING and a fresh one is used; a shard another
process holds is left alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from llm_gateway.cache.edge_store import EdgeStore
from llm_gateway.cache.records import AnswerRecord, PendingPoint
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
