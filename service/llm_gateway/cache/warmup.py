"""The embedded store at startup: the shard's live answers fill the worker's tables.

On the embedded store the worker's tables (lru.py, local_index.py) answer every lookup and the
worker's shard only persists them, so opening the store reads every point back once. The most recent
answers are kept up to the bound; points that are expired, unreadable, duplicated, past a smaller
bound or under an older layout's id are deleted (with the next write batch), and a kept answer
whose id is not a slot of this bound is moved into one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llm_gateway.cache.answer_store import AnswerStore
from llm_gateway.cache.local_index import SemanticIndex, partition_key
from llm_gateway.cache.lru import ExactLru
from llm_gateway.cache.point_slots import PointSlots
from llm_gateway.cache.records import AnswerRecord, PointId, answer_body
from llm_gateway.cache.write_behind import WriteBehind


async def warm_tables(
    store: AnswerStore,
    *,
    lru: ExactLru,
    slots: PointSlots,
    writer: WriteBehind,
    index_for: Callable[[list[float]], SemanticIndex] | None,
    now: float,
) -> None:
    """`index_for` gives the semantic index for a vector (None: semantic tier off). Answers the
    tables already hold (stored while the store was down) win over their older copies."""

    def drop(point_id: PointId) -> None:
        # Not when the slot now belongs to an answer queued while the store was down.
        if not (isinstance(point_id, int) and slots.taken(point_id)):
            writer.delete(point_id)

    live: list[tuple[float, PointId, list[float], dict[str, Any], bytes]] = []
    async for point_id, vector, payload in store.scroll_all():
        body = answer_body(payload)
        if body is None or "key" not in payload or float(payload["expires_at"]) <= now:
            drop(point_id)
        else:
            live.append((float(payload["created_at"]), point_id, vector, payload, body))
    live.sort(key=lambda item: item[0], reverse=True)  # the most recent are kept
    kept: list[tuple[float, list[float], dict[str, Any], bytes, bool]] = []
    seen: set[str] = set()
    for created_at, point_id, vector, payload, body in live:
        key = str(payload["key"])
        if key in seen or key in lru or len(kept) + len(lru) >= slots.capacity:
            if slots.of(key) != point_id:
                drop(point_id)
            continue
        seen.add(key)
        adopted = slots.adopt(key, point_id)
        if not adopted:
            drop(point_id)
        kept.append((created_at, vector, payload, body, adopted))
    for created_at, vector, payload, body, adopted in reversed(kept):  # oldest first
        key, expires_at = str(payload["key"]), float(payload["expires_at"])
        params, context = str(payload["params_fingerprint"]), str(payload["context_fingerprint"])
        lru.put_body(key, body, created_at, expires_at)
        if index_for is not None:
            index_for(vector).put(partition_key(params, context), key, vector, expires_at)
        if not adopted:
            record = AnswerRecord(
                key=key,
                scope=str(payload["scope"]),
                model=str(payload["model"]),
                params_fingerprint=params,
                context_fingerprint=context,
                created_at=created_at,
                expires_at=expires_at,
                payload=body.decode(),
            )
            writer.upsert(slots.assign(key), vector, record)
