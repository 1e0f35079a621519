"""One limit per client whatever the worker and pod count, against real gunicorn processes.

The seeds' contract: 60 requests per minute per client, then 429 with Retry-After. A burst of
65 must get exactly 60 answers and 5 refusals when two workers (the embedded default store) or
two gateway servers (one real redis-server) share the count; login attempts likewise. When
Redis stops, hangs or restarts under load, requests get the configured behaviour (fail open or
503), never a 500 and never a hang, and the limit is back once Redis is.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from llm_gateway.auth.passwords import hash_password
from llm_gateway.auth.principal import Principal
from llm_gateway.auth.tokens import TokenService
from tests.support.gateway_process import GatewayProcess, start_gateway
from tests.support.processes import running
from tests.support.redis_server import RedisServer, running_redis
from tests.support.settings import TEST_JWT_SECRET

pytestmark = pytest.mark.integration

BURST = 65
LIMIT = 60
# Generous: a check that hangs fails the request long before this; nothing here is a speed test.
CLIENT_TIMEOUT = 10.0


def bearer(subject: str) -> dict[str, str]:
    tokens = TokenService(TEST_JWT_SECRET, "HS256", "llm-gateway", "llm-gateway", 3600)
    token = tokens.issue(Principal(subject, "user", "user")).access_token
    return {"Authorization": f"Bearer {token}"}


def limited_env(**extra: str) -> dict[str, str]:
    return {
        "RATE_LIMIT_ENABLED": "true",
        "RATE_LIMIT_USER": f"{LIMIT}/minute",
        "RATE_LIMIT_IP": f"{LIMIT}/minute",
        **extra,
    }


def burst(urls: list[str], headers: dict[str, str], count: int = BURST) -> list[httpx.Response]:
    """`count` concurrent requests, spread over `urls`, each on its own connection so that the
    kernel hands them to every worker of a server (a kept-alive connection stays with one)."""

    def one(index: int) -> httpx.Response:
        url = urls[index % len(urls)]
        with httpx.Client(timeout=CLIENT_TIMEOUT) as client:
            response = client.get(url, headers=headers)
            response.read()
            return response

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(one, range(count)))


def assert_exactly_the_limit(responses: list[httpx.Response]) -> None:
    statuses = Counter(response.status_code for response in responses)
    assert statuses == {200: LIMIT, 429: BURST - LIMIT}, statuses
    for refused in (r for r in responses if r.status_code == 429):
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert refused.headers["X-RateLimit-Remaining"] == "0"
        assert refused.json()["error"] == "RateLimited"


def log_events(process: GatewayProcess, message: str) -> list[dict[str, Any]]:
    events = []
    for line in process.output().splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if record.get("message") == message:
            events.append(record)
    return events


def test_a_burst_against_two_workers_gets_exactly_the_limit_with_the_default_store(
    tmp_path: Path,
) -> None:
    with running(start_gateway(tmp_path, workers=2, **limited_env())) as gateway:
        responses = burst([f"{gateway.base_url}/test/limited"], bearer("alice"))
        assert_exactly_the_limit(responses)
        # Both workers answered part of the burst: the count really was shared between them.
        answered_by = {r.json()["pid"] for r in responses if r.status_code == 200}
        assert len(answered_by) == 2, answered_by
        (opened, *_) = log_events(gateway, "rate_limiter_opened")
        assert opened["storage"].startswith("sqlite:///") and opened["per_process"] is False


def test_login_attempts_are_counted_once_across_workers(tmp_path: Path) -> None:
    users = [{"username": "alice", "password_hash": hash_password("right-pw"), "role": "user"}]
    env = limited_env(RATE_LIMIT_LOGIN="5/minute", USERS_JSON=orjson.dumps(users).decode())
    with running(start_gateway(tmp_path, workers=2, **env)) as gateway:

        def attempt(_index: int) -> httpx.Response:
            with httpx.Client(timeout=CLIENT_TIMEOUT) as client:
                return client.post(
                    f"{gateway.base_url}/auth/login",
                    json={"username": "alice", "password": "wrong-guess"},
                )

        with ThreadPoolExecutor(max_workers=8) as pool:
            responses = list(pool.map(attempt, range(8)))
        statuses = Counter(r.status_code for r in responses)
        # 5 guesses judged (and refused as wrong), then the limit: not 5 per worker.
        assert statuses == {401: 5, 429: 3}, statuses
        assert all("Retry-After" in r.headers for r in responses if r.status_code == 429)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path / "redis") as server:
        yield server


def test_a_burst_against_two_gateway_servers_sharing_redis_gets_exactly_the_limit(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    env = limited_env(RATE_LIMIT_STORAGE_URI=redis_server.url)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        running(start_gateway(tmp_path / "a", workers=1, **env)) as first,
        running(start_gateway(tmp_path / "b", workers=1, **env)) as second,
    ):
        urls = [f"{first.base_url}/test/limited", f"{second.base_url}/test/limited"]
        responses = burst(urls, bearer("bob"))
        assert_exactly_the_limit(responses)
        served = Counter(r.url.port for r in responses if r.status_code == 200)
        assert set(served) == {first.port, second.port}, served
        assert redis_server.keys(), "the counts live in Redis"


class Load:
    """Requests one after another from a thread until stopped; every outcome recorded."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self._url = url
        self._headers = headers
        self._stop = threading.Event()
        self.outcomes: list[tuple[float, int | str, dict[str, str]]] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=CLIENT_TIMEOUT * 2)

    def _run(self) -> None:
        with httpx.Client(timeout=CLIENT_TIMEOUT) as client:
            while not self._stop.is_set():
                try:
                    response = client.get(self._url, headers=self._headers)
                    body = response.json() if response.status_code >= 400 else {}
                    self.outcomes.append(
                        (time.monotonic(), response.status_code, {**response.headers, **body})
                    )
                except httpx.HTTPError as exc:  # a hang (timeout) or a dropped connection
                    self.outcomes.append((time.monotonic(), type(exc).__name__, {}))
                time.sleep(0.02)

    def since(self, mark: float) -> list[tuple[float, int | str, dict[str, str]]]:
        return [outcome for outcome in self.outcomes if outcome[0] >= mark]

    def wait_for(self, predicate: Any, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        seen = len(self.outcomes)
        while time.monotonic() < deadline:
            if any(predicate(o) for o in self.outcomes[seen:]):
                return
            time.sleep(0.05)
        raise AssertionError(f"no such outcome within {timeout}s: {self.outcomes[seen:][-5:]}")


@pytest.mark.parametrize(
    ("mode", "failing_status"),
    [pytest.param("open", 200, id="fail-open"), pytest.param("closed", 503, id="fail-closed")],
)
def test_redis_stopped_hung_and_restarted_under_load(
    tmp_path: Path, redis_server: RedisServer, mode: str, failing_status: int
) -> None:
    env = limited_env(
        RATE_LIMIT_STORAGE_URI=redis_server.url,
        RATE_LIMIT_USER="100000/minute",
        RATE_LIMIT_IP="100000/minute",
        RATE_LIMIT_STORAGE_FAILURE=mode,
        RATE_LIMIT_STORAGE_TIMEOUT="0.25",
    )
    with (
        running(start_gateway(tmp_path, workers=1, **env)) as gateway,
        Load(f"{gateway.base_url}/test/limited", bearer("carol")) as load,
    ):

        def counted(outcome: tuple[float, int | str, dict[str, str]]) -> bool:
            return outcome[1] == 200 and "x-ratelimit-remaining" in outcome[2]

        def failing(outcome: tuple[float, int | str, dict[str, str]]) -> bool:
            if failing_status == 200:  # served, but nobody counted it
                return outcome[1] == 200 and "x-ratelimit-remaining" not in outcome[2]
            return outcome[1] == 503

        load.wait_for(counted)

        stopped_at = time.monotonic()
        redis_server.stop()
        load.wait_for(failing)
        time.sleep(1.5)  # more load against the stopped server (probes included)
        redis_server.start()
        load.wait_for(counted)

        hung_at = time.monotonic()
        with redis_server.paused():
            load.wait_for(failing)
            time.sleep(1.0)
        load.wait_for(counted)

        outcomes = load.since(stopped_at)

    statuses = Counter(outcome[1] for outcome in outcomes)
    # Only the two behaviours; no 500, no client timeout, no dropped connection.
    assert set(statuses) <= {200, failing_status}, statuses
    if failing_status == 503:
        refusals = [o[2] for o in outcomes if o[1] == 503]
        assert all(r["error"] == "RateLimitUnavailable" for r in refusals)
        assert all(r["incident_id"].startswith("inc_") for r in refusals)
        assert all(r["retry-after"] == "1" for r in refusals)
    assert load.since(hung_at), "load kept flowing while Redis was hung"

    # One WARNING per change of state, not one per request: down, up, down (hung), up.
    changes = [
        (r["message"], r["level"])
        for r in (
            *log_events(gateway, "rate_limit_storage_failing"),
            *log_events(gateway, "rate_limit_storage_recovered"),
        )
    ]
    assert Counter(changes) == {
        ("rate_limit_storage_failing", "WARNING"): 2,
        ("rate_limit_storage_recovered", "WARNING"): 2,
    }
    assert not log_events(gateway, "unhandled_exception")
