from __future__ import annotations

import pytest

from llm_gateway.resilience.deadline import Deadline
from tests.unit.resilience.fakes import FakeClock


def test_remaining_counts_down_with_the_clock_and_never_goes_negative() -> None:
    clock = FakeClock()
    deadline = Deadline(10, clock=clock)
    assert deadline.remaining() == 10
    clock.advance(4)
    assert deadline.remaining() == 6
    assert not deadline.expired
    clock.advance(7)
    assert deadline.remaining() == 0
    assert deadline.expired


@pytest.mark.parametrize(
    ("elapsed", "timeout", "expected"),
    [
        pytest.param(0, 3, 3, id="plenty-of-time-keeps-the-timeout"),
        pytest.param(8, 3, 2, id="near-the-end-shortens-it"),
        pytest.param(12, 3, 0, id="after-the-end-gives-nothing"),
    ],
)
def test_cap_gives_the_smaller_of_timeout_and_remaining(
    elapsed: float, timeout: float, expected: float
) -> None:
    clock = FakeClock()
    deadline = Deadline(10, clock=clock)
    clock.advance(elapsed)
    assert deadline.cap(timeout) == expected


def test_a_deadline_must_have_a_positive_duration() -> None:
    with pytest.raises(ValueError, match="positive"):
        Deadline(0)
