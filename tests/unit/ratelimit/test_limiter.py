"""Rate limits on the real `limits` memory storage: allowance, refusal, headers and scopes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from limits import parse_many
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from prometheus_client import Counter

from llm_gateway.errors import ConfigurationError, RateLimited, RateLimitUnavailable
from llm_gateway.observability.metrics import Metrics
from llm_gateway.ratelimit.limiter import LimitStatus, RateLimiter, async_storage_uri
from tests.support.logs import capture_json_logs


def refused_count(metrics: Metrics, scope: str) -> float:
    counter: Counter = metrics.rate_limited
    return counter.labels(scope)._value.get()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def limiter(metrics: Metrics) -> AsyncIterator[RateLimiter]:
    limiter = RateLimiter("memory://", "3/minute", "5/minute", "2/minute", metrics)
    await limiter.open()
    yield limiter
    await limiter.close()


async def test_n_requests_pass_then_the_next_is_refused_with_retry_after(
    limiter: RateLimiter, metrics: Metrics
) -> None:
    statuses = [await limiter.check_user("user:alice") for _ in range(3)]
    assert [status.remaining for status in statuses if status] == [2, 1, 0]
    assert all(status and status.limit == 3 for status in statuses)

    before = time.time()
    with pytest.raises(RateLimited) as caught:
        await limiter.check_user("user:alice")
    refusal = caught.value
    assert refusal.status_code == 429
    assert refusal.retry_after is not None and 0 < refusal.retry_after <= 60
    headers = refusal.response_headers()
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert headers["X-RateLimit-Limit"] == "3"
    assert headers["X-RateLimit-Remaining"] == "0"
    assert before < int(headers["X-RateLimit-Reset"]) <= before + 61
    assert "3 per minute per caller" in refusal.message
    assert refused_count(metrics, "user") == 1


async def test_callers_and_addresses_have_their_own_buckets(limiter: RateLimiter) -> None:
    for _ in range(3):
        await limiter.check_user("user:alice")
    assert await limiter.check_user("user:bob") is not None
    for _ in range(5):
        await limiter.check_ip("10.0.0.1")
    with pytest.raises(RateLimited, match="per client address"):
        await limiter.check_ip("10.0.0.1")
    assert await limiter.check_ip("10.0.0.2") is not None


@pytest.mark.parametrize(
    "storage_uri",
    [
        pytest.param("memory://", id="local-windows"),
        pytest.param("sqlite://", id="shared-file"),
    ],
)
async def test_a_refused_request_does_not_use_up_more_of_the_window(storage_uri: str) -> None:
    now = [1_000.0]
    limiter = RateLimiter(
        storage_uri, "3/minute", "5/minute", "2/minute", None, clock=lambda: now[0]
    )
    await limiter.open()
    try:
        for _ in range(3):
            await limiter.check_user("user:alice")
        for _ in range(4):
            now[0] += 1
            with pytest.raises(RateLimited):
                await limiter.check_user("user:alice")
        # Had the refusals (t=1001..1004) been counted, the window would still be shut at 1060.5.
        now[0] = 1_060.5
        status = await limiter.check_user("user:alice")
        assert status is not None and status.remaining == 2
    finally:
        await limiter.close()


async def test_a_refused_request_is_not_counted_by_a_limits_storage() -> None:
    storage = MemoryStorage()
    limiter = RateLimiter("memory://", "3/minute", "5/minute", "2/minute", None, storage=storage)
    await limiter.open()
    try:
        for _ in range(3):
            await limiter.check_user("user:alice")
        for _ in range(4):
            with pytest.raises(RateLimited):
                await limiter.check_user("user:alice")
        # limits' storage reads the wall clock: ask it how full the window is (7 if counted).
        window = await MovingWindowRateLimiter(storage).get_window_stats(
            parse_many("3/minute")[0], "user", "user:alice"
        )
        assert window.remaining == 0
    finally:
        await limiter.close()


async def test_login_is_limited_per_username_across_addresses(
    limiter: RateLimiter, metrics: Metrics
) -> None:
    # A guesser rotating addresses still meets the per-username limit (2/minute here).
    await limiter.check_login("10.0.0.1", "admin")
    await limiter.check_login("10.0.0.2", "Admin")
    with pytest.raises(RateLimited, match="per address and username"):
        await limiter.check_login("10.0.0.3", "admin")
    assert refused_count(metrics, "login") == 1
    # Other accounts are untouched.
    assert await limiter.check_login("10.0.0.3", "alice") is not None


async def test_login_is_limited_per_address_across_usernames(limiter: RateLimiter) -> None:
    await limiter.check_login("10.0.0.9", "alice")
    await limiter.check_login("10.0.0.9", "bob")
    with pytest.raises(RateLimited):
        await limiter.check_login("10.0.0.9", "carol")


async def test_login_status_reports_the_tighter_of_the_two_limits(limiter: RateLimiter) -> None:
    await limiter.check_login("10.0.0.1", "alice")
    status = await limiter.check_login("10.0.0.2", "alice")
    assert status is not None and status.remaining == 0 and status.limit == 2


async def test_several_limits_in_one_setting_all_apply(metrics: Metrics) -> None:
    limiter = RateLimiter("memory://", "2/second; 3/hour", "60/minute", "5/minute", metrics)
    await limiter.open()
    try:
        await limiter.check_user("k")
        status = await limiter.check_user("k")
        assert status == LimitStatus(2, 0, status.reset_at) if status else False
        with pytest.raises(RateLimited, match="2 per second"):
            await limiter.check_user("k")
    finally:
        await limiter.close()


async def test_a_disabled_limiter_lets_everything_through(metrics: Metrics) -> None:
    limiter = RateLimiter("memory://", "1/minute", "1/minute", "1/minute", metrics, enabled=False)
    await limiter.open()
    for _ in range(5):
        assert await limiter.check_user("u") is None
        assert await limiter.check_ip("10.0.0.1") is None
        assert await limiter.check_login("10.0.0.1", "admin") is None
    await limiter.close()
    assert refused_count(metrics, "user") == 0


async def test_status_headers_describe_the_window() -> None:
    assert LimitStatus(60, 59, 1_800_000_000.2).headers() == {
        "X-RateLimit-Limit": "60",
        "X-RateLimit-Remaining": "59",
        "X-RateLimit-Reset": "1800000001",
    }


async def test_checks_before_open_are_a_programming_error() -> None:
    limiter = RateLimiter("memory://", "1/minute", "1/minute", "1/minute", None)
    with pytest.raises(RuntimeError, match="open"):
        await limiter.check_user("u")


async def test_an_unknown_storage_scheme_is_a_configuration_error_at_construction() -> None:
    with pytest.raises(ConfigurationError) as caught:
        RateLimiter("nosuch://user:pw@host", "1/minute", "1/minute", "1/minute", None)
    (line,) = caught.value.problems
    assert line.startswith("RATE_LIMIT_STORAGE_URI nosuch://user:***@host")
    assert "pw" not in line.replace("***", "")
    assert "unknown or its client library is not installed" in line


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        pytest.param("memory://", "async+memory://", id="plain"),
        pytest.param("async+memory://", "async+memory://", id="already-async"),
        pytest.param("redis://r:6379", "async+redis://r:6379", id="redis"),
    ],
)
def test_settings_uris_map_to_async_storage(uri: str, expected: str) -> None:
    assert async_storage_uri(uri) == expected


class FailingStorage(MemoryStorage):
    """A shared store that is down: every window operation fails as limits reports it."""

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        raise StorageError(ConnectionError("store unreachable"))


async def test_a_failing_store_fails_open(metrics: Metrics) -> None:
    limiter = RateLimiter(
        "redis://example", "1/minute", "1/minute", "1/minute", metrics, storage=FailingStorage()
    )
    await limiter.open()
    try:
        for _ in range(3):
            assert await limiter.check_user("u") is None
    finally:
        await limiter.close()
    assert refused_count(metrics, "user") == 0


class CountingFailingStorage(FailingStorage):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.down = True

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        self.calls += 1
        if self.down:
            raise StorageError(ConnectionError("store unreachable"))
        return await MemoryStorage.acquire_entry(self, key, limit, expiry, amount)


def storage_up(metrics: Metrics) -> float:
    return float(metrics.rate_limit_storage_up._value.get())


def failures(metrics: Metrics, outcome: str) -> float:
    return float(metrics.rate_limit_storage_failures.labels(outcome)._value.get())


async def test_fail_closed_answers_503_with_retry_after_and_recovers(metrics: Metrics) -> None:
    storage = CountingFailingStorage()
    limiter = RateLimiter(
        "redis://:secret-pw@redis:6379",
        "5/minute",
        "5/minute",
        "5/minute",
        metrics,
        storage=storage,
        failure_mode="closed",
        storage_retry_seconds=0.01,
    )
    with capture_json_logs() as logs:
        await limiter.open()
        try:
            for _ in range(3):
                with pytest.raises(RateLimitUnavailable) as caught:
                    await limiter.check_request("10.0.0.1", "user:u")
                assert caught.value.status_code == 503
                assert caught.value.response_headers()["Retry-After"] == "1"
            assert storage_up(metrics) == 0
            assert failures(metrics, "refused") == 3
            storage.down = False
            await asyncio.sleep(0.02)  # the next probe is due
            status = await limiter.check_request("10.0.0.1", "user:u")
            assert status is not None and status.remaining == 4
            assert storage_up(metrics) == 1
        finally:
            await limiter.close()
    failing = logs.events("rate_limit_storage_failing")
    assert [(e["level"], e["failure_mode"]) for e in failing] == [("WARNING", "closed")]
    assert [e["level"] for e in logs.events("rate_limit_storage_recovered")] == ["WARNING"]
    assert "secret-pw" not in "".join(logs.raw_lines)


async def test_while_the_store_is_down_one_request_per_interval_tries_it(metrics: Metrics) -> None:
    storage = CountingFailingStorage()
    limiter = RateLimiter(
        "redis://redis:6379",
        "5/minute",
        "5/minute",
        "5/minute",
        metrics,
        storage=storage,
        storage_retry_seconds=3600,
    )
    await limiter.open()
    try:
        for _ in range(20):
            assert await limiter.check_request("10.0.0.1", "user:u") is None  # fail open
    finally:
        await limiter.close()
    # The first request met the failure; the next 19 did not wait for the store at all.
    assert storage.calls == 1
    assert failures(metrics, "allowed") == 20
