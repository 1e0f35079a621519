"""PointSlots: local mode stores answers in a fixed range of reused point ids."""

from __future__ import annotations

import pytest

from llm_gateway.cache.point_slots import PointSlots


def test_a_key_keeps_its_slot_and_a_released_slot_is_reused() -> None:
    slots = PointSlots(capacity=2)
    assert (slots.assign("a"), slots.assign("b"), slots.assign("a")) == (0, 1, 0)
    with pytest.raises(RuntimeError, match="every cache slot is taken"):
        slots.assign("c")
    assert slots.release("a") == 0
    assert slots.release("a") is None
    assert slots.assign("c") == 0
    assert (slots.of("c"), slots.of("a"), len(slots)) == (0, None, 2)


@pytest.mark.parametrize(
    ("found", "adopted"),
    [
        pytest.param(3, True, id="a-slot-in-range"),
        pytest.param(4, False, id="a-slot-past-a-smaller-bound"),
        pytest.param(-1, False, id="a-negative-id"),
        pytest.param("6f1c1d1e-2a7b-5c39-9d43-8e0b7a4c2f10", False, id="an-old-layout-uuid"),
    ],
)
def test_startup_adopts_only_slots_of_the_current_bound(found: object, adopted: bool) -> None:
    slots = PointSlots(capacity=4)
    assert slots.adopt("key", found) is adopted


def test_adopted_slots_are_skipped_and_the_gaps_handed_out() -> None:
    slots = PointSlots(capacity=4)
    assert slots.adopt("x", 2)
    assert not slots.adopt("y", 2)  # taken by another key
    assert not slots.adopt("x", 1)  # a second copy of a key
    assert slots.taken(2) and not slots.taken(0) and not slots.taken(3)
    assert sorted(slots.assign(key) for key in "abc") == [0, 1, 3]
