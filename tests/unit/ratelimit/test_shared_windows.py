"""The SQLite file behind `sqlite://`: one count for every handle (worker) that opens it."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_gateway.errors import RateLimited
from llm_gateway.ratelimit.limiter import RateLimiter
from llm_gateway.ratelimit.shared_windows import SharedWindows


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def two_workers(tmp_path: Path, clock: Clock) -> Iterator[tuple[SharedWindows, SharedWindows]]:
    # Two handles on one file, as two gunicorn workers hold them (each its own connection and
    # its own lock file descriptor).
    first = SharedWindows(tmp_path / "windows.sqlite3", clock=clock, sweep_every_seconds=60)
    second = SharedWindows(tmp_path / "windows.sqlite3", clock=clock, sweep_every_seconds=60)
    first.open()
    second.open()
    yield first, second
    first.close()
    second.close()


def hit(windows: SharedWindows, key: str = "k", limit: int = 3, expiry: float = 60.0) -> bool:
    results = windows.try_hit_all([(key, limit, expiry)])
    assert results is not None
    return results[0].allowed


def test_workers_share_one_count(two_workers: tuple[SharedWindows, SharedWindows]) -> None:
    first, second = two_workers
    assert [hit(first), hit(second), hit(first), hit(second)] == [True, True, True, False]


def test_refusals_are_not_counted_and_the_window_resets_with_its_oldest_hit(
    two_workers: tuple[SharedWindows, SharedWindows], clock: Clock
) -> None:
    first, second = two_workers
    results = []
    for handle in (first, second, first, second, first):
        (result,) = handle.try_hit_all([("k", 3, 60.0)]) or []
        results.append(result)
        clock.now += 1
    assert [r.allowed for r in results] == [True, True, True, False, False]
    assert [r.remaining for r in results] == [2, 1, 0, 0, 0]
    assert {r.reset_at for r in results} == {1_060.0}
    clock.now = 1_060.5  # the hit at t=1000 has left; refusals at 1003-1004 were never counted
    assert hit(second)


def test_a_request_stops_at_its_first_full_window(
    two_workers: tuple[SharedWindows, SharedWindows],
) -> None:
    first, second = two_workers
    assert hit(first, "ip", limit=1)
    results = second.try_hit_all([("ip", 1, 60.0), ("user", 5, 60.0)])
    assert results is not None and [r.allowed for r in results] == [False]
    # The refused request used nothing of the caller's window.
    (user,) = first.try_hit_all([("user", 5, 60.0)]) or []
    assert user.remaining == 4


def test_a_sibling_holding_the_file_makes_the_hit_wait_instead_of_blocking(
    two_workers: tuple[SharedWindows, SharedWindows], tmp_path: Path
) -> None:
    first, _second = two_workers
    sibling = os.open(tmp_path / "windows.sqlite3.lock", os.O_RDWR)
    fcntl.flock(sibling, fcntl.LOCK_EX)
    try:
        assert first.try_hit_all([("k", 3, 60.0)]) is None
    finally:
        fcntl.flock(sibling, fcntl.LOCK_UN)
        os.close(sibling)
    assert hit(first)


def test_windows_nobody_hits_any_more_are_swept(
    two_workers: tuple[SharedWindows, SharedWindows], clock: Clock
) -> None:
    first, _ = two_workers
    for n in range(50):
        hit(first, f"one-off-{n}")
    assert first.row_count() == 50
    clock.now += 61  # past both the windows and the sweep interval
    hit(first, "fresh")
    assert first.row_count() == 1


async def test_a_stopped_sibling_holding_the_file_costs_a_bounded_wait_then_the_failure_mode(
    tmp_path: Path,
) -> None:
    path = tmp_path / "windows.sqlite3"
    limiter = RateLimiter(
        f"sqlite://{path}",
        "3/minute",
        "3/minute",
        "3/minute",
        None,
        failure_mode="closed",
        storage_timeout=0.05,
    )
    await limiter.open()
    sibling = os.open(f"{path}.lock", os.O_RDWR)
    fcntl.flock(sibling, fcntl.LOCK_EX)
    try:
        with pytest.raises(Exception, match="rate-limit store is unavailable") as caught:
            await limiter.check_request("10.0.0.1", "user:alice")
        assert caught.value.__class__.__name__ == "RateLimitUnavailable"
    finally:
        fcntl.flock(sibling, fcntl.LOCK_UN)
        os.close(sibling)
        await limiter.close()


async def test_the_limiter_counts_a_request_in_one_shared_transaction(tmp_path: Path) -> None:
    uri = f"sqlite://{tmp_path / 'windows.sqlite3'}"
    workers = [RateLimiter(uri, "3/minute", "2/minute", "5/minute", None) for _ in range(2)]
    for limiter in workers:
        await limiter.open()
    try:
        first = await workers[0].check_request("10.0.0.1", "user:alice")
        assert first is not None and (first.limit, first.remaining) == (2, 1)
        await workers[1].check_request("10.0.0.1", "user:alice")
        with pytest.raises(RateLimited, match="per client address"):
            await workers[0].check_request("10.0.0.1", "user:alice")
        # Another address: the caller's own window (3/minute) has counted two hits.
        status = await workers[1].check_request("10.0.0.2", "user:alice")
        assert status is not None and (status.limit, status.remaining) == (3, 0)
    finally:
        for limiter in workers:
            await limiter.close()
