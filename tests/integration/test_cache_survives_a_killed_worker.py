"""A worker killed with SIGKILL loses none of the answers it cached.

Real parts: gunicorn with two uvicorn workers, the real LiteLLM proxy in front of the fake
upstream, each worker's Qdrant Edge shard under DATA_DIR. One worker answers a set of prompts on
one kept-alive connection and persists them to its shard; it is then SIGKILLed (no lifespan
shutdown, no flush, no close). Gunicorn starts a replacement, which takes the free worker slot,
opens the dead worker's shard (Edge replays its write-ahead log) and serves the answers again:
paraphrases are semantic hits, which only that shard can give (the exact tier is also shared
through DATA_DIR/cache, so exact hits alone would not prove it).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.gateway_process import (
    WORKER_STARTED,
    GatewayProcess,
    admin_gateway,
    admin_headers,
)
from tests.support.litellm_proxy import LiteLLMStack
from tests.support.paraphrases import PARAPHRASES, QUESTIONS

pytestmark = pytest.mark.integration


@pytest.fixture
def gateway(litellm_stack: LiteLLMStack, tmp_path: Path) -> Iterator[GatewayProcess]:
    with admin_gateway(
        tmp_path,
        CACHE_ENABLED="true",
        SEMANTIC_CACHE_ENABLED="true",
        EMBEDDER="hashing",
        HEALTH_CACHE_TTL="0",  # every /health/detailed reads the worker's cache afresh
        DEFAULT_MODEL="fake-model",
        **litellm_stack.gateway_env(),
    ) as process:
        litellm_stack.warm_up()
        yield process


def cache_of(client: httpx.Client) -> tuple[str, dict[str, Any]]:
    """(pid, cache details) of the worker serving this connection."""
    checks = client.get("/health/detailed").json()["checks"]
    return checks["circuit_breaker"]["answered_by"], checks["qdrant"]


def test_a_killed_workers_answers_are_served_by_its_replacement(
    gateway: GatewayProcess,
) -> None:
    headers = admin_headers(gateway)

    def connect() -> httpx.Client:
        return httpx.Client(base_url=gateway.base_url, headers=headers, timeout=30)

    answers: dict[str, Any] = {}
    with connect() as client:  # one connection: one worker answers and stores them all
        for question in QUESTIONS:
            response = client.post("/llm/generate", json={"prompt": question})
            assert response.status_code == 200, response.text
            assert response.headers["X-Cache"] == "MISS"
            answers[question] = response.json()["response"]
        deadline = time.monotonic() + 10
        while True:
            victim, cache = cache_of(client)
            if cache["pending_writes"] == 0 and cache["points"] == len(QUESTIONS):
                break
            assert time.monotonic() < deadline, repr(cache)
            time.sleep(0.1)
    assert cache["mode"] == "edge"
    slot = cache["worker_slot"]

    started = gateway.output().count(WORKER_STARTED)
    os.kill(int(victim), signal.SIGKILL)
    deadline = time.monotonic() + 60
    while gateway.output().count(WORKER_STARTED) <= started:
        assert time.monotonic() < deadline, gateway.output()[-3000:]
        time.sleep(0.1)

    # Find a connection served by the replacement (the kernel picks the worker per connection).
    for _ in range(200):
        client = connect()
        pid, cache = cache_of(client)
        if pid != victim and cache["worker_slot"] == slot:
            break
        client.close()
    else:
        pytest.fail("no connection reached the replacement worker")
    try:
        assert cache["entries"] == len(QUESTIONS)  # warmed from the dead worker's shard
        for question, paraphrase in zip(QUESTIONS, PARAPHRASES, strict=True):
            hit = client.post("/llm/generate", json={"prompt": paraphrase})
            assert hit.status_code == 200, hit.text
            assert hit.headers["X-Cache"] == "HIT; tier=semantic", paraphrase
            assert hit.json()["response"] == answers[question]
            exact = client.post("/llm/generate", json={"prompt": question})
            assert exact.headers["X-Cache"] == "HIT; tier=exact"
    finally:
        client.close()
    assert "cache_shard_unreadable" not in gateway.output()
