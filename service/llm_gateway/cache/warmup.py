"""The embedded store at startup: the shard's live answers fill the worker's tables.

On the embedded store the worker's tables (lru.py, local_index.py) answer every lookup and the
worker's shard only persists them, so opening the store reads every point back once. The most
recent answers are kept up to the bound; points that are expired, unreadable or past a smaller
bound are deleted (with the next write batch).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llm_gateway.cache.answer_store import AnswerStore
from llm_gateway.cache.local_index import SemanticIndex, partition_key
from llm_gateway.cache.lru import ExactLru
from llm_gateway.cache.records import PointId, answer_body
from llm_gateway.cache.write_behind import WriteBehind


async def warm_tables(
    store: AnswerStore,
    *,
    lru: ExactLru,
    writer: WriteBehind,
    index_for: Callable[[list[float]], SemanticIndex] | None,
    now: float,
) -> None:
    """`index_for` gives the semantic index for a vector (None: semantic tier off). Answers the
    tables already hold (stored while the store was down) win over their older copies."""
    live: list[tuple[float, PointId, list[float], dict[str, Any], bytes]] = []
    async for point_id, vector, payload in store.scroll_all():
        body = answer_body(payload)
        if body is None or "key" not in payload or float(payload["expires_at"]) <= now:
            writer.delete(point_id)
        else:
            live.append((float(payload["created_at"]), point_id, vector, payload, body))
    live.sort(key=lambda item: item[0], reverse=True)  # the most recent are kept
    # A key the tables already hold has its newer copy queued (same point id): left alone.
    unheld = [item for item in live if str(item[3]["key"]) not in lru]
    room = max(0, lru.max_entries - len(lru))
    kept, past_bound = unheld[:room], unheld[room:]
    for _, point_id, _, _, _ in past_bound:
        writer.delete(point_id)
    for created_at, _, vector, payload, body in reversed(kept):  # oldest first
        key, expires_at = str(payload["key"]), float(payload["expires_at"])
        lru.put_body(key, body, created_at, expires_at)
        if index_for is not None:
            partition = partition_key(
                str(payload["params_fingerprint"]), str(payload["context_fingerprint"])
            )
            index_for(vector).put(partition, key, vector, expires_at)
