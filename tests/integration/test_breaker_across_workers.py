"""/health/detailed shows every worker's circuits, whichever worker answers.

The breaker stays per worker (DESIGN.md says why); what an operator reads must not depend on
which worker the kernel handed the probe to. Real parts: two gunicorn workers, the real LiteLLM
proxy in front of the fake upstream made to fail, and the multiprocess metric files the workers
publish their circuit states to.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.fake_upstream import FakeUpstreamProcess
from tests.support.gateway_process import GatewayProcess, admin_gateway, admin_headers
from tests.support.litellm_proxy import LiteLLMStack

pytestmark = pytest.mark.integration

MODEL = "primary-model"


@pytest.fixture
def gateway(litellm_stack: LiteLLMStack, tmp_path: Path) -> Iterator[GatewayProcess]:
    with admin_gateway(
        tmp_path,
        RETRIES_AFTER_FIRST_TRY="0",
        BREAKER_FAILURE_THRESHOLD="2",
        # Stays open for the whole test.
        BREAKER_RECOVERY_SECONDS="120",
        UPSTREAM_REQUEST_TIMEOUT="5",
        DEFAULT_MODEL="fake-model",
        **litellm_stack.gateway_env(),
    ) as process:
        litellm_stack.warm_up()
        yield process


def test_every_answer_shows_the_worker_whose_circuit_opened(
    gateway: GatewayProcess, fake_upstream: FakeUpstreamProcess
) -> None:
    headers = admin_headers(gateway)
    # The proxy falls back from the primary to the secondary model: both fail.
    fake_upstream.fault("status", model=MODEL, status=502, count=-1)
    fake_upstream.fault("status", model="secondary-model", status=502, count=-1)
    # One kept-alive connection: one worker sees both failures and opens its circuit.
    with httpx.Client(base_url=gateway.base_url, headers=headers, timeout=30) as client:
        for index in range(3):
            client.post("/llm/generate", json={"prompt": f"down {index}", "model": MODEL})
        refused = client.post("/llm/generate", json={"prompt": "refused", "model": MODEL})
        assert refused.json()["error"] == "CircuitOpen", refused.text
        workers = client.get("/health/detailed").json()["checks"]["circuit_breaker"]["workers"]
        (tripped,) = [pid for pid, states in workers.items() if states.get(MODEL) == "open"]

    answered_by: set[str] = set()
    for _ in range(60):
        # A new connection each time, so both workers get to answer.
        with httpx.Client(base_url=gateway.base_url, headers=headers, timeout=10) as client:
            response = client.get("/health/detailed")
        assert response.status_code == 503  # degraded: a circuit is open somewhere
        breaker = response.json()["checks"]["circuit_breaker"]
        assert breaker["status"] == "down"
        assert breaker["workers"][tripped][MODEL] == "open"
        assert MODEL in breaker["error"]
        answered_by.add(breaker["answered_by"])
        if len(answered_by) == 2:
            break
    # The other worker, whose own circuit never opened, answered too and still showed it.
    assert len(answered_by) == 2 and tripped in answered_by, answered_by
    # Both workers are listed by both, the one with no circuit of its own included.
    assert breaker["workers"].keys() == answered_by
