"""The exact-tier LRU: bounded, least recently used out first, never serves an expired answer."""

from __future__ import annotations

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


def test_a_zero_size_lru_holds_nothing() -> None:
    lru = ExactLru(max_entries=0)
    lru.put("k", {"v": 1}, 0, 100)
    assert lru.get("k", 1) is None
