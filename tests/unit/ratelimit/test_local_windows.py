"""The in-process moving window behind `memory://`, on an injected clock."""

from __future__ import annotations

import pytest

from llm_gateway.errors import RateLimited
from llm_gateway.ratelimit.limiter import RateLimiter
from llm_gateway.ratelimit.local_windows import LocalWindows


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_hits_are_allowed_until_the_window_is_full_and_refusals_are_not_counted() -> None:
    clock = Clock()
    windows = LocalWindows(clock=clock)
    results = []
    for _ in range(5):
        results.append(windows.hit("k", limit=3, expiry=60))
        clock.now += 1
    assert [r.allowed for r in results] == [True, True, True, False, False]
    assert [r.remaining for r in results] == [2, 1, 0, 0, 0]
    # The window resets when its oldest counted hit (t=1000) leaves it.
    assert {r.reset_at for r in results} == {1_060.0}


def test_a_window_moves_hit_by_hit_rather_than_resetting_at_once() -> None:
    clock = Clock()
    windows = LocalWindows(clock=clock)
    for offset in (0, 10, 20):
        clock.now = 1_000 + offset
        assert windows.hit("k", limit=3, expiry=60).allowed
    clock.now = 1_059.9
    assert not windows.hit("k", limit=3, expiry=60).allowed
    clock.now = 1_060.5  # only the first hit has left the window
    hit = windows.hit("k", limit=3, expiry=60)
    assert hit.allowed
    assert hit.remaining == 0
    assert hit.reset_at == 1_070.0
    assert not windows.hit("k", limit=3, expiry=60).allowed


def test_keys_count_apart() -> None:
    windows = LocalWindows(clock=Clock())
    assert windows.hit("a", limit=1, expiry=60).allowed
    assert windows.hit("b", limit=1, expiry=60).allowed
    assert not windows.hit("a", limit=1, expiry=60).allowed


def test_idle_windows_are_swept_out_but_live_ones_keep_their_counts() -> None:
    clock = Clock()
    windows = LocalWindows(clock=clock, sweep_every_seconds=30)
    for n in range(100):
        windows.hit(f"one-off-{n}", limit=5, expiry=10)
    clock.now += 25
    windows.hit("live", limit=2, expiry=60)
    assert len(windows) == 101
    clock.now += 10  # past the sweep time: the one-off windows are empty by now
    hit = windows.hit("live", limit=2, expiry=60)
    assert len(windows) == 1
    assert hit.remaining == 0
    assert not windows.hit("live", limit=2, expiry=60).allowed


@pytest.mark.parametrize(
    "uri", [pytest.param("memory://", id="memory"), pytest.param("async+memory://", id="async")]
)
async def test_the_limiter_counts_memory_uris_locally_on_its_clock(uri: str) -> None:
    clock = Clock()
    limiter = RateLimiter(uri, "2/minute", "60/minute", "5/minute", None, clock=clock)
    await limiter.open()
    try:
        first = await limiter.check_user("alice")
        clock.now += 30
        await limiter.check_user("alice")
        with pytest.raises(RateLimited) as caught:
            await limiter.check_user("alice")
        assert first is not None and first.reset_at == 1_060.0
        assert caught.value.retry_after == pytest.approx(30.0)
        clock.now += 31  # the first hit has left the window
        status = await limiter.check_user("alice")
        assert status is not None and status.remaining == 0
    finally:
        await limiter.close()
