"""The embedded store at startup: the shard's live answers fill the worker's answer table.

On the embedded store the worker's answer table (lru.py) says what its shard holds and in which
slot (point_slots.py), so opening the store reads every point's payload back once (no vectors:
the semantic tier searches the shard itself). The most recent answers are kept up to the bound;
points that are expired, unreadable, duplicated, past a smaller bound or of an older layout
are deleted (with the next write batch), and a kept answer whose id is not a slot of this
bound is rewritten into one (with its vector, read for those few points only).
"""

from __future__ import annotations

from typing import Any

from llm_gateway.cache.answer_store import AnswerStore
from llm_gateway.cache.lru import ExactLru
from llm_gateway.cache.point_slots import PointSlots
from llm_gateway.cache.records import PARTITION_FIELD, AnswerRecord, PointId, answer_body
from llm_gateway.cache.write_behind import WriteBehind


def _current(payload: dict[str, Any]) -> bool:
    # Points of an older layout (no exact key, no partition bucket) cannot be found: dropped.
    return "key" in payload and PARTITION_FIELD in payload


async def warm_table(
    store: AnswerStore, *, lru: ExactLru, slots: PointSlots, writer: WriteBehind, now: float
) -> None:
    """Answers the table already holds (stored while the store was down) win over their older
    copies."""

    def drop(point_id: PointId) -> None:
        # Not when the slot now belongs to an answer queued while the store was down.
        if not (isinstance(point_id, int) and slots.taken(point_id)):
            writer.delete(point_id)

    live: list[tuple[float, PointId, dict[str, Any], bytes]] = []
    async for point_id, payload in store.scroll_all():
        body = answer_body(payload)
        if body is None or not _current(payload) or float(payload["expires_at"]) <= now:
            drop(point_id)
        else:
            live.append((float(payload["created_at"]), point_id, payload, body))
    live.sort(key=lambda item: item[0], reverse=True)  # the most recent are kept
    kept: list[tuple[PointId, dict[str, Any], bytes, bool]] = []
    seen: set[str] = set()
    for _, point_id, payload, body in live:
        key = str(payload["key"])
        if key in seen or key in lru or len(kept) + len(lru) >= slots.capacity:
            if slots.of(key) != point_id:
                drop(point_id)
            continue
        seen.add(key)
        adopted = slots.adopt(key, point_id)
        if not adopted:
            drop(point_id)
        kept.append((point_id, payload, body, adopted))
    for point_id, payload, body, adopted in reversed(kept):  # oldest first
        key = str(payload["key"])
        created_at, expires_at = float(payload["created_at"]), float(payload["expires_at"])
        lru.put_body(key, body, created_at, expires_at)
        vector = None if adopted else await store.vector(point_id)
        if vector is not None:
            record = AnswerRecord(
                key=key,
                scope=str(payload["scope"]),
                model=str(payload["model"]),
                params_fingerprint=str(payload["params_fingerprint"]),
                context_fingerprint=str(payload["context_fingerprint"]),
                created_at=created_at,
                expires_at=expires_at,
                payload=body.decode(),
            )
            writer.upsert(slots.assign(key), vector, record)
