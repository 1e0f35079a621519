"""The exact-tier LRU: bounded, least recently used out first, never serves an expired answer."""

from __future__ import annotations

import pytest

from llm_gateway.cache.lru import ExactLru


def test_the_least_recently_used_entry_is_evicted_first() -> None:
    lru = ExactLru(max_entries=2)
    lru.put("a", {"v": "a"}, 0, 100)
    lru.put("b", {"v": "b"}, 0, 100)
    assert lru.get("a", 1) is not None  # "a" is now the most recent
    lru.put("c", {"v": "c"}, 0, 100)
    assert len(lru) == 2
    assert lru.get("b", 1) is None
    assert lru.get("a", 1) == ({"v": "a"}, 0)
    assert lru.get("c", 1) == ({"v": "c"}, 0)


def test_an_expired_entry_is_dropped_on_read() -> None:
    lru = ExactLru(max_entries=4)
    lru.put("k", {"v": 1}, created_at=10, expires_at=20)
    assert lru.get("k", 19.9) == ({"v": 1}, 10)
    assert lru.get("k", 20) is None
    assert len(lru) == 0


def test_a_table_without_room_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one entry"):
        ExactLru(max_entries=0)


def test_every_entry_that_leaves_is_reported_once() -> None:
    gone: list[str] = []
    lru = ExactLru(max_entries=2, on_evict=gone.append)
    lru.put("a", {}, 0, 10)
    lru.put("b", {}, 0, 100)
    lru.put("b", {"v": 2}, 0, 100)  # replacing is not leaving
    lru.put("c", {}, 0, 100)  # pushes out "a", the least recent
    assert gone == ["a"]
    assert lru.get("b", 100) is None  # expired on read
    assert gone == ["a", "b"]
    lru.put("d", {}, 0, 50)
    assert lru.drop_expired(60) == 1
    assert gone == ["a", "b", "d"]
    lru.pop("c")
    lru.pop("c")
    assert gone == ["a", "b", "d", "c"]
    assert len(lru) == 0
