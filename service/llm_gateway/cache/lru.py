"""A small bounded in-process LRU in front of the exact tier.

Exact hits from here cost microseconds instead of a Qdrant round trip. Entries are kept as
serialized JSON so a caller that mutates the dict it was served cannot corrupt the next hit, and
each entry keeps its expiry so the LRU never serves what the store would refuse. It is per worker
process by nature; it only ever holds answers this worker stored or fetched.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True)
class LruEntry:
    body: bytes
    created_at: float
    expires_at: float


class ExactLru:
    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._entries: OrderedDict[str, LruEntry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, now: float) -> tuple[dict[str, Any], float] | None:
        """(payload, created_at) if present and not expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        payload: dict[str, Any] = orjson.loads(entry.body)
        return payload, entry.created_at

    def put(self, key: str, payload: dict[str, Any], created_at: float, expires_at: float) -> None:
        if self._max <= 0:
            return
        self._entries[key] = LruEntry(orjson.dumps(payload), created_at, expires_at)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
