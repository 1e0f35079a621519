"""The limiter on a real redis-server that requires a password, as the chart's redis subchart
runs it: the password from RATE_LIMIT_STORAGE_PASSWORD (or the URL), never in a log line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_gateway.errors import RateLimited, RateLimitUnavailable
from llm_gateway.ratelimit.limiter import RateLimiter
from tests.support.logs import capture_json_logs
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

PASSWORD = "redis-test-password-4c1f"


@pytest.fixture
def redis_with_password(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", password=PASSWORD)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize(
    "how",
    [pytest.param("setting", id="password-setting"), pytest.param("url", id="password-in-url")],
)
async def test_the_limiter_counts_in_a_redis_that_requires_a_password(
    redis_with_password: RedisServer, how: str
) -> None:
    port = redis_with_password.port
    uri = (
        f"redis://127.0.0.1:{port}/0"
        if how == "setting"
        else (f"redis://:{PASSWORD}@127.0.0.1:{port}/0")
    )
    limiter = RateLimiter(
        uri,
        "2/minute",
        "100/minute",
        "5/minute",
        None,
        storage_password=PASSWORD if how == "setting" else None,
    )
    with capture_json_logs() as logs:
        await limiter.open()
        try:
            for _ in range(2):
                assert await limiter.check_request("10.0.0.1", "user:pw") is not None
            with pytest.raises(RateLimited):
                await limiter.check_request("10.0.0.1", "user:pw")
        finally:
            await limiter.close()
    assert redis_with_password.keys(), "the windows live in Redis"
    assert not logs.events("rate_limit_storage_failing")
    assert PASSWORD not in "\n".join(logs.raw_lines)


async def test_a_wrong_password_is_a_failing_store_and_never_logged(
    redis_with_password: RedisServer,
) -> None:
    limiter = RateLimiter(
        f"redis://127.0.0.1:{redis_with_password.port}/0",
        "2/minute",
        "100/minute",
        "5/minute",
        None,
        storage_password="not-the-password-9d2e",
        failure_mode="closed",
    )
    with capture_json_logs() as logs:
        await limiter.open()
        try:
            with pytest.raises(RateLimitUnavailable):
                await limiter.check_request("10.0.0.1", "user:pw")
        finally:
            await limiter.close()
    (failing,) = logs.events("rate_limit_storage_failing")
    assert failing["level"] == "WARNING"
    text = "\n".join(logs.raw_lines)
    assert "not-the-password-9d2e" not in text and PASSWORD not in text
