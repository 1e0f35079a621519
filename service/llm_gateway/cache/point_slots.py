"""Point ids for a worker's private store (its Qdrant Edge shard): a fixed range of integers,
reused.

Qdrant Edge keeps a deleted point's vector and payload in its segment until the segment is
vacuumed, so a cache that evicts and adds points all day under ids of their own grows its shard
(and the worker's RSS, ~2 KB a point for 512 dimensions) without end however small its bound;
vacuuming (EdgeShard.optimize) was measured to raise RSS further rather than give memory back
(bench/RESULTS.md). Overwriting an existing id stays in place. So on the embedded store an
answer is not stored under an id derived from its key (uuid5, as on a shared server, where every
worker must find it by key) but in one of CACHE_MAX_ENTRIES numbered slots: the answer that
replaces an evicted one overwrites its slot, and the shard never holds more than the bound. The
slot's payload keeps the exact key, so a restart rebuilds the key -> slot map.
"""

from __future__ import annotations


class PointSlots:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("PointSlots needs a capacity of at least one")
        self.capacity = capacity
        self._slot_of: dict[str, int] = {}
        self._free: set[int] = set()
        self._next = 0  # slots from here on were never handed out

    def __len__(self) -> int:
        return len(self._slot_of)

    def of(self, key: str) -> int | None:
        return self._slot_of.get(key)

    def assign(self, key: str) -> int:
        """The key's slot: its own if it has one, else a free one. Raises when every slot is
        taken (the caller keeps no more slotted keys than its bound, so that is a bug)."""
        slot = self._slot_of.get(key)
        if slot is not None:
            return slot
        if self._free:
            slot = self._free.pop()
        elif self._next < self.capacity:
            slot = self._next
            self._next += 1
        else:
            raise RuntimeError("every cache slot is taken")
        self._slot_of[key] = slot
        return slot

    def release(self, key: str) -> int | None:
        """Free the key's slot; returns it (None when the key had none)."""
        slot = self._slot_of.pop(key, None)
        if slot is not None:
            self._free.add(slot)
        return slot

    def taken(self, slot: int) -> bool:
        return 0 <= slot < self._next and slot not in self._free

    def adopt(self, key: str, slot: object) -> bool:
        """At startup: take over a slot found in the folder. False when it cannot be one of
        ours (out of range after CACHE_MAX_ENTRIES shrank, a uuid id from an older layout, a
        second copy of a key): the caller deletes that point."""
        if not isinstance(slot, int) or not 0 <= slot < self.capacity or key in self._slot_of:
            return False
        if slot >= self._next:
            self._free.update(range(self._next, slot))
            self._next = slot + 1
        elif slot in self._free:
            self._free.remove(slot)
        else:
            return False  # already adopted by another key
        self._slot_of[key] = slot
        return True
