"""The local-mode semantic index: only the caller's partition, only live points, best first."""

from __future__ import annotations

import pytest

from llm_gateway.cache.local_index import SemanticIndex


def unit(*values: float) -> list[float]:
    norm = sum(v * v for v in values) ** 0.5
    return [v / norm for v in values]


def test_the_most_similar_live_point_of_the_partition_wins() -> None:
    index = SemanticIndex(dimensions=3)
    index.put("p", "near", unit(1, 0.1, 0), expires_at=100)
    index.put("p", "far", unit(0, 1, 0), expires_at=100)
    index.put("other", "exact-but-elsewhere", unit(1, 0, 0), expires_at=100)
    best = index.best("p", unit(1, 0, 0), now=0, threshold=0.5)
    assert best is not None
    assert best[0] == "near"
    assert best[1] == pytest.approx(0.995, abs=1e-3)


def test_nothing_below_the_threshold_or_expired_or_in_an_unknown_partition_matches() -> None:
    index = SemanticIndex(dimensions=2)
    index.put("p", "a", unit(1, 1), expires_at=10)
    assert index.best("p", unit(1, 0), now=0, threshold=0.8) is None
    assert index.best("p", unit(1, 1), now=10, threshold=0.5) is None
    assert index.best("q", unit(1, 1), now=0, threshold=0.5) is None


def test_putting_the_same_id_again_replaces_its_vector_and_expiry() -> None:
    index = SemanticIndex(dimensions=2)
    index.put("p", "a", unit(1, 0), expires_at=10)
    index.put("p", "a", unit(0, 1), expires_at=50)
    assert len(index) == 1
    assert index.best("p", unit(1, 0), now=20, threshold=0.5) is None
    assert index.best("p", unit(0, 1), now=20, threshold=0.5) == ("a", pytest.approx(1.0))


def test_dropping_expired_points_keeps_the_live_ones_searchable() -> None:
    index = SemanticIndex(dimensions=2)
    for i in range(20):  # past the initial capacity, so the partition grows
        index.put("p", f"old-{i}", unit(1, i / 100), expires_at=10)
    index.put("p", "live", unit(0, 1), expires_at=100)
    dropped = index.drop_expired(now=10)
    assert sorted(dropped) == sorted(f"old-{i}" for i in range(20))
    assert len(index) == 1
    assert index.best("p", unit(0, 1), now=10, threshold=0.9) == ("live", pytest.approx(1.0))
    assert index.drop_expired(now=10) == []


def test_a_vector_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        SemanticIndex(dimensions=4).put("p", "a", [1.0, 0.0], expires_at=1)


def test_a_removed_point_no_longer_matches_and_the_others_still_do() -> None:
    index = SemanticIndex(2)
    index.put("p", "first", [1.0, 0.0], expires_at=100)
    index.put("p", "second", [0.0, 1.0], expires_at=100)
    index.put("p", "third", [1.0, 1.0], expires_at=100)
    index.remove("first")
    index.remove("unknown")  # no-op
    assert len(index) == 2
    assert "first" not in index
    assert index.best("p", [1.0, 0.0], now=0, threshold=0.99) is None
    assert index.best("p", [0.0, 1.0], now=0, threshold=0.99) == ("second", 1.0)
    best = index.best("p", [1.0, 1.0], now=0, threshold=0.99)
    assert best is not None and best[0] == "third"
    index.remove("second")
    index.remove("third")
    assert len(index) == 0
    assert index.best("p", [1.0, 1.0], now=0, threshold=0.0) is None
