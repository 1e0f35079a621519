"""The per-worker table of cached answers: bounded, least recently used evicted first.

Exact hits from here cost microseconds instead of a Qdrant round trip. Entries are kept as
serialized JSON so a caller that mutates the dict it was served cannot corrupt the next hit, and
each entry keeps its expiry so the table never serves what the store would refuse.

The bound (CACHE_MAX_ENTRIES) is what keeps a worker's memory flat: without it only the TTL
removes entries, and a worker taking unique prompts grows until the TTL catches up. Every entry
that leaves (pushed out by the bound, expired on read, or purged) is reported to `on_evict`, so the
other tiers holding the same answer (the semantic index, the local Qdrant collection) drop it too.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class LruEntry:
    body: bytes
    created_at: float
    expires_at: float


def encode_payload(payload: dict[str, Any]) -> bytes:
    """An answer as the JSON bytes every exact tier keeps."""
    # orjson hands back its ~16 KB working buffer as the bytes object; kept as is, each entry
    # would pin 16 KB whatever its size. A copy is exactly as long as the JSON.
    return memoryview(orjson.dumps(payload)).tobytes()


def _ignore(key: str) -> None:
    return None


class ExactLru:
    def __init__(self, max_entries: int, on_evict: Callable[[str], None] = _ignore) -> None:
        if max_entries < 1:
            raise ValueError("the cache needs room for at least one entry")
        self._max = max_entries
        self._on_evict = on_evict
        self._entries: OrderedDict[str, LruEntry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    @property
    def max_entries(self) -> int:
        return self._max

    def get(self, key: str, now: float) -> tuple[dict[str, Any], float] | None:
        """(payload, created_at) if present and not expired; a hit becomes the most recent."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at <= now:
            self.pop(key)
            return None
        self._entries.move_to_end(key)
        payload: dict[str, Any] = orjson.loads(entry.body)
        return payload, entry.created_at

    def put(self, key: str, payload: dict[str, Any], created_at: float, expires_at: float) -> bytes:
        """Insert or replace as the most recent entry, evicting the least recent past the bound;
        returns the entry's JSON."""
        body = encode_payload(payload)
        self.put_body(key, body, created_at, expires_at)
        return body

    def put_body(self, key: str, body: bytes, created_at: float, expires_at: float) -> None:
        self._entries[key] = LruEntry(body, created_at, expires_at)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            oldest, _ = self._entries.popitem(last=False)
            self._on_evict(oldest)

    def pop(self, key: str) -> None:
        if self._entries.pop(key, None) is not None:
            self._on_evict(key)

    def drop_expired(self, now: float) -> int:
        """Remove every expired entry; returns how many."""
        expired = [key for key, entry in self._entries.items() if entry.expires_at <= now]
        for key in expired:
            self.pop(key)
        return len(expired)

    def clear(self) -> None:
        """Forget everything without reporting evictions (closing, not evicting)."""
        self._entries.clear()
