"""Point ids for a worker's private store (Qdrant local mode): a fixed range of integers, reused.

Qdrant local mode never gives memory back for a deleted point: `delete` only marks it, and the
point's payload and vector stay in the collection's Python lists and arrays until the folder is
reopened (and adding a new point copies the growing `deleted` mask). A cache that evicts and adds
points all day would therefore grow without end however small its bound. So in local mode an
answer is not stored under an id derived from its key (uuid5, as on a shared server, where every
worker must find it by key) but in one of CACHE_MAX_ENTRIES numbered slots: the answer that
replaces an evicted one overwrites its slot in place, and the collection never holds more than
the bound. The slot's payload keeps the exact key, so a restart rebuilds the key -> slot map.
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
