"""Dependency checks: concurrent, bounded by a timeout, cached for the TTL, shared in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from llm_gateway.health import Check, CheckFailed, HealthChecker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingCheck:
    def __init__(self, outcome: str = "up", delay: float = 0.0) -> None:
        self.calls = 0
        self.outcome = outcome
        self.delay = delay

    async def __call__(self) -> Mapping[str, Any] | None:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.outcome == "raise":
            raise ConnectionRefusedError("refused")
        if self.outcome == "failed":
            raise CheckFailed("circuit open", {"open": ["m1"]})
        return {"version": "1"}


def checker_of(checks: Mapping[str, Check], **options: Any) -> HealthChecker:
    health = HealthChecker(**options)
    for name, check in checks.items():
        health.register(name, check.run, cacheable=check.cacheable)
    return health


def test_checks_are_registered_once_each_in_order() -> None:
    health = HealthChecker(timeout=1, ttl=0)
    health.register("litellm", CountingCheck())
    health.register("circuit_breaker", CountingCheck(), cacheable=False)
    assert health.names == ["litellm", "circuit_breaker"]
    with pytest.raises(ValueError, match="'litellm' is already registered"):
        health.register("litellm", CountingCheck())


async def test_results_are_cached_for_the_ttl_then_refreshed() -> None:
    clock, check = FakeClock(), CountingCheck()
    checker = checker_of({"dep": Check(check)}, timeout=1, ttl=30, clock=clock)
    await checker.run()
    clock.now += 29
    await checker.run()
    assert check.calls == 1
    clock.now += 2
    result = (await checker.run())["dep"]
    assert check.calls == 2
    assert result.status == "up"
    assert result.details == {"version": "1"}


async def test_non_cacheable_checks_run_every_time() -> None:
    check = CountingCheck()
    checker = checker_of({"breaker": Check(check, cacheable=False)}, timeout=1, ttl=30)
    await checker.run()
    await checker.run()
    assert check.calls == 2


@pytest.mark.parametrize(
    ("outcome", "error"),
    [
        pytest.param("raise", "ConnectionRefusedError: refused", id="exception"),
        pytest.param("failed", "circuit open", id="check-failed"),
    ],
)
async def test_failures_are_reported_as_down_never_raised(outcome: str, error: str) -> None:
    checker = checker_of({"dep": Check(CountingCheck(outcome))}, timeout=1, ttl=0)
    result = (await checker.run())["dep"]
    assert result.status == "down"
    assert result.error == error


async def test_a_slow_check_is_down_after_the_timeout_and_others_still_answer() -> None:
    checker = checker_of(
        {"slow": Check(CountingCheck(delay=5)), "fast": Check(CountingCheck())},
        timeout=0.05,
        ttl=0,
    )
    results = await asyncio.wait_for(checker.run(), 1)
    assert results["slow"].status == "down"
    assert results["slow"].error == "no answer within 0.05s"
    assert results["fast"].status == "up"


async def test_concurrent_callers_share_one_check_in_flight() -> None:
    check = CountingCheck(delay=0.05)
    checker = checker_of({"dep": Check(check)}, timeout=1, ttl=0)
    await asyncio.gather(*(checker.run() for _ in range(10)))
    assert check.calls == 1


async def test_max_age_overrides_the_ttl_for_readiness() -> None:
    clock, check = FakeClock(), CountingCheck()
    checker = checker_of({"dep": Check(check)}, timeout=1, ttl=30, clock=clock)
    await checker.run()
    clock.now += 5
    await checker.run(["dep"], max_age=2)
    assert check.calls == 2
